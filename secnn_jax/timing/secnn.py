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
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from secnn_jax.timing import scheduler as SCH
from secnn_jax.timing.gpus import GPU
from secnn_jax.timing.params import PHYSICS, ModelParams, Physics, SchemeConfig
from secnn_jax.timing.sm import bandwidth


@dataclasses.dataclass(frozen=True)
class Machine:
    """The machine SE-CNN's graph runs on: a stock GPU or one with SE-CNN's SM extension.

    ``secnn_sw`` and ``secnn_hw`` build the same graph (compare, compaction, amendment per
    layer after the parallel phase); only these capabilities differ. The extension's are
    :class:`~.params.SchemeConfig` fields, each with its range in :data:`SM_EXTENSION`.

    Attributes:
      extended: whether the SM extension is present.
      comparators_per_sm: compares an SM retires per cycle.
      compare_instructions: SIMT instructions per compare (0 on hardware comparators).
      compaction: how the amendment's work items are found (:data:`~.names.COMPACTIONS`).
      dependency_cycles: the hardware dependency signal before each correction (extended);
        ``None``: corrections are kernels separated by the launch model's boundaries.
      buffer_placement: where prediction buffers live (:data:`~.params.PLACEMENTS`); a stock
        GPU has no dedicated on-chip buffer, so ``on_chip`` falls back to ``cache`` there.
    """

    extended: bool
    comparators_per_sm: float
    compare_instructions: float
    compaction: str
    dependency_cycles: float | None
    buffer_placement: str

    @classmethod
    def of(cls, extended: bool, gpu: GPU, cfg: SchemeConfig) -> Machine:
        """The stock GPU (``extended=False``) or the GPU with the SM extension."""
        if extended:
            return cls(True, float(cfg.comparators_per_sm or gpu.fp32_lanes), 0.0,
                       cfg.hw_compaction, gpu.cycles(cfg.hw_dependency_us), cfg.buffer_placement)
        placement = "cache" if cfg.buffer_placement == "on_chip" else cfg.buffer_placement
        return cls(False, float(gpu.fp32_lanes) / cfg.compare_ops_per_neuron,
                   cfg.compare_ops_per_neuron, cfg.sw_compaction, None, placement)


#: SE-CNN's SM extension as declared hardware: the :class:`~.params.SchemeConfig` fields
#: :meth:`Machine.of` reads, each with its default and the range the model is meant for
#: ("low" and "high" are the optimistic and pessimistic ends for SE-CNN).
SM_EXTENSION: Mapping[str, Physics] = MappingProxyType({p.field: p for p in (
    Physics("comparators_per_sm", "fp32_lanes", "fp32_lanes", 32, "compares/cycle",
            "derived from documented SM datapath widths (no comparator silicon measured). "
            "Optimistic end and default: one comparator beside every FP32 lane, the design's "
            "claim, i.e. the SM's issue width: H100 4 sub-partitions x 32 FP32 lanes = 128 "
            "(NVIDIA H100 Tensor Core GPU Architecture whitepaper, 2022, SM figure), GTX "
            "1080/1080 Ti 4 processing blocks x 32 CUDA cores = 128 (NVIDIA GeForce GTX 1080 "
            "whitepaper, 2016), V100/A100 4 x 16 = 64 (Volta and Ampere whitepapers); more "
            "could not be fed, each sub-partition's scheduler issuing one warp instruction per "
            "cycle. Pessimistic end 32: one warp-wide (32-lane) comparator array per SM, one "
            "sub-partition's issue width, shared by the SM's four sub-partitions"),
    PHYSICS["hw_compaction"],
    PHYSICS["hw_dependency_us"],
    Physics("buffer_placement", "cache", "on_chip", "off_chip", "",
            "the placements the SE-CNN design admits for its prediction buffers: dedicated "
            "SRAM (on_chip: no memory time; SRAM energy per byte from Horowitz, ISSCC 2014; "
            "area from energy.secnn_area, bitcell areas in energy.BITCELL_SOURCES), through "
            "the caches like any data (cache: the time model's L2/DRAM rule), or always in "
            "DRAM (off_chip: DRAM energy per bit from O'Connor et al., MICRO 2017)"),
)})


@dataclasses.dataclass(frozen=True)
class SecnnFrame:
    """Schedule of one SE-CNN scheme over a batch of frames (cycles).

    Attributes:
      total: ``[T]`` frame time.
      parallel_release: ``[L]`` or ``[T, L]`` when each layer's parallel kernel may start.
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
             par_bytes: np.ndarray, release: np.ndarray, serial: SCH.Chain, gpu: GPU,
             params: ModelParams, start_at: float = 0.0) -> SecnnFrame:
    """Schedules both phases (see the module docstring).

    Args:
      par_w, par_d: per layer, ``[T, n_ctas_l]`` parallel-phase CTA work and latency floors.
      par_occ: per layer, the parallel kernel's occupancy.
      par_bytes: ``[T, L]`` bytes each layer's parallel kernel moves.
      release: ``[L]`` or ``[T, L]`` release time of each layer's parallel kernel.
      serial: the serial chain (``dep``: the layer whose parallel kernel an item corrects,
        ``-1`` for op kernels and passes).
      start_at: start of the serial chain's first item (the frame's submission).
    """
    frames = serial.duration.shape[0]
    par_bytes = np.broadcast_to(np.asarray(par_bytes, np.float64), (frames, len(par_w)))
    bw = bandwidth(gpu, par_bytes.sum(1) + np.sum(serial.nbytes, axis=1), params)
    fs = SCH.schedule(
        serial,
        SCH.Pool(w=par_w, d=par_d, occupancy=par_occ, nbytes=par_bytes,
                 release=np.asarray(release, np.float64)),
        gpu.sms, bw, start_at)
    return SecnnFrame(total=fs.total, parallel_release=np.asarray(release, np.float64),
                      parallel_done=fs.pool_done, start=fs.start, end=fs.end, busy=fs.busy)
