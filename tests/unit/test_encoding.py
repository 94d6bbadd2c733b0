"""encoding: board -> planes and move <-> policy index (DESIGN.md "Engine")."""

import random

import chess
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import encoding
from service.engine.encoding import (
    AZ_PLANES,
    FEATURE_WIDTH,
    NUM_PLANES,
    POLICY_MOVES,
    POLICY_SIZE,
    POLICY_TO_PLANE,
    board_features,
    encode_boards,
    index_to_move,
    legal_mask,
    move_index,
    move_indices,
    planes_from_features,
)

pytestmark = pytest.mark.unit

# Piece-plane layout: our P N B R Q K (0-5), their P N B R Q K (6-11).
REP1, REP2 = 12, 13
US_K, US_Q, THEM_K, THEM_Q = 14, 15, 16, 17
EP, FIFTY, BLACK_TO_MOVE, ONES = 18, 19, 20, 21

# Positions whose random playouts reach promotions (all pieces, straight and capturing) quickly.
PROMOTION_START = "1n1r1b2/PPPPPPPP/8/k7/7K/8/pppppppp/2N1R1B1 w - - 0 1"


def assert_round_trip(board: chess.Board) -> int:
    """Every legal move of `board` round-trips through its policy index; returns the move count."""
    legal = list(board.legal_moves)
    idx = move_indices(legal, board.turn)
    assert idx == [move_index(m, board.turn) for m in legal]
    assert len(set(idx)) == len(idx), f"two legal moves share an index in {board.fen()}"
    assert all(0 <= i < POLICY_SIZE for i in idx)
    for m, i in zip(legal, idx):
        assert index_to_move(i, board) == m, f"{m.uci()} -> {i} -> {index_to_move(i, board).uci()} in {board.fen()}"
    return len(legal)


def random_playout(rng: random.Random, fen: str = chess.STARTING_FEN, max_plies: int = 120):
    """Yield the positions of a random game (the board is mutated: copy what you keep)."""
    board = chess.Board(fen)
    for _ in range(max_plies):
        yield board
        legal = list(board.legal_moves)
        if not legal:
            return
        board.push(rng.choice(legal))
    yield board


def expected_piece_planes(board: chess.Board) -> np.ndarray:
    """Our/their piece planes built square by square, from the side to move's view."""
    out = np.zeros((12, 8, 8), dtype=np.float32)
    for sq, piece in board.piece_map().items():
        s = sq if board.turn == chess.WHITE else sq ^ 56
        plane = piece.piece_type - 1 + (0 if piece.color == board.turn else 6)
        out[plane, s // 8, s % 8] = 1.0
    return out


def planes_of(board: chess.Board, repetitions: int = 0) -> np.ndarray:
    return planes_from_features([board_features(board, repetitions)])[0]


# -- the policy table ---------------------------------------------------------------


def test_policy_table_has_1858_distinct_moves():
    assert len(POLICY_MOVES) == POLICY_SIZE == 1858
    assert len(set(POLICY_MOVES)) == POLICY_SIZE
    under = [m for m in POLICY_MOVES if m[2] is not None]
    assert len(under) == 66  # 8 straight + 14 diagonal pawn moves, x3 pieces
    assert all(f // 8 == 6 and t // 8 == 7 and p in (chess.KNIGHT, chess.BISHOP, chess.ROOK) for f, t, p in under)
    assert all(0 <= f < 64 and 0 <= t < 64 and f != t for f, t, _ in POLICY_MOVES)


def test_policy_to_plane_is_distinct_and_within_the_73x64_planes():
    assert POLICY_TO_PLANE.shape == (POLICY_SIZE,)
    assert len(set(POLICY_TO_PLANE.tolist())) == POLICY_SIZE
    assert POLICY_TO_PLANE.min() >= 0 and POLICY_TO_PLANE.max() < AZ_PLANES * 64


def test_policy_to_plane_decodes_to_the_same_move():
    """Plane p, square s of AlphaZero's 73x8x8 head is the move it gathers."""
    dirs = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))
    jumps = ((2, 1), (1, 2), (-1, 2), (-2, 1), (-2, -1), (-1, -2), (1, -2), (2, -1))
    for (f, t, p), flat in zip(POLICY_MOVES, POLICY_TO_PLANE.tolist()):
        plane, sq = divmod(flat, 64)
        assert sq == f
        r, c = divmod(f, 8)
        if plane < 56:
            d, dist = divmod(plane, 7)
            dr, dc = dirs[d]
            assert p is None and t == (r + dr * (dist + 1)) * 8 + c + dc * (dist + 1)
        elif plane < 64:
            dr, dc = jumps[plane - 56]
            assert p is None and t == (r + dr) * 8 + c + dc
        else:
            direction, piece = divmod(plane - 64, 3)
            assert p == (chess.KNIGHT, chess.BISHOP, chess.ROOK)[piece]
            assert t == f + 8 + (0, -1, 1)[direction]


