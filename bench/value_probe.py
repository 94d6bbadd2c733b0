"""Does a checkpoint's value head know material yet? Its value on fixed positions, by the
material balance of the side to move, and whether it sees a piece left hanging.

Beating the material-greedy anchor needs a value that counts material (bench/search_ceiling.py:
the search with a value that knows material scores 77.5% against greedy at 32 simulations);
this probe says how far a learned value head is from that. Positions come from seeded
random-mover games (so every material balance occurs), the same set for every checkpoint:

- `material_correlation`: Pearson correlation of the value (side to move's view) with the
  material balance (P1 N3 B3 R5 Q9), over positions with at least one side up material;
- `value_by_balance`: mean value per balance bucket (<= -5, -4..-2, -1..+1, +2..+4, >= +5);
- `hanging`: positions where the side to move can capture an undefended piece of value
  >= 3; the value there minus the value of the same position with that capture played
  and the turn handed back; `gap` (after - before) near 0 means the head already credits
  the free piece, a gap as large as the capture's own worth means it only counts material.

Calibration on held-out self-play games (`calibration`): does the predicted WDL match how
games end? Every position of the games (before each move) is evaluated and its WDL set
against the game's result from the side to move (service/stats/calibration.py): log loss
against the constant prior (the games' own W/D/L base rates) and against a material-only
predictor (W/D/L shares per material balance, fitted on the same positions: an optimistic
baseline), Brier score of the expected score, and a calibration table with its ECE. The games
are held out, never trained on by the checkpoint probed:

- with `--database URL --session ID`: the session's games stored after the checkpoint was
  saved (game number above the checkpoint's games), at most `--games` of them, oldest first;
  a checkpoint with none after it (a session's final one) gets no calibration here;
- from `bench/strength.py`: games the final checkpoint plays after the session by the
  session's own self-play code and settings (`play_held_out`), which no learning step saw.

Results of self-play games cut at the move cap are adjudicated (on material by default),
so a value that counts material looks better calibrated than it is on such games; the
figures say how many games ended at the cap (`move_cap_games`).

    python bench/value_probe.py CHECKPOINT [CHECKPOINT ...]   # one JSON object
    python bench/value_probe.py CHECKPOINT --database sqlite+aiosqlite:///data/x.db --session ID
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import sys
from pathlib import Path

import chess
import chess.pgn
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.engine import network, schedules  # noqa: E402
from service.engine.encoding import encode_boards  # noqa: E402
from service.engine.mcts import repetitions  # noqa: E402
from service.engine.players import material_gain  # noqa: E402
from service.engine.selfplay import SelfPlay, material_balance  # noqa: E402
from service.stats import calibration as cal  # noqa: E402

BUCKETS = ((-99, -5), (-4, -2), (-1, 1), (2, 4), (5, 99))


def positions(games: int = 120, seed: int = 0) -> list[chess.Board]:
    """Positions from seeded random games, every 4th ply from ply 8 on."""
    rng = random.Random(seed)
    out = []
    for _ in range(games):
        board = chess.Board()
        while not board.is_game_over() and board.ply() < 160:
            board.push(rng.choice(list(board.legal_moves)))
            if board.ply() >= 8 and board.ply() % 4 == 0 and not board.is_game_over():
                out.append(board.copy())
    return out


def _free_capture(board: chess.Board) -> chess.Move | None:
    """A capture of an undefended piece worth >= 3 that does not leave the king in check."""
    for move in board.legal_moves:
        if material_gain(board, move) >= 3 and not board.is_attacked_by(not board.turn, move.to_square):
            return move
    return None


def values(evaluator: network.Evaluator, boards: list[chess.Board]) -> np.ndarray:
    planes = encode_boards(boards, [repetitions(b) for b in boards])
    out = []
    for i in range(0, len(planes), 256):
        out.append(evaluator.evaluate(planes[i : i + 256])[1])
    return np.concatenate(out)


def probe(path: str | Path, boards: list[chess.Board] | None = None) -> dict:
    """The figures of the module docstring for one weights file."""
    boards = boards if boards is not None else positions()
    net, header = network.load_weights(path)
    evaluator = network.Evaluator(net)
    value = values(evaluator, boards)
    balance = np.array([material_balance(b) * (1 if b.turn else -1) for b in boards], dtype=np.float64)
    uneven = balance != 0
    corr = float(np.corrcoef(value[uneven], balance[uneven])[0, 1]) if uneven.sum() > 2 else None
    by_balance = {}
    for low, high in BUCKETS:
        mask = (balance >= low) & (balance <= high)
        key = f"<={high:+d}" if low < -50 else f">={low:+d}" if high > 50 else f"{low:+d}..{high:+d}"
        by_balance[key] = {
            "positions": int(mask.sum()),
            "mean_value": round(float(value[mask].mean()), 3) if mask.any() else None,
        }
    before, after = [], []
    for board in boards:
        move = _free_capture(board)
        if move is None:
            continue
        taken = board.copy()
        taken.push(move)
        taken.turn = board.turn  # same side to move, the piece now in hand
        taken.ep_square = None
        if taken.is_valid():
            before.append(board)
            after.append(taken)
    hanging = None
    if before:
        v_before, v_after = values(evaluator, before), values(evaluator, after)
        hanging = {
            "positions": len(before),
            "mean_value_before": round(float(v_before.mean()), 3),
            "mean_value_after_capture": round(float(v_after.mean()), 3),
            "gap": round(float((v_after - v_before).mean()), 3),
        }
    return {
        "checkpoint": str(path),
        "generation": header.get("generation"),
        "positions": len(boards),
        "material_correlation": None if corr is None else round(corr, 3),
        "value_by_balance": by_balance,
        "hanging": hanging,
    }


def game_positions(games: list[tuple[str, str]]) -> tuple[list[chess.Board], list[int], list[int]]:
    """Every position before a move of `games` ((PGN, result) each; the PGN gives the start
    position and moves, the result is the stored one): the boards, the result from the side
    to move (+1/0/-1) and the side to move's material balance."""
    boards, outcomes, material = [], [], []
    for pgn, result in games:
        game = chess.pgn.read_game(io.StringIO(pgn))
        if game is None:
            continue
        white = {"1-0": 1, "0-1": -1}.get(result, 0)
        board = game.board()
        for move in game.mainline_moves():
            boards.append(board.copy())
            outcomes.append(white if board.turn else -white)
            material.append(material_balance(board) * (1 if board.turn else -1))
            board.push(move)
    return boards, outcomes, material


