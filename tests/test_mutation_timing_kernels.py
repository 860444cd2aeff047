"""Kernel cost models (``secnn_jax/timing/kernels.py``) against hand computations from the
module's documented rules: the candidate menus (tiles, split-K, GEMV, MMA channel blocks), the
per-CTA work and latency, the standalone score, which algorithm applies where, the NCHW
transposes, sparse grids that with nothing to skip equal the dense kernel, and elementwise
kernels. Written where mutation testing (``mutmut``, docs/mutation.md) found changes no test
noticed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import kernels as K
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpus import GPUS, H100, V100
from secnn_jax.timing.params import ModelParams, SchemeConfig

PARAMS = ModelParams(efficiency={"fp32": 0.5, "tf32": 0.75, "fp16": 0.8}, latency_cycles=600.0,
                     l2_bandwidth_factor=1.0, extra_kernel_us=5.0, cta_overhead_cycles=30.0)
SIMT_RATE = 128 * H100.ceiling_frac["fp32"] * 0.5  # H100 FP32 lanes x ceiling x efficiency


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


# --- candidates ----------------------------------------------------------------------------------

def test_simt_candidates_follow_the_tile_menu() -> None:
    m, ncol, cin, taps = 100, 64, 16, 9
    c = K.gemm_candidates(H100, "fp32", m=m, ncol=ncol, k_channels=cin, taps=taps, batch=2,
                          io_bytes=1000.0, unit="simt")
    assert c.tiles == K.SIMT_TILES and c.algo == "implicit_gemm"
    for i, t in enumerate(c.tiles):
        ksteps = _ceil(_ceil(taps * cin, t.bk) * t.bk, t.bk)
        assert c.macs_cta[i] == t.bm * t.bn * ksteps * t.bk
        assert c.ksteps_per_stage[i] == ksteps / t.stages
        assert c.n_ctas[i] == 2 * _ceil(m, t.bm) * _ceil(ncol, t.bn)
        assert c.occupancy[i] == t.occupancy(H100, 4)
    assert (c.split == 1).all() and (c.kernels == 1).all() and (c.io_bytes == 1000.0).all()
    assert (c.eff_index == 0).all()
    np.testing.assert_allclose(c.rate_base, 128 * H100.ceiling_frac["fp32"])


@pytest.mark.parametrize("precision,cin,ck", [
    ("fp16", 3, 16),    # small channel counts: blocks of the MMA depth (16 for FP16)
    ("tf32", 3, 8),     # MMA depth 8 for TF32
    ("fp16", 20, 32),   # next power of two below the tile's bk (32)
    ("fp16", 64, 32),   # >= bk: blocks of bk
    ("fp16", 96, 32),   # >= bk: blocks of bk (not the next power of two, 128)
    ("fp16", 17, 32),   # one past a power of two
])
def test_tensor_candidates_iterate_each_taps_channels_in_blocks(precision: str, cin: int,
                                                                ck: int) -> None:
    c = K.gemm_candidates(H100, precision, m=64, ncol=64, k_channels=cin, taps=9, batch=1,
                          io_bytes=0.0, unit="tensor")
    assert c.tiles == K.TENSOR_TILES
    k_eff = 9 * _ceil(cin, ck) * ck
    for i, t in enumerate(c.tiles):
        assert c.macs_cta[i] == t.bm * t.bn * _ceil(k_eff, t.bk) * t.bk
    assert (c.eff_index == K.EFF_KEYS.index(precision)).all()
    np.testing.assert_allclose(c.rate_base, H100.tensor_fma_per_clk[precision]
                               * H100.ceiling_frac[precision])


def test_simt_k_is_rounded_up_to_whole_k_steps() -> None:
    c = K.gemm_candidates(H100, "fp32", m=10, ncol=10, k_channels=3, taps=9, batch=1,
                          io_bytes=0.0, unit="simt", tiles=[K.SIMT_TILES[0]])
    assert c.macs_cta.tolist() == [128 * 128 * 32]  # K = 27 -> 4 steps of 8
    assert c.ksteps_per_stage.tolist() == [4 / 2]


def test_split_k_needs_four_steps_and_pays_a_workspace_and_a_reduction() -> None:
    t = K.SIMT_TILES[-1]  # bk 8
    c = K.gemm_candidates(H100, "fp32", m=10, ncol=40, k_channels=64, taps=1, batch=3,
                          io_bytes=100.0, unit="simt", split_k=(1, 2, 4, 8, 16), tiles=[t],
                          extra_bytes=7.0, extra_kernels=2)
    # K = 64: 8 steps unsplit, 4 at split 2, 2 at split 4 (dropped: fewer than 4 steps)
    assert c.split.tolist() == [1, 2]
    assert c.macs_cta.tolist() == [t.bm * t.bn * 8 * 8, t.bm * t.bn * 4 * 8]
    assert c.n_ctas.tolist() == [3 * 1 * 2, 3 * 1 * 2 * 2]  # 40 columns: two 32-wide tiles
    assert c.io_bytes.tolist() == [100.0, 100.0 + 2.0 * 2 * 3 * 10 * 40 * 4]
    assert c.kernels.tolist() == [3, 4] and c.extra_bytes.tolist() == [7.0, 7.0]


def test_gemv_is_offered_for_at_most_eight_rows_on_the_simt_lanes() -> None:
    def gemv_rows(m: int, precision: str = "fp16") -> list:
        c = K.gemm_candidates(H100, precision, m=m, ncol=1000, k_channels=4096, taps=1, batch=1,
                              io_bytes=0.0, unit="tensor", gemv=True)
        return [(i, t) for i, t in enumerate(c.tiles) if t.bk == K.GEMV_TILE.bk], c

    rows, c = gemv_rows(8)
    ((i, t),) = rows
    assert t == dataclasses.replace(K.GEMV_TILE, bm=8)
    assert c.rate_base[i] == 256 * H100.ceiling_frac["fp32"] and c.eff_index[i] == 0
    assert c.n_ctas[i] == _ceil(1000, 32) and c.macs_cta[i] == 8 * 32 * 16 * 256
    assert gemv_rows(9)[0] == []
    assert gemv_rows(0)[0][0][1].bm == 1  # at least one row
    no = K.gemm_candidates(H100, "fp16", m=1, ncol=10, k_channels=10, taps=1, batch=1,
                           io_bytes=0.0, unit="tensor")
    assert K.GEMV_TILE.bk not in [t.bk for t in no.tiles]


def test_dense_candidates_choose_unit_split_and_gemv_by_layer_kind() -> None:
    conv = LayerGeom.conv("c", n=1, h=14, cin=64, cout=64, k=3)
    fc = LayerGeom.dense("fc", n=1, fin=4096, fout=1000)
    dw = LayerGeom.conv("dw", n=1, h=14, cin=32, cout=32, k=3, groups=32)
    simt_conv = K.dense_candidates(conv, H100, "fp32")
    assert set(simt_conv.split.tolist()) == {1} and simt_conv.tiles == K.SIMT_TILES
    tensor_conv = K.dense_candidates(conv, H100, "fp16")
    assert set(tensor_conv.split.tolist()) > {1}
    simt_fc = K.dense_candidates(fc, H100, "fp32")
    assert set(simt_fc.split.tolist()) > {1}  # cuBLAS splits K for dense layers
    assert K.GEMV_TILE.bk in [t.bk for t in simt_fc.tiles]
    no_gemv = K.dense_candidates(fc, H100, "fp32", SchemeConfig(gemv=False))
    assert K.GEMV_TILE.bk not in [t.bk for t in no_gemv.tiles]
    assert K.dense_candidates(dw, H100, "fp16").algo == "depthwise"
    forced = K.dense_candidates(conv, H100, "fp16", unit="simt")
    assert forced.tiles == K.SIMT_TILES and set(forced.split.tolist()) == {1}
    assert K.dense_unit(H100, "tf32") == "tensor" and K.dense_unit(H100, "fp32") == "simt"
    assert K.dense_unit(V100, "tf32") == "simt"


def test_depthwise_candidate_is_one_direct_simt_kernel() -> None:
    g = LayerGeom.conv("dw", n=2, h=10, cin=48, cout=96, k=5, groups=48)
    c = K.depthwise_candidates(g, H100, "fp16")
    t = K.DEPTHWISE_TILE
    assert c.tiles == (t,) and c.algo == "depthwise" and c.kernels.tolist() == [1]
    assert c.n_ctas.tolist() == [_ceil(2 * 10 * 10, 32) * _ceil(96, 32)]
    assert c.macs_cta.tolist() == [32 * 32 * 25] and c.ksteps_per_stage.tolist() == [1.0]
    assert c.rate_base.tolist() == [256 * H100.ceiling_frac["fp32"]]
    assert c.io_bytes.tolist() == [2.0 * (g.n_inputs + g.weights + g.n_outputs)]
    assert c.occupancy.tolist() == [t.occupancy(H100, 2)]
    assert K.dense_cost(g, H100, "fp16", PARAMS) == K.pick(c, H100, PARAMS)


@pytest.mark.parametrize("geom,precision,layout,expected", [
    (LayerGeom.conv("c", n=1, h=8, cin=16, cout=32, k=3), "fp16", "NCHW", 2),
    (LayerGeom.conv("c", n=1, h=8, cin=16, cout=32, k=1, stride=2), "fp16", "nchw", 2),
    (LayerGeom.conv("c", n=1, h=8, cin=16, cout=32, k=1), "fp16", "NCHW", 0),  # 1x1 s1: GEMM
    (LayerGeom.conv("c", n=1, h=8, cin=16, cout=32, k=3), "fp32", "NCHW", 0),  # SIMT
    (LayerGeom.conv("c", n=1, h=8, cin=16, cout=32, k=3), "fp16", "NHWC", 0),
    (LayerGeom.dense("fc", n=1, fin=16, fout=32), "fp16", "NCHW", 0),
])
def test_nchw_adds_two_transposes_around_tensor_core_convs(geom: LayerGeom, precision: str,
                                                          layout: str, expected: int) -> None:
    cfg = SchemeConfig(layout=layout)
    xb, xk = K._nchw_transposes(geom, precision, K.dense_unit(H100, precision), cfg)
    assert xk == expected
    eb = 2 if precision == "fp16" else 4
    assert xb == (2.0 * eb * (geom.n_inputs + geom.n_outputs) if expected else 0.0)
    c = K.dense_candidates(geom, H100, precision, cfg)
    assert (c.kernels - (c.split > 1) == 1 + expected).all()


# --- evaluation and choice -----------------------------------------------------------------------

def test_evaluate_work_latency_and_score_by_hand() -> None:
    c = K.gemm_candidates(H100, "fp32", m=300, ncol=64, k_channels=64, taps=9, batch=1,
                          io_bytes=1e6, unit="simt", extra_bytes=5e5, extra_kernels=1)
    ev = K.evaluate(c, H100, PARAMS)
    np.testing.assert_allclose(ev["w"], c.macs_cta / SIMT_RATE)
    np.testing.assert_allclose(ev["d"], c.ksteps_per_stage * 600.0 + 30.0)
    mem = 1e6 / H100.dram_bytes_per_clk
    xmem = 5e5 / H100.dram_bytes_per_clk
    np.testing.assert_allclose(ev["memory"], mem + xmem)
    np.testing.assert_allclose(ev["cycles"], np.maximum(ev["compute"], mem) + xmem)
    np.testing.assert_allclose(ev["score"], ev["cycles"] + 5.0 * H100.clock_mhz)
    np.testing.assert_array_equal(ev["occupancy"], c.occupancy)
    capped = K.evaluate(c, H100, PARAMS, occ_cap=1)
    assert (capped["occupancy"] == 1).all() and (capped["compute"] >= ev["compute"]).all()
    assert (K.evaluate(c, H100, PARAMS, occ_cap=0)["occupancy"] == 1).all()
    eff = K.evaluate(c, H100, PARAMS, eff=np.array([0.25, 0.75, 0.8]))
    np.testing.assert_allclose(eff["w"], 2 * ev["w"])


def test_pick_takes_the_lowest_score_and_reports_its_numbers() -> None:
    c = K.gemm_candidates(H100, "fp16", m=196, ncol=256, k_channels=256, taps=9, batch=1,
                          io_bytes=2e6, unit="tensor", split_k=(1, 2, 4))
    ev = K.evaluate(c, H100, PARAMS)
    i = int(np.argmin(ev["score"]))
    kc = K.pick(c, H100, PARAMS)
    assert kc.tile == c.tiles[i] and kc.split_k == c.split[i] and kc.kernels == c.kernels[i]
    assert kc.cycles == ev["cycles"][i] and kc.n_ctas == c.n_ctas[i]
    assert kc.occupancy == ev["occupancy"][i]
    assert kc.waves == pytest.approx(c.n_ctas[i] / (132 * ev["occupancy"][i]))
    assert kc.busy_cycles == pytest.approx(c.n_ctas[i] * ev["w"][i])
    assert (kc.cta_work, kc.cta_latency) == (ev["w"][i], ev["d"][i])
    assert kc.compute_cycles == ev["compute"][i] and kc.memory_cycles == ev["memory"][i]
    assert K.gemm_cost(H100, "fp16", params=PARAMS, m=196, ncol=256, k_channels=256, taps=9,
                       batch=1, io_bytes=2e6, unit="tensor", split_k=(1, 2, 4)) == kc
    assert kc.standalone_us(H100, PARAMS) == pytest.approx(
        H100.event_overhead_us + kc.cycles / 1980.0 + (kc.kernels - 1) * 5.0)


# --- algorithms ----------------------------------------------------------------------------------

WINO = LayerGeom.conv("w", n=1, h=28, cin=64, cout=64, k=3)


@pytest.mark.parametrize("geom,wino,fft", [
    (WINO, True, True),
    (LayerGeom.conv("s2", n=1, h=28, cin=64, cout=64, k=3, stride=2), False, False),
    (LayerGeom.conv("d2", n=1, h=28, cin=64, cout=64, k=3, dilation=2), False, False),
    (LayerGeom.conv("g2", n=1, h=28, cin=64, cout=64, k=3, groups=2), False, False),
    (LayerGeom.conv("k5", n=1, h=28, cin=64, cout=64, k=5), False, True),
    (LayerGeom.conv("k1", n=1, h=28, cin=64, cout=64, k=1), False, False),
    (LayerGeom("r", "conv", 1, 28, 28, 64, 28, 26, 64, kh=1, kw=3), False, False),
    (LayerGeom.dense("fc", n=1, fin=9, fout=9), False, False),
])
def test_winograd_and_fft_apply_where_documented(geom: LayerGeom, wino: bool, fft: bool) -> None:
    assert K.winograd_applies(geom) is wino and K.fft_applies(geom) is fft
    dense = K.dense_cost(geom, H100, "fp16", PARAMS)
    w = K.winograd_cost(geom, H100, "fp16", PARAMS)
    f = K.fft_cost(geom, H100, "fp16", PARAMS)
    assert (w == dense) is not wino and (f == dense) is not fft
    if wino:
        assert w.algo == "winograd" and w.kernels in (4, 5)
    if fft:
        assert f.algo == "fft" and f.kernels >= 4 and f.split_k == 1


def test_scheme_dense_cost_dispatches_and_best_algorithm_takes_the_fastest() -> None:
    got = {s: K.scheme_dense_cost(s, WINO, H100, "fp32", PARAMS) for s in ("dense", "winograd",
                                                                          "fft")}
    assert got["dense"] == K.dense_cost(WINO, H100, "fp32", PARAMS)
    assert got["winograd"] == K.winograd_cost(WINO, H100, "fp32", PARAMS)
    assert got["fft"] == K.fft_cost(WINO, H100, "fp32", PARAMS)
    with pytest.raises(ReplayError, match=r"^'zero_skip' is not a frame-independent scheme$"):
        K.scheme_dense_cost("zero_skip", WINO, H100, "fp32", PARAMS)
    best = K.best_algorithm(WINO, H100, "fp32", PARAMS, algos=("dense", "winograd", "fft"))
    assert best.standalone_us(H100, PARAMS) == min(c.standalone_us(H100, PARAMS)
                                                   for c in got.values())
    assert K.best_algorithm(WINO, H100, "fp32", PARAMS) == got["dense"]


def test_winograd_tiles_the_output_in_m_by_m_blocks() -> None:
    g = LayerGeom.conv("w", n=2, h=9, cin=8, cout=16, k=3)  # 9x9 output
    for m in (2, 4):
        kc = K.winograd_cost(g, H100, "fp32", PARAMS, SchemeConfig(winograd_m=m))
        tiles = 2 * _ceil(9, m) ** 2
        assert kc.n_ctas % (m + 2) ** 2 == 0  # a batch of (m+2)^2 GEMMs
        assert kc.n_ctas == (m + 2) ** 2 * _ceil(tiles, kc.tile.bm) * _ceil(16, kc.tile.bn) \
            * kc.split_k


# --- sparse grids --------------------------------------------------------------------------------

def test_a_sparse_grid_with_nothing_to_skip_costs_the_dense_simt_kernel() -> None:
    g = LayerGeom.conv("c", n=1, h=12, cin=16, cout=48, k=3)  # K = 144, a multiple of bk = 8
    st = K.sparse_tile(g, H100, "fp32", PARAMS)
    dense = K.dense_cost(g, H100, "fp32", PARAMS, SchemeConfig(layout="NHWC"), unit="simt")
    assert (st.tile, st.split) == (dense.tile, dense.split_k)
    cnt = np.full((2, g.m, 1), 144, np.int32)
    grid = K.sparse_grid(cnt, g, H100, "fp32", PARAMS, st)
    assert grid.w.shape == (2, dense.n_ctas) and grid.tile == dense.tile
    np.testing.assert_allclose(grid.w, dense.cta_work)
    np.testing.assert_allclose(grid.d, dense.cta_latency)
    assert grid.occupancy == dense.occupancy and grid.active_frac.tolist() == [1.0, 1.0]
    w, d = K.dense_grid(dense, 3)
    assert w.shape == d.shape == (3, dense.n_ctas)
    assert (w == dense.cta_work).all() and (d == dense.cta_latency).all()


def test_sparse_grid_busiest_lane_versus_compacted_mean() -> None:
    g = LayerGeom.conv("c", n=1, h=8, cin=8, cout=32, k=1)  # M = 64, one n-tile of 32
    t = K.SIMT_TILES[5]  # 32 x 64 tile: two m-tiles of 32 positions
    assert (t.bm, t.bn) == (32, 64)
    cnt = np.zeros((1, 64, 1), np.int32)
    cnt[0, 3, 0] = 8  # one busy position in the first m-tile, nothing in the second
    simt = K.sparse_grid(cnt, g, H100, "fp32", PARAMS, t)
    comp = K.sparse_grid(cnt, g, H100, "fp32", PARAMS, t, compact=True)
    np.testing.assert_allclose(simt.w, [[32 * 64 * 8 / SIMT_RATE, 0.0]])
    np.testing.assert_allclose(comp.w, [[32 * 64 * (8 / 32) / SIMT_RATE, 0.0]])
    # one k-step over the tile's stages, plus the per-CTA overhead only where there is work
    np.testing.assert_allclose(simt.d, [[600.0 / t.stages + 30.0, 0.0]])
    assert simt.active_frac.tolist() == [0.5]
    split = K.sparse_grid(cnt, g, H100, "fp32", PARAMS, K.SparseTile(t, 2))
    np.testing.assert_allclose(split.w, [[32 * 64 * 4 / SIMT_RATE] * 2 + [0.0, 0.0]])
    cnt[0, 3, 0] = 7  # split K rounds each half up (SIMT) but not compacted
    np.testing.assert_allclose(K.sparse_grid(cnt, g, H100, "fp32", PARAMS, K.SparseTile(t, 2)).w,
                               [[32 * 64 * 4 / SIMT_RATE] * 2 + [0.0, 0.0]])
    np.testing.assert_allclose(
        K.sparse_grid(cnt, g, H100, "fp32", PARAMS, K.SparseTile(t, 2), compact=True).w,
        [[32 * 64 * 7 / 32 / 2 / SIMT_RATE] * 2 + [0.0, 0.0]])


def test_grouped_sparse_grid_orders_ctas_by_group_then_tile() -> None:
    g = LayerGeom.conv("g", n=1, h=8, cin=16, cout=16, k=1, groups=2)  # M 64, 8 outputs/group
    t = K.SIMT_TILES[-1]  # 32 x 32: two m-tiles per group, one n-tile
    cnt = np.zeros((1, 64, 2), np.int32)
    cnt[0, 40, 0] = 1   # group 0, second m-tile, depth 1
    cnt[0, 5, 1] = 8    # group 1, first m-tile, depth 8
    grid = K.sparse_grid(cnt, g, H100, "fp32", PARAMS, t)
    unit = 32 * 32 / SIMT_RATE
    np.testing.assert_allclose(grid.w, [[0.0, 1 * unit, 8 * unit, 0.0]])
    # a depth of 1 still pays one step's latency and the CTA overhead
    np.testing.assert_allclose(grid.d, [[0.0, 600.0 / t.stages + 30.0, 600.0 / t.stages + 30.0,
                                         0.0]])


def test_depthwise_sparse_grid_tiles_positions_and_channels() -> None:
    g = LayerGeom.conv("dw", n=1, h=8, cin=40, cout=40, k=3, groups=40)  # M 64, C 40
    assert K.sparse_tile(g, H100, "fp32", PARAMS) == K.SparseTile(K.DEPTHWISE_TILE)
    cnt = np.zeros((1, 64, 40), np.int32)
    cnt[0, 0, 39] = 9  # last channel: the second (padded) channel tile
    grid = K.sparse_grid(cnt, g, H100, "fp32", PARAMS, K.DEPTHWISE_TILE)
    # CTAs: 2 position tiles x 2 channel tiles; only (0, 1) has work, depth 9
    np.testing.assert_allclose(grid.w, [[0.0, 32 * 32 * 9 / SIMT_RATE, 0.0, 0.0]])
    np.testing.assert_allclose(grid.d, [[0.0, 600.0 + 30.0, 0.0, 0.0]])
    comp = K.sparse_grid(cnt, g, H100, "fp32", PARAMS, K.DEPTHWISE_TILE, compact=True)
    np.testing.assert_allclose(comp.w, [[0.0, 9 / SIMT_RATE, 0.0, 0.0]])  # mean over 32 x 32
    mult = LayerGeom.conv("dw2", n=1, h=8, cin=16, cout=32, k=3, groups=16)  # multiplier 2
    cnt2 = np.zeros((1, 64, 16), np.int32)
    cnt2[0, 40, 15] = 4  # channel 15 feeds outputs 30 and 31: second m-tile, first c-tile
    g2 = K.sparse_grid(cnt2, mult, H100, "fp32", PARAMS, K.DEPTHWISE_TILE)
    np.testing.assert_allclose(g2.w, [[0.0, 32 * 32 * 4 / SIMT_RATE]])


# --- elementwise ---------------------------------------------------------------------------------

def test_elementwise_kernel_by_hand() -> None:
    kc = K.elementwise_cost(5000, 4e4, 1e5, H100, "fp32", PARAMS)
    n = _ceil(5000, 256 * 4)
    assert kc.n_ctas == n == 5 and kc.kernels == 1 and kc.algo == "elementwise"
    assert kc.tile == K.ELEMENTWISE_TILE
    assert kc.cta_work == pytest.approx(1e5 / n / SIMT_RATE)
    assert kc.cta_latency == 630.0
    assert kc.memory_cycles == pytest.approx(4e4 / H100.dram_bytes_per_clk)
    assert kc.cycles == max(kc.compute_cycles, kc.memory_cycles)
    assert kc.compute_cycles == pytest.approx(max(kc.cta_work, 630.0))  # one CTA per SM
    assert kc.waves == pytest.approx(n / (132 * kc.occupancy))
    assert kc.busy_cycles == pytest.approx(n * kc.cta_work)
    assert K.elementwise_cost(0, 0.0, 0.0, H100, "fp32", PARAMS).n_ctas == 1
    assert K.elementwise_cost(5000, 4e4, 1e5, H100, "fp32", PARAMS, occ_cap=1).occupancy == 1
    big = K.elementwise_cost(10, 1e9, 0.0, H100, "fp16", PARAMS)
    assert big.cycles == big.memory_cycles == pytest.approx(1e9 / H100.dram_bytes_per_clk)


def test_every_gpu_offers_candidates_for_every_precision() -> None:
    g = LayerGeom.conv("c", n=1, h=8, cin=16, cout=16, k=3)
    for gpu in GPUS.values():
        for p in ("fp32", "tf32", "fp16"):
            kc = K.dense_cost(g, gpu, p, PARAMS)
            assert kc.cycles > 0 and kc.tile in (K.SIMT_TILES if K.dense_unit(gpu, p) == "simt"
                                                 else K.TENSOR_TILES)


def test_winograd_is_its_documented_batched_gemm_and_transforms() -> None:
    g = LayerGeom.conv("w", n=2, h=9, cin=24, cout=40, k=3)  # 9 x 9 output, m = 4: 3 x 3 tiles
    tiles, a2 = 2 * 3 * 3, 36
    t_in, t_out, t_w = a2 * tiles * 24, a2 * tiles * 40, a2 * 24 * 40
    for p, eb in (("fp32", 4), ("fp16", 2)):
        want = K.pick(K.gemm_candidates(
            H100, p, m=tiles, ncol=40, k_channels=24, taps=1, batch=a2,
            io_bytes=eb * (t_in + t_w + t_out), unit=K.dense_unit(H100, p),
            split_k=SchemeConfig().split_k,
            extra_bytes=eb * ((g.n_inputs + t_in) + (g.weights + t_w) + (t_out + g.n_outputs)),
            extra_kernels=3, algo="winograd"), H100, PARAMS)
        assert K.winograd_cost(g, H100, p, PARAMS) == want
    capped = K.winograd_cost(g, H100, "fp16", PARAMS, occ_cap=1)
    assert capped.occupancy == 1


def test_fft_is_its_documented_planes_and_per_bin_complex_gemm() -> None:
    g = LayerGeom.conv("f", n=2, h=28, cin=16, cout=32, k=5)
    P = 32  # the power of two >= 28 + 5 - 1
    bins = P * (P // 2 + 1)
    planes = 2 * 16 + 16 * 32 + 2 * 32
    simt = 128 * H100.ceiling_frac["fp32"] * 0.5
    fft_cycles = planes * 1.25 * P * P * np.log2(P * P) / (simt * 132)
    for p, eb in (("fp32", 4), ("fp16", 2)):
        base = K.pick(K.gemm_candidates(
            H100, "fp32", m=2, ncol=32, k_channels=4 * 16, taps=1, batch=bins,
            io_bytes=8 * bins * planes, unit="simt",
            extra_bytes=eb * (g.n_inputs + g.weights + g.n_outputs) + 8 * bins * planes,
            extra_kernels=3, algo="fft"), H100, PARAMS)
        got = K.fft_cost(g, H100, p, PARAMS)
        assert got.algo == "fft" and got.tile == base.tile and got.kernels == base.kernels
        assert got.cycles == pytest.approx(base.cycles + fft_cycles, rel=1e-12)
        assert got.compute_cycles == pytest.approx(base.compute_cycles + fft_cycles, rel=1e-12)
        assert got.busy_cycles == pytest.approx(base.busy_cycles + fft_cycles * 132, rel=1e-12)
        assert got.memory_cycles == base.memory_cycles
    assert K.fft_cost(g, H100, "fp32", PARAMS, occ_cap=1).occupancy == 1
