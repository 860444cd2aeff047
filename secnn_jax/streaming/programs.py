"""The compiled stream program of a model, a predictor and a frame shape, cached across calls.

:func:`stream_program` is :func:`secnn_jax.streaming.scan.scan_program` of a
:func:`secnn_jax.pipeline` step, with the model's layers, as a :class:`StreamProgram`; it is
what :func:`secnn_jax.run_stream` and :func:`secnn_jax.iter_stream` run, and the studies' cell
engine (``experiments.cells``) with reducers such as
:class:`~secnn_jax.streaming.scan.EventCounts`.

**Compiled programs are cached across calls.** The layers found and the jitted scans built are
kept in two least-recently-used caches of :data:`PROGRAM_CACHE_SIZE` entries each, keyed on
what determines the program: the model function (by identity: pass the same ``apply_fn``
object), the params' tree structure, shapes and dtypes (not their values), one frame's shape and
dtype, the layers, the predictor's :func:`secnn_jax.predictors.config_key` and the program's
reducers and whether it keeps the events. ``tau`` is an argument of the compiled program, so a
new tau value reuses it; jit itself compiles once more for a new stream length ``T``. Calling
``run_stream(apply_fn, params, clip, predictors.secnn())`` in a loop over clips therefore traces
and compiles once. An ``apply_fn`` that cannot be hashed is never cached.
:func:`program_cache_info` reports hits and misses, :func:`clear_program_cache` empties both
caches (e.g. to free the compiled programs' memory).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from secnn_jax.errors import SecnnError
from secnn_jax.layers import Layer, find_layers
from secnn_jax.phases import Tau, tau_map
from secnn_jax.predictors import PredictorLike, config_key
from secnn_jax.streaming.frames import FramesError, no_stream_axis
from secnn_jax.streaming.scan import Reducer, ScanOutput, scan_program
from secnn_jax.streaming.step import check_predictor, pipeline

#: Entries kept by each program cache (layers found; jitted scans), least recently used dropped.
PROGRAM_CACHE_SIZE = 32


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    """Counters of one program cache (see :func:`program_cache_info`).

    Attributes:
      hits: look-ups answered from the cache.
      misses: look-ups that built a new entry (including uncacheable ones).
      uncacheable: look-ups whose key could not be formed (e.g. an unhashable ``apply_fn``).
      size: entries held now.
      maxsize: most entries held.
    """

    hits: int
    misses: int
    uncacheable: int
    size: int
    maxsize: int


class _LRU:
    """A thread-safe least-recently-used map from keys to values built on demand."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.uncacheable = 0

    def get(self, key: Hashable | None, build: Callable[[], Any]) -> Any:
        """The value of ``key``, built (outside the lock: tracing is slow) on a miss."""
        if key is None:
            with self._lock:
                self.misses += 1
                self.uncacheable += 1
            return build()
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
        value = build()
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value

    def info(self) -> CacheInfo:
        """The current counters."""
        with self._lock:
            return CacheInfo(self.hits, self.misses, self.uncacheable, len(self._data),
                             self.maxsize)

    def clear(self) -> None:
        """Drops every entry and zeroes the counters."""
        with self._lock:
            self._data.clear()
            self.hits = self.misses = self.uncacheable = 0


_LAYERS = _LRU(PROGRAM_CACHE_SIZE)
_PROGRAMS = _LRU(PROGRAM_CACHE_SIZE)


def program_cache_info() -> dict[str, CacheInfo]:
    """Counters of the two caches: ``{"layers": ..., "programs": ...}``."""
    return {"layers": _LAYERS.info(), "programs": _PROGRAMS.info()}


def clear_program_cache() -> None:
    """Empties the layer and program caches (the next call traces and compiles again)."""
    _LAYERS.clear()
    _PROGRAMS.clear()


def _model_key(apply_fn: Callable, params: Any, x: jax.ShapeDtypeStruct) -> Hashable | None:
    """What fixes the traced model: ``apply_fn`` itself, params structure/shapes/dtypes, x."""
    try:
        leaves, treedef = jax.tree_util.tree_flatten(params)
        avals = tuple((tuple(np.shape(a)), str(jnp.result_type(a)),
                       bool(getattr(a, "weak_type", False))) for a in leaves)
        key = (apply_fn, treedef, avals, (tuple(x.shape), str(x.dtype)))
        hash(key)
    except TypeError:  # an unhashable apply_fn or tree node; a leaf without a dtype
        logging.log_first_n(logging.INFO, "run_stream: apply_fn or params cannot key the "
                            "program cache; tracing anew on every call", 1)
        return None
    return key


