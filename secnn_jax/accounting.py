"""Event accounting: exact per-layer, per-frame, per-stream work of each SE-CNN phase.

From a layer's event map alone (no values needed):

* ``counts`` — how many input neurons got each event code.
* ``parallel_macs`` — MACs of the parallel phase: every predicted non-zero input neuron (VH, VM)
  times its exact *fan-out*, the number of (output neuron, kernel tap) pairs it feeds. A neuron
  near a border, under a stride or between dilated taps feeds fewer outputs; the fan-out map is
  the transposed convolution of a ones output with a ones kernel, computed exactly as the
  gradient of ``sum(conv(x, ones))`` with respect to ``x``.
* ``serial_macs`` — MACs of the serial phase: every mispredicted input (ZN, VM) times its fan-out.
* ``untouched_outputs`` — output neurons none of whose inputs (in their receptive field and
  channel group) was mispredicted: they pass the serial phase with no amendment.

Counts and MACs are int64 numpy arrays shaped ``[T, N]`` (``counts``: ``[T, N, 4]``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from secnn_jax import events as ev
from secnn_jax import kernels
from secnn_jax.layers import Layer


@dataclasses.dataclass(frozen=True)
class LayerAccount:
    """Exact work of one layer over a stream (arrays over frames ``T`` and streams ``N``).

    Attributes:
      name: the layer's name.
      counts: ``[T, N, 4]`` input neurons per event code (ZZ, ZN, VH, VM).
      parallel_macs: ``[T, N]`` MACs of the parallel phase.
      serial_macs: ``[T, N]`` MACs of the serial (amendment) phase.
      untouched_outputs: ``[T, N]`` outputs with no mispredicted input.
      n_inputs: input neurons per stream.
      n_outputs: output neurons per stream.
      dense_macs: MACs of the plain layer per stream (every input times its fan-out).
    """

    name: str
    counts: np.ndarray
    parallel_macs: np.ndarray
    serial_macs: np.ndarray
    untouched_outputs: np.ndarray
    n_inputs: int
    n_outputs: int
    dense_macs: int


def _nhwc_conv_params(layer: Layer) -> tuple[tuple[int, int], tuple[int, int],
                                             tuple[tuple[int, int], ...], tuple[int, int]]:
    """Kernel size, strides, padding, dilation of a conv normalised to two spatial dims."""
    rhs_spec = layer.primitive_params["dimension_numbers"].rhs_spec
    ksize = tuple(layer.kernel_shape[d] for d in rhs_spec[2:])
    strides, padding, dilation = layer.strides, layer.padding, layer.dilation
    if len(ksize) == 1:  # 1-D conv: a height-1 image
        ksize, strides = (1, ksize[0]), (1, strides[0])
        padding, dilation = ((0, 0), padding[0]), (1, dilation[0])
    return ksize, strides, padding, dilation


def _spatial_conv_ones(layer: Layer, x: jax.Array) -> jax.Array:
    """Per-group box filter of ``x`` [B, H, W, G] with the layer's window: [B, Ho, Wo, G]."""
    ksize, strides, padding, dilation = _nhwc_conv_params(layer)
    g = x.shape[-1]
    kernel = jnp.ones((*ksize, 1, g), x.dtype)
    if g > 1 and ksize[0] * ksize[1] <= kernels.MAX_TAPS:
        return kernels.depthwise_conv_nhwc(x, kernel, strides, padding, dilation)
    return lax.conv_general_dilated(
        x, kernel, strides, padding, rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g,
    )


@functools.lru_cache(maxsize=1024)
def fanout(layer: Layer) -> np.ndarray:
    """Exact fan-out (MACs fed) of every input neuron of one stream, NHWC: ``in_nhwc[1:]``."""
    _, h, w, c = layer.in_nhwc
    cout = layer.out_nhwc[-1]
    if layer.kind == "dense":
        return np.full((h, w, c), cout, np.int64)
    zeros = jnp.zeros((1, h, w, 1), jnp.float32)
    _, vjp = jax.vjp(lambda x: _spatial_conv_ones(layer, x), zeros)
    _, ho, wo, _ = layer.out_nhwc
    (taps,) = vjp(jnp.ones((1, ho, wo, 1), jnp.float32))
    taps = np.rint(np.asarray(taps[0, :, :, 0])).astype(np.int64)
    per_channel = cout // layer.groups  # each input channel feeds its group's outputs
    return np.broadcast_to(taps[:, :, None] * per_channel, (h, w, c)).copy()


@functools.partial(jax.jit, static_argnums=0)
def _untouched(layer: Layer, miss: jax.Array) -> jax.Array:
    """Outputs with no mispredicted input, per stream: ``miss`` is NHWC [B, H, W, C]."""
    b, h, w, c = miss.shape
    cout = layer.out_nhwc[-1]
    if layer.kind == "dense":
        clean_rows = (miss.reshape(b, h * w, c).sum(-1) == 0).sum(-1)
        return clean_rows * cout
    g = layer.groups
    per_group = miss.reshape(b, h, w, g, c // g).sum(-1).astype(jnp.float32)
    hits = _spatial_conv_ones(layer, per_group)
    return (hits == 0).sum((1, 2, 3)) * (cout // g)


def account_layer(layer: Layer, codes: np.ndarray | jax.Array) -> LayerAccount:
    """Exact accounting of one layer's event map ``[T, *in_shape]`` (or ``in_shape``)."""
    codes = np.asarray(codes)
    if codes.ndim == len(layer.in_shape):
        codes = codes[None]
    nhwc = np.asarray(layer.to_nhwc(codes))  # [T, N, H, W, C]
    t, n = nhwc.shape[:2]
    flat = nhwc.reshape(t * n, -1)
    fan = fanout(layer).reshape(-1).astype(np.float64)
    # float64 matmuls are exact for integer sums below 2**53 and use BLAS.
    pred = ev.predicted_nonzero(flat).astype(np.float64) @ fan
    miss_flat = ev.mispredicted(flat)
    serial = miss_flat.astype(np.float64) @ fan
    counts = np.stack([(flat == c).sum(-1) for c in range(4)], -1)
    miss_map = jnp.asarray(miss_flat.reshape(t * n, *nhwc.shape[2:]), jnp.uint8)
    untouched = np.asarray(_untouched(layer, miss_map)).astype(np.int64)
    n_out = int(np.prod(layer.out_nhwc[1:]))
    return LayerAccount(
        name=layer.name,
        counts=counts.reshape(t, n, 4).astype(np.int64),
        parallel_macs=np.rint(pred).astype(np.int64).reshape(t, n),
        serial_macs=np.rint(serial).astype(np.int64).reshape(t, n),
        untouched_outputs=untouched.reshape(t, n),
        n_inputs=layer.n_inputs,
        n_outputs=n_out,
        dense_macs=int(fanout(layer).sum()),
    )


def account(layers: Sequence[Layer], events: Mapping[str, np.ndarray | jax.Array]
            ) -> dict[str, LayerAccount]:
    """:func:`account_layer` for every layer; ``events[name]`` is ``[T, *in_shape]``."""
    missing = [layer.name for layer in layers if layer.name not in events]
    if missing:
        raise ValueError(f"account: no events for layers {missing[:5]}")
    return {layer.name: account_layer(layer, events[layer.name]) for layer in layers}