# -- move <-> index round trips -----------------------------------------------------


def test_round_trip_over_thousands_of_random_positions():
    rng = random.Random(1234)
    positions = moves = 0
    for game in range(45):
        fen = PROMOTION_START if game % 5 == 4 else chess.STARTING_FEN
        for board in random_playout(rng, fen):
            moves += assert_round_trip(board)
            positions += 1
    assert positions >= 3000
    assert moves >= 50000


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), promotions=st.booleans())
def test_round_trip_random_playouts_from_hypothesis_seeds(seed, promotions):
    rng = random.Random(seed)
    for board in random_playout(rng, PROMOTION_START if promotions else chess.STARTING_FEN, max_plies=80):
        assert_round_trip(board)


@settings(max_examples=30)
@given(data=st.data())
def test_round_trip_hypothesis_drawn_playouts(data):
    board = chess.Board(data.draw(st.sampled_from([chess.STARTING_FEN, PROMOTION_START])))
    for _ in range(data.draw(st.integers(0, 60))):
        assert_round_trip(board)
        legal = list(board.legal_moves)
        if not legal:
            break
        board.push(data.draw(st.sampled_from(legal)))
    assert_round_trip(board)


PROMOTION_FENS = [
    # b-pawn: straight and both captures; a- and h-pawns: edge files, straight and the one capture.
    "r1r4k/1P6/8/8/8/8/8/7K w - - 0 1",
    "1r4r1/P6P/8/8/8/8/8/K6k w - - 0 1",
]


@pytest.mark.parametrize("colour", ["white", "black"])
@pytest.mark.parametrize("fen", PROMOTION_FENS)
def test_promotions_all_pieces_straight_and_capturing(fen, colour):
    board = chess.Board(fen)
    if colour == "black":
        board = board.mirror()
    promos = [m for m in board.legal_moves if m.promotion]
    pairs = {(m.from_square, m.to_square) for m in promos}
    assert any(chess.square_file(f) == chess.square_file(t) for f, t in pairs)  # straight
    assert any(chess.square_file(f) != chess.square_file(t) for f, t in pairs)  # capturing
    assert len(promos) == 4 * len(pairs)
    assert_round_trip(board)
    for f, t in pairs:
        queen = chess.Move(f, t, chess.QUEEN)
        plain = move_index(chess.Move(f, t), board.turn)
        assert move_index(queen, board.turn) == plain  # a queen promotion is the plain pawn move
        assert POLICY_MOVES[plain][2] is None
        assert index_to_move(plain, board) == queen
        unders = [move_index(chess.Move(f, t, p), board.turn) for p in (chess.KNIGHT, chess.BISHOP, chess.ROOK)]
        assert len(set(unders + [plain])) == 4
        assert all(i >= POLICY_SIZE - 66 for i in unders)
        for p, i in zip((chess.KNIGHT, chess.BISHOP, chess.ROOK), unders):
            assert index_to_move(i, board) == chess.Move(f, t, p)
            # both colours share one table, seen from their own side
            assert i == move_index(chess.Move(f ^ 56, t ^ 56, p), not board.turn)


