"""The fast depthwise convolution against lax.conv_general_dilated."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from secnn_jax import depthwise


@pytest.mark.parametrize(
    "k,strides,padding,dilation,mult",
    [(3, (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
     (5, (2, 2), ((1, 2), (2, 1)), (1, 1), 1),
     (3, (2, 1), ((0, 0), (3, 0)), (2, 2), 2),
     (3, (1, 1), ((0, 2), (0, 0)), (1, 1), 1)])
def test_depthwise_matches_lax(k, strides, padding, dilation, mult):
    x = jax.random.normal(jax.random.key(0), (2, 11, 9, 6))
    w = jax.random.normal(jax.random.key(1), (k, k, 1, 6 * mult))
    want = lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=6)
    got = depthwise.depthwise_conv_nhwc(x, w, strides, padding, dilation)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rejects_non_depthwise_kernel():
    with pytest.raises(ValueError, match="not a depthwise kernel"):
        depthwise.depthwise_conv_nhwc(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 2, 3)), (1, 1),
                                    ((1, 1), (1, 1)), (1, 1))
