"""selfplay: games in flight, per-ply policy targets, adjudication and PGN (DESIGN.md "Engine").

The search's network is `mcts.UniformEvaluator` (uniform priors, value 0) except where
the tiny real network is named; games are short (a few dozen plies, 2-16 simulations).
"""

import io
import math

import chess
import chess.pgn
import numpy as np
import pytest

from service.engine import mcts
from service.engine.encoding import board_features, move_indices
from service.engine.mcts import SearchConfig, UniformEvaluator
from service.engine.schedules import temperature
from service.engine.selfplay import (
    PIECE_VALUES,
    GameRecord,
    SelfPlay,
    SelfPlayConfig,
    adjudicate,
    game_over,
    material_balance,
)

pytestmark = pytest.mark.unit

TERMINATIONS = {
    "checkmate",
    "stalemate",
    "insufficient_material",
    "fifty_moves",
    "threefold_repetition",
    "move_cap",
    "resignation",
}


def selfplay_config(algorithm: str = "gumbel", **kw) -> SelfPlayConfig:
    base = dict(
        search=SearchConfig(algorithm=algorithm),
        simulations=12,
        fast_simulations=3,
        parallel_games=4,
        max_plies=40,
        temperature_plies=8,
        full_search_prob=0.5,
    )
    base.update(kw)
    return SelfPlayConfig(**base)


def play(cfg: SelfPlayConfig, games: int, *, seed: int = 0, evaluator=None, **kw) -> tuple[SelfPlay, list[GameRecord]]:
    sp = SelfPlay(cfg, evaluator or UniformEvaluator(), seed=seed, **kw)
    sp.max_new_games = games
    records: list[GameRecord] = []
    steps = 0
    while sp.in_flight or sp.max_new_games:
        assert sp.in_flight <= cfg.parallel_games
        records += sp.step()
        steps += 1
        assert steps < 100_000
    return sp, records


def check_record(rec: GameRecord, cfg: SelfPlayConfig) -> chess.Board:
    """Replay `rec` on a fresh board, checking every ply's move and targets; returns the final board."""
    board = chess.Board()
    n = rec.plies
    resigned = rec.termination == "resignation"
    targets = n + 1 if resigned else n  # a resignation records the resigning side's search too
    for name in ("policies", "root_values", "full_search", "move_seconds", "features", "indices"):
        assert len(getattr(rec, name)) == targets, name
    for ply in range(targets):
        legal = list(board.legal_moves)
        assert legal, "a move was played after the game ended"
        policy = rec.policies[ply]
        assert policy.dtype == np.float32
        assert policy.shape == (len(legal),)
        assert np.all(policy >= 0)
        assert math.isclose(float(policy.sum()), 1.0, abs_tol=1e-5)
        assert rec.indices[ply] == move_indices(legal, board.turn)
        assert rec.features[ply] == board_features(board, mcts.repetitions(board))
        assert -1.0 - 1e-6 <= rec.root_values[ply] <= 1.0 + 1e-6
        assert rec.move_seconds[ply] >= 0
        if ply == n:
            break
        move = rec.moves[ply]
        assert move in legal, f"game {rec.number} ply {ply}: {move.uci()} is illegal"
        assert policy[legal.index(move)] > 0, "the move played has no probability in the policy"
        board.push(move)
        if ply + 1 < n:
            assert game_over(board, list(board.legal_moves)) is None, "the game went on after it ended"
    legal = list(board.legal_moves)
    over = game_over(board, legal)
    assert rec.termination in TERMINATIONS
    assert rec.result in ("1-0", "0-1", "1/2-1/2")
    assert rec.material == material_balance(board)
    if rec.termination == "move_cap":
        assert over is None
        assert n == cfg.max_plies
        assert rec.adjudicated
        assert rec.result == adjudicate(board, cfg.adjudication, cfg.adjudication_margin)
    elif resigned:
        assert over is None and not rec.adjudicated
        assert rec.result == ("0-1" if board.turn == chess.WHITE else "1-0")  # the side to move resigned
    else:
        assert not rec.adjudicated
        assert over == (rec.result, rec.termination)
        assert n <= cfg.max_plies
        if rec.termination == "checkmate":
            assert board.is_checkmate()
            assert rec.result == ("0-1" if board.turn == chess.WHITE else "1-0")
        elif rec.termination == "stalemate":
            assert board.is_stalemate()
        elif rec.termination == "insufficient_material":
            assert board.is_insufficient_material()
        elif rec.termination == "fifty_moves":
            assert board.halfmove_clock >= 100
        elif rec.termination == "threefold_repetition":
            assert board.is_repetition(3)
    return board


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_games_are_legal_and_end_properly(algorithm):
    cfg = selfplay_config(algorithm, parallel_games=5, max_plies=50)
    sp, records = play(cfg, 7, seed=1)
    assert len(records) == 7
    assert sorted(r.number for r in records) == list(range(1, 8))
    for rec in records:
        check_record(rec, cfg)
    assert sp.simulations == sum(r.simulations for r in records)
    assert sp.leaves > 0


