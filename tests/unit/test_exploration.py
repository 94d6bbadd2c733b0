"""Self-play that explores where it should (issue #24 item 2): temperature sampling among the
searched moves only, root noise on full searches only, start lines from a book
(SELFPLAY_OPENINGS), and replay sampling that favours a window of recent positions growing
with the session (REPLAY_WINDOW_POSITIONS).

The search's network is `mcts.UniformEvaluator` (uniform priors, value 0) unless named.
"""

from __future__ import annotations

import random

import chess
import numpy as np
import pytest

from service.engine import mcts, openings, selfplay
from service.engine.mcts import Search, SearchConfig, UniformEvaluator
from service.engine.replay import ReplayBuffer, Sample, recency_ages, recency_window, window_recency
from service.engine.selfplay import SelfPlay, SelfPlayConfig, replay_samples, sample_move

pytestmark = pytest.mark.unit


def play(cfg: SelfPlayConfig, games: int, *, seed: int = 0, temperature: float = 1.0) -> list[selfplay.GameRecord]:
    sp = SelfPlay(cfg, UniformEvaluator(), seed=seed, temperature_for=lambda n: temperature)
    sp.max_new_games = games
    records: list[selfplay.GameRecord] = []
    while sp.in_flight or sp.max_new_games:
        records += sp.step()
    return sorted(records, key=lambda r: r.started)


def config(**kw) -> SelfPlayConfig:
    base = dict(simulations=8, fast_simulations=3, parallel_games=4, max_plies=12, temperature_plies=12)
    return SelfPlayConfig(**{**base, **kw})


# -- temperature sampling among searched moves ---------------------------------------------


def test_sample_move_never_draws_an_unvisited_move():
    moves = [chess.Move.from_uci(u) for u in ("e2e4", "d2d4", "g1f3", "c2c4")]
    probs = [0.7, 0.1, 0.1, 0.1]  # the likeliest move was never searched
    visits = [0, 3, 1, 0]
    rng = random.Random(0)
    drawn = {sample_move(moves, probs, 1.0, rng, visits).uci() for _ in range(300)}
    assert drawn == {"d2d4", "g1f3"}
    # without visits every move with probability may come (the old rule)
    assert "e2e4" in {sample_move(moves, probs, 1.0, rng).uci() for _ in range(50)}


def test_sample_move_keeps_the_searched_moves_relative_weights():
    moves = [chess.Move.from_uci(u) for u in ("e2e4", "d2d4", "g1f3")]
    rng = random.Random(1)
    draws = [sample_move(moves, [0.5, 0.3, 0.2], 1.0, rng, [0, 4, 4]).uci() for _ in range(4000)]
    share = draws.count("d2d4") / len(draws)
    assert abs(share - 0.6) < 0.04  # 0.3 / (0.3 + 0.2), sd ~0.008


def test_self_play_samples_its_opening_moves_among_the_searched_ones(monkeypatch):
    """Every temperature-sampled move of a Gumbel self-play game is one its root search
    visited: with 3 fast simulations only 3 of the ~20 legal moves are."""
    seen: list[tuple[list[int], chess.Move, list[chess.Move]]] = []
    real = selfplay.sample_move

    def spy(moves, probs, temperature, rng, visits=None):
        move = real(moves, probs, temperature, rng, visits)
        seen.append((list(visits or []), move, list(moves)))
        return move

    monkeypatch.setattr(selfplay, "sample_move", spy)
    play(config(full_search_prob=0.0, search=SearchConfig(gumbel_considered=16)), 4)
    assert len(seen) == 4 * 12
    for visits, move, moves in seen:
        assert sum(1 for n in visits if n) <= 3
        assert visits[moves.index(move)] > 0


class PeakedEvaluator:
    """A fixed, peaked prior (the same logits in every position) and value 0: a stand-in for
    a trained net whose noise-free search plays the same moves every game."""

    def __init__(self) -> None:
        from service.engine.encoding import POLICY_SIZE

        self.logits = (np.random.default_rng(0).normal(size=POLICY_SIZE) * 3).astype(np.float32)

    def evaluate(self, planes: np.ndarray):
        n = planes.shape[0]
        wdl = np.tile(np.array([0.0, 1.0, 0.0], dtype=np.float32), (n, 1))
        return np.tile(self.logits, (n, 1)), np.zeros(n, dtype=np.float32), wdl


