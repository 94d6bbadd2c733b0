"""Policy/value network, its inference wrapper and its weights files.

A plain AlphaZero residual tower over `encoding`'s 22x8x8 planes, with a convolutional
policy head (AlphaZero's 73x8x8 move planes, of which `encoding.POLICY_TO_PLANE` gathers
the 1858 real moves) and a win/draw/loss value head (a WDL head learns draws as draws
instead of averaging them into 0, and gives the search a calibrated value).

Generation 0 of a session is `build_network(preset, SEED)`: sessions with one seed share
it, so their progress can be compared against the same starting point.

Weights are safetensors files whose metadata carries one JSON header (preset,
generation, encoding version, seed, format): a file says what it is and refuses to load
under another input encoding.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .encoding import AZ_PLANES, ENCODING_VERSION, NUM_PLANES, POLICY_SIZE, POLICY_TO_PLANE
from .weights_header import FORMAT, HEADER_KEY


@dataclass(frozen=True)
class NetConfig:
    """Size of the tower (blocks x channels) and of the value head."""

    blocks: int
    channels: int
    value_channels: int = 32
    value_hidden: int = 128


PRESETS: dict[str, NetConfig] = {
    "tiny": NetConfig(2, 32),  # CI
    "small": NetConfig(6, 64),  # CPU default
    "medium": NetConfig(10, 128),
    "large": NetConfig(20, 256),
}


def _conv_bn(c_in: int, c_out: int, k: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    # No conv bias before BatchNorm: the norm's shift replaces it.
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the skip, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(channels, channels, 3)
        self.conv2, self.bn2 = _conv_bn(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(x + y)


class ChessNet(nn.Module):
    """Residual tower -> (policy logits (B, 1858), WDL logits (B, 3)), seen from the side to move."""

    def __init__(self, config: NetConfig, preset: str = "custom") -> None:
        super().__init__()
        self.config = config
        self.preset = preset
        c = config.channels
        self.input_conv, self.input_bn = _conv_bn(NUM_PLANES, c, 3)
        self.tower = nn.Sequential(*[ResidualBlock(c) for _ in range(config.blocks)])
        self.policy_conv, self.policy_bn = _conv_bn(c, c, 3)
        self.policy_out = nn.Conv2d(c, AZ_PLANES, 1, bias=True)
        self.value_conv, self.value_bn = _conv_bn(c, config.value_channels, 1)
        self.value_fc = nn.Linear(config.value_channels * 64, config.value_hidden)
        self.value_out = nn.Linear(config.value_hidden, 3)
        # A constant of the encoding, not a weight: kept out of the saved state dict.
        self.register_buffer("policy_index", torch.as_tensor(POLICY_TO_PLANE, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        policy, wdl, _ = self.heads(x)
        return policy, wdl

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(policy logits, WDL logits, the value head's hidden layer (B, value_hidden)): the
        hidden layer is what a training-only auxiliary head (`training.Trainer`) reads."""
        x = F.relu(self.input_bn(self.input_conv(x)))
        x = self.tower(x)
        p = F.relu(self.policy_bn(self.policy_conv(x)))
        p = self.policy_out(p).flatten(1)  # (B, 73*64): plane*64 + square
        policy = p.index_select(1, self.policy_index)
        v = F.relu(self.value_bn(self.value_conv(x))).flatten(1)
        v = F.relu(self.value_fc(v))
        return policy, self.value_out(v), v


def build_network(preset: str, seed: int) -> ChessNet:
    """Generation 0: `preset`'s net initialised from `seed`, leaving the global torch RNG untouched."""
    if preset not in PRESETS:
        raise ValueError(f"unknown network preset {preset!r}; expected one of {sorted(PRESETS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ChessNet(PRESETS[preset], preset)
    return net.eval()


def parameter_count(net: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in net.parameters())


def fold_batchnorm(net: ChessNet) -> ChessNet:
    """An inference copy of `net` with every BatchNorm folded into the convolution before
    it (the norm becomes Identity): the same function in eval mode, fewer operations."""
    folded = copy.deepcopy(net).eval()
    pairs: list[tuple[nn.Module, str, str]] = [
        (folded, "input_conv", "input_bn"),
        (folded, "policy_conv", "policy_bn"),
        (folded, "value_conv", "value_bn"),
    ]
    pairs += [(block, f"conv{i}", f"bn{i}") for block in folded.tower for i in (1, 2)]
    for owner, conv, bn in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, nn.Identity())
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