def wdl_of(evaluator: network.Evaluator, boards: list[chess.Board]) -> np.ndarray:
    """The value head's WDL (side to move) of each board, (N, 3)."""
    out = []
    for i in range(0, len(boards), 256):
        chunk = boards[i : i + 256]
        out.append(evaluator.evaluate(encode_boards(chunk, [repetitions(b) for b in chunk]))[2])
    return np.concatenate(out) if out else np.zeros((0, 3))


def calibration(path: str | Path, games: list[tuple[str, str]], terminations: list[str] | None = None) -> dict:
    """The calibration figures of the module docstring for one weights file on held-out
    `games` ((PGN, result) each; `terminations` to count those cut at the move cap)."""
    boards, outcomes, material = game_positions(games)
    net, _ = network.load_weights(path)
    wdl = wdl_of(network.Evaluator(net), boards)
    out = {"games": len(games)}
    if terminations is not None:
        out["move_cap_games"] = sum(t == "move_cap" for t in terminations)
    if not boards:
        return {**out, **cal.summary([], expected=[])}
    return {**out, **cal.summary(outcomes, wdl=wdl, material=material)}


def play_held_out(path: str | Path, config, games: int, first_game: int) -> list:
    """`games` self-play games of the checkpoint at `path`, played after the session by the
    session's self-play code and settings (`config`: its SessionConfig) at the temperature of
    game `first_game` on: held-out games no learning step saw. Returns their GameRecords."""
    from service.sessions.worker import selfplay_config  # the session's engine settings, as the worker builds them

    net, header = network.load_weights(path)
    selfplay = SelfPlay(
        selfplay_config(config),
        network.Evaluator(net),
        seed=f"{config.seed}:held-out",
        first_game=first_game,
        temperature_for=lambda n: schedules.temperature(
            config.temperature_schedule,
            n,
            config.initial_temperature,
            config.final_temperature,
            config.temperature_decay_games,
        ),
    )
    selfplay.generation = int(header.get("generation") or 0)
    selfplay.max_new_games = games
    records: list = []
    while len(records) < games:
        records.extend(selfplay.step())
        if not selfplay.in_flight and not selfplay.max_new_games:
            break
    return records


async def stored_after(database_url: str, session_id: str, generation: int, limit: int) -> list[tuple[str, str, str]]:
    """(PGN, result, termination) of at most `limit` games of the session stored after its
    checkpoint `generation` was saved (number above the checkpoint's games), oldest first."""
    from sqlalchemy import select

    from service.storage.database import create_engine, session_factory
    from service.storage.models import CheckpointRow, GameRow

    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as db:
            saved_at = await db.scalar(
                select(CheckpointRow.games).where(
                    CheckpointRow.session_id == session_id, CheckpointRow.generation == generation
                )
            )
            if saved_at is None:
                raise SystemExit(f"value_probe.py: session {session_id} has no checkpoint of generation {generation}")
            rows = await db.execute(
                select(GameRow.pgn, GameRow.result, GameRow.termination)
                .where(GameRow.session_id == session_id, GameRow.number > saved_at)
                .order_by(GameRow.number)
                .limit(limit)
            )
            return [(pgn, result, termination) for pgn, result, termination in rows.all()]
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--database", help="DATABASE_URL of the session (calibration on its held-out games)")
    parser.add_argument("--session", help="the session the checkpoints belong to (with --database)")
    parser.add_argument("--games", type=int, default=200, help="held-out games at most per checkpoint (default 200)")
    args = parser.parse_args()
    boards = positions()
    probes = []
    for path in args.checkpoints:
        out = probe(path, boards)
        if args.database and args.session:
            held = asyncio.run(stored_after(args.database, args.session, int(out["generation"] or 0), args.games))
            out["calibration"] = calibration(path, [(p, r) for p, r, _ in held], [t for _, _, t in held])
        probes.append(out)
    print(json.dumps({"bench": "value_probe", "probes": probes}, indent=1))


if __name__ == "__main__":
    main()
