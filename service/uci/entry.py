"""The learned engine as a UCI engine: `continuous-play uci --checkpoint FILE`
(or `python -m service.uci --checkpoint FILE`), for any chess GUI, cutechess or lichess-bot.

The entry points: `main` (behind `continuous-play uci`) names the engine from the weights
file's header and hands `UciEngine` a loader of its network; `cli` is `python -m service.uci`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from ..engine.inference import InferenceBackend, unavailable
from ..engine.weights_header import peek_header
from .engine import UciEngine
from .protocol import DEFAULT_SIMULATIONS, ENGINE_NAME, package_version
from .search import LEAVES_PER_STEP


def main(
    checkpoint: Path | str | None = None,
    *,
    seed: int = 0,
    preset: str = "small",
    simulations: int = DEFAULT_SIMULATIONS,
    threads: int | None = None,
    algorithm: str = "gumbel",
    device: str = "cpu",
    backend: str = "torch",
    probe_dir: Path | str | None = None,
    input: TextIO | None = None,
    output: TextIO | None = None,
) -> int:
    """Speak UCI on `input`/`output` (stdin/stdout) with the network of `checkpoint`, or without
    one generation 0 of `seed` (`preset`, CHESS_PRESET), run by inference `backend` (`auto`: the
    fastest at the engine's batch, probed once and cached in `probe_dir`). Returns the
    exit status: 0, or 2 when the network cannot be loaded or the backend cannot run here (one
    line on stderr naming why)."""
    output = output if output is not None else sys.stdout
    reason = unavailable(InferenceBackend(backend), device)
    if reason is not None:
        print(f"continuous-play uci: backend {backend}: {reason}", file=sys.stderr, flush=True)
        return 2
    version = package_version()
    if checkpoint is not None:
        try:
            header = peek_header(checkpoint)
        except ValueError as exc:
            print(f"continuous-play uci: {exc}", file=sys.stderr, flush=True)
            return 2
        name = (
            f"{ENGINE_NAME} {version} {header.get('preset', '?')} "
            f"gen {header.get('generation', '?')} seed {header.get('seed', '?')}"
        )
    else:
        name = f"{ENGINE_NAME} {version} {preset} gen 0 seed {seed}"

    def load():
        import torch

        from ..engine import inference, network

        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or torch has already run
            pass
        if checkpoint is not None:
            net, _ = network.load_weights(checkpoint, device)
        else:
            net = network.build_network(preset, seed).to(device)
        chosen = inference.choose(
            backend, net.preset, batch=LEAVES_PER_STEP, device=device, threads=threads, cache_dir=probe_dir
        )
        return inference.make(net, chosen.backend, device)

    engine = UciEngine(
        load, output=output, simulations=simulations, threads=threads, algorithm=algorithm, name=name, seed=seed
    )
    return engine.run(input)


def cli(argv: list[str] | None = None) -> int:
    """`python -m service.uci [--checkpoint FILE] [--seed N] [--preset P] ...`"""
    parser = argparse.ArgumentParser(prog="python -m service.uci", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="weights file (safetensors); default: generation 0 of --seed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generation-0 net without --checkpoint")
    parser.add_argument(
        "--preset",
        default="small",
        choices=("tiny", "small", "medium", "large"),
        help="network preset without --checkpoint",
    )
    parser.add_argument(
        "--simulations", type=int, default=DEFAULT_SIMULATIONS, help="default of the Simulations option"
    )
    parser.add_argument("--threads", type=int, default=None, help="default of the Threads option (torch threads)")
    parser.add_argument("--algorithm", default="gumbel", choices=("gumbel", "puct"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "torch-bf16", "onnxruntime"),
        help="the network's runtime (README: Inference backends)",
    )
    args = parser.parse_args(argv)
    return main(
        args.checkpoint,
        seed=args.seed,
        preset=args.preset,
        simulations=args.simulations,
        threads=args.threads,
        algorithm=args.algorithm,
        device=args.device,
        backend=args.backend,
    )
