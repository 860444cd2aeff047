"""The change-based peers on the GPU with SE-CNN's SM extension (``peer_extension``): each
capability SE-CNN takes, the peer takes by the same rule where it helps — on-chip buffers of
SE-CNN's capacity, change detection on the comparators, the dependency signal instead of a
kernel boundary — checked against hand computations, and never slower than the stock peer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secnn_jax import workmaps
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import params as P
from secnn_jax.timing import schemes as S
from secnn_jax.timing.gpus import H100
from secnn_jax.timing.launch import LaunchCosts

PARAMS = P.ModelParams(efficiency={"fp32": 0.5, "tf32": 0.8, "fp16": 0.8}, latency_cycles=600.0,
                       l2_bandwidth_factor=1.0, extra_kernel_us=5.0)
EB = 4  # fp32
#: Two layers whose output buffers fit SE-CNN's capacity (2 values per input) after the stored
#: inputs, and an expanding layer whose output buffer does not.
NET = (LayerGeom.conv("p", n=1, h=16, cin=64, cout=32, k=1),
       LayerGeom.conv("q", n=1, h=16, cin=32, cout=16, k=3))
EXPAND = (LayerGeom.conv("x", n=1, h=8, cin=4, cout=512, k=1),)
#: A layer large enough for its buffer traffic to be memory time (the others are latency-bound).
BIG = (LayerGeom.conv("b", n=1, h=32, cin=128, cout=128, k=1),)


def _ctx(geoms: tuple[LayerGeom, ...], cfg: P.SchemeConfig, launch: str = "persistent"
         ) -> S.Context:
    return S.Context(geoms, (), H100, "fp32", PARAMS, cfg,
                     LaunchCosts.of(launch, H100, PARAMS, cfg), "none")


def _events(geoms: tuple[LayerGeom, ...], seed: int, p_change: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # frame 0 runs dense; frames 1-2 change a share of their inputs beyond tau (code 1)
    return {g.name: (rng.random((3, *g.in_nhwc)) < p_change).astype(np.uint8) for g in geoms}


def _run(kind: str, ctx: S.Context, ev: dict[str, np.ndarray]) -> S.SchemeTimes:
    which = ("mispredicted",)
    counts = [workmaps.position_counts_all(ev[g.name], g, which) for g in ctx.geoms]
    misses = np.stack([workmaps.indicator(ev[g.name], "mispredicted").reshape(3, -1).sum(1)
                       for g in ctx.geoms], 1).astype(np.float64)
    s = S.REGISTRY[kind]
    return s.cost(ctx, s.plan(ctx), counts, misses, 3, frame_ids=np.arange(3))


def _touched(g: LayerGeom, ev: np.ndarray) -> np.ndarray:
    cnt = workmaps.position_counts_all(ev, g, ("mispredicted",))["mispredicted"]
    return (cnt > 0).mean(axis=(-2, -1))


def test_extended_peer_config_sets_the_extension_and_takes_hardware_compaction() -> None:
    for hw in ("software", "hardware"):
        cfg = P.SchemeConfig(hw_compaction=hw, sw_compaction="none")
        ext = S.extended_peer_config(cfg)
        changed = {f.name for f in dataclasses.fields(cfg)
                   if getattr(cfg, f.name) != getattr(ext, f.name)}
        assert ext.peer_extension and changed == {"peer_extension"} | (
            {"sw_compaction"} if hw == "hardware" else set())
        assert S.extended_peer_config(ext) == ext  # idempotent
    with pytest.raises(P.TimingConfigError, match=r"^SchemeConfig.peer_extension=1: "):
        P.SchemeConfig(peer_extension=1)


def test_output_buffers_fill_secnns_capacity_in_layer_order() -> None:
    ctx = _ctx(NET + EXPAND, P.SchemeConfig())
    # capacity: SE-CNN's 2 values per input; the stored inputs take one per input first
    cap = 2 * sum(g.n_inputs for g in ctx.geoms)
    free = cap - sum(g.n_inputs for g in ctx.geoms)
    want = []
    for g in ctx.geoms:
        want.append(g.n_outputs <= free)
        free -= g.n_outputs if want[-1] else 0
    assert want == [True, True, False]  # the expanding layer's buffer does not fit
    np.testing.assert_array_equal(S._peer_output_on_chip(ctx), want)


@pytest.mark.parametrize("kind", ["deltacnn", "cbinfer"])
@pytest.mark.parametrize("geoms", [NET, EXPAND, BIG], ids=["fits", "expands", "big"])
def test_on_chip_buffers_remove_exactly_the_buffer_traffic(kind: str,
                                                           geoms: tuple[LayerGeom, ...]) -> None:
    ev = _events(geoms, 0, 0.05)
    base = S.extended_peer_config(P.SchemeConfig(sw_compaction="none"))
    cache = _run(kind, _ctx(geoms, base), ev)
    chip = _run(kind, _ctx(geoms, dataclasses.replace(base, buffer_placement="on_chip")), ev)
    stock = _run(kind, _ctx(geoms, P.SchemeConfig(sw_compaction="none",
                                                  buffer_placement="on_chip")), ev)
    fits = S._peer_output_on_chip(_ctx(geoms, base))
    for li, g in enumerate(geoms):
        touched = _touched(g, ev[g.name])
        # sparse frames: the stored input's read and write, and where the output buffer is on
        # chip the touched outputs' read (their new value is still written to memory)
        state = 2.0 * EB * g.n_inputs
        out = EB * g.n_outputs * touched * float(fits[li])
        moved = cache.span_args["stream"]["bytes"] - chip.span_args["stream"]["bytes"]
        np.testing.assert_allclose(moved[1:, li], (state + out)[1:], rtol=1e-12)
        # ... which it reads and writes in SRAM instead (beside the tiles' staging)
        smem = chip.span_work["stream"]["smem_bytes"] - cache.span_work["stream"]["smem_bytes"]
        np.testing.assert_allclose(smem[1:, li], (state + 2.0 * out)[1:], rtol=1e-12)
        # frame 0 (dense) fills the output buffer on chip instead of in memory
        assert moved[0, li] == (EB * g.n_outputs if fits[li] else 0.0)
    # the time drops by the modelled traffic: never up; down where it is memory time
    assert np.all(chip.total <= cache.total)
    if geoms is BIG:
        assert np.all(chip.total < cache.total)
    # a stock GPU has no on-chip buffer for anyone: the placement changes nothing there
    plain = _run(kind, _ctx(geoms, P.SchemeConfig(sw_compaction="none")), ev)
    np.testing.assert_array_equal(stock.total, plain.total)


@pytest.mark.parametrize("kind", ["deltacnn", "cbinfer"])
@pytest.mark.parametrize("dep_us", [0.67, 50.0])
def test_detection_and_update_sequenced_by_the_dependency_signal(kind: str,
                                                                  dep_us: float) -> None:
    ev = _events(NET, 1, 0.05)
    stock_cfg = P.SchemeConfig(sw_compaction="none", hw_dependency_us=dep_us)
    stock_ctx = _ctx(NET, stock_cfg)
    ext_ctx = _ctx(NET, S.extended_peer_config(stock_cfg))
    stock, ext = _run(kind, stock_ctx, ev), _run(kind, ext_ctx, ev)
    gap, dep = stock_ctx.launch.gap, H100.cycles(dep_us)
    seq = dep <= gap  # the signal only where it is the shorter wait
    assert seq == (dep_us < 1.0)
    own = [True, kind == "cbinfer"]  # DeltaCNN's later detections are fused: no boundary
    for t, kernels in ((stock, [2 if o else 1 for o in own]),
                       (ext, [1 if (o and seq) else 2 if o else 1 for o in own])):
        _, start, end = t.spans["stream"]
        np.testing.assert_allclose(end - start, t.layer_phases["exec"]
                                   + (np.array(kernels) - 1) * gap, rtol=1e-12)
    extra = np.array([dep if (o and seq) else 0.0 for o in own])
    np.testing.assert_allclose(ext.layer_phases["exec"][1:],
                               stock.layer_phases["exec"][1:] + extra, rtol=1e-12)
    np.testing.assert_array_equal(ext.layer_phases["exec"][0], stock.layer_phases["exec"][0])
    assert np.all(ext.total <= stock.total)
    assert bool(np.all(ext.total[1:] < stock.total[1:])) == seq
    # the compares run on the comparators: as many, no SIMT instructions
    for key in ("compares", "compare_instructions"):
        np.testing.assert_array_equal(stock.span_work["stream"][key][1:],
                                      [[g.n_inputs for g in NET]] * 2)
    np.testing.assert_array_equal(ext.span_work["stream"]["compares"],
                                  stock.span_work["stream"]["compares"])
    assert not ext.span_work["stream"]["compare_instructions"].any()


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(["deltacnn", "cbinfer"]),
       launch=st.sampled_from(["graph", "persistent", "eager"]),
       placement=st.sampled_from(P.PLACEMENTS), hw=st.sampled_from(["software", "hardware"]),
       sw=st.sampled_from(["none", "auto", "software"]),
       dep_us=st.sampled_from([0.0, 0.67, 3.0]), seed=st.integers(0, 3),
       p_change=st.sampled_from([0.0, 0.02, 0.3]))
def test_the_extended_peer_is_never_slower_than_the_stock_peer(
        kind: str, launch: str, placement: str, hw: str, sw: str, dep_us: float, seed: int,
        p_change: float) -> None:
    cfg = P.SchemeConfig(buffer_placement=placement, hw_compaction=hw, sw_compaction=sw,
                         hw_dependency_us=dep_us)
    ev = _events(NET, seed, p_change)
    stock = _run(kind, _ctx(NET, cfg, launch), ev)
    ext = _run(kind, _ctx(NET, S.extended_peer_config(cfg), launch), ev)
    assert np.all(ext.total <= stock.total * (1 + 1e-12))
    # and it gives up nothing the stock peer moves or computes but the buffer traffic
    assert np.all(ext.busy <= stock.busy * (1 + 1e-12))
    assert np.all(ext.span_args["stream"]["bytes"] <= stock.span_args["stream"]["bytes"]
                  * (1 + 1e-12) + 1e-9)


@pytest.mark.parametrize("kind", ["deltacnn", "cbinfer"])
def test_every_band_corner_of_the_extension_reaches_the_peer(kind: str) -> None:
    # A band varies the extension's ranges on the extended peers' config: each corner keeps
    # the peer on the extension, and the on-chip corner gives it SE-CNN's on-chip buffer.
    from secnn_jax.timing import uncertainty as U

    ext = S.extended_peer_config(P.SchemeConfig())
    ev = _events(BIG, 2, 0.05)
    times = {}
    for r in (r for r in U.BOX if r.field in ("buffer_placement", "comparators_per_sm",
                                              "hw_dependency_us")):
        for end in (r.low, r.high):
            _, cfg = r.apply(end, PARAMS, ext)
            assert cfg.peer_extension and cfg == S.extended_peer_config(cfg)
            times[(r.field, end)] = _run(kind, _ctx(BIG, cfg), ev).total
    assert np.all(times[("buffer_placement", "on_chip")] <
                  _run(kind, _ctx(BIG, ext), ev).total)
