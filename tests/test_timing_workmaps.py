"""Work maps: window counts equal a convolution with an all-ones kernel; tiles; fan-out."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from secnn_jax import workmaps as wm
from secnn_jax.geometry import LayerGeom

# (kernel, stride, padding, dilation, groups, cin): padded, strided, dilated, grouped,
# depthwise, asymmetric and negative padding, large windows (integral image), many channels.
CASES = [(3, 1, 1, 1, 1, 8), (7, 2, 3, 1, 1, 8), (3, 2, 1, 1, 1, 8), (3, 1, 2, 2, 1, 8),
         (1, 2, 0, 1, 1, 8), (3, 1, 1, 1, 4, 8), (3, 2, 1, 1, 8, 8), (5, 1, (1, 3), 1, 1, 8),
         (5, 2, 2, 1, 16, 16), (7, 1, 3, 1, 1, 300), (1, 1, 0, 1, 1, 3000),
         (5, 1, (-1, 2), 1, 1, 4)]


def geom(k, s, p, d, g, cin, h=11) -> LayerGeom:
    pad = ((p[0], p[1]), (p[1], p[0])) if isinstance(p, tuple) else ((p, p), (p, p))
    ho = (h + sum(pad[0]) - d * (k - 1) - 1) // s + 1
    wo = (h + sum(pad[1]) - d * (k - 1) - 1) // s + 1
    return LayerGeom(name="x", kind="conv", n=2, h=h, w=h, cin=cin, ho=ho, wo=wo, cout=16,
                     kh=k, kw=k, sh=s, sw=s, pad=pad, dh=d, dw=d, groups=g)


@pytest.mark.parametrize("case", CASES)
def test_counts_equal_conv_with_ones(case) -> None:
    g = geom(*case)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (3, 2, g.h, g.w, g.cin)).astype(np.uint8)
    together = wm.position_counts_all(codes, g)
    for which in ("nonzero", "predicted", "mispredicted"):
        ind = wm.indicator(codes, which).astype(np.float32).reshape(6, g.h, g.w, g.cin)
        ones = np.ones((g.kh, g.kw, g.cin_g, g.groups), np.float32)
        ref = jax.lax.conv_general_dilated(ind, ones, (g.sh, g.sw), g.pad,
                                           rhs_dilation=(g.dh, g.dw),
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                           feature_group_count=g.groups)
        ref = np.asarray(ref).reshape(3, g.m, g.groups)
        np.testing.assert_array_equal(wm.position_counts(codes, g, which), ref)
        np.testing.assert_array_equal(together[which], ref)


@pytest.mark.parametrize("case", CASES[:9])
def test_fanout_is_the_transposed_window(case) -> None:
    g = geom(*case)
    f = lambda x: jax.lax.conv_general_dilated(
        x, np.ones((g.kh, g.kw, g.cin_g, g.cout), np.float32), (g.sh, g.sw), g.pad,
        rhs_dilation=(g.dh, g.dw), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=g.groups).sum()
    grad = np.asarray(jax.grad(f)(np.zeros((1, g.h, g.w, g.cin), np.float32)))
    np.testing.assert_array_equal(wm.fanout(g), grad[0, :, :, 0])


def test_tile_reduce_and_indicators() -> None:
    cnt = np.arange(10, dtype=np.int32).reshape(1, 10, 1)
    mx, sm = wm.tile_reduce(cnt, 4)
    np.testing.assert_array_equal(mx[0, :, 0], [3, 7, 9])
    np.testing.assert_array_equal(sm[0, :, 0], [6, 22, 17])
    codes = np.array([0, 1, 2, 3], np.uint8)
    np.testing.assert_array_equal(wm.indicator(codes, "nonzero"), [0, 1, 1, 1])
    np.testing.assert_array_equal(wm.indicator(codes, "predicted"), [0, 0, 1, 1])
    np.testing.assert_array_equal(wm.indicator(codes, "mispredicted"), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="unknown indicator"):
        wm.indicator(codes, "maybe")


@pytest.mark.parametrize("cin", [1023, 1024, 1025])
def test_packed_counts_at_the_10_bit_edge(cin: int) -> None:
    # ResNet-50's 1024-channel 1x1 convs: with every input flagged, a field counts 1024, which
    # needs 11 bits; the packed single pass must equal the three separate reductions.
    g = LayerGeom.conv("edge", n=1, h=2, cin=cin, cout=8, k=1)
    rng = np.random.default_rng(cin)
    codes = rng.choice(4, size=(2, *g.in_nhwc)).astype(np.uint8)
    codes[0] = 3  # frame 0: every input non-zero, predicted and mispredicted
    got = wm.position_counts_all(codes, g)
    for which in ("nonzero", "predicted", "mispredicted"):
        np.testing.assert_array_equal(got[which], wm.position_counts(codes, g, which))
    assert (got["mispredicted"][0] == cin).all()
