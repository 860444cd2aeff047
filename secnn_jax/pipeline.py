"""Composition: one SE-CNN step (predict, parallel-compute, serial-amend, update) and streams.

* :func:`pipeline` — ``step(params, state, x) -> (state, logits, events)``, pure and jit-able.
* :func:`run_stream` — every frame of ``[T, N, H, W, C]`` through ``step`` with ``lax.scan``.
* :func:`iter_stream` — the same over a stream of any length in fixed-size chunks, so memory
  stays bounded: frames may come from a generator (a video decoder), outputs leave per chunk.
* :func:`stream_program` — the compiled scan behind both, for helpers of your own; with
  *reducers* (:class:`EventCounts`, or any ``f(logits, events) -> pytree``) computed per frame
  inside the compiled scan, so a caller that needs only small summaries never holds the event
  maps (the studies' cell engine, ``experiments.cells``, runs this program).
* :func:`scan_program` — the uncached scan of any ``step(params, state, x, tau)``;
  :func:`pad_chunk` — the padding of a short last chunk that every chunked caller uses.

The batch axis ``N`` holds independent streams; predictor state is per stream (see
:mod:`secnn_jax.predictors`).

**Compiled programs are cached across calls.** :func:`run_stream`, :func:`iter_stream` and
:func:`stream_program` keep the layers they found and the jitted scan they built in two
least-recently-used caches of :data:`PROGRAM_CACHE_SIZE` entries each, keyed on what determines
the program: the model function (by identity: pass the same ``apply_fn`` object), the params'
tree structure, shapes and dtypes (not their values), one frame's shape and dtype, the layers,
the predictor's :func:`secnn_jax.predictors.config_key` and the program's reducers and whether it
keeps the events (:func:`stream_program`). ``tau`` is an argument of the
compiled program, so a new tau value reuses it; jit itself compiles once more for a new stream
length ``T``. Calling ``run_stream(apply_fn, params, clip, predictors.secnn())`` in a loop over
clips therefore traces and compiles once. An ``apply_fn`` that cannot be hashed is never
cached. :func:`program_cache_info` reports hits and misses, :func:`clear_program_cache` empties
both caches (e.g. to free the compiled programs' memory).

Bad frames (wrong rank, no frames, no streams, NaN, a missing stream axis) raise
:class:`FramesError`, a :class:`secnn_jax.SecnnError` and ``ValueError``, naming the problem and
the shape expected.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from secnn_jax import events as ev
from secnn_jax.errors import SecnnError
from secnn_jax.layers import Layer, find_layers
from secnn_jax.phases import Tau, parallel_compute, serial_amend_dynamic, tau_map
from secnn_jax.predictions import PredictorTypeError, check_predictions
from secnn_jax.predictors import (
    PredictorLike,
    builtin_name,
    config_key,
    update_needs_tau,
)

Step = Callable[[Any, Any, jax.Array], tuple[Any, Any, dict[str, jax.Array]]]

#: Entries kept by each program cache (layers found; jitted scans), least recently used dropped.
PROGRAM_CACHE_SIZE = 32

_FRAMES_SHAPE = ("[T, N, H, W, C] (T frames of N streams; [T, N, L, C] or [T, N, F] for 1-D "
                 "or dense models)")


class FramesError(SecnnError, ValueError):
    """Frames a stream cannot run on: wrong rank, no frames or streams, NaN/Inf, bad chunking."""


def _check_predictor(predictor: Any) -> None:
    missing = [a for a in ("init", "predict", "update") if not callable(getattr(predictor, a,
                                                                                None))]
    if missing:
        raise PredictorTypeError(
            f"predictor {type(predictor).__name__} lacks callable {missing}; a predictor needs "
            "init(layers), predict(state) and update(state, inputs)"
        )


def pipeline_dynamic(apply_fn: Callable, layers: tuple[Layer, ...], predictor: PredictorLike
                     ) -> Callable[..., tuple[Any, Any, dict[str, jax.Array]]]:
    """:func:`pipeline` with ``tau`` an argument: ``step(params, state, x, tau)``.

    The step's ``events`` is an :class:`secnn_jax.events.EventMaps`: the codes per layer, each
    layer's fires map beside them and the built-in predictor's name (``None`` for others).

    ``tau`` is ``{layer_name: scalar}`` (every layer) and may be traced, so a sweep over
    thresholds compiles once. A predictor with ``update_needs_tau`` gets this same ``tau`` as
    ``update(state, inputs, tau)``'s third argument (see :mod:`secnn_jax.predictors`).
    """
    _check_predictor(predictor)
    needs_tau = update_needs_tau(predictor)
    parallel = parallel_compute(apply_fn, layers)
    serial = serial_amend_dynamic(apply_fn, layers)
    # Only predict and update run inside the step: holding them, not the predictor, keeps a
    # cached program from pinning what init alone needs (the mean predictor's statistics).
    predict, update = predictor.predict, predictor.update
    name = builtin_name(predictor)

    def step(params: Any, state: Any, x: jax.Array, tau: Any
             ) -> tuple[Any, Any, ev.EventMaps]:
        predictions = predict(state)
        check_predictions(layers, predictions)
        y_pred = parallel(params, predictions)
        logits, inputs, events = serial(params, x, predictions, y_pred, tau)
        # The very tau object the serial phase compared against, so a predictor that rebuilds
        # its mask (accumulated) gets the propagated set bit for bit.
        new_state = update(state, inputs, tau) if needs_tau else update(state, inputs)
        return new_state, logits, ev.EventMaps(events.codes, events.fires, name)

    return step


def pipeline(apply_fn: Callable, layers: tuple[Layer, ...], predictor: PredictorLike,
             tau: Tau = 0.0) -> Step:
    """Composes one SE-CNN step: ``step(params, state, x) -> (state, logits, events)``.

    predict -> parallel_compute -> serial_amend -> update. Pure: the predictor state goes in
    and comes out; safe under ``jax.jit`` and ``jax.lax.scan``. ``tau`` is fixed into the step
    (use :func:`pipeline_dynamic` to trace it).

    Args:
      apply_fn: the unmodified model ``(params, x) -> logits``.
      layers: ``find_layers(apply_fn, params, x)`` for the input shape used.
      predictor: a :class:`secnn_jax.predictors.Predictor` or any object with the same methods.
      tau: misprediction tolerance, a float or ``{layer_name: float}``.
    """
    taus = tau_map(layers, tau)
    dynamic = pipeline_dynamic(apply_fn, layers, predictor)

    def step(params: Any, state: Any, x: jax.Array) -> tuple[Any, Any, dict[str, jax.Array]]:
        return dynamic(params, state, x, taus)

    return step


#: A reducer: ``f(logits, events) -> pytree`` of one frame's outputs, run inside the scan.
Reducer = Callable[[jax.Array, dict[str, jax.Array]], Any]


class ScanOutput(NamedTuple):
    """What a program of :func:`scan_program` returns for a chunk of ``T`` frames.

    Attributes:
      state: predictor state after the last frame whose ``valid`` is true.
      logits: ``[T, ...]`` the SE-CNN output per frame.
      reduced: ``{name: pytree stacked over T}``, one entry per reducer (``{}`` without).
      events: :class:`secnn_jax.events.EventMaps` ``{layer_name: uint8 [T, *in_shape]}`` (with
        the fires maps), or ``{}`` when the events are not kept.
    """

    state: Any
    logits: jax.Array
    reduced: dict[str, Any]
    events: ev.EventMaps | dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class EventCounts:
    """A reducer: each layer's input neurons per event code in one frame, over all streams.

    ``EventCounts(layers)(logits, events)`` is int32 ``[L, 4]``: per layer of ``layers`` (in
    that order) the neurons coded ZZ, ZN, VH, VM (:mod:`secnn_jax.events`). Hashable (by its
    layers), so programs built with equal reducers share the program cache.
    """

    layers: tuple[Layer, ...]

    def __call__(self, logits: jax.Array, events: dict[str, jax.Array]) -> jax.Array:
        del logits
        return jnp.stack([
            jnp.stack([jnp.sum(events[lyr.name] == c, dtype=jnp.int32) for c in range(4)])
            for lyr in self.layers])


def scan_program(step: Callable[..., tuple[Any, Any, dict[str, jax.Array]]], *,
                 reducers: Mapping[str, Reducer] | None = None,
                 keep_events: bool = True) -> Callable[..., ScanOutput]:
    """Jitted ``run(params, state, frames, valid, tau) -> ScanOutput`` scanning ``step``.

    ``step(params, state, x, tau) -> (state, logits, events)`` (:func:`pipeline_dynamic`) runs
    on every frame of ``frames [T, ...]``; ``tau`` is passed through unchanged (traced: one
    compile serves every value). Padded frames (``valid`` false) leave the state untouched, so a
    short last chunk padded by :func:`pad_chunk` reuses the full-chunk program.

    Args:
      step: the per-frame step.
      reducers: ``{name: f(logits, events) -> pytree}`` computed per frame inside the compiled
        scan (after the state update), stacked over frames in :attr:`ScanOutput.reduced`.
      keep_events: ``False``: the event maps are not returned (``events`` is ``{}``), so a
        program that needs only reducers never materialises ``[T, *in_shape]`` per layer.

    This one scan is behind :func:`run_stream`, :func:`iter_stream`, :func:`stream_program`
    and :func:`scan_frames`.
    """
    reduce = dict(sorted((reducers or {}).items()))

    def body(carry: tuple[Any, Any, Any], inp: tuple[jax.Array, jax.Array]) -> Any:
        params, tau, state = carry
        x, ok = inp
        new_state, logits, events = step(params, state, x, tau)
        state = jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new_state, state)
        reduced = {name: f(logits, events) for name, f in reduce.items()}
        kept = events if keep_events else {}
        return (params, tau, state), (logits, reduced, kept)

    @jax.jit
    def run(params: Any, state: Any, frames: jax.Array, valid: jax.Array, tau: Any
            ) -> ScanOutput:
        (_, _, state), (logits, reduced, events) = jax.lax.scan(
            body, (params, tau, state), (frames, valid))
        return ScanOutput(state, logits, reduced, events)

    return run


def pad_chunk(chunk: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(frames [size, ...], valid bool [size])``: a chunk of ``t <= size`` frames padded.

    A short chunk is padded with copies of its last frame (``valid`` false there; the scan
    leaves the state alone on them and the caller drops their outputs); a full chunk is
    returned as it is.

    Raises:
      FramesError: an empty chunk or one longer than ``size``.
    """
    t = int(chunk.shape[0])
    if not 1 <= t <= size:
        raise FramesError(f"a chunk of {t} frames cannot be padded to {size} frames")
    valid = np.arange(size) < t
    if t < size:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - t, axis=0)])
    return chunk, valid


