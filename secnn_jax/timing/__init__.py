"""Trace-driven GPU timing for SE-CNN: GPU configurations, whole-network execution-scheme cost
models under launch models and fusion policies, a vectorized replayer, the attribution ladder,
and the calibration against real H100 measurements.

Main entry points: :func:`replay` (see :mod:`secnn_jax.timing.replayer`) and :func:`ladder`.
Modules: :mod:`.names` (vocabulary), :mod:`.params` (fitted parameters, assumed knobs),
:mod:`.sm` (CTAs on SMs), :mod:`.kernels` (one operation's kernels), :mod:`.opkernels` (the ops
between layers, fusion), :mod:`.launch` (launch models), :mod:`.secnn` (SE-CNN's schedule),
:mod:`.schemes` (the registry), :mod:`.replay`, :mod:`.ladder`, :mod:`.calibration`,
:mod:`.gpufile` (a user's calibrated GPU as a named entry: :func:`load_gpu_file`),
:mod:`.probes` (the op-kernel, concurrency and software SE-CNN measurements),
:mod:`.uncertainty` (the physics parameters' sourced ranges; verdict bands over their box).
"""

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing.gpufile import (
    CalibratedGPU,
    gpu_from_ceilings,
    load_gpu_file,
    params_for,
    read_gpu_file,
    unload_gpu_file,
    write_gpu_file,
)
from secnn_jax.timing.gpus import GPU, GPUS, PRECISIONS, canonical_precision, get_gpu
from secnn_jax.timing.kernels import KernelCost, best_algorithm, dense_cost
from secnn_jax.timing.ladder import LADDER, Ladder, LadderStep, ladder, oracle_events
from secnn_jax.timing.names import (
    BASELINES,
    COMPACTIONS,
    DEFAULT_FUSION,
    DEFAULT_LAUNCH,
    FUSIONS,
    LAUNCH_MODELS,
    PHASES,
    SCHEMES,
    SECNN,
)
from secnn_jax.timing.opkernels import OpGeom
from secnn_jax.timing.params import (
    PHYSICS,
    ModelParams,
    SchemeConfig,
    TimingConfigError,
    load_params,
)
from secnn_jax.timing.replayer import (
    ReducedEvents,
    ReplayError,
    ReplayResult,
    SchemeResult,
    reduce_events,
    replay,
    replay_launches,
)
from secnn_jax.timing.schemes import REGISTRY
from secnn_jax.timing.uncertainty import BOX, Band, Range, Ratio, band, bands

__all__ = [
    "BASELINES",
    "BOX",
    "Band",
    "CalibratedGPU",
    "COMPACTIONS",
    "DEFAULT_FUSION",
    "DEFAULT_LAUNCH",
    "FUSIONS",
    "GPU",
    "GPUS",
    "LADDER",
    "LAUNCH_MODELS",
    "PHASES",
    "PHYSICS",
    "PRECISIONS",
    "Range",
    "Ratio",
    "REGISTRY",
    "SCHEMES",
    "SECNN",
    "KernelCost",
    "Ladder",
    "LadderStep",
    "LayerGeom",
    "ModelParams",
    "OpGeom",
    "ReducedEvents",
    "ReplayError",
    "ReplayResult",
    "SchemeConfig",
    "SchemeResult",
    "TimingConfigError",
    "band",
    "bands",
    "best_algorithm",
    "canonical_precision",
    "dense_cost",
    "get_gpu",
    "gpu_from_ceilings",
    "ladder",
    "load_gpu_file",
    "load_params",
    "oracle_events",
    "params_for",
    "read_gpu_file",
    "reduce_events",
    "replay",
    "replay_launches",
    "unload_gpu_file",
    "write_gpu_file",
]
