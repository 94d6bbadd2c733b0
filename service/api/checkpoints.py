"""/v1/checkpoints/{id}/weights: a checkpoint's safetensors file, by id (never by path)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.api.deps import CheckpointId, Db, SettingsDep
from service.api.errors import Problem, problem_responses
from service.sessions.errors import SessionNotFound
from service.storage import repositories as repo

log = logging.getLogger(__name__)
router = APIRouter(prefix="/checkpoints", tags=["checkpoints"])


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
    row = await repo.get_checkpoint(db, checkpoint_id)
    if row is None:
        raise SessionNotFound("checkpoint", checkpoint_id)
    path = weights_file(settings.checkpoint_dir, row.file_name)
    if path is None:
        log.error("checkpoint %s names a file outside CHECKPOINT_DIR; refused", checkpoint_id)
        raise Problem(404, f"the weights of checkpoint {checkpoint_id} are not available")
    if not path.is_file():
        raise Problem(404, f"the weights file of checkpoint {checkpoint_id} is missing")
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{row.session_id}-gen-{row.generation:04d}.safetensors",
        headers={"X-Checkpoint-SHA256": row.sha256},
    )
