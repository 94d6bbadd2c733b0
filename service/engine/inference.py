"""The network's inference backends behind one interface, and `auto`'s choice among them.

The search calls `evaluate(planes)` once per step; on a CPU that call is the wall, so its
runtime is chosen by measurement (`INFERENCE_BACKEND`, one of `InferenceBackend`):

- `torch`: the BatchNorm-folded, channels-last float32 snapshot (`network.Evaluator`);
- `torch-bf16`: the same snapshot in bfloat16, where the CPU computes bfloat16 natively
  (AVX-512 BF16 / AMX: ~2x float32 on the 2-core CPU here) or the GPU supports it;
- `onnxruntime`: the net's ONNX graph (`onnx_export`) in ONNX Runtime, float32, one session
  tuned for the role (intra-op threads = the role's torch threads, sequential execution, every
  graph optimisation; the CUDA provider for DEVICE=cuda where it is installed);
- `auto` (the default): the fastest of the available ones at the session's self-play batch,
  timed by `probe` (a few tenths of a second per backend) and kept in a JSON file keyed by the
  CPU, preset, batch, threads and library versions, so restarts and actors do not probe again.

Measured and left out (README "Inference backends"): int8 through ONNX Runtime's static QDQ
quantization was as fast as bf16 but lost the best move on ~2% of positions, and re-quantizing
at each refresh needs a calibration run; in ONNX Runtime the graph cannot run in bfloat16
(ONNX's Conv takes none at opset 18) and ran no faster in float16 than in float32.

Every backend holds a snapshot of a training net and `refresh()` re-takes it after a learning
phase, cheaply: the ONNX graph is exported once per network shape and process (a "template"),
and a refresh writes the folded weights into its initializers and opens a new session.

torch, onnx and onnxruntime are imported where they are used: config.py imports this module
for the backend names, and the command line must start without loading torch.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from .network import ChessNet, NetConfig


class InferenceBackend(str, Enum):
    """INFERENCE_BACKEND's values: the backends, and `auto` (the fastest measured)."""

    AUTO = "auto"
    TORCH = "torch"
    TORCH_BF16 = "torch-bf16"
    ONNXRUNTIME = "onnxruntime"


BACKENDS = (InferenceBackend.TORCH, InferenceBackend.TORCH_BF16, InferenceBackend.ONNXRUNTIME)
"""The concrete backends, in `auto`'s order of preference on a tie."""


@runtime_checkable
class Evaluator(Protocol):
    """What the search needs of a network: planes (B, 22, 8, 8) float32 in; policy logits
    (B, 1858), value P(win) - P(loss) (B,) and WDL probabilities (B, 3) out, float32.
    `network.Evaluator`, every backend here and `mcts.UniformEvaluator` fit it."""

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batched network call."""
        ...


@runtime_checkable
class SnapshotEvaluator(Evaluator, Protocol):
    """A backend: an `Evaluator` over a snapshot of a training net, re-taken by `refresh()`
    after the net's weights changed; `backend` is its INFERENCE_BACKEND name."""

    backend: str

    def refresh(self) -> None:
        """Re-take the snapshot from the training net."""
        ...


# -- availability -------------------------------------------------------------------------------


def unavailable(backend: InferenceBackend, device: str = "cpu") -> str | None:
    """Why `backend` cannot run on `device` here (one phrase), or None when it can."""
    if backend in (InferenceBackend.AUTO, InferenceBackend.TORCH):
        return None
    import torch

    if backend is InferenceBackend.TORCH_BF16:
        if device == "cuda":
            return None if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no bfloat16 GPU"
        # oneDNN also runs bfloat16 on plain AVX-512 by emulation, slower than float32: native only.
        if not torch.backends.mkldnn.is_available() or not _cpu_info()[1] & {"avx512_bf16", "amx_bf16"}:
            return "this CPU has no native bfloat16 (AVX-512 BF16 or AMX)"
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDA provider here (pip install onnxruntime-gpu)"
    return None


def available(device: str = "cpu") -> list[InferenceBackend]:
    """The concrete backends that run on `device` on this machine."""
    return [b for b in BACKENDS if unavailable(b, device) is None]


def runnable(backend: InferenceBackend | str, device: str = "cpu") -> InferenceBackend:
    """`backend` where it runs on `device` here, else torch: what a role builds from a config
    whose `auto` its learner resolved (`choose`), on a machine that may not be the learner's
    (a Ray node with another CPU); an unresolved `auto` is torch too."""
    backend = InferenceBackend(backend)
    if backend is InferenceBackend.AUTO or unavailable(backend, device) is not None:
        return InferenceBackend.TORCH
    return backend


