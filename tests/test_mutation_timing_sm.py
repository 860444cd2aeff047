"""The SM model (``secnn_jax/timing/sm.py``) against plain-Python references of its documented
rules: a tile's shared memory and occupancy (the largest CTA count every per-SM limit admits),
the dealt makespan (CTAs dealt cyclically to SMs, run in rounds; the busiest SM's time), its
closed form for identical CTAs, the SIMT and tensor rates, L2-versus-DRAM bandwidth and the
wave-by-wave list schedule. Written where mutation testing (``mutmut``, docs/mutation.md) found
changes no test noticed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secnn_jax.timing import sm
from secnn_jax.timing.gpus import H100, V100
from secnn_jax.timing.params import ModelParams

PARAMS = ModelParams(efficiency={"fp32": 0.5, "tf32": 0.75, "fp16": 0.8}, latency_cycles=600.0,
                     l2_bandwidth_factor=1.5, extra_kernel_us=5.0, cta_overhead_cycles=30.0)


def _occupancy_ref(t: sm.Tile, gpu, elem: int) -> int:
    """The largest number of resident CTAs that every per-SM limit admits (at least one)."""
    warps = (t.threads + 31) // 32
    smem = t.stages * (t.bm + t.bn) * t.bk * elem
    o = 0
    while (o + 1 <= gpu.max_ctas and (o + 1) * t.threads <= gpu.max_threads
           and (o + 1) * warps <= gpu.max_warps
           and (o + 1) * t.threads * t.regs <= gpu.regs
           and (o + 1) * smem <= gpu.smem_bytes):
        o += 1
    return max(o, 1)


TILES = st.builds(sm.Tile, bm=st.sampled_from([16, 32, 64, 128, 256]),
                  bn=st.sampled_from([8, 32, 64, 128]), bk=st.sampled_from([4, 8, 16, 32, 64]),
                  threads=st.sampled_from([32, 64, 96, 128, 200, 256, 512, 1024]),
                  regs=st.sampled_from([16, 32, 64, 128, 255]),
                  stages=st.integers(0, 5), unit=st.sampled_from(["simt", "tensor"]))


@settings(max_examples=60, deadline=None)
@given(t=TILES, elem=st.sampled_from([1, 2, 4]), gpu=st.sampled_from([H100, V100]),
       max_ctas=st.sampled_from([None, 2, 64]))
def test_occupancy_is_the_largest_count_every_limit_admits(t: sm.Tile, elem: int, gpu,
                                                           max_ctas: int | None) -> None:
    if max_ctas is not None:
        gpu = dataclasses.replace(gpu, max_ctas=max_ctas)
    assert t.smem_bytes(elem) == t.stages * (t.bm + t.bn) * t.bk * elem
    assert t.occupancy(gpu, elem) == _occupancy_ref(t, gpu, elem)


def test_each_occupancy_limit_binds() -> None:
    g = dataclasses.replace(H100, max_ctas=32, max_threads=2048, max_warps=64, regs=65536,
                            smem_bytes=228 * 1024)
    small = sm.Tile(16, 16, 4, 32, 16, 1, "simt")  # 32 threads, 1 warp, 512 B
    assert small.occupancy(g, 4) == 32  # the CTA limit
    assert small.occupancy(dataclasses.replace(g, max_ctas=64, max_threads=1024), 4) == 32
    assert small.occupancy(dataclasses.replace(g, max_ctas=64, max_warps=20), 4) == 20
    assert sm.Tile(16, 16, 4, 32, 128, 1, "simt").occupancy(g, 4) == 16  # registers
    assert sm.Tile(128, 128, 32, 32, 16, 4, "simt").occupancy(g, 4) == 1  # 128 KiB smem
    assert sm.Tile(64, 64, 32, 32, 16, 2, "simt").occupancy(g, 4) == 7  # 32 KiB smem of 228
    assert sm.Tile(64, 64, 32, 33, 16, 2, "simt").smem_bytes(2) == 16384
    # 33 threads occupy two warps
    assert sm.Tile(16, 16, 4, 33, 16, 1, "simt").occupancy(
        dataclasses.replace(g, max_ctas=64, max_warps=20), 4) == 10
    assert sm.Tile(16, 16, 4, 32, 16, 0, "simt").occupancy(g, 4) == 32  # no smem: CTA limit
    assert sm.Tile(16, 16, 4, 4096, 64, 1, "simt").occupancy(g, 4) == 1  # none fit: one


def _dealt_ref(w: list[float], d: list[float], sms: int, occ: int) -> float:
    """Deal CTAs (sorted by decreasing work, latency floors in the same order) to SMs
    cyclically; each SM runs rounds of ``occ``, a round costs max(sum w, max d); the
    busiest SM's total."""
    order = sorted(range(len(w)), key=lambda i: (-w[i], -d[i]))
    per_sm: list[list[int]] = [[] for _ in range(sms)]
    for j, i in enumerate(order):
        per_sm[j % sms].append(i)
    best = 0.0
    for ctas in per_sm:
        t = 0.0
        for r in range(0, len(ctas), occ):
            rnd = ctas[r:r + occ]
            t += max(sum(w[i] for i in rnd), max(d[i] for i in rnd))
        best = max(best, t)
    return best


