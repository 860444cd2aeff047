"""The scheme costs' fast count reductions equal the plain ones bit for bit.

The reductions of ``secnn_jax.timing.kernels`` (per-tile max and sum, frame totals, the touched
fraction, CBinfer's full-fan-in counts from the counts' non-zeros, memoised per counts array) are
checked against ``workmaps.tile_reduce`` and plain numpy, and a whole ``replay_launches`` (every
scheme, 2 GPUs x 3 launch models, three scheme configurations) against the same replay with the
pre-change ``sparse_grids`` (kept below as the reference) and the pre-change expressions patched
in: every result array must be equal with ``np.array_equal``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from secnn_jax import timing, workmaps
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import kernels as K
from secnn_jax.timing import schemes as S
from secnn_jax.timing.gpufile import params_for
from secnn_jax.timing.gpus import ELEMENT_BYTES, canonical_precision, get_gpu
from secnn_jax.timing.launch import LaunchCosts
from secnn_jax.timing.params import DEFAULT_CONFIG
from secnn_jax.timing.sm import rate

# EfficientNet-Lite0-like layers at a small input: the stem, 3x3 and 5x5 depthwise (stride 1
# and 2, channel counts that are not a multiple of the depthwise tile), pointwise expansions and
# projections, a grouped convolution and the classifier.
GEOMS = (
    LayerGeom.conv("stem", n=1, h=18, cin=3, cout=32, k=3, stride=2),
    LayerGeom.conv("dw3", n=1, h=9, cin=32, cout=32, k=3, groups=32),
    LayerGeom.conv("pw", n=1, h=9, cin=32, cout=16, k=1),
    LayerGeom.conv("ex", n=1, h=9, cin=16, cout=96, k=1),
    LayerGeom.conv("dw5", n=1, h=9, cin=96, cout=96, k=5, stride=2, groups=96),
    LayerGeom.conv("dwx", n=1, h=5, cin=40, cout=80, k=3, groups=40),
    LayerGeom.conv("grp", n=1, h=5, cin=80, cout=40, k=3, groups=2),
    LayerGeom.dense("fc", n=1, fin=40, fout=10),
)


def _events(frames: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ev = {}
    for g in GEOMS:
        codes = rng.choice(4, size=(frames, *g.in_nhwc), p=[0.4, 0.1, 0.3, 0.2])
        codes[0] = rng.choice((0, 2), size=g.in_nhwc)  # frame 0: no misprediction
        ev[g.name] = codes.astype(np.uint8)
    ev["pw"][1] = 0  # a frame without any work in one layer
    return ev


# --- the pre-change code, as the reference ----------------------------------------------------

def _full(cnt: Any) -> np.ndarray:
    """A :class:`~K.Fanin` built as the pre-change CBinfer cost built it."""
    if isinstance(cnt, K.Fanin):
        return np.where(cnt.cnt > 0, cnt.fanin, 0).astype(np.int64)
    return cnt


def _ref_sparse_grids(cnt: Any, g: LayerGeom, gpu: Any, precision: str, params: Any,
                      tile: Any, compact: tuple[bool, ...] = (False, True), **_: Any
                      ) -> tuple[K.SparseGrid, ...]:
    """``kernels.sparse_grids`` before this change (verbatim but for ``_full``)."""
    cnt = _full(cnt)
    p = canonical_precision(precision)
    r = rate(gpu, p, "simt", params)
    st = tile if isinstance(tile, K.SparseTile) else K.SparseTile(tile)
    t, split = st.tile, max(1, st.split)
    if g.is_depthwise:
        mult = g.cout // g.cin
        c = np.repeat(cnt, mult, axis=-1) if mult > 1 else cnt
        nct = -(-g.cout // t.bn)
        if nct * t.bn != g.cout:
            c = np.pad(c, [(0, 0), (0, 0), (0, nct * t.bn - g.cout)])
        mx, sm = workmaps.tile_reduce(c, t.bm)
        shp = mx.shape[:-1] + (nct, t.bn)
        mx = mx.reshape(shp).max(-1)
        sm = sm.reshape(shp).sum(-1)
    else:
        mx, sm = workmaps.tile_reduce(cnt, t.bm)
        nt = -(-g.cout_g // t.bn)
    occ = t.occupancy(gpu, ELEMENT_BYTES[p])
    out = []
    for cp in compact:
        if g.is_depthwise:
            depth = sm / (t.bm * t.bn) if cp else mx.astype(np.float64)
            depth = depth.reshape(depth.shape[0], -1)
        else:
            depth = sm / t.bm if cp else mx.astype(np.float64)
            depth = np.repeat(np.moveaxis(depth, -1, 1), nt, axis=-1)
            depth = depth.reshape(depth.shape[0], -1)
        if split > 1:
            depth = np.repeat(np.ceil(depth / split) if not cp else depth / split, split,
                              axis=-1)
        if g.is_depthwise:
            steps_per_stage = (depth > 0).astype(np.float64)
        else:
            steps_per_stage = np.ceil(depth / t.bk) / t.stages
        w = t.bm * t.bn * depth / r
        d = steps_per_stage * params.latency_cycles + np.where(depth > 0,
                                                               params.cta_overhead_cycles, 0.0)
        out.append(K.SparseGrid(w=w, d=d, occupancy=occ, tile=t,
                                active_frac=(depth > 0).mean(-1)))
    return tuple(out)


def _plain(obj: Any) -> Any:
    """Every array and value of a result tree, for comparison."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "items"):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(x) for x in obj]
    return obj


