"""Composition: one SE-CNN step (predict, parallel-compute, serial-amend, update) and streams.

The public face of :mod:`secnn_jax.streaming`, which holds one module per concern:

* :func:`pipeline` (:mod:`~secnn_jax.streaming.step`) — ``step(params, state, x) -> (state,
  logits, events)``, pure and jit-able; the step takes ``tau`` (``step(params, state, x,
  tau=...)``), a fixed tau being a ``functools.partial``.
* :func:`scan_program` (:mod:`~secnn_jax.streaming.scan`) — the one compiled scan of a step
  over a chunk of frames, with *reducers* (:class:`EventCounts`, or any
  ``f(logits, events) -> pytree``) computed per frame inside the compiled scan.
* :func:`check_frames`, :func:`pad_chunk`, :class:`FramesError`
  (:mod:`~secnn_jax.streaming.frames`) — frames checked; the padding of a short last chunk that
  every chunked caller uses.
* :func:`stream_program` (:mod:`~secnn_jax.streaming.programs`) — that scan of a model's
  pipeline step, cached across calls (:func:`program_cache_info`, :func:`clear_program_cache`;
  the module says what keys the cache), so a caller that needs only small summaries never
  holds the event maps (the studies' cell engine, ``experiments.cells``, runs this program).
* :func:`run_stream`, :func:`iter_stream` (:mod:`~secnn_jax.streaming.streams`) — every frame
  of ``[T, N, H, W, C]`` through that program, whole or in bounded chunks.

The batch axis ``N`` holds independent streams; predictor state is per stream (see
:mod:`secnn_jax.predictors`). All of these give the same bits (``tests/test_stream_bits.py``).
"""

from __future__ import annotations

from secnn_jax.streaming.frames import FramesError, check_frames, pad_chunk
from secnn_jax.streaming.programs import (
    PROGRAM_CACHE_SIZE,
    CacheInfo,
    StreamProgram,
    clear_program_cache,
    program_cache_info,
    stream_program,
)
from secnn_jax.streaming.scan import EventCounts, Reducer, ScanOutput, scan_program
from secnn_jax.streaming.step import Step, pipeline
from secnn_jax.streaming.streams import StreamChunk, iter_stream, run_stream

__all__ = [
    "PROGRAM_CACHE_SIZE",
    "CacheInfo",
    "EventCounts",
    "FramesError",
    "Reducer",
    "ScanOutput",
    "Step",
    "StreamChunk",
    "StreamProgram",
    "check_frames",
    "clear_program_cache",
    "iter_stream",
    "pad_chunk",
    "pipeline",
    "program_cache_info",
    "run_stream",
    "scan_program",
    "stream_program",
]
