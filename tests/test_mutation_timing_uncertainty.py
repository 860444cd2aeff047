"""The uncertainty box's pieces (``secnn_jax/timing/uncertainty.py``) against hand computations
from their documented rules: fitted ranges read from a small calibration file, physics ranges,
a range's value/current/apply on each target, the plain-data forms, a band's scaling and
verdicts, and :func:`bands`' bookkeeping (its replay count, the probe frames, the precisions
whose efficiency it keeps). Written where mutation testing (``mutmut``, docs/mutation.md)
found changes no test noticed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from secnn_jax import events as ev
from secnn_jax import timing
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import uncertainty as u
from secnn_jax.timing.params import PHYSICS, ModelParams, SchemeConfig

PARAMS = ModelParams(efficiency={"fp32": 0.5, "tf32": 0.75, "fp16": 0.8}, latency_cycles=600.0,
                     l2_bandwidth_factor=1.25, extra_kernel_us=5.0, cta_overhead_cycles=0.0,
                     graph_kernel_us=4.0)
CONFIG = SchemeConfig()


def _calibration(tmp_path: Path, data: dict[str, Any], name: str = "cal.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


FIT = {"efficiency": {"fp32": 0.5, "fp16": 0.8}, "latency_cycles": 600.0,
       "l2_bandwidth_factor": 1.2, "extra_kernel_us": 5.0, "cta_overhead_cycles": 0.0,
       "graph_kernel_us": 4.0}
FOLDS = {"a": {"efficiency": {"fp32": 0.4, "fp16": 0.8}, "latency_cycles": 660.0,
               "l2_bandwidth_factor": 1.2, "extra_kernel_us": 4.0, "cta_overhead_cycles": 5.0},
         "b": {"efficiency": {"fp32": 0.55, "fp16": 0.8}, "latency_cycles": 600.0,
               "l2_bandwidth_factor": 1.2, "cta_overhead_cycles": 0.0}}


def test_fitted_ranges_from_a_small_calibration_file(tmp_path: Path) -> None:
    """fp16's refits equal the fit and l2's too: no range; cta_overhead_cycles is fitted at 0:
    no range though a refit differs; extra_kernel_us is missing from fold b: fold a only."""
    p = _calibration(tmp_path, {"params": FIT, "validation": {
        "folds": FOLDS, "e2e": {"folds": {"a": 3.0, "b": 5.0}}}})
    got = u.fitted_ranges(p)
    assert [r.name for r in got] == ["efficiency[fp32]", "latency_cycles", "extra_kernel_us",
                                     "graph_kernel_us"]
    assert all(r.target == "params" and r.relative for r in got)
    eff, lat, extra, graph = got
    assert eff.key == "fp32" and (eff.low, eff.high) == (0.4 / 0.5, 0.55 / 0.5)
    assert (lat.low, lat.high) == (1.0, 660.0 / 600.0) and lat.key is None
    assert (extra.low, extra.high) == (4.0 / 5.0, 1.0)
    assert (graph.low, graph.high) == (3.0 / 4.0, 5.0 / 4.0)
    assert eff.source == ("leave-one-network-out refits on the per-layer cuDNN kernels "
                          "(cal.json: fit 0.5; without a 0.4, without b 0.55): "
                          "x0.800-x1.100 of the fit")
    assert extra.source == ("leave-one-network-out refits on the per-layer cuDNN kernels "
                            "(cal.json: fit 5; without a 4): x0.800-x1.000 of the fit")
    assert graph.source == ("leave-one-network-out refits on the whole-network CUDA-graph "
                            "latencies (h100_e2e.csv) (cal.json: fit 4; without a 3, without b "
                            "5): x0.750-x1.250 of the fit")


def test_fitted_ranges_without_folds_or_file(tmp_path: Path) -> None:
    assert u.fitted_ranges(tmp_path / "missing.json") == ()
    assert u.fitted_ranges(tmp_path) == ()  # a directory: not a file
    assert u.fitted_ranges(_calibration(tmp_path, {"params": FIT})) == ()
    assert u.fitted_ranges(_calibration(tmp_path, {"params": FIT, "validation": {}})) == ()
    # no e2e folds: no graph_kernel_us range; the per-layer folds still give theirs
    got = u.fitted_ranges(_calibration(tmp_path, {"params": FIT, "validation": {
        "folds": FOLDS}}))
    assert [r.name for r in got] == ["efficiency[fp32]", "latency_cycles", "extra_kernel_us"]
    # graph_kernel_us not fitted: none either, even with e2e folds
    fit = {k: v for k, v in FIT.items() if k != "graph_kernel_us"}
    got = u.fitted_ranges(_calibration(tmp_path, {"params": fit, "validation": {
        "folds": FOLDS, "e2e": {"folds": {"a": 3.0}}}}))
    assert "graph_kernel_us" not in [r.name for r in got]
    assert u.fitted_ranges(_calibration(tmp_path, {})) == ()


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage"])
def test_fitted_ranges_refuse_a_file_that_is_not_json(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(timing.ReplayError, match=r"fitted_ranges: .*bad\.json is not valid JSON"):
        u.fitted_ranges(p)


def test_physics_ranges_put_the_smaller_end_low(monkeypatch: pytest.MonkeyPatch) -> None:
    for field, p in PHYSICS.items():
        r = u._physics_range(field)
        assert (r.field, r.low, r.high, r.source, r.target) == (field, p.low, p.high, p.source,
                                                                 "config")
    rev = dict(PHYSICS)
    rev["barrier_us"] = dataclasses.replace(PHYSICS["barrier_us"], low=4.0, high=0.7)
    monkeypatch.setattr(u, "PHYSICS", MappingProxyType(rev))
    r = u._physics_range("barrier_us")
    assert (r.low, r.high, r.source) == (0.7, 4.0, PHYSICS["barrier_us"].source)
    assert not r.relative


def test_range_value_current_and_apply_per_target() -> None:
    eff = u.Range("efficiency", 0.5, 2.0, source="s", target="params", key="FP16",
                  relative=True)
    assert eff.key == "fp16" and eff.name == "efficiency[fp16]"
    assert eff.current(PARAMS, CONFIG) == 0.8
    assert eff.value(eff.low, PARAMS, CONFIG) == 0.4 and eff.value(2.0, PARAMS, CONFIG) == 1.6
    p, c = eff.apply(1.6, PARAMS, CONFIG)
    assert dict(p.efficiency) == {"fp32": 0.5, "tf32": 0.75, "fp16": 1.6} and c is CONFIG
    assert PARAMS.efficiency["fp16"] == 0.8  # the given params are not changed
    lat = u.Range("latency_cycles", 0.5, 1.5, source="s", target="params", relative=True)
    assert lat.name == "latency_cycles" and lat.current(PARAMS, CONFIG) == 600.0
    assert lat.value(1.5, PARAMS, CONFIG) == 900.0
    p, c = lat.apply(900.0, PARAMS, CONFIG)
    assert p == dataclasses.replace(PARAMS, latency_cycles=900.0) and c is CONFIG
    bar = u.Range("barrier_us", 0.5, 3.0, source="s")
    assert bar.value(3.0, PARAMS, CONFIG) == 3.0  # absolute
    assert bar.current(PARAMS, CONFIG) == CONFIG.barrier_us
    p, c = bar.apply(3.0, PARAMS, CONFIG)
    assert p is PARAMS and c == dataclasses.replace(CONFIG, barrier_us=3.0)
    rel = u.Range("barrier_us", 0.5, 2.0, source="s", relative=True)  # relative on a config
    assert rel.value(2.0, PARAMS, CONFIG) == 2.0 * CONFIG.barrier_us
    cat = u.Range("buffer_placement", "off_chip", "on_chip", source="s")
    assert cat.value("on_chip", PARAMS, CONFIG) == "on_chip"
    assert cat.apply("on_chip", PARAMS, CONFIG)[1].buffer_placement == "on_chip"
    assert eff.as_dict() == {"name": "efficiency[fp16]", "field": "efficiency", "low": 0.5,
                             "high": 2.0, "source": "s", "target": "params", "key": "fp16",
                             "relative": True}
    # equal ends are a valid (zero-width) range; None is allowed where the field takes it
    assert u.Range("barrier_us", 1.0, 1.0, source="s").low == 1.0
    assert u.Range("comparators_per_sm", 32, None, source="s").high is None


@pytest.mark.parametrize("kw,match", [
    (dict(field="provenance", low=1, high=2), "not a physics field"),
    (dict(field="layout", low=1, high=2), "not a physics field"),
    (dict(field="split_k", low=1, high=2), "not a physics field"),
    (dict(field="barrier_us", low=1, high=2, key="fp32"), "a precision for 'efficiency'"),
    (dict(field="barrier_us", low="a", high=2.0, relative=True), "relative ends must be numbers"),
    (dict(field="barrier_us", low=1.0, high="b", relative=True), "relative ends must be numbers"),
    (dict(field="barrier_us", low=-1.0, high=2.0, relative=True), "relative ends must be > 0"),
    (dict(field="barrier_us", low=float("-inf"), high=2.0), "must be finite"),
    (dict(field="barrier_us", low=True, high=2.0, relative=True), "must be numbers"),
    (dict(field="latency_cycles", low=1.0, high=2.0), "not a physics field of SchemeConfig"),
])
def test_bad_ranges_name_the_problem(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(timing.ReplayError, match=match):
        u.Range(source="s", **kw)


def test_plain_forms_of_ratios_and_bands() -> None:
    assert u.Ratio("secnn_hw", ["dense"]).baselines == ("dense",)
    assert u.Ratio("secnn_hw", ("dense",)).name == "secnn_hw/dense"
    assert u.Ratio("secnn_sw", ("dense", "zero_skip")).name == "secnn_sw/min(dense,zero_skip)"
    b = u.Band(2.0, 1.0, 4.0, pessimistic={"barrier_us": 4.0}, optimistic={"barrier_us": 0.7},
               replays=7)
    assert b.as_dict() == {"default": 2.0, "low": 1.0, "high": 4.0,
                           "pessimistic": {"barrier_us": 4.0},
                           "optimistic": {"barrier_us": 0.7}, "replays": 7}
    assert str(b) == "2.00x (1.00-4.00)"
    assert b.verdict(1.0) == "holds" and b.verdict(4.5) == "does not hold"
    assert b.verdict(4.0) == "inconclusive (1.00-4.00)" and b.verdict(1.5).startswith("incon")
    s = b.scaled(3.0)
    assert (s.default, s.low, s.high, s.replays) == (3.0, 1.5, 6.0, 7)
    assert s.pessimistic == b.pessimistic and s.optimistic == b.optimistic
    assert u.Band(2.0, 2.0, 2.0).as_dict()["pessimistic"] == {}
    for vals in ((1.0, 1.0, float("inf")), (float("nan"), 1.0, 2.0), (1.0, 0.5, 0.9)):
        with pytest.raises(timing.ReplayError, match="Band: need finite low <= default"):
            u.Band(*vals)


@pytest.fixture(scope="module")
def net() -> dict[str, Any]:
    """Two small conv layers and random events of 3 frames (zero predictor's and another)."""
    layers = (LayerGeom("pw", "conv", 1, 6, 6, 8, 6, 6, 8),
              LayerGeom("conv", "conv", 1, 6, 6, 8, 6, 6, 8, 3, 3, 1, 1, ((1, 1), (1, 1))))
    rng = np.random.default_rng(1)
    zero, pred = {}, {}
    for g in layers:
        shape = (3, g.n, g.h, g.w, g.cin)
        f = rng.random(shape) < 0.4
        zero[g.name] = np.where(f, ev.ZN, ev.ZZ).astype(np.uint8)
        pred[g.name] = rng.integers(0, 4, shape).astype(np.uint8)
    return {"layers": layers, "zero": zero, "pred": pred}


def _replay_ratio(net: dict[str, Any], r: u.Ratio, frames: list[int], params=PARAMS,
                  config=CONFIG, ops_: Any = (), **kw: Any) -> float:
    kw = dict(ops=ops_, launch="persistent", fusion="epilogue", params=params, config=config,
              frames=frames, **kw)
    g = kw.get("gpus", ("h100",))[0]
    b = timing.replay(net["layers"], net["zero"], schemes=r.baselines, **kw)
    s = timing.replay(net["layers"], net["pred"], schemes=(r.scheme,), **kw)
    base = np.minimum.reduce([b.get(g, x).total_us for x in r.baselines])
    return float(base.sum() / s.get(g, r.scheme).total_us.sum())


def test_bands_count_replays_and_probe_the_last_frames(net: dict[str, Any]) -> None:
    """One range: probes of its two ends on the last ``probe_frames`` frames, then the two
    corners on all frames; separate baseline events double every evaluation's replays."""
    hw = u.Ratio("secnn_hw", ("dense",))
    bar = u.Range("barrier_us", 0.25, 8.0, source="s")
    kw = dict(ops=(), launch="persistent", fusion="epilogue", params=PARAMS, config=CONFIG)
    got = u.bands(net["layers"], net["pred"], net["zero"], (hw,), box=(bar,), probe_frames=2,
                  **kw)[hw.name]
    # evaluations: default (all), probe default, two probes, two corners: 6, x2 event sets
    assert got.replays == 12
    lo = _replay_ratio(net, hw, [1, 2], config=dataclasses.replace(CONFIG, barrier_us=0.25))
    hi = _replay_ratio(net, hw, [1, 2], config=dataclasses.replace(CONFIG, barrier_us=8.0))
    assert lo != hi
    opt, pes = (8.0, 0.25) if hi >= lo else (0.25, 8.0)
    assert got.optimistic == {"barrier_us": opt} and got.pessimistic == {"barrier_us": pes}
    ends = [_replay_ratio(net, hw, [0, 1, 2], config=dataclasses.replace(CONFIG, barrier_us=v))
            for v in (opt, pes)]
    d = _replay_ratio(net, hw, [0, 1, 2])
    assert got.default == pytest.approx(d, rel=1e-12)
    assert (got.low, got.high) == pytest.approx((min(d, *ends), max(d, *ends)), rel=1e-12)
    # one event set for both sides (baseline_events None): one replay per evaluation
    same = u.bands(net["layers"], net["pred"], None, (hw,), box=(bar,), **kw)[hw.name]
    assert same.replays == 6
    # a probe longer than the stream replays every frame: the probe default is the default
    # and each end's probe is its corner (3 evaluations)
    long = u.bands(net["layers"], net["pred"], net["zero"], (hw,), box=(bar,), probe_frames=9,
                   **kw)[hw.name]
    assert long.replays == 2 * 3 and (long.low, long.high) == (got.low, got.high)
    # no box: the default alone
    assert u.bands(net["layers"], net["pred"], net["zero"], (hw,), box=(), **kw)[
        hw.name].replays == 2


def test_bands_keep_only_the_efficiencies_the_replay_reads(net: dict[str, Any]) -> None:
    """fp32 replays read fp32's efficiency; an fp16 range moves nothing and is left out of
    the corners (no probe replays for it); an end equal to the default is not replayed."""
    hw = u.Ratio("secnn_hw", ("dense",))
    kw = dict(ops=(), launch="persistent", fusion="epilogue", params=PARAMS, config=CONFIG)
    f16 = u.Range("efficiency", 0.5, 1.5, source="s", target="params", key="fp16",
                  relative=True)
    f32 = u.Range("efficiency", 0.5, 1.0, source="s", target="params", key="fp32",
                  relative=True)
    got = u.bands(net["layers"], net["pred"], net["zero"], (hw,), box=(f16, f32), **kw)[hw.name]
    # default, probe default, the fp32 low end (its high end is the default), 2 corners
    assert got.replays == 2 * 5
    assert set(got.optimistic) == set(got.pessimistic) == {"efficiency[fp32]"}
    assert sorted([got.optimistic["efficiency[fp32]"], got.pessimistic["efficiency[fp32]"]]) \
        == [0.25, 0.5]
    # a range with no effect on the ratio stays at its default in both corners
    flat = u.Range("hw_dependency_us", 0.1, 2.0, source="s")
    dense = u.Ratio("dense", ("dense",))
    got = u.bands(net["layers"], net["pred"], net["zero"], (dense,), box=(flat,), **kw)
    assert got[dense.name].optimistic == got[dense.name].pessimistic == {}


def test_bands_default_point_and_one_ratio_helper(net: dict[str, Any]) -> None:
    """No params/config: the GPU's calibration and the reference configuration; ``band`` is
    ``bands`` of one ratio over the fastest of its baselines."""
    kw = dict(ops=(), launch="persistent", fusion="epilogue", box=())
    r = u.Ratio("secnn_hw", ("dense", "zero_skip"))
    b = u.band(net["layers"], net["pred"], net["zero"], **kw)
    want = _replay_ratio(net, r, [0, 1, 2], params=None, config=None)
    assert b.default == pytest.approx(want, rel=1e-12)
    assert b == u.bands(net["layers"], net["pred"], net["zero"], (r,), **kw)[r.name]
    sw = u.band(net["layers"], net["pred"], net["zero"], scheme="secnn_sw", baselines=("dense",),
                gpu=timing.get_gpu("h100"), **kw)
    assert sw.default == pytest.approx(_replay_ratio(net, u.Ratio("secnn_sw", ("dense",)),
                                                     [0, 1, 2], params=None, config=None),
                                       rel=1e-12)


@pytest.mark.parametrize("kw,match", [
    (dict(ratios=("secnn_hw/dense",)), "ratios="),
    (dict(ratios=(u.Ratio("secnn_hw", ("dense",)), "x")), "ratios="),
    (dict(box=(u.BOX[0], "barrier_us")), "box: a sequence of Range"),
    (dict(probe_frames=1.5), "probe_frames=1.5"),
    (dict(probe_frames=-1), "probe_frames=-1"),
    (dict(gpu=3), "gpu=3"),
])
def test_bands_refuse_bad_arguments_naming_them(net: dict[str, Any], kw: dict[str, Any],
                                                match: str) -> None:
    args: dict[str, Any] = dict(ratios=(u.Ratio("secnn_hw", ("dense",)),), box=())
    args.update(kw)
    with pytest.raises(timing.ReplayError, match=match):
        u.bands(net["layers"], net["pred"], net["zero"], args.pop("ratios"), ops=(), **args)


@pytest.mark.parametrize("events", [{}, [("pw", np.zeros((1, 1)))]])
def test_bands_refuse_events_that_are_not_a_mapping(net: dict[str, Any], events: Any) -> None:
    r = (u.Ratio("secnn_hw", ("dense",)),)
    with pytest.raises(timing.ReplayError, match="secnn_events: a non-empty mapping"):
        u.bands(net["layers"], events, net["zero"], r, ops=(), box=())
    with pytest.raises(timing.ReplayError, match="baseline_events: a non-empty mapping"):
        u.bands(net["layers"], net["pred"], events, r, ops=(), box=())


def test_fitted_ranges_of_every_fitted_field(tmp_path: Path) -> None:
    fit = {**FIT, "cta_overhead_cycles": 10.0}
    folds = {"a": {**FOLDS["a"], "l2_bandwidth_factor": 1.5, "cta_overhead_cycles": 5.0},
             "b": {**FOLDS["b"], "cta_overhead_cycles": 20.0}}
    got = {r.name: r for r in u.fitted_ranges(_calibration(tmp_path, {
        "params": fit, "validation": {"folds": folds}}))}
    assert set(got) == {"efficiency[fp32]", "latency_cycles", "l2_bandwidth_factor",
                        "extra_kernel_us", "cta_overhead_cycles"}
    assert (got["l2_bandwidth_factor"].low, got["l2_bandwidth_factor"].high) == (1.0, 1.25)
    assert (got["cta_overhead_cycles"].low, got["cta_overhead_cycles"].high) == (0.5, 2.0)


def test_bands_replay_the_given_precision_ops_and_gpu_calibration(
        net: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from secnn_jax.timing import gpufile
    from secnn_jax.timing.opkernels import OpGeom

    hw = u.Ratio("secnn_hw", ("dense",))
    ops = (OpGeom("pool", "pool", 0, reads=288, param_reads=0, writes=288, flops=288),)
    kw = dict(launch="persistent", fusion="epilogue", box=(), config=CONFIG)
    for prec in ("fp32", "fp16"):
        got = u.bands(net["layers"], net["pred"], net["zero"], (hw,), ops=ops, precision=prec,
                      params=PARAMS, **kw)[hw.name]
        want = _replay_ratio(net, hw, [0, 1, 2], ops_=ops, precision=prec)
        assert got.default == pytest.approx(want, rel=1e-12)
    assert _replay_ratio(net, hw, [0, 1, 2], ops_=ops) != _replay_ratio(net, hw, [0, 1, 2])
    assert _replay_ratio(net, hw, [0, 1, 2], precision="fp16") != _replay_ratio(
        net, hw, [0, 1, 2])
    # no params: the GPU's own calibration (a loaded GPU file's, here put in place by hand)
    mine = dataclasses.replace(PARAMS, latency_cycles=5000.0)
    monkeypatch.setitem(gpufile._PARAMS, "v100", mine)
    got = u.bands(net["layers"], net["pred"], net["zero"], (hw,), ops=(), gpu="v100", **kw)
    want = _replay_ratio(net, hw, [0, 1, 2], params=mine, gpus=("v100",))
    assert got[hw.name].default == pytest.approx(want, rel=1e-12)


def test_a_refit_at_zero_gives_the_values_not_a_refused_factor(tmp_path: Path) -> None:
    """A field fitted above 0 whose leave-one-out refit is 0 has no factor on the fit: its
    range is the values themselves (absolute), not a ReplayError when BOX is built."""
    folds = {"a": {**FOLDS["a"], "cta_overhead_cycles": 0.0},
             "b": {**FOLDS["b"], "cta_overhead_cycles": 8.0}}
    p = _calibration(tmp_path, {"params": {**FIT, "cta_overhead_cycles": 5.0},
                                "validation": {"folds": folds}})
    got = {r.name: r for r in u.fitted_ranges(p)}
    cta = got["cta_overhead_cycles"]
    assert not cta.relative and (cta.low, cta.high) == (0.0, 8.0)
    assert cta.source.endswith(": 0-8")
    assert got["latency_cycles"].relative  # the others keep their factors
