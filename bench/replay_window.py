"""How often is each position drawn for training over a session? Uniform sampling against
REPLAY_WINDOW_POSITIONS's growing window, computed exactly (no network, a few seconds).

Replays a session's learning schedule as the worker runs it: every game adds `--plies`
positions to a buffer of REPLAY_BUFFER_POSITIONS; from MIN_GAMES_BEFORE_LEARNING on, every
LEARN_EVERY_N_GAMES games a learning phase draws about TRAIN_SAMPLES_PER_POSITION samples
per new position, each with the buffer's age weights for the recency the worker passes
(`replay.window_recency`). Prints ONE JSON object: per window start (0 = uniform), the
expected draws of a position of the first game (in all, and from game 100 on), of game
50, of the median position and of the position three quarters into the session.

    python bench/replay_window.py --games 600 --plies 120 --windows 0,2000,5000,20000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.config import SessionFields  # noqa: E402
from service.engine.replay import recency_window, window_recency  # noqa: E402
from service.engine.training import steps_for  # noqa: E402


def _default(name: str):
    return SessionFields.model_fields[name].default


def draws(games: int, plies: int, start: int, capacity: int, every: int, first: int, ratio: float, batch: int):
    """Expected training draws of each position of the session, in the order played, by
    the session's end and (second array) from game 100 on."""
    total = games * plies
    out = np.zeros(total)
    late = np.zeros(total)
    new = 0
    for game in range(1, games + 1):
        new += plies
        seen = game * plies
        if game < first or game % every:
            continue
        samples = steps_for(new, ratio, batch) * batch
        new = 0
        size = min(seen, capacity)
        recency = window_recency(seen, size, start)
        ages = np.arange(size)
        if recency == 0:
            weights = np.full(size, 1.0 / size)
        else:
            tau = recency * size
            weights = np.exp(-ages / tau) * -math.expm1(-1 / tau) / -math.expm1(-size / tau)
        out[seen - 1 - ages] += samples * weights
        if game > 100:
            late[seen - 1 - ages] += samples * weights
    return out, late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=600, help="games of the session (default 600: 20 min of small)")
    parser.add_argument("--plies", type=int, default=120, help="searched positions per game (default 120)")
    parser.add_argument("--windows", default="0,2000,5000,20000", help="REPLAY_WINDOW_POSITIONS values to compare")
    args = parser.parse_args()
    capacity = _default("replay_buffer_positions")
    every, first = _default("learn_every_n_games"), _default("min_games_before_learning")
    ratio, batch = _default("train_samples_per_position"), _default("learning_batch_size")
    seen = args.games * args.plies
    rows = {}
    for start in (int(w) for w in args.windows.split(",")):
        d, late = draws(args.games, args.plies, start, capacity, every, first, ratio, batch)
        rows[str(start)] = {
            "window_at_end": round(recency_window(seen, start)) if start else None,
            "first_game": round(float(d[: args.plies].mean()), 2),
            "first_game_after_game_100": round(float(late[: args.plies].mean()), 2),
            "game_50": round(float(d[49 * args.plies : 50 * args.plies].mean()), 2),
            "median_position": round(float(np.median(d)), 2),
            "position_at_three_quarters": round(float(d[3 * seen // 4]), 2),
        }
    print(
        json.dumps(
            {
                "games": args.games,
                "positions": seen,
                "buffer": capacity,
                "train_samples_per_position": ratio,
                "draws_per_position": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
