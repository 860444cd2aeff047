"""Launch models: what a kernel boundary costs on a frame's critical path.

One frame is submitted once (``launch_us``: the first eager kernel's issue, the graph launch, the
persistent kernel's launch). After that, a kernel that depends on the previous one starts

* ``eager``: at ``max(prev_end + graph_kernel_us, issue)``, the host issuing one kernel every
  ``launch_us`` in program order (so eager never costs less than graph);
* ``graph``: at ``prev_end + graph_kernel_us`` (the GPU-side cost of one more graph node);
* ``persistent``: at ``prev_end + barrier_us`` (a grid-wide barrier between the phases of one
  persistent kernel), whose resources are fixed for the whole frame: every phase runs at the
  smallest occupancy any of them needs (:func:`persistent_occupancy`) — the reason a persistent
  kernel can cost more than a graph on a network whose layers want different tiles.

:class:`LaunchCosts` holds these numbers in cycles of one GPU; :func:`chain` applies them to a
sequence of dependent items (one or more kernels each).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpus import GPU
from secnn_jax.timing.names import LAUNCH_MODELS
from secnn_jax.timing.params import ModelParams, SchemeConfig, TimingConfigError


@dataclasses.dataclass(frozen=True)
class LaunchCosts:
    """One launch model's costs on one GPU, in cycles.

    Attributes:
      model: launch model name.
      submit: the one submission per frame.
      gap: cost of a dependent kernel boundary on the device (graph gap or barrier).
      issue: host issue interval per kernel (``eager`` only; 0 otherwise).
    """

    model: str
    submit: float
    gap: float
    issue: float

    @classmethod
    def of(cls, model: str, gpu: GPU, params: ModelParams, cfg: SchemeConfig) -> LaunchCosts:
        """The costs of ``model`` on ``gpu``."""
        if model not in LAUNCH_MODELS:
            raise TimingConfigError(f"unknown launch model {model!r}; known: {LAUNCH_MODELS}")
        submit = gpu.cycles(cfg.launch(gpu))
        if model == "persistent":
            return cls(model, submit, gpu.cycles(cfg.barrier_us), 0.0)
        gap = gpu.cycles(cfg.graph_gap(params))
        return cls(model, submit, gap, submit if model == "eager" else 0.0)


def persistent_occupancy(occupancies: Sequence[int]) -> int:
    """Resident CTAs per SM of one persistent kernel whose phases need ``occupancies``.

    A kernel's registers and shared memory are fixed at launch, so the persistent kernel holds
    what its most demanding phase needs: the smallest occupancy of its phases.
    """
    occ = [int(o) for o in occupancies if int(o) > 0]
    return max(1, min(occ)) if occ else 1


def chain(exec_cycles: np.ndarray, kernels: Sequence[int], lc: LaunchCosts,
          first_issue: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Start and end times ``[T, K]`` of ``K`` dependent items after one frame submission.

    Item ``k`` runs ``kernels[k]`` kernels back to back (e.g. a split-K GEMM and its reduction):
    it starts after the previous item's end plus one boundary, at the earliest when the host has
    issued its first kernel (``eager``), and its ``kernels[k] - 1`` inner boundaries add to its
    duration. ``first_issue`` counts kernels the host issued before this chain (eager).
    """
    exec_cycles = np.atleast_2d(np.asarray(exec_cycles, np.float64))
    kern = np.asarray(kernels, np.int64)
    if kern.shape != exec_cycles.shape[1:]:
        raise ReplayError(f"kernels {kern.shape} do not match items {exec_cycles.shape[1:]}")
    issue = (first_issue + np.cumsum(kern) - kern) * lc.issue + lc.submit
    inner = (kern - 1) * lc.gap
    start = np.empty_like(exec_cycles)
    end = np.empty_like(exec_cycles)
    prev = np.full(exec_cycles.shape[0], lc.submit - lc.gap)
    for k in range(exec_cycles.shape[1]):  # loop over items (layers and op kernels)
        s = np.maximum(prev + lc.gap, issue[k])
        prev = s + exec_cycles[:, k] + inner[k]
        start[:, k], end[:, k] = s, prev
    return start, end
