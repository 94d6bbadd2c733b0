"""Board -> input planes and move <-> policy index, vectorised with numpy bitboards.

Everything is seen from the side to move: when Black is to move the board is flipped
vertically (a byte swap of each bitboard) and "us"/"them" swap, so one network plays both
colours. Moves use a compact 1858-entry table as lc0 does: every queen-line and knight
move from every square (queen promotions are the plain pawn move) plus the 66 knight,
bishop and rook under-promotions. The network's convolutional policy head emits
AlphaZero's 73x8x8 planes; `POLICY_TO_PLANE` gathers the 1858 entries from them.

A position is first reduced to a small row of integers (`board_features`, cheap enough
for the search's hot loop); many rows become planes in one numpy call
(`planes_from_features`).
"""

from __future__ import annotations

import chess
import numpy as np

ENCODING_VERSION = 1

NUM_PLANES = 22
"""Our P N B R Q K, their P N B R Q K, repeated once, repeated twice or more, our/their
king-side and queen-side castling (4), en-passant square, fifty-move counter / 100,
Black to move, a plane of ones (marks the board's edge under zero padding)."""

POLICY_SIZE = 1858
AZ_PLANES = 73
"""AlphaZero's move planes: 56 queen-line (8 directions x 7 distances), 8 knight, 9 under-promotions."""

FEATURE_WIDTH = 16
"""Row layout: 12 piece bitboards (us then them), en-passant bitboard, castling bits
(us K, us Q, them K, them Q), halfmove clock, repetitions + 256 * (Black to move)."""

_QUEEN_DIRS = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))  # (rank, file)
_KNIGHT_JUMPS = ((2, 1), (1, 2), (-1, 2), (-2, 1), (-2, -1), (-1, -2), (1, -2), (2, -1))
_UNDER_PIECES = (chess.KNIGHT, chess.BISHOP, chess.ROOK)


def _build_tables() -> tuple[list[tuple[int, int, int | None]], np.ndarray]:
    """All 1858 moves from White's side, and where each sits in the 73x64 AlphaZero planes."""
    moves: list[tuple[int, int, int | None]] = []
    planes: list[int] = []
    for from_sq in range(64):
        rank, file = divmod(from_sq, 8)
        for d, (dr, df) in enumerate(_QUEEN_DIRS):
            for dist in range(1, 8):
                r, f = rank + dr * dist, file + df * dist
                if 0 <= r < 8 and 0 <= f < 8:
                    moves.append((from_sq, r * 8 + f, None))
                    planes.append((d * 7 + dist - 1) * 64 + from_sq)
        for k, (dr, df) in enumerate(_KNIGHT_JUMPS):
            r, f = rank + dr, file + df
            if 0 <= r < 8 and 0 <= f < 8:
                moves.append((from_sq, r * 8 + f, None))
                planes.append((56 + k) * 64 + from_sq)
    for file in range(8):
        from_sq = 48 + file
        for direction, df in enumerate((0, -1, 1)):
            if 0 <= file + df < 8:
                for p, piece in enumerate(_UNDER_PIECES):
                    moves.append((from_sq, 56 + file + df, piece))
                    planes.append((64 + direction * 3 + p) * 64 + from_sq)
    return moves, np.asarray(planes, dtype=np.int64)


POLICY_MOVES, POLICY_TO_PLANE = _build_tables()
"""POLICY_MOVES[i] = (from, to, under-promotion piece or None), from White's side."""
assert len(POLICY_MOVES) == POLICY_SIZE

_PLAIN_INDEX = [-1] * 4096
_UNDER_INDEX: dict[tuple[int, int, int], int] = {}
for _i, (_f, _t, _p) in enumerate(POLICY_MOVES):
    if _p is None:
        _PLAIN_INDEX[_f * 64 + _t] = _i
    else:
        _UNDER_INDEX[(_f, _t, _p)] = _i


def move_index(move: chess.Move, turn: chess.Color) -> int:
    """Policy index of `move` played by `turn` (queen promotions share the plain move's index)."""
    f, t = move.from_square, move.to_square
    if not turn:
        f ^= 56
        t ^= 56
    p = move.promotion
    if p is None or p == chess.QUEEN:
        return _PLAIN_INDEX[f * 64 + t]
    return _UNDER_INDEX[(f, t, p)]


