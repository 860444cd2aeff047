"""The attribution ladder (``secnn_jax/timing/ladder.py``) against its documented rules: the
oracle's events from fires maps or from codes alone, the ladder's derived ratios from
hand-made step times, every step's times against a direct replay of that step, the frames and
GPUs it reports, and its bands from plain-dict and :class:`EventMaps` events alike. Written
where mutation testing (``mutmut``, docs/mutation.md) found changes no test noticed."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

from secnn_jax import events as ev
from secnn_jax import timing
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import uncertainty as u
from secnn_jax.timing.opkernels import OpGeom
from secnn_jax.timing.params import ModelParams, SchemeConfig

PARAMS = ModelParams(efficiency={"fp32": 0.5, "tf32": 0.75, "fp16": 0.8}, latency_cycles=600.0,
                     l2_bandwidth_factor=1.25, extra_kernel_us=5.0, cta_overhead_cycles=0.0,
                     graph_kernel_us=4.0)
#: the module (``secnn_jax.timing.ladder`` is also the name of its function)
L = importlib.import_module("secnn_jax.timing.ladder")
KEYS = [s.key for s in L.LADDER]
#: One BatchNorm that fuses into the first layer's epilogue (fusion matters).
OPS = (OpGeom("bn", "affine", 0, reads=288, param_reads=16, writes=288, flops=576,
              epilogue_of=0),)


def test_oracle_events_from_fires_and_from_codes() -> None:
    rng = np.random.default_rng(0)
    fires = {"a": rng.random((2, 3, 4)) < 0.5, "b": rng.random((2, 5)) < 0.3}
    codes = {k: rng.integers(0, 4, v.shape).astype(np.uint8) for k, v in fires.items()}
    orc = L.oracle_events(ev.EventMaps(codes, fires, "secnn"))
    assert isinstance(orc, ev.EventMaps) and orc.predictor == "oracle"
    for k, f in fires.items():
        np.testing.assert_array_equal(orc[k], np.where(f, ev.VH, ev.ZZ))
        assert orc[k].dtype == np.uint8
        np.testing.assert_array_equal(orc.fires[k], f)
    # codes alone: every code but ZZ becomes VH (exact for the zero predictor's codes)
    plain = {"a": np.array([[ev.ZZ, ev.ZN, ev.VH, ev.VM]], np.uint8)}
    orc = L.oracle_events(plain)
    assert isinstance(orc, ev.EventMaps) and orc.fires is None and orc.predictor == "oracle"
    np.testing.assert_array_equal(orc["a"], [[ev.ZZ, ev.VH, ev.VH, ev.VH]])
    assert orc["a"].dtype == np.uint8


def _hand_ladder(bands: dict | None = None) -> L.Ladder:
    # mean frame times 80, 40, 20, 25, 10, 5, 4 (frames of 2)
    means = [80.0, 40.0, 20.0, 25.0, 10.0, 5.0, 4.0]
    times = {"h100": {k: np.array([m - 1.0, m + 1.0]) for k, m in zip(KEYS, means, strict=True)},
             "v100": {k: np.array([2 * m, 2 * m]) for k, m in zip(KEYS, means, strict=True)}}
    return L.Ladder(gpus=("h100", "v100"), frames=(3, 4), fusion="epilogue", times_us=times,
                    bands=bands or {})


def test_ladder_ratios_from_hand_made_times() -> None:
    lad = _hand_ladder()
    assert lad.mean_us("h100") == dict(zip(KEYS, [80.0, 40.0, 20.0, 25.0, 10.0, 5.0, 4.0],
                                           strict=True))
    assert lad.step_ratios("h100") == dict(zip(KEYS, [1.0, 2.0, 2.0, 0.8, 2.5, 2.0, 1.25],
                                               strict=True))
    assert lad.speedup("h100", "dense/graph", "dense/eager") == 2.0
    assert lad.value_prediction_factor("h100") == 2.0
    assert lad.oracle_factor("h100") == 2.5
    assert lad.secnn_over_strongest("h100") == 4.0  # min(20, 25) / 5
    assert lad.secnn_over_strongest("v100") == 4.0 and lad.mean_us("v100")["dense/eager"] == 160
    d = lad.as_dict()
    assert d["fusion"] == "epilogue" and d["frames"] == [3, 4]
    assert d["steps"] == [{"key": s.key, "scheme": s.scheme, "launch": s.launch,
                           "events": s.events, "mechanism": s.mechanism} for s in L.LADDER]
    assert set(d["gpus"]) == {"h100", "v100"}
    assert d["gpus"]["h100"] == {"mean_us": lad.mean_us("h100"),
                                 "step_ratio": lad.step_ratios("h100"),
                                 "value_prediction_factor": 2.0, "oracle_factor": 2.5,
                                 "secnn_over_strongest": 4.0}
    b = u.Band(4.0, 3.0, 5.0)
    d = _hand_ladder({"v100": {"secnn_over_strongest": b}}).as_dict()
    assert "bands" not in d["gpus"]["h100"]
    assert d["gpus"]["v100"]["bands"] == {"secnn_over_strongest": b.as_dict()}
    # the strongest baseline is whichever persistent baseline is faster
    t = {k: np.array([v]) for k, v in zip(KEYS, [8.0, 8.0, 30.0, 12.0, 6.0, 3.0, 2.0],
                                          strict=True)}
    assert L.Ladder(("h100",), (0,), "none", {"h100": t}).secnn_over_strongest("h100") == 4.0


@pytest.fixture(scope="module")
def net() -> dict[str, Any]:
    layers = (LayerGeom("pw", "conv", 1, 6, 6, 8, 6, 6, 8),
              LayerGeom("conv", "conv", 1, 6, 6, 8, 6, 6, 8, 3, 3, 1, 1, ((1, 1), (1, 1))))
    rng = np.random.default_rng(2)
    zero, pred, fires = {}, {}, {}
    for g in layers:
        shape = (3, g.n, g.h, g.w, g.cin)
        f = rng.random(shape) < 0.4
        fires[g.name] = f
        zero[g.name] = np.where(f, ev.ZN, ev.ZZ).astype(np.uint8)
        nz = rng.random(shape) < 0.5
        pred[g.name] = np.where(nz, np.where(f, ev.VH, ev.VM),
                                np.where(f, ev.ZN, ev.ZZ)).astype(np.uint8)
    return {"layers": layers, "zero": zero, "pred": pred, "fires": fires}


def test_every_step_is_its_own_replay(net: dict[str, Any]) -> None:
    kw = dict(ops=(), fusion="epilogue", params=PARAMS, frames=[0, 2])
    lad = L.ladder(net["layers"], net["zero"], net["pred"], gpus=("h100", "v100"), **kw)
    assert lad.gpus == ("h100", "v100") and lad.frames == (0, 2) and lad.fusion == "epilogue"
    assert lad.bands == {}
    src = {"zero": net["zero"], "predictor": net["pred"],
           "oracle": L.oracle_events(net["zero"])}
    for g in ("h100", "v100"):
        assert list(lad.times_us[g]) == KEYS
        for s in L.LADDER:
            r = timing.replay(net["layers"], src[s.events], schemes=(s.scheme,), gpus=(g,),
                              launch=s.launch, **kw)
            np.testing.assert_array_equal(lad.times_us[g][s.key], r.get(g, s.scheme).total_us)
    # the steps differ: each replays other events or another launch model
    m = lad.mean_us("h100")
    assert len(set(m.values())) == len(m)
    lad16 = L.ladder(net["layers"], net["zero"], net["pred"], precision="fp16", **kw)
    assert lad16.mean_us("h100") != m


@pytest.mark.parametrize("fusion", ["none", "epilogue"])
def test_ladder_bands_from_plain_and_event_maps(net: dict[str, Any], fusion: str) -> None:
    """Bands on the replayed frames only, under persistent and the ladder's fusion, centred on
    the ladder's ratios; plain-dict events and EventMaps of the same codes give the same
    bands."""
    box = (u.Range("barrier_us", 0.5, 3.0, source="s"),
           u.Range("latency_cycles", 0.5, 2.0, source="s", target="params", relative=True))
    cfg = SchemeConfig(barrier_us=1.0)
    kw = dict(ops=OPS, fusion=fusion, params=PARAMS, config=cfg, frames=[1, 2], box=box,
              probe_frames=1)
    plain = L.ladder(net["layers"], net["zero"], net["pred"], **kw)
    maps = L.ladder(net["layers"], ev.EventMaps(net["zero"], net["fires"], "zero"),
                    ev.EventMaps(net["pred"], net["fires"], "secnn"), **kw)
    sub = {k: {n: v[[1, 2]] for n, v in net[k].items()} for k in ("zero", "pred")}
    ref = u.bands(net["layers"], sub["pred"], sub["zero"],
                  (u.Ratio("secnn_hw", ("dense", "zero_skip")), u.Ratio("secnn_hw",
                                                                        ("secnn_hw",))),
                  ops=OPS, launch="persistent", fusion=fusion, params=PARAMS, config=cfg,
                  box=box, probe_frames=1)
    for lad in (plain, maps):
        b = lad.bands["h100"]
        assert set(b) == {"secnn_over_strongest", "value_prediction_factor"}
        for name, rname, value in (
                ("secnn_over_strongest", "secnn_hw/min(dense,zero_skip)",
                 lad.secnn_over_strongest("h100")),
                ("value_prediction_factor", "secnn_hw/secnn_hw",
                 lad.value_prediction_factor("h100"))):
            assert b[name].default == value
            assert b[name] == ref[rname].scaled(value)
    assert plain.bands == maps.bands


def test_ladder_names_the_bad_events(net: dict[str, Any]) -> None:
    bad = {k: np.where(v == ev.ZN, 7, v).astype(np.uint8) for k, v in net["zero"].items()}
    with pytest.raises(timing.ReplayError, match=r"zero_events\['pw'\]: event code 7"):
        L.ladder(net["layers"], bad, net["pred"], ops=())
    # fusion reaches the bands: with an epilogue op, none and epilogue differ
    kw = dict(ops=OPS, params=PARAMS, box=(u.Range("barrier_us", 0.5, 3.0, source="s"),))
    a, b = (L.ladder(net["layers"], net["zero"], net["pred"], fusion=f, **kw).bands["h100"]
            for f in ("none", "epilogue"))
    assert a["secnn_over_strongest"] != b["secnn_over_strongest"]
