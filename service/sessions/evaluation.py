"""A session's evaluation matches: its newest checkpoint against each anchor in
EVAL_OPPONENTS and against the previous evaluated checkpoint (the SPRT verdict).

The worker decides when to evaluate, reports each match and, under GATING, promotes an
accepted checkpoint; this module plays the matches and keeps what they need from one
evaluation to the next: generation 0 (the anchor) and the previous evaluated checkpoint,
frozen. Every match plays by the arena's fixed rules, whatever the session's self-play
settings (`arena` says why), and every result names its yardstick: the cap and the
adjudication rule (EVAL_ADJUDICATION, `auto` resolved once when the session's evaluation
starts; Stockfish's verdict comes from one process per match, closed after it).
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import chess.engine

from ..config import SessionConfig
from ..engine import arena, inference, network, players
from ..engine.yardstick import Adjudication, StockfishAdjudicator, Yardstick, resolve
from ..stats.sprt import sprt


def uci_command(command: str) -> list[str]:
    """EVAL_UCI_ENGINE as argv; a bare name not on PATH is also looked for in /usr/games (Debian)."""
    argv = command.split()
    if argv and not shutil.which(argv[0]) and Path("/usr/games", argv[0]).is_file():
        argv[0] = str(Path("/usr/games", argv[0]))
    return argv


def yardstick_for(cfg: SessionConfig) -> Yardstick:
    """The rules a session's matches play by: the arena's fixed cap and EVAL_ADJUDICATION
    (`auto` resolved on this machine, now) with its centipawns and depth."""
    return Yardstick(
        arena.EVAL_MAX_PLIES,
        resolve(cfg.eval_adjudication),
        cp=cfg.eval_adjudication_cp,
        depth=cfg.eval_adjudication_depth,
    )


def play_match(
    candidate: arena.Side,
    opponent: arena.Side,
    yardstick: Yardstick,
    *,
    pairs: int,
    seed: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> arena.MatchResult | None:
    """`arena.play_match` under `yardstick`: under the stockfish rule with this match's own
    Stockfish process (started at the first game to reach the cap), quit when the match ends."""
    adjudicator = (
        StockfishAdjudicator(yardstick.cp, yardstick.depth)
        if yardstick.adjudication is Adjudication.STOCKFISH
        else None
    )
    try:
        return arena.play_match(
            candidate,
            opponent,
            pairs=pairs,
            max_plies=yardstick.max_plies,
            adjudication=yardstick.adjudication,
            margin=yardstick.margin,
            adjudicator=adjudicator,
            seed=seed,
            should_stop=should_stop,
        )
    finally:
        if adjudicator is not None:
            adjudicator.close()


class Evaluations:
    """The evaluation side of one session: generation 0 (`build_network(preset, SEED)`, or
    the checkpoint the session started from) and the last evaluated checkpoint."""

    def __init__(self, cfg: SessionConfig, device: str, init_weights: Path | None) -> None:
        self.cfg = cfg
        self.device = device
        self.backend = inference.runnable(cfg.inference_backend, device)
        anchor = network.build_network(cfg.chess_preset, cfg.seed).to(device)
        if init_weights is not None:
            anchor, _ = network.load_weights(init_weights, device)
        self.gen0 = inference.make(anchor, self.backend, device)
        self.previous: tuple[int, inference.SnapshotEvaluator] | None = None  # the last evaluated checkpoint
        self.last_games = 0
        """Games played when the last evaluation completed."""
        self.yardstick = yardstick_for(cfg)
        """The rules every match of this session plays by (`auto` resolved here, once)."""

    def _opponent(self, entry: str, sims: int) -> arena.Side:
        """The anchor an EVAL_OPPONENTS entry names (a UCI engine's process starts here)."""
        cfg = self.cfg
        opponent = players.parse_opponent(entry)
        if opponent.kind is players.OpponentKind.GEN0:
            return arena.SearchSide(self.gen0, sims, cfg.search)
        if opponent.kind is players.OpponentKind.RANDOM:
            return players.RandomPlayer(cfg.seed)
        if opponent.kind is players.OpponentKind.GREEDY:
            return players.GreedyPlayer(cfg.seed)
        if opponent.kind is players.OpponentKind.STOCKFISH:
            return players.ladder_player(opponent)
        assert cfg.eval_uci_engine is not None  # the config's check: 'uci' needs EVAL_UCI_ENGINE
        elo = cfg.eval_uci_elo
        options = {"UCI_LimitStrength": True, "UCI_Elo": elo} if elo else {}
        limit = chess.engine.Limit(time=0.05)
        return players.UciPlayer(uci_command(cfg.eval_uci_engine), options=options, limit=limit, name=self._name(entry))

    def _name(self, entry: str) -> str:
        """An opponent's name in ratings and reports: the entry itself, `uci-<elo>` for a limited UCI engine."""
        elo = self.cfg.eval_uci_elo
        return f"uci-{elo}" if entry == players.OpponentKind.UCI and elo else entry

    def play(
        self, net: network.ChessNet, generation: int, games: int, should_stop: Callable[[], bool]
    ) -> Iterator[dict[str, Any]]:
        """Checkpoint `generation` (`net`, after `games` games) against each anchor, paired
        openings with colours swapped, then against the previous evaluated checkpoint: yields
        each match's result (an `evaluation` message) as it ends, the last one with its SPRT
        verdict. Stopped mid-match (`should_stop`), it ends with no partial result and this
        evaluation does not count (`previous` and `last_games` stay as they were)."""
        cfg = self.cfg
        sims = cfg.eval_simulations or cfg.selfplay_simulations
        candidate = arena.SearchSide(inference.make(net, self.backend, self.device), sims, cfg.search)
        previous_generation, previous = self.previous or (0, self.gen0)
        matches: list[tuple[str, Callable[[], arena.Side]]] = [
            (self._name(entry), partial(self._opponent, entry, sims)) for entry in cfg.eval_opponents
        ]
        if not (previous_generation == 0 and "gen0" in cfg.eval_opponents):
            matches.append((f"gen{previous_generation}", partial(arena.SearchSide, previous, sims, cfg.search)))
        for name, make in matches:
            t = time.perf_counter()
            opponent = make()  # one opponent (and engine process) at a time, closed after its match
            try:
                result = play_match(
                    candidate,
                    opponent,
                    self.yardstick,
                    pairs=cfg.eval_games // 2,
                    seed=cfg.seed + generation,
                    should_stop=should_stop,
                )
            finally:
                if hasattr(opponent, "close"):
                    opponent.close()
            if result is None:  # stopped or shut down mid-match: no partial result is reported
                return
            data: dict[str, Any] = {
                "generation": generation,
                "games_played": games,
                "opponent": name,
                "wins": result.wins,
                "draws": result.draws,
                "losses": result.losses,
                "pentanomial": result.pentanomial(),
                "adjudicated": sum(g.adjudicated for g in result.games),
                "yardstick": str(self.yardstick),
                "seconds": time.perf_counter() - t,
            }
            if name == f"gen{previous_generation}":
                verdict = sprt(data["pentanomial"], cfg.sprt_elo0, cfg.sprt_elo1, cfg.sprt_alpha, cfg.sprt_beta)
                data["sprt"] = verdict.to_dict() | {"against_generation": previous_generation}
            yield data
        frozen = copy.deepcopy(net).eval()
        self.previous = (generation, inference.make(frozen, self.backend, self.device))
        self.last_games = games