def test_long_games_end_by_the_rules():
    """Long enough for the search to find mates on its own. (The seeds happen to give a
    stalemate and a threefold repetition too, checked when they occur, not required.)"""
    endings = []
    for algorithm, seed in (("gumbel", 3), ("puct", 1)):
        cfg = selfplay_config(
            algorithm, simulations=8, fast_simulations=2, parallel_games=8, max_plies=200, temperature_plies=200
        )
        _, records = play(cfg, 8, seed=seed)
        for rec in records:
            check_record(rec, cfg)
        endings += [r.termination for r in records]
    assert "checkmate" in endings, endings


def test_game_numbers_are_distinct_and_start_at_first_game():
    cfg = selfplay_config(max_plies=10, parallel_games=3)
    _, records = play(cfg, 5, first_game=41)
    assert sorted(r.number for r in records) == list(range(41, 46))


def test_slots_refill_until_max_new_games():
    cfg = selfplay_config(max_plies=12, parallel_games=3)
    sp = SelfPlay(cfg, UniformEvaluator(), seed=0)
    sp.max_new_games = 5
    sp.step()
    assert sp.in_flight == 3 and sp.max_new_games == 2
    records = []
    while sp.in_flight or sp.max_new_games:
        records += sp.step()
        if sp.max_new_games:  # a finished game's slot is refilled at once
            assert sp.in_flight == 3
    assert len(records) == 5 and sp.max_new_games == 0


def test_playout_cap_randomisation_counts_simulations():
    cfg = selfplay_config(full_search_prob=0.3, max_plies=40, simulations=10, fast_simulations=3)
    _, records = play(cfg, 4, seed=2)
    full = [f for r in records for f in r.full_search]
    assert any(full) and not all(full)
    for rec in records:
        check_record(rec, cfg)
        assert rec.simulations == sum(cfg.simulations if f else cfg.fast_simulations for f in rec.full_search)


def check_samples(rec: GameRecord) -> None:
    samples = rec.samples(0, 3, 0.0)  # horizon 0: every ply learns the game's result
    assert len(samples) == len(rec.full_search) == rec.plies  # every searched ply (no resignation here)
    assert [s.policy_target for s in samples] == rec.full_search
    white_score = {"1-0": 1.0, "0-1": -1.0, "1/2-1/2": 0.0}[rec.result]
    board = chess.Board()
    by_ply = {}
    for ply, move in enumerate(rec.moves):
        by_ply[ply] = white_score if board.turn == chess.WHITE else -white_score
        board.push(move)
    for ply, sample in enumerate(samples):
        assert sample.features == rec.features[ply]
        assert np.array_equal(sample.move_indices, np.asarray(rec.indices[ply]))
        assert np.array_equal(sample.policy, rec.policies[ply])
        assert sample.result == by_ply[ply]
        # the features' colour bit agrees: results alternate with the side to move
        black = bool(sample.features[15] & 256)
        assert sample.result == (-white_score if black else white_score)


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_samples_are_every_ply_from_the_side_to_moves_view(algorithm):
    cfg = selfplay_config(algorithm, full_search_prob=0.4, max_plies=40, parallel_games=4)
    _, records = play(cfg, 6, seed=3)
    assert any(r.result != "1/2-1/2" for r in records), "want a decisive game to check the signs"
    for rec in records:
        check_samples(rec)