def scan_frames(step: Step) -> Callable[..., tuple[Any, Any, dict[str, jax.Array]]]:
    """Jitted ``f(params, state, frames, valid) -> (state, logits, events)`` over ``frames[T]``.

    ``valid`` (bool ``[T]``) marks real frames; padded frames leave the state untouched, so a
    short final chunk reuses the compiled full-chunk program.
    """
    run = scan_program(lambda params, state, x, _tau: step(params, state, x))

    @jax.jit
    def scanned(params: Any, state: Any, frames: jax.Array, valid: jax.Array) -> Any:
        out = run(params, state, frames, valid, None)
        return out.state, out.logits, out.events

    return scanned


def check_frames(frames: Any, start: int = 0, what: str = "frames") -> np.ndarray | jax.Array:
    """Validates a frame batch ``[T, N, ...]``: numeric (integer or any float, bfloat16 and
    float16 included), 3- to 5-D, non-empty, finite.

    Returns the frames: a ``jax.Array`` stays on its device (the finiteness check runs there),
    anything else becomes a numpy array.

    Raises:
      FramesError: naming the problem and the shape expected, or the first frame with NaN or
        Inf (counting from ``start``).
    """
    if isinstance(frames, jax.Array):
        arr: np.ndarray | jax.Array = frames
    else:
        try:
            arr = np.asarray(frames)
        except ValueError as err:  # a ragged list of frames
            raise FramesError(f"{what}: frames of different shapes cannot be stacked into "
                              f"{_FRAMES_SHAPE} ({err})") from err
    dtype = np.dtype(arr.dtype)
    shape = tuple(arr.shape)
    floating = bool(jnp.issubdtype(dtype, jnp.floating))  # bfloat16's numpy kind is "V"
    if not floating and dtype.kind not in "iu":
        raise FramesError(f"{what}: expected numeric frames, got dtype {dtype}")
    if not 3 <= len(shape) <= 5:
        raise FramesError(f"{what}: expected {_FRAMES_SHAPE}, got a {len(shape)}-D array of "
                          f"shape {shape}")
    if shape[0] == 0:
        raise FramesError(f"{what}: no frames (T = 0) in shape {shape}; expected "
                          f"{_FRAMES_SHAPE} with T >= 1")
    if shape[1] == 0:
        raise FramesError(f"{what}: no streams (N = 0) in shape {shape}; expected "
                          f"{_FRAMES_SHAPE} with N >= 1")
    if 0 in shape[2:]:
        raise FramesError(f"{what}: shape {shape} has an empty axis; expected {_FRAMES_SHAPE}")
    if floating:
        xp = jnp if isinstance(arr, jax.Array) else np
        bad = np.asarray(~xp.isfinite(arr.reshape(shape[0], -1)).all(axis=1))
        if bad.any():
            i = int(np.argmax(bad))
            raise FramesError(f"{what}: frame {start + i} contains NaN or Inf")
    return arr


