"""Composition: one SE-CNN step (predict, parallel-compute, serial-amend, update) and streams.

* :func:`pipeline` — ``step(params, state, x) -> (state, logits, events)``, pure and jit-able.
* :func:`run_stream` — every frame of ``[T, N, H, W, C]`` through ``step`` with ``lax.scan``.
* :func:`iter_stream` — the same over a stream of any length in fixed-size chunks, so memory
  stays bounded: frames may come from a generator (a video decoder), outputs leave per chunk.

The batch axis ``N`` holds independent streams; predictor state is per stream (see
:mod:`secnn_jax.predictors`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from secnn_jax.layers import Layer, find_layers
from secnn_jax.phases import Tau, parallel_compute, serial_amend_dynamic, tau_map
from secnn_jax.predictors import PredictorLike, check_predictions

Step = Callable[[Any, Any, jax.Array], tuple[Any, Any, dict[str, jax.Array]]]


def _check_predictor(predictor: Any) -> None:
    missing = [a for a in ("init", "predict", "update") if not callable(getattr(predictor, a,
                                                                                None))]
    if missing:
        raise TypeError(
            f"predictor {type(predictor).__name__} lacks callable {missing}; a predictor needs "
            "init(layers), predict(state) and update(state, inputs)"
        )


def pipeline_dynamic(apply_fn: Callable, layers: tuple[Layer, ...], predictor: PredictorLike
                     ) -> Callable[..., tuple[Any, Any, dict[str, jax.Array]]]:
    """:func:`pipeline` with ``tau`` an argument: ``step(params, state, x, tau)``.

    ``tau`` is ``{layer_name: scalar}`` (every layer) and may be traced, so a sweep over
    thresholds compiles once.
    """
    _check_predictor(predictor)
    parallel = parallel_compute(apply_fn, layers)
    serial = serial_amend_dynamic(apply_fn, layers)

    def step(params: Any, state: Any, x: jax.Array, tau: Any
             ) -> tuple[Any, Any, dict[str, jax.Array]]:
        predictions = predictor.predict(state)
        check_predictions(layers, predictions)
        y_pred = parallel(params, predictions)
        logits, inputs, events = serial(params, x, predictions, y_pred, tau)
        return predictor.update(state, inputs), logits, events

    return step


def pipeline(apply_fn: Callable, layers: tuple[Layer, ...], predictor: PredictorLike,
             tau: Tau = 0.0) -> Step:
    """Composes one SE-CNN step: ``step(params, state, x) -> (state, logits, events)``.

    predict -> parallel_compute -> serial_amend -> update. Pure: the predictor state goes in
    and comes out; safe under ``jax.jit`` and ``jax.lax.scan``.

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


def scan_frames(step: Step) -> Callable[..., tuple[Any, Any, dict[str, jax.Array]]]:
    """Jitted ``f(params, state, frames, valid) -> (state, logits, events)`` over ``frames[T]``.

    ``valid`` (bool ``[T]``) marks real frames; padded frames leave the state untouched, so a
    short final chunk reuses the compiled full-chunk program.
    """

    def body(carry: tuple[Any, Any], inp: tuple[jax.Array, jax.Array]) -> Any:
        params, state = carry
        x, ok = inp
        new_state, logits, events = step(params, state, x)
        state = jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new_state, state)
        return (params, state), (logits, events)

    @jax.jit
    def run(params: Any, state: Any, frames: jax.Array, valid: jax.Array) -> Any:
        (_, state), (logits, events) = jax.lax.scan(body, (params, state), (frames, valid))
        return state, logits, events

    return run


def check_frames(frames: Any, start: int = 0, what: str = "frames") -> np.ndarray:
    """Validates a frame batch ``[T, N, ...]``: numeric, non-empty, finite. Returns it (numpy).

    Raises ``ValueError`` naming the first frame with NaN or Inf.
    """
    arr = np.asarray(frames)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{what}: expected numeric frames, got dtype {arr.dtype}")
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(f"{what}: expected [T, N, ...] with T > 0, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{what}: frame {start + i} contains NaN or Inf")
    return arr


def run_stream(apply_fn: Callable, params: Any, frames: Any, predictor: PredictorLike,
               tau: Tau = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Runs every frame of ``frames`` ``[T, N, H, W, C]`` through :func:`pipeline`, scanned.

    The predictor starts from ``predictor.init(layers)``. Returns ``(logits [T, N, classes],
    events {name: uint8 [T, *in_shape]})``. For long streams use :func:`iter_stream`.
    """
    frames = check_frames(frames)
    layers = find_layers(apply_fn, params, jnp.asarray(frames[0]))
    step = pipeline(apply_fn, layers, predictor, tau)
    state = predictor.init(layers)
    _, logits, events = scan_frames(step)(params, state, jnp.asarray(frames),
                                          jnp.ones(frames.shape[0], bool))
    return logits, events


@dataclasses.dataclass(frozen=True)
class StreamChunk:
    """Outputs of one chunk of :func:`iter_stream`.

    Attributes:
      start: index of the chunk's first frame in the stream.
      logits: ``[t, N, classes]`` for the chunk's ``t`` frames.
      events: ``{name: uint8 [t, *in_shape]}``.
      state: predictor state after the chunk's last frame (resume from it).
    """

    start: int
    logits: jax.Array
    events: dict[str, jax.Array]
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
        buf.append(np.asarray(frame))
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
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    _check_predictor(predictor)
    run = None
    shape = None
    empty = True
    for chunk in _chunks(frames, chunk_size):
        chunk = check_frames(chunk, start)
        empty = False
        if run is None:
            shape = chunk.shape[1:]
            if layers is None:
                layers = find_layers(apply_fn, params, jnp.asarray(chunk[0]))
            run = scan_frames(pipeline(apply_fn, layers, predictor, tau))
            if state is None:
                state = predictor.init(layers)
        if chunk.shape[1:] != shape:
            raise ValueError(
                f"frame {start}: shape {chunk.shape[1:]} differs from the stream's {shape}"
            )
        t = chunk.shape[0]
        valid = np.arange(chunk_size) < t
        if t < chunk_size:
            pad = np.repeat(chunk[-1:], chunk_size - t, axis=0)
            chunk = np.concatenate([chunk, pad])
        state, logits, events = run(params, state, jnp.asarray(chunk), jnp.asarray(valid))
        if t < chunk_size:
            logits = logits[:t]
            events = {k: v[:t] for k, v in events.items()}
        yield StreamChunk(start, logits, events, state)
        start += t
    if empty:
        raise ValueError("iter_stream: the stream is empty (no frames)")
