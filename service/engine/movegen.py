"""python-chess's answers to the search's per-leaf questions, the same answers, sooner.

The search asks three things of every new leaf: whether the side to move has a legal move
(checkmate and stalemate end the game there), whether the material is insufficient, and
whether the position repeats an earlier one. Most leaves are never expanded, so these
checks are much of their cost (issue #25). python-chess answers each in general; each
function here answers the common case from the bitboards and hands the rest to it:

- a legal move: out of check, a knight, bishop, rook or queen that shares no line with its
  king cannot be pinned, so any move it can make is legal (python-chess first computes
  every pin and checker, then tries moves);
- insufficient material: any pawn, rook or queen on the board is enough to mate;
- a repetition: only the last `halfmove_clock` positions can repeat (python-chess's own
  replay stops at the last irreversible move), and only those with the same side to move;
  when none of them has the same occupancy the answer is no (python-chess's first pass
  scans the whole game's).

It also finds a move that checkmates at once (`mating_move`), which the search plays
whatever its few simulations made of it: a mate in one is a proven win (lc0's certainty
propagation at the root); and, for every new leaf, whether its side to move has one
(`has_mate_in_one`, trying checking moves only), so that a move allowing a mate in one is
refuted on its first visit.

python-chess stays the reference: tests/unit/test_movegen.py compares every function with
it on many thousands of positions. `is_repetition` reads `Board._stack` (python-chess's
own record of earlier positions); without it, python-chess answers.
"""

from __future__ import annotations

import chess

# Squares sharing a rank, file or diagonal with each square (on an empty board).
_LINES = [
    chess.BB_RANK_ATTACKS[sq][0] | chess.BB_FILE_ATTACKS[sq][0] | chess.BB_DIAG_ATTACKS[sq][0] for sq in chess.SQUARES
]
_HAS_STACK = hasattr(chess.Board(), "_stack")


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


def is_insufficient_material(board: chess.Board) -> bool:
    """`board.is_insufficient_material()`."""
    if board.pawns | board.rooks | board.queens:
        return False
    return board.is_insufficient_material()


def is_repetition(board: chess.Board, count: int = 2) -> bool:
    """`board.is_repetition(count)`."""
    if count < 2 or not _HAS_STACK:
        return board.is_repetition(count)
    stack = board._stack
    occupied = board.occupied
    # Positions 2, 4, ... plies back (the same side to move), since the last capture or pawn move.
    for back in range(2, min(board.halfmove_clock, len(stack)) + 1, 2):
        if stack[-back].occupied == occupied:
            return board.is_repetition(count)
    return False


def mating_move(board: chess.Board, moves: list[chess.Move]) -> int | None:
    """The index in `moves` (legal moves of `board`) of the first that checkmates at once, or
    None. Only a move that can give check is tried: one that lands on or leaves a square on a
    queen line or a knight jump from the enemy king (direct or discovered check), castling
    (the rook gives the check) or en passant (the captured pawn uncovers a line)."""
    king = board.king(not board.turn)
    if king is None:
        return None
    near = _LINES[king] | chess.BB_KNIGHT_ATTACKS[king]
    squares = chess.BB_SQUARES
    for i, move in enumerate(moves):
        if not (squares[move.to_square] | squares[move.from_square]) & near:
            if not (board.is_castling(move) or board.is_en_passant(move)):
                continue
        if _checkmates(board, move):
            return i
    return None


def _checkmates(board: chess.Board, move: chess.Move) -> bool:
    """Whether `move` (legal, or pseudo-legal: one that leaves its own king in check is no
    mate) checkmates; the board is left as it was."""
    board.push(move)
    try:
        return board.is_check() and not board.was_into_check() and not has_legal_move(board)
    finally:
        board.pop()


