"""secnn_jax: SE-CNN (CNN acceleration by value prediction) as pure JAX transforms.

Public API (see ``shared/design/CONTRACT.md`` and README.md):

* :func:`find_layers`, :class:`Layer`, :func:`nnx_apply` — what SE-CNN wraps.
* :mod:`predictors` — ``zero``, ``last_value``, ``secnn``, ``mean`` (+ ``mean_stats``).
* :func:`parallel_compute`, :func:`serial_amend` — the two phases.
* :func:`pipeline`, :func:`run_stream`, :func:`iter_stream` — composition over frames.
* :mod:`events` — event codes ZZ, ZN, VH, VM; :mod:`accounting` — exact per-phase work.
"""

from secnn_jax import accounting, events, predictors
from secnn_jax.adapters import nnx_apply
from secnn_jax.layers import Layer, find_layers, layer_table
from secnn_jax.phases import layer_inputs, parallel_compute, serial_amend, serial_amend_dynamic
from secnn_jax.pipeline import (
    StreamChunk,
    iter_stream,
    pipeline,
    pipeline_dynamic,
    run_stream,
    scan_frames,
)
from secnn_jax.predictors import Predictor

__version__ = "0.1.0"

__all__ = [
    "Layer",
    "Predictor",
    "StreamChunk",
    "accounting",
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
    "run_stream",
    "scan_frames",
    "serial_amend",
    "serial_amend_dynamic",
]
