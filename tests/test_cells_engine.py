"""The studies' cell engine on the library: predictors by spec, the one compiled scan with in-jit
reducers, the padding of a short last chunk, and the cell cache apart from the computation.

* :func:`secnn_jax.predictors.from_spec` builds the constructors' own predictors and names the
  spec in every error;
* :func:`secnn_jax.pipeline.stream_program` with reducers (:class:`EventCounts`) and without the
  event maps is the program :class:`experiments.cells.Workspace` runs: its cells equal
  :func:`secnn_jax.run_stream` on the whole stream;
* :class:`experiments.cellcache.CellCache` holds the files: a run killed after a chunk resumes
  from the saved predictor state and gives the uninterrupted run's results bit for bit;
* which timed variants a predictor's events feed is the timer's answer (``variants_for``).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_experiments_studies import tiny_model

import secnn_jax as sj
from experiments import cellcache, cells
from secnn_jax import datasources, events, predictors
from secnn_jax.predictors import PredictorError, from_spec

pl = importlib.import_module("secnn_jax.pipeline")

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# predictors.from_spec


@pytest.mark.parametrize(("spec", "made"), [
    ("zero", predictors.zero()),
    (" zero() ", predictors.zero()),
    ("last_value", predictors.last_value()),
    ("secnn", predictors.secnn()),
    ("secnn(silence=0.5,decay=0.5)", predictors.secnn(silence=0.5, decay=0.5)),
    (" secnn ( silence = 0.75 , decay=0.5 ) ", predictors.secnn(silence=0.75, decay=0.5)),
    ("secnn(decay=0.25)", predictors.secnn(decay=0.25)),
    ("accumulated", predictors.accumulated()),
])
def test_from_spec_builds_the_constructors_predictor(spec, made):
    got = from_spec(spec)
    assert isinstance(got, predictors.Predictor)
    assert got.config_key == made.config_key
    assert predictors.config_key(got) == predictors.config_key(made)
    assert got.update_needs_tau == made.update_needs_tau


@pytest.mark.parametrize(("spec", "match"), [
    ("", "bad predictor spec ''"),
    ("secnn(", "bad predictor spec 'secnn\\('"),
    ("oracle", "unknown predictor 'oracle' in spec 'oracle'"),
    ("secnn(silence=abc)", "predictor 'secnn\\(silence=abc\\)': 'silence=abc' is not key=number"),
    ("secnn(silence)", "'silence' is not key=number"),
    ("secnn(bogus=1)", "predictor 'secnn\\(bogus=1\\)': .*bogus"),
    ("zero(silence=0.5)", "predictor 'zero\\(silence=0.5\\)': .*silence"),
    ("secnn(silence=2)", "predictor 'secnn\\(silence=2\\)': secnn: silence must lie in"),
    ("secnn(decay=1)", "predictor 'secnn\\(decay=1\\)': secnn: decay must lie in"),
    (3, "bad predictor spec 3"),
])
def test_bad_specs_are_predictor_errors_naming_the_spec(spec, match):
    with pytest.raises(PredictorError, match=match):
        from_spec(spec)


def test_predictor_specs_name_from_spec_predictors():
    assert predictors.from_spec(cells.predictor_spec("secnn", 0.75, 0.5)).config_key == (
        "secnn", 0.75, 0.5)
    with pytest.raises(PredictorError, match="unknown predictor 'oracle'"):
        predictors.from_spec("oracle")
    assert cells.predictor_spec("secnn", 0.5, 0.5) == "secnn(silence=0.5,decay=0.5)"
    assert cells.predictor_spec("secnn(silence=0.75,decay=0.5)") == "secnn(silence=0.75,decay=0.5)"


def test_config_does_not_import_cells():
    """experiments.config validates predictor specs with the library, so cells -> config is the
    only edge between the two (no import circle)."""
    def imported(path: Path) -> set[str]:
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        return out

    assert not any(m.startswith("experiments.cells") for m in
                   imported(ROOT / "experiments" / "config.py"))
    assert not any(m.startswith("experiments.c") for m in
                   imported(ROOT / "experiments" / "cellcache.py"))


def test_config_validation_reports_bad_specs():
    from experiments import config

    cfg = config.get_config()
    cfg.predictors = "zero,secnn(silence=2)"
    with pytest.raises(config.ConfigError, match="config.predictors=.*secnn: silence must lie"):
        config.validate(cfg)


# ---------------------------------------------------------------------------------------------
# pipeline: pad_chunk, scan_program, stream_program with reducers


def test_pad_chunk_pads_with_the_last_frame():
    x = np.arange(3 * 2, dtype=np.float32).reshape(3, 1, 2)
    padded, valid = pl.pad_chunk(x, 5)
    assert padded.shape == (5, 1, 2)
    np.testing.assert_array_equal(padded[:3], x)
    np.testing.assert_array_equal(padded[3:], np.repeat(x[-1:], 2, axis=0))
    np.testing.assert_array_equal(valid, [True, True, True, False, False])
    full, valid = pl.pad_chunk(x, 3)
    assert full is x and valid.all()
    with pytest.raises(pl.FramesError, match="cannot be padded"):
        pl.pad_chunk(x, 2)
    with pytest.raises(pl.FramesError):
        pl.pad_chunk(x[:0], 2)


@pytest.fixture(scope="module")
def tiny():
    handle = tiny_model()
    frames = np.stack(list(datasources.model_frames(
        datasources.pan("astronaut", n_frames=7, overlap=0.9, size=64), handle.preprocess)))
    layers = sj.find_layers(handle.apply_fn, handle.variables, jnp.asarray(frames[0]))
    return handle, frames, layers


def test_reducers_run_inside_the_scan_and_events_can_stay_inside(tiny):
    handle, frames, layers = tiny
    pred = predictors.secnn(silence=0.5, decay=0.5)
    counts = pl.EventCounts(layers)
    full = sj.stream_program(handle.apply_fn, handle.variables, frames[0], pred, layers=layers,
                             reducers={"counts": counts})
    lean = sj.stream_program(handle.apply_fn, handle.variables, frames[0], pred, layers=layers,
                             reducers={"counts": pl.EventCounts(layers)}, keep_events=False)
    assert lean is not full
    # Equal reducers (EventCounts compares by its layers) and flags: the cached program.
    assert sj.stream_program(handle.apply_fn, handle.variables, frames[0], pred, layers=layers,
                             reducers={"counts": pl.EventCounts(layers)},
                             keep_events=False) is lean
    chunk, valid = pl.pad_chunk(frames[:3], 4)
    taus = {lyr.name: jnp.asarray(0.05, jnp.float32) for lyr in layers}
    state = pred.init(layers)
    a = full.scan(handle.variables, state, jnp.asarray(chunk), jnp.asarray(valid), taus)
    b = lean.scan(handle.variables, state, jnp.asarray(chunk), jnp.asarray(valid), taus)
    assert isinstance(a, pl.ScanOutput) and b.events == {} and set(a.events) == {
        lyr.name for lyr in layers}
    assert a.reduced["counts"].shape == (4, len(layers), 4)
    want = np.stack([[np.asarray(events.count(a.events[lyr.name][i])) for lyr in layers]
                     for i in range(4)])
    np.testing.assert_array_equal(a.reduced["counts"], want)
    np.testing.assert_array_equal(b.reduced["counts"], a.reduced["counts"])
    np.testing.assert_array_equal(b.logits, a.logits)
    jax.tree.map(np.testing.assert_array_equal, b.state, a.state)
    # run keeps its (state, logits, events) form.
    s, logits, ev = full.run(handle.variables, state, jnp.asarray(chunk), jnp.asarray(valid),
                             taus)
    np.testing.assert_array_equal(logits, a.logits)
    assert set(ev) == set(a.events)


def test_unhashable_reducers_run_uncached(tiny):
    handle, frames, layers = tiny

    class Total:
        __hash__ = None

        def __call__(self, logits, events_):
            return jnp.sum(logits)

    before = sj.program_cache_info()["programs"].uncacheable
    prog = sj.stream_program(handle.apply_fn, handle.variables, frames[0], predictors.zero(),
                             layers=layers, reducers={"total": Total()})
    assert sj.program_cache_info()["programs"].uncacheable == before + 1
    chunk, valid = pl.pad_chunk(frames[:2], 2)
    out = prog.scan(handle.variables, predictors.zero().init(layers), jnp.asarray(chunk),
                    jnp.asarray(valid), prog.taus(0.0))
    np.testing.assert_allclose(out.reduced["total"], np.asarray(out.logits).sum(axis=(1, 2)),
                               rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# The engine: cells equal the library, resume, variants from the timer


def _workspace(cache_dir=None, timer=None, chunk_size=3):
    stream = datasources.pan("astronaut", n_frames=7, overlap=0.9, size=64)
    return cells.Workspace({"tiny": tiny_model()}, {"pan": stream}, frames=7,
                           chunk_size=chunk_size, cache_dir=cache_dir, timer=timer,
                           progress=False)


@pytest.mark.parametrize("spec", ["zero", "secnn(silence=0.75,decay=0.5)", "accumulated"])
def test_cells_equal_run_stream(tiny, spec):
    handle, frames, layers = tiny
    ws = _workspace()
    res = ws.run("tiny", "pan", spec, 0.05)  # 7 frames in chunks of 3: a padded last chunk
    logits, ev = sj.run_stream(ws.model("tiny").apply_fn, handle.variables, frames,
                               from_spec(spec), tau=0.05)
    np.testing.assert_allclose(res.logits, np.asarray(logits).reshape(7, -1), rtol=1e-5,
                               atol=1e-5)
    want = np.stack([[np.asarray(events.count(ev[lyr.name][i])) for lyr in layers]
                     for i in range(7)])
    np.testing.assert_array_equal(res.counts, want)
    assert res.time_us is None


def test_killed_cell_resumes_from_the_saved_state(tmp_path, monkeypatch):
    spec = "secnn(silence=0.75,decay=0.5)"
    ref = _workspace().run("tiny", "pan", spec, 0.02)
    # A run killed after its second chunk: the chunks and the state after it are on disk.
    save = cellcache.CellCache.save_progress

    class Killed(Exception):
        pass

    def killed_after_chunk_1(self, d, k, arrays, state):
        save(self, d, k, arrays, state)
        if k == 1:
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(cellcache.CellCache, "save_progress", killed_after_chunk_1)
        with pytest.raises(Killed):
            _workspace(tmp_path).run("tiny", "pan", spec, 0.02)
    d = _workspace(tmp_path).cell_dir("tiny", "pan", spec, "tau=0.02")
    assert sorted(p.name for p in d.iterdir()) == ["chunk00000.npz", "chunk00001.npz",
                                                   "state00001.npz"]
    ws = _workspace(tmp_path)
    got = ws.run("tiny", "pan", spec, 0.02)
    assert ws.stats == {"chunks_computed": 1, "chunks_loaded": 2}
    np.testing.assert_array_equal(got.logits, ref.logits)
    np.testing.assert_array_equal(got.counts, ref.counts)
    assert sorted(p.name for p in d.iterdir()) == ["chunk00000.npz", "chunk00001.npz",
                                                   "chunk00002.npz"]
    # A fresh workspace on the finished cell loads everything.
    again = _workspace(tmp_path)
    np.testing.assert_array_equal(again.run("tiny", "pan", spec, 0.02).logits, ref.logits)
    assert again.stats == {"chunks_computed": 0, "chunks_loaded": 3}


def test_a_longer_run_resumes_after_a_calibration_run(tmp_path):
    """A cell first run over its first whole chunks (the tuner's calibration frames), then over
    every frame (the held-out evaluation), computes only the chunks after the first run, from
    the predictor state kept in memory (the files keep none of a finished cell), and equals
    an uninterrupted run bit for bit; a first run ending in a partial chunk keeps no state."""
    spec = "secnn(silence=0.75,decay=0.5)"
    ref = _workspace().run("tiny", "pan", spec, 0.02)
    ws = _workspace(tmp_path)
    ws.run("tiny", "pan", spec, 0.02, n_frames=6)
    assert ws.stats["chunks_computed"] == 2
    got = ws.run("tiny", "pan", spec, 0.02)
    assert ws.stats == {"chunks_computed": 3, "chunks_loaded": 0}
    np.testing.assert_array_equal(got.logits, ref.logits)
    np.testing.assert_array_equal(got.counts, ref.counts)
    odd = _workspace()
    odd.run("tiny", "pan", spec, 0.02, n_frames=4)  # chunks of 3: the second one partial
    np.testing.assert_array_equal(odd.run("tiny", "pan", spec, 0.02).logits, ref.logits)
    assert odd.stats["chunks_computed"] == 2 + 3


def test_cell_cache_files(tmp_path):
    cache = cellcache.CellCache(tmp_path)
    assert cellcache.CellCache(None).cell("a") is None
    d = cache.cell("m", "pan:astronaut:0.9", "secnn(silence=0.5,decay=0.5)", "tau=0.0")
    assert d == tmp_path / "m" / "pan_astronaut_0.9" / "secnn_silence=0.5_decay=0.5" / "tau=0.0"
    state = {"a": jnp.arange(3, dtype=jnp.float32), "b": {"c": jnp.ones((2,), jnp.uint8)}}
    arrays = {"n": np.int64(2), "logits": np.zeros((2, 3), np.float32)}
    cache.save_progress(d, 0, arrays, state)
    cache.save_progress(d, 1, arrays, state)
    assert sorted(p.name for p in d.iterdir()) == ["chunk00000.npz", "chunk00001.npz",
                                                   "state00001.npz"]
    last = cache.cell("m", "last")  # a cell's last chunk writes no state (none is kept)
    cache.save_progress(last, 0, arrays, state)
    cache.save_progress(last, 1, arrays, None)
    assert sorted(p.name for p in last.iterdir()) == ["chunk00000.npz", "chunk00001.npz"]
    assert cache.load_chunk(d, 1, 2) is not None and cache.load_chunk(d, 1, 3) is None
    assert cache.has_chunks(d, 2) and not cache.has_chunks(d, 3)
    got, start = cache.load_state(d, 2, lambda: state)
    assert start == 2
    jax.tree.map(np.testing.assert_array_equal, got, state)
    # A state that does not fit the predictor: a fresh start.
    assert cache.load_state(d, 2, lambda: {"a": jnp.zeros(4)}) == (None, 0)
    cache.finish(d)
    assert not list(d.glob("state*.npz"))
    assert cellcache.tau_key([], 0.1) == "tau=0.1"


def test_a_uniform_per_layer_tau_is_the_global_one() -> None:
    """A map giving every layer one value names the global float's cell (the program sees
    per-layer values either way); any other map, or one naming an unknown layer, is hashed."""
    from secnn_jax.phases import tau_map

    layers = [SimpleNamespace(name=n) for n in ("a", "b", "c")]
    for v in (0.0, 0.05):
        uniform = dict.fromkeys("abc", v)
        assert cellcache.tau_key(layers, uniform) == cellcache.tau_key(layers, v)
        assert tau_map(layers, uniform) == tau_map(layers, v)  # what the program runs
    assert cellcache.tau_key(layers, {"a": 0.0, "b": 0.0}) == "tau=0.0"  # c defaults to 0
    assert tau_map(layers, {"a": 0.0, "b": 0.0}) == tau_map(layers, 0.0)
    for other in ({"a": 0.05}, {"a": 0.0, "b": 0.0, "c": 0.0, "z": 0.0}):
        assert cellcache.tau_key(layers, other).startswith("taus-")


class _RecordingTimer:
    """A timer whose variants per predictor are fixed; records what it was asked to time."""

    gpus = ("g",)
    schemes = ("base@x", "mine@x")
    key = "rec"

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.timed: list[tuple[str, ...]] = []

    def variants_for(self, predictor: str) -> tuple[str, ...]:
        self.asked.append(predictor)
        return ("base@x",) if predictor.startswith("zero") else ("mine@x",)

    def __call__(self, layers, events_, schemes=None, ops=None, frame_offset=0):
        self.timed.append(tuple(schemes))
        t = next(iter(events_.values())).shape[0]
        out = np.full((t, 1, 2), np.nan)
        for j, s in enumerate(self.schemes):
            if s in schemes:
                out[:, 0, j] = frame_offset + np.arange(t)
        return out


def test_timed_variants_come_from_the_timer():
    timer = _RecordingTimer()
    ws = _workspace(timer=timer)
    z = ws.run("tiny", "pan", "zero", 0.0)
    s = ws.run("tiny", "pan", "secnn", 0.0)
    assert timer.asked == ["zero"] * 3 + ["secnn"] * 3  # once per chunk
    assert timer.timed == [("base@x",)] * 3 + [("mine@x",)] * 3
    np.testing.assert_array_equal(z.time_us[:, 0, 0], np.arange(7))
    assert np.isnan(z.time_us[:, 0, 1]).all() and np.isnan(s.time_us[:, 0, 0]).all()
    # an untimed cell reuses the timed one
    u = ws.run("tiny", "pan", "secnn", 0.0, timed=False)
    assert u.time_us is None
    np.testing.assert_array_equal(u.counts, s.counts)
