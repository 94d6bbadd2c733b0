"""The evaluation opening suite: named, roughly balanced main lines, written here as UCI
move sequences (no book file copied). Each opening is played twice in an evaluation
match, colours swapped, so the pair cancels most of the opening's bias."""

from __future__ import annotations

import chess

OPENINGS: dict[str, str] = {
    "Ruy Lopez, Morphy Defence": "e2e4 e7e5 g1f3 b8c6 f1b5 a7a6",
    "Italian Game, Giuoco Piano": "e2e4 e7e5 g1f3 b8c6 f1c4 f8c5",
    "Two Knights Defence": "e2e4 e7e5 g1f3 b8c6 f1c4 g8f6",
    "Scotch Game": "e2e4 e7e5 g1f3 b8c6 d2d4 e5d4",
    "Petrov Defence": "e2e4 e7e5 g1f3 g8f6",
    "Four Knights Game": "e2e4 e7e5 g1f3 b8c6 b1c3 g8f6",
    "Sicilian, Najdorf": "e2e4 c7c5 g1f3 d7d6 d2d4 c5d4 f3d4 g8f6 b1c3 a7a6",
    "Sicilian, Taimanov": "e2e4 c7c5 g1f3 e7e6 d2d4 c5d4 f3d4 b8c6",
    "Sicilian, Alapin": "e2e4 c7c5 c2c3 g8f6",
    "French, Classical": "e2e4 e7e6 d2d4 d7d5 b1c3 g8f6",
    "French, Advance": "e2e4 e7e6 d2d4 d7d5 e4e5 c7c5",
    "Caro-Kann, Classical": "e2e4 c7c6 d2d4 d7d5 b1c3 d5e4 c3e4 c8f5",
    "Scandinavian": "e2e4 d7d5 e4d5 d8d5 b1c3 d5a5",
    "Pirc Defence": "e2e4 d7d6 d2d4 g8f6 b1c3 g7g6",
    "Queen's Gambit Declined": "d2d4 d7d5 c2c4 e7e6 b1c3 g8f6",
    "Slav Defence": "d2d4 d7d5 c2c4 c7c6 g1f3 g8f6",
    "Queen's Gambit Accepted": "d2d4 d7d5 c2c4 d5c4 g1f3 g8f6",
    "Nimzo-Indian": "d2d4 g8f6 c2c4 e7e6 b1c3 f8b4",
    "Queen's Indian": "d2d4 g8f6 c2c4 e7e6 g1f3 b7b6",
    "King's Indian": "d2d4 g8f6 c2c4 g7g6 b1c3 f8g7 e2e4 d7d6",
    "Grünfeld": "d2d4 g8f6 c2c4 g7g6 b1c3 d7d5",
    "London System": "d2d4 d7d5 c1f4 g8f6 e2e3 e7e6",
    "English, Symmetrical": "c2c4 c7c5 b1c3 b8c6 g2g3 g7g6",
    "Réti Opening": "g1f3 d7d5 c2c4 e7e6 g2g3 g8f6",
}


def opening_board(name: str) -> chess.Board:
    """The position after the named opening's moves (the move stack kept, for repetitions)."""
    board = chess.Board()
    for uci in OPENINGS[name].split():
        board.push_uci(uci)
    return board


def suite(count: int) -> list[str]:
    """`count` opening names, cycling through the suite in a fixed order."""
    names = list(OPENINGS)
    return [names[i % len(names)] for i in range(count)]