@pytest.mark.parametrize("turn", ["w", "b"])
def test_castling_both_sides_both_colours(turn):
    board = chess.Board(f"r3k2r/pppppppp/8/8/8/8/PPPPPPPP/R3K2R {turn} KQkq - 0 1")
    castles = [m for m in board.legal_moves if board.is_castling(m)]
    assert len(castles) == 2
    assert {board.is_kingside_castling(m) for m in castles} == {True, False}
    assert_round_trip(board)
    for m in castles:
        back = index_to_move(move_index(m, board.turn), board)
        assert back == m and board.is_castling(back)
    own = {m.uci() for m in castles}
    assert own == ({"e1g1", "e1c1"} if turn == "w" else {"e8g8", "e8c8"})
    # Black's O-O is White's O-O seen from Black's side
    for m in castles:
        mirrored = chess.Move(m.from_square ^ 56, m.to_square ^ 56)
        assert move_index(m, board.turn) == move_index(mirrored, not board.turn)


def test_en_passant_round_trips():
    board = chess.Board()
    for san in ["e4", "a6", "e5", "d5"]:
        board.push_san(san)
    ep = board.parse_san("exd6")
    assert board.is_en_passant(ep)
    assert index_to_move(move_index(ep, board.turn), board) == ep
    assert_round_trip(board)


# -- planes --------------------------------------------------------------------------


def test_plane_shapes_and_dtype():
    boards = [chess.Board(), chess.Board("8/8/4k3/8/8/3K4/8/8 b - - 0 1")]
    planes = encode_boards(boards)
    assert planes.shape == (2, NUM_PLANES, 8, 8) == (2, 22, 8, 8)
    assert planes.dtype == np.float32
    assert len(board_features(boards[0])) == FEATURE_WIDTH
    assert planes_from_features([board_features(boards[0])]).shape == (1, NUM_PLANES, 8, 8)
    assert planes_from_features(np.zeros((0, FEATURE_WIDTH), dtype=np.uint64)).shape == (0, NUM_PLANES, 8, 8)
    assert np.all(planes[:, ONES] == 1.0)


def test_start_position_planes():
    p = planes_of(chess.Board())
    assert np.array_equal(p[:12], expected_piece_planes(chess.Board()))
    assert np.all(p[0, 1] == 1) and p[0].sum() == 8  # our pawns on our second rank
    assert np.all(p[6, 6] == 1) and p[6].sum() == 8  # theirs on the seventh
    assert p[5, 0, 4] == 1 and p[11, 7, 4] == 1  # kings on e1 / e8
    assert np.all(p[US_K : THEM_Q + 1] == 1)
    assert np.all(p[[REP1, REP2, EP, FIFTY, BLACK_TO_MOVE]] == 0)


def test_black_sees_the_board_flipped_after_e4():
    board = chess.Board()
    board.push_san("e4")
    p = planes_of(board)
    assert np.all(p[BLACK_TO_MOVE] == 1)
    # Black's own pawns are on the second rank of its planes
    assert np.all(p[0, 1] == 1) and p[0].sum() == 8
    # White's pawns: seven on (flipped) rank 7, the e-pawn on (flipped) rank 5
    expected_theirs = np.zeros((8, 8))
    expected_theirs[6, :] = 1
    expected_theirs[6, 4] = 0
    expected_theirs[4, 4] = 1
    assert np.array_equal(p[6], expected_theirs)
    assert p[5, 0, 4] == 1  # Black's king, e8, on its own first rank
    assert p[4, 0, 3] == 1  # Black's queen, d8
    assert p[11, 7, 4] == 1  # White's king, e1, on Black's eighth rank
    assert np.array_equal(p[:12], expected_piece_planes(board))


def test_piece_planes_match_the_board_over_random_games():
    rng = random.Random(7)
    for _ in range(10):
        for board in random_playout(rng, max_plies=80):
            assert np.array_equal(planes_of(board)[:12], expected_piece_planes(board)), board.fen()


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), plies=st.integers(0, 60))
def test_a_position_and_its_colour_mirror_encode_alike(seed, plies):
    """From the side to move's view Black's position is White's mirrored one: only the colour plane differs."""
    rng = random.Random(seed)
    board = chess.Board()
    for _ in range(plies):
        legal = list(board.legal_moves)
        if not legal:
            break
        board.push(rng.choice(legal))
    a, b = planes_of(board), planes_of(board.mirror())
    assert np.array_equal(a[:BLACK_TO_MOVE], b[:BLACK_TO_MOVE])
    assert a[BLACK_TO_MOVE, 0, 0] != b[BLACK_TO_MOVE, 0, 0]
    assert np.array_equal(a[:12], expected_piece_planes(board))


