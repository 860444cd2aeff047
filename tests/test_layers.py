"""find_layers on Linen, NNX and plain-JAX CNNs: names, order, geometry and exact MACs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cnns import MODELS, linen_model, nnx_model, plain_model

import secnn_jax as sj


def test_linen_layers_names_geometry_and_reuse(frames):
    x = jnp.asarray(frames[0])
    apply_fn, variables = linen_model(x)
    layers = sj.find_layers(apply_fn, variables, x)
    names = [layer.name for layer in layers]
    assert names == ["stem", "dw", "pw", "grouped", "dilated", "shared", "shared@1", "head"]
    by = {layer.name: layer for layer in layers}
    assert by["stem"].strides == (2, 2) and by["stem"].in_shape == (2, 32, 32, 3)
    assert by["dw"].groups == 8 and by["dw"].padding == ((0, 2), (1, 1))
    assert by["grouped"].groups == 2 and by["grouped"].kernel_shape == (3, 3, 4, 8)
    assert by["dilated"].dilation == (2, 2)
    assert by["pw"].kernel_shape == (1, 1, 8, 8)
    assert by["head"].kind == "dense" and by["head"].in_shape == (2, 16 * 8 * 8)
    assert [layer.index for layer in layers] == list(range(len(layers)))
    for layer in layers:
        # MACs from first principles: outputs x (inputs per output)
        if layer.kind == "conv":
            kh, kw, cin_g, _ = layer.kernel_shape
            want = np.prod(layer.out_shape) * kh * kw * cin_g
        else:
            want = np.prod(layer.out_shape) * layer.in_shape[-1]
        assert layer.macs == want, layer.name


def test_nnx_layer_names():
    x = jnp.zeros((1, 16, 16, 3))
    apply_fn, params = nnx_model()
    names = [layer.name for layer in sj.find_layers(apply_fn, params, x)]
    assert names == ["stem", "dw", "pw", "head"]


def test_plain_jax_nchw_layers():
    x = jnp.zeros((2, 16, 16, 3))
    apply_fn, params = plain_model()
    layers = sj.find_layers(apply_fn, params, x)
    assert [layer.name for layer in layers] == ["conv1", "conv2", "fc"]
    conv2 = layers[1]
    assert conv2.in_shape == (2, 8, 8, 8)  # NCHW as consumed
    assert conv2.in_nhwc == (2, 8, 8, 8)
    assert conv2.padding == ((0, 1), (2, 0)) and conv2.dilation == (2, 1) and conv2.groups == 2
    a = np.arange(np.prod(conv2.in_shape)).reshape(conv2.in_shape)
    np.testing.assert_array_equal(conv2.to_nhwc(a), np.transpose(a, (0, 2, 3, 1)))


def test_no_linear_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="no linear layer"):
        sj.find_layers(lambda p, x: jax.nn.relu(x * p["s"]), {"s": jnp.ones(())},
                       jnp.ones((1, 4, 4, 3)))


def test_activation_products_are_not_layers():
    # x @ x.T has no learned kernel: not a layer; the dense after it is.
    def apply_fn(p, x):
        return (x @ x.T) @ p["w"]

    layers = sj.find_layers(apply_fn, {"w": jnp.ones((3, 2))}, jnp.ones((3, 5)))
    assert [layer.name for layer in layers] == ["w"] or [lyr.kind for lyr in layers] == ["dense"]
    assert len(layers) == 1


def test_conv_transpose_is_excluded():
    from flax import linen as nn

    class M(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.ConvTranspose(4, (3, 3), strides=(2, 2), name="up")(x)
            return nn.Conv(2, (3, 3), name="conv")(x)

    x = jnp.ones((1, 8, 8, 3))
    v = M().init(jax.random.key(0), x)
    assert [layer.name for layer in sj.find_layers(M().apply, v, x)] == ["conv"]


def test_layers_inside_jit_and_custom_jvp_are_found(frames):
    x = jnp.asarray(frames[0])
    apply_fn, variables = linen_model(x)
    jitted = jax.jit(apply_fn)
    assert [lyr.name for lyr in sj.find_layers(jitted, variables, x)] == [
        lyr.name for lyr in sj.find_layers(apply_fn, variables, x)]


def test_layers_in_scan_are_refused():
    def apply_fn(p, x):
        def body(h, w):
            return jax.nn.relu(h @ w), None

        h, _ = jax.lax.scan(body, x, p["ws"])
        return h

    with pytest.raises(NotImplementedError, match="scan"):
        sj.find_layers(apply_fn, {"ws": jnp.ones((3, 4, 4))}, jnp.ones((2, 4)))


@pytest.mark.parametrize("style", sorted(MODELS))
def test_layer_table_renders(style):
    x = jnp.zeros((1, 16, 16, 3))
    apply_fn, params = MODELS[style](x)
    table = sj.layer_table(sj.find_layers(apply_fn, params, x))
    assert "MACs" in table and len(table.splitlines()) > 2