def move_indices(moves: list[chess.Move], turn: chess.Color) -> list[int]:
    """Policy indices of many moves of one side (the search's per-node call)."""
    plain, under = _PLAIN_INDEX, _UNDER_INDEX
    flip = 0 if turn else 56
    out = []
    for m in moves:
        p = m.promotion
        f, t = m.from_square ^ flip, m.to_square ^ flip
        out.append(plain[f * 64 + t] if p is None or p == 5 else under[(f, t, p)])
    return out


def index_to_move(index: int, board: chess.Board) -> chess.Move:
    """The move of `board`'s side to move that `index` stands for (a pawn reaching the last rank promotes to a
    queen)."""
    f, t, p = POLICY_MOVES[index]
    if not board.turn:
        f ^= 56
        t ^= 56
    if p is None and board.piece_type_at(f) == chess.PAWN and chess.square_rank(t) in (0, 7):
        p = chess.QUEEN
    return chess.Move(f, t, p)


_CASTLE_W = (chess.BB_H1, chess.BB_A1)
_CASTLE_B = (chess.BB_H8, chess.BB_A8)


def board_features(board: chess.Board, repetitions: int = 0) -> tuple[int, ...]:
    """The compact row `planes_from_features` turns into planes; `repetitions` counts earlier occurrences."""
    us = board.occupied_co[board.turn]
    them = board.occupied_co[not board.turn]
    p, n, b, r, q, k = board.pawns, board.knights, board.bishops, board.rooks, board.queens, board.kings
    cr = board.castling_rights
    if board.turn:
        castle = (
            bool(cr & _CASTLE_W[0])
            | bool(cr & _CASTLE_W[1]) << 1
            | bool(cr & _CASTLE_B[0]) << 2
            | bool(cr & _CASTLE_B[1]) << 3
        )
        colour = 0
    else:
        castle = (
            bool(cr & _CASTLE_B[0])
            | bool(cr & _CASTLE_B[1]) << 1
            | bool(cr & _CASTLE_W[0]) << 2
            | bool(cr & _CASTLE_W[1]) << 3
        )
        colour = 256
    ep = board.ep_square
    return (
        p & us,
        n & us,
        b & us,
        r & us,
        q & us,
        k & us,
        p & them,
        n & them,
        b & them,
        r & them,
        q & them,
        k & them,
        0 if ep is None else 1 << ep,
        castle,
        board.halfmove_clock,
        min(repetitions, 2) | colour,
    )


def planes_from_features(rows: np.ndarray | list[tuple[int, ...]]) -> np.ndarray:
    """Rows of `board_features` (N x FEATURE_WIDTH, uint64) -> float32 planes (N, NUM_PLANES, 8, 8)."""
    rows = np.asarray(rows, dtype=np.uint64).reshape(-1, FEATURE_WIDTH)
    n = rows.shape[0]
    black = (rows[:, 15] & np.uint64(256)) != 0
    boards = rows[:, :13].copy()
    boards[black] = boards[black].byteswap()  # flip ranks: Black sees the board from its side
    bits = np.unpackbits(boards.view(np.uint8), axis=1, bitorder="little").reshape(n, 13, 64)
    out = np.zeros((n, NUM_PLANES, 64), dtype=np.float32)
    out[:, :12] = bits[:, :12]
    rep = (rows[:, 15] & np.uint64(255)).astype(np.int64)
    out[:, 12] = (rep >= 1)[:, None]
    out[:, 13] = (rep >= 2)[:, None]
    castle = rows[:, 13].astype(np.int64)
    for i in range(4):
        out[:, 14 + i] = ((castle >> i) & 1)[:, None]
    out[:, 18] = bits[:, 12]
    out[:, 19] = (rows[:, 14].astype(np.float32) / 100.0)[:, None]
    out[:, 20] = black[:, None]
    out[:, 21] = 1.0
    return out.reshape(n, NUM_PLANES, 8, 8)


def encode_boards(boards: list[chess.Board], repetitions: list[int] | None = None) -> np.ndarray:
    """Planes for whole boards (convenience for tests, training and players)."""
    reps = repetitions or [0] * len(boards)
    return planes_from_features([board_features(b, r) for b, r in zip(boards, reps)])


def legal_mask(boards: list[chess.Board]) -> np.ndarray:
    """Boolean (N, POLICY_SIZE) mask of each board's legal moves."""
    mask = np.zeros((len(boards), POLICY_SIZE), dtype=bool)
    for i, b in enumerate(boards):
        mask[i, move_indices(list(b.legal_moves), b.turn)] = True
    return mask
