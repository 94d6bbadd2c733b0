"""Does the self-play search still teach the policy anything? Its targets against the net's prior.

The learner's policy target is the full search's improved policy (Gumbel: softmax(logits +
sigma(completed Q))). Once the policy has learned its targets, more games add chess only if
a fresh search still moves off the prior, and towards moves a deeper search also prefers;
if it moves off the prior by noise, the learner chases noise. Issue #24's plateau (a `small`
session stops gaining after ~1,000 games) is measured here, on positions of the session's
own self-play games (full-search plies of games its checkpoint started, the nearest
generations first), with fresh searches by the session's full-search settings:

- `kl_target_prior`: KL(target || prior), nats: how far the search moves the policy;
- `kl_target_target`: the symmetric KL between two searches of the same position with
  independent root noise: how much of that move is noise;
- `value_gain`: sum over moves of (target - prior) x the move's completed Q in a reference
  search of `--reference` times the simulations: the value (in [-1, 1] units) the target adds
  over the prior in a deeper search's eyes (> 0: the target moves towards better moves;
  near 0 beside a large KL: it moves, but at random);
- `top1_*`: how often the argmaxes agree (target and prior, two targets, the reference's
  choice and each).

A `--variant` is `SPAN[:C_SCALE][@SIMULATIONS]`: sigma divides Q by max(the children's Q
span, SPAN) (`SearchConfig.q_span_floor`), times `c_scale` C (0.1 today), after a search of S
simulations (the session's by default). `rescale` (SPAN 1e-8, mctx's min-max rescaling) is
today's: the best child gains the whole (c_visit + max visits) x c_scale however close the
values are; `plain` (SPAN 2, the value range) never rescales, so gains follow value gaps;
e.g. `0.2`, `plain:1`, `rescale@64`. The reference is always today's search.
Positions where a move mates at once (a one-hot target by rule) are left out.

    python bench/policy_target.py --folder F [--generations 20,60,100 | --points 3]
        [--positions 300] [--reference 8] [--variant rescale --variant plain] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import chess
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _shared  # noqa: E402  (bench/_shared.py)

from service.engine import mcts, network  # noqa: E402
from service.storage import codec  # noqa: E402

SPANS = {"rescale": 1e-8, "plain": 2.0}
"""Named `--variant` spans: mctx's min-max rescaling, and none (the whole value range)."""


def variant_config(base: mcts.SearchConfig, spec: str) -> mcts.SearchConfig:
    """The search config of a `--variant` (SPAN[:C_SCALE][@SIMULATIONS]); ValueError on a bad one."""
    rest, _, sims = spec.partition("@")
    span, _, scale = rest.partition(":")
    try:
        floor = SPANS[span] if span in SPANS else float(span)
        c_scale = float(scale) if scale else base.c_scale
        simulations = int(sims) if sims else base.simulations
    except ValueError:
        floor = c_scale = simulations = 0
    if not (floor > 0 and c_scale > 0 and simulations > 0):
        raise ValueError(
            f"variant {spec!r}: expected SPAN[:C_SCALE][@SIMULATIONS], positive numbers, SPAN may be {sorted(SPANS)}"
        )
    return replace(base, q_span_floor=floor, c_scale=c_scale, simulations=simulations)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats over one position's moves (q floored at 1e-9)."""
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(np.maximum(q[mask], 1e-9)))))


def searched(boards: list[chess.Board], evaluator, cfg: mcts.SearchConfig, seed: str) -> list:
    """One finished search of `cfg.simulations` per board (root noise on, as self-play's full
    searches), in lock step."""
    searches = [mcts.Search(b.copy(), cfg, random.Random(f"{seed}:{i}")) for i, b in enumerate(boards)]
    for s in searches:
        s.start(cfg.simulations, noise=True)
    mcts.run(searches, evaluator)
    return searches


def distributions(search: mcts.Search) -> tuple[np.ndarray, np.ndarray]:
    """(prior, target) of a finished search over the root's legal moves in generation order."""
    legal, where = search.legal_moves()
    assert search.root is not None and search.root.priors is not None  # a finished search
    _, probs = search.policy()
    prior, target = np.zeros(len(legal)), np.zeros(len(legal))
    prior[where] = search.root.priors
    target[where] = probs
    return prior, target


def completed_q(search: mcts.Search) -> np.ndarray:
    """The root's completed Q (visited: mean value; unvisited: the mixed value) in generation
    order, up to one constant: sigma without rescaling is an affine map of it."""
    root, cfg = search.root, replace(search.cfg, q_span_floor=2.0)
    assert root is not None and root.priors is not None  # a finished search
    legal, where = search.legal_moves()
    sig = mcts._sigma(root, list(range(len(root.moves))), cfg)  # noqa: SLF001  (the engine's own completion)
    q = np.zeros(len(legal))
    q[where] = np.array(sig) * 2 / ((cfg.c_visit + max(root.n)) * cfg.c_scale)
    return q


