"""A session started from a stored checkpoint (`init_checkpoint_id`) through the real
orchestrator and an inline worker (the app's lifespan, the API, storage on SQLite and
PostgreSQL): its generation 0 is the stored checkpoint's network, tensor for tensor, not the
generation 0 of its own seed."""

from __future__ import annotations

import pytest
import torch
from api_support import running_api
from safetensors.torch import load as load_safetensors
from support.tiny import TINY
from support.waiting import wait_for_session

from service.engine import network
from service.lifecycle import FINAL
from service.sessions.pool import InlinePool

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(240)]

# TINY with two games in flight of <= 12 plies, each session its own seed, length, learning
# and checkpoints
SHORT = {**TINY, "selfplay_parallel_games": 2, "max_moves_per_game": 12, "gumbel_considered": 2}


async def finished(api, session_id: str) -> dict:
    return await wait_for_session(api.client, session_id, lambda b: b["state"] in FINAL, timeout=180)


async def checkpoints(api, session_id: str) -> list[dict]:
    r = await api.client.get(f"/v1/sessions/{session_id}/checkpoints")
    assert r.status_code == 200, r.text
    return sorted(r.json()["items"], key=lambda c: c["generation"])


async def tensors(api, checkpoint: dict) -> dict[str, torch.Tensor]:
    r = await api.client.get(checkpoint["weights_url"])
    assert r.status_code == 200, r.text
    return load_safetensors(r.content)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


async def test_a_session_from_init_checkpoint_starts_from_its_weights(database, tmp_path):
    async with running_api(
        database, tmp_path, orchestrator_factory=None, pool=InlinePool(1, 1), max_concurrent_sessions=1
    ) as api:
        # a source session that learns, so its last checkpoint is no seed's generation 0
        r = await api.client.post(
            "/v1/sessions",
            json={
                **SHORT,
                "seed": 3,
                "max_games": 2,
                "min_games_before_learning": 1,
                "learn_every_n_games": 1,
                "checkpoint_interval": 2,
            },
        )
        assert r.status_code == 201, r.text
        source_id = r.json()["id"]
        assert (await finished(api, source_id))["state"] == "completed"
        source = (await checkpoints(api, source_id))[-1]
        assert source["generation"] >= 1
        trained = await tensors(api, source)

        seed = 9
        fresh = {k: v.detach().clone() for k, v in network.build_network("tiny", seed).state_dict().items()}
        assert trained.keys() == fresh.keys() and not same(trained, fresh)
        assert not same(trained, await tensors(api, (await checkpoints(api, source_id))[0]))  # it learned

        # the new session, with another seed, from the source's last checkpoint
        r = await api.client.post(
            "/v1/sessions",
            json={
                **SHORT,
                "seed": seed,
                "max_games": 1,
                "min_games_before_learning": 100,
                "checkpoint_interval": 100,
                "init_checkpoint_id": source["id"],
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["init_checkpoint_id"] == source["id"]
        started_id = r.json()["id"]
        assert (await finished(api, started_id))["state"] == "completed"
        gen0 = (await checkpoints(api, started_id))[0]
        assert gen0["generation"] == 0 and gen0["games"] == 0
        start = await tensors(api, gen0)
        assert same(start, trained), [k for k in trained if not torch.equal(start[k], trained[k])]
        assert not same(start, fresh)  # not its own seed's generation 0