def opening_positions(temperature: float, games: int = 24) -> set[str]:
    cfg = config(full_search_prob=0.0, fast_simulations=4, max_plies=4, temperature_plies=4)
    sp = SelfPlay(cfg, PeakedEvaluator(), seed=1, temperature_for=lambda n: temperature)
    sp.max_new_games = games
    ends: set[str] = set()
    while sp.in_flight or sp.max_new_games:
        ends |= {_board(r.moves).epd() for r in sp.step()}
    return ends


def test_the_final_temperature_keeps_a_noise_free_opening_from_being_deterministic():
    """Fast searches carry no noise: with a peaked prior and no temperature every game is the
    same, and the old final temperature (0.1) left them so; the session's final temperature
    (the opening's floor) keeps them apart."""
    from service.config import SessionFields

    floor = SessionFields.model_fields["final_temperature"].default
    assert len(opening_positions(0.0)) == 1
    assert len(opening_positions(0.1)) == 1
    assert len(opening_positions(floor)) >= 4


# -- root noise on full searches only -------------------------------------------------------


def searched(algorithm: str, seed: int, noise: bool) -> tuple[list[chess.Move], list[float], chess.Move]:
    evaluator = pytest.importorskip("service.engine.network")
    net = evaluator.Evaluator(evaluator.build_network("tiny", 0))
    board = chess.Board()
    search = Search(board, SearchConfig(algorithm=algorithm, simulations=8, gumbel_considered=4), random.Random(seed))
    search.start(8, noise=noise)
    mcts.run([search], net)
    moves, probs = search.policy()
    return moves, probs, search.best_move()


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_a_search_without_noise_does_not_depend_on_its_random_stream(algorithm):
    quiet = [searched(algorithm, seed, noise=False) for seed in range(4)]
    assert all(q == quiet[0] for q in quiet)
    noisy = [searched(algorithm, seed, noise=True) for seed in range(4)]
    assert any(n[:2] != noisy[0][:2] for n in noisy)  # the noise does move the search


def test_self_play_puts_noise_on_full_searches_only(monkeypatch):
    started: list[tuple[int, bool]] = []
    real = Search.start

    def spy(self, simulations, *, noise=True):
        started.append((simulations, noise))
        return real(self, simulations, noise=noise)

    monkeypatch.setattr(Search, "start", spy)
    play(config(simulations=6, fast_simulations=2, full_search_prob=0.5), 3)
    assert {(6, True), (2, False)} == set(started)


# -- start lines (SELFPLAY_OPENINGS) --------------------------------------------------------


def test_the_book_is_the_opening_suite():
    book = openings.selfplay_openings("book")
    assert len(book) == len(openings.OPENINGS)
    for line, name in zip(book, openings.OPENINGS):
        assert [m.uci() for m in line] == openings.OPENINGS[name].split()
    assert openings.selfplay_openings("") == () == openings.selfplay_openings("  ")