def test_full_search_prob_one_makes_every_ply_a_sample():
    cfg = selfplay_config(full_search_prob=1.0, max_plies=20)
    _, records = play(cfg, 4, seed=4)
    for rec in records:
        assert all(rec.full_search)
        assert len(rec.samples(0, 3, 0.0)) == rec.plies
        assert rec.simulations == rec.plies * cfg.simulations
        check_samples(rec)


def test_full_search_prob_zero_gives_value_targets_only():
    cfg = selfplay_config(full_search_prob=0.0, max_plies=12)
    _, records = play(cfg, 2, seed=4)
    for rec in records:
        assert not any(rec.full_search)
        samples = rec.samples(0, 3, 0.0)
        assert len(samples) == rec.plies and not any(s.policy_target for s in samples)


def test_pgn_parses_and_carries_the_tags():
    cfg = selfplay_config(max_plies=30)
    _, records = play(cfg, 4, seed=5)
    for rec in records:
        text = rec.pgn({"Site": "unit-test"})
        game = chess.pgn.read_game(io.StringIO(text))
        assert game is not None and not game.errors
        h = game.headers
        assert h["Result"] == rec.result
        assert h["TerminationDetail"] == rec.termination
        assert h["Termination"] == ("adjudication" if rec.termination == "move_cap" else "normal")
        assert h["Adjudicated"] == ("true" if rec.adjudicated else "false")
        assert h["PlyCount"] == str(rec.plies)
        assert h["Round"] == str(rec.number)
        assert h["Site"] == "unit-test"
        assert list(game.mainline_moves()) == rec.moves


def test_pgn_of_a_checkmate():
    moves = [chess.Move.from_uci(u) for u in ("f2f3", "e7e5", "g2g4", "d8h4")]
    rec = GameRecord(3, moves, "0-1", "checkmate", False, 1.0)
    game = chess.pgn.read_game(io.StringIO(rec.pgn()))
    assert game.headers["Result"] == "0-1"
    assert game.headers["Termination"] == "normal"
    assert game.headers["TerminationDetail"] == "checkmate"
    assert game.headers["Adjudicated"] == "false"
    assert game.end().board().is_checkmate()


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_same_seed_same_games(algorithm):
    cfg = selfplay_config(algorithm, max_plies=30, parallel_games=3)
    _, a = play(cfg, 4, seed=7)
    _, b = play(cfg, 4, seed=7)

    def key(recs):
        return sorted((r.number, [m.uci() for m in r.moves], r.result, r.full_search) for r in recs)

    assert key(a) == key(b)
    for ra, rb in zip(sorted(a, key=lambda r: r.number), sorted(b, key=lambda r: r.number)):
        for pa, pb in zip(ra.policies, rb.policies):
            assert np.array_equal(pa, pb)
    _, c = play(cfg, 4, seed=8)
    assert key(c) != key(a)


def test_same_seed_same_games_with_the_tiny_network():
    network = pytest.importorskip("service.engine.network")
    evaluator = network.Evaluator(network.build_network("tiny", 0))
    cfg = selfplay_config(max_plies=16, parallel_games=3, simulations=8, fast_simulations=2)
    _, a = play(cfg, 3, seed=9, evaluator=evaluator)
    _, b = play(cfg, 3, seed=9, evaluator=evaluator)
    assert sorted((r.number, r.moves) for r in a) == sorted((r.number, r.moves) for r in b)
    for rec in a:
        check_record(rec, cfg)


def argmax_move(rec: GameRecord, ply: int, board: chess.Board) -> chess.Move:
    legal = list(board.legal_moves)
    return legal[int(np.argmax(rec.policies[ply]))]


def temperature_trace(temperature_plies: int, temp: float) -> tuple[int, int, int]:
    """PUCT without noise or FPU reduction over uniform priors: the root's children are in
    generation order and the search's best move is the first most-visited one, so a move
    that is not the policy's (first) argmax must have been sampled.
    Returns (plies before the cut, of which sampled off the argmax, plies after the cut off the argmax)."""
    search = SearchConfig(algorithm="puct", dirichlet_epsilon=0.0, fpu_reduction=0.0)
    cfg = selfplay_config(
        search=search, simulations=8, fast_simulations=8, max_plies=24, temperature_plies=temperature_plies
    )
    _, records = play(cfg, 6, seed=11, temperature_for=lambda n: temp)
    early = early_off = late_off = 0
    for rec in records:
        assert rec.temperature == temp
        board = chess.Board()
        for ply, move in enumerate(rec.moves):
            off = move != argmax_move(rec, ply, board)
            if ply < temperature_plies:
                early += 1
                early_off += off
            else:
                late_off += off
            board.push(move)
    return early, early_off, late_off


