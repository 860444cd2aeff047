"""Shared building blocks with PyTorch semantics, for NHWC float32 arrays.

Flax ships convolutions, dense layers and batch norm, but torch's pooling conventions differ
from ``flax.linen.max_pool``/``avg_pool`` in ways that change results: ``ceil_mode`` output
sizes, ``count_include_pad`` divisors, adaptive average pooling bins, TensorFlow "SAME" padding
(EfficientNet), local response normalisation (ZFNet) and half-pixel bilinear resizing (HED,
CRAFT). Each function here reproduces the ``torch.nn.functional`` counterpart exactly (tested in
``tests/test_models_layers_vs_torch.py``; the resize in ``tests/test_models_hed_craft.py``) and
uses only ``lax.reduce_window``, slicing, gathers and elementwise ops, never a ``dot_general`` or
a convolution, so that no pooling step is mistaken for a linear layer by
``secnn_jax.find_layers``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "pair",
    "pool_output_size",
    "max_pool",
    "avg_pool",
    "adaptive_avg_pool",
    "global_avg_pool",
    "local_response_norm",
    "same_padding",
    "resize_bilinear",
    "conv",
    "dense",
    "batch_norm",
    "flatten_nhwc",
]

IntPair = int | Sequence[int]


def pair(value: IntPair) -> tuple[int, int]:
    """``3 -> (3, 3)``; a two-sequence is returned as a tuple of ints."""
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of a torch pooling window along one axis (``pooling_output_shape``)."""
    numerator = size + 2 * padding - kernel + ((stride - 1) if ceil_mode else 0)
    out = numerator // stride + 1
    # torch drops a last window that would start in the right padding only.
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _window_padding(size: int, kernel: int, stride: int, padding: int,
                    ceil_mode: bool) -> tuple[int, int, int]:
    """(output size, left pad, right pad) so that a VALID reduce_window yields torch's size."""
    out = pool_output_size(size, kernel, stride, padding, ceil_mode)
    right = max((out - 1) * stride + kernel - size - padding, 0)
    return out, padding, right


def max_pool(x: jnp.ndarray, kernel: IntPair, stride: IntPair | None = None,
             padding: IntPair = 0, ceil_mode: bool = False) -> jnp.ndarray:
    """``torch.nn.functional.max_pool2d`` on NHWC (implicit ``-inf`` padding, ceil_mode aware)."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride or kernel), pair(padding)
    _, ph_lo, ph_hi = _window_padding(x.shape[1], kh, sh, ph, ceil_mode)
    _, pw_lo, pw_hi = _window_padding(x.shape[2], kw, sw, pw, ceil_mode)
    return lax.reduce_window(
        x, -jnp.inf, lax.max, (1, kh, kw, 1), (1, sh, sw, 1),
        ((0, 0), (ph_lo, ph_hi), (pw_lo, pw_hi), (0, 0)))


def _avg_divisor(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool,
                 count_include_pad: bool) -> np.ndarray:
    """Per-output-position divisor along one axis, as torch's avg_pool2d kernel computes it."""
    out = pool_output_size(size, kernel, stride, padding, ceil_mode)
    start = np.arange(out) * stride - padding
    # Windows are clipped to the padded extent (never into the extra ceil_mode region) ...
    end = np.minimum(start + kernel, size + padding)
    if count_include_pad:
        return (end - start).astype(np.float32)
    # ... and, without count_include_pad, to the real input.
    return (np.minimum(end, size) - np.maximum(start, 0)).astype(np.float32)


