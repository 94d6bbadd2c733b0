"""Seeded chess positions for the engine's unit tests."""

from __future__ import annotations

import random

import chess


def random_positions(n: int, seed: int = 0) -> list[chess.Board]:
    """`n` positions from seeded random playouts (real boards, both colours to move; a
    playout restarts from the initial position at its end or after 80 plies)."""
    rng = random.Random(seed)
    boards, board = [], chess.Board()
    while len(boards) < n:
        moves = list(board.legal_moves)
        if not moves or board.ply() > 80:
            board = chess.Board()
            continue
        board.push(rng.choice(moves))
        boards.append(board.copy(stack=False))
    return boards


def mates_after(board: chess.Board, move: chess.Move) -> bool:
    """Whether `move` checkmates: python-chess's own answer, the reference for the engine's."""
    board.push(move)
    try:
        return board.is_checkmate()
    finally:
        board.pop()