class Evaluator:
    """The `torch` and `torch-bf16` inference backends (`inference.py`): planes in, (policy
    logits, value, WDL probs) out, once per search step.

    It evaluates a snapshot of the net, taken at construction and again at `refresh()`,
    so training can go on changing the net while games are played. The snapshot has its
    BatchNorms folded into the convolutions and, on CPU, runs in channels-last layout
    (oneDNN's preferred one): bench/net_throughput.py measured ~1.2-1.5x plain eager on the
    2-core CPU. TorchScript added nothing measurable on top, and a frozen
    `torch.jit.optimize_for_inference` module, ~15% faster still, leaves ~5 MB in
    TorchScript's global compilation unit at every rebuild (after each learning phase:
    ~1 GB per 1,000 games), so it is not used. Outputs match the eager net's within
    ~1e-6 and repeat bit for bit. `optimize=False` keeps the snapshot's plain layout.

    `bf16=True` keeps the snapshot's weights in bfloat16 and feeds it bfloat16 planes (exact:
    they are 0/1 but for the fifty-move plane): on a CPU with AMX or AVX-512 BF16 oneDNN runs
    its convolutions ~2x faster than float32; the outputs come back as float32 within the
    tolerances README's "Inference backends" states.
    """

    def __init__(
        self, net: ChessNet, device: str | torch.device = "cpu", *, optimize: bool = True, bf16: bool = False
    ) -> None:
        self.net = net
        self.device = torch.device(device)
        self.optimize = optimize and self.device.type == "cpu"
        self.backend = "torch-bf16" if bf16 else "torch"
        self.layout = "folded-channels-last" if self.optimize else "folded"
        self._format = torch.channels_last if self.optimize else torch.contiguous_format
        self._dtype = torch.bfloat16 if bf16 else torch.float32
        # Module.to(memory_format=...) is documented and works; torch's overloads of `to` omit it.
        self._model = fold_batchnorm(net).to(self.device, self._dtype, memory_format=self._format)  # type: ignore[call-overload]

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-take the snapshot after the training net's weights changed (copied in place,
        converted to the snapshot's dtype)."""
        current = self._model.state_dict()
        for name, tensor in fold_batchnorm(self.net).state_dict().items():
            current[name].copy_(tensor)

    @torch.inference_mode()
    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, 22, 8, 8) float32 -> logits (B, 1858), value P(win) - P(loss) (B,), WDL probs (B, 3)."""
        x = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))
        x = x.to(self.device, self._dtype, memory_format=self._format)
        policy, wdl = self._model(x)
        # One transfer back: policy logits and WDL probabilities side by side.
        out = torch.cat((policy.float(), torch.softmax(wdl.float(), dim=1)), dim=1).cpu().numpy()
        logits = out[:, :POLICY_SIZE]
        probs = out[:, POLICY_SIZE:]
        value = probs[:, 0] - probs[:, 2]
        return logits, value, probs


def _header(net: ChessNet, generation: int, seed: int, extra: dict | None) -> dict:
    header = dict(extra or {})
    header.update(
        preset=net.preset,
        config=asdict(net.config),
        generation=int(generation),
        encoding_version=ENCODING_VERSION,
        seed=int(seed),
        format=FORMAT,
    )
    return header


def save_weights(
    net: ChessNet, path: str | os.PathLike, *, generation: int, seed: int, extra: dict | None = None
) -> str:
    """Write `net` as safetensors with its JSON header (atomically); returns the file's sha256 hex."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _header(net, generation, seed, extra)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    digests: list[str] = []

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata={HEADER_KEY: json.dumps(header, sort_keys=True)})
        digests.append(hashlib.sha256(tmp.read_bytes()).hexdigest())

    write_durably(path, write)
    return digests[0]


def write_durably(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Create `path` through `write(tmp)` on a temporary file beside it, then fsync the file,
    rename it into place and fsync the folder: once this returns the file survives a power
    cut whole (a checkpoint is recorded in the database only after that), and a crash midway
    leaves the old file or none, never a torn one."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read_header(path: str | os.PathLike) -> dict:
    """The JSON header of a weights file; ValueError if the file is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors weights file: {exc}") from exc
    raw = metadata.get(HEADER_KEY)
    if raw is None:
        raise ValueError(f"{path} is a safetensors file without a {FORMAT} header")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} has a malformed header: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} weights file")
    return header


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[ChessNet, dict]:
    """Rebuild the net a file describes, in eval mode on `device`, and return it with its header."""
    header = read_header(path)
    if header.get("encoding_version") != ENCODING_VERSION:
        raise ValueError(
            f"{path} was trained on input encoding version {header.get('encoding_version')}, "
            f"this engine uses version {ENCODING_VERSION}"
        )
    preset = header.get("preset")
    if "config" in header:
        config = NetConfig(**header["config"])
    elif preset in PRESETS:
        config = PRESETS[preset]
    else:
        raise ValueError(f"{path} names unknown preset {preset!r} and carries no network config")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} has unreadable tensors: {exc}") from exc
    net = ChessNet(config, str(preset))
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not match the {preset!r} network: {exc}") from exc
    return net.to(device).eval(), header
