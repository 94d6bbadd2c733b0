"""Evaluation matches: paired openings with colours swapped, legal games, consistent
results and pentanomial counts, searching and instant sides mixed."""

import chess
import pytest

from service.engine import arena, mcts, network
from service.engine.openings import OPENINGS, opening_board
from service.engine.players import GreedyPlayer, RandomPlayer
from service.engine.selfplay import material_balance

pytestmark = pytest.mark.unit


def replay(game: arena.GameOutcome) -> chess.Board:
    board = chess.Board()
    for uci in game.moves:
        move = chess.Move.from_uci(uci)
        assert move in board.legal_moves
        board.push(move)
    return board


def check_match(result: arena.MatchResult, pairs: int, max_plies: int) -> None:
    assert len(result.games) == 2 * pairs
    assert result.wins + result.draws + result.losses == 2 * pairs
    assert sum(result.pentanomial()) == pairs
    for first, second in zip(result.games[::2], result.games[1::2]):
        assert first.opening == second.opening
        assert first.candidate_white and not second.candidate_white
    for game in result.games:
        board = replay(game)
        opening_plies = len(OPENINGS[game.opening].split())
        assert game.moves[:opening_plies] == OPENINGS[game.opening].split()
        if game.termination == "checkmate":
            assert board.is_checkmate()
        elif game.termination == "move_cap":
            assert len(game.moves) - opening_plies == max_plies


def test_instant_players_paired_and_counted():
    result = arena.play_match(GreedyPlayer(1), RandomPlayer(2), pairs=6, max_plies=60)
    check_match(result, 6, 60)
    assert result.wins > result.losses  # material-greedy beats a random mover


def test_searching_candidate_against_random_and_against_another_net():
    candidate = arena.SearchSide(network.Evaluator(network.build_network("tiny", 1)), simulations=8)
    check_match(arena.play_match(candidate, RandomPlayer(3), pairs=2, max_plies=16), 2, 16)
    gen0 = arena.SearchSide(network.Evaluator(network.build_network("tiny", 0)), simulations=8)
    check_match(arena.play_match(candidate, gen0, pairs=2, max_plies=16), 2, 16)


def test_default_rules_are_the_fixed_evaluation_yardstick():
    """Without arguments a match cuts games EVAL_MAX_PLIES plies after the opening and
    adjudicates a material lead of EVAL_ADJUDICATION_MARGIN pawns as a win."""
    assert (arena.EVAL_MAX_PLIES, arena.EVAL_ADJUDICATION_MARGIN) == (150, 3)
    result = arena.play_match(RandomPlayer(4), RandomPlayer(5), pairs=3)
    check_match(result, 3, arena.EVAL_MAX_PLIES)
    capped = [g for g in result.games if g.adjudicated]
    assert capped, "random movers should reach the cap in some game"
    for game in capped:
        balance = material_balance(replay(game))
        expected = "1-0" if balance >= 3 else "0-1" if balance <= -3 else "1/2-1/2"
        assert game.result == expected


def test_the_same_net_on_both_sides_shares_network_calls():
    side = arena.SearchSide(mcts.UniformEvaluator(), simulations=6, algorithm="puct")
    result = arena.play_match(side, side, pairs=2, max_plies=12)
    check_match(result, 2, 12)


def test_pentanomial_counts_pair_scores():
    def outcome(white: bool, result: str) -> arena.GameOutcome:
        return arena.GameOutcome("Petrov Defence", white, result, "checkmate", [])

    games = [
        outcome(True, "1-0"),
        outcome(False, "0-1"),  # WW
        outcome(True, "1-0"),
        outcome(False, "1/2-1/2"),  # WD
        outcome(True, "0-1"),
        outcome(False, "0-1"),  # LW -> 1 point
        outcome(True, "0-1"),
        outcome(False, "1-0"),
    ]  # LL
    assert arena.MatchResult(games).pentanomial() == [1, 0, 1, 1, 1]


def test_every_opening_is_legal():
    for name in OPENINGS:
        assert not opening_board(name).is_game_over()
