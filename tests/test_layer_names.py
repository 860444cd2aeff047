"""Layer names across params layouts: Flax module paths, Keras 3 flat lists, name rules.

The real third-party frameworks (dm-haiku, Keras 3, flaxmodels, Equinox) are in
``tests/test_frameworks.py``.

Reuse (``name@1``) is counted by the kernel's param leaf: a flat list whose leaves share one
path prefix must not look like one kernel applied many times (issue 14, finding 11).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _cnns import LinenCNN
from jax import lax

import secnn_jax as sj

_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, b):
    return jax.nn.relu(lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_DN) + b)


def _keras_params(key: jax.Array) -> tuple[list[jax.Array], list[jax.Array]]:
    """``(trainable, non_trainable)`` as Keras 3's ``stateless_call`` takes them: flat lists."""
    k = jax.random.split(key, 3)
    trainable = [
        jax.random.normal(k[0], (3, 3, 3, 8)) * 0.3, jnp.zeros(8),  # conv 0
        jax.random.normal(k[1], (3, 3, 8, 8)) * 0.3, jnp.zeros(8),  # conv 1
        jax.random.normal(k[2], (8, 10)) * 0.3, jnp.zeros(10),  # dense
    ]
    return trainable, [jnp.ones(8)]  # a non-trainable scale, as BatchNorm statistics would be


def _keras_apply(params, x, reuse: bool = False):
    (w0, b0, w1, b1, wd, bd), (scale,) = params
    x = _conv(x, w0, b0) * scale
    x = _conv(x, w1, b1)
    if reuse:
        x = _conv(x, w1, b1)  # the same kernel really applied twice
    return x.mean((1, 2)) @ wd + bd


def test_keras3_flat_params_are_layer_0_1_2():
    params = _keras_params(jax.random.PRNGKey(0))
    x = jnp.ones((2, 16, 16, 3))
    layers = sj.find_layers(_keras_apply, params, x)
    assert [lyr.name for lyr in layers] == ["layer_0", "layer_1", "layer_2"]
    assert [lyr.kernel_path for lyr in layers] == ["0/0", "0/2", "0/4"]  # the kernel leaves
    logits, events = sj.run_stream(_keras_apply, params, jnp.stack([x, x + 0.1]),
                                   sj.predictors.last_value())
    assert set(events) == {"layer_0", "layer_1", "layer_2"}
    ref = jax.vmap(lambda f: _keras_apply(params, f))(jnp.stack([x, x + 0.1]))
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-5)


def test_keras3_kernel_applied_twice_is_the_only_reuse():
    params = _keras_params(jax.random.PRNGKey(0))
    layers = sj.find_layers(lambda p, x: _keras_apply(p, x, reuse=True), params,
                            jnp.ones((1, 16, 16, 3)))
    assert [lyr.name for lyr in layers] == ["layer_0", "layer_1", "layer_1@1", "layer_2"]


def test_plain_flat_list_of_params():
    w0, b0, w1, b1, wd, bd = _keras_params(jax.random.PRNGKey(1))[0]

    def apply_fn(p, x):
        return _conv(_conv(x, p[0], p[1]), p[2], p[3]).mean((1, 2)) @ p[4] + p[5]

    layers = sj.find_layers(apply_fn, [w0, b0, w1, b1, wd, bd], jnp.ones((1, 16, 16, 3)))
    assert [lyr.name for lyr in layers] == ["layer_0", "layer_1", "layer_2"]


def test_one_module_with_two_kernels_is_not_reuse():
    k = jax.random.split(jax.random.PRNGKey(3), 2)
    params = {"attn": {"q": jax.random.normal(k[0], (8, 8)), "k": jax.random.normal(k[1], (8, 8))}}

    def apply_fn(p, x):
        return jax.nn.relu(x @ p["attn"]["q"]) @ p["attn"]["k"]

    layers = sj.find_layers(apply_fn, params, jnp.ones((2, 8)))
    assert [lyr.name for lyr in layers] == ["attn/q", "attn/k"]


def test_flax_names_are_module_paths_and_real_reuse_keeps_at_1():
    module = LinenCNN()
    x = jnp.ones((1, 32, 32, 3))
    params = module.init(jax.random.PRNGKey(0), x)
    layers = sj.find_layers(module.apply, params, x)
    assert [lyr.name for lyr in layers] == [
        "stem", "dw", "pw", "grouped", "dilated", "shared", "shared@1", "head"]
    shared = [lyr for lyr in layers if lyr.name.startswith("shared")]
    assert {lyr.kernel_path for lyr in shared} == {"params/shared/kernel"}


def test_module_name_rules():
    from secnn_jax.layers import module_name

    assert module_name(("params", "layer1_0", "conv1", "kernel")) == "layer1_0/conv1"
    assert module_name(("blocks", "0", "conv", "kernel")) == "blocks/0/conv"  # NNX list
    # Haiku's module name exactly as Haiku spells it ("~" included).
    assert module_name(("res_net18/~/initial_conv", "w")) == "res_net18/~/initial_conv"
    assert module_name(("w1",)) == "w1"  # a lone named leaf names itself
    assert module_name(("4",)) is None
    assert module_name(("convs", "1")) == "convs/1"  # a named list keeps its name
