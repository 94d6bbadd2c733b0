"""movegen answers as python-chess does (a legal move, insufficient material, a repetition)
on many thousands of positions."""

from __future__ import annotations

import random

import chess
import pytest
from support.positions import mates_after

from service.engine import movegen
from service.engine.movegen import has_legal_move, is_insufficient_material, is_repetition

pytestmark = pytest.mark.unit


def playouts(n: int, seed: int) -> list[chess.Board]:
    """`n` positions of seeded random games played to their end (checkmates, stalemates and
    long endgames included, where pieces are few and often pinned or in check)."""
    rng = random.Random(seed)
    boards, board = [], chess.Board()
    while len(boards) < n:
        boards.append(board.copy(stack=False))
        moves = list(board.generate_legal_moves())
        if not moves or board.ply() > 300:
            board = chess.Board()
            continue
        # Captures first half the time: games reach sparse endgames, where the fast path often fails.
        captures = [m for m in moves if board.is_capture(m)]
        board.push(rng.choice(captures if captures and rng.random() < 0.5 else moves))
    return boards


EDGES = [
    "7k/5Q2/6K1/8/8/8/8/8 b - - 0 1",  # stalemate
    "r1bqkb1r/pppp1Qpp/2n2n2/4p3/2B1P3/8/PPPP1PPP/RNB1K1NR b KQkq - 0 4",  # checkmate
    "4k3/8/8/8/8/8/8/4K3 w - - 0 1",  # bare kings
    "4k3/4r3/8/8/8/8/4B3/4K3 w - - 0 1",  # the only piece is pinned; the king can move
    "8/8/8/8/8/5k2/4r3/3BK3 w - - 0 1",  # the bishop is off the king's lines but boxed: king moves only
    "k7/8/8/8/8/8/1q6/K7 w - - 0 1",  # in check, one escape (Kxb2)
    "k7/8/8/8/8/8/2q5/K7 w - - 0 1",  # stalemate by the queen
    "4k3/8/8/3pP3/8/8/8/4K3 w - d6 0 1",  # en passant available
    "r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1",  # castling
    "8/8/8/8/8/8/p7/K1k5 w - - 0 1",  # a king and a pawn each: Ka1 has b2
    "8/8/8/8/8/5bp1/5kN1/7K w - - 0 1",  # stalemate: the knight is pinned, the king boxed
]


@pytest.mark.parametrize("fen", EDGES)
def test_edge_positions(fen):
    board = chess.Board(fen)
    assert has_legal_move(board) == any(board.generate_legal_moves())


def test_the_same_answer_as_python_chess_on_many_positions():
    boards = playouts(20_000, seed=11)
    answers = [has_legal_move(b) for b in boards]
    assert answers == [any(b.generate_legal_moves()) for b in boards]
    # The sample holds both answers, and positions in check and out of it.
    assert answers.count(False) >= 5
    assert sum(b.is_check() for b in boards) >= 500


def test_the_board_is_left_as_it_was():
    board = chess.Board("r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4")
    before = (board.fen(), list(board.move_stack))
    has_legal_move(board)
    assert (board.fen(), list(board.move_stack)) == before


def test_insufficient_material_as_python_chess():
    boards = playouts(20_000, seed=12) + [chess.Board(fen) for fen in EDGES]
    answers = [is_insufficient_material(b) for b in boards]
    assert answers == [b.is_insufficient_material() for b in boards]
    assert answers.count(True) >= 20


def shuffling_games(n: int, seed: int) -> list[chess.Board]:
    """Boards (with their move stacks) along seeded games that often move a piece back where
    it came from, so positions repeat once, twice or more, between captures and pawn moves."""
    rng = random.Random(seed)
    boards, board = [], chess.Board()
    while len(boards) < n:
        boards.append(board.copy())
        moves = list(board.generate_legal_moves())
        if not moves or board.ply() > 200:
            board = chess.Board()
            continue
        back = None
        if len(board.move_stack) >= 2:
            earlier = board.move_stack[-2]
            undo = chess.Move(earlier.to_square, earlier.from_square)
            back = undo if undo in moves else None
        if back is not None and rng.random() < 0.6:
            board.push(back)
        else:
            quiet = [m for m in moves if not board.is_zeroing(m)]
            board.push(rng.choice(quiet if quiet and rng.random() < 0.8 else moves))
    return boards