def test_temperature_applies_to_the_first_temperature_plies_only():
    early, early_off, late_off = temperature_trace(temperature_plies=8, temp=1.0)
    assert early == 6 * 8
    assert early_off > 0, "no move of the opening plies was sampled"
    assert late_off == 0, "a move after temperature_plies was not the search's best"


def test_zero_temperature_always_takes_the_best_move():
    _, early_off, late_off = temperature_trace(temperature_plies=8, temp=0.0)
    assert early_off == 0 and late_off == 0


def test_temperature_comes_from_the_schedule_by_game_number():
    def schedule(n):
        return temperature("linear_decay", n, 1.0, 0.2, 4)

    cfg = selfplay_config(max_plies=6, parallel_games=2)
    _, records = play(cfg, 6, temperature_for=schedule)
    for rec in records:
        assert rec.temperature == pytest.approx(schedule(rec.started - 1))
    assert {round(r.temperature, 6) for r in records} == {1.0, 0.8, 0.6, 0.4, 0.2}


def test_games_are_numbered_in_the_order_they_finish():
    """Games finish out of order (a game in flight at a stop is dropped): numbered by
    finish, the numbers kept are 1..N whatever was in flight; `started` keeps the start
    number that seeded the game."""
    cfg = selfplay_config(max_plies=30, parallel_games=4)
    _, records = play(cfg, 12)
    assert [r.number for r in records] == list(range(1, len(records) + 1))
    assert sorted(r.started for r in records) == list(range(1, len(records) + 1))
    assert any(r.started != r.number for r in records), "no game finished out of order: the test shows nothing"
    assert all(f'[Round "{r.number}"]' in r.pgn() for r in records)


def test_resignation_when_every_game_may_resign():
    # Uniform evaluator: root values are 0 < 0.5, so the first side to move resigns at once.
    cfg = selfplay_config(resign_threshold=0.5, resign_playout_share=0.0, max_plies=20)
    _, records = play(cfg, 3)
    for rec in records:
        assert rec.termination == "resignation" and rec.result == "0-1" and rec.plies == 0
        check_record(rec, cfg)
        game = chess.pgn.read_game(io.StringIO(rec.pgn()))
        assert game.headers["TerminationDetail"] == "resignation"


def test_played_out_games_measure_false_resignations():
    cfg = selfplay_config(resign_threshold=0.5, resign_playout_share=1.0, max_plies=20)
    _, records = play(cfg, 3)
    for rec in records:
        assert rec.termination != "resignation"
        check_record(rec, cfg)
        # White would have resigned at ply 0: the resignation was false unless White lost
        assert rec.false_resign == (rec.result != "0-1")


# -- adjudication and game end -------------------------------------------------------------


def test_piece_values():
    assert PIECE_VALUES == {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9}


@pytest.mark.parametrize(
    "fen, balance",
    [
        (chess.STARTING_FEN, 0),
        ("4k3/8/8/8/8/8/8/R3K3 w - - 0 1", 5),
        ("r3k3/8/8/8/8/8/8/4K3 w - - 0 1", -5),
        ("4k3/8/8/8/8/8/P7/4K3 b - - 0 1", 1),
        ("4k3/8/8/8/8/8/8/1NB1K3 w - - 0 1", 6),
        ("3qk3/8/8/8/8/8/8/R3K3 w - - 0 1", -4),
        ("rnbqkbnr/pppppppp/8/8/8/8/8/4K3 w kq - 0 1", -39),
    ],
)
def test_material_balance(fen, balance):
    assert material_balance(chess.Board(fen)) == balance


