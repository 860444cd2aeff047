"""timing.schemes' cost functions against hand computations and the building blocks they are
made of (kernels, sm, scheduler, launch): the tests written for the mutants
tests/test_timing_schemes.py left alive (docs/mutation.md)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from secnn_jax import workmaps
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import kernels as K
from secnn_jax.timing import opkernels as O
from secnn_jax.timing import params as P
from secnn_jax.timing import schemes as S
from secnn_jax.timing.gpus import H100
from secnn_jax.timing.launch import LaunchCosts
from secnn_jax.timing.sm import Tile, dealt_makespan, mem_cycles, rate

PARAMS = P.ModelParams(efficiency={"fp32": 0.5, "tf32": 0.8, "fp16": 0.8}, latency_cycles=600.0,
                       l2_bandwidth_factor=1.0, extra_kernel_us=5.0)
WHICH = ("nonzero", "predicted", "mispredicted")


def ctx_of(geoms: list[LayerGeom], cfg: P.SchemeConfig | None = None, launch: str = "graph",
           precision: str = "fp32", ops: tuple = (), fusion: str = "none",
           params: P.ModelParams = PARAMS) -> S.Context:
    cfg = cfg or P.SchemeConfig()
    return S.Context(tuple(geoms), ops, H100, precision, params, cfg,
                     LaunchCosts.of(launch, H100, params, cfg), fusion)


#: Memory latency so long that elementwise kernels are latency-bound (their waves count).
SLOW = dataclasses.replace(PARAMS, latency_cycles=60000.0)


def counts_of(geoms: list[LayerGeom], events: dict[str, np.ndarray]
              ) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    counts = [workmaps.position_counts_all(events[g.name], g, WHICH) for g in geoms]
    frames = next(iter(events.values())).shape[0]
    misses = np.stack([workmaps.indicator(events[g.name], "mispredicted").reshape(frames, -1)
                       .sum(1) for g in geoms], 1).astype(np.float64)
    return counts, misses


def run(scheme: str, ctx: S.Context, events: dict[str, np.ndarray],
        frame_ids: np.ndarray | None = None) -> S.SchemeTimes:
    s = S.REGISTRY[scheme]
    counts, misses = counts_of(list(ctx.geoms), events)
    frames = misses.shape[0]
    return s.cost(ctx, s.plan(ctx), counts, misses, frames, frame_ids=frame_ids)


def lane_events(g: LayerGeom, frames: int, code: int) -> np.ndarray:
    """Only one input position's channels carry ``code`` per frame (lane-unbalanced work);
    frame ``f`` of ``frames`` has ``f`` such positions (frame 0 none)."""
    ev = np.zeros((frames, *g.in_nhwc), np.uint8)
    for f in range(frames):
        ev[f, 0, :f, 0, :] = code
    return ev


# --- _balanced --------------------------------------------------------------------------------

def test_balanced_software_compaction_by_hand() -> None:
    g = LayerGeom.conv("c", n=1, h=8, cin=16, cout=32, k=3)
    rng = np.random.default_rng(0)
    ev = rng.choice(4, size=(3, *g.in_nhwc), p=(0.7, 0.1, 0.1, 0.1)).astype(np.uint8)
    ev[1] = 0  # a frame without work: no pass
    cnt = workmaps.position_counts_all(ev, g, WHICH)["mispredicted"]
    cfg = P.SchemeConfig(compaction_bytes_per_miss=12.0)
    ctx = ctx_of([g], cfg)
    tile = K.SparseTile(Tile(32, 32, 8, 64, 40, 2, "simt"))  # not the layer's own tile
    items = np.array([37.0, 5.0, 11.0])
    sp = S._balanced(ctx, cnt, g, tile, None, items, "software", 123.0)
    cb = np.where([True, False, True], 12.0 * items + g.n_inputs / 8.0, 0.0)
    np.testing.assert_allclose(sp.compaction_bytes, cb, rtol=1e-12)
    np.testing.assert_allclose(sp.compaction, np.where(
        cb > 0, mem_cycles(H100, cb, PARAMS) + 2.0 * PARAMS.latency_cycles, 0.0), rtol=1e-12)
    grid = K.sparse_grid(cnt, g, H100, "fp32", PARAMS, tile, compact=True)
    np.testing.assert_array_equal(sp.grid.w, grid.w)
    np.testing.assert_array_equal(sp.grid.d, grid.d)
    np.testing.assert_allclose(sp.compute, dealt_makespan(grid.w, grid.d, H100.sms,
                                                          grid.occupancy), rtol=1e-12)
    np.testing.assert_allclose(sp.busy, grid.w.sum(-1))
    assert sp.balanced.all()
    # items not given: the layer's inputs times the share of receptive-field work present
    sp2 = S._balanced(ctx, cnt, g, tile, None, None, "software", 0.0)
    share = cnt.reshape(3, -1).sum(1) / (cnt[0].size * g.cin_g * g.kh * g.kw)
    np.testing.assert_allclose(sp2.compaction_bytes,
                               np.where(share > 0, 12.0 * share * g.n_inputs
                                        + g.n_inputs / 8.0, 0.0), rtol=1e-12)
    # an occupancy cap is the grid's occupancy at most
    sp3 = S._balanced(ctx, cnt, g, tile, 1, items, "software", 0.0)
    np.testing.assert_allclose(sp3.compute, dealt_makespan(grid.w, grid.d, H100.sms, 1))


@pytest.mark.parametrize("compaction", ["none", "hardware"])
def test_balanced_without_a_pass_by_hand(compaction: str) -> None:
    g = LayerGeom.conv("c", n=1, h=8, cin=16, cout=32, k=3)
    ev = lane_events(g, 3, 1)
    cnt = workmaps.position_counts_all(ev, g, WHICH)["mispredicted"]
    tile = K.SparseTile(Tile(32, 32, 8, 64, 40, 2, "simt"))
    sp = S._balanced(ctx_of([g]), cnt, g, tile, None, np.ones(3), compaction, 50.0)
    grid = K.sparse_grid(cnt, g, H100, "fp32", PARAMS, tile, compact=compaction == "hardware")
    np.testing.assert_array_equal(sp.grid.w, grid.w)
    np.testing.assert_allclose(sp.compute, dealt_makespan(grid.w, grid.d, H100.sms,
                                                          grid.occupancy))
    assert (sp.balanced == (compaction == "hardware")).all()
    assert (sp.compaction == 0).all() and (sp.compaction_bytes == 0).all()


def test_balanced_auto_takes_the_pass_per_frame_where_it_pays() -> None:
    # A 1x1 conv with deep K: one lane per frame holds all the work. Balanced, the CTA's lanes
    # share it; the pass (bytes + two latencies) pays where the busiest lane is long enough.
    g = LayerGeom.conv("p", n=1, h=16, cin=512, cout=64, k=1)
    ev = lane_events(g, 3, 1)
    cnt = workmaps.position_counts_all(ev, g, WHICH)["mispredicted"]
    ctx = ctx_of([g])
    tile = K.sparse_tile(g, H100, "fp32", PARAMS, ctx.cfg)
    items = cnt.reshape(3, -1).sum(1).astype(np.float64)
    for boundary, floor in ((0.0, 0.0), (1e9, 0.0), (0.0, 1e9), (500.0, 100.0)):
        sp = S._balanced(ctx, cnt, g, tile, None, items, "auto", boundary, floor)
        bal, raw = K.sparse_grids(cnt, g, H100, "fp32", PARAMS, tile, (True, False))
        bmk = dealt_makespan(bal.w, bal.d, H100.sms, bal.occupancy)
        rmk = dealt_makespan(raw.w, raw.d, H100.sms, raw.occupancy)
        cb = np.where(bal.active_frac > 0, ctx.cfg.compaction_bytes_per_miss * items
                      + g.n_inputs / 8.0, 0.0)
        pass_t = np.where(cb > 0, mem_cycles(H100, cb, PARAMS) + 2 * PARAMS.latency_cycles, 0)
        use = np.maximum(bmk, floor) + pass_t + boundary < np.maximum(rmk, floor)
        if boundary == 0.0 and floor == 0.0:
            assert use.tolist() == [False, True, True]  # the data exercise both choices
        np.testing.assert_array_equal(sp.balanced, use)
        np.testing.assert_allclose(sp.compute, np.where(use, bmk, rmk), rtol=1e-12)
        np.testing.assert_allclose(sp.compaction, np.where(use, pass_t, 0.0), rtol=1e-12)
        np.testing.assert_allclose(sp.compaction_bytes, np.where(use, cb, 0.0), rtol=1e-12)
        np.testing.assert_array_equal(sp.grid.w, np.where(use[:, None], bal.w, raw.w))
        np.testing.assert_array_equal(sp.grid.d, np.where(use[:, None], bal.d, raw.d))
        np.testing.assert_allclose(sp.busy, sp.grid.w.sum(-1))


# --- layer after layer --------------------------------------------------------------------

def test_dense_spans_are_one_stream_of_the_layers() -> None:
    geoms = [LayerGeom.conv("a", n=1, h=8, cin=8, cout=16, k=3),
             LayerGeom.conv("b", n=1, h=8, cin=16, cout=8, k=1)]
    ctx = ctx_of(geoms, launch="eager")
    t = run("dense", ctx, {g.name: np.zeros((2, *g.in_nhwc), np.uint8) for g in geoms})
    assert set(t.spans) == set(t.span_args) == set(t.span_work) == {"stream"}
    labels, start, end = t.spans["stream"]
    assert labels == ("a", "b")
    plan = S.REGISTRY["dense"].plan(ctx)
    lc = ctx.launch
    # eager: the host issues kernel k at submit + k * issue; each item after the previous
    # one's end and a boundary, a split item paying its inner boundary
    ex = np.array([c.cycles for c in plan.costs])
    kern = [c.kernels for c in plan.costs]
    s0 = lc.submit
    e0 = s0 + ex[0] + (kern[0] - 1) * lc.gap
    s1 = max(e0 + lc.gap, lc.submit + kern[0] * lc.issue)
    np.testing.assert_allclose(start, [[s0, s1]] * 2, rtol=1e-12)
    np.testing.assert_allclose(end, [[e0, s1 + ex[1] + (kern[1] - 1) * lc.gap]] * 2,
                               rtol=1e-12)
    np.testing.assert_allclose(t.total, end[:, -1])
    np.testing.assert_allclose(t.span_args["stream"]["ctas"],
                               [[c.n_ctas for c in plan.costs]] * 2)
    np.testing.assert_allclose(t.span_work["stream"]["fma_simt"],
                               [[c.busy_cycles * rate(H100, "fp32", "simt", PARAMS)
                                 for c in plan.costs]] * 2, rtol=1e-12)
    # each layer's critical-path time: up to its item's end
    np.testing.assert_allclose(t.layer, np.stack([end[:, 0], end[:, 1] - end[:, 0]], 1),
                               rtol=1e-12)


def test_dense_with_op_kernels_by_hand() -> None:
    geoms = [LayerGeom.conv("a", n=1, h=8, cin=8, cout=16, k=3),
             LayerGeom.conv("b", n=1, h=8, cin=16, cout=8, k=1)]
    ops = (O.OpGeom("pre", "pool", -1, reads=300, param_reads=0, writes=256, flops=300),
           O.OpGeom("bn", "affine", 0, reads=1024, param_reads=8, writes=1024, flops=2048),
           O.OpGeom("relu", "activation", 1, reads=512, param_reads=0, writes=512, flops=512))
    ctx = ctx_of(geoms, ops=ops)
    plan = S.REGISTRY["dense"].plan(ctx)
    t = run("dense", ctx, {g.name: np.zeros((1, *g.in_nhwc), np.uint8) for g in geoms})
    op = plan.ops
    labels, start, end = t.spans["stream"]
    assert labels == ("pre", "a", "bn", "b", "relu")
    col = {"pre": 0, "bn": 1, "relu": 2}
    for j, lab in enumerate(labels):
        if lab in col:
            k = col[lab]
            assert (end - start)[0, j] == pytest.approx(op.kernel_cycles[k], rel=1e-12)
            assert t.span_args["stream"]["ctas"][0, j] == op.kernel_ctas[k]
            assert t.span_args["stream"]["bytes"][0, j] == op.kernel_bytes[k]
        else:
            li = [g.name for g in geoms].index(lab)
            assert t.span_args["stream"]["bytes"][0, j] == pytest.approx(
                S._kernel_bytes(ctx, geoms[li], plan.costs[li]) + op.layer_extra_bytes[li])
    # the op before the first layer is layer 0's, the others the layer they follow
    np.testing.assert_allclose(t.layer[0], [end[0, 2], end[0, 4] - end[0, 2]], rtol=1e-12)
    np.testing.assert_allclose(t.phases["ops"], [op.kernel_cycles.sum()], rtol=1e-12)


def test_split_k_workspace_bytes() -> None:
    g = LayerGeom.dense("deep", n=8, fin=4096, fout=64)
    ctx = ctx_of([g])
    plan = S.REGISTRY["dense"].plan(ctx)
    kc = plan.costs[0]
    assert kc.split_k > 1  # a deep, narrow GEMM splits K
    ws = 2.0 * kc.split_k * g.groups * g.m * g.cout_g * 4
    assert S._kernel_bytes(ctx, g, kc) == pytest.approx(4 * (g.n_inputs + g.weights
                                                             + g.n_outputs) + ws)
    t = run("dense", ctx, {"deep": np.zeros((1, *g.in_nhwc), np.uint8)})
    assert t.layer_phases["exec"][0, 0] == pytest.approx(kc.cycles)
    assert (t.spans["stream"][2] - t.spans["stream"][1])[0, 0] == pytest.approx(
        kc.cycles + (kc.kernels - 1) * ctx.launch.gap)
    assert t.span_args["stream"]["bytes"][0, 0] == pytest.approx(S._kernel_bytes(ctx, g, kc))


def test_zero_skip_by_hand() -> None:
    geoms = _secnn_net()
    ctx = ctx_of(geoms, P.SchemeConfig(sw_compaction="none"))
    rng = np.random.default_rng(6)
    ev = {g.name: rng.choice(4, size=(2, *g.in_nhwc), p=(0.6, 0.1, 0.2, 0.1)).astype(np.uint8)
          for g in geoms}
    plan = S.REGISTRY["zero_skip"].plan(ctx)
    t = run("zero_skip", ctx, ev)
    counts, _ = counts_of(geoms, ev)
    rate_simt = PARAMS.efficiency["fp32"] * H100.ceiling_frac["fp32"] * H100.fp32_lanes
    for li, g in enumerate(geoms):
        grid = K.sparse_grid(counts[li]["nonzero"], g, H100, "fp32", PARAMS, plan.tiles[li])
        mk = dealt_makespan(grid.w, grid.d, H100.sms, grid.occupancy)
        io = 4.0 * (g.n_inputs + g.weights + g.n_outputs)
        np.testing.assert_allclose(t.layer_phases["exec"][:, li],
                                   np.maximum(mk, mem_cycles(H100, io, PARAMS)), rtol=1e-12)
        np.testing.assert_allclose(t.span_args["stream"]["ctas"][:, li], (grid.w > 0).sum(-1))
        np.testing.assert_allclose(t.span_args["stream"]["bytes"][:, li], io)
        np.testing.assert_allclose(t.span_work["stream"]["fma_simt"][:, li],
                                   grid.w.sum(-1) * rate_simt, rtol=1e-9)


# --- SE-CNN --------------------------------------------------------------------------------

def _secnn_net(h: int = 16) -> list[LayerGeom]:
    return [LayerGeom.conv("p", n=1, h=h, cin=512, cout=64, k=1),
            LayerGeom.conv("q", n=1, h=16, cin=64, cout=32, k=3)]


def test_secnn_parallel_grids_follow_the_machines_compaction() -> None:
    geoms = _secnn_net()
    for comp in ("none", "software", "auto"):
        ctx = ctx_of(geoms, P.SchemeConfig(sw_compaction=comp, secnn_parallel="sparse"))
        plan = S.REGISTRY["secnn_sw"].plan(ctx)
        ev = {g.name: lane_events(g, 3, 2) for g in geoms}  # predicted, correct inputs
        counts, misses = counts_of(geoms, ev)
        t = S.REGISTRY["secnn_sw"].cost(ctx, plan, counts, misses, 3)
        rel = t.spans["parallel"][1]
        for li, g in enumerate(geoms):
            bal = S._balanced(ctx, counts[li]["predicted"], g, plan.tiles[li], plan.occ_cap,
                              None, comp, ctx.launch.gap)
            delay = np.where(bal.compaction > 0, bal.compaction + ctx.launch.gap, 0.0)
            if comp == "auto" and li == 0:
                assert delay[1] > 0 and delay[0] == 0  # both kinds of frame occur
            # graph launch: every parallel kernel released at the submission, after its pass
            np.testing.assert_allclose(rel[:, li], ctx.launch.submit + delay, rtol=1e-12)
            np.testing.assert_allclose(
                t.span_args["parallel"]["bytes"][:, li],
                plan.io_bytes[li] * bal.grid.active_frac + bal.compaction_bytes, rtol=1e-12)


def test_secnn_parallel_mixed_dense_and_sparse_frames() -> None:
    g = LayerGeom.conv("p", n=1, h=16, cin=512, cout=64, k=1)
    # tf32: the dense kernel runs on the tensor cores, far faster than the SIMT sparse one
    ctx = ctx_of([g], P.SchemeConfig(sw_compaction="none"), precision="tf32")
    plan = S.REGISTRY["secnn_sw"].plan(ctx)
    ev = np.zeros((2, *g.in_nhwc), np.uint8)
    ev[1] = 2  # frame 1: every input predicted non-zero, frame 0: none
    counts, _ = counts_of([g], {"p": ev})
    work = S._Work(ctx, 2)
    ws, ds, occs, use, nbytes, delay = S._parallel_grids(ctx, plan, counts, 2, work, "none", 0.0)
    assert use[:, 0].tolist() == [False, True]
    dw, dd = K.dense_grid(plan.dense[0], 2)
    sp = K.sparse_grid(counts[0]["predicted"], g, H100, "tf32", PARAMS, plan.tiles[0])
    n = max(dw.shape[1], sp.w.shape[1])
    assert ws[0].shape == ds[0].shape == (2, n)
    np.testing.assert_array_equal(ws[0][1, :dw.shape[1]], dw[1])
    np.testing.assert_array_equal(ws[0][0, :sp.w.shape[1]], sp.w[0])
    np.testing.assert_array_equal(ds[0][1, :dw.shape[1]], dd[1])
    np.testing.assert_array_equal(ds[0][0, :sp.d.shape[1]], sp.d[0])
    assert ws[0].dtype == ds[0].dtype == np.float64
    assert (ws[0][1, dw.shape[1]:] == 0).all() and (ws[0][0, sp.w.shape[1]:] == 0).all()
    assert occs == [min(sp.occupancy, plan.dense[0].occupancy)]
    assert (delay == 0).all()
    np.testing.assert_allclose(nbytes[:, 0], [plan.io_bytes[0] * sp.active_frac[0],
                                              plan.io_bytes[0]])
    # the work: the dense frame's FMAs on the tensor cores, the sparse frame's on the lanes
    node = work.nodes[("parallel", 0)]
    dk = plan.dense[0]
    np.testing.assert_allclose(node["fma_tensor"], [0.0, dk.busy_cycles * rate(
        H100, "tf32", "tensor", PARAMS)], rtol=1e-12)
    np.testing.assert_allclose(node["fma_simt"], [sp.w[0].sum() * rate(H100, "tf32", "simt",
                                                                       PARAMS), 0.0], rtol=1e-12)


def test_secnn_parallel_choice_counts_the_compaction_pass() -> None:
    # A compacted sparse kernel is cheaper than the dense one, but not with its pass: dense.
    g = LayerGeom.conv("p", n=1, h=16, cin=512, cout=64, k=1)
    ctx = ctx_of([g], P.SchemeConfig(sw_compaction="software"), precision="tf32")
    plan = S.REGISTRY["secnn_sw"].plan(ctx)
    ev = np.zeros((4, *g.in_nhwc), np.uint8)
    for f in range(4):
        ev[f, 0, :3 * f, 0, :] = 2
    counts, _ = counts_of([g], {"p": ev})
    bal = S._balanced(ctx, counts[0]["predicted"], g, plan.tiles[0], plan.occ_cap, None,
                      "software", ctx.launch.gap)
    dk = plan.dense[0]
    assert (bal.compute[1:] < dk.compute_cycles).all()
    sp_t = bal.compute + np.where(bal.compaction > 0, bal.compaction + ctx.launch.gap, 0.0)
    want = dk.compute_cycles < sp_t
    assert want.tolist() == [False, True, True, True]
    _, _, _, use, _, delay = S._parallel_grids(ctx, plan, counts, 4, S._Work(ctx, 4),
                                               "software", ctx.launch.gap)
    np.testing.assert_array_equal(use[:, 0], want)
    assert (delay == 0).all()  # a dense kernel waits for no pass


def test_secnn_parallel_tie_goes_to_the_sparse_kernel() -> None:
    # fp32, every input predicted, no balancing: the zero-skipping kernel is the dense one
    g = LayerGeom.conv("p", n=1, h=16, cin=512, cout=64, k=1)
    ctx = ctx_of([g], P.SchemeConfig(sw_compaction="none"))
    plan = S.REGISTRY["secnn_sw"].plan(ctx)
    counts, _ = counts_of([g], {"p": np.full((2, *g.in_nhwc), 2, np.uint8)})
    bal = S._balanced(ctx, counts[0]["predicted"], g, plan.tiles[0], None, None, "none", 0.0)
    assert (bal.compute == plan.dense[0].compute_cycles).all()
    _, _, _, use, _, _ = S._parallel_grids(ctx, plan, counts, 2, S._Work(ctx, 2), "none", 0.0)
    assert not use.any()


def test_secnn_parallel_mode_overrides_the_choice() -> None:
    g = LayerGeom.conv("p", n=1, h=16, cin=512, cout=64, k=1)
    full = {"p": np.full((1, *g.in_nhwc), 2, np.uint8)}  # auto: dense (tensor cores)
    none = {"p": np.zeros((1, *g.in_nhwc), np.uint8)}  # auto: sparse (nothing to do)
    for mode, ev, want in (("auto", full, True), ("sparse", full, False),
                           ("auto", none, False), ("dense", none, True)):
        ctx = ctx_of([g], P.SchemeConfig(secnn_parallel=mode), precision="tf32")
        t = run("secnn_sw", ctx, ev)
        assert t.layer_phases["parallel_dense"].tolist() == [[want]], mode


@pytest.mark.parametrize("launch", ["graph", "persistent"])
@pytest.mark.parametrize("placement", ["cache", "off_chip", "on_chip"])
def test_secnn_hw_prediction_buffer_traffic(placement: str, launch: str) -> None:
    geoms = _secnn_net()
    ctx = ctx_of(geoms, P.SchemeConfig(buffer_placement=placement, hw_compaction="hardware"),
                 launch=launch)
    cap = S.REGISTRY["secnn_hw"].plan(ctx).occ_cap
    ev = {g.name: np.random.default_rng(1).choice(4, size=(2, *g.in_nhwc)).astype(np.uint8)
          for g in geoms}
    t = run("secnn_hw", ctx, ev)
    labels = t.spans["serial"][0]
    sw = t.span_work["serial"]
    for li, g in enumerate(geoms):
        k = labels.index(f"{g.name}:compare")
        pred = 2.0 * 4 * g.n_inputs
        want_smem = pred if placement == "on_chip" else 0.0
        np.testing.assert_allclose(sw["smem_bytes"][:, k], want_smem)
        cmp_bytes = 4 * g.n_inputs + (pred if placement == "cache" else 0.0)
        l2 = cmp_bytes if cmp_bytes <= H100.l2_bytes else 0.0
        np.testing.assert_allclose(sw["l2_bytes"][:, k], l2)
        np.testing.assert_allclose(sw["dram_bytes"][:, k],
                                   (cmp_bytes - l2) + (pred if placement == "off_chip" else 0))
        np.testing.assert_allclose(sw["compares"][:, k], g.n_inputs)
        # the compare: its compares over the comparators, at least its memory time
        mem = K.elementwise_cost(g.n_inputs, cmp_bytes, 0.0, H100, "fp32", PARAMS, cap).cycles
        if placement == "off_chip":
            mem = mem + pred / H100.dram_bytes_per_clk
        np.testing.assert_allclose(t.layer_phases["compare"][:, li],
                                   max(g.n_inputs / (H100.sms * H100.fp32_lanes), mem),
                                   rtol=1e-12)


def test_secnn_sw_compaction_passes_wait_for_no_parallel_kernel() -> None:
    geoms = _secnn_net()
    ctx = ctx_of(geoms, P.SchemeConfig(sw_compaction="software"))
    ev = {g.name: lane_events(g, 2, 1) for g in geoms}  # mispredicted: work to compact
    t = run("secnn_sw", ctx, ev)
    labels, start, end = t.spans["serial"]
    for li, g in enumerate(geoms):
        c, k = labels.index(f"{g.name}:compare"), labels.index(f"{g.name}:compaction")
        a = labels.index(f"{g.name}:amend")
        assert (c, a) == (k - 1, k + 1)
        # the compaction follows its compare after one boundary, whatever the parallel phase
        np.testing.assert_allclose(start[:, k], end[:, c] + ctx.launch.gap, rtol=1e-12)
        # the amendment waits for its layer's parallel kernel
        assert (start[:, a] >= t.layer_phases["parallel_done"][:, li] - 1e-9).all()
    # the pass's bytes: compaction_bytes_per_miss per mispredicted input and the bitmap
    for g in geoms:
        k = labels.index(f"{g.name}:compaction")
        nb = t.span_args["serial"]["bytes"][:, k]
        want = ctx.cfg.compaction_bytes_per_miss * np.array([0.0, g.cin]) + g.n_inputs / 8.0
        np.testing.assert_allclose(nb, np.where(want > g.n_inputs / 8.0, want, 0.0))


def test_secnn_pool_share_of_an_idle_parallel_kernel_is_zero() -> None:
    geoms = _secnn_net()
    ctx = ctx_of(geoms, P.SchemeConfig(secnn_parallel="sparse"))
    ev = {g.name: np.zeros((2, *g.in_nhwc), np.uint8) for g in geoms}
    ev["q"][1] = 2  # layer q predicts work in frame 1 only; layer p never
    t = run("secnn_sw", ctx, ev)
    sms = t.span_args["parallel"]["sms"]
    assert np.isfinite(sms).all()
    np.testing.assert_array_equal(sms[:, 0], 0.0)
    assert sms[0, 1] == 0.0 and 0 < sms[1, 1] <= H100.sms
    # frame 1, layer q: the SMs its CTAs held on average while it ran, by hand
    plan = S.REGISTRY["secnn_sw"].plan(ctx)
    counts, _ = counts_of(geoms, ev)
    bal = S._balanced(ctx, counts[1]["predicted"], geoms[1], plan.tiles[1], plan.occ_cap, None,
                      ctx.cfg.sw_compaction, ctx.launch.gap)
    occ = bal.grid.occupancy
    hold = np.maximum(bal.grid.w[1], bal.grid.d[1] / occ).sum()
    span = t.spans["parallel"][2][1, 1] - t.spans["parallel"][1][1, 1]
    ctas = (bal.grid.w[1] > 0).sum()
    assert t.span_args["parallel"]["ctas"][1, 1] == ctas
    assert sms[1, 1] == min(ctas, H100.sms, np.ceil(hold / span - 1e-9))


def test_work_counts_by_hand() -> None:
    g = LayerGeom.conv("c", n=1, h=8, cin=8, cout=8, k=3)
    ctx = ctx_of([g], precision="tf32")
    w = S._Work(ctx, 2)
    w.node("layer", 0).bytes(np.array([1000.0, 2.0 * H100.l2_bytes]))
    w.fmas(np.array([10.0, 20.0]), "simt", Tile(4, 8, 2, 32, 32, 1, "simt"))
    w.node("op", 0).fmas(3.0, "tensor", Tile(64, 64, 1, 128, 64, 2, "tensor"))  # no K tile
    w.node("compare", 0).compares(5.0, 7.0)
    r = rate(H100, "tf32", "simt", PARAMS)
    lyr = w.nodes[("layer", 0)]
    np.testing.assert_array_equal(lyr["l2_bytes"], [1000.0, 0.0])
    np.testing.assert_array_equal(lyr["dram_bytes"], [0.0, 2.0 * H100.l2_bytes])
    np.testing.assert_allclose(lyr["fma_simt"], [10 * r, 20 * r])
    np.testing.assert_allclose(lyr["smem_bytes"], [2 * 4 * 10 * r * (1 / 4 + 1 / 8),
                                                   2 * 4 * 20 * r * (1 / 4 + 1 / 8)])
    op = w.nodes[("op", 0)]
    np.testing.assert_allclose(op["fma_tensor"], 3.0 * rate(H100, "tf32", "tensor", PARAMS))
    assert "smem_bytes" not in op and "fma_simt" not in op
    cmp = w.nodes[("compare", 0)]
    assert sorted(cmp) == ["compare_instructions", "compares"]
    np.testing.assert_array_equal(cmp["compares"], [5.0, 5.0])
    np.testing.assert_array_equal(cmp["compare_instructions"], [7.0, 7.0])


# --- peers -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("launch", "prec", "params", "comp"),
                         [("graph", "fp32", PARAMS, "none"), ("persistent", "fp32", PARAMS, "auto"),
                          ("persistent", "tf32", SLOW, "none")])
@pytest.mark.parametrize("kind", ["deltacnn", "cbinfer"])
def test_peers_by_hand(kind: str, launch: str, prec: str, params: P.ModelParams,
                       comp: str) -> None:
    # latency-bound: a first layer whose detection pass takes more than one wave of CTAs at
    # the persistent kernel's occupancy
    geoms = _secnn_net(24 if params is SLOW else 16)
    ctx = ctx_of(geoms, P.SchemeConfig(sw_compaction=comp), launch=launch, precision=prec,
                 params=params)
    # sparse changes: a few positions changed beyond tau (more in frame 1), some correct
    ev = {g.name: lane_events(g, 2, 1) for g in geoms}
    for g in geoms:
        ev[g.name][:, -1, -3:, -1, :] = 1
        ev[g.name][1, 0, 2:5, 3, :] = 1
    plan = S.REGISTRY[kind].plan(ctx)
    counts, misses = counts_of(geoms, ev)
    t = S.REGISTRY[kind].cost(ctx, plan, counts, misses, 2, frame_ids=np.array([0, 1]))
    labels, start, end = t.spans["stream"]
    assert labels == ("p", "q")
    ex = t.layer_phases["exec"]
    gap = ctx.launch.gap
    kernels = [2, 1] if kind == "deltacnn" else [2, 2]
    # each layer's item pays its inner kernel boundary
    np.testing.assert_allclose(end - start, ex + (np.array(kernels) - 1) * gap, rtol=1e-12)
    eb = 4
    det_bytes = [3.0 * eb * g.n_inputs + g.n_inputs / 8.0 for g in geoms]
    for li, g in enumerate(geoms):
        dk = plan.dense[li]
        # frame 0 dense: the dense kernel plus writing the output buffer
        assert ex[0, li] == pytest.approx(dk.cycles + float(mem_cycles(H100, eb * g.n_outputs,
                                                                       params)), rel=1e-12)
        assert t.span_args["stream"]["bytes"][0, li] == pytest.approx(
            S._kernel_bytes(ctx, g, dk) + eb * g.n_outputs)
        # frame 1: the sparse kernel's bytes by hand
        cnt = counts[li]["mispredicted"]
        touched = float((cnt[1] > 0).mean())
        assert 0 < (cnt[0] > 0).mean() < touched < 1  # sparse changes, more in frame 1
        if kind == "deltacnn":
            out = 2.0 * eb * g.n_outputs * touched + eb * misses[1, li]
            sp = S._balanced(ctx, cnt, g, plan.tiles[li], plan.occ_cap, misses[:, li], comp,
                             max(ctx.launch.gap, ctx.launch.issue),
                             mem_cycles(H100, 2.0 * eb * g.n_outputs * (cnt > 0).mean(
                                 axis=(-2, -1)) + eb * misses[:, li], params))
        else:
            full = np.where(cnt > 0, g.cin_g * g.kh * g.kw, 0).astype(np.int64)
            out = eb * g.n_inputs * touched + 2.0 * eb * g.n_outputs * touched
            sp = S._balanced(ctx, full, g, plan.tiles[li], plan.occ_cap, None, comp,
                             max(ctx.launch.gap, ctx.launch.issue),
                             mem_cycles(H100, (eb * g.n_inputs + 2.0 * eb * g.n_outputs)
                                        * (cnt > 0).mean(axis=(-2, -1)), params))
        conv = eb * g.weights * sp.grid.active_frac[1] + out
        assert t.span_args["stream"]["bytes"][1, li] == pytest.approx(
            conv + det_bytes[li] + sp.compaction_bytes[1], rel=1e-12)
        own_det = li == 0 or kind == "cbinfer"
        det = (K.elementwise_cost(g.n_inputs, det_bytes[li], 0.0, H100, prec, params,
                                  plan.occ_cap).cycles if own_det else 0.0)
        if params is SLOW and li == 0:  # the occupancy cap binds the pass
            assert det > K.elementwise_cost(g.n_inputs, det_bytes[li], 0.0, H100, prec, params
                                            ).cycles
        epi = det_bytes[li + 1] if kind == "deltacnn" and li + 1 < len(geoms) else 0.0
        boundary = max(ctx.launch.gap, ctx.launch.issue)
        assert ex[1, li] == pytest.approx(
            max(sp.compute[1], float(mem_cycles(H100, conv + epi, params))) + det
            + (sp.compaction[1] + boundary if sp.compaction[1] > 0 else 0.0), rel=1e-12)
        np.testing.assert_array_equal(t.span_args["stream"]["ctas"][:, li],
                                      [dk.n_ctas, (sp.grid.w[1] > 0).sum()])
        assert dk.n_ctas != (sp.grid.w[0] > 0).sum()
        r = rate(H100, prec, "simt", params)
        dense_key = "fma_tensor" if S._unit(dk) == "tensor" else "fma_simt"
        assert t.span_work["stream"][dense_key][0, li] == pytest.approx(
            dk.busy_cycles * rate(H100, prec, S._unit(dk), params), rel=1e-12)
        assert t.span_work["stream"]["fma_simt"][1, li] == pytest.approx(sp.busy[1] * r,
                                                                          rel=1e-12)
        moved = t.span_work["stream"]["l2_bytes"] + t.span_work["stream"]["dram_bytes"]
        np.testing.assert_allclose(moved[:, li], t.span_args["stream"]["bytes"][:, li],
                                   rtol=1e-12)
        # change detection compares every input of a sparse frame, none of the dense one
        np.testing.assert_array_equal(t.span_work["stream"]["compares"][:, li],
                                      [0.0, g.n_inputs])
        np.testing.assert_array_equal(t.span_work["stream"]["compare_instructions"][:, li],
                                      [0.0, g.n_inputs])
    # no frame ids: every frame sparse
    t2 = S.REGISTRY[kind].cost(ctx, plan, counts, misses, 2)
    np.testing.assert_allclose(t2.layer_phases["exec"][1], ex[1], rtol=1e-12)
    np.testing.assert_allclose(t2.span_work["stream"]["compares"][0],
                               [g.n_inputs for g in geoms])


# --- the registry's cost functions (built when the module is imported) ----------------------

@pytest.mark.parametrize("launch", ["graph", "persistent"])
def test_registry_functions_are_the_building_blocks(launch: str) -> None:
    from secnn_jax.timing import secnn as SE
    geoms = _secnn_net()
    ctx = ctx_of(geoms, launch=launch)
    rng = np.random.default_rng(8)
    ev = {g.name: rng.choice(4, size=(2, *g.in_nhwc)).astype(np.uint8) for g in geoms}
    counts, misses = counts_of(geoms, ev)
    # the frame-independent plans: each layer's kernel from kernels.*_cost, capped the same way
    for scheme, fn in (("dense", K.dense_cost), ("winograd", K.winograd_cost),
                       ("fft", K.fft_cost)):
        plan = S._frame_independent_plan(scheme)(ctx)
        cap = plan.occ_cap
        assert (cap is None) == (launch != "persistent")
        want = [fn(g, H100, "fp32", PARAMS, ctx.cfg, occ_cap=cap) for g in geoms]
        assert list(plan.costs) == want
        np.testing.assert_array_equal(plan.ops.layer_extra, ctx.op_plan(cap).layer_extra)
    secnn_plan = S._secnn_plan(ctx)
    # SE-CNN's dense kernels at the plan's occupancy (a persistent kernel's cap)
    assert list(secnn_plan.dense) == [K.dense_cost(g, H100, "fp32", PARAMS, ctx.cfg,
                                                   occ_cap=secnn_plan.occ_cap) for g in geoms]
    for extended in (False, True):
        got = S._secnn_cost(extended)(ctx, secnn_plan, counts, misses, 2)
        want = S._secnn_times(ctx, secnn_plan, counts, misses, 2,
                              SE.Machine.of(extended, H100, ctx.cfg))
        np.testing.assert_array_equal(got.total, want.total)
        np.testing.assert_array_equal(got.layer, want.layer)
    ids = np.array([0, 1])
    for kind in ("deltacnn", "cbinfer"):
        got = S._peer_cost(kind)(ctx, secnn_plan, counts, misses, 2, frame_ids=ids)
        want = S._peer_times(ctx, secnn_plan, counts, misses, 2, ids, kind)
        np.testing.assert_array_equal(got.total, want.total)
        np.testing.assert_array_equal(got.layer_phases["exec"], want.layer_phases["exec"])
    assert S._peer_times(ctx, secnn_plan, counts, misses, 2, ids, "deltacnn").total.tolist() != \
        S._peer_times(ctx, secnn_plan, counts, misses, 2, ids, "cbinfer").total.tolist()


@pytest.mark.parametrize(("scheme", "comp"), [("secnn_sw", "auto"), ("secnn_sw", "software"),
                                              ("secnn_hw", "hardware"), ("secnn_hw", "none"),
                                              ("secnn_hw", "software")])
def test_secnn_amendment_by_hand(scheme: str, comp: str) -> None:
    geoms = _secnn_net()
    ops = (O.OpGeom("bn", "affine", 0, reads=16384, param_reads=64, writes=16384, flops=32768,
                    epilogue_of=0),
           O.OpGeom("relu", "activation", 1, reads=8192, param_reads=0, writes=8192, flops=8192,
                    epilogue_of=1))
    cfg = P.SchemeConfig(sw_compaction=comp if scheme == "secnn_sw" else "auto",
                         hw_compaction=comp if scheme == "secnn_hw" else "hardware")
    ctx = ctx_of(geoms, cfg, ops=ops, fusion="epilogue")
    plan = S.REGISTRY[scheme].plan(ctx)
    assert (plan.ops.secnn_pass_bytes > 0).all()
    ev = {g.name: lane_events(g, 3, 1) for g in geoms}
    ev["q"][2] = np.random.default_rng(2).choice(4, size=g_shape(geoms[1])).astype(np.uint8)
    counts, misses = counts_of(geoms, ev)
    t = S.REGISTRY[scheme].cost(ctx, plan, counts, misses, 3)
    labels = t.spans["serial"][0]
    hw = scheme == "secnn_hw"
    boundary = 0.0 if hw else ctx.launch.gap
    eb = 4
    for li, g in enumerate(geoms):
        cnt = counts[li]["mispredicted"]
        touched = (cnt > 0).mean(axis=(-2, -1))
        floor = mem_cycles(H100, 2.0 * eb * g.n_outputs * touched, PARAMS)
        sp = S._balanced(ctx, cnt, g, plan.tiles[li], plan.occ_cap, misses[:, li], comp,
                         boundary, floor)
        per_miss = np.where(sp.balanced, cfg.compaction_bytes_per_miss, float(eb))
        ab = (eb * g.weights * sp.grid.active_frac + 2.0 * eb * g.n_outputs * touched
              + per_miss * misses[:, li] + plan.ops.secnn_pass_bytes[li])
        np.testing.assert_allclose(t.layer_phases["amend"][:, li],
                                   np.maximum(sp.compute, mem_cycles(H100, ab, PARAMS)),
                                   rtol=1e-12)
        np.testing.assert_allclose(t.layer_phases["amend_compute"][:, li], sp.compute)
        np.testing.assert_allclose(t.layer_phases["compaction"][:, li], sp.compaction)
        a = labels.index(f"{g.name}:amend")
        np.testing.assert_allclose(t.span_args["serial"]["bytes"][:, a], ab, rtol=1e-12)
        np.testing.assert_allclose(t.span_args["serial"]["ctas"][:, a], (sp.grid.w > 0).sum(-1))
        # the amendment's FMAs on the lanes (and the fused ops' re-execution), its tile's
        # shared-memory traffic
        r = rate(H100, "fp32", "simt", PARAMS)
        macs = sp.busy * r
        np.testing.assert_allclose(t.span_work["serial"]["fma_simt"][:, a],
                                   macs + plan.ops.secnn_pass_busy[li] * r, rtol=1e-12)
        tile = plan.tiles[li].tile
        np.testing.assert_allclose(t.span_work["serial"]["smem_bytes"][:, a],
                                   2.0 * eb * macs * (1 / tile.bm + 1 / tile.bn), rtol=1e-12)
    if comp in ("auto", "software"):
        assert (t.layer_phases["compaction"] > 0).any()
    # the frame's SM-cycles of work: the parallel kernels', the compares', the amendments'
    # (with the fused ops they re-execute) and the op kernels'
    from secnn_jax.timing import secnn as SE
    machine = SE.Machine.of(hw, H100, cfg)
    ws = S._parallel_grids(ctx, plan, counts, 3, S._Work(ctx, 3), machine.compaction,
                           boundary)[0]
    want = sum(w.sum(-1) for w in ws) + plan.ops.kernel_busy.sum()
    for li, g in enumerate(geoms):
        cnt = counts[li]["mispredicted"]
        touched = (cnt > 0).mean(axis=(-2, -1))
        sp = S._balanced(ctx, cnt, g, plan.tiles[li], plan.occ_cap, misses[:, li], comp,
                         boundary, mem_cycles(H100, 2.0 * eb * g.n_outputs * touched, PARAMS))
        want = want + g.n_inputs / machine.comparators_per_sm + sp.busy \
            + plan.ops.secnn_pass_busy[li]
    np.testing.assert_allclose(t.busy, want, rtol=1e-12)
    # the serial chain: per layer compare, [compaction,] amend, then its fused-away ops (none)
    _, start, end = t.spans["serial"]
    per_cta = K.ELEMENTWISE_TILE.threads * K.ELEMENTS_PER_THREAD
    for li, g in enumerate(geoms):
        c, a = labels.index(f"{g.name}:compare"), labels.index(f"{g.name}:amend")
        np.testing.assert_array_equal(t.span_args["serial"]["ctas"][:, c],
                                      -(-g.n_inputs // per_cta))
        if comp in ("software", "auto"):
            k = c + 1
            assert labels[k] == f"{g.name}:compaction" and a == c + 2
            comp_t = t.layer_phases["compaction"][:, li]
            if comp == "software":  # its own kernel after the compare's (a boundary on sw)
                np.testing.assert_allclose(start[:, k], end[:, c] + boundary, rtol=1e-12)
                np.testing.assert_allclose(end[:, k] - start[:, k], comp_t, rtol=1e-12)
                np.testing.assert_array_equal(t.span_args["serial"]["ctas"][:, k],
                                              -(-g.n_inputs // per_cta))
            else:  # taken per frame: the pass and its boundary, else nothing
                used = comp_t > 0
                np.testing.assert_allclose(end[:, k] - start[:, k],
                                           np.where(used, comp_t + boundary, 0.0), rtol=1e-12)
                np.testing.assert_array_equal(t.span_args["serial"]["ctas"][:, k],
                                              np.where(used, -(-g.n_inputs // per_cta), 0))
        else:
            assert a == c + 1
    # each layer's critical path ends with its amendment; correction = its three parts
    last = np.stack([end[:, labels.index(f"{g.name}:amend")] for g in geoms], 1)
    np.testing.assert_allclose(t.layer, np.diff(last, axis=1, prepend=0.0)
                               + np.eye(len(geoms))[-1] * (t.total - last[:, -1])[:, None],
                               rtol=1e-12, atol=1e-9)
    corr = (t.layer_phases["compare"] + t.layer_phases["compaction"]
            + t.layer_phases["amend"])
    np.testing.assert_allclose(t.layer_phases["correction"], corr, rtol=1e-12)
    assert set(t.phases) == {"parallel", "serial", "compare", "compaction", "amend", "ops",
                             "launch"}
    np.testing.assert_allclose(t.phases["serial"], corr.sum(1), rtol=1e-12)
    np.testing.assert_allclose(t.phases["compaction"], t.layer_phases["compaction"].sum(1))
    np.testing.assert_allclose(t.phases["parallel"], t.layer_phases["parallel_done"].max(1))


def g_shape(g: LayerGeom) -> tuple[int, ...]:
    return tuple(g.in_nhwc)


def test_secnn_op_kernels_in_the_serial_chain() -> None:
    geoms = _secnn_net()
    ops = (O.OpGeom("pre", "pool", -1, reads=300, param_reads=0, writes=256, flops=300),
           O.OpGeom("bn", "affine", 0, reads=16384, param_reads=64, writes=16384, flops=32768),
           O.OpGeom("relu", "activation", 1, reads=8192, param_reads=0, writes=8192,
                    flops=8192))
    ctx = ctx_of(geoms, P.SchemeConfig(sw_compaction="none"), ops=ops)
    ev = {g.name: np.random.default_rng(3).choice(4, size=(1, *g.in_nhwc)).astype(np.uint8)
          for g in geoms}
    plan = S.REGISTRY["secnn_sw"].plan(ctx)
    t = run("secnn_sw", ctx, ev)
    labels, start, end = t.spans["serial"]
    assert labels == ("pre", "p:compare", "p:amend", "bn", "q:compare", "q:amend", "relu")
    op = plan.ops
    for k, lab in enumerate(("pre", "bn", "relu")):
        j = labels.index(lab)
        assert (end - start)[0, j] == pytest.approx(op.kernel_cycles[k], rel=1e-12)
        assert t.span_args["serial"]["bytes"][0, j] == op.kernel_bytes[k]
        assert t.span_args["serial"]["ctas"][0, j] == op.kernel_ctas[k]
    np.testing.assert_allclose(t.phases["ops"], [op.kernel_cycles.sum()], rtol=1e-12)
    # graph launch: the first kernel starts at the frame's submission; each boundary a gap
    assert start[0, 0] == pytest.approx(ctx.launch.submit)
    assert t.phases["launch"][0] == pytest.approx(ctx.launch.submit
                                                  + (len(labels) - 1) * ctx.launch.gap)


def test_secnn_compare_pass_at_the_persistent_kernels_occupancy() -> None:
    geoms = _secnn_net(24)
    ctx = ctx_of(geoms, P.SchemeConfig(hw_compaction="hardware"), launch="persistent",
                 precision="tf32", params=SLOW)
    cap = S.REGISTRY["secnn_hw"].plan(ctx).occ_cap
    ev = {g.name: np.zeros((1, *g.in_nhwc), np.uint8) for g in geoms}
    t = run("secnn_hw", ctx, ev)
    g = geoms[0]
    cmp_bytes = 4 * g.n_inputs + 2.0 * 4 * g.n_inputs  # x read; prediction read and written
    mem = K.elementwise_cost(g.n_inputs, cmp_bytes, 0.0, H100, "tf32", SLOW, cap).cycles
    assert mem > K.elementwise_cost(g.n_inputs, cmp_bytes, 0.0, H100, "tf32", SLOW).cycles
    assert t.layer_phases["compare"][0, 0] == pytest.approx(
        max(g.n_inputs / (H100.sms * H100.fp32_lanes), mem), rel=1e-12)


def test_pool_share_by_hand() -> None:
    from types import SimpleNamespace
    # two parallel kernels: one of two CTAs (work 0.25, latency 0.5 at occupancy 1) that ran
    # half a cycle, one that held nothing for no time
    ws = [np.array([[0.25, 0.25]]), np.zeros((1, 1))]
    ds = [np.array([[0.5, 0.5]]), np.zeros((1, 1))]
    tl = SimpleNamespace(parallel_done=np.array([[0.5, 0.0]]), parallel_release=np.zeros(2))
    np.testing.assert_allclose(S._pool_share(ws, ds, [1, 4], tl), [[2.0, 0.0]])
    tl = SimpleNamespace(parallel_done=np.array([[4.0, 3.0]]),
                         parallel_release=np.array([2.0, 3.0]))
    np.testing.assert_allclose(S._pool_share(ws, ds, [2, 4], tl), [[0.5 / 2.0, 0.0]])


@pytest.mark.parametrize("launch_us", [None, 0.0003])
def test_secnn_eager_releases_the_parallel_kernels_one_issue_apart(launch_us: float | None
                                                                  ) -> None:
    geoms = _secnn_net()
    ctx = ctx_of(geoms, P.SchemeConfig(launch_us=launch_us, sw_compaction="none"),
                 launch="eager")
    lc = ctx.launch
    assert lc.issue > 0 and (launch_us is None or lc.issue < 1)  # also under a cycle
    t = run("secnn_sw", ctx, {g.name: np.zeros((1, *g.in_nhwc), np.uint8) for g in geoms})
    np.testing.assert_allclose(t.spans["parallel"][1][0],
                               lc.submit + np.arange(len(geoms)) * lc.issue, rtol=1e-12)