def measure(
    boards: list[chess.Board], evaluator, base: mcts.SearchConfig, *, variants: list[str], reference: int, seed: int
) -> dict[str, Any]:
    """The module docstring's figures on `boards` for each variant (means over the positions
    where no move mates at once)."""
    ref = searched(boards, evaluator, replace(base, simulations=base.simulations * reference), f"{seed}:ref")
    out: dict[str, Any] = {"simulations": base.simulations, "reference_simulations": base.simulations * reference}
    for name in variants:
        cfg = variant_config(base, name)
        first = searched(boards, evaluator, cfg, f"{seed}:a")
        second = searched(boards, evaluator, cfg, f"{seed}:b")
        rows = []
        for a, b, r in zip(first, second, ref):
            if a.mate is not None:
                continue
            prior, ta = distributions(a)
            _, tb = distributions(b)
            q = completed_q(r)
            best = r.legal_moves()[0].index(r.best_move())  # the reference's choice, generation order
            rows.append(
                (
                    kl(ta, prior),
                    (kl(ta, tb) + kl(tb, ta)) / 2,
                    float((ta - prior) @ q),
                    ta.argmax() == prior.argmax(),
                    ta.argmax() == tb.argmax(),
                    prior.argmax() == best,
                    ta.argmax() == best,
                )
            )
        m = np.array(rows, dtype=float).mean(axis=0) if rows else [None] * 7
        keys = ("kl_target_prior", "kl_target_target", "value_gain")
        keys += ("top1_target_prior", "top1_target_target", "top1_reference_prior", "top1_reference_target")
        out[name] = {"positions": len(rows), **{k: None if v is None else round(float(v), 4) for k, v in zip(keys, m)}}
    return out


async def stored_positions(folder: Path, session_id: str, generation: int, count: int, seed: int) -> list[chess.Board]:
    """`count` full-search positions (with their move stacks) of the session's games, from the
    40 games started by the generations nearest `generation`, drawn evenly by a seeded RNG."""
    from sqlalchemy import func, select

    from service.storage.database import create_engine, session_factory
    from service.storage.models import GameRow

    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'strength.db'}")
    try:
        async with session_factory(engine)() as db:
            rows = await db.execute(
                select(GameRow.moves, GameRow.full_search, GameRow.root_values)
                .where(GameRow.session_id == session_id)
                .order_by(func.abs(GameRow.generation - generation), GameRow.number)
                .limit(40)
            )
            games = rows.all()
    finally:
        await engine.dispose()
    boards: list[chess.Board] = []
    for moves, full_blob, values_blob in games:
        plies = len(values_blob) // 2
        full = codec.decode_flags(full_blob, plies)
        board = chess.Board()
        for ply, uci in enumerate(moves.split()):
            if ply < plies and full[ply]:
                boards.append(board.copy())
            board.push(chess.Move.from_uci(uci))
    random.Random(seed).shuffle(boards)
    return boards[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="a folder kept by bench/strength.py --keep")
    parser.add_argument("--generations", help="comma-separated checkpoints to measure (default: --points of them)")
    parser.add_argument("--points", type=int, default=3, help="evenly spaced checkpoints up to the newest")
    parser.add_argument("--positions", type=int, default=300, help="positions per checkpoint")
    parser.add_argument("--reference", type=int, default=8, help="the reference search's simulations, x the session's")
    parser.add_argument("--variant", action="append", help="SPAN[:C_SCALE][@SIMULATIONS] (default: rescale and plain)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.folder / "strength.db").is_file():
        _shared.fail("policy_target.py", f"no strength.db in {args.folder} (keep one with bench/strength.py --keep)")
    if min(args.points, args.positions, args.reference, args.threads) < 1:
        _shared.fail("policy_target.py", "--points, --positions, --reference and --threads must be at least 1")
    weights, config, session_id = _shared.kept_session(args.folder)
    if config.search != "gumbel":
        _shared.fail("policy_target.py", f"the session searches with {config.search!r}; this bench measures Gumbel's")
    try:
        wanted = [int(g) for g in args.generations.split(",")] if args.generations else None
    except ValueError:
        _shared.fail("policy_target.py", f"--generations takes comma-separated numbers, got {args.generations!r}")
    if wanted is None:
        wanted = _shared.evenly_spaced(max(weights), args.points, set(weights))
    missing = sorted(set(wanted) - set(weights))
    if missing:
        _shared.fail("policy_target.py", f"no checkpoint of generation {missing} in {args.folder}")
    variants = args.variant or ["rescale", "plain"]
    for spec in variants:
        try:
            variant_config(mcts.SearchConfig(), spec)
        except ValueError as exc:
            _shared.fail("policy_target.py", f"--variant: {exc}")
    import torch

    torch.set_num_threads(args.threads)
    base = mcts.SearchConfig(
        algorithm=config.search, simulations=config.selfplay_simulations, gumbel_considered=config.gumbel_considered
    )
    results = []
    for generation in wanted:
        t0 = time.perf_counter()
        boards = asyncio.run(stored_positions(args.folder, session_id, generation, args.positions, args.seed))
        net, _ = network.load_weights(weights[generation])
        row = measure(
            boards,
            network.Evaluator(net),
            base,
            variants=variants,
            reference=args.reference,
            seed=args.seed,
        )
        results.append({"generation": generation, **row, "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"bench": "policy_target", "folder": str(args.folder), "results": results}, indent=1))


if __name__ == "__main__":
    main()
