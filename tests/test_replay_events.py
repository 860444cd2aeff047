"""Events every scheme can replay (issue 18): fires maps beside the codes, in memory and traces.

* Schemes whose work does not depend on the predictor (``dense``, ``winograd``, ``fft``,
  ``zero_skip``) give identical times from any predictor's events of the same frames: real
  video through a CNN for every built-in predictor, and a property over random event maps.
* Schemes that model a specific predictor (``deltacnn``, ``cbinfer``: the accumulated rule)
  refuse another predictor's events by name; by default a replay times what the events feed.
* Traces store the fires maps (format version 2) and read them back exactly; a version-1 trace
  still reads, named as lacking them.
"""

from __future__ import annotations

import json
import logging

import jax
import numpy as np
import pytest
from conftest import video_frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_stream_bits import HardCNN, _init

import secnn_jax as sj
from secnn_jax import events as ev
from secnn_jax import netops, predictors, timing, traces
from secnn_jax.traces.codec import manifest_checksum

INDEPENDENT = ("dense", "winograd", "fft", "zero_skip")


@pytest.fixture(scope="module")
def net():
    frames = (video_frames(5, 32, 2) + 1.0) / 2.0
    model = HardCNN()
    params = _init(model, frames[0])
    layers = sj.find_layers(model.apply, params, frames[0])
    ops = netops.find_ops(model.apply, params, frames[0])
    return model.apply, params, frames, layers, ops


def _events(net, pred, tau=0.0) -> ev.EventMaps:
    apply_fn, params, frames, _, _ = net
    return sj.run_stream(apply_fn, params, frames, pred, tau)[1].map(np.asarray)


def test_independent_schemes_replay_identically_from_every_predictor(net) -> None:
    """At tau = 0 (above it, the amended network's own deeper inputs depend on the predictor
    through the deltas it dropped, so the fires maps are those of a different network)."""
    tau = 0.0
    _, _, _, layers, ops = net
    preds = {"zero": predictors.zero(), "last_value": predictors.last_value(),
             "secnn": predictors.secnn(), "accumulated": predictors.accumulated()}
    results = {}
    for name, pred in preds.items():
        e = _events(net, pred, tau)
        assert e.predictor == name
        for launch in ("eager", "persistent"):
            r = timing.replay(layers, e, gpus=("h100", "gtx1080ti"), schemes=INDEPENDENT,
                              launch=launch, fusion="epilogue", ops=ops)
            assert r.meta["fires"] is True
            results[(name, launch)] = r
    for (name, launch), r in results.items():
        ref = results[("zero", launch)]
        for gpu in ("h100", "gtx1080ti"):
            for s in INDEPENDENT:
                np.testing.assert_array_equal(r.get(gpu, s).total_cycles,
                                              ref.get(gpu, s).total_cycles,
                                              err_msg=f"{name} {launch} {gpu} {s}")
                np.testing.assert_array_equal(r.get(gpu, s).energy_uj, ref.get(gpu, s).energy_uj)


def test_codes_alone_made_zero_skip_depend_on_the_predictor(net) -> None:
    """Why the fires maps exist: from codes alone a VM neuron that went silent counts as work."""
    _, _, _, layers, ops = net
    zero, last = _events(net, predictors.zero()), _events(net, predictors.last_value())
    silent_vm = sum(int(((np.asarray(last[k]) == ev.VM) & ~np.asarray(last.fires[k])).sum())
                    for k in last)
    assert silent_vm > 0  # real video: neurons that fired and then went silent
    kw = dict(gpus=("h100",), schemes=("zero_skip",), launch="persistent", ops=ops)
    with_fires = timing.replay(layers, last, **kw).get("h100", "zero_skip").total_cycles
    codes_only = timing.replay(layers, last.codes, **kw).get("h100", "zero_skip").total_cycles
    exact = timing.replay(layers, zero, **kw).get("h100", "zero_skip").total_cycles
    np.testing.assert_array_equal(with_fires, exact)
    assert (codes_only >= exact).all() and (codes_only > exact).any()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), density=st.floats(0.0, 1.0),
       gpu=st.sampled_from(["h100", "gtx1080ti"]),
       launch=st.sampled_from(["eager", "graph", "persistent"]))