# ---------------------------------------------------------------------------------------------
# Program caches


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


def _struct(x: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(np.shape(x)), jnp.result_type(x))


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


def _no_stream_axis(frames_shape: tuple[int, ...]) -> str:
    return (f"frames of shape {frames_shape} have no stream axis N: the model reads each frame "
            f"{frames_shape[1:]} as one unbatched input; expected {_FRAMES_SHAPE} (for one "
            "stream use frames[:, None])")


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
        except Exception:  # noqa: BLE001  (the original error is the one to report)
            raise err from None
        raise FramesError(_no_stream_axis(frames_shape)) from err
    first = layers[0]
    batch = first.in_shape[first.lhs_spec[0]]
    # Flax adds a batch axis to an unbatched input: the first layer then sees one more axis
    # than a frame has, and a batch that is not N.
    if len(first.in_shape) > len(x.shape) and batch != x.shape[0]:
        raise FramesError(_no_stream_axis(frames_shape))
    return layers


@dataclasses.dataclass(frozen=True)
class StreamProgram:
    """A compiled SE-CNN stream program (see :func:`stream_program`).

    Attributes:
      layers: the model's layers for one frame's shape.
      scan: jitted ``scan(params, state, frames [T, ...], valid bool [T], taus) ->``
        :class:`ScanOutput` (:func:`scan_program` of :func:`pipeline_dynamic`): the state, the
        logits, the program's reducers and, if it keeps them, the events.
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


def _stream_program(apply_fn: Callable, params: Any, x: jax.ShapeDtypeStruct,
                    predictor: PredictorLike, layers: tuple[Layer, ...] | None,
                    frames_shape: tuple[int, ...],
                    reducers: Mapping[str, Reducer] | None = None,
                    keep_events: bool = True) -> StreamProgram:
    _check_predictor(predictor)
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
        return StreamProgram(layers, scan_program(pipeline_dynamic(apply_fn, layers, predictor),
                                                  reducers=dict(reduce),
                                                  keep_events=keep_events))

    return _PROGRAMS.get(key, build)


def stream_program(apply_fn: Callable, params: Any, frame: Any, predictor: PredictorLike, *,
                   layers: tuple[Layer, ...] | None = None,
                   reducers: Mapping[str, Reducer] | None = None,
                   keep_events: bool = True) -> StreamProgram:
    """The cached compiled stream program of ``apply_fn`` for frames shaped like ``frame``.

    What :func:`run_stream` and :func:`iter_stream` run: reuse it for helpers of your own that
    scan frames (see the module docstring for the cache and its key; ``reducers`` and
    ``keep_events`` are part of the key).

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
    x = _struct(frame)
    return _stream_program(apply_fn, params, x, predictor, layers, (1, *x.shape),
                           reducers, keep_events)


