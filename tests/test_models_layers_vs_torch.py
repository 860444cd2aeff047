"""Every layer type of the model zoo against ``torch.nn.functional`` on random data.

Covers the Flax layers as the converters wire them (conv incl. grouped, depthwise, strided,
padded, asymmetric; dense; batch norm) and the torch-semantics pooling of ``models.layers``
(max pool with ceil_mode, average pool with and without count_include_pad, adaptive average
pool, local response norm, TF "SAME" padding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import layers
from models.conversion import bn_variables, conv_kernel, dense_kernel

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(0)


def _nchw_to_nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _close(ours: jnp.ndarray, ref: np.ndarray, tol: float = 1e-5) -> None:
    ours = np.asarray(ours)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    scale = max(float(np.abs(ref).max()), 1.0)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tol * scale)


CONV_CASES = [
    # (cin, cout, kernel, stride, padding, groups, bias, size)
    (3, 8, 3, 1, 1, 1, True, 9),
    (3, 8, 7, 2, 3, 1, False, 16),  # strided, padded (ResNet stem)
    (8, 8, 3, 2, 1, 8, False, 10),  # depthwise strided
    (8, 12, 3, 1, 1, 4, True, 7),  # grouped
    (6, 4, (1, 7), 1, (0, 3), 1, False, 9),  # asymmetric kernel (Inception)
    (6, 4, (7, 1), 1, (3, 0), 1, False, 9),
    (4, 5, 11, 4, 2, 1, True, 31),  # AlexNet stem
    (4, 6, 1, 1, 0, 1, False, 5),  # pointwise
]


@pytest.mark.parametrize("cin,cout,kernel,stride,padding,groups,bias,size", CONV_CASES)
def test_conv_matches_torch(cin, cout, kernel, stride, padding, groups, bias, size):
    kh, kw = layers.pair(kernel)
    weight = RNG.standard_normal((cout, cin // groups, kh, kw)).astype(np.float32)
    b = RNG.standard_normal(cout).astype(np.float32)
    x = RNG.standard_normal((2, cin, size, size + 1)).astype(np.float32)
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight),
                   torch.from_numpy(b) if bias else None, stride, padding, 1, groups)
    module = layers.conv(cout, kernel, "c", stride=stride, padding=padding, groups=groups,
                         use_bias=bias)
    params = {"kernel": conv_kernel(weight)}
    if bias:
        params["bias"] = b
    ours = module.apply({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)))
    _close(ours, _nchw_to_nhwc(ref))


def test_tf_same_padding_conv_matches_dynamic_same_reference():
    """EfficientNet's Conv2dDynamicSamePadding: pad (extra at the end), then a VALID conv."""
    for size, kernel, stride in [(16, 3, 2), (15, 5, 2), (9, 3, 1), (65, 5, 2)]:
        x = RNG.standard_normal((1, 4, size, size)).astype(np.float32)
        weight = RNG.standard_normal((4, 1, kernel, kernel)).astype(np.float32)
        lo, hi = layers.same_padding(size, kernel, stride)
        ref = F.conv2d(F.pad(torch.from_numpy(x), [lo, hi, lo, hi]), torch.from_numpy(weight),
                       None, stride, 0, 1, 4)
        assert ref.shape[-1] == -(-size // stride)
        module = layers.conv(4, kernel, "c", stride=stride, padding=((lo, hi), (lo, hi)),
                             groups=4, use_bias=False)
        ours = module.apply({"params": {"kernel": conv_kernel(weight)}},
                            jnp.asarray(x.transpose(0, 2, 3, 1)))
        _close(ours, _nchw_to_nhwc(ref))


def test_dense_matches_torch():
    weight = RNG.standard_normal((7, 11)).astype(np.float32)
    b = RNG.standard_normal(7).astype(np.float32)
    x = RNG.standard_normal((3, 11)).astype(np.float32)
    ref = F.linear(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(b)).numpy()
    module = layers.dense(7, "fc")
    ours = module.apply({"params": {"kernel": dense_kernel(weight), "bias": b}}, jnp.asarray(x))
    _close(ours, ref)


def test_dense_after_flatten_permutation_matches_torch():
    """torch flattens NCHW, we flatten NHWC: the converter permutes the first dense kernel."""
    c, h, w = 5, 3, 4
    weight = RNG.standard_normal((6, c * h * w)).astype(np.float32)
    x = RNG.standard_normal((2, c, h, w)).astype(np.float32)
    ref = F.linear(torch.from_numpy(x).flatten(1), torch.from_numpy(weight)).numpy()
    module = layers.dense(6, "fc", use_bias=False)
    flat = layers.flatten_nhwc(jnp.asarray(x.transpose(0, 2, 3, 1)))
    ours = module.apply({"params": {"kernel": dense_kernel(weight, chw=(c, h, w))}}, flat)
    _close(ours, ref)


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_batch_norm_matches_torch(eps):
    c = 6
    stats = {
        "weight": RNG.standard_normal(c).astype(np.float32),
        "bias": RNG.standard_normal(c).astype(np.float32),
        "running_mean": RNG.standard_normal(c).astype(np.float32),
        "running_var": RNG.uniform(0.1, 2.0, c).astype(np.float32),
    }
    x = RNG.standard_normal((2, c, 5, 5)).astype(np.float32)
    ref = F.batch_norm(torch.from_numpy(x), torch.from_numpy(stats["running_mean"]),
                       torch.from_numpy(stats["running_var"]), torch.from_numpy(stats["weight"]),
                       torch.from_numpy(stats["bias"]), training=False, eps=eps)
    params, batch_stats = bn_variables(stats["weight"], stats["bias"], stats["running_mean"],
                                       stats["running_var"])
    ours = layers.batch_norm("bn", eps).apply(
        {"params": params, "batch_stats": batch_stats}, jnp.asarray(x.transpose(0, 2, 3, 1)))
    _close(ours, _nchw_to_nhwc(ref))


POOL_CASES = [
    # (kernel, stride, padding, ceil_mode, size)
    (3, 2, 0, False, 13),
    (3, 2, 0, True, 14),  # ceil mode adds a partial window (GoogLeNet, ZFNet)
    (3, 2, 0, True, 13),
    (2, 2, 0, True, 7),
    (3, 1, 1, True, 6),  # GoogLeNet branch4 pool
    (3, 2, 1, False, 16),  # ResNet stem pool
    (3, 2, 1, True, 10),  # last window would start in the padding: dropped
    (5, 3, 0, False, 17),  # Inception aux avg pool
    (3, 3, 1, True, 8),
]


@pytest.mark.parametrize("kernel,stride,padding,ceil_mode,size", POOL_CASES)
def test_max_pool_matches_torch(kernel, stride, padding, ceil_mode, size):
    x = RNG.standard_normal((2, 3, size, size + 2)).astype(np.float32)
    ref = F.max_pool2d(torch.from_numpy(x), kernel, stride, padding, ceil_mode=ceil_mode)
    ours = layers.max_pool(jnp.asarray(x.transpose(0, 2, 3, 1)), kernel, stride, padding,
                           ceil_mode)
    _close(ours, _nchw_to_nhwc(ref), tol=0)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kernel,stride,padding,ceil_mode,size", POOL_CASES)
def test_avg_pool_matches_torch(kernel, stride, padding, ceil_mode, size, count_include_pad):
    x = RNG.standard_normal((2, 3, size, size + 1)).astype(np.float32)
    ref = F.avg_pool2d(torch.from_numpy(x), kernel, stride, padding, ceil_mode=ceil_mode,
                       count_include_pad=count_include_pad)
    ours = layers.avg_pool(jnp.asarray(x.transpose(0, 2, 3, 1)), kernel, stride, padding,
                           ceil_mode, count_include_pad)
    _close(ours, _nchw_to_nhwc(ref))


@pytest.mark.parametrize("size,out", [(7, 7), (14, 7), (13, 6), (5, 7), (2, 6), (1, 6), (9, 4),
                                      (8, 1)])
def test_adaptive_avg_pool_matches_torch(size, out):
    x = RNG.standard_normal((2, 3, size, size + 3)).astype(np.float32)
    ref = F.adaptive_avg_pool2d(torch.from_numpy(x), (out, out))
    ours = layers.adaptive_avg_pool(jnp.asarray(x.transpose(0, 2, 3, 1)), out)
    _close(ours, _nchw_to_nhwc(ref))


def test_global_avg_pool_matches_torch():
    x = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
    ref = F.adaptive_avg_pool2d(torch.from_numpy(x), 1).flatten(1).numpy()
    _close(layers.global_avg_pool(jnp.asarray(x.transpose(0, 2, 3, 1))), ref)


@pytest.mark.parametrize("size", [5, 4])
def test_local_response_norm_matches_torch(size):
    x = 3 * RNG.standard_normal((2, 9, 4, 4)).astype(np.float32)
    ref = F.local_response_norm(torch.from_numpy(x), size, alpha=1e-2, beta=0.75, k=2.0)
    ours = layers.local_response_norm(jnp.asarray(x.transpose(0, 2, 3, 1)), size, 1e-2, 0.75,
                                      2.0)
    _close(ours, _nchw_to_nhwc(ref))


def test_pooling_contains_no_linear_primitive():
    """Pooling must not look like a learned linear layer to secnn_jax.find_layers."""
    x = jnp.ones((1, 9, 9, 2))

    def pools(x):
        return (layers.max_pool(x, 3, 2, 1, True).sum() + layers.avg_pool(x, 3, 2, 1, True).sum()
                + layers.adaptive_avg_pool(x, 4).sum() + layers.local_response_norm(x, 5).sum())

    primitives = {eqn.primitive.name for eqn in jax.make_jaxpr(pools)(x).jaxpr.eqns}
    assert not primitives & {"dot_general", "conv_general_dilated"}