@pytest.mark.parametrize("turn", ["w", "b"])
def test_adjudicate_material(turn):
    white_rook = chess.Board(f"4k3/pppp4/8/8/8/8/PPPP4/R3K3 {turn} - - 0 1")
    black_rook = chess.Board(f"r3k3/pppp4/8/8/8/8/PPPP4/4K3 {turn} - - 0 1")
    white_pawn = chess.Board(f"4k3/ppp5/8/8/8/8/PPPP4/4K3 {turn} - - 0 1")
    black_pawn = chess.Board(f"4k3/pppp4/8/8/8/8/PPP5/4K3 {turn} - - 0 1")
    white_knight = chess.Board(f"4k3/8/8/8/8/8/8/1N2K3 {turn} - - 0 1")
    assert adjudicate(white_rook, "material", 3) == "1-0"
    assert adjudicate(black_rook, "material", 3) == "0-1"
    assert adjudicate(white_pawn, "material", 3) == "1/2-1/2"
    assert adjudicate(black_pawn, "material", 3) == "1/2-1/2"
    assert adjudicate(white_knight, "material", 3) == "1-0"  # a lead of exactly the margin wins
    assert adjudicate(white_knight, "material", 4) == "1/2-1/2"
    assert adjudicate(white_pawn, "material", 1) == "1-0"
    assert adjudicate(chess.Board(), "material", 3) == "1/2-1/2"
    for board in (white_rook, black_rook, white_pawn, white_knight):
        assert adjudicate(board, "none", 3) == "1/2-1/2"


def test_material_adjudication_decides_capped_games():
    cfg = selfplay_config(max_plies=40, adjudication="material", adjudication_margin=1)
    _, records = play(cfg, 4, seed=6)
    capped = [r for r in records if r.termination == "move_cap"]
    assert capped and any(r.result != "1/2-1/2" for r in capped)
    for rec in records:
        check_record(rec, cfg)


def test_no_adjudication_draws_capped_games():
    cfg = selfplay_config(max_plies=30, adjudication="none")
    _, records = play(cfg, 4, seed=6)
    for rec in records:
        check_record(rec, cfg)
        if rec.termination == "move_cap":
            assert rec.result == "1/2-1/2" and rec.adjudicated


def after(*sans: str) -> chess.Board:
    board = chess.Board()
    for san in sans:
        board.push_san(san)
    return board


@pytest.mark.parametrize(
    "board, expected",
    [
        (after("f3", "e5", "g4", "Qh4#"), ("0-1", "checkmate")),
        (after("e4", "e5", "Bc4", "Nc6", "Qh5", "Nf6", "Qxf7#"), ("1-0", "checkmate")),
        (chess.Board("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1"), ("1/2-1/2", "stalemate")),
        (chess.Board("8/8/4k3/8/8/3K4/8/8 w - - 0 1"), ("1/2-1/2", "insufficient_material")),
        (chess.Board("8/8/4k3/8/8/3KB3/8/8 b - - 0 1"), ("1/2-1/2", "insufficient_material")),
        (chess.Board("8/8/4k3/8/8/3K4/3R4/8 w - - 100 80"), ("1/2-1/2", "fifty_moves")),
        (chess.Board("8/8/4k3/8/8/3K4/3R4/8 w - - 99 80"), None),
        (after(*["Nf3", "Nf6", "Ng1", "Ng8"] * 2), ("1/2-1/2", "threefold_repetition")),
        (after(*["Nf3", "Nf6", "Ng1", "Ng8"]), None),
        (chess.Board(), None),
    ],
)
def test_game_over(board, expected):
    assert game_over(board, list(board.legal_moves)) == expected


def test_checkmate_beats_the_fifty_move_rule():
    board = chess.Board("7k/8/6K1/8/8/8/8/R7 w - - 99 80")
    board.push_san("Ra8#")
    assert board.halfmove_clock == 100
    assert game_over(board, list(board.legal_moves)) == ("1-0", "checkmate")


