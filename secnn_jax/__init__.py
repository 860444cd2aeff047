"""secnn_jax: SE-CNN (CNN acceleration by value prediction) as pure JAX transforms.

Public API (README.md, "Using the library", has the walk-through; every name has a docstring):

* :func:`find_layers`, :class:`Layer`, :func:`nnx_apply` — what SE-CNN wraps.
* :mod:`predictors` — ``zero``, ``last_value``, ``secnn``, ``mean`` (+ ``mean_stats``).
* :func:`parallel_compute`, :func:`serial_amend` — the two phases.
* :func:`pipeline`, :func:`run_stream`, :func:`iter_stream` — composition over frames;
  :func:`stream_program` — their compiled program, cached across calls
  (:func:`program_cache_info`, :func:`clear_program_cache`).
* :mod:`events` — event codes ZZ, ZN, VH, VM; :mod:`accounting` — exact per-phase work.
* :class:`SecnnError` — the base class of every error raised for bad input (frames, tau,
  predictors, data sources, checkpoints, model names); other exceptions are bugs.
"""

from secnn_jax import accounting, events, predictors
from secnn_jax.adapters import nnx_apply
from secnn_jax.errors import SecnnError
from secnn_jax.layers import Layer, find_layers, layer_table
from secnn_jax.phases import layer_inputs, parallel_compute, serial_amend, serial_amend_dynamic
from secnn_jax.pipeline import (
    StreamChunk,
    StreamProgram,
    clear_program_cache,
    iter_stream,
    pipeline,
    pipeline_dynamic,
    program_cache_info,
    run_stream,
    scan_frames,
    stream_program,
)
from secnn_jax.predictors import Predictor

__version__ = "0.1.0"

__all__ = [
    "Layer",
    "Predictor",
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
    "parallel_compute",
    "pipeline",
    "pipeline_dynamic",
    "predictors",
    "program_cache_info",
    "run_stream",
    "scan_frames",
    "serial_amend",
    "serial_amend_dynamic",
    "stream_program",
]