def run_stream(apply_fn: Callable, params: Any, frames: Any, predictor: PredictorLike,
               tau: Tau = 0.0) -> tuple[jax.Array, ev.EventMaps]:
    """Runs every frame of ``frames`` ``[T, N, H, W, C]`` through :func:`pipeline`, scanned.

    The predictor starts from ``predictor.init(layers)``. Returns ``(logits [T, N, classes],
    events {name: uint8 [T, *in_shape]})``, ``events`` an :class:`secnn_jax.events.EventMaps`
    (each layer's fires map in ``events.fires``, the predictor's name in
    ``events.predictor``). For long streams use :func:`iter_stream`.

    The compiled program is cached across calls (module docstring): calling again with the same
    ``apply_fn`` object, params of the same structure, frames of the same shape and an equal
    predictor configuration neither traces nor compiles, whatever ``tau``'s value.

    Raises:
      FramesError: frames not ``[T, N, ...]`` (3- to 5-D), ``T = 0`` or ``N = 0``, NaN/Inf in a
        frame, or frames without the stream axis ``N``.
      TauError: ``tau`` not a finite number >= 0 (an array, NaN, negative) or naming unknown
        layers.
    """
    frames = check_frames(frames)
    x = jax.ShapeDtypeStruct(tuple(frames.shape[1:]), frames.dtype)
    program = _stream_program(apply_fn, params, x, predictor, None, tuple(frames.shape))
    taus = program.taus(tau)
    state = predictor.init(program.layers)
    _, logits, events = program.run(params, state, jnp.asarray(frames),
                                    jnp.ones(frames.shape[0], bool), taus)
    return logits, events


