"""Whether the side to move has a legal move: python-chess's answer, usually sooner.

The search asks it of every new leaf (checkmate and stalemate end the game there), and
most leaves are never expanded, so their legal moves are never listed. python-chess's
`any(board.generate_legal_moves())` first computes the pinned pieces and the checkers,
then tries moves; out of check, a piece that shares no line with its king cannot be
pinned, so any move it can make is legal. That answers nearly every position from the
bitboards at once, and the rest (in check, or only aligned pieces) go to python-chess,
which stays the reference (tests/unit/test_movegen.py: the same answer on many thousands
of positions).
"""

from __future__ import annotations

import chess

# Squares sharing a rank, file or diagonal with each square (on an empty board).
_LINES = [
    chess.BB_RANK_ATTACKS[sq][0] | chess.BB_FILE_ATTACKS[sq][0] | chess.BB_DIAG_ATTACKS[sq][0] for sq in chess.SQUARES
]


def has_legal_move(board: chess.Board) -> bool:
    """`any(board.generate_legal_moves())` of a standard-chess board."""
    turn = board.turn
    ours = board.occupied_co[turn]
    king = board.king(turn)
    if king is not None and not board.is_check():
        # Knights, bishops, rooks and queens off the king's lines: never pinned.
        free = ours & ~board.pawns & ~board.kings & ~_LINES[king]
        while free:
            square = free.bit_length() - 1
            if board.attacks_mask(square) & ~ours:
                return True
            free ^= 1 << square
    return any(board.generate_legal_moves())