@pytest.mark.parametrize(
    "fen, us_k, us_q, them_k, them_q",
    [
        ("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1", 1, 1, 1, 1),
        ("r3k2r/8/8/8/8/8/8/R3K2R w Kq - 0 1", 1, 0, 0, 1),
        ("r3k2r/8/8/8/8/8/8/R3K2R b Kq - 0 1", 0, 1, 1, 0),
        ("r3k2r/8/8/8/8/8/8/R3K2R w Qk - 0 1", 0, 1, 1, 0),
        ("r3k2r/8/8/8/8/8/8/R3K2R b Qk - 0 1", 1, 0, 0, 1),
        ("r3k2r/8/8/8/8/8/8/R3K2R b k - 0 1", 1, 0, 0, 0),
        ("r3k2r/8/8/8/8/8/8/R3K2R w - - 0 1", 0, 0, 0, 0),
    ],
)
def test_castling_planes(fen, us_k, us_q, them_k, them_q):
    p = planes_of(chess.Board(fen))
    for plane, want in zip((US_K, US_Q, THEM_K, THEM_Q), (us_k, us_q, them_k, them_q)):
        assert np.all(p[plane] == want), (fen, plane)


def test_en_passant_plane_both_colours():
    white = chess.Board()
    for san in ["e4", "a6", "e5", "d5"]:
        white.push_san(san)
    black = chess.Board()
    for san in ["a3", "e5", "a4", "e4", "d4"]:
        black.push_san(san)
    for board, file in ((white, 3), (black, 3)):
        p = planes_of(board)
        expected = np.zeros((8, 8))
        expected[5, file] = 1  # the target square is on the mover's sixth rank
        assert np.array_equal(p[EP], expected)
    assert np.all(planes_of(chess.Board())[EP] == 0)


@pytest.mark.parametrize("clock", [0, 1, 37, 99, 100])
def test_fifty_move_plane(clock):
    p = planes_of(chess.Board(f"8/8/4k3/8/8/3K4/3R4/8 w - - {clock} 60"))
    assert np.allclose(p[FIFTY], clock / 100.0)


def test_colour_and_ones_planes():
    assert np.all(planes_of(chess.Board())[BLACK_TO_MOVE] == 0)
    assert np.all(planes_of(chess.Board("8/8/4k3/8/8/3K4/8/8 b - - 0 1"))[BLACK_TO_MOVE] == 1)
    assert np.all(planes_of(chess.Board("8/8/4k3/8/8/3K4/8/8 b - - 0 1"))[ONES] == 1)


@pytest.mark.parametrize("reps, one, two", [(0, 0, 0), (1, 1, 0), (2, 1, 1), (5, 1, 1)])
def test_repetition_planes(reps, one, two):
    for board in (chess.Board(), chess.Board("8/8/4k3/8/8/3K4/3R4/8 b - - 0 1")):
        p = planes_of(board, reps)
        assert np.all(p[REP1] == one) and np.all(p[REP2] == two)
        # the repetition count does not leak into the colour plane
        assert np.all(p[BLACK_TO_MOVE] == (0 if board.turn else 1))


def test_batched_planes_equal_single_rows():
    rng = random.Random(3)
    boards = [b.copy() for b in random_playout(rng, max_plies=40)]
    reps = [i % 3 for i in range(len(boards))]
    batch = encode_boards(boards, reps)
    for i, (b, r) in enumerate(zip(boards, reps)):
        assert np.array_equal(batch[i], planes_of(b, r))


def test_legal_mask_counts_equal_legal_moves():
    rng = random.Random(11)
    boards = []
    for fen in (chess.STARTING_FEN, PROMOTION_START, "r3k2r/pppppppp/8/8/8/8/PPPPPPPP/R3K2R w KQkq - 0 1"):
        boards += [b.copy() for b in random_playout(rng, fen, max_plies=60)]
    mask = legal_mask(boards)
    assert mask.shape == (len(boards), POLICY_SIZE) and mask.dtype == bool
    for row, board in zip(mask, boards):
        legal = list(board.legal_moves)
        assert row.sum() == len(legal)
        assert set(np.flatnonzero(row).tolist()) == set(move_indices(legal, board.turn))


def test_encoding_version_is_pinned():
    assert encoding.ENCODING_VERSION == 1