@dataclasses.dataclass(frozen=True)
class StreamChunk:
    """Outputs of one chunk of :func:`iter_stream`.

    Attributes:
      start: index of the chunk's first frame in the stream.
      logits: ``[t, N, classes]`` for the chunk's ``t`` frames.
      events: ``{name: uint8 [t, *in_shape]}`` (an :class:`secnn_jax.events.EventMaps`).
      state: predictor state after the chunk's last frame (resume from it).
    """

    start: int
    logits: jax.Array
    events: ev.EventMaps
    state: Any

    @property
    def n_frames(self) -> int:
        """Number of frames in the chunk."""
        return int(self.logits.shape[0])


def _chunks(frames: Iterable[Any] | np.ndarray, size: int) -> Iterator[np.ndarray]:
    if isinstance(frames, np.ndarray | jax.Array):
        for i in range(0, frames.shape[0], size):
            yield np.asarray(frames[i:i + size])
        return
    buf: list[np.ndarray] = []
    for frame in frames:
        frame = np.asarray(frame)
        if buf and frame.shape != buf[0].shape:
            raise FramesError(f"a frame batch of shape {frame.shape} follows batches of shape "
                              f"{buf[0].shape}; every batch of a stream is [N, ...] alike")
        buf.append(frame)
        if len(buf) == size:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def iter_stream(apply_fn: Callable, params: Any, frames: Iterable[Any] | np.ndarray,
                predictor: PredictorLike, tau: Tau = 0.0, *, chunk_size: int = 16,
                layers: tuple[Layer, ...] | None = None, state: Any = None,
                start: int = 0) -> Iterator[StreamChunk]:
    """SE-CNN over a stream of any length, ``chunk_size`` frames at a time (bounded memory).

    Args:
      frames: an array ``[T, N, ...]`` or any iterable of batches ``[N, ...]`` (a generator).
      chunk_size: frames per compiled scan; a short last chunk is padded (state unaffected).
      layers: precomputed layers (found from the first frame otherwise).
      state: predictor state to resume from (``predictor.init(layers)`` otherwise).
      start: frame index of the first frame (for resumed runs; labels chunks and errors).

    Yields:
      :class:`StreamChunk` per chunk; results equal :func:`run_stream` on the whole stream.

    The compiled program is :func:`run_stream`'s, cached across calls the same way; every
    chunk, the padded last one included, runs it at ``chunk_size`` frames.

    Raises:
      FramesError: as :func:`run_stream` (per chunk, frame indices from ``start``), a chunk
        whose frame shape differs from the first's, ``chunk_size < 1``, or an empty stream.
      TauError: as :func:`run_stream`.
    """
    if chunk_size < 1:
        raise FramesError(f"chunk_size must be >= 1, got {chunk_size}")
    _check_predictor(predictor)
    program = None
    taus = None
    shape = None
    empty = True
    for chunk in _chunks(frames, chunk_size):
        chunk = check_frames(chunk, start)
        empty = False
        if program is None:
            shape = chunk.shape[1:]
            x = jax.ShapeDtypeStruct(tuple(shape), chunk.dtype)
            program = _stream_program(apply_fn, params, x, predictor, layers, tuple(chunk.shape))
            taus = program.taus(tau)
            if state is None:
                state = predictor.init(program.layers)
        if chunk.shape[1:] != shape:
            raise FramesError(
                f"frame {start}: shape {chunk.shape[1:]} differs from the stream's {shape}"
            )
        t = chunk.shape[0]
        chunk, valid = pad_chunk(chunk, chunk_size)
        state, logits, events = program.run(params, state, jnp.asarray(chunk),
                                            jnp.asarray(valid), taus)
        if t < chunk_size:
            logits = logits[:t]
            events = events.map(lambda v, t=t: v[:t])
        yield StreamChunk(start, logits, events, state)
        start += t
    if empty:
        raise FramesError("iter_stream: the stream is empty (no frames)")
