"""GET /v1/checkpoints/{id}/weights.onnx over the real app and HTTP client, on SQLite and
PostgreSQL: the download runs in onnxruntime and says which checkpoint it is; it is exported
once, off the event loop, and kept beside the weights (concurrent first requests share the
one export and leave no torn or stray file); a kept file older than the weights, a link or
a folder in its place is never served; unknown ids, missing or unloadable weights are 404."""

from __future__ import annotations

import asyncio
import os
import threading

import chess
import numpy as np
import onnxruntime as ort
import pytest
from api_support import assert_problem, seed_checkpoint, seed_session

from service.api.checkpoints import OnnxExports
from service.engine import encoding, network, onnx_export

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def check_model(data: bytes, generation: int) -> None:
    """`data` is the ONNX of generation `generation`'s tiny net (seed_checkpoint builds it from
    seed `generation`): its metadata names it and its outputs are that net's."""
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["generation"] == str(generation) and meta["preset"] == "tiny"
    assert meta["encoding_version"] == str(encoding.ENCODING_VERSION)
    planes = encoding.encode_boards([chess.Board(), chess.Board("8/P7/8/8/8/8/k6K/8 w - - 0 1")])
    logits, wdl, value = session.run(None, {onnx_export.INPUT_NAME: planes})
    t_logits, t_value, t_wdl = network.Evaluator(network.build_network("tiny", seed=generation)).evaluate(planes)
    np.testing.assert_allclose(logits, t_logits, atol=1e-4)
    np.testing.assert_allclose(wdl, t_wdl, atol=1e-5)
    np.testing.assert_allclose(value, t_value, atol=1e-5)


async def test_onnx_download_runs_in_onnxruntime_and_is_kept(api, monkeypatch):
    session_id = await seed_session(api)
    checkpoint_id = await seed_checkpoint(api, session_id, generation=2, games=20)
    listed = (await api.client.get(f"/v1/sessions/{session_id}/checkpoints")).json()["items"]
    assert listed[0]["onnx_url"] == f"/v1/checkpoints/{checkpoint_id}/weights.onnx"

    threads: list[int] = []
    real = onnx_export.onnx_bytes

    def spy(*args, **kwargs):  # the real export, noting the thread it runs on
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(onnx_export, "onnx_bytes", spy)
    r = await api.client.get(listed[0]["onnx_url"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == f'attachment; filename="{session_id}-gen-0002.onnx"'
    check_model(r.content, generation=2)
    assert threads and threading.get_ident() not in threads, "the export ran on the event loop's thread"

    kept = api.settings.checkpoint_dir / session_id / "gen-0002.onnx"
    assert kept.read_bytes() == r.content
    again = await api.client.get(f"/v1/checkpoints/{checkpoint_id}/weights.onnx")
    assert again.status_code == 200 and again.content == r.content
    assert int(again.headers["content-length"]) == len(r.content)
    assert len(threads) == 1 and OnnxExports.for_app(api.app).exports == 1  # the second was the kept file


async def test_concurrent_first_downloads_share_one_export(api):
    session_id = await seed_session(api)
    ids = [await seed_checkpoint(api, session_id, generation=g) for g in (0, 1)]
    urls = [f"/v1/checkpoints/{ids[i % 2]}/weights.onnx" for i in range(6)]
    answers = await asyncio.gather(*(api.client.get(url) for url in urls))
    assert [r.status_code for r in answers] == [200] * 6
    for generation in (0, 1):
        bodies = {r.content for r in answers[generation::2]}
        assert len(bodies) == 1
        check_model(bodies.pop(), generation)
    assert OnnxExports.for_app(api.app).exports == 2  # one per checkpoint
    folder = api.settings.checkpoint_dir / session_id
    assert sorted(p.name for p in folder.iterdir() if p.suffix not in {".pt"}) == [
        "gen-0000.onnx",
        "gen-0000.safetensors",
        "gen-0001.onnx",
        "gen-0001.safetensors",
    ], "a temporary file was left behind"


async def test_a_stale_kept_file_a_link_or_a_folder_is_never_served(api, tmp_path):
    session_id = await seed_session(api)
    checkpoint_id = await seed_checkpoint(api, session_id, generation=1)
    folder = api.settings.checkpoint_dir / session_id
    url = f"/v1/checkpoints/{checkpoint_id}/weights.onnx"
    exports = OnnxExports.for_app(api.app)

    stale = folder / "gen-0001.onnx"  # left over from weights rewritten since
    stale.write_bytes(b"an export of older weights")
    weights_time = (folder / "gen-0001.safetensors").stat().st_mtime
    os.utime(stale, (weights_time - 60, weights_time - 60))
    r = await api.client.get(url)
    assert r.status_code == 200 and exports.exports == 1
    check_model(r.content, 1)
    assert stale.read_bytes() == r.content

    secret = tmp_path / "secret.onnx"
    secret.write_bytes(b"not for download")
    stale.unlink()
    stale.symlink_to(secret)  # planted: a link is not followed, it is replaced
    r = await api.client.get(url)
    assert r.status_code == 200 and exports.exports == 2 and b"not for download" not in r.content
    check_model(r.content, 1)
    assert not stale.is_symlink() and secret.read_bytes() == b"not for download"

    stale.unlink()
    stale.mkdir()  # cannot be replaced: answered from memory, every time
    for expected in (3, 4):
        r = await api.client.get(url)
        assert r.status_code == 200 and exports.exports == expected
        assert r.headers["content-disposition"] == f'attachment; filename="{session_id}-gen-0001.onnx"'
        check_model(r.content, 1)


async def test_unknown_missing_or_unloadable_checkpoints_are_404(api):
    session_id = await seed_session(api)
    for checkpoint_id, status in [("12345", 404), (str(2**63), 422), ("x", 422), ("-1", 422), ("1.onnx", 422)]:
        assert_problem(await api.client.get(f"/v1/checkpoints/{checkpoint_id}/weights.onnx"), status)

    gone = await seed_checkpoint(api, session_id, generation=0)
    assert (await api.client.get(f"/v1/checkpoints/{gone}/weights.onnx")).status_code == 200  # kept now
    (api.settings.checkpoint_dir / session_id / "gen-0000.safetensors").unlink()
    body = assert_problem(await api.client.get(f"/v1/checkpoints/{gone}/weights.onnx"), 404)
    assert "missing" in body["detail"]

    broken = await seed_checkpoint(api, session_id, generation=1)
    (api.settings.checkpoint_dir / session_id / "gen-0001.safetensors").write_bytes(b"not a safetensors file")
    body = assert_problem(await api.client.get(f"/v1/checkpoints/{broken}/weights.onnx"), 404)
    assert "cannot be exported" in body["detail"] and str(api.settings.checkpoint_dir) not in body["detail"]
    assert not (api.settings.checkpoint_dir / session_id / "gen-0001.onnx").exists()
