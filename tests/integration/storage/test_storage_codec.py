"""The compact codec on real self-play games: policies decode onto the legal moves found by
replaying the game, within float16 precision, in a few KB; and through the database."""

from __future__ import annotations

import chess
import numpy as np
import pytest

from service.config import SessionConfig
from service.engine import mcts
from service.engine.encoding import POLICY_SIZE, move_indices
from service.engine.selfplay import GameRecord, SelfPlay, SelfPlayConfig
from service.sessions.worker import game_message
from service.storage import codec
from service.storage import repositories as repo

pytestmark = pytest.mark.integration

F16_RTOL, F16_ATOL = 2.0**-11, 2.0**-24  # float16: 11 significant bits; subnormals step by 2**-24


class NoisyEvaluator:
    """Seeded random logits and values, so the search's policies are far from uniform."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def evaluate(self, planes: np.ndarray):
        n = planes.shape[0]
        value = self.rng.uniform(-0.9, 0.9, n).astype(np.float32)
        wdl = np.stack([(1 + value) / 2, np.zeros(n), (1 - value) / 2], axis=1).astype(np.float32)
        return 3 * self.rng.standard_normal((n, POLICY_SIZE)).astype(np.float32), value, wdl


def play(evaluator, max_plies: int = 30) -> GameRecord:
    """One real self-play game: few simulations, half of the moves with the full search."""
    cfg = SelfPlayConfig(
        search=mcts.SearchConfig(simulations=8, gumbel_considered=4),
        simulations=8,
        fast_simulations=2,
        full_search_prob=0.5,
        parallel_games=1,
        max_plies=max_plies,
    )
    selfplay = SelfPlay(cfg, evaluator, seed=7)
    selfplay.max_new_games = 1
    while not (finished := selfplay.step()):
        pass
    return finished[0]


@pytest.fixture(scope="module", params=["uniform", "noisy"])
def record(request) -> GameRecord:
    """A finished game with the stand-in network (UniformEvaluator) or seeded random logits."""
    return play(mcts.UniformEvaluator() if request.param == "uniform" else NoisyEvaluator(3))


def test_policies_round_trip_onto_the_replayed_legal_moves(record):
    message = game_message(record)
    blob = codec.encode_policies(message["policies"])
    decoded = codec.decode_policies(blob)
    legal = codec.legal_moves_by_ply(message["moves"])
    assert len(legal) == record.plies + 1 and len(decoded) == len(record.policies) == record.plies
    assert [len(p) for p in decoded] == [len(m) for m in legal[: len(decoded)]]
    for got, sent, exact in zip(decoded, message["policies"], record.policies):
        assert got.dtype == np.float16 and np.array_equal(got, sent)
        np.testing.assert_allclose(got.astype(np.float64), exact, rtol=F16_RTOL, atol=F16_ATOL)
    assert len(blob) == sum(1 + 2 * len(p) for p in decoded) < 4096  # 30 plies: a few KB at most
    values = codec.decode_values(codec.encode_values(message["root_values"]))
    np.testing.assert_allclose(values, record.root_values, rtol=F16_RTOL, atol=F16_ATOL)
    flags = codec.encode_flags(message["full_search"])
    assert codec.decode_flags(flags, len(record.full_search)) == record.full_search
    assert codec.count_flags(flags) == sum(record.full_search) and len(flags) == (record.plies + 7) // 8


def test_stored_targets_rebuild_the_replay_samples(record):
    """After a restart the replay buffer is rebuilt from stored games: every ply's move
    indices (from the replayed legal moves), decoded policy and full-search flag match
    `record.samples(...)`."""
    message = game_message(record)
    legal = codec.legal_moves_by_ply(message["moves"])
    policies = codec.decode_policies(codec.encode_policies(message["policies"]))
    flags = codec.decode_flags(codec.encode_flags(message["full_search"]), len(policies))
    rebuilt = [(move_indices(legal[ply], ply % 2 == 0), policies[ply], flags[ply]) for ply in range(len(policies))]
    samples = record.samples(0, 3, 0.0)
    assert len(rebuilt) == len(samples) > 0 and any(s.policy_target for s in samples)
    for (indices, policy, full), sample in zip(rebuilt, samples):
        assert indices == sample.move_indices.tolist() and full == sample.policy_target
        np.testing.assert_allclose(policy.astype(np.float64), sample.policy, rtol=F16_RTOL, atol=F16_ATOL)


def test_a_resigned_game_has_one_more_searched_position():
    moves = ["e2e4", "e7e5", "d1h5", "b8c6"]
    legal = codec.legal_moves_by_ply(moves)
    policies = [np.full(len(m), 1 / len(m), dtype=np.float16) for m in legal]  # plies + 1 entries
    decoded = codec.decode_policies(codec.encode_policies(policies))
    board, counts = chess.Board(), []
    for uci in moves + [None]:
        counts.append(board.legal_moves.count())
        if uci:
            board.push_uci(uci)
    assert [len(p) for p in decoded] == [len(m) for m in legal] == counts


def test_mate_ends_the_replay_with_no_legal_moves():
    assert codec.legal_moves_by_ply("f2f3 e7e5 g2g4 d8h4".split())[-1] == []
    with pytest.raises(ValueError, match="illegal"):
        codec.legal_moves_by_ply(["e2e4", "e2e4"])


def test_malformed_input_is_refused():
    assert codec.encode_policies([]) == b"" and codec.decode_policies(b"") == []
    with pytest.raises(ValueError):
        codec.encode_policies([np.zeros(0)])
    with pytest.raises(ValueError):
        codec.encode_policies([np.zeros(256)])
    blob = codec.encode_policies([np.array([0.25, 0.75])])
    for bad in (blob[:-1], blob + b"\x03\x00", b"\x00"):
        with pytest.raises(ValueError):
            codec.decode_policies(bad)
    with pytest.raises(ValueError):
        codec.decode_values(b"\x00")
    for n in range(18):
        flags = [bool(i % 3) for i in range(n)]
        assert codec.decode_flags(codec.encode_flags(flags), n) == flags
    with pytest.raises(ValueError):
        codec.decode_flags(b"\x01", 9)


@pytest.mark.asyncio
async def test_a_real_game_through_the_database(db_sessions):
    record = play(NoisyEvaluator(5), max_plies=24)
    message = game_message(record)
    async with db_sessions() as db, db.begin():
        sid = (await repo.create_session(db, SessionConfig().model_dump(mode="json"), seed=0)).id
        game_id = (await repo.add_game(db, sid, message)).id
    async with db_sessions() as db:
        game = await repo.get_game(db, game_id)
    legal = codec.legal_moves_by_ply(game.move_list())
    policies = game.policies()
    assert [len(p) for p in policies] == [len(m) for m in legal[: len(policies)]]
    assert all(np.array_equal(a, b) for a, b in zip(policies, message["policies"]))
    assert game.full_search_flags() == record.full_search
    np.testing.assert_allclose(game.values(), record.root_values, rtol=F16_RTOL, atol=F16_ATOL)
    assert len(game.policy) + len(game.root_values) + len(game.full_search) < 4096
