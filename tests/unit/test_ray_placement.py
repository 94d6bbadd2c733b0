"""What a session's roles ask a Ray cluster for: the learner a GPU when DEVICE=cuda (a share of
them when the cluster has fewer than learners), self-play actors CPUs only, spread; node labels
asked for only where the cluster has them."""

from __future__ import annotations

import os

import pytest

from service.config import Settings
from service.sessions.fleet import fleet_layout
from service.sessions.ray_placement import RayPlacement, RayRole, ray_placement

pytestmark = pytest.mark.unit

CPU_CLUSTER = {"CPU": 16.0, "memory": 1e10}
GPU_CLUSTER = {"CPU": 32.0, "GPU": 4.0}


def test_on_the_cpu_nothing_asks_for_a_gpu():
    learner = ray_placement(RayRole.LEARNER, device="cpu", threads=2, advertised=GPU_CLUSTER, learners=2)
    actor = ray_placement(RayRole.SELFPLAY, device="cpu", threads=1, advertised=GPU_CLUSTER)
    assert learner == RayPlacement(num_cpus=2, num_gpus=0, device="cpu")
    assert learner.options() == {"num_cpus": 2, "num_gpus": 0}
    assert actor == RayPlacement(num_cpus=1, num_gpus=0, device="cpu", spread=True)
    assert actor.options() == {"num_cpus": 1, "num_gpus": 0, "scheduling_strategy": "SPREAD"}


@pytest.mark.parametrize(
    ("advertised", "learners", "gpus"),
    [
        (GPU_CLUSTER, 2, 1.0),  # enough GPUs: one each
        (GPU_CLUSTER, 4, 1.0),
        ({"CPU": 16.0, "GPU": 1.0}, 2, 0.5),  # one machine's GPU, two sessions: shared as processes share it
        ({"CPU": 16.0, "GPU": 1.0}, 3, 0.3333),  # rounded down to Ray's precision
        (CPU_CLUSTER, 1, 1.0),  # no GPU yet: wait for a GPU node rather than run on the CPU
    ],
)
def test_with_cuda_the_learner_asks_for_a_gpu_and_actors_for_none(advertised, learners, gpus):
    learner = ray_placement(RayRole.LEARNER, device="cuda", threads=3, advertised=advertised, learners=learners)
    assert (learner.num_cpus, learner.num_gpus, learner.device) == (3, gpus, "cuda")
    assert learner.options()["num_gpus"] == gpus and "scheduling_strategy" not in learner.options()
    actor = ray_placement(RayRole.SELFPLAY, device="cuda", threads=1, advertised=advertised)
    assert (actor.num_gpus, actor.device) == (0, "cpu")  # Ray hides the GPUs from it: it plays on the CPU


def test_node_labels_are_asked_for_only_where_the_cluster_has_them():
    labelled = {**GPU_CLUSTER, "learner": 2.0, "selfplay": 8.0}
    learner = ray_placement(RayRole.LEARNER, device="cuda", threads=2, advertised=labelled)
    actor = ray_placement(RayRole.SELFPLAY, device="cuda", threads=1, advertised=labelled)
    assert learner.options()["resources"] == {"learner": 1.0}
    assert actor.options()["resources"] == {"selfplay": 1.0}
    only_actors = {**CPU_CLUSTER, "selfplay": 4.0}
    learner = ray_placement(RayRole.LEARNER, device="cpu", threads=1, advertised=only_actors)
    actor = ray_placement(RayRole.SELFPLAY, device="cpu", threads=1, advertised=only_actors)
    assert "resources" not in learner.options() and actor.resources == {"selfplay": 1.0}


def test_from_the_settings_and_the_layout(monkeypatch):
    """What the service asks for on a 16-core GPU machine with DEVICE=cuda, two sessions."""
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    settings = Settings(_env_file=None, max_concurrent_sessions=2, device="cuda", selfplay_actors="auto")
    layout = fleet_layout(settings, settings.session_config())
    advertised = {"CPU": 16.0, "GPU": 1.0}
    learner = ray_placement(
        RayRole.LEARNER,
        device=settings.device,
        threads=settings.resolved_torch_threads(),
        advertised=advertised,
        learners=settings.resolved_workers(),
    )
    actor = ray_placement(RayRole.SELFPLAY, device=settings.device, threads=layout.actor_threads, advertised=advertised)
    assert learner.num_gpus == 1 / settings.resolved_workers() and learner.device == "cuda"
    assert layout.actors == 7 and actor.options() == {"num_cpus": 1, "num_gpus": 0, "scheduling_strategy": "SPREAD"}