def _assert_identical(a: Any, b: Any, path: str = "") -> int:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return sum(_assert_identical(a[k], b[k], f"{path}/{k}") for k in a)
    if isinstance(a, list):
        assert len(a) == len(b), path
        return sum(_assert_identical(x, y, f"{path}[{i}]") for i, (x, y) in
                   enumerate(zip(a, b, strict=True)))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), path
        return 1
    assert a == b or (a != a and b != b), path
    return 0


# --- tests ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "bm"), [((3, 81, 1), 32), ((2, 64, 1), 16), ((3, 25, 96), 8),
                                           ((2, 7, 5), 4), ((1, 3, 2), 8)])
def test_tile_reductions_equal_tile_reduce_and_numpy(shape: tuple[int, ...], bm: int) -> None:
    rng = np.random.default_rng(sum(shape) + bm)
    cnt = rng.integers(0, 5, size=shape).astype(np.int32) * (rng.random(shape) < 0.4)
    cnt = cnt.astype(np.int32)
    want = workmaps.tile_reduce(cnt, bm)
    for shared in (False, True):
        got = K.tile_max_sum(cnt, bm, shared)
        assert all(np.array_equal(x, y) for x, y in zip(got, want, strict=True))
    full = np.where(cnt > 0, 9, 0).astype(np.int64)
    got = K.tile_max_sum(K.Fanin(cnt, 9), bm)
    assert all(np.array_equal(x, y) for x, y in zip(got, workmaps.tile_reduce(full, bm),
                                                    strict=True))
    assert np.array_equal(K.frame_totals(cnt), cnt.reshape(shape[0], -1).sum(1))
    assert np.array_equal(K.frame_totals(K.Fanin(cnt, 9)), full.reshape(shape[0], -1).sum(1))
    assert np.array_equal(K.touched_frac(cnt), (cnt > 0).mean(axis=(-2, -1)))


