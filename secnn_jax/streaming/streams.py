"""Streams: every frame through the cached compiled program, whole or in bounded chunks.

* :func:`run_stream` — every frame of ``[T, N, H, W, C]`` in one scan.
* :func:`iter_stream` — the same over a stream of any length in fixed-size chunks, so memory
  stays bounded: frames may come from a generator (a video decoder), outputs leave per chunk.

Both run :func:`secnn_jax.streaming.programs.stream_program`'s cached program (its module says
what keys the cache). The batch axis ``N`` holds independent streams; predictor state is per
stream (see :mod:`secnn_jax.predictors`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from secnn_jax import events as ev
from secnn_jax.layers import Layer
from secnn_jax.phases import Tau
from secnn_jax.predictors import PredictorLike
from secnn_jax.streaming.frames import FramesError, check_frames, chunks, pad_chunk
from secnn_jax.streaming.programs import program_for
from secnn_jax.streaming.step import check_predictor


def run_stream(apply_fn: Callable, params: Any, frames: Any, predictor: PredictorLike,
               tau: Tau = 0.0) -> tuple[jax.Array, ev.EventMaps]:
    """Runs every frame of ``frames`` ``[T, N, H, W, C]`` through :func:`secnn_jax.pipeline`,
    scanned.

    The predictor starts from ``predictor.init(layers)``. Returns ``(logits [T, N, classes],
    events {name: uint8 [T, *in_shape]})``, ``events`` an :class:`secnn_jax.events.EventMaps`
    (each layer's fires map in ``events.fires``, the predictor's name in
    ``events.predictor``). For long streams use :func:`iter_stream`.

    The compiled program is cached across calls (:mod:`secnn_jax.streaming.programs`): calling
    again with the same ``apply_fn`` object, params of the same structure, frames of the same
    shape and an equal predictor configuration neither traces nor compiles, whatever ``tau``'s
    value.

    Raises:
      FramesError: frames not ``[T, N, ...]`` (3- to 5-D), ``T = 0`` or ``N = 0``, NaN/Inf in a
        frame, or frames without the stream axis ``N``.
      TauError: ``tau`` not a finite number >= 0 (an array, NaN, negative) or naming unknown
        layers.
    """
    frames = check_frames(frames)
    x = jax.ShapeDtypeStruct(tuple(frames.shape[1:]), frames.dtype)
    program = program_for(apply_fn, params, x, predictor, layers=None,
                          frames_shape=tuple(frames.shape))
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
    check_predictor(predictor)
    program = None
    taus = None
    shape = None
    empty = True
    for chunk in chunks(frames, chunk_size):
        chunk = check_frames(chunk, start)
        empty = False
        if program is None:
            shape = chunk.shape[1:]
            x = jax.ShapeDtypeStruct(tuple(shape), chunk.dtype)
            program = program_for(apply_fn, params, x, predictor, layers=layers,
                                  frames_shape=tuple(chunk.shape))
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
