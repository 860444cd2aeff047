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

from secnn_jax.timing.geometry import LayerGeom

#: Which event codes each indicator selects, as a lookup table over the code (0..3):
#: ``nonzero``: not ZZ (VM may hide a real zero; codes do not say); ``predicted``: VH or VM;
#: ``mispredicted``: ZN or VM.
INDICATORS: dict[str, np.ndarray] = {
    "nonzero": np.array([0, 1, 1, 1], np.uint8),
    "predicted": np.array([0, 0, 1, 1], np.uint8),
    "mispredicted": np.array([0, 1, 0, 1], np.uint8),
}


def indicator(codes: np.ndarray, which: str) -> np.ndarray:
    """0/1 ``uint8`` map of the neurons selected by ``which`` (see :data:`INDICATORS`)."""
    codes = np.asarray(codes)
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
    strides, dilation and zero padding (negative padding crops).
    """
    if geom.kh == geom.kw == 1 and geom.sh == geom.sw == 1 and geom.pad == ((0, 0), (0, 0)):
        return s
    (pt, pb), (pl, pr) = geom.pad
    h_ax, w_ax = s.ndim - 3, s.ndim - 2
    # Negative padding crops; positive padding adds zeros.
    crop = [slice(None)] * s.ndim
    crop[h_ax] = slice(max(-pt, 0), s.shape[h_ax] - max(-pb, 0))
    crop[w_ax] = slice(max(-pl, 0), s.shape[w_ax] - max(-pr, 0))
    s = s[tuple(crop)]
    widths = [(0, 0)] * s.ndim
    widths[h_ax] = (max(pt, 0), max(pb, 0))
    widths[w_ax] = (max(pl, 0), max(pr, 0))
    sp = np.pad(s, widths)
    ho, wo = geom.ho, geom.wo
    if geom.dh == geom.dw == 1:
        # Integral image: window sums from four strided corner lookups.
        ii = np.zeros(sp.shape[:h_ax] + (sp.shape[h_ax] + 1, sp.shape[w_ax] + 1) + sp.shape[-1:],
                      np.int64)
        np.cumsum(sp, axis=h_ax, out=ii[..., 1:, 1:, :])
        np.cumsum(ii[..., 1:, 1:, :], axis=w_ax, out=ii[..., 1:, 1:, :])
        y0 = np.arange(ho) * geom.sh
        x0 = np.arange(wo) * geom.sw
        y1, x1 = y0 + geom.kh, x0 + geom.kw
        a = ii[..., y1[:, None], x1[None, :], :]
        b = ii[..., y0[:, None], x1[None, :], :]
        c = ii[..., y1[:, None], x0[None, :], :]
        d = ii[..., y0[:, None], x0[None, :], :]
        return (a - b - c + d).astype(np.int32)
    out = np.zeros(sp.shape[:h_ax] + (ho, wo) + sp.shape[-1:], np.int32)
    for i in range(geom.kh):  # loop over kernel taps (at most kh*kw), not over neurons
        for j in range(geom.kw):
            y, x = i * geom.dh, j * geom.dw
            out += sp[..., y: y + geom.sh * (ho - 1) + 1: geom.sh,
                      x: x + geom.sw * (wo - 1) + 1: geom.sw, :]
    return out


def position_counts(codes: np.ndarray, geom: LayerGeom, which: str) -> np.ndarray:
    """Flagged inputs in each output's receptive field: ``[..., M, G]`` int32.

    ``codes`` is ``[..., N, H, W, C]`` (NHWC event codes); rows are output positions
    ``(n, ho, wo)`` in row-major order (the implicit GEMM's M axis).
    """
    cnt = window_counts(group_sums(indicator(codes, which), geom), geom)
    return cnt.reshape(cnt.shape[:-4] + (geom.m, cnt.shape[-1]))


def tile_reduce(cnt: np.ndarray, bm: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row tile of ``bm`` positions: ``(max, sum)`` of ``cnt [..., M, G]`` over the tile.

    The last tile is padded with zero-work rows. Returns two ``[..., ceil(M/bm), G]`` arrays.
    """
    m = cnt.shape[-2]
    mt = -(-m // bm)
    if mt * bm != m:
        widths = [(0, 0)] * cnt.ndim
        widths[-2] = (0, mt * bm - m)
        cnt = np.pad(cnt, widths)
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