def _find_stream_layers(apply_fn: Callable, params: Any, x: jax.ShapeDtypeStruct,
                        frames_shape: tuple[int, ...]) -> tuple[Layer, ...]:
    """``find_layers`` for one frame ``x``, refusing frames that lack the stream axis ``N``."""
    try:
        layers = find_layers(apply_fn, params, x)
    except SecnnError:
        raise
    except Exception as err:
        # Evidence, not a guess: the model fails on one frame but runs once it has a leading
        # batch axis of 1, so the frames lack their N axis. Otherwise it is the model's error.
        try:
            jax.eval_shape(apply_fn, params, jax.ShapeDtypeStruct((1, *x.shape), x.dtype))
        except Exception:
            raise err from None
        raise FramesError(no_stream_axis(frames_shape)) from err
    first = layers[0]
    batch = first.in_shape[first.lhs_spec[0]]
    # Flax adds a batch axis to an unbatched input: the first layer then sees one more axis
    # than a frame has, and a batch that is not N.
    if len(first.in_shape) > len(x.shape) and batch != x.shape[0]:
        raise FramesError(no_stream_axis(frames_shape))
    return layers


@dataclasses.dataclass(frozen=True)
class StreamProgram:
    """A compiled SE-CNN stream program (see :func:`stream_program`).

    Attributes:
      layers: the model's layers for one frame's shape.
      scan: jitted ``scan(params, state, frames [T, ...], valid bool [T], taus) ->``
        :class:`~secnn_jax.streaming.scan.ScanOutput` (:func:`scan_program` of a
        :func:`secnn_jax.pipeline` step, tau passed): the state, the logits, the program's
        reducers and, if it keeps them, the events.
    """

    layers: tuple[Layer, ...]
    scan: Callable[..., ScanOutput]

    def run(self, params: Any, state: Any, frames: jax.Array, valid: jax.Array, taus: Any
            ) -> tuple[Any, Any, dict[str, jax.Array]]:
        """``(state, logits [T, ...], events {name: uint8 [T, *in_shape]})`` of :attr:`scan`.

        Frames with ``valid`` false leave the state untouched; ``taus`` comes from
        :meth:`taus`.
        """
        out = self.scan(params, state, frames, valid, taus)
        return out.state, out.logits, out.events

    def taus(self, tau: Tau) -> dict[str, float]:
        """``tau`` (a float or ``{name: float}``) as the program's per-layer argument.

        Python floats: jit traces them as weakly typed scalars, so every value shares one
        compiled program and compares in the layer's own dtype, exactly like a fixed ``tau``.
        """
        return tau_map(self.layers, tau)


def program_for(apply_fn: Callable, params: Any, x: jax.ShapeDtypeStruct,
                predictor: PredictorLike, *, layers: tuple[Layer, ...] | None,
                frames_shape: tuple[int, ...], reducers: Mapping[str, Reducer] | None = None,
                keep_events: bool = True) -> StreamProgram:
    """The cached :class:`StreamProgram` for one frame ``x`` (:func:`stream_program`'s look-up).

    ``frames_shape`` is the whole stream's shape, for the message when the frames lack their
    stream axis.
    """
    check_predictor(predictor)
    model = _model_key(apply_fn, params, x)
    if layers is None:
        layers = _LAYERS.get(model, lambda: _find_stream_layers(apply_fn, params, x,
                                                                frames_shape))
    layers = tuple(layers)
    reduce = tuple(sorted((reducers or {}).items()))
    key: Hashable | None = None
    if model is not None:
        key = (model, layers, config_key(predictor), reduce, bool(keep_events))
        try:
            hash(key)
        except TypeError:  # a reducer that cannot be hashed: never cached
            key = None

    def build() -> StreamProgram:
        logging.debug("run_stream: compiling a stream program for %d layers", len(layers))
        return StreamProgram(layers, scan_program(pipeline(apply_fn, layers, predictor),
                                                  reducers=dict(reduce),
                                                  keep_events=keep_events))

    return _PROGRAMS.get(key, build)


def stream_program(apply_fn: Callable, params: Any, frame: Any, predictor: PredictorLike, *,
                   layers: tuple[Layer, ...] | None = None,
                   reducers: Mapping[str, Reducer] | None = None,
                   keep_events: bool = True) -> StreamProgram:
    """The cached compiled stream program of ``apply_fn`` for frames shaped like ``frame``.

    What :func:`secnn_jax.run_stream` and :func:`secnn_jax.iter_stream` run: reuse it for
    helpers of your own that scan frames (see the module docstring for the cache and its key;
    ``reducers`` and ``keep_events`` are part of the key).

    Args:
      apply_fn: the model ``(params, x) -> logits``.
      params: its parameters (only their structure, shapes and dtypes matter here).
      frame: one frame batch ``[N, ...]`` (an array or ``jax.ShapeDtypeStruct``).
      predictor: the predictor whose ``predict``/``update`` the program runs.
      layers: the model's layers for ``frame`` (found, and cached, otherwise).
      reducers: ``{name: f(logits, events) -> pytree}`` run per frame inside the compiled scan
        (e.g. ``{"counts": EventCounts(layers)}``), returned in ``program.scan(...).reduced``;
        hashable reducers (module-level functions, :class:`EventCounts`) keep the program
        cached.
      keep_events: ``False``: the program returns no event maps (``events`` is ``{}``).
    """
    x = jax.ShapeDtypeStruct(tuple(np.shape(frame)), jnp.result_type(frame))
    return program_for(apply_fn, params, x, predictor, layers=layers,
                       frames_shape=(1, *x.shape), reducers=reducers, keep_events=keep_events)
