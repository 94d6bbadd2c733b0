"""Refreshing an inference backend after each learning phase leaks nothing: a session
refreshes its evaluators hundreds of times (no timings here: bench/net_throughput.py).

RSS is measured after 20 warm-up refreshes (allocator pools, kernel caches and ONNX Runtime's
arena reach their steady size) and again after 100 more, each with new weights and an
evaluation. Slack: 12 MB, far below what a leak of one snapshot per refresh would add (the
tiny net's folded weights and ONNX graph are ~1.3 MB each: 100 of them ~130 MB).
"""

from __future__ import annotations

import gc

import numpy as np
import psutil
import pytest
import torch

from service.engine import inference, network
from service.engine.inference import BACKENDS

pytestmark = pytest.mark.performance

WARM_UP = 20
REFRESHES = 100
SLACK_MB = 12.0


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.value for b in BACKENDS])
def test_rss_stays_flat_over_100_refreshes(backend):
    reason = inference.unavailable(backend)
    if reason is not None:
        pytest.skip(f"{backend.value}: {reason}")
    net = network.build_network("tiny", seed=0)
    evaluator = inference.make(net, backend)
    planes = (np.random.default_rng(0).random((16, 22, 8, 8)) < 0.2).astype(np.float32)
    process = psutil.Process()

    def learn_and_refresh() -> None:
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(0.999)  # new weights, as a learning phase gives
        evaluator.refresh()
        evaluator.evaluate(planes)

    for _ in range(WARM_UP):
        learn_and_refresh()
    gc.collect()
    before = process.memory_info().rss
    for _ in range(REFRESHES):
        learn_and_refresh()
    gc.collect()
    growth_mb = (process.memory_info().rss - before) / 2**20
    assert growth_mb < SLACK_MB, f"{backend.value}: RSS grew {growth_mb:.1f} MB over {REFRESHES} refreshes"