@settings(max_examples=60, deadline=None)
@given(w=st.lists(st.integers(0, 50), min_size=0, max_size=30),
       dscale=st.sampled_from([0.0, 0.5, 3.0, 40.0]), dbase=st.sampled_from([0.0, 7.0]),
       sms=st.integers(1, 6), occ=st.integers(1, 5))
def test_dealt_makespan_is_the_busiest_sms_rounds(w: list[int], dscale: float, dbase: float,
                                                  sms: int, occ: int) -> None:
    wf = [float(x) for x in w]
    d = [dbase + dscale * x for x in wf]  # ordered consistently with the work
    got = sm.dealt_makespan(np.array(wf), np.array(d), sms, occ)
    assert got.shape == ()
    assert float(got) == pytest.approx(_dealt_ref(wf, d, sms, occ), rel=1e-12, abs=1e-12)
    if w:
        n = len(w)
        # identical CTAs: the closed form agrees exactly with dealing them
        same = sm.dealt_makespan(np.full(n, wf[0]), np.full(n, d[0]), sms, occ)
        assert sm.uniform_makespan(n, wf[0], d[0], sms, occ) == pytest.approx(float(same),
                                                                              rel=1e-12)


def test_dealt_makespan_rows_are_independent_grids() -> None:
    rng = np.random.default_rng(3)
    w = rng.integers(0, 9, (4, 11)).astype(np.float64)
    d = 2.0 * w + 1.0
    got = sm.dealt_makespan(w, d, 3, 2)
    assert got.shape == (4,)
    np.testing.assert_array_equal(got, [_dealt_ref(list(a), list(b), 3, 2)
                                        for a, b in zip(w, d, strict=True)])
    empty = sm.dealt_makespan(np.zeros((4, 0)), np.zeros((4, 0)), 3, 2)
    assert empty.shape == (4,) and not empty.any()
    # the last round is partial (7 CTAs on one SM, rounds of 3: 3 + 3 + 1)
    assert sm.dealt_makespan(np.ones(7), np.full(7, 2.5), 1, 3) == 3 + 3 + 2.5


def test_uniform_makespan_vectorised_and_hand_computed() -> None:
    # 10 CTAs on 3 SMs: 4 on the busiest; occupancy 3: one full round, one of 1
    assert sm.uniform_makespan(10, 2.0, 5.0, 3, 3) == max(6.0, 5.0) + max(2.0, 5.0)
    assert sm.uniform_makespan(9, 2.0, 1.0, 3, 3) == 6.0  # no partial round
    assert sm.uniform_makespan(0, 2.0, 1.0, 3, 3) == 0.0
    got = sm.uniform_makespan(np.array([1, 7, 12]), np.array([1.0, 2.0, 3.0]), 4.0, 2,
                              np.array([1, 2, 4]))
    want = [max(1.0, 4.0), max(4.0, 4.0) + max(2.0, 4.0), max(12.0, 4.0) + max(6.0, 4.0)]
    np.testing.assert_array_equal(got, want)


