"""secnn_jax: SE-CNN (CNN acceleration by value prediction) as pure JAX transforms.

Public API (README.md, "Using the library", has the walk-through; ``docs/contract.md`` lists
every public name, signature, event code and command line; every name has a docstring):

* :func:`find_layers`, :class:`Layer`, :func:`nnx_apply` — what SE-CNN wraps.
* :mod:`predictors` — ``zero``, ``last_value``, ``secnn``, ``mean`` (+ ``mean_stats``).
* :func:`parallel_compute`, :func:`serial_amend` — the two phases.
* :func:`pipeline` — the one SE-CNN step, which takes ``tau`` (a fixed tau is a
  ``functools.partial``); :func:`run_stream`, :func:`iter_stream` — composition over frames;
  :func:`scan_program` — the one compiled scan over a chunk of frames they (and the
  experiments' cell engine) share, with in-jit reducers such as :class:`EventCounts`;
  :func:`stream_program` — its compiled program, cached across calls
  (:func:`program_cache_info`, :func:`clear_program_cache`). One module per concern in
  :mod:`secnn_jax.streaming`; :mod:`secnn_jax.pipeline` re-exports them.
* :func:`predictors.from_spec` — a predictor from a string such as ``"secnn(silence=0.5)"``.
* :mod:`events` — event codes ZZ, ZN, VH, VM; :mod:`accounting` — exact per-phase work.
* :class:`SecnnError` — the base class of every error raised for bad input (frames, tau,
  predictors, data sources, checkpoints, model names); other exceptions are bugs.
"""

from secnn_jax import accounting, events, predictors
from secnn_jax.adapters import nnx_apply
from secnn_jax.errors import SecnnError
from secnn_jax.layers import Layer, find_layers, layer_table
from secnn_jax.phases import layer_inputs, parallel_compute, serial_amend
from secnn_jax.pipeline import (
    EventCounts,
    ScanOutput,
    StreamChunk,
    StreamProgram,
    clear_program_cache,
    iter_stream,
    pad_chunk,
    pipeline,
    program_cache_info,
    run_stream,
    scan_program,
    stream_program,
)
from secnn_jax.predictors import Predictor

__version__ = "0.1.0"

__all__ = [
    "EventCounts",
    "Layer",
    "Predictor",
    "ScanOutput",
    "SecnnError",
    "StreamChunk",
    "StreamProgram",
    "accounting",
    "clear_program_cache",
    "events",
    "find_layers",
    "iter_stream",
    "layer_inputs",
    "layer_table",
    "nnx_apply",
    "pad_chunk",
    "parallel_compute",
    "pipeline",
    "predictors",
    "program_cache_info",
    "run_stream",
    "scan_program",
    "serial_amend",
    "stream_program",
]
