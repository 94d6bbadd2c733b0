"""How diverse are self-play's openings? Distinct positions at plies 8 and 16 over N games.

Plays `--games` self-play games (default 100) exactly as a session's worker would: the
`SelfPlayConfig` is `worker.selfplay_config` of the session's settings (environment /
`.env`, then `--set`), the temperature is the session's schedule at the session's game
numbers `--first-game`.. (game 1: the schedule's start; past TEMPERATURE_DECAY_GAMES: its
end, where a long session spends nearly all its games), and the network is generation 0
of `--preset` and SEED or `--checkpoint FILE`. Games are cut after the last ply counted
(the plies before are played as in a full game). Prints ONE JSON object: per ply, the
distinct positions (EPD: placement, side to move, castling, en passant) among the games
that reached it, the share of games in the commonest position, the distinct first moves,
and the temperatures used.

    python bench/openings.py --preset small
    python bench/openings.py --preset small --first-game 101 --checkpoint gen40.safetensors
    python bench/openings.py --preset tiny --set SELFPLAY_OPENINGS=book
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import chess

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _shared  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="CHESS_PRESET (default small)")
    parser.add_argument("--games", type=int, default=100, help="games to play (default 100)")
    parser.add_argument(
        "--first-game",
        type=int,
        default=1,
        help="session game number of the first game: sets the temperature and the games' seeds (default 1)",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="a weights file (default: generation 0)")
    parser.add_argument("--plies", default="8,16", help="plies to count positions at (default 8,16)")
    parser.add_argument("--threads", type=int, default=2, help="TORCH_THREADS (default 2)")
    _shared.add_set_option(parser, "FINAL_TEMPERATURE=0.5")
    return parser.parse_args()


def diversity(games: list[list[chess.Move]], plies: list[int], start: chess.Board | None = None) -> dict:
    """Per ply: games that reached it, distinct positions, the commonest position's share."""
    out: dict[str, dict] = {}
    for ply in plies:
        seen: Counter[str] = Counter()
        for moves in games:
            if len(moves) < ply:
                continue
            board = (start or chess.Board()).copy(stack=False)
            for move in moves[:ply]:
                board.push(move)
            seen[board.epd()] += 1
        reached = sum(seen.values())
        out[str(ply)] = {
            "games": reached,
            "distinct_positions": len(seen),
            "commonest_share": round(seen.most_common(1)[0][1] / reached, 3) if reached else None,
        }
    return out


def main() -> None:
    """Arguments, the games, the distinct-position counts, one JSON object. Not split: a straight
    script."""
    args = parse_args()
    plies = sorted({int(p) for p in args.plies.split(",") if p.strip()})
    if not plies or plies[0] < 1 or args.games < 1 or args.first_game < 1:
        _shared.fail("openings.py", "--plies, --games and --first-game must be positive")
    _, config = _shared.session_config("openings.py", args.sets, chess_preset=args.preset, torch_threads=args.threads)

    import torch

    torch.set_num_threads(config.torch_threads or args.threads)
    from service.engine import network, schedules
    from service.engine.selfplay import SelfPlay
    from service.sessions.worker import selfplay_config

    if args.checkpoint is not None:
        net, header = network.load_weights(args.checkpoint)
        generation = header.get("generation")
    else:
        net, generation = network.build_network(config.chess_preset, config.seed), 0
    cfg = replace(selfplay_config(config), max_plies=max(plies[-1], 2))
    selfplay = SelfPlay(
        cfg,
        network.Evaluator(net),
        seed=config.seed,
        first_game=args.first_game,
        temperature_for=lambda n: schedules.temperature(
            config.temperature_schedule,
            n,
            config.initial_temperature,
            config.final_temperature,
            config.temperature_decay_games,
        ),
    )
    selfplay.max_new_games = args.games
    records = []
    t0 = time.perf_counter()
    while len(records) < args.games:
        records.extend(selfplay.step())
    elapsed = time.perf_counter() - t0
    temps = [r.temperature for r in records]
    print(
        json.dumps(
            {
                "preset": config.chess_preset,
                "generation": generation,
                "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                "games": len(records),
                "first_game": args.first_game,
                "temperature": {"min": min(temps), "max": max(temps), "mean": round(sum(temps) / len(temps), 4)},
                "temperature_plies": cfg.temperature_plies,
                "plies": diversity([r.moves for r in records], plies),
                "distinct_first_moves": len({r.moves[0].uci() for r in records if r.moves}),
                "settings": {
                    "seed": config.seed,
                    "search": config.search,
                    "selfplay_simulations": config.selfplay_simulations,
                    "fast_simulations": config.fast_simulations,
                    "full_search_prob": config.full_search_prob,
                    "gumbel_considered": config.gumbel_considered,
                    "temperature_schedule": config.temperature_schedule,
                    "initial_temperature": config.initial_temperature,
                    "final_temperature": config.final_temperature,
                    "temperature_decay_games": config.temperature_decay_games,
                    "sets": args.sets,
                },
                "elapsed_s": round(elapsed, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