def make(
    net: ChessNet, backend: InferenceBackend | str, device: str = "cpu", threads: int | None = None
) -> SnapshotEvaluator:
    """A `backend` evaluator over `net` (`auto` must be resolved first: `choose`). `threads`:
    ONNX Runtime's intra-op threads (default: torch's, as the role set them)."""
    backend = InferenceBackend(backend)
    if backend is InferenceBackend.AUTO:
        raise ValueError("INFERENCE_BACKEND=auto is resolved by inference.choose before evaluators are built")
    reason = unavailable(backend, device)
    if reason is not None:
        raise ValueError(f"INFERENCE_BACKEND={backend.value} cannot run on {device}: {reason}")
    if backend is InferenceBackend.ONNXRUNTIME:
        return OnnxRuntimeEvaluator(net, device, threads)
    from .network import Evaluator as TorchEvaluator

    return TorchEvaluator(net, device, bf16=backend is InferenceBackend.TORCH_BF16)


# -- ONNX Runtime ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _template(config: NetConfig, preset: str) -> bytes:
    """The ONNX graph of a `config` net, exported once per process and shape; its weights are
    placeholders that every `OnnxRuntimeEvaluator` overwrites.

    The placeholder net has random BatchNorm statistics and affine terms: the exporter drops a
    folded convolution's bias that is all zeros (as generation 0's is), and a graph without it
    could not take a trained net's biases."""
    import torch

    from .network import ChessNet
    from .onnx_export import onnx_bytes

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        structure = ChessNet(config, preset)
        for bn in (m for m in structure.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            ranges = ((bn.running_mean, -1.0), (bn.running_var, 0.5), (bn.weight, 0.5), (bn.bias, -0.5))
            for tensor, low in ranges:
                assert tensor is not None  # tracked statistics and affine terms: ChessNet's BatchNorms have both
                tensor.uniform_(low, low + 1.5)
    return onnx_bytes(structure.eval(), {"preset": preset})


class OnnxRuntimeEvaluator:
    """The `onnxruntime` backend: the folded net's ONNX graph in one ONNX Runtime session.

    `refresh()` parses the template graph, writes the folded weights into its initializers
    (named as the folded state dict's entries, under the export's `net.` prefix) and opens a
    new session on it: ~15-35 ms for tiny/small where a fresh export takes seconds. The parsed
    model is dropped each time: protobuf keeps a message's replaced fields in its arena until
    the whole message goes, so one long-lived model grew by its size at every refresh."""

    backend = InferenceBackend.ONNXRUNTIME.value

    def __init__(self, net: ChessNet, device: str = "cpu", threads: int | None = None) -> None:
        import onnx
        import onnxruntime as ort
        import torch

        self.net = net
        self.device = device
        self._template = _template(net.config, net.preset)
        found = {
            init.name: (slot, tuple(init.dims))
            for slot, init in enumerate(onnx.load_from_string(self._template).graph.initializer)
        }
        self._slots: dict[str, int] = {}  # folded state dict key -> its initializer's index
        for key, tensor in _folded_state(net).items():
            slot, dims = found.get(f"net.{key}", (-1, None))
            if dims != tuple(tensor.shape):
                raise RuntimeError(f"the exported ONNX graph has no initializer for {key} {tuple(tensor.shape)}")
            self._slots[key] = slot
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: its warnings are about the runtime, not the net
        self._options = options
        self._providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self._session: Any = None
        self.refresh()

    def refresh(self) -> None:
        """Re-take the snapshot: the folded weights into a fresh copy of the graph, a new session on it."""
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        model = onnx.load_from_string(self._template)
        initializers = model.graph.initializer
        for key, tensor in _folded_state(self.net).items():
            slot = self._slots[key]
            initializers[slot].CopyFrom(numpy_helper.from_array(tensor, initializers[slot].name))
        data = model.SerializeToString()
        del model
        self._session = None  # the old session's memory goes before the new one's arrives
        self._session = ort.InferenceSession(data, self._options, providers=self._providers)

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, 22, 8, 8) float32 -> logits (B, 1858), value (B,), WDL probs (B, 3)."""
        x = np.ascontiguousarray(planes, dtype=np.float32)
        logits, wdl, value = self._session.run(None, {"planes": x})
        return logits, value, wdl


def _folded_state(net: ChessNet) -> dict[str, np.ndarray]:
    """The inference snapshot's weights (BatchNorm folded) as float32 numpy arrays."""
    from .network import fold_batchnorm

    return {k: v.detach().to("cpu").float().numpy() for k, v in fold_batchnorm(net).state_dict().items()}


# -- auto: probe and cache -------------------------------------------------------------------------

PROBE_FILE = "inference-probe.json"
"""The probe cache's file name, in the folder the caller gives (the service's CHECKPOINT_DIR)."""
PROBE_SECONDS = 0.25
"""Timed seconds per backend in a probe (after construction and two warm-up calls)."""


class ChoiceSource(str, Enum):
    """How a session's backend was chosen (its stats' and manifest's `inference.source`)."""

    SETTING = "setting"  # INFERENCE_BACKEND named it
    ONLY = "only"  # auto, with one backend able to run here
    PROBE = "probe"  # auto, timed now
    CACHE = "cache"  # auto, timed before on this machine (the probe file)