def avg_pool(x: jnp.ndarray, kernel: IntPair, stride: IntPair | None = None,
             padding: IntPair = 0, ceil_mode: bool = False,
             count_include_pad: bool = True) -> jnp.ndarray:
    """``torch.nn.functional.avg_pool2d`` on NHWC, including its divisor rules."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride or kernel), pair(padding)
    _, ph_lo, ph_hi = _window_padding(x.shape[1], kh, sh, ph, ceil_mode)
    _, pw_lo, pw_hi = _window_padding(x.shape[2], kw, sw, pw, ceil_mode)
    total = lax.reduce_window(
        x, 0.0, lax.add, (1, kh, kw, 1), (1, sh, sw, 1),
        ((0, 0), (ph_lo, ph_hi), (pw_lo, pw_hi), (0, 0)))
    div_h = _avg_divisor(x.shape[1], kh, sh, ph, ceil_mode, count_include_pad)
    div_w = _avg_divisor(x.shape[2], kw, sw, pw, ceil_mode, count_include_pad)
    divisor = np.outer(div_h, div_w)[None, :, :, None]
    return total / jnp.asarray(divisor, x.dtype)


def _adaptive_axis(x: jnp.ndarray, axis: int, out: int) -> jnp.ndarray:
    """Adaptive average over one axis: bin i covers [floor(i*n/out), ceil((i+1)*n/out))."""
    size = x.shape[axis]
    if size == out:
        return x
    if size % out == 0:  # equal, disjoint bins: one reshape and a mean
        shape = x.shape[:axis] + (out, size // out) + x.shape[axis + 1:]
        return x.reshape(shape).mean(axis=axis + 1)
    bins = []
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        bins.append(lax.slice_in_dim(x, start, end, axis=axis).mean(axis=axis, keepdims=True))
    return jnp.concatenate(bins, axis=axis)


def adaptive_avg_pool(x: jnp.ndarray, output_size: IntPair) -> jnp.ndarray:
    """``torch.nn.functional.adaptive_avg_pool2d`` on NHWC.

    Bins are rectangles with uniform weights, so the 2-D mean is the mean over rows of the mean
    over columns; small inputs (bins overlapping or replicated) are handled exactly.
    """
    out_h, out_w = pair(output_size)
    return _adaptive_axis(_adaptive_axis(x, 1, out_h), 2, out_w)


def global_avg_pool(x: jnp.ndarray) -> jnp.ndarray:
    """Mean over H and W: NHWC -> NC (``adaptive_avg_pool2d(x, 1)`` then flatten)."""
    return x.mean(axis=(1, 2))


def local_response_norm(x: jnp.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> jnp.ndarray:
    """``torch.nn.functional.local_response_norm`` across channels (last axis of NHWC).

    ``x / (k + alpha * mean(x^2 over the channel window)) ** beta``, with the window zero-padded
    by ``size // 2`` channels before and ``(size - 1) // 2`` after, divided by ``size``.
    """
    squared = x * x
    window = lax.reduce_window(
        squared, 0.0, lax.add, (1, 1, 1, size), (1, 1, 1, 1),
        ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)))
    return x / (k + alpha * window / size) ** beta


def same_padding(size: int, kernel: int, stride: int,
                 dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "SAME" padding along one axis: output ``ceil(size / stride)``, extra at the end.

    This is what ``efficientnet_lite_pytorch``'s ``Conv2dStaticSamePadding`` computes for the
    model's configured image size; computing it from the actual input keeps other sizes valid.
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _bilinear_taps(size: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices ``(lo, hi)`` and weights of ``hi`` for a half-pixel bilinear resize."""
    src = (np.arange(out, dtype=np.float64) + 0.5) * (size / out) - 0.5
    src = np.maximum(src, 0.0)  # torch clamps at 0; TensorFlow's clamped indices agree
    lo = np.minimum(np.floor(src).astype(np.int64), size - 1)
    hi = np.minimum(lo + 1, size - 1)
    return lo, hi, (src - lo).astype(np.float32)


def _resize_axis(x: jnp.ndarray, axis: int, out: int) -> jnp.ndarray:
    size = x.shape[axis]
    if size == out:
        return x
    lo, hi, frac = _bilinear_taps(size, out)
    shape = [1] * x.ndim
    shape[axis] = out
    frac = jnp.asarray(frac.reshape(shape), x.dtype)
    return (jnp.take(x, jnp.asarray(lo), axis=axis) * (1 - frac)
            + jnp.take(x, jnp.asarray(hi), axis=axis) * frac)


def resize_bilinear(x: jnp.ndarray, size: IntPair) -> jnp.ndarray:
    """Bilinear resize of NHWC ``x`` to ``size = (H, W)`` with half-pixel centers.

    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` given an output
    size, and TensorFlow 2's ``tf.image.resize(method="bilinear")`` when upsampling (no
    antialiasing): source coordinate ``(i + 0.5) * in / out - 0.5``, clamped at the borders.
    Written as two gathers and a linear interpolation per axis (no ``dot_general``, so
    ``find_layers`` never mistakes it for a layer; ``jax.image.resize`` uses an einsum).
    """
    out_h, out_w = pair(size)
    return _resize_axis(_resize_axis(x, 1, out_h), 2, out_w)


def conv(features: int, kernel: IntPair, name: str, stride: IntPair = 1,
         padding: IntPair | Sequence[tuple[int, int]] = 0, groups: int = 1,
         use_bias: bool = True, dilation: IntPair = 1) -> nn.Conv:
    """A torch-style ``Conv2d`` as a named ``flax.linen.Conv`` with explicit, symmetric padding.

    ``padding`` is an int or pair (torch's symmetric padding) or ``((top, bottom), (left,
    right))`` for asymmetric padding; ``dilation`` is torch's kernel dilation.
    """
    if isinstance(padding, int) or (
            isinstance(padding, Sequence) and all(isinstance(p, int) for p in padding)):
        ph, pw = pair(padding)
        explicit = ((ph, ph), (pw, pw))
    else:
        explicit = tuple((int(lo), int(hi)) for lo, hi in padding)
    return nn.Conv(features, pair(kernel), strides=pair(stride), padding=explicit,
                   feature_group_count=groups, use_bias=use_bias,
                   kernel_dilation=pair(dilation), name=name)


def dense(features: int, name: str, use_bias: bool = True) -> nn.Dense:
    """A torch-style ``Linear`` as a named ``flax.linen.Dense``."""
    return nn.Dense(features, use_bias=use_bias, name=name)


def batch_norm(name: str, epsilon: float) -> nn.BatchNorm:
    """Inference-mode batch norm (running statistics), torch's ``eps`` passed explicitly.

    ``momentum`` is irrelevant at inference; Flax's default is kept.
    """
    return nn.BatchNorm(use_running_average=True, epsilon=epsilon, name=name)


def flatten_nhwc(x: jnp.ndarray) -> jnp.ndarray:
    """Flatten all but the batch axis in NHWC order.

    torch flattens NCHW; the converters permute the rows of the first dense kernel after a
    flatten (see ``models.conversion``) so both orders give the same product.
    """
    return x.reshape(x.shape[0], -1)