def test_a_book_file_of_uci_and_san_lines(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("# my book\n\ne2e4 e7e5 g1f3\n  d4 Nf6 c4 e6\n")
    book = openings.selfplay_openings(str(path))
    assert [[m.uci() for m in line] for line in book] == [["e2e4", "e7e5", "g1f3"], ["d2d4", "g8f6", "c2c4", "e7e6"]]


@pytest.mark.parametrize(
    "text, says",
    [
        ("e2e4 e7e5\nsecret-text e2e4\n", "line 2: move 1"),
        ("e2e4 e2e4\n", "line 1: move 2"),
        ("# nothing\n\n", "no opening line"),
    ],
)
def test_a_bad_book_file_says_which_line_and_never_its_text(tmp_path, text, says):
    path = tmp_path / "book.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=says) as info:
        openings.selfplay_openings(str(path))
    assert "secret" not in str(info.value)


def test_a_missing_book_file_is_refused():
    with pytest.raises(ValueError, match="readable text file"):
        openings.selfplay_openings("/nonexistent/book.txt")


def test_games_start_from_book_lines_picked_by_their_seed():
    book = openings.selfplay_openings("book")
    cfg = config(openings=book, max_plies=14)
    games = play(cfg, 16, seed=3)
    lines = []
    for rec in games:
        line = next(line for line in book if tuple(rec.moves[: len(line)]) == line)
        lines.append(line)
        # every ply was searched and recorded, the book's included: storage replays the game
        samples = replay_samples([m.uci() for m in rec.moves], rec.policies, rec.full_search, rec.result, 0, 1, 0.0)
        assert len(samples) == len(rec.policies) == rec.plies
        for ply, line_move in enumerate(line):
            assert rec.policies[ply].shape == (len(list(_board(rec.moves[:ply]).legal_moves)),)
            assert rec.moves[ply] == line_move
    assert len(set(lines)) >= 8  # 16 games over 24 lines
    again = play(cfg, 16, seed=3)
    assert [r.moves for r in again] == [r.moves for r in games]
    other = play(cfg, 16, seed=4)
    assert [r.moves[:4] for r in other] != [r.moves[:4] for r in games]


def test_without_a_book_the_game_stream_is_unchanged():
    """An empty book draws nothing from a game's RNG: games are the ones played before books."""
    plain = play(config(), 4, seed=5)
    empty = play(config(openings=()), 4, seed=5)
    assert [r.moves for r in plain] == [r.moves for r in empty]


def _board(moves: list[chess.Move]) -> chess.Board:
    board = chess.Board()
    for move in moves:
        board.push(move)
    return board


# -- recency window (REPLAY_WINDOW_POSITIONS) -----------------------------------------------


def test_the_window_is_everything_up_to_its_start_then_grows_ever_more_slowly():
    assert [recency_window(n, 5000) for n in (0, 100, 5000)] == [0, 100, 5000]
    sizes = [recency_window(n, 5000) for n in (5000, 10_000, 50_000, 200_000, 1_000_000)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)  # grows
    shares = [w / n for w, n in zip(sizes, (5000, 10_000, 50_000, 200_000, 1_000_000))]
    assert shares == sorted(shares, reverse=True) and shares[-1] < 0.2  # ever smaller a share of the data
    # KataGo's slope at the start: 0.4 new window positions per new position
    assert recency_window(5100, 5000) - 5000 == pytest.approx(40, rel=0.02)


def test_window_recency_is_off_for_old_sessions_and_an_empty_buffer():
    assert window_recency(100_000, 50_000, 0) == 0.0
    assert window_recency(0, 0, 5000) == 0.0
    assert window_recency(200_000, 50_000, 5000) == pytest.approx(recency_window(200_000, 5000) / 50_000)


def _tagged(n: int) -> list[Sample]:
    """n samples of one position told apart by the halfmove clock (plane 19 = clock / 100)."""
    from service.engine.encoding import board_features, move_indices

    board = chess.Board()
    base = board_features(board)
    idx = np.asarray(move_indices(list(board.legal_moves), board.turn), dtype=np.int16)
    policy = np.full(len(idx), 1.0 / len(idx), dtype=np.float32)
    return [Sample(base[:14] + (i % 100,) + base[15:], idx, policy, 0.0) for i in range(n)]


def test_the_window_draws_recent_positions_more_often_and_widens_with_the_session():
    rng = np.random.default_rng(0)
    size, start = 50_000, 2_000
    early = recency_ages(rng, size, 20_000, window_recency(60_000, size, start))
    late = recency_ages(rng, size, 20_000, window_recency(200_000, size, start))
    uniform = recency_ages(rng, size, 20_000, window_recency(600_000, size, 0))
    newest_fifth = [float((a < size // 5).mean()) for a in (early, late, uniform)]
    assert newest_fifth[2] == pytest.approx(0.2, abs=0.01)
    assert newest_fifth[0] > newest_fifth[1] > 0.28  # recent positions favoured, less so as the window grows
    assert np.median(late) > np.median(early)


def test_sampling_with_a_window_is_deterministic_under_a_seed():
    a, b = ReplayBuffer(300, seed=4), ReplayBuffer(300, seed=4)
    for buf in (a, b):
        buf.add(_tagged(500))
    r = window_recency(5000, len(a), 20)
    assert r > 0
    np.testing.assert_array_equal(a.sample(64, recency=r).planes, b.sample(64, recency=r).planes)
