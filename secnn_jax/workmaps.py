"""From event maps to per-output work counts, with array reductions only.

The cost of a zero-skipping or SE-CNN kernel depends on *which* input neurons each output's
receptive field contains. For a convolution, every output channel of a group sees the same
window, so the per-output work is a count per output position and group:

1. per input position, the number of flagged neurons (non-zero, predicted non-zero or
   mispredicted) summed over the channels of each group: :func:`group_sums`;
2. a box filter of that map with the layer's window, strides, dilation and zero padding:
   :func:`window_counts` (an integral image when undilated, else one strided slice per tap);
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


def group_sums(ind: np.ndarray, geom: LayerGeom) -> np.ndarray:
    """Flagged neurons per position and group: ``[..., N, H, W, G]`` int32.

    ``G`` is ``geom.groups`` for GEMM convs and dense layers (1 unless grouped) and ``C`` for
    depthwise convs (one channel per group, so this is the indicator itself).
    """
    ind = np.asarray(ind)
    if geom.is_depthwise:
        return ind.astype(np.int32)
    if geom.groups == 1:
        return ind.sum(axis=-1, dtype=np.int32)[..., None]
    shp = ind.shape[:-1] + (geom.groups, geom.cin_g)
    return ind.reshape(shp).sum(axis=-1, dtype=np.int32)


def window_counts(s: np.ndarray, geom: LayerGeom) -> np.ndarray:
    """Box filter of ``s [..., N, H, W, G]`` over each output's window: ``[..., N, Ho, Wo, G]``.

    Equal to a convolution of ``s`` with an all-ones ``kh x kw`` kernel using the layer's
    strides, dilation and zero padding (negative padding crops). Small windows add one strided
    slice per tap; large undilated ones use an integral image (four strided corner slices).
    The result keeps ``s``'s integer dtype (callers make sure sums fit).
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
    if geom.dh == geom.dw == 1 and geom.kh * geom.kw > 16:
        # Integral image with a zero first row and column.
        ii = np.zeros(sp.shape[:h_ax] + (hp + 1, wp + 1) + sp.shape[-1:], np.int64)
        np.cumsum(sp, axis=h_ax, out=ii[..., 1:, 1:, :])
        np.cumsum(ii[..., 1:, 1:, :], axis=w_ax, out=ii[..., 1:, 1:, :])
        ys, xs = slice(0, sh * (ho - 1) + 1, sh), slice(0, sw * (wo - 1) + 1, sw)
        ye = slice(geom.kh, geom.kh + sh * (ho - 1) + 1, sh)
        xe = slice(geom.kw, geom.kw + sw * (wo - 1) + 1, sw)
        out = ii[..., ye, xe, :] - ii[..., ys, xe, :] - ii[..., ye, xs, :] + ii[..., ys, xs, :]
        return out.astype(s.dtype)
    out = np.zeros(sp.shape[:h_ax] + (ho, wo) + sp.shape[-1:], s.dtype)
    for i in range(geom.kh):  # loop over kernel taps (at most kh*kw), not over neurons
        for j in range(geom.kw):
            y, x = i * geom.dh, j * geom.dw
            out += sp[..., y: y + sh * (ho - 1) + 1: sh, x: x + sw * (wo - 1) + 1: sw, :]
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


#: Indicators reduced together in one pass; field ``f`` of a packed value counts ``_FIELDS[f]``.
_FIELDS = ("nonzero", "predicted", "mispredicted")


def _packed_lut(bits: int, dtype: type) -> np.ndarray:
    lut = np.zeros(4, dtype)
    for code in range(4):
        v = 0
        for f, name in enumerate(_FIELDS):
            v |= int(INDICATORS[name][code]) << (f * bits)
        lut[code] = v
    return lut


def position_counts_all(codes: np.ndarray, geom: LayerGeom,
                        which: tuple[str, ...] = _FIELDS,
                        fires: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`position_counts` for several indicators, reduced in one pass.

    The three indicator counts are packed into bit fields of one integer per neuron (a lookup
    on the code; the ``nonzero`` field from ``fires`` where given), summed and box-filtered
    once, then unpacked; exact while every field's sum (at most ``Cin/groups * kh * kw``) fits
    its width.
    """
    limit = geom.cin_g * geom.kh * geom.kw
    bits, dtype = (10, np.int32) if limit < 2 ** 10 else (21, np.int64)
    if limit >= 2 ** 21:
        return {w: position_counts(codes, geom, w, fires) for w in which}
    lut = _packed_lut(bits, dtype)
    if fires is None:
        packed = lut[np.asarray(codes)]
    else:
        field = (1 << (bits * _FIELDS.index("nonzero"))) * ((1 << bits) - 1)
        packed = (lut & ~dtype(field))[np.asarray(codes)]
        packed |= np.asarray(fires).astype(dtype) << (bits * _FIELDS.index("nonzero"))
    if geom.is_depthwise:
        s = packed
    elif geom.groups == 1:
        s = packed.sum(axis=-1, dtype=dtype)[..., None]
    else:
        s = packed.reshape(packed.shape[:-1] + (geom.groups, geom.cin_g)).sum(-1, dtype=dtype)
    cnt = window_counts(s, geom)
    cnt = cnt.reshape(cnt.shape[:-4] + (geom.m, cnt.shape[-1]))
    mask = (1 << bits) - 1
    return {w: ((cnt >> (bits * _FIELDS.index(w))) & mask).astype(np.int32) for w in which}


def tile_reduce(cnt: np.ndarray, bm: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row tile of ``bm`` positions: ``(max, sum)`` of ``cnt [..., M, G]`` over the tile.

    The last tile is padded with zero-work rows. Returns two ``[..., ceil(M/bm), G]`` arrays.
    """
    m = cnt.shape[-2]
    mt = -(-m // bm)
    if mt * bm != m:
        full = np.zeros(cnt.shape[:-2] + (mt * bm, cnt.shape[-1]), cnt.dtype)
        full[..., :m, :] = cnt
        cnt = full
    t = cnt.reshape(cnt.shape[:-2] + (mt, bm, cnt.shape[-1]))
    return t.max(axis=-2), t.sum(axis=-2, dtype=np.int64)


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
