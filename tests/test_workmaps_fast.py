"""The one-pass reduction of :mod:`secnn_jax.workmaps` (bit operations on the codes, narrow
packed fields, a separable box filter) against independent references: a direct per-output
convolution written here with explicit input coordinates, and the per-indicator path
(:func:`~secnn_jax.workmaps.position_counts`), on random geometries (kernel, stride, dilation,
positive and negative padding, groups, depthwise) with random codes and fires."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from secnn_jax import workmaps as wm
from secnn_jax.geometry import LayerGeom

WHICH = ("nonzero", "predicted", "mispredicted")


def _indicator(codes: np.ndarray, which: str, fires: np.ndarray | None) -> np.ndarray:
    """0/1 per neuron from the code table itself (workmaps.INDICATORS' definition)."""
    if which == "nonzero" and fires is not None:
        return np.asarray(fires, np.int64)
    table = {"nonzero": (0, 1, 1, 1), "predicted": (0, 0, 1, 1),
             "mispredicted": (0, 1, 0, 1)}[which]
    return np.asarray(table, np.int64)[codes]


def _conv_counts(ind: np.ndarray, g: LayerGeom) -> np.ndarray:
    """``[..., M, G]``: per output position and group, the flagged inputs of its window, by
    input coordinates ``out * stride - pad_begin + tap * dilation`` inside the input."""
    lead = ind.shape[:-4]
    sums = ind.reshape(ind.shape[:-1] + (g.groups, g.cin_g)).sum(-1)  # [..., N, H, W, G]
    out = np.zeros(lead + (g.n, g.ho, g.wo, g.groups), np.int64)
    for oy in range(g.ho):
        for ox in range(g.wo):
            for i in range(g.kh):
                y = oy * g.sh - g.pad[0][0] + i * g.dh
                if not 0 <= y < g.h:
                    continue
                for j in range(g.kw):
                    x = ox * g.sw - g.pad[1][0] + j * g.dw
                    if 0 <= x < g.w:
                        out[..., oy, ox, :] += sums[..., y, x, :]
    return out.reshape(lead + (g.m, g.groups))


@st.composite
def _case(draw: st.DrawFn) -> tuple[LayerGeom, np.ndarray, np.ndarray | None]:
    kh, kw = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = tuple(tuple(draw(st.integers(-1, 3)) for _ in range(2)) for _ in range(2))
    h = draw(st.integers((kh - 1) * dh + 2, 12))
    w = draw(st.integers((kw - 1) * dw + 2, 12))
    ho = (h + pad[0][0] + pad[0][1] - (kh - 1) * dh - 1) // sh + 1
    wo = (w + pad[1][0] + pad[1][1] - (kw - 1) * dw - 1) // sw + 1
    assume(ho >= 1 and wo >= 1)
    kind = draw(st.sampled_from(("dense", "grouped", "depthwise")))
    groups = 1 if kind == "dense" else draw(st.integers(2, 4))
    cin = groups * (1 if kind == "depthwise" else draw(st.integers(1, 5)))
    cout = groups * draw(st.integers(1, 2))
    g = LayerGeom("x", "conv", draw(st.integers(1, 2)), h, w, cin, ho, wo, cout,
                  kh, kw, sh, sw, pad, dh, dw, groups)
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (2, g.n, g.h, g.w, g.cin), dtype=np.uint8)
    fires = (rng.random(codes.shape) < 0.5) if draw(st.booleans()) else None
    return g, codes, fires


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case())
def test_position_counts_all_equals_convolution_and_plain_path(case) -> None:
    g, codes, fires = case
    got = wm.position_counts_all(codes, g, WHICH, fires)
    assert tuple(got) == WHICH
    for w in WHICH:
        ref = _conv_counts(_indicator(codes, w, fires), g)
        assert got[w].dtype == np.int32
        assert np.array_equal(got[w], ref), w
        assert np.array_equal(got[w], wm.position_counts(codes, g, w, fires)), w
    # A subset, in another order, counts the same.
    sub = wm.position_counts_all(codes, g, ("mispredicted", "nonzero"), fires)
    assert tuple(sub) == ("mispredicted", "nonzero")
    assert all(np.array_equal(sub[w], got[w]) for w in sub)


def test_window_counts_keeps_dtype_and_equals_convolution() -> None:
    """A 5x5 stride-2 window with asymmetric padding (the depthwise layers' case): uint16 in,
    uint16 out, equal to the direct convolution."""
    g = LayerGeom("dw", "conv", 1, 15, 14, 3, 7, 7, 3, 5, 5, 2, 2, ((1, 2), (2, 1)), groups=3)
    s = np.random.default_rng(3).integers(0, 1000, (2, 1, 15, 14, 3)).astype(np.uint16)
    got = wm.window_counts(s, g)
    assert got.dtype == np.uint16
    ref = _conv_counts(s.astype(np.int64), g)
    assert np.array_equal(got.reshape(2, g.m, 3), ref)


@pytest.mark.parametrize("cin", [2 ** 10 - 1, 2 ** 10, 2 ** 21 + 3])
def test_wide_fields(cin: int) -> None:
    """Sums past 10 bits (32-bit packs) and past 21 bits (no 64-bit pack holds three fields:
    each indicator on its own) stay exact: every neuron of a 1x1 layer flagged."""
    g = LayerGeom("fc", "conv", 1, 1, 1, cin, 1, 1, 1)
    codes = np.full((1, 1, 1, 1, cin), 3, np.uint8)
    fires = np.ones(codes.shape, bool)
    got = wm.position_counts_all(codes, g, WHICH, fires)
    for w in WHICH:
        assert got[w].dtype == np.int32 and got[w].tolist() == [[[cin]]], w


def test_unknown_indicator() -> None:
    g = LayerGeom("c", "conv", 1, 2, 2, 1, 2, 2, 1)
    with pytest.raises(ValueError, match="unknown indicator 'zeros'"):
        wm.position_counts_all(np.zeros((1, 2, 2, 1), np.uint8), g, ("zeros",))
