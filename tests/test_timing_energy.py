"""Energy and area model: hand-computed energies, monotonicity, static-only idle, buffer sizes,
sources (synthetic layers; references computed by hand from the documented formulas)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from secnn_jax import timing
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import energy as E
from secnn_jax.timing import kernels as K
from secnn_jax.timing import params as P
from secnn_jax.timing.gpus import GPUS, H100

PARAMS = P.ModelParams(efficiency={"fp32": 0.5, "tf32": 0.8, "fp16": 0.8}, latency_cycles=600.0,
                       l2_bandwidth_factor=1.0, extra_kernel_us=5.0, graph_kernel_us=2.0)


def test_every_gpu_has_sourced_energy_parameters() -> None:
    fields = [f.name for f in dataclasses.fields(E.EnergyParams)
              if f.name not in ("gpu", "sources")]
    for key in GPUS:
        p = E.ENERGY[key]
        for f in fields:
            assert p.sources.get(f), (key, f)
        assert 0 < p.static_w < p.tdp_w


def test_scaling_rule_by_hand() -> None:
    p = E.ENERGY["h100"]
    s = (5 / 45) * (0.8 / 0.9) ** 2
    assert p.fma_pj["fp32"] == pytest.approx((0.9 + 3.7) * s)
    assert p.smem_byte_pj == pytest.approx(10.0 / 8 * s) and p.dram_byte_pj == 3.9 * 8


def test_one_layer_energy_by_hand() -> None:
    g = LayerGeom.conv("c", n=1, h=32, cin=64, cout=64, k=3)
    ev = {"c": np.ones((1, *g.in_nhwc), np.uint8)}
    r = timing.replay([g], ev, schemes=("dense",), params=PARAMS, ops=())
    res = r.get("h100", "dense")
    kc = K.dense_cost(g, H100, "fp32", PARAMS)
    t = kc.tile
    macs = kc.n_ctas * kc.cta_work * 128 * H100.ceiling_frac["fp32"] * 0.5
    assert macs == pytest.approx(kc.n_ctas * t.bm * t.bn * -(-g.k // t.bk) * t.bk)
    nbytes = 4.0 * (g.n_inputs + g.weights + g.n_outputs)
    p = E.ENERGY["h100"]
    smem = 2 * 4 * macs * (1 / t.bm + 1 / t.bn)
    want = {"compute": macs * p.fma_pj["fp32"] * 1e-6,
            "on_chip": (16 * macs * p.rf_byte_pj + smem * p.smem_byte_pj
                        + nbytes * p.l2_byte_pj) * 1e-6,  # fits in L2
            "dram": 0.0,
            "issue": macs * p.issue_simt_pj["fp32"] * 1e-6,
            "static": p.static_w * float(res.total_us[0])}
    for k, v in want.items():
        assert res.energy_parts[k][0] == pytest.approx(v, rel=1e-9), k
    assert res.energy_uj[0] == pytest.approx(sum(want.values()))


def test_issue_overhead_calibration_by_hand() -> None:
    """At the peak dense rate, arithmetic + register file + issue overhead equal the board's
    dynamic power (the calibration premise), for every GPU and datapath that has a rate."""
    for key, g in GPUS.items():
        p = E.ENERGY[key]
        seconds = 1e-3
        for prec in ("fp32", "fp16", "tf32"):
            for kind, rate in (("fma_simt", g.simt_fma_per_clk(prec)),
                               ("fma_tensor", g.tensor_fma_per_clk.get(prec, 0))):
                if rate == 0 or (kind == "fma_simt" and rate < g.simt_fma_per_clk("fp32")):
                    continue  # no tensor cores for prec / capped at FP32's overhead
                ops = rate * g.sms * g.clock_mhz * 1e6 * seconds
                work = {k: np.zeros(1) for k in E.WORK_KEYS} | {kind: np.full(1, ops)}
                parts = E.energy_parts(work, np.zeros(1), key, prec)
                dynamic_uj = (p.tdp_w - p.static_w) * seconds * 1e6
                got = parts["compute"][0] + parts["on_chip"][0] + parts["issue"][0]
                assert got == pytest.approx(dynamic_uj, rel=1e-9), (key, prec, kind)
        # Pascal's FP16 lanes run at 1/64 rate: their per-op overhead is capped at FP32's.
        assert p.issue_simt_pj["fp16"] <= p.issue_simt_pj["fp32"]
    assert E.ENERGY["gtx1080ti"].issue_simt_pj["fp16"] == E.ENERGY["gtx1080ti"].issue_simt_pj[
        "fp32"]


def test_no_work_costs_only_static_energy() -> None:
    parts = E.energy_parts({k: np.zeros(2) for k in E.WORK_KEYS}, np.array([10.0, 20.0]),
                           "h100", "fp32")
    for k in ("compute", "on_chip", "dram", "issue"):
        assert (parts[k] == 0).all()
    np.testing.assert_allclose(parts["static"], E.ENERGY["h100"].static_w * np.array([10., 20.]))


def test_energy_never_decreases_with_more_work_or_bytes() -> None:
    base = {k: np.full(1, 1e6) for k in E.WORK_KEYS}
    e0 = E.energy_parts(base, np.ones(1), "h100", "fp16")
    for k in E.WORK_KEYS:
        more = dict(base, **{k: base[k] * 2})
        e1 = E.energy_parts(more, np.ones(1), "h100", "fp16")
        assert sum(v[0] for v in e1.values()) > sum(v[0] for v in e0.values()), k
    # Through the replay: more mispredictions never cost SE-CNN less energy.
    layers = [LayerGeom.conv("a", n=1, h=8, cin=16, cout=32, k=3),
              LayerGeom.conv("b", n=1, h=8, cin=32, cout=32, k=3)]
    rng = np.random.default_rng(0)
    ev = {g.name: rng.choice(4, size=(1, *g.in_nhwc), p=(.5, .1, .3, .1)).astype(np.uint8)
          for g in layers}
    prev = None
    for frac in (0.0, 0.3, 1.0):
        flipped = {k: np.where(rng.random(v.shape) < frac, v | 1, v).astype(np.uint8)
                   for k, v in ev.items()}
        r = timing.replay(layers, flipped, schemes=("secnn_hw",), params=PARAMS, ops=())
        e = float(r.get("h100", "secnn_hw").energy_uj[0])
        assert prev is None or e >= prev - 1e-9
        prev, ev = e, flipped


def test_buffer_sizes_and_area() -> None:
    layers = [LayerGeom.conv("a", n=1, h=16, cin=3, cout=8, k=3),
              LayerGeom.dense("fc", n=1, fin=100, fout=10)]
    assert E.buffer_bytes(layers, "fp32") == (16 * 16 * 3 + 100) * 4 * 2
    assert E.buffer_bytes(layers, "fp16", state_values=1) == (16 * 16 * 3 + 100) * 2
    a = E.secnn_area(layers, H100)
    assert a.comparators_mm2 == pytest.approx(128 * 132 * 137.0 * (5 / 45) ** 2 / 1e6)
    assert a.buffer_mm2 == pytest.approx(a.buffer_bytes * 8 * 0.021 * 1.6 / 1e6)
    assert a.placement_shares["on_chip"] > a.placement_shares["off_chip"] > 0


def test_method_buffers() -> None:
    layers = [LayerGeom.conv("a", n=1, h=16, cin=3, cout=8, k=3)]
    n_in, n_out = 16 * 16 * 3, 16 * 16 * 8
    assert E.method_buffer_bytes(layers, "fp32", "secnn") == E.buffer_bytes(layers, "fp32")
    assert E.method_buffer_bytes(layers, "fp32", "deltacnn") == 4 * (n_in + n_out)
    assert E.method_buffer_bytes(layers, "fp16", "cbinfer") == 2 * (n_in + n_out)
    with pytest.raises(ValueError, match="unknown method"):
        E.method_buffer_bytes(layers, "fp32", "magic")


def test_sanity_anchor_large_batch_dense_power() -> None:
    """Dense ResNet-50 at batch 16 (fp16, H100, graph launch): modelled power below the board
    power and within the plausible band, energy per image below the measured-latency bound."""
    from experiments.energy import PLAUSIBLE_POWER, sanity_anchors

    a = sanity_anchors()
    assert 0 < a.modelled_power_w < a.board_power_w
    assert PLAUSIBLE_POWER[0] <= a.power_fraction <= PLAUSIBLE_POWER[1] and a.plausible
    assert a.modelled_mj_per_image < a.bound_mj_per_image
    assert sum(a.parts_mj_per_image.values()) == pytest.approx(a.modelled_mj_per_image)
    assert a.parts_mj_per_image["issue"] > a.parts_mj_per_image["compute"]


def test_software_compares_pay_issue_overhead_hardware_compares_do_not() -> None:
    """Same events: secnn_sw's compares are SIMT instructions (issue overhead), secnn_hw's run on
    its comparators; the arithmetic of the compares themselves is the same."""
    g = LayerGeom.conv("c", n=1, h=16, cin=32, cout=32, k=3)
    ev = {"c": np.zeros((2, *g.in_nhwc), np.uint8)}  # all ZZ: only the compares work
    r = timing.replay([g], ev, schemes=("secnn_sw", "secnn_hw"), params=PARAMS, ops=())
    sw, hw = r.get("h100", "secnn_sw"), r.get("h100", "secnn_hw")
    assert (sw.work["compares"] == hw.work["compares"]).all()
    assert (hw.work["compare_instructions"] == 0).all()
    assert (sw.work["compare_instructions"] >= sw.work["compares"]).all()
    assert (sw.work["fma_simt"] == hw.work["fma_simt"]).all()
    assert (sw.work["fma_tensor"] == hw.work["fma_tensor"]).all()
    extra = sw.work["compare_instructions"] * E.ENERGY["h100"].issue_simt_pj["fp32"] * 1e-6
    np.testing.assert_allclose(sw.energy_parts["issue"] - hw.energy_parts["issue"], extra,
                               rtol=1e-9)


@pytest.mark.parametrize(("launch", "compaction", "placement"),
                         [("graph", "auto", "cache"), ("persistent", "software", "off_chip"),
                          ("eager", "none", "on_chip")])
def test_energy_prices_the_work_the_schedules_kernels_counted(launch: str, compaction: str,
                                                              placement: str) -> None:
    """Energy from the same graphs' counted work: every scheme's work is the sum over its
    schedule's kernels of what each counted (one column per span), each kernel's L2 + DRAM
    bytes are the bytes the scheduler moved for it (an on-chip prediction buffer's traffic is
    SRAM's, in neither), compares sit on SE-CNN's compare kernels (one per input) and the
    peers' layer kernels only, and the energy is priced from that sum."""
    from secnn_jax.timing.opkernels import OpGeom

    layers = [LayerGeom.conv("a", n=1, h=12, cin=4, cout=8, k=3, stride=2),
              LayerGeom.conv("b", n=1, h=6, cin=8, cout=8, k=1),
              LayerGeom.dense("fc", n=1, fin=6 * 6 * 8, fout=10)]
    ops = [OpGeom(name="bn", kind="affine", after=0, reads=layers[0].n_outputs,
                  param_reads=16, writes=layers[0].n_outputs, flops=2 * layers[0].n_outputs)]
    rng = np.random.default_rng(7)
    ev = {g.name: rng.choice(4, size=(2, *g.in_nhwc), p=(0.4, 0.2, 0.3, 0.1)).astype(np.uint8)
          for g in layers}
    r = timing.replay(layers, ev, params=PARAMS, ops=ops, launch=launch,
                      schemes=timing.SCHEMES,
                      config=P.SchemeConfig(sw_compaction=compaction,
                                            buffer_placement=placement))
    for s in r.schemes:
        x = r.get("h100", s)
        assert set(x.span_work) == set(x.spans), s
        for track, (labels, _, _) in x.spans.items():
            sw = x.span_work[track]
            assert set(sw) == set(E.WORK_KEYS)
            assert all(v.shape == (2, len(labels)) for v in sw.values()), (s, track)
            moved = sw["l2_bytes"] + sw["dram_bytes"]
            np.testing.assert_allclose(moved, x.span_args[track]["bytes"], rtol=1e-12)
            cmp_cols = [i for i, lab in enumerate(labels) if lab.endswith(":compare")
                        or (s in ("deltacnn", "cbinfer") and lab in r.layers)]
            others = np.delete(sw["compares"], cmp_cols, axis=1)
            assert (others == 0).all(), (s, track)
            if s in ("secnn_sw", "secnn_hw") and track == "serial":
                np.testing.assert_array_equal(sw["compares"][:, cmp_cols],
                                              np.array([[g.n_inputs for g in layers]] * 2))
        for k in E.WORK_KEYS:
            total = sum(x.span_work[t][k].sum(1) for t in x.spans)
            np.testing.assert_allclose(x.work[k], total, rtol=1e-12, atol=0.0)
        parts = E.energy_parts(E.graph_work(x.span_work), x.total_us, "h100", "fp32")
        for c, v in x.energy_parts.items():
            np.testing.assert_array_equal(v, parts[c])
