"""Timing model: hand-computable kernels, scheme invariants, determinism (synthetic events)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from secnn_jax import timing, workmaps
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import kernels as S
from secnn_jax.timing import params as P
from secnn_jax.timing import sm
from secnn_jax.timing.gpus import H100
from secnn_jax.timing.launch import LaunchCosts, chain

PARAMS = P.ModelParams(efficiency={"fp32": 0.5, "tf32": 0.8, "fp16": 0.8}, latency_cycles=600.0,
                       l2_bandwidth_factor=1.0, extra_kernel_us=5.0)


def small_net(n: int = 1) -> list[LayerGeom]:
    """Padded, strided, grouped, depthwise, 1x1, dilated and dense layers."""
    return [
        LayerGeom.conv("stem", n=n, h=16, cin=3, cout=16, k=3, stride=2),
        LayerGeom.conv("c3", n=n, h=8, cin=16, cout=32, k=3),
        LayerGeom.conv("dw", n=n, h=8, cin=32, cout=32, k=3, groups=32),
        LayerGeom.conv("grp", n=n, h=8, cin=32, cout=32, k=3, groups=4),
        LayerGeom.conv("pw", n=n, h=8, cin=32, cout=64, k=1),
        LayerGeom.conv("dil", n=n, h=8, cin=64, cout=32, k=3, dilation=2),
        LayerGeom.dense("fc", n=n, fin=32 * 64, fout=10),
    ]


def random_events(layers: list[LayerGeom], frames: int, p: tuple[float, ...], seed: int
                  ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {g.name: rng.choice(4, size=(frames, *g.in_nhwc), p=p).astype(np.uint8)
            for g in layers}


def totals(r: timing.ReplayResult, gpu: str = "h100") -> dict[str, np.ndarray]:
    return {s: r.get(gpu, s).total_cycles for s in r.schemes}


# --- hand-computable -----------------------------------------------------------------------

SIMT_TILE = sm.Tile(64, 64, 8, 128, 64, 2, "simt")


def test_one_cta_by_hand() -> None:
    # One 64x64 tile, K = 64: a single CTA with w = 64*64*64 / rate, d = 8 steps * lat / 2.
    kc = S.gemm_cost(H100, "fp32", params=PARAMS, m=64, ncol=64, k_channels=64, taps=1,
                     batch=1, io_bytes=0.0, unit="simt", tiles=[SIMT_TILE])
    rate = 128 * H100.ceiling_frac["fp32"] * 0.5
    w, d = 64 * 64 * 64 / rate, 8 * 600.0 / 2
    assert kc.n_ctas == 1 and kc.kernels == 1 and kc.split_k == 1
    assert kc.cycles == pytest.approx(max(w, d))
    assert kc.busy_cycles == pytest.approx(w)


@pytest.mark.parametrize("waves", [1, 2, 5])
def test_exactly_k_waves(waves: int) -> None:
    # Occupancy by hand: 128 threads (16/SM), 4 warps (16/SM), 64 regs x 128 threads (8/SM),
    # 2 x (64 + 64) x 8 x 4 B = 8 KiB smem (28/SM), 32 CTAs: the registers limit it to 8.
    occ = 8
    assert SIMT_TILE.occupancy(H100, 4) == occ
    n_ctas = waves * H100.sms * occ
    m = n_ctas * 64  # n_ctas row tiles, one column tile
    kc = S.gemm_cost(H100, "fp32", params=PARAMS, m=m, ncol=64, k_channels=512, taps=1,
                     batch=1, io_bytes=0.0, unit="simt", tiles=[SIMT_TILE])
    rate = 128 * H100.ceiling_frac["fp32"] * 0.5
    w, d = 64 * 64 * 512 / rate, 64 * 600.0 / 2
    assert kc.n_ctas == n_ctas and kc.waves == pytest.approx(waves)
    assert kc.cycles == pytest.approx(waves * max(occ * w, d))
    # One more CTA opens a tail wave on one SM holding a single CTA.
    kc2 = S.gemm_cost(H100, "fp32", params=PARAMS, m=m + 64, ncol=64, k_channels=512, taps=1,
                      batch=1, io_bytes=0.0, unit="simt", tiles=[SIMT_TILE])
    assert kc2.cycles == pytest.approx(waves * max(occ * w, d) + max(w, d))


def test_dealt_makespan_matches_uniform_closed_form() -> None:
    for n, occ in [(1, 1), (131, 2), (132, 2), (1000, 3), (5000, 4)]:
        w = np.full((1, n), 10.0)
        d = np.full((1, n), 25.0)
        got = sm.dealt_makespan(w, d, 132, occ)[0]
        assert got == pytest.approx(float(sm.uniform_makespan(n, 10.0, 25.0, 132, occ)))


def test_dealt_makespan_by_hand() -> None:
    # 4 CTAs on 2 SMs, occupancy 1: sorted [9, 5, 3, 1]; SM0 gets 9 and 3.
    w = np.array([[3.0, 9.0, 1.0, 5.0]])
    assert sm.dealt_makespan(w, np.zeros_like(w), 2, 1)[0] == pytest.approx(12.0)
    # occupancy 2: one round on SM0 of {9, 3}: max(12, latency floors)
    assert sm.dealt_makespan(w, np.full_like(w, 20.0), 2, 2)[0] == pytest.approx(20.0)


def test_list_schedule_and_chain_by_hand() -> None:
    # 2 slots: CTAs of 4, 1, 1, 3 in order; the third waits for the earliest-free slot (1).
    fin = sm.list_schedule_released(np.array([4.0, 1.0, 1.0, 3.0]), np.zeros(4), 2)
    np.testing.assert_allclose(fin, [4.0, 1.0, 2.0, 7.0])
    # Release times delay the start.
    fin = sm.list_schedule_released(np.array([1.0, 1.0]), np.array([0.0, 5.0]), 2)
    np.testing.assert_allclose(fin, [1.0, 6.0])
    # Eager: submitted at 10, kernels issued every 10 cycles, 2 cycles of device gap each;
    # a kernel starts at max(previous end + gap, its issue).
    lc = LaunchCosts("eager", submit=10.0, gap=2.0, issue=10.0)
    start, end = chain(np.array([[3.0, 30.0, 1.0]]), [1, 1, 1], lc)
    np.testing.assert_allclose(start, [[10.0, 20.0, 52.0]])
    np.testing.assert_allclose(end, [[13.0, 50.0, 53.0]])
    # Graph: no host issue, every boundary costs the gap; an item of 2 kernels pays one inside.
    lc = LaunchCosts("graph", submit=10.0, gap=2.0, issue=0.0)
    start, end = chain(np.array([[3.0, 30.0, 1.0]]), [1, 2, 1], lc)
    np.testing.assert_allclose(start, [[10.0, 15.0, 49.0]])
    np.testing.assert_allclose(end, [[13.0, 47.0, 50.0]])


def test_launch_bound_tiny_layers() -> None:
    layers = [LayerGeom.conv(f"t{i}", n=1, h=4, cin=4, cout=4, k=1) for i in range(10)]
    ev = random_events(layers, 1, (0.5, 0.1, 0.3, 0.1), 0)
    r = timing.replay(layers, ev, schemes=("dense", "secnn_sw", "secnn_hw"), params=PARAMS,
                      launch="eager")
    launch = H100.cycles(H100.launch_us)
    dense = r.get("h100", "dense")
    execs = dense.layer_phases["exec"][0]
    assert execs.max() < launch  # each tiny kernel is shorter than one launch
    # Issue-bound: the last kernel is issued after 10 launches and then runs.
    assert dense.total_cycles[0] == pytest.approx(10 * launch + execs[-1])
    assert dense.phases["launch"][0] > dense.phases["compute"][0]
    # A tiny conv timed alone is the measured event overhead plus its few cycles.
    kc = S.dense_cost(layers[0], H100, "fp32", PARAMS)
    assert H100.event_overhead_us < kc.standalone_us(H100, PARAMS) < H100.event_overhead_us + 2
    # secnn_sw issues 1 parallel + 2 serial kernels per layer; secnn_hw sequences its
    # corrections in hardware: only its 10 parallel kernels are host-issued.
    sw = r.get("h100", "secnn_sw").total_cycles[0]
    hw = r.get("h100", "secnn_hw").total_cycles[0]
    assert sw >= 30 * launch
    assert 10 * launch <= hw < 12 * launch


def test_depthwise_is_not_a_gemm() -> None:
    g = LayerGeom.conv("dw", n=1, h=56, cin=96, cout=96, k=3, groups=96)
    kc = S.dense_cost(g, H100, "fp16", PARAMS)
    assert kc.algo == "depthwise" and kc.tile == S.DEPTHWISE_TILE
    assert kc.memory_cycles > kc.compute_cycles  # memory-bound, as depthwise convs are


def test_winograd_and_fft_apply_where_they_should() -> None:
    g3 = LayerGeom.conv("c", n=8, h=56, cin=128, cout=128, k=3)
    g1 = LayerGeom.conv("p", n=8, h=56, cin=128, cout=128, k=1)
    assert S.winograd_cost(g3, H100, "fp32", PARAMS).algo == "winograd"
    assert S.fft_cost(g3, H100, "fp32", PARAMS).algo == "fft"
    # Elsewhere they fall back to the dense kernel.
    assert S.winograd_cost(g1, H100, "fp32", PARAMS) == S.dense_cost(g1, H100, "fp32", PARAMS)
    assert S.fft_cost(g1, H100, "fp32", PARAMS) == S.dense_cost(g1, H100, "fp32", PARAMS)
    # Winograd F(4x4, 3x3) does 4x fewer multiplications in its GEMM.
    w = S.winograd_cost(g3, H100, "fp32", PARAMS)
    d = S.dense_cost(g3, H100, "fp32", PARAMS)
    assert w.busy_cycles < d.busy_cycles / 2 and w.kernels == 4


def test_nchw_transposes_only_for_tensor_core_non_1x1() -> None:
    g3 = LayerGeom.conv("c", n=16, h=56, cin=64, cout=64, k=3)
    g1 = LayerGeom.conv("p", n=16, h=56, cin=64, cout=256, k=1)
    nchw = P.SchemeConfig(layout="NCHW")
    assert S.dense_cost(g3, H100, "fp16", PARAMS, nchw).kernels >= 3
    assert S.dense_cost(g1, H100, "fp16", PARAMS, nchw).kernels == \
        S.dense_cost(g1, H100, "fp16", PARAMS).kernels
    assert S.dense_cost(g3, H100, "fp32", PARAMS, nchw) == S.dense_cost(g3, H100, "fp32", PARAMS)


# --- invariants -----------------------------------------------------------------------------

def test_zero_skip_without_zeros_costs_what_dense_costs() -> None:
    layers = small_net(2)
    ev = random_events(layers, 3, (0.0, 0.3, 0.4, 0.3), 1)  # no ZZ: every input non-zero
    # fp32: dense runs on the SIMT lanes, where zero_skip's tiling (and split-K) is dense's:
    # without load balancing (each lane its receptive field) it is dense's kernel.
    r = timing.replay(layers, ev, schemes=("dense", "zero_skip"), params=PARAMS,
                      config=P.SchemeConfig(sw_compaction="none"))
    d = r.get("h100", "dense").layer_phases["exec"]
    z = r.get("h100", "zero_skip").layer_phases["exec"]
    np.testing.assert_allclose(z, d, rtol=1e-12)
    np.testing.assert_allclose(r.get("h100", "zero_skip").total_cycles,
                               r.get("h100", "dense").total_cycles, rtol=1e-12)
    # Balancing where it pays (the default) never costs more, per layer and frame.
    auto = timing.replay(layers, ev, schemes=("zero_skip",), params=PARAMS)
    assert (auto.get("h100", "zero_skip").layer_phases["exec"] <= d + 1e-9).all()
    # ... and zeros make it cheaper.
    ev0 = random_events(layers, 3, (0.9, 0.05, 0.05, 0.0), 1)
    r0 = timing.replay(layers, ev0, schemes=("dense", "zero_skip"), params=PARAMS)
    assert (r0.get("h100", "zero_skip").layer_phases["exec"] <= d + 1e-9).all()
    assert r0.get("h100", "zero_skip").phases["compute"].sum() < \
        r0.get("h100", "dense").phases["compute"].sum()


@pytest.mark.parametrize("scheme", ["secnn_sw", "secnn_hw"])
def test_secnn_all_correct_costs_parallel_plus_compares(scheme: str) -> None:
    layers = small_net(1)
    ev = random_events(layers, 2, (0.6, 0.0, 0.4, 0.0), 2)  # only ZZ and VH: all correct
    # No op kernels, hardware compaction (nothing to compact), and a launch model whose
    # boundaries are free, so only the parallel phase and the compares remain.
    cfg = P.SchemeConfig(barrier_us=0.0, hw_dependency_us=0.0, hw_compaction="hardware")
    r = timing.replay(layers, ev, schemes=(scheme,), params=PARAMS, launch="persistent",
                      config=cfg, ops=())
    res = r.get("h100", scheme)
    assert (res.layer_phases["amend"] == 0).all()
    np.testing.assert_allclose(res.layer_phases["correction"], res.layer_phases["compare"])
    # The frame is the parallel phase's completions chained with the compares: a compare
    # needs only the real input, the (empty) amendment waits for the layer's parallel work.
    submit = H100.cycles(H100.launch_us)
    pd, cmp = res.layer_phases["parallel_done"], res.layer_phases["compare"]
    end = np.full(pd.shape[0], submit)
    for i in range(len(layers)):
        end = np.maximum(end + cmp[:, i], pd[:, i])
    np.testing.assert_allclose(res.total_cycles, np.maximum(end, pd.max(1)), rtol=1e-12)


def test_more_mispredictions_never_cost_fewer_cycles() -> None:
    layers = small_net(1)
    rng = np.random.default_rng(3)
    base = random_events(layers, 2, (0.55, 0.05, 0.35, 0.05), 4)
    prev = None
    for frac in (0.0, 0.05, 0.2, 0.5, 1.0):
        ev = {}
        for k, codes in base.items():
            flip = rng.random(codes.shape) < frac
            # ZZ -> ZN and VH -> VM: same predictions, more mispredictions.
            ev[k] = np.where(flip, codes | 1, codes).astype(np.uint8)
        base = ev
        t = totals(timing.replay(layers, ev, schemes=("secnn_sw", "secnn_hw"), params=PARAMS))
        if prev is not None:
            for s in t:
                assert (t[s] >= prev[s] - 1e-9).all(), (s, frac)
        prev = t


def test_more_sms_never_cost_more_cycles() -> None:
    layers = small_net(2)
    ev = random_events(layers, 2, (0.5, 0.1, 0.3, 0.1), 5)
    prev = None
    for sms in (8, 16, 28, 64, 132, 200):
        gpu = dataclasses.replace(H100, sms=sms, key=f"h100_{sms}")
        t = totals(timing.replay(layers, ev, gpus=[gpu], params=PARAMS), gpu.key)
        if prev is not None:
            for s in t:
                assert (t[s] <= prev[s] * (1 + 1e-9)).all(), (s, sms)
        prev = t


def test_replay_is_deterministic() -> None:
    layers = small_net(1)
    ev = random_events(layers, 3, (0.5, 0.1, 0.3, 0.1), 6)
    a = timing.replay(layers, ev, gpus=("h100", "gtx1080ti"), params=PARAMS)
    b = timing.replay(layers, ev, gpus=("h100", "gtx1080ti"), params=PARAMS)
    assert a.to_json() == b.to_json() and a.to_csv() == b.to_csv()
    # Chunking of frames does not change the result.
    c = timing.replay(layers, ev, gpus=("h100", "gtx1080ti"), params=PARAMS, batch_frames=1)
    assert c.to_csv() == a.to_csv()


def test_result_outputs() -> None:
    layers = small_net(1)
    ev = random_events(layers, 2, (0.5, 0.1, 0.3, 0.1), 7)
    r = timing.replay(layers, ev, gpus=("h100", "titanv"), params=PARAMS, frames=[1])
    assert r.frames == (1,)
    for res in r.results.values():
        np.testing.assert_allclose(res.layer_cycles.sum(1), res.total_cycles)
        assert ((res.sm_utilisation > 0) & (res.sm_utilisation <= 1 + 1e-9)).all()
    sp = r.speedups()
    assert set(sp["h100"]) == {"secnn_sw", "secnn_hw"}
    assert set(sp["h100"]["secnn_hw"]) == set(timing.BASELINES)
    text = r.table(per_layer=True)
    assert "secnn_hw" in text and "speedup" in text and "grp" in text
    rows = r.to_csv().splitlines()
    assert rows[0].startswith("gpu,scheme,precision,frame")
    assert len(rows) == 1 + 2 * len(timing.SCHEMES) * (1 + len(layers)) + sum(
        len(x.phases) for x in r.results.values())
    import json

    d = json.loads(r.to_json())
    assert d["layers"] == [g.name for g in layers]
    assert len(d["results"]) == 2 * len(timing.SCHEMES)


def test_replay_input_errors() -> None:
    layers = small_net(1)
    ev = random_events(layers, 1, (0.5, 0.1, 0.3, 0.1), 8)
    with pytest.raises(ValueError, match="unknown schemes"):
        timing.replay(layers, ev, schemes=("dense", "magic"))
    with pytest.raises(timing.ReplayError, match="no events"):
        timing.replay(layers, {k: v for k, v in ev.items() if k != "pw"})
    bad = dict(ev, pw=ev["pw"][..., :3])
    with pytest.raises(ValueError, match="pw"):
        timing.replay(layers, bad)
    with pytest.raises(ValueError, match="unknown GPU"):
        timing.replay(layers, ev, gpus=["voodoo2"])
    with pytest.raises(ValueError, match="precision"):
        timing.replay(layers, ev, precision="int3")


def test_fanout_matches_dense_macs() -> None:
    for g in small_net(2):
        total = int(workmaps.fanout(g).sum()) * g.cin * g.n
        if g.pad == ((0, 0), (0, 0)):
            assert total == g.macs, g.name
        else:  # padding taps multiply zeros: no input neuron feeds them
            assert total < g.macs, g.name


def test_all_gpus_replay() -> None:
    layers = small_net(1)
    ev = random_events(layers, 1, (0.5, 0.1, 0.3, 0.1), 9)
    for prec in ("fp32", "tf32", "fp16"):
        r = timing.replay(layers, ev, gpus=tuple(timing.GPUS), precision=prec, params=PARAMS)
        for res in r.results.values():
            assert np.isfinite(res.total_cycles).all() and (res.total_cycles > 0).all()