def test_replay_samples_rebuild_exactly_what_the_game_produced():
    """After a restart the buffer is rebuilt from stored moves and policies: same samples."""
    from service.engine.selfplay import replay_samples

    cfg = SelfPlayConfig(simulations=8, fast_simulations=2, full_search_prob=0.5, parallel_games=3, max_plies=40)
    sp = SelfPlay(cfg, UniformEvaluator(), seed=11)
    sp.max_new_games = 3
    records = []
    while sp.in_flight or sp.max_new_games:
        records += sp.step()
    for rec, horizon in zip(records, (0, 6, 12)):
        original = rec.samples(horizon, 2, 0.0)
        rebuilt = replay_samples(
            [m.uci() for m in rec.moves], rec.policies, rec.full_search, rec.result, horizon, 2, 0.0
        )
        assert len(rebuilt) == len(original) > 0
        for a, b in zip(original, rebuilt):
            assert a.features == b.features
            assert list(a.move_indices) == list(b.move_indices)
            np.testing.assert_array_equal(a.policy, b.policy)
            assert a.result == b.result and a.policy_target == b.policy_target


def test_value_targets_are_the_result_from_each_side_to_move():
    from service.engine.selfplay import value_targets

    moves = ["e2e4", "e7e5", "g1f3"]
    assert value_targets(moves, "1-0", 0, 3, 0.0) == [1.0, -1.0, 1.0, -1.0]
    assert value_targets(moves, "0-1", 0, 3, 0.0) == [-1.0, 1.0, -1.0, 1.0]
    assert value_targets(moves, "1/2-1/2", 0, 3, 0.0) == [0.0] * 4
    # no ply is further than 3 from the end
    assert value_targets(moves, "1-0", 3, 3, 0.0) == value_targets(moves, "1-0", 0, 3, 0.0)


def test_value_horizon_adjudicates_by_material_that_many_plies_later():
    """White wins a knight on ply 4 (3xd4 then ...); Black wins the game in the end. With a
    horizon of 2, a position 2 plies before the knight is gone already sees White ahead."""
    from service.engine.selfplay import value_targets

    # 1.e4 Nc6 2.d4 Nxd4 3.Qxd4: Black's knight takes a pawn, White's queen takes the knight
    moves = ["e2e4", "b8c6", "d2d4", "c6d4", "d1d4", "a7a6", "a2a3", "a6a5"]
    balance = [0, 0, 0, 0, -1, 2, 2, 2, 2]  # White's lead after each ply (a knight for a pawn: +2)
    targets = value_targets(moves, "0-1", horizon=2, margin=2, scale=0.0)
    white_view = [t if ply % 2 == 0 else -t for ply, t in enumerate(targets)]
    expected = [1.0 if balance[p + 2] >= 2 else -1.0 if balance[p + 2] <= -2 else 0.0 for p in range(len(moves) - 2)]
    assert white_view[: len(moves) - 2] == expected == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert white_view[len(moves) - 2 :] == [-1.0, -1.0, -1.0]  # the last 2 plies and the end: the result
    assert value_targets(moves, "0-1", horizon=2, margin=3, scale=0.0)[3] == 0.0  # a lead of 2 is no win at margin 3


def test_a_material_scale_grades_the_horizon_target():
    """With a scale, the target is tanh(balance H plies later / scale) instead of win/draw/loss:
    a knight-for-a-pawn lead of 2 is worth tanh(2/5) to White and minus that to Black; the
    last H positions still learn the result, and a scale of 0 is the adjudicated target."""
    import math

    from service.engine.selfplay import value_targets

    moves = ["e2e4", "b8c6", "d2d4", "c6d4", "d1d4", "a7a6", "a2a3", "a6a5"]
    balance = [0, 0, 0, 0, -1, 2, 2, 2, 2]
    targets = value_targets(moves, "0-1", horizon=2, margin=2, scale=5.0)
    for ply in range(len(moves) - 2):
        white = math.tanh(balance[ply + 2] / 5.0)
        assert targets[ply] == pytest.approx(white if ply % 2 == 0 else -white)
    assert targets[2] == pytest.approx(math.tanh(-1 / 5.0)) and targets[3] == pytest.approx(-math.tanh(2 / 5.0))
    assert targets[len(moves) - 2 :] == [-1.0, 1.0, -1.0]  # the result, from each side to move's view
    assert value_targets(moves, "0-1", horizon=2, margin=2, scale=0.0) == value_targets(moves, "0-1", 2, 2, 0.0)
    assert all(-1 < t < 1 for t in value_targets(moves, "1-0", horizon=2, margin=3, scale=0.5)[: len(moves) - 2])
