"""Events reduced once, replayed many times (:func:`secnn_jax.timing.reduce_events`): a replay
of the reduced value equals, bit for bit, a replay of the events themselves (every scheme, on
GPUs and launch models taken in turn, chunks and frame selections), on EfficientNet-Lite0's
real layer geometries (depthwise 3x3 and 5x5, strided, 1x1) and op groups with random events; the
reduced counts equal the per-indicator path; a reduced value lacking what a replay needs is
refused by name; the studies' timer (which reduces once per events) equals direct replays per
launch model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import pytest

import models
import secnn_jax as sj
from secnn_jax import events as ev
from secnn_jax import netops, timing, workmaps
from secnn_jax.geometry import LayerGeom, events_to_nhwc


@pytest.fixture(scope="module")
def net() -> dict[str, Any]:
    """EfficientNet-Lite0's real layers and op groups at 32x32 (shapes only: no weights, no
    compiled stream) with 3 frames of random events: fires maps, a predictor's codes (ZN where
    a zero prediction fires, VM at random among non-zero predictions) and the zero predictor's
    (ZN where a neuron fires, else ZZ)."""
    module = models.build("efficientnet_lite0")
    shapes = models.variable_shapes("efficientnet_lite0")
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), np.float32)
    layers = sj.find_layers(module.apply, shapes, x)
    ops = netops.find_ops(module.apply, shapes, x)
    rng = np.random.default_rng(0)
    fires, zero, pred = {}, {}, {}
    for layer in layers:
        shape = (3, *layer.in_shape)
        f = rng.random(shape) < 0.4
        nz = rng.random(shape) < 0.5
        fires[layer.name] = f
        zero[layer.name] = np.where(f, ev.ZN, ev.ZZ).astype(np.uint8)
        pred[layer.name] = (2 * nz + np.where(nz, rng.random(shape) < 0.3, f)).astype(np.uint8)
    return {"layers": layers, "ops": ops, "zero": ev.EventMaps(zero, fires, "zero"),
            "secnn": ev.EventMaps(pred, fires, "secnn")}


def _equal(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of nested mappings, sequences and arrays."""
    if isinstance(a, Mapping):
        return set(a) == set(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def _same(x: timing.ReplayResult, y: timing.ReplayResult) -> None:
    assert (x.layers, x.frames, x.gpus, x.schemes, x.launch) == \
        (y.layers, y.frames, y.gpus, y.schemes, y.launch)
    assert _equal(dict(x.meta), dict(y.meta))
    assert x.results.keys() == y.results.keys()
    for k, r in x.results.items():
        q = y.results[k]
        for f in ("total_cycles", "layer_cycles", "phases", "layer_phases", "busy_cycles",
                  "spans", "work", "energy_parts", "span_args", "span_work"):
            assert _equal(getattr(r, f), getattr(q, f)), (k, f)


@pytest.mark.parametrize(("name", "gpus", "launches"), [
    ("zero", ("gtx1080ti",), ("eager", "graph")), ("secnn", ("h100",), ("persistent",))])
def test_replay_of_reduced_equals_replay_of_events(net, name, gpus, launches) -> None:
    layers, e, ops = net["layers"], net[name], net["ops"]
    red = timing.reduce_events(layers, e, batch_frames=2, frame_offset=5)
    assert red.chunks == (2, 1) and red.frames.tolist() == [5, 6, 7]
    kw = dict(gpus=gpus, ops=ops, launches=launches)
    direct = timing.replay_launches(layers, e, batch_frames=2, frame_offset=5, **kw)
    again = timing.replay_launches(red, **kw)
    assert direct.keys() == again.keys() == set(launches)
    assert len(direct[launches[0]].schemes) >= 5
    for ln in direct:
        _same(direct[ln], again[ln])
    # A frame selection, in other chunks, and another parameter point and fusion policy.
    cfg = timing.SchemeConfig(barrier_us=3.0)
    one = dict(gpus=gpus, launch=launches[-1], ops=ops, frames=[2, 0, 1], batch_frames=2,
               config=cfg, fusion="epilogue")
    _same(timing.replay(layers, e, frame_offset=5, **one), timing.replay(red, **one))


def test_reduced_counts_equal_the_per_indicator_path(net) -> None:
    layers, e = net["layers"], net["secnn"]
    red = timing.reduce_events(layers, e, schemes=("zero_skip", "secnn_hw"))
    assert red.which == ("nonzero", "predicted", "mispredicted") and red.predictor == "secnn"
    assert any(g.is_depthwise for g in red.geoms)
    for layer, g, counts in zip(layers, red.geoms, red.counts, strict=True):
        assert g == LayerGeom.from_layer(layer)
        codes = events_to_nhwc(layer, g, e[g.name])
        fires = events_to_nhwc(layer, g, np.asarray(e.fires[g.name]).astype(np.uint8))
        for w in red.which:
            ref = workmaps.position_counts(codes, g, w, fires)
            assert np.array_equal(counts[w], ref) and counts[w].dtype == np.int32, (g.name, w)
            assert not counts[w].flags.writeable
        miss = (codes & 1).reshape(len(codes), -1).sum(1)
        assert np.array_equal(red.misses[:, red.geoms.index(g)], miss)


def test_reduced_for_fewer_schemes_is_refused(net) -> None:
    layers, e = net["layers"], net["secnn"]
    only_zero_skip = timing.reduce_events(layers, e, schemes=("zero_skip",))
    assert only_zero_skip.which == ("nonzero",) and only_zero_skip.misses is None
    timing.replay(only_zero_skip, schemes=("dense", "zero_skip"), ops=net["ops"])
    with pytest.raises(timing.ReplayError, match=r"also need \['predicted', 'mispredicted'\]"):
        timing.replay(only_zero_skip, schemes=("secnn_hw",), ops=net["ops"])
    full = timing.reduce_events(layers, e, schemes=("secnn_sw",))
    with pytest.raises(timing.ReplayError, match="without misses"):
        timing.replay(dataclasses.replace(full, misses=None), schemes=("secnn_sw",),
                      ops=net["ops"])
    dense = timing.reduce_events(layers, e, schemes=("dense",))
    with pytest.raises(timing.ReplayError, match="events and frame_offset"):
        timing.replay(dense, e, schemes=("dense",))
    with pytest.raises(timing.ReplayError, match="already reduced"):
        timing.reduce_events(dense)
    with pytest.raises(timing.ReplayError, match="frames"):
        timing.replay(dense, schemes=("dense",), frames=[7])


def test_timer_equals_direct_replays(net) -> None:
    """The timer reduces each events once for all launch models (and the oracle's once):
    every column equals a direct replay of that scheme under that launch model."""
    from experiments.timer import ReplayTimer, variant_parts

    layers, e, ops = net["layers"], net["zero"], net["ops"]
    t = ReplayTimer(["h100"], ("dense", "zero_skip", "secnn_hw"),
                    launches=("eager", "persistent"))
    got = t(layers, e, ops=ops, frame_offset=2)
    done = 0
    for j, v in enumerate(t.schemes):
        scheme, launch, oracle = variant_parts(v)
        src = timing.oracle_events(e) if oracle else e
        r = timing.replay(layers, src, schemes=(scheme,), launch=launch, ops=ops,
                          params=t.params, config=t.config, frame_offset=2).get("h100", scheme)
        assert np.array_equal(got["time_us"][:, 0, j], r.total_us), v
        done += 1
    assert done == len(t.schemes) >= 4
