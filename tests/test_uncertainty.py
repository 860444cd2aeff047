"""Verdict bands over the timing model's uncertainty box (:mod:`secnn_jax.timing.uncertainty`):
the band's order, the verdict rule, zero-width boxes, the corners against brute force over the
box's vertices, the fitted ranges against the calibration file, and bad input."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secnn_jax import events as ev
from secnn_jax import timing
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import uncertainty as u
from secnn_jax.timing.params import PARAMS_PATH, load_params

FRAMES = 3
HW = u.Ratio("secnn_hw", ("dense", "zero_skip"))
SW = u.Ratio("secnn_sw", ("dense",))
KW = dict(launch="persistent", fusion="epilogue")


@pytest.fixture(scope="module")
def net() -> dict[str, Any]:
    """Three conv layers (a strided stem, a 1x1, a 3x3) and random events of 3 frames: the
    zero predictor's (ZN where an input fires, else ZZ) and a predictor's (predicted non-zero
    at random; a zero prediction misses where the input fires, a non-zero one at random)."""
    layers = (LayerGeom("stem", "conv", 1, 24, 24, 3, 12, 12, 8, 3, 3, 2, 2, ((0, 1), (0, 1))),
              LayerGeom("pw", "conv", 1, 12, 12, 8, 12, 12, 16),
              LayerGeom("conv", "conv", 1, 12, 12, 16, 12, 12, 16, 3, 3, 1, 1, ((1, 1), (1, 1))))
    rng = np.random.default_rng(0)
    fires, zero, pred = {}, {}, {}
    for g in layers:
        shape = (FRAMES, g.n, g.h, g.w, g.cin)
        f = rng.random(shape) < 0.4
        nz = rng.random(shape) < 0.5
        miss = np.where(nz, rng.random(shape) < 0.3, f)
        fires[g.name] = f
        zero[g.name] = np.where(f, ev.ZN, ev.ZZ).astype(np.uint8)
        pred[g.name] = (2 * nz + miss).astype(np.uint8)
    return {"layers": layers, "ops": (), "zero": ev.EventMaps(zero, fires, "zero"),
            "pred": ev.EventMaps(pred, fires, "secnn")}


def _ratio(net: dict[str, Any], r: u.Ratio, params: Any = None, config: Any = None) -> float:
    """The ratio from two direct replays (the independent reference)."""
    kw = dict(ops=net["ops"], params=params, config=config, **KW)
    b = timing.replay(net["layers"], net["zero"], schemes=r.baselines, **kw)
    s = timing.replay(net["layers"], net["pred"], schemes=(r.scheme,), **kw)
    base = np.minimum.reduce([b.get("h100", x).total_us for x in r.baselines])
    return float(base.sum() / s.get("h100", r.scheme).total_us.sum())


BY_NAME = {r.name: r for r in u.BOX}
CHEAP = ("barrier_us", "hw_dependency_us", "compaction_bytes_per_miss", "hw_compaction",
         "buffer_placement", "latency_cycles", "compare_ops_per_neuron")


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(CHEAP), min_size=1, max_size=3, unique=True),
       probe=st.integers(1, FRAMES), thr=st.floats(0.3, 3.0))
def test_band_orders_and_verdict_follows_corners(net: dict[str, Any], names: list[str],
                                                 probe: int, thr: float) -> None:
    box = tuple(BY_NAME[n] for n in names)
    got = u.bands(net["layers"], net["pred"], net["zero"], (HW, SW), ops=net["ops"], box=box,
                  probe_frames=probe, **KW)
    for r in (HW, SW):
        b = got[r.name]
        assert b.low <= b.default <= b.high
        assert b.default == pytest.approx(_ratio(net, r), rel=1e-12)
        # the corners are real points of the box: replaying them gives the band's ends
        ends = []
        for corner in (b.optimistic, b.pessimistic):
            p, c = load_params(), timing.SchemeConfig()
            for rng in box:
                if rng.name in corner:
                    p, c = rng.apply(corner[rng.name], p, c)
            ends.append(_ratio(net, r, p, c))
        assert b.low == pytest.approx(min(b.default, *ends), rel=1e-12)
        assert b.high == pytest.approx(max(b.default, *ends), rel=1e-12)
        v = b.verdict(thr)
        if v == "holds":
            assert min(ends) >= thr and b.default >= thr
        elif v == "does not hold":
            assert max(ends) < thr and b.default < thr
        else:
            assert v.startswith("inconclusive (")
            assert min(b.default, *ends) < thr <= max(b.default, *ends)


@given(a=st.floats(0.01, 100), b=st.floats(0.01, 100), c=st.floats(0.01, 100),
       thr=st.floats(0.01, 100))
def test_verdict_rule(a: float, b: float, c: float, thr: float) -> None:
    lo, d, hi = sorted((a, b, c))
    band = u.Band(d, lo, hi)
    v = band.verdict(thr)
    assert (v == "holds") == (lo >= thr)
    assert (v == "does not hold") == (hi < thr)
    assert v.startswith("inconclusive") == (lo < thr <= hi)
    # a three-outcome rule: one outcome only where every point of the band gives it
    def rule(r: float) -> str:
        return "holds" if r >= thr else "partly" if r > 1.0 else "does not hold"
    j = band.judge(rule)
    assert j == rule(lo) if rule(lo) == rule(hi) else j.startswith("inconclusive")
    # zero width: the default's verdict
    assert u.Band(d, d, d).verdict(thr) == ("holds" if d >= thr else "does not hold")
    s = band.scaled(2 * d)
    assert s.low == pytest.approx(2 * lo) and s.high == pytest.approx(2 * hi)


def test_zero_width_box_gives_the_default_verdict(net: dict[str, Any]) -> None:
    cfg = timing.SchemeConfig()
    flat = (u.Range("barrier_us", cfg.barrier_us, cfg.barrier_us, source="test"),
            u.Range("hw_compaction", cfg.hw_compaction, cfg.hw_compaction, source="test"))
    for box in ((), flat):
        got = u.bands(net["layers"], net["pred"], net["zero"], (HW,), ops=net["ops"], box=box,
                      **KW)[HW.name]
        ref = _ratio(net, HW)
        assert got.low == got.default == got.high == pytest.approx(ref, rel=1e-12)
        for thr in (0.5 * ref, ref, 2 * ref):
            assert got.verdict(thr) == ("holds" if got.default >= thr else "does not hold")


def test_corners_are_the_extreme_vertices(net: dict[str, Any]) -> None:
    """Against brute force: the ratio at all 2^3 vertices of a box of parameters that move
    both ratios here. The band is [min, max] of the default and the vertices: its ends are
    extreme vertices, or the default where the ratio peaks inside the box (``barrier_us``
    moves secnn_sw/dense non-monotonically: both sides pay barriers)."""
    box = tuple(BY_NAME[n] for n in ("efficiency[fp32]", "latency_cycles", "barrier_us"))
    p0, c0 = load_params(), timing.SchemeConfig()
    for r in (HW, SW):
        got = u.bands(net["layers"], net["pred"], net["zero"], (r,), ops=net["ops"], box=box,
                      probe_frames=2, **KW)[r.name]
        vertices = []
        for ends in itertools.product(*[(x.low, x.high) for x in box]):
            p, c = p0, c0
            for x, e in zip(box, ends, strict=True):
                p, c = x.apply(x.value(e, p0, c0), p, c)
            vertices.append(_ratio(net, r, p, c))
        assert len(set(vertices)) > 2  # the box moves the ratio
        assert got.high == pytest.approx(max(got.default, *vertices), rel=1e-12)
        assert got.low == pytest.approx(min(got.default, *vertices), rel=1e-12)


def test_fitted_ranges_span_the_calibration_refits() -> None:
    data = json.loads(PARAMS_PATH.read_text())
    fit, folds = data["params"], data["validation"]["folds"]
    got = {r.name: r for r in u.fitted_ranges()}
    for prec, e in fit["efficiency"].items():
        vals = [e] + [f["efficiency"][prec] for f in folds.values()]
        r = got[f"efficiency[{prec}]"]
        assert (r.low * e, r.high * e) == pytest.approx((min(vals), max(vals)), rel=1e-12)
    vals = [fit["latency_cycles"]] + [f["latency_cycles"] for f in folds.values()]
    r = got["latency_cycles"]
    assert r.relative and r.target == "params"
    assert r.value(r.high, load_params(), timing.SchemeConfig()) == pytest.approx(max(vals))
    e2e = data["validation"]["e2e"]["folds"]
    assert got["graph_kernel_us"].low * fit["graph_kernel_us"] == pytest.approx(
        min([fit["graph_kernel_us"], *e2e.values()]))
    # cta_overhead_cycles: every refit equals the fit (0): no range
    assert "cta_overhead_cycles" not in got
    assert all(r.source for r in u.BOX)


@pytest.mark.parametrize("make", [
    lambda: u.Range("no_such_field", 1, 2, source="x"),
    lambda: u.Range("barrier_us", 2.0, 1.0, source="x"),
    lambda: u.Range("barrier_us", 1.0, float("nan"), source="x"),
    lambda: u.Range("efficiency", 0.9, 1.1, source="x", target="params"),
    lambda: u.Range("latency_cycles", 0.0, 1.1, source="x", target="params", relative=True),
    lambda: u.Range("barrier_us", 1, 2, source="x", target="gpu"),
    lambda: u.Ratio("secnn_hw", ()),
    lambda: u.Ratio("secnn_hw", ("densest",)),
    lambda: u.Band(1.0, 1.1, 2.0),
])
def test_bad_ranges_refused(make: Any) -> None:
    with pytest.raises(timing.ReplayError):
        make()


def test_bad_bands_arguments_refused(net: dict[str, Any]) -> None:
    args = (net["layers"], net["pred"], net["zero"])
    for kw in (dict(ratios=()), dict(ratios=(HW,), probe_frames=0),
               dict(ratios=(HW,), probe_frames=True), dict(ratios=(HW,), box=("barrier_us",)),
               dict(ratios=(HW,), box=(BY_NAME["barrier_us"],) * 2),
               dict(ratios=(HW,), gpu=("h100", "gtx1080ti")),
               dict(ratios=(HW,), gpu="rtx9999")):
        with pytest.raises(timing.ReplayError):
            u.bands(*args, ops=net["ops"], **kw)
    with pytest.raises(timing.ReplayError, match="same frames"):
        u.bands(net["layers"], net["pred"], {k: v[:1] for k, v in net["zero"].items()}, (HW,),
                ops=net["ops"])


def test_ladder_bands(net: dict[str, Any]) -> None:
    """``ladder(box=...)``: per GPU, the bands of SE-CNN over the strongest baseline and of the
    value-prediction factor, each centred on the ladder's own ratio; no box, no bands."""
    box = tuple(BY_NAME[n] for n in ("latency_cycles", "barrier_us"))
    kw = dict(ops=net["ops"], gpus=("h100",), fusion="epilogue")
    plain = timing.ladder(net["layers"], net["zero"], net["pred"], **kw)
    assert plain.bands == {} and "bands" not in plain.as_dict()["gpus"]["h100"]
    lad = timing.ladder(net["layers"], net["zero"], net["pred"], box=box, frames=[0, 2], **kw)
    b = lad.bands["h100"]
    assert b["secnn_over_strongest"].default == lad.secnn_over_strongest("h100")
    assert b["value_prediction_factor"].default == lad.value_prediction_factor("h100")
    # the band's factors are those of timing.bands on the same frames under persistent
    sub = {k: ev.EventMaps({n: np.asarray(v)[[0, 2]] for n, v in e.items()},
                           {n: np.asarray(v)[[0, 2]] for n, v in e.fires.items()}, e.predictor)
           for k, e in (("zero", net["zero"]), ("pred", net["pred"]))}
    ref = u.band(net["layers"], sub["pred"], sub["zero"], ops=net["ops"], box=box,
                 launch="persistent", fusion="epilogue")
    got = b["secnn_over_strongest"]
    assert got.high / got.default == pytest.approx(ref.high / ref.default, rel=1e-12)
    assert got.low / got.default == pytest.approx(ref.low / ref.default, rel=1e-12)
    assert lad.as_dict()["gpus"]["h100"]["bands"]["value_prediction_factor"]["low"] <= \
        lad.value_prediction_factor("h100")
