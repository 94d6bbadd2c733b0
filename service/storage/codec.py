"""Compact binary encodings of a game's per-ply search targets (pure: no database).

A self-play game records, per searched position, the search's policy over the legal moves
(in python-chess generation order), the root value and whether the move got the full
search budget. They are stored as three small binary columns instead of JSON:

- policies (`encode_policies`): for each ply, in order, one unsigned byte N (the number of
  legal moves: at most 218 in chess, so always < 256) followed by N little-endian float16
  probabilities. A game of 150 plies with ~30 legal moves each takes ~9 KB. The moves
  themselves are not stored: `legal_moves_by_ply` recovers them by replaying the game.
- root values (`encode_values`): one little-endian float16 per ply.
- full-search flags (`encode_flags`): a bitmask, bit i of byte i // 8 (least significant
  first) set when ply i got the full search; the count comes from the values' length.
"""

from __future__ import annotations

from collections.abc import Sequence

import chess
import numpy as np

F16 = np.dtype("<f2")
MAX_LEGAL_MOVES = 255
"""Largest legal-move count one byte can hold (chess needs at most 218)."""


def encode_policies(policies: Sequence[np.ndarray]) -> bytes:
    """Per ply: a uint8 count N, then N little-endian float16 probabilities."""
    out = bytearray()
    for ply, policy in enumerate(policies):
        probs = np.asarray(policy, dtype=F16).ravel()
        if not 0 < probs.size <= MAX_LEGAL_MOVES:
            raise ValueError(f"ply {ply}: a policy needs 1..{MAX_LEGAL_MOVES} entries, got {probs.size}")
        out.append(probs.size)
        out += probs.tobytes()
    return bytes(out)


def decode_policies(blob: bytes) -> list[np.ndarray]:
    """The per-ply float16 arrays of `encode_policies`; ValueError on a truncated blob."""
    view = memoryview(blob)
    out: list[np.ndarray] = []
    pos = 0
    while pos < len(view):
        n = view[pos]
        end = pos + 1 + 2 * n
        if n == 0 or end > len(view):
            raise ValueError(f"corrupt policy blob at byte {pos}")
        out.append(np.frombuffer(view[pos + 1 : end], dtype=F16).copy())
        pos = end
    return out


def encode_values(values: Sequence[float]) -> bytes:
    """Root values as little-endian float16 (about 3 significant digits: plenty for [-1, 1])."""
    return np.asarray(values, dtype=F16).tobytes()


def decode_values(blob: bytes) -> list[float]:
    """The floats of `encode_values`."""
    if len(blob) % 2:
        raise ValueError("corrupt value blob: odd length")
    return np.frombuffer(blob, dtype=F16).astype(float).tolist()


def encode_flags(flags: Sequence[bool]) -> bytes:
    """Booleans as a bitmask: flag i is bit i % 8 (least significant first) of byte i // 8."""
    return np.packbits(np.asarray(flags, dtype=bool), bitorder="little").tobytes()


def decode_flags(blob: bytes, n: int) -> list[bool]:
    """The first `n` flags of `encode_flags`."""
    if n > 8 * len(blob):
        raise ValueError(f"flag blob holds at most {8 * len(blob)} flags, asked for {n}")
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=n, bitorder="little")
    return bits.astype(bool).tolist()


def count_flags(blob: bytes) -> int:
    """How many flags of an `encode_flags` blob are set (e.g. a game's full-search plies)."""
    return int.from_bytes(blob, "little").bit_count()


def legal_moves_by_ply(moves: Sequence[str]) -> list[list[chess.Move]]:
    """Each position's legal moves in python-chess generation order, by replaying `moves` (UCI).

    Returns len(moves) + 1 lists: entry i is the position before ply i, the last one the
    final position (searched too when the game ended by resignation; empty after mate or
    stalemate). Zip it with a game's decoded policies. ValueError on an illegal move.
    """
    board = chess.Board()
    out = [list(board.legal_moves)]
    for ply, uci in enumerate(moves):
        move = chess.Move.from_uci(uci)
        if move not in out[-1]:
            raise ValueError(f"ply {ply}: illegal move {uci} in {board.fen()}")
        board.push(move)
        out.append(list(board.legal_moves))
    return out
