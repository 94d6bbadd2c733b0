"""/v1/checkpoints/{id}/weights and /weights.onnx: a checkpoint's safetensors file, and its
network as ONNX, by id (never by path).

The ONNX file is exported on the first request (a few seconds of CPU, in a worker thread,
never on the event loop), one export at a time, and kept beside the weights file
(`gen-NNNN.onnx`, written atomically), so later downloads are plain file responses and
concurrent first requests share the one export. Deleting the session deletes it with the
session's folder. Where that folder cannot be written (a read-only volume), each request
exports afresh and is answered from memory.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from service.api.caches import PerApp
from service.api.deps import CheckpointId, Db, SettingsDep
from service.api.errors import Problem, problem_responses
from service.sessions.errors import SessionNotFound
from service.storage import repositories as repo
from service.storage.models import CheckpointRow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/checkpoints", tags=["checkpoints"])

ONNX_MEDIA_TYPE = "application/octet-stream"
"""IANA registers no media type for ONNX models (there is no `application/onnx`), so the
file goes as the generic binary type, as the safetensors weights do."""


def weights_file(checkpoint_dir: Path, file_name: str) -> Path | None:
    """CHECKPOINT_DIR / file_name resolved (symbolic links followed), or None if it would
    leave CHECKPOINT_DIR (`..`, an absolute name, a link pointing out), is CHECKPOINT_DIR
    itself, or cannot be resolved at all (a NUL character, a link loop)."""
    try:
        root = Path(checkpoint_dir).resolve()
        path = (root / file_name).resolve()
    except (OSError, ValueError, RuntimeError):  # embedded NUL, symlink loop, ...
        return None
    return path if path.is_relative_to(root) and path != root else None


async def stored_weights(db: Db, settings: SettingsDep, checkpoint_id: int) -> tuple[CheckpointRow, Path]:
    """The checkpoint's row and its weights file, or the 404 problem both downloads answer
    (no such checkpoint, a stored name outside CHECKPOINT_DIR, a file that is gone)."""
    row = await repo.get_checkpoint(db, checkpoint_id)
    if row is None:
        raise SessionNotFound("checkpoint", checkpoint_id)
    path = weights_file(settings.checkpoint_dir, row.file_name)
    if path is None:
        log.error("checkpoint %s names a file outside CHECKPOINT_DIR; refused", checkpoint_id)
        raise Problem(404, f"the weights of checkpoint {checkpoint_id} are not available")
    if not path.is_file():
        raise Problem(404, f"the weights file of checkpoint {checkpoint_id} is missing")
    return row, path


@router.get(
    "/{checkpoint_id}/weights",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The safetensors weights"},
        **problem_responses(404, 422),
    },
    summary="Download a checkpoint's weights (safetensors)",
)
async def download_weights(checkpoint_id: CheckpointId, db: Db, settings: SettingsDep) -> FileResponse:
    row, path = await stored_weights(db, settings, checkpoint_id)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{row.session_id}-gen-{row.generation:04d}.safetensors",
        headers={"X-Checkpoint-SHA256": row.sha256},
    )


def onnx_path(weights: Path) -> Path:
    """Where the ONNX export of a weights file is kept: beside it, `gen-NNNN.onnx`."""
    if weights.suffix == ".safetensors":
        return weights.with_suffix(".onnx")
    return weights.with_name(weights.name + ".onnx")


def is_current(onnx: Path, weights: Path) -> bool:
    """Whether `onnx` is a kept export of `weights` as they are now: a plain file (a link
    planted there is not followed) written no earlier than the weights."""
    try:
        return not onnx.is_symlink() and onnx.is_file() and onnx.stat().st_mtime_ns >= weights.stat().st_mtime_ns
    except OSError:
        return False


def export_beside(weights: Path, onnx: Path) -> Path | bytes:
    """Export `weights` to ONNX and keep it at `onnx` (atomically: a reader never sees a torn
    file, and two writers each rename a whole one); the bytes themselves when the folder
    cannot be written. Runs in a worker thread: it imports torch and takes seconds."""
    from service.engine import network, onnx_export

    net, header = network.load_weights(weights)
    data = onnx_export.onnx_bytes(net, header)
    try:
        onnx_export.save(data, onnx)
    except OSError as exc:
        log.warning("cannot keep the ONNX export at %s (%s): answered from memory", onnx, exc)
        return data
    return onnx


class OnnxExports(PerApp):
    """The app's ONNX exports in flight: one per weights file (concurrent requests for it
    share it; it runs as its own task, so a client that goes away does not cancel it for the
    others), and one at a time (each takes seconds of CPU and holds torch's exporter, whose
    logging switches are process-wide): a client asking for many checkpoints queues."""

    STATE_NAME = "onnx_exports"

    def __init__(self) -> None:
        self._gate = asyncio.Semaphore(1)
        self._flights: dict[Path, asyncio.Future[Path | bytes]] = {}
        self.exports = 0  # exports run (tests read it)

    async def get(self, weights: Path) -> Path | bytes:
        """The kept ONNX file of `weights`, exported first if there is none or it is older
        than the weights (or the bytes, when it cannot be kept)."""
        onnx = onnx_path(weights)
        if is_current(onnx, weights):
            return onnx
        flight = self._flights.get(weights)
        if flight is None:
            flight = asyncio.ensure_future(self._export(weights, onnx))
            self._flights[weights] = flight
            flight.add_done_callback(lambda done: self._landed(weights, done))
        return await asyncio.shield(flight)

    async def _export(self, weights: Path, onnx: Path) -> Path | bytes:
        async with self._gate:
            if is_current(onnx, weights):  # kept while this one waited its turn
                return onnx
            self.exports += 1
            return await asyncio.to_thread(export_beside, weights, onnx)

    def _landed(self, weights: Path, done: asyncio.Future[Path | bytes]) -> None:
        self._flights.pop(weights, None)
        if not done.cancelled():
            done.exception()  # retrieved: a failed export with no reader left is not "never retrieved"


@router.get(
    "/{checkpoint_id}/weights.onnx",
    response_class=FileResponse,
    responses={
        200: {
            "content": {ONNX_MEDIA_TYPE: {}},
            "description": "The network as ONNX: input `planes` (batch, 22, 8, 8); outputs `policy_logits` "
            "(batch, 1858), `wdl` (batch, 3), `value` (batch,); metadata with the preset, generation, encoding "
            'version, input planes and move table (README "ONNX export")',
        },
        **problem_responses(404, 422),
    },
    summary="Download a checkpoint's network as ONNX (runs in ONNX Runtime with no project code)",
)
async def download_onnx(checkpoint_id: CheckpointId, request: Request, db: Db, settings: SettingsDep) -> Response:
    row, weights = await stored_weights(db, settings, checkpoint_id)
    filename = f"{row.session_id}-gen-{row.generation:04d}.onnx"
    await db.close()  # the export may take seconds: give the read connection back first
    try:
        exported = await OnnxExports.for_app(request.app).get(weights)
    except FileNotFoundError:  # deleted since it was looked at (its session, deleted meanwhile)
        raise Problem(404, f"the weights file of checkpoint {checkpoint_id} is missing") from None
    except (ValueError, TypeError) as exc:  # the stored file is not weights this engine can load
        log.error("checkpoint %s cannot be exported: %s", checkpoint_id, exc)
        raise Problem(404, f"the weights of checkpoint {checkpoint_id} cannot be exported") from None
    if isinstance(exported, Path):
        return FileResponse(exported, media_type=ONNX_MEDIA_TYPE, filename=filename)
    return Response(
        exported, media_type=ONNX_MEDIA_TYPE, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
