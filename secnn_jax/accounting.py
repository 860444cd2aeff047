"""Event accounting: exact per-layer, per-frame, per-stream work of each SE-CNN phase.

From a layer's event map alone (no values needed):

* ``counts`` — how many input neurons got each event code.
* ``parallel_macs`` — MACs of the parallel phase: every predicted non-zero input neuron (VH, VM)
  times its exact *fan-out*, the number of (output neuron, kernel tap) pairs it feeds. A neuron
  near a border, under a stride or between dilated taps feeds fewer outputs (the fan-out map is
  separable: windows covering its row times windows covering its column, times its group's
  output channels).
* ``serial_macs`` — MACs of the serial phase: every mispredicted input (ZN, VM) times its fan-out.
* ``untouched_outputs`` — output neurons none of whose inputs (in their receptive field and
  channel group) was mispredicted: they pass the serial phase with no amendment.

Counts and MACs are int64 numpy arrays shaped ``[T, N]`` (``counts``: ``[T, N, 4]``). The
reductions are the timing replayer's (:mod:`secnn_jax.workmaps`), so the trace summaries,
the replayer and this module count the same work.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from secnn_jax import events as ev
from secnn_jax import workmaps
from secnn_jax.errors import SecnnError
from secnn_jax.geometry import LayerGeom
from secnn_jax.layers import Layer

__all__ = ["AccountingError", "LayerAccount", "NetworkAccount", "account", "account_layer",
           "fanout", "total"]


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

    def __repr__(self) -> str:
        return _short_repr(self, f"{self.name!r}")


@dataclasses.dataclass(frozen=True)
class NetworkAccount:
    """The network's total work: :class:`LayerAccount`'s fields summed over its layers.

    Attributes:
      layers: the names of the layers summed, in order.
      counts: ``[T, N, 4]`` input neurons per event code over all layers.
      parallel_macs, serial_macs, untouched_outputs: ``[T, N]`` sums over the layers.
      n_inputs, n_outputs, dense_macs: per stream, summed over the layers.
    """

    layers: tuple[str, ...]
    counts: np.ndarray
    parallel_macs: np.ndarray
    serial_macs: np.ndarray
    untouched_outputs: np.ndarray
    n_inputs: int
    n_outputs: int
    dense_macs: int

    def __repr__(self) -> str:
        return _short_repr(self, f"{len(self.layers)} layers")


class AccountingError(SecnnError, ValueError):
    """Bad input to :func:`account` or :func:`total` (missing events, accounts that do not
    share frames and streams); the message names the layers."""


def _short_repr(acc: LayerAccount | NetworkAccount, what: str) -> str:
    """One line: frames, streams and the stream-summed totals, not the arrays."""
    t, n = acc.counts.shape[:2]
    zz, zn, vh, vm = (int(v) for v in acc.counts.sum((0, 1)))
    return (f"{type(acc).__name__}({what}, T={t}, N={n}, dense_macs/frame={acc.dense_macs * n}, "
            f"parallel_macs={int(acc.parallel_macs.sum())}, "
            f"serial_macs={int(acc.serial_macs.sum())}, ZZ/ZN/VH/VM={zz}/{zn}/{vh}/{vm})")


def _geom(layer: Layer) -> LayerGeom:
    return LayerGeom.from_layer(layer)


@functools.lru_cache(maxsize=1024)
def fanout(layer: Layer) -> np.ndarray:
    """Exact fan-out (MACs fed) of every input neuron of one stream, NHWC: ``in_nhwc[1:]``."""
    _, h, w, c = layer.in_nhwc
    per_position = workmaps.fanout(_geom(layer))  # [H, W], times the group's output channels
    return np.broadcast_to(per_position[:, :, None], (h, w, c)).copy()


def account_layer(layer: Layer, codes: np.ndarray | jax.Array) -> LayerAccount:
    """Exact accounting of one layer's event map ``[T, *in_shape]`` (or ``in_shape``)."""
    codes = np.asarray(codes)
    if codes.ndim == len(layer.in_shape):
        codes = codes[None]
    nhwc = np.asarray(layer.to_nhwc(codes))  # [T, N, H, W, C]
    t, n = nhwc.shape[:2]
    geom = _geom(layer)
    parallel, serial = workmaps.phase_macs(nhwc, geom)
    counts = ev.count(nhwc.reshape(t, n, -1), axis=-1)
    # An output is untouched when its receptive field (within its group) has no misprediction.
    misses = workmaps.position_counts(nhwc, geom, "mispredicted")  # [T, N*Ho*Wo, G]
    clean = (misses.reshape(t, n, -1) == 0).sum(-1, dtype=np.int64)
    return LayerAccount(
        name=layer.name,
        counts=counts.astype(np.int64),
        parallel_macs=parallel.astype(np.int64),
        serial_macs=serial.astype(np.int64),
        untouched_outputs=clean * geom.cout_g,
        n_inputs=layer.n_inputs,
        n_outputs=int(np.prod(layer.out_nhwc[1:])),
        dense_macs=int(fanout(layer).sum()),
    )


def account(layers: Sequence[Layer], events: Mapping[str, np.ndarray | jax.Array]
            ) -> dict[str, LayerAccount]:
    """:func:`account_layer` for every layer; ``events[name]`` is ``[T, *in_shape]``."""
    missing = [layer.name for layer in layers if layer.name not in events]
    if missing:
        raise AccountingError(f"account: no events for layers {missing[:5]}")
    return {layer.name: account_layer(layer, events[layer.name]) for layer in layers}


def total(accounts: Mapping[str, LayerAccount] | Sequence[LayerAccount]) -> NetworkAccount:
    """The network total of :func:`account`'s per-layer accounts (a mapping or a sequence):
    every count and MAC summed over the layers, per frame and stream.

    Raises:
      AccountingError: no accounts, or accounts over different frames or streams.
    """
    accs = list(accounts.values()) if isinstance(accounts, Mapping) else list(accounts)
    if not accs:
        raise AccountingError("total: no layer accounts")
    shapes = {a.counts.shape[:2] for a in accs}
    if len(shapes) > 1:
        raise AccountingError(f"total: the layers' accounts cover different [T, N]: "
                              f"{sorted(shapes)}")
    return NetworkAccount(
        layers=tuple(a.name for a in accs),
        counts=sum(a.counts for a in accs),
        parallel_macs=sum(a.parallel_macs for a in accs),
        serial_macs=sum(a.serial_macs for a in accs),
        untouched_outputs=sum(a.untouched_outputs for a in accs),
        n_inputs=sum(a.n_inputs for a in accs),
        n_outputs=sum(a.n_outputs for a in accs),
        dense_macs=sum(a.dense_macs for a in accs),
    )
