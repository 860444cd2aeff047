"""SE-CNN's frame schedule: the parallel phase's kernels all issued at once, then the serial chain.

**Parallel phase.** Every layer's CTAs (the cheaper of the dense kernel and the zero-skipping
kernel over its *predicted* non-zero inputs) form one independent kernel per layer, released
when the host has issued it (eager) or with the frame, served in layer order from what the
serial chain leaves of the SMs and the bandwidth, and never faster than alone
(work-conserving rounds: a lone CTA runs at its full rate).
Layer ``l``'s parallel work is done at ``P_l``.

**Serial phase.** A chain of items in program order: each layer's *correction* (compare, the
optional compaction, the amendment of mispredicted inputs over their exact fan-out) and the
non-linear op kernels between the layers. A correction of layer ``l`` starts after the previous
item and its boundary (the launch model's gap, or ``secnn_hw``'s hardware dependency latency)
and not before ``P_l``; it has priority over the parallel work still in flight.

Both phases are timed by the one scheduler of :mod:`.scheduler`: at no instant do they use more
SM-cycles or bytes than the machine has, and the schedule is monotone in every item's work,
bytes and latencies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from secnn_jax.timing import scheduler as SCH
from secnn_jax.timing.gpus import GPU
from secnn_jax.timing.params import ModelParams
from secnn_jax.timing.sm import bandwidth


@dataclasses.dataclass(frozen=True)
class SerialChain:
    """The serial phase's items in program order (cycles; ``[T, K]`` or ``[K]``).

    Attributes:
      duration: ``[T, K]`` execution of each item (inner kernel boundaries included).
      busy: ``[T, K]`` SM-cycles of work of each item.
      nbytes: ``[T, K]`` bytes each item moves.
      gap: ``[K]`` boundary cost before each item.
      issue: ``[K]`` earliest start of each item (host issue under ``eager``; else 0).
      layer: ``[K]`` the layer an item corrects, ``-1`` for op kernels and passes.
      labels: ``[K]`` item names.
    """

    duration: np.ndarray
    busy: np.ndarray
    nbytes: np.ndarray
    gap: np.ndarray
    issue: np.ndarray
    layer: np.ndarray
    labels: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SecnnFrame:
    """Schedule of one SE-CNN scheme over a batch of frames (cycles).

    Attributes:
      total: ``[T]`` frame time.
      parallel_release: ``[L]`` when each layer's parallel kernel may start.
      parallel_done: ``[T, L]`` completion of each layer's parallel work (``P_l``).
      start, end: ``[T, K]`` each serial item's start and end.
      busy: ``[T]`` SM-cycles of work.
    """

    total: np.ndarray
    parallel_release: np.ndarray
    parallel_done: np.ndarray
    start: np.ndarray
    end: np.ndarray
    busy: np.ndarray


def schedule(par_w: Sequence[np.ndarray], par_d: Sequence[np.ndarray], par_occ: Sequence[int],
             par_bytes: np.ndarray, release: np.ndarray, serial: SerialChain, gpu: GPU,
             params: ModelParams, start_at: float = 0.0) -> SecnnFrame:
    """Schedules both phases (see the module docstring).

    Args:
      par_w, par_d: per layer, ``[T, n_ctas_l]`` parallel-phase CTA work and latency floors.
      par_occ: per layer, the parallel kernel's occupancy.
      par_bytes: ``[T, L]`` bytes each layer's parallel kernel moves.
      release: ``[L]`` release time of each layer's parallel kernel.
      serial: the serial chain.
      start_at: start of the serial chain's first item (the frame's submission).
    """
    frames = serial.duration.shape[0]
    par_bytes = np.broadcast_to(np.asarray(par_bytes, np.float64), (frames, len(par_w)))
    bw = bandwidth(gpu, par_bytes.sum(1) + np.sum(serial.nbytes, axis=1), params)
    fs = SCH.schedule(
        SCH.Chain(duration=serial.duration, busy=serial.busy, nbytes=serial.nbytes,
                  gap=serial.gap, issue=serial.issue, dep=serial.layer, labels=serial.labels),
        SCH.Pool(w=par_w, d=par_d, occupancy=par_occ, nbytes=par_bytes,
                 release=np.asarray(release, np.float64)),
        gpu.sms, bw, start_at)
    return SecnnFrame(total=fs.total, parallel_release=np.asarray(release, np.float64),
                      parallel_done=fs.pool_done, start=fs.start, end=fs.end, busy=fs.busy)