@dataclass(frozen=True)
class Choice:
    """The backend a session runs, and how it was chosen: `requested` (what the setting said),
    `source`, and the probe's positions/s per backend (empty without one)."""

    backend: InferenceBackend
    requested: InferenceBackend
    source: ChoiceSource
    positions_per_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for stats and the report's manifest."""
        return {
            "backend": self.backend.value,
            "requested": self.requested.value,
            "source": self.source.value,
            "positions_per_s": self.positions_per_s,
        }


def probe(
    net: ChessNet,
    backends: list[InferenceBackend],
    *,
    batch: int,
    device: str = "cpu",
    threads: int | None = None,
    seconds: float = PROBE_SECONDS,
) -> dict[str, float]:
    """Positions/s of each backend on `net` at `batch` (random 0/1 planes, seeded): the median
    of a few timed rounds, the backends interleaved so that a neighbour's load hits them alike."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        planes = (np.random.default_rng(0).random((batch, 22, 8, 8)) < 0.2).astype(np.float32)
        runners: dict[str, Callable[[], object]] = {}
        for backend in backends:
            evaluator = make(net, backend, device, threads)
            for _ in range(2):  # warm-up: kernels chosen, memory allocated
                evaluator.evaluate(planes)
            runners[backend.value] = functools.partial(evaluator.evaluate, planes)
        rounds = 3
        rates: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(rounds):
            for name, run in runners.items():
                calls, t0 = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - t0) < seconds / rounds or calls == 0:
                    run()
                    calls += 1
                rates[name].append(batch * calls / elapsed)
        return {name: round(statistics.median(r), 1) for name, r in rates.items()}
    finally:
        torch.set_num_threads(previous)


def probe_key(preset: str, batch: int, device: str, threads: int, backends: list[InferenceBackend]) -> str:
    """What a probe's result depends on: the machine, the net, the batch, threads, libraries."""
    versions: dict[str, str | None] = {}
    for name in ("torch", "onnxruntime"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    parts = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "preset": preset,
        "batch": batch,
        "device": device,
        "threads": threads,
        "backends": [b.value for b in backends],
        **versions,
    }
    return json.dumps(parts, sort_keys=True)


def choose(
    requested: InferenceBackend | str,
    preset: str,
    *,
    batch: int,
    device: str = "cpu",
    threads: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Choice:
    """The backend to run: `requested` itself, or for `auto` the fastest available one on a
    `preset` net at `batch` (its weights do not change its speed), read from `cache_dir`'s
    probe file when this machine, preset, batch, threads and libraries were probed before,
    else probed now and written there. On a GPU `auto` keeps torch unless ONNX Runtime's CUDA
    provider is installed."""
    import torch

    from .network import build_network

    requested = InferenceBackend(requested)
    if requested is not InferenceBackend.AUTO:
        return Choice(requested, requested, ChoiceSource.SETTING)
    candidates = available(device)
    if device == "cuda":
        candidates = [b for b in candidates if b is not InferenceBackend.TORCH_BF16]
    if len(candidates) == 1:
        return Choice(candidates[0], requested, ChoiceSource.ONLY)
    threads = threads or torch.get_num_threads()
    key = probe_key(preset, batch, device, threads, candidates)
    path = Path(cache_dir) / PROBE_FILE if cache_dir is not None else None
    entries = _read_cache(path)
    if key in entries:
        rates, source = entries[key], ChoiceSource.CACHE
    else:
        net = build_network(preset, 0).to(device)
        rates, source = probe(net, candidates, batch=batch, device=device, threads=threads), ChoiceSource.PROBE
        if path is not None:
            _write_cache(path, {**entries, key: rates})
    best = max(candidates, key=lambda b: rates.get(b.value, 0.0))  # equals: the first in BACKENDS' order
    return Choice(best, requested, source, rates)


def _read_cache(path: Path | None) -> dict[str, dict[str, float]]:
    """The probe file's entries; an unreadable or foreign file counts as empty."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def _write_cache(path: Path, entries: dict[str, dict[str, float]]) -> None:
    """Replace the probe file atomically; a folder that cannot be written only loses the cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": "continuous-play-probe/1", "entries": entries}, indent=1), "utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


@functools.cache
def _cpu_info() -> tuple[str, frozenset[str]]:
    """The CPU's model name and feature flags (/proc/cpuinfo; the platform's name and no flags
    where there is none)."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in cpuinfo)}
    except OSError:
        return platform.processor() or platform.machine(), frozenset()
    return fields.get("model name") or platform.machine(), frozenset(fields.get("flags", "").split())


def cpu_model() -> str:
    """The CPU's model name and the features that decide the backends' speed (the probe's key)."""
    name, flags = _cpu_info()
    return " ".join([name, *sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni"})])
