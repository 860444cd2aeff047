"""Trace-driven GPU timing for SE-CNN: GPU configurations, execution-scheme cost models, a
vectorized replayer and its calibration against real H100 measurements.

Main entry point: :func:`replay` (see :mod:`secnn_jax.timing.replay`).
"""

from secnn_jax.timing.geometry import LayerGeom
from secnn_jax.timing.gpus import GPU, GPUS, PRECISIONS, canonical_precision, get_gpu
from secnn_jax.timing.replay import ReplayResult, SchemeResult, replay
from secnn_jax.timing.schemes import (
    BASELINES,
    SCHEMES,
    SECNN,
    KernelCost,
    ModelParams,
    SchemeConfig,
    best_algorithm,
    dense_cost,
    load_params,
)

__all__ = [
    "BASELINES",
    "GPU",
    "GPUS",
    "PRECISIONS",
    "SCHEMES",
    "SECNN",
    "KernelCost",
    "LayerGeom",
    "ModelParams",
    "ReplayResult",
    "SchemeConfig",
    "SchemeResult",
    "best_algorithm",
    "canonical_precision",
    "dense_cost",
    "get_gpu",
    "load_params",
    "replay",
]
