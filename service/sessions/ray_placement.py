"""What each role of a session asks a Ray cluster for (WORKER_BACKEND=ray), derived in one place.

- The **learner** runs in a pool actor (`ray_pool.RayPool`: the session's network, optimizer,
  replay buffer, its evaluator process): TORCH_THREADS CPUs, and with DEVICE=cuda one GPU, so
  Ray puts it on a GPU node and makes that GPU visible to it (Ray hides every GPU from an actor
  that asks for none). When the cluster has fewer GPUs than the pool has learners (one
  machine's GPU and MAX_CONCURRENT_SESSIONS=2), each asks for an equal share of them instead,
  as the process backend's learners share the machine's GPU.
- A **self-play actor** (`ray_fleet.RayFleet`) asks for its threads' CPUs and never a GPU: it
  plays on the CPU, and its actors are spread over the nodes (`SPREAD`), so a session's fleet
  uses the cores of several nodes rather than crowding its learner's.
- **Labels**: a node started with `--resources='{"learner": 2}'` takes up to 2 learners, one
  with `{"selfplay": 8}` up to 8 self-play actors. A role asks for one unit of its label only
  when some node of the cluster advertises it, so an unlabelled cluster places the roles by
  CPUs and GPUs alone, and a labelled one keeps each role on its nodes.

Pure: no Ray import, the cluster's advertised resources (`ray.cluster_resources()`) come in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RayRole(StrEnum):
    """A role placed as a Ray actor; its value is also the custom resource that labels its nodes."""

    LEARNER = "learner"
    SELFPLAY = "selfplay"


GPU_SHARE_UNITS = 10_000
"""Ray's precision for fractional resources (1/10000): a share is rounded down to it."""


@dataclass(frozen=True)
class RayPlacement:
    """One role's Ray actor options and the device its network runs on there."""

    num_cpus: int
    num_gpus: float
    device: str
    resources: dict[str, float] = field(default_factory=dict)
    spread: bool = False

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `ActorClass.options(...)`."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.spread:
            options["scheduling_strategy"] = "SPREAD"
        return options


def ray_placement(
    role: RayRole, *, device: str, threads: int, advertised: Mapping[str, float], learners: int = 1
) -> RayPlacement:
    """The placement of one actor of `role` whose network would run on `device` (DEVICE) with
    `threads` torch threads, on a cluster advertising `advertised` (resource -> total), beside
    `learners` learner actors (the pool's size: they share the GPUs when there are fewer)."""
    resources = {role.value: 1.0} if advertised.get(role.value, 0) > 0 else {}
    if role == RayRole.SELFPLAY:
        return RayPlacement(max(1, threads), 0, "cpu", resources, spread=True)
    gpus = 0.0
    if device == "cuda":
        available = advertised.get("GPU", 0.0)
        gpus = 1.0  # none advertised yet: wait for a GPU node rather than run on the CPU
        if 0 < available < learners:
            gpus = max(1, math.floor(available / learners * GPU_SHARE_UNITS)) / GPU_SHARE_UNITS
    return RayPlacement(max(1, threads), gpus, device, resources)


__all__ = ["RayPlacement", "RayRole", "ray_placement"]