def has_mate_in_one(board: chess.Board) -> bool:
    """Whether the side to move can checkmate at once, for a new leaf (mcts): such a node is a
    proven win, so the move that allowed it is a proven loss. Only moves that give check are
    tried, found from the bitboards rather than by generating every legal move: a piece moving
    to a square from which it attacks the enemy king, a pawn promoting near it, or any move of
    a piece that stands between the king and our bishop, rook or queen (a discovered check).
    Castling and en passant mates are not looked for: a mate missed here is left to the
    network, and a move is only counted once it is pushed and found to mate. Pushing is most
    of the cost, so a check is not pushed while the king keeps a flight square nothing attacks."""
    us = board.turn
    king = board.king(not us)
    if king is None:
        return False
    ours = board.occupied_co[us]
    occupied = board.occupied
    diagonal = chess.BB_DIAG_ATTACKS[king][chess.BB_DIAG_MASKS[king] & occupied]
    straight = (
        chess.BB_RANK_ATTACKS[king][chess.BB_RANK_MASKS[king] & occupied]
        | chess.BB_FILE_ATTACKS[king][chess.BB_FILE_MASKS[king] & occupied]
    )
    targets = ~ours & chess.BB_ALL
    moves: list[chess.Move] = []
    for piece, pieces, reach in (
        (chess.KNIGHT, board.knights, chess.BB_KNIGHT_ATTACKS[king]),
        (chess.BISHOP, board.bishops, diagonal),
        (chess.ROOK, board.rooks, straight),
        (chess.QUEEN, board.queens, diagonal | straight),
    ):
        pieces &= ours
        reach &= targets
        if pieces and reach:
            for square in chess.scan_reversed(pieces):
                for to in chess.scan_reversed(_piece_attacks(piece, square, us, occupied) & reach):
                    moves.append(chess.Move(square, to))
    pawns = board.pawns & ours
    if pawns:
        last_rank = chess.BB_RANK_8 if us == chess.WHITE else chess.BB_RANK_1
        near = chess.BB_PAWN_ATTACKS[not us][king] | (last_rank & (diagonal | straight | chess.BB_KNIGHT_ATTACKS[king]))
        moves.extend(board.generate_pseudo_legal_moves(pawns, near & ~ours))
    discoverers = _discoverers(board, king, ours, diagonal, straight)
    if discoverers:
        moves.extend(board.generate_pseudo_legal_moves(discoverers, chess.BB_ALL))
    flights = _safe_flights(board, king, us, occupied) if moves else []
    for move in moves:
        if board.is_castling(move) or (flights and _escapes(board, move, king, us, occupied, flights)):
            continue
        if _checkmates(board, move):
            return True
    return False


def _discoverers(board: chess.Board, king: chess.Square, ours: int, diagonal: int, straight: int) -> int:
    """Our pieces whose move off the king's line uncovers our bishop, rook or queen behind them."""
    blockers = ours & (diagonal | straight)
    if not blockers:
        return 0
    rest = board.occupied & ~blockers
    sliders = chess.BB_DIAG_ATTACKS[king][chess.BB_DIAG_MASKS[king] & rest] & (board.bishops | board.queens) & ours
    sliders |= (
        (
            chess.BB_RANK_ATTACKS[king][chess.BB_RANK_MASKS[king] & rest]
            | chess.BB_FILE_ATTACKS[king][chess.BB_FILE_MASKS[king] & rest]
        )
        & (board.rooks | board.queens)
        & ours
    )
    found = 0
    for slider in chess.scan_forward(sliders & ~(diagonal | straight)):
        found |= chess.between(king, slider) & blockers
    return found


def _safe_flights(board: chess.Board, king: chess.Square, us: chess.Color, occupied: int) -> list[chess.Square]:
    """The enemy king's flight squares that none of our pieces attacks (seen through the king)."""
    through = occupied & ~chess.BB_SQUARES[king]
    free = chess.BB_KING_ATTACKS[king] & ~board.occupied_co[not us]
    return [s for s in chess.scan_reversed(free) if not board.attackers_mask(us, s, through)]


def _escapes(
    board: chess.Board, move: chess.Move, king: chess.Square, us: chess.Color, occupied: int, flights: list[int]
) -> bool:
    """Whether, after `move`, the enemy king still has one of `flights` that nothing attacks:
    then `move` cannot mate. The moved piece's new attacks count, and a line our piece opens by
    leaving its square is recomputed; anything else (an en passant capture) may answer wrongly
    only towards "escapes", which leaves a mate to the network, never claims one."""
    start, to = move.from_square, move.to_square
    after = (occupied & ~chess.BB_SQUARES[start] & ~chess.BB_SQUARES[king]) | chess.BB_SQUARES[to]
    reach = _piece_attacks(move.promotion or board.piece_type_at(start) or chess.PAWN, to, us, after)
    for square in flights:
        if reach & chess.BB_SQUARES[square]:
            continue
        if chess.BB_RAYS[square][start] and board.attackers_mask(us, square, after) & ~chess.BB_SQUARES[start]:
            continue
        return True
    return False


def _piece_attacks(piece: chess.PieceType, square: chess.Square, color: chess.Color, occupied: int) -> int:
    """The squares a `piece` of `color` on `square` attacks, with `occupied` blocking its lines."""
    if piece == chess.KNIGHT:
        return chess.BB_KNIGHT_ATTACKS[square]
    if piece == chess.PAWN:
        return chess.BB_PAWN_ATTACKS[color][square]
    if piece == chess.KING:
        return chess.BB_KING_ATTACKS[square]
    reach = 0
    if piece in (chess.BISHOP, chess.QUEEN):
        reach |= chess.BB_DIAG_ATTACKS[square][chess.BB_DIAG_MASKS[square] & occupied]
    if piece in (chess.ROOK, chess.QUEEN):
        reach |= (
            chess.BB_RANK_ATTACKS[square][chess.BB_RANK_MASKS[square] & occupied]
            | chess.BB_FILE_ATTACKS[square][chess.BB_FILE_MASKS[square] & occupied]
        )
    return reach
