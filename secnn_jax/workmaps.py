"""From event maps to per-output work counts, with array reductions only.

The cost of a zero-skipping or SE-CNN kernel depends on *which* input neurons each output's
receptive field contains. For a convolution, every output channel of a group sees the same
window, so the per-output work is a count per output position and group:

1. per input position, the number of flagged neurons (non-zero, predicted non-zero or
   mispredicted) summed over the channels of each group: :func:`group_sums`;
2. a box filter of that map with the layer's window, strides, dilation and zero padding:
   :func:`window_counts` (separable: one strided slice per kernel row, then per kernel column);
3. the counts reshaped into the implicit GEMM's row tiles and reduced with ``max`` (SIMT: a
   warp costs its busiest lane, a CTA its busiest warp) or ``sum`` (compacted work):
   :func:`tile_reduce`.

:func:`fanout` gives the exact number of MACs each input neuron feeds (used for the trace
summary tables: parallel MACs = predicted non-zero inputs x fan-out, serial MACs =
mispredicted inputs x fan-out).

All functions accept any leading axes (frames) before ``(N, H, W, C)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from secnn_jax.geometry import LayerGeom

#: Which event codes each indicator selects, as a lookup table over the code (0..3):
#: ``nonzero``: not ZZ (VM may hide a real zero; codes do not say: where the events carry their
#: fires maps, :attr:`secnn_jax.events.EventMaps.fires`, ``nonzero`` is read from those
#: instead, and no longer depends on the predictor); ``predicted``: VH or VM;
#: ``mispredicted``: ZN or VM.
INDICATORS: dict[str, np.ndarray] = {
    "nonzero": np.array([0, 1, 1, 1], np.uint8),
    "predicted": np.array([0, 0, 1, 1], np.uint8),
    "mispredicted": np.array([0, 1, 0, 1], np.uint8),
}


def indicator(codes: np.ndarray, which: str, fires: np.ndarray | None = None) -> np.ndarray:
    """0/1 ``uint8`` map of the neurons selected by ``which`` (see :data:`INDICATORS`).

    ``fires`` (the layer's fires map, shaped like ``codes``), when given, is the ``nonzero``
    indicator itself.
    """
    codes = np.asarray(codes)
    if which == "nonzero" and fires is not None:
        return np.asarray(fires).astype(np.uint8, copy=False)
    if which == "predicted":
        return codes >> 1
    if which == "mispredicted":
        return codes & 1
    if which == "nonzero":
        return (codes != 0).view(np.uint8)
    raise ValueError(f"unknown indicator {which!r}; known: {sorted(INDICATORS)}")


def group_sums(ind: np.ndarray, geom: LayerGeom, dtype: npt.DTypeLike = np.int32) -> np.ndarray:
    """Flagged neurons per position and group: ``[..., N, H, W, G]`` of ``dtype`` (int32).

    ``G`` is ``geom.groups`` for GEMM convs and dense layers (1 unless grouped) and ``C`` for
    depthwise convs (one channel per group, so this is the indicator itself). Sums are taken
    in int32 and then cast (a narrower ``dtype`` must hold ``Cin/groups``).
    """
    ind = np.asarray(ind)
    if geom.is_depthwise:
        return ind.astype(dtype)
    if geom.groups == 1:
        out = ind.sum(axis=-1, dtype=np.int32)[..., None]
    else:
        shp = ind.shape[:-1] + (geom.groups, geom.cin_g)
        out = ind.reshape(shp).sum(axis=-1, dtype=np.int32)
    return out.astype(dtype, copy=False)


def window_counts(s: np.ndarray, geom: LayerGeom) -> np.ndarray:
    """Box filter of ``s [..., N, H, W, G]`` over each output's window: ``[..., N, Ho, Wo, G]``.

    Equal to a convolution of ``s`` with an all-ones ``kh x kw`` kernel using the layer's
    strides, dilation and zero padding (negative padding crops). Separable: ``kh`` strided
    row slices summed (vertical pass, rows at the output stride), then ``kw`` strided column
    slices of that (horizontal pass): ``kh + kw`` additions per output instead of ``kh * kw``.
    The result keeps ``s``'s integer dtype (callers make sure sums fit; each pass's partial
    sums are at most the full window's).
    """
    if geom.kh == geom.kw == 1 and geom.sh == geom.sw == 1 and geom.pad == ((0, 0), (0, 0)):
        return s
    (pt, pb), (pl, pr) = geom.pad
    h_ax, w_ax = s.ndim - 3, s.ndim - 2
    # Negative padding crops; positive padding adds zeros.
    s = s[(Ellipsis, slice(max(-pt, 0), s.shape[h_ax] - max(-pb, 0)),
           slice(max(-pl, 0), s.shape[w_ax] - max(-pr, 0)), slice(None))]
    t, lft = max(pt, 0), max(pl, 0)
    hp, wp = s.shape[h_ax] + t + max(pb, 0), s.shape[w_ax] + lft + max(pr, 0)
    if (t, lft, hp, wp) != (0, 0, s.shape[h_ax], s.shape[w_ax]):
        sp = np.zeros(s.shape[:h_ax] + (hp, wp) + s.shape[-1:], s.dtype)
        sp[..., t:t + s.shape[h_ax], lft:lft + s.shape[w_ax], :] = s
    else:
        sp = s
    ho, wo, sh, sw = geom.ho, geom.wo, geom.sh, geom.sw
    # Vertical pass: output rows only (stride sh), every column.
    rows = np.zeros(sp.shape[:h_ax] + (ho, wp) + sp.shape[-1:], s.dtype)
    for i in range(geom.kh):  # loop over kernel rows, not over neurons
        y = i * geom.dh
        rows += sp[..., y: y + sh * (ho - 1) + 1: sh, :, :]
    # Horizontal pass: output columns only (stride sw).
    out = np.zeros(sp.shape[:h_ax] + (ho, wo) + sp.shape[-1:], s.dtype)
    for j in range(geom.kw):
        x = j * geom.dw
        out += rows[..., x: x + sw * (wo - 1) + 1: sw, :]
    return out


def position_counts(codes: np.ndarray, geom: LayerGeom, which: str,
                    fires: np.ndarray | None = None) -> np.ndarray:
    """Flagged inputs in each output's receptive field: ``[..., M, G]`` int32.

    ``codes`` is ``[..., N, H, W, C]`` (NHWC event codes); rows are output positions
    ``(n, ho, wo)`` in row-major order (the implicit GEMM's M axis). ``fires`` (same shape)
    is the ``nonzero`` indicator where known (:func:`indicator`).
    """
    cnt = window_counts(group_sums(indicator(codes, which, fires), geom), geom)
    return cnt.reshape(cnt.shape[:-4] + (geom.m, cnt.shape[-1]))


#: Unsigned dtypes a packed value may take, narrowest first.
_PACK_DTYPES = (np.uint8, np.uint16, np.uint32, np.uint64)


def position_counts_all(codes: np.ndarray, geom: LayerGeom,
                        which: tuple[str, ...] = ("nonzero", "predicted", "mispredicted"),
                        fires: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`position_counts` for several indicators, reduced in one pass.

    Each indicator is summed over its group's channels straight from the ``uint8`` codes
    (bit operations, no lookup table; the ``nonzero`` indicator from ``fires`` where given);
    the sums are packed into bit fields of one unsigned integer per position and group, as
    narrow as the fields allow (each field holds at most ``Cin/groups * kh * kw``; a depthwise
    3x3 or 5x5 layer's three fields fit 16 bits), box-filtered once
    (:func:`window_counts`) and unpacked. Exact: every field's sum fits its width.
    """
    which = tuple(which)
    for w in which:
        if w not in INDICATORS:
            raise ValueError(f"unknown indicator {w!r}; known: {sorted(INDICATORS)}")
    limit = geom.cin_g * geom.kh * geom.kw
    bits = max(1, int(limit).bit_length())
    dtype = next((d for d in _PACK_DTYPES if np.iinfo(d).bits >= bits * len(which)), None)
    if dtype is None or not which:
        return {w: position_counts(codes, geom, w, fires) for w in which}
    codes = np.asarray(codes)
    packed = None
    for f, w in enumerate(which):
        field = group_sums(indicator(codes, w, fires), geom, dtype)
        if f == 0:
            packed = field
        else:
            field <<= dtype(bits * f)
            packed |= field
    cnt = window_counts(packed, geom)
    cnt = cnt.reshape(cnt.shape[:-4] + (geom.m, cnt.shape[-1]))
    mask = dtype((1 << bits) - 1)
    return {w: ((cnt >> dtype(bits * f)) & mask).astype(np.int32) for f, w in enumerate(which)}


def tile_reduce(cnt: np.ndarray, bm: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row tile of ``bm`` positions: ``(max, sum)`` of ``cnt [..., M, G]`` over the tile.

    The last tile is padded with zero-work rows. Returns two ``[..., ceil(M/bm), G]`` arrays
    (the max in ``cnt``'s dtype, the sum int64). The full tiles and the remainder are reduced
    apart, so ``cnt`` is never copied into a padded array.
    """
    m = cnt.shape[-2]
    full = m // bm
    lead, grp = cnt.shape[:-2], cnt.shape[-1]
    t = cnt[..., :full * bm, :].reshape(lead + (full, bm, grp))
    mx, sm = t.max(axis=-2), t.sum(axis=-2, dtype=np.int64)
    if full * bm != m:  # zero-work rows pad the last tile: max with 0, nothing to add
        rest = cnt[..., full * bm:, :]
        rmx = np.maximum(rest.max(axis=-2, keepdims=True), np.zeros((), cnt.dtype))
        mx = np.concatenate([mx, rmx], axis=-2)
        sm = np.concatenate([sm, rest.sum(axis=-2, keepdims=True, dtype=np.int64)], axis=-2)
    return mx, sm


def fanout(geom: LayerGeom) -> np.ndarray:
    """MACs fed by one input neuron at each input position: ``[H, W]`` int64.

    Separable: the number of output rows whose window covers input row ``h`` times the same
    for columns, times the output channels of the neuron's group. Dense layers: ``Fout``.
    """
    def axis_count(size: int, out: int, k: int, s: int, d: int, p0: int) -> np.ndarray:
        pos = (np.arange(out)[:, None] * s - p0 + np.arange(k)[None, :] * d).ravel()
        pos = pos[(pos >= 0) & (pos < size)]
        return np.bincount(pos, minlength=size).astype(np.int64)

    fh = axis_count(geom.h, geom.ho, geom.kh, geom.sh, geom.dh, geom.pad[0][0])
    fw = axis_count(geom.w, geom.wo, geom.kw, geom.sw, geom.dw, geom.pad[1][0])
    return fh[:, None] * fw[None, :] * geom.cout_g


def phase_macs(codes: np.ndarray, geom: LayerGeom) -> tuple[np.ndarray, np.ndarray]:
    """Exact parallel and serial MACs per leading index and sample: ``([..., N], [..., N])``.

    Parallel MACs: predicted non-zero inputs times their fan-out; serial MACs: mispredicted
    inputs times their fan-out.
    """
    fo = fanout(geom)
    pred = indicator(codes, "predicted").sum(axis=-1, dtype=np.int64)
    miss = indicator(codes, "mispredicted").sum(axis=-1, dtype=np.int64)
    par = np.einsum("...hw,hw->...", pred, fo)
    ser = np.einsum("...hw,hw->...", miss, fo)
    return par, ser
