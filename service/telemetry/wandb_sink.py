"""The Weights & Biases sink (ENABLE_WANDB): one W&B run per session.

The run's id and name are the session id; its config is the session's configuration (from
`create_session`, or read from storage for a session restored after a restart, which
resumes its run with `resume="allow"`). History rows are keyed on `games`, the step metric
of every series: the session's self-play games finished as seen here, raised to the
worker's own count at each learning step and checkpoint. Series: `game/*` (white score,
plies, duration...), `selfplay/*` (W/D/L rates), `learning/*` (loss per head, grad norm,
lr, entropy...), `checkpoint/generation`, `eval/elo`, `eval/elo_low`, `eval/elo_high` (95%
interval), `eval/<opponent>/*`, `stats/*` (metrics snapshots), `alert/<name>` (plus a W&B
alert). The run is finished when the session reaches `completed | stopped | failed` (exit
code 1 when failed), and at close. The mode comes from the SDK's environment:
`WANDB_MODE=offline` writes runs under `WANDB_DIR/wandb/offline-run-*` without any network
(`wandb sync` uploads them later; each process writes its own directory for a resumed run);
online needs `WANDB_API_KEY` (or a `wandb login`): without credentials the sink is off with
one warning, never an interactive prompt. Project: `WANDB_PROJECT` (default
continuous-play), team: `WANDB_ENTITY`. What every sink guarantees is in `sink`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..event_types import EventType
from ..lifecycle import FINAL, State
from .sink import CONFIG_RECORD, DEFAULT_PROJECT, DEFAULT_QUEUE_SIZE, WHITE_SCORE, Sink, as_number, numbers

_RUN_ID = re.compile(r"[^A-Za-z0-9_-]")


class _Run:
    """One session's W&B run and what its derived series need."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.games = 0
        self.results = {"1-0": 0, "0-1": 0, "1/2-1/2": 0}
        self.games_at: dict[int, int] = {}  # checkpoint generation -> games