def test_property_independent_schemes_ignore_the_codes(seed, density, gpu, launch) -> None:
    """Random fires maps and two unrelated random code maps: equal times for every scheme
    whose work does not depend on the predictor."""
    rng = np.random.default_rng(seed)
    geoms = _GEOMS
    fires = {g.name: rng.random((3, *g.in_nhwc)) < density for g in geoms}
    a = ev.EventMaps({k: rng.integers(0, 4, f.shape, np.uint8) for k, f in fires.items()}, fires)
    b = ev.EventMaps({k: rng.integers(0, 4, f.shape, np.uint8) for k, f in fires.items()}, fires)
    kw = dict(gpus=(gpu,), schemes=INDEPENDENT, launch=launch)
    ra, rb = timing.replay(geoms, a, **kw), timing.replay(geoms, b, **kw)
    for s in INDEPENDENT:
        np.testing.assert_array_equal(ra.get(gpu, s).total_cycles, rb.get(gpu, s).total_cycles)


def test_peers_refuse_another_predictors_events(net, tmp_path) -> None:
    _, _, _, layers, ops = net
    e = _events(net, predictors.secnn())
    with pytest.raises(timing.ReplayError, match=r"'deltacnn' is timed from "
                       r"predictors\.accumulated\(\)'s events.*predictors\.secnn\(\)'s"):
        timing.replay(layers, e, schemes=("deltacnn",), ops=ops)
    default = timing.replay(layers, e, ops=ops)  # every scheme these events can feed
    assert "deltacnn" not in default.schemes and "secnn_hw" in default.schemes
    acc = _events(net, predictors.accumulated(), 0.05)
    r = timing.replay(layers, acc, ops=ops)
    assert {"deltacnn", "cbinfer"} <= set(r.schemes)
    # A trace names its predictor in free form: its leading name decides.
    traces.write_trace(tmp_path / "t", layers, e, predictor="secnn(silence=0.5,decay=0.75)")
    with pytest.raises(timing.ReplayError, match="cbinfer"):
        timing.replay(tmp_path / "t", schemes=("cbinfer",))


def test_trace_fires_round_trip_and_size(net, tmp_path) -> None:
    _, _, _, layers, ops = net
    e = _events(net, predictors.last_value())
    traces.write_trace(tmp_path / "v2", layers, e, predictor="last_value", chunk_frames=2,
                       ops=ops)
    traces.write_trace(tmp_path / "codes", layers, e.codes, predictor="last_value",
                       chunk_frames=2, ops=ops)
    t = traces.read_trace(tmp_path / "v2", verify=True)
    assert t.has_fires and t.manifest["version"] == 2 and t.manifest["fires"] is True
    assert not traces.read_trace(tmp_path / "codes").has_fires
    for lyr in layers:
        np.testing.assert_array_equal(t.fires(lyr.name), lyr.to_nhwc(e.fires[lyr.name]))
        np.testing.assert_array_equal(t.events(lyr.name), lyr.to_nhwc(e[lyr.name]))
    # One bit per neuron, stored as its difference from codes != ZZ: a small addition.
    with_fires = t.bytes_per_neuron_event
    codes_only = traces.read_trace(tmp_path / "codes").bytes_per_neuron_event
    assert codes_only < with_fires <= 1.25 * codes_only + 0.01
    r1 = timing.replay(tmp_path / "v2", schemes=INDEPENDENT)
    r2 = timing.replay(layers, e, schemes=INDEPENDENT, ops=ops)
    assert r1.to_csv() == r2.to_csv()
    # A writer that records fires refuses frames without them.
    w = traces.TraceWriter(tmp_path / "strict", layers, fires=True)
    with pytest.raises(traces.TraceError, match="records fires maps"):
        w.append(e.codes)