def test_memoised_counts_become_read_only_and_views_are_not_memoised() -> None:
    cnt = np.arange(24, dtype=np.int32).reshape(2, 12, 1).copy()  # owns its data
    first = K.tile_max_sum(cnt, 4)
    assert K.tile_max_sum(cnt, 4)[1] is first[1]  # the same reduction, once
    with pytest.raises(ValueError, match="read-only"):
        cnt[0, 0, 0] = 5
    with pytest.raises(ValueError, match="read-only"):
        first[0][...] = 0
    base = np.arange(24, dtype=np.int32).reshape(2, 12, 1)
    view = base[:, :, :]
    assert K.tile_max_sum(view, 4)[1][0, 0, 0] == 0 + 1 + 2 + 3
    base[0, 0, 0] = 10  # a view is reduced anew: its base may change
    assert K.tile_max_sum(view, 4)[1][0, 0, 0] == 10 + 1 + 2 + 3
    assert view.flags.writeable


def test_views_of_a_frozen_array_share_one_reduction_per_window() -> None:
    """A chunk of ReducedEvents is a view of frozen counts: every replay selecting the same
    frames reads one reduction, other frames (or another window) their own, equal to a
    reduction of a plain copy."""
    base = np.random.default_rng(0).integers(0, 9, (6, 12, 2)).astype(np.int32)
    base.setflags(write=False)
    a, b, other = base[2:4], base[2:4], base[1:3]
    first = K.tile_max_sum(a, 4)
    assert K.tile_max_sum(b, 4)[1] is first[1]  # the same frames: one reduction
    got = K.tile_max_sum(other, 4)
    assert got[1] is not first[1]
    for view in (a, other):
        want = K.tile_max_sum(view.copy(), 4)
        assert all(np.array_equal(x, y) for x, y in zip(K.tile_max_sum(view, 4), want,
                                                         strict=True))
    assert not base.flags.writeable


@pytest.mark.parametrize("cfg", [
    DEFAULT_CONFIG,
    dataclasses.replace(DEFAULT_CONFIG, sw_compaction="software",
                        hw_compaction="hardware", secnn_parallel="sparse"),
    dataclasses.replace(DEFAULT_CONFIG, sw_compaction="none", peer_extension=True,
                        buffer_placement="on_chip"),
], ids=["default", "software", "none-extended"])
def test_replay_equals_the_pre_change_reductions_bit_for_bit(
        cfg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ev = _events(4)

    def run() -> Any:
        return _plain(timing.replay_launches((GEOMS, dict(ev)), gpus=("h100", "gtx1080ti"),
                                             schemes=timing.SCHEMES, config=cfg,
                                             batch_frames=2))

    fast = run()
    if cfg is DEFAULT_CONFIG:  # new counts arrays (ids may be reused): no stale reduction
        _assert_identical(fast, run())
    with monkeypatch.context() as m:
        m.setattr(K, "sparse_grids", _ref_sparse_grids)
        m.setattr(K, "frame_totals", lambda c: _full(c).reshape(c.shape[0], -1).sum(1))
        m.setattr(K, "touched_frac", lambda c: (c > 0).mean(axis=(-2, -1)))
        slow = run()
    assert _assert_identical(fast, slow) > 100


def test_plans_are_memoised_per_context_content() -> None:
    gpu = get_gpu("h100")

    def ctx(params: Any) -> S.Context:
        return S.Context(geoms=GEOMS, ops=(), gpu=gpu, precision="fp32", params=params,
                         cfg=DEFAULT_CONFIG,
                         launch=LaunchCosts.of("persistent", gpu, params, DEFAULT_CONFIG),
                         fusion="none")

    base = params_for(gpu)
    same = dataclasses.replace(base)  # another object, the same content
    other = dataclasses.replace(base, latency_cycles=base.latency_cycles * 2)
    plan = S.REGISTRY["secnn_sw"].plan
    assert plan(ctx(base)) is plan(ctx(same))
    assert S.REGISTRY["deltacnn"].plan is plan  # one plan function for the four schemes
    for params in (base, other):  # equal to the plan built anew
        assert S._content_key(plan(ctx(params))) == S._content_key(S._secnn_plan(ctx(params)))
    assert plan(ctx(other)) is not plan(ctx(base))