class WandbSink(Sink):
    """One W&B run per session (see the module's doc)."""

    name = "W&B"

    def __init__(
        self,
        *,
        project: str | None = None,
        entity: str | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(queue_size=queue_size)
        self.project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self.entity = entity
        self._extra_settings = settings or {}
        self._wandb: Any = None
        self._runs: dict[str, _Run] = {}
        self._run_configs: dict[str, dict[str, Any]] = {}  # configs of sessions with no run yet

    def _open(self) -> None:
        import wandb  # ImportError: one warning, the sink is off

        self._wandb = wandb
        mode = (os.environ.get("WANDB_MODE") or "online").strip().lower()
        if mode not in ("offline", "dryrun", "disabled"):
            # Never an interactive login prompt from this thread: no credentials is the one warning.
            if not wandb.login(prompt=False, verify=False):
                raise RuntimeError(
                    "no W&B credentials: set WANDB_API_KEY (or run `wandb login`), "
                    "or WANDB_MODE=offline to write runs locally"
                )
        # Several runs in one process (one per session), no console capture (the service's
        # logs are its own), no system monitor per run (the worker reports its own memory).
        self._settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, **self._extra_settings)

    def _run_of(self, session_id: str) -> _Run:
        current = self._runs.get(session_id)
        if current is not None:
            return current
        # WANDB_MODE and WANDB_DIR are read now, not when wandb first set itself up in this
        # process: its global setup keeps the environment it first saw.
        run = self._wandb.init(
            project=self.project,
            entity=self.entity,
            name=session_id,
            id=_RUN_ID.sub("-", session_id)[:64],
            resume="allow",
            reinit="create_new",
            job_type="session",
            config=self._run_configs.pop(session_id, None),
            mode=os.environ.get("WANDB_MODE") or None,
            dir=os.environ.get("WANDB_DIR") or None,
            settings=self._settings,
        )
        run.define_metric("games")
        run.define_metric("*", step_metric="games")
        current = self._runs[session_id] = _Run(run)
        return current

    def _write(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        if event_type == CONFIG_RECORD:
            if session_id in self._runs:
                self._runs[session_id].run.config.update(data, allow_val_change=True)
            else:  # the run starts with it
                self._run_configs[session_id] = data
            return
        current = self._run_of(session_id)
        run = current.run
        if event_type == EventType.SESSION_STATE:
            self._on_state(session_id, current, data)
        elif event_type == EventType.GAME_FINISHED:
            result = data.get("result")
            if result in current.results:
                current.results[result] += 1
            current.games += 1  # games finish out of number order (several are in flight)
            played = sum(current.results.values())
            row = {"games": current.games, **numbers(data, "game/", skip=("game_id",))}
            if result in WHITE_SCORE:
                row["game/white_score"] = WHITE_SCORE[result]
            if played:
                row.update(
                    {
                        "selfplay/white_win_rate": current.results["1-0"] / played,
                        "selfplay/black_win_rate": current.results["0-1"] / played,
                        "selfplay/draw_rate": current.results["1/2-1/2"] / played,
                    }
                )
            run.log(row)
        elif event_type == EventType.LEARNING_STEP:
            current.games = max(current.games, int(data.get("games") or 0))
            run.log({"games": current.games, **numbers(data, "learning/", skip=("games",))})
        elif event_type == EventType.CHECKPOINT_SAVED:
            games = int(data.get("games") or current.games)
            if data.get("generation") is not None:
                current.games_at[int(data["generation"])] = games
            current.games = max(current.games, games)
            run.log({"games": games, "checkpoint/generation": data.get("generation")})
        elif event_type == EventType.EVALUATION_FINISHED:
            run.log(self._evaluation_row(current, data))
        elif event_type == EventType.METRICS_SNAPSHOT:
            run.log({"games": current.games, **numbers(data, "stats/")})
        elif event_type == EventType.ALERT_RAISED:
            self._on_alert(current, data)

    @staticmethod
    def _evaluation_row(current: _Run, data: dict[str, Any]) -> dict[str, Any]:
        generation = data.get("generation")
        games = current.games_at.get(int(generation), current.games) if generation is not None else current.games
        opponent = str(data.get("opponent") or "opponent")
        row: dict[str, Any] = {"games": games, "eval/generation": generation}
        for key in ("elo", "elo_low", "elo_high"):
            if as_number(data.get(key)) is not None:
                row[f"eval/{key}"] = data[key]
        w, d, losses = (int(data.get(k) or 0) for k in ("wins", "draws", "losses"))
        row.update({f"eval/{opponent}/wins": w, f"eval/{opponent}/draws": d, f"eval/{opponent}/losses": losses})
        if w + d + losses:
            row[f"eval/{opponent}/score"] = (w + d / 2) / (w + d + losses)
        sprt = data.get("sprt")
        if isinstance(sprt, dict) and as_number(sprt.get("llr")) is not None:
            row["eval/sprt_llr"] = sprt["llr"]
        return row

    def _on_alert(self, current: _Run, data: dict[str, Any]) -> None:
        name = str(data.get("name") or "alert")
        severity = str(data.get("severity") or "warning")
        if as_number(data.get("games")) is not None:
            current.games = max(current.games, int(data["games"]))
        row: dict[str, Any] = {"games": current.games}
        if as_number(data.get("value")) is not None:
            row[f"alert/{name}"] = data["value"]
        current.run.log(row)
        level = self._wandb.AlertLevel.ERROR if severity == "critical" else self._wandb.AlertLevel.WARN
        current.run.alert(
            title=f"{name} ({severity})", text=str(data.get("message") or name), level=level, wait_duration=60
        )

    def _on_state(self, session_id: str, current: _Run, data: dict[str, Any]) -> None:
        state = data.get("state")
        run = current.run
        run.summary["state"] = state
        for key in ("stop_reason", "failure_reason"):
            if data.get(key):
                run.summary[key] = data[key]
        if state in FINAL:
            run.summary["games"] = current.games
            run.finish(exit_code=1 if state == State.FAILED else 0)
            del self._runs[session_id]

    def _shutdown(self) -> None:
        """The service stops: every open run is finished (a restored session resumes it)."""
        errors = []
        for session_id, current in list(self._runs.items()):
            try:
                current.run.finish()
            except Exception as exc:  # finish the others
                errors.append(exc)
            del self._runs[session_id]
        if errors:
            raise errors[0]

    def _abandon(self) -> None:
        for current in list(self._runs.values()):
            try:
                current.run.finish(exit_code=1, quiet=True)
            except Exception:
                pass
        self._runs.clear()