def test_version_1_trace_reads_as_lacking_fires(net, tmp_path, caplog) -> None:
    _, _, _, layers, ops = net
    e = _events(net, predictors.zero())
    traces.write_trace(tmp_path / "old", layers, e.codes, predictor="zero", ops=ops)
    mp = tmp_path / "old" / "manifest.json"
    m = json.loads(mp.read_text())
    m["version"] = 1
    del m["fires"]
    m["checksum"] = manifest_checksum(m)
    mp.write_text(json.dumps(m))
    t = traces.read_trace(tmp_path / "old", verify=True)
    assert not t.has_fires
    with pytest.raises(traces.TraceError, match="version 1.*records no fires maps"):
        t.fires(layers[0].name)
    _, chunk = next(t.iter_frames())
    assert chunk.fires is None and chunk.predictor == "zero"
    with caplog.at_level(logging.WARNING):
        r = timing.replay(tmp_path / "old", schemes=("zero_skip",))
    assert r.meta["fires"] is False
    # The zero predictor's codes are exact: the fallback equals the fires-based replay.
    np.testing.assert_array_equal(
        r.get("h100", "zero_skip").total_cycles,
        timing.replay(layers, e, schemes=("zero_skip",), ops=ops).get(
            "h100", "zero_skip").total_cycles)


def test_event_maps_are_a_pytree_and_a_mapping() -> None:
    m = ev.EventMaps({"a": np.zeros((2, 3), np.uint8)}, {"a": np.ones((2, 3), bool)}, "zero")
    sliced = jax.tree_util.tree_map(lambda v: v[:1], m)
    assert isinstance(sliced, ev.EventMaps) and sliced.predictor == "zero"
    assert sliced["a"].shape == (1, 3) and sliced.fires["a"].shape == (1, 3)
    assert dict(m).keys() == {"a"} and len(m) == 1
    with pytest.raises(ev.EventsError, match="same layers"):
        ev.EventMaps({"a": m["a"]}, {"b": m.fires["a"]})


def test_merged_stream_shards_keep_fires(net) -> None:
    from secnn_jax import distributed

    e = _events(net, predictors.secnn())
    halves = [e.map(lambda v, i=i: v[:, i:i + 1]) for i in (0, 1)]
    merged = distributed.merge_stream_shards(halves)
    assert isinstance(merged, ev.EventMaps) and merged.predictor == "secnn"
    for k in e:
        np.testing.assert_array_equal(merged[k], e[k])
        np.testing.assert_array_equal(merged.fires[k], e.fires[k])
    plain = distributed.merge_stream_shards([h.codes for h in halves])
    assert not isinstance(plain, ev.EventMaps)


_GEOMS = (timing.LayerGeom(name="c1", kind="conv", n=1, h=12, w=12, cin=8, ho=12, wo=12,
                           cout=16, kh=3, kw=3, pad=((1, 1), (1, 1))),
          timing.LayerGeom(name="c2", kind="conv", n=1, h=12, w=12, cin=16, ho=6, wo=6,
                           cout=16, kh=3, kw=3, sh=2, sw=2, pad=((1, 1), (0, 1))))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), density=st.floats(0.0, 1.0),
       keep=st.floats(0.0, 1.0), gpu=st.sampled_from(["h100", "gtx1080ti"]),
       launch=st.sampled_from(["eager", "graph", "persistent"]))
def test_property_less_work_is_never_slower(seed, density, keep, gpu, launch) -> None:
    """Monotonicity under every launch model: silencing fires never slows zero_skip; turning
    mispredictions (ZN) into ZZ never slows SE-CNN; dense ignores both."""
    rng = np.random.default_rng(seed)
    codes = {g.name: rng.integers(0, 4, (2, *g.in_nhwc), np.uint8) for g in _GEOMS}
    fires = {k: rng.random(v.shape) < density for k, v in codes.items()}
    less_fires = {k: v & (rng.random(v.shape) < keep) for k, v in fires.items()}
    fewer_misses = {k: np.where((v == ev.ZN) & (rng.random(v.shape) >= keep), np.uint8(ev.ZZ),
                                v) for k, v in codes.items()}
    schemes = ("dense", "zero_skip", "secnn_sw", "secnn_hw")
    kw = dict(gpus=(gpu,), schemes=schemes, launch=launch)
    base = timing.replay(_GEOMS, ev.EventMaps(codes, fires), **kw)
    less = timing.replay(_GEOMS, ev.EventMaps(fewer_misses, less_fires), **kw)
    for s in schemes:
        assert (less.get(gpu, s).total_cycles <= base.get(gpu, s).total_cycles + 1e-9).all(), s
    np.testing.assert_array_equal(less.get(gpu, "dense").total_cycles,
                                  base.get(gpu, "dense").total_cycles)