def test_rates_per_unit_and_precision() -> None:
    for g in (H100, V100):
        for p in ("fp32", "tf32", "fp16"):
            simt = g.simt_fma_per_clk(p) * g.ceiling_frac["fp32"] * PARAMS.eff("fp32")
            assert sm.rate(g, p, "simt", PARAMS) == pytest.approx(simt, rel=1e-15)
            if g.tensor_fma_per_clk.get(p, 0):
                tc = g.tensor_fma_per_clk[p] * g.ceiling_frac[p] * PARAMS.eff(p)
                assert sm.rate(g, p.upper(), "tensor", PARAMS) == pytest.approx(tc, rel=1e-15)
    # fp16 SIMT runs at its own rate, on fp32's ceiling and efficiency
    assert sm.rate(H100, "fp16", "simt", PARAMS) == (
        H100.fp16_simt_fma_per_clk * H100.ceiling_frac["fp32"] * 0.5)
    assert sm.rate(H100, "tf32", "tensor", PARAMS) != sm.rate(H100, "tf32", "simt", PARAMS)


def test_bandwidth_is_l2s_up_to_its_capacity() -> None:
    g = H100
    dram = g.dram_bytes_per_clk
    sizes = np.array([0.0, 1.0, g.l2_bytes, g.l2_bytes + 1, 10 * g.l2_bytes])
    want_bw = np.array([1.5, 1.5, 1.5, 1.0, 1.0]) * dram
    np.testing.assert_array_equal(sm.bandwidth(g, sizes, PARAMS), want_bw)
    np.testing.assert_array_equal(sm.mem_cycles(g, sizes, PARAMS), sizes / want_bw)
    assert float(sm.mem_cycles(g, float(g.l2_bytes) * 2, PARAMS)) == 2 * g.l2_bytes / dram


def _list_ref(dur: list[float], release: list[float], slots: int) -> list[float]:
    """Per wave of ``slots`` CTAs: order the slots by free time (ties: lower slot), give the
    wave's i-th CTA the i-th slot, start at max(slot free, release)."""
    free = [0.0] * slots
    out = []
    for s in range(0, len(dur), slots):
        wave = list(range(s, min(s + slots, len(dur))))
        by_free = sorted(range(slots), key=lambda k: (free[k], k))
        for i, k in zip(wave, by_free, strict=False):
            end = max(free[k], release[i]) + dur[i]
            free[k] = end
            out.append(end)
    return out


@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.tuples(st.integers(1, 9), st.integers(0, 20)), min_size=1,
                     max_size=25), slots=st.integers(1, 6))
def test_list_schedule_takes_the_earliest_free_slots_per_wave(
        data: list[tuple[int, int]], slots: int) -> None:
    dur = np.array([float(a) for a, _ in data])
    rel = np.array([float(b) for _, b in data])
    got = sm.list_schedule_released(dur, rel, slots)
    np.testing.assert_array_equal(got, _list_ref(list(dur), list(rel), slots))


def test_list_schedule_hand_computed() -> None:
    # two slots; CTAs (dur, release): (3,0) (1,0) | (2,0) (2,5)
    got = sm.list_schedule_released(np.array([3.0, 1.0, 2.0, 2.0]),
                                    np.array([0.0, 0.0, 0.0, 5.0]), 2)
    # wave 2: slot 1 (free at 1) first, then slot 0 (free at 3): 1 + 2, max(3, 5) + 2
    np.testing.assert_array_equal(got, [3.0, 1.0, 3.0, 7.0])


def test_makespans_take_counts_of_any_dtype_as_float64() -> None:
    """Unsigned counts (no negation wrap-around when sorting) and float32 work (no float32
    sums) give the float64 result."""
    w = np.array([0, 5, 3, 0, 7], np.uint64)
    d = np.array([0, 2, 1, 0, 9], np.uint64)
    ref = _dealt_ref([0.0, 5.0, 3.0, 0.0, 7.0], [0.0, 2.0, 1.0, 0.0, 9.0], 2, 2)
    assert sm.dealt_makespan(w, d, 2, 2) == ref
    assert sm.dealt_makespan(w.astype(np.float64), d, 2, 2) == ref
    assert sm.dealt_makespan(np.zeros(5), d, 2, 1) == _dealt_ref([0.0] * 5, list(map(
        float, d)), 2, 1)
    big = np.array([2.0**24, 1.0, 1.0], np.float32)  # float32 would lose the ones
    assert sm.dealt_makespan(big, np.zeros(3, np.float32), 1, 3) == 2.0**24 + 2
    w32 = np.float32(0.1)
    got = sm.uniform_makespan(7, w32, 0.0, 1, 3)
    w64 = float(w32)
    assert got == 2 * (3 * w64) + 1 * w64
