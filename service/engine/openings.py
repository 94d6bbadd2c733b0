"""The evaluation opening suite: named, roughly balanced main lines, written here as UCI
move sequences (no book file copied). Each opening is played twice in an evaluation
match, colours swapped, so the pair cancels most of the opening's bias.

The same suite (or a file of lines) is self-play's book under SELFPLAY_OPENINGS
(`selfplay_openings`): a game's first moves follow a line its own RNG picks, so a
session's games do not all grow from the one initial position."""

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


BOOK = "book"
"""SELFPLAY_OPENINGS value naming the suite above as self-play's book."""

MAX_BOOK_LINES = 100_000
"""Lines read from an openings file at most (a book is small; a huge file is a mistake)."""


def opening_moves(line: str, where: str = "") -> tuple[chess.Move, ...]:
    """The moves of one opening line, UCI or SAN, from the initial position; ValueError
    naming `where` (and no more of the line than the offending token's position) when a
    token is not a legal move."""
    board = chess.Board()
    for n, token in enumerate(line.split(), 1):
        try:
            move = chess.Move.from_uci(token)
            if move not in board.legal_moves:
                raise ValueError
        except ValueError:
            try:
                move = board.parse_san(token)
            except ValueError:
                raise ValueError(f"{where}move {n} is not a legal move (UCI or SAN) there") from None
        board.push(move)
    return tuple(board.move_stack)


def selfplay_openings(spec: str) -> tuple[tuple[chess.Move, ...], ...]:
    """Self-play's start lines (SELFPLAY_OPENINGS): empty for "" (every game starts at the
    initial position), the suite's lines for `book`, else those of a text file at path
    `spec`, one line of moves (UCI or SAN) from the initial position per line (blank lines
    and lines starting with # are skipped). Lines, not FEN positions: a stored game is its
    moves from the initial position, so a start position must be reachable by moves.
    ValueError (saying which line, never its text) on a bad file."""
    spec = spec.strip()
    if not spec:
        return ()
    if spec == BOOK:
        return tuple(opening_moves(moves) for moves in OPENINGS.values())
    try:
        with open(spec, encoding="utf-8") as f:
            lines = [line for _, line in zip(range(MAX_BOOK_LINES + 1), f)]
    except (OSError, UnicodeDecodeError) as exc:
        reason = type(exc).__name__
        raise ValueError(f"expected '{BOOK}', empty, or a readable text file of opening lines ({reason})") from None
    if len(lines) > MAX_BOOK_LINES:
        raise ValueError(f"more than {MAX_BOOK_LINES} lines: a self-play book is small")
    out = []
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(opening_moves(line, f"line {number}: "))
    if not out:
        raise ValueError("the file holds no opening line")
    return tuple(out)