def test_repetition_as_python_chess():
    boards = shuffling_games(6_000, seed=13)
    boards.append(chess.Board("8/8/4k3/8/8/3K4/3R4/8 w - - 99 80"))  # a clock longer than the game
    for count in (1, 2, 3, 4):
        answers = [is_repetition(b, count) for b in boards]
        assert answers == [b.is_repetition(count) for b in boards], count
        if count in (2, 3):
            assert answers.count(True) >= 200, count  # the sample holds repetitions


def random_middlegames(games: int, rng: random.Random) -> list[chess.Board]:
    """The last position of each of `games` random games of 10-120 plies, if not over."""
    boards = []
    for _ in range(games):
        board = chess.Board()
        for _ in range(rng.randrange(10, 120)):
            legal = list(board.legal_moves)
            if not legal:
                break
            board.push(rng.choice(legal))
        if not board.is_game_over():
            boards.append(board)
    return boards


def test_mating_move_agrees_with_pushing_every_move():
    """`mating_move` finds a mate exactly when one of the legal moves checkmates (python-chess
    pushes each), on random positions and on the special cases: castling, en passant,
    discovered and promotion mates."""
    rng = random.Random(11)
    special = [
        "4k3/8/4K3/8/8/8/8/7R w - - 0 1",  # Rh8#
        "6k1/5ppp/8/8/8/8/8/R3K3 w Q - 0 1",  # Ra8#, castling gives no check
        "2rkr3/2p1p3/8/8/8/8/8/R3K3 w Q - 0 1",  # Rd1# and O-O-O# (the rook gives the check)
        "k7/6n1/8/8/r2Pp2K/8/6r1/6n1 b - d3 0 1",  # exd3 e.p.# uncovers the fourth rank: the only mate
        "k7/2P5/1K6/8/8/8/8/8 w - - 0 1",  # c8=Q# and c8=R#
        "7k/6pp/8/8/8/8/8/4K3 w - - 0 1",  # no mate
    ]
    boards = [chess.Board(fen) for fen in special] + random_middlegames(300, rng)
    found = 0
    for board in boards:
        moves = list(board.legal_moves)
        expected = [i for i, m in enumerate(moves) if mates_after(board, m)]
        got = movegen.mating_move(board, moves)
        assert got == (expected[0] if expected else None), board.fen()
        found += got is not None
    assert found >= 3  # the test saw mates, not only their absence


def test_has_mate_in_one_never_claims_a_mate_that_is_not_and_misses_only_castling_and_en_passant():
    """`has_mate_in_one` (the search's proven-win leaf) against pushing every legal move: on
    thousands of positions of random games and the special mates (discovered, promotion,
    castling, en passant) it says yes exactly when a move mates, except where every mating
    move castles or takes en passant, which it does not look for; the board is left as it was."""
    special = [
        "R2B3k/6pp/8/8/8/8/8/4K3 w - - 0 1",  # any bishop move uncovers Ra8: a discovered mate only
        "k7/2P5/1K6/8/8/8/8/8 w - - 0 1",  # c8=Q#
        "2rkr3/2p1p3/8/8/8/8/8/R3K3 w Q - 0 1",  # Rd1# (and O-O-O#)
        "k7/6n1/8/8/r2Pp2K/8/6r1/6n1 b - d3 0 1",  # exd3 e.p.# only: not looked for
        "7k/6pp/8/8/8/8/8/4K3 w - - 0 1",  # no mate
    ]
    boards = [chess.Board(fen) for fen in special] + [b for b in playouts(3000, 5) if not b.is_game_over()]
    boards += random_middlegames(1500, random.Random(12))  # queens and rooks about, many checks and mates
    found = missed = 0
    for board in boards:
        before = board.copy()
        mating = [m for m in board.legal_moves if mates_after(board, m)]
        got = movegen.has_mate_in_one(board)
        assert board == before and board.move_stack == before.move_stack
        if got:
            assert mating, board.fen()
            found += 1
        elif mating:
            assert all(board.is_castling(m) or board.is_en_passant(m) for m in mating), board.fen()
            missed += 1
    assert movegen.has_mate_in_one(boards[0]) and movegen.has_mate_in_one(boards[1])
    assert found >= 30 and missed <= 2  # the sample holds mates, and only the special one is missed
