"""The SM model shared by every kernel: CTA tiles, occupancy, makespans, memory time, list
scheduling.

A kernel is a grid of CTAs. A CTA of tile ``bm x bn`` (output positions x output channels) runs
``ksteps`` main-loop steps of depth ``bk``; its *work* is ``w = bm * bn * k / rate`` cycles at the
SM's throughput and its *latency floor* ``d = ksteps * latency_cycles / stages``. An SM holds
``o`` CTAs at once (:meth:`Tile.occupancy`: threads, warps, registers, shared memory, CTA limit).
CTAs sorted by decreasing work are dealt to SMs cyclically; an SM runs them in rounds of ``o`` and
a round costs ``max(sum of its w, max of its d)`` (:func:`dealt_makespan`). Memory time is
``bytes / bandwidth`` (DRAM, x ``l2_bandwidth_factor`` when the bytes fit in L2).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from secnn_jax.timing.gpus import GPU, canonical_precision
from secnn_jax.timing.params import ModelParams


@dataclasses.dataclass(frozen=True)
class Tile:
    """One CTA tile configuration.

    Attributes:
      bm: output positions per CTA (GEMM rows).
      bn: output channels per CTA (GEMM columns).
      bk: main-loop depth per step.
      threads: threads per CTA.
      regs: registers per thread.
      stages: software-pipeline stages (shared-memory buffers).
      unit: ``"simt"`` (CUDA cores) or ``"tensor"`` (tensor cores).
    """

    bm: int
    bn: int
    bk: int
    threads: int
    regs: int
    stages: int
    unit: str

    def smem_bytes(self, elem_bytes: int) -> int:
        """Shared memory of the A and B tile buffers."""
        return self.stages * (self.bm + self.bn) * self.bk * elem_bytes

    def occupancy(self, gpu: GPU, elem_bytes: int) -> int:
        """Resident CTAs per SM (threads, warps, registers, shared memory, CTA limit); >= 1."""
        warps = -(-self.threads // 32)
        smem = self.smem_bytes(elem_bytes)
        return max(1, min(gpu.max_ctas, gpu.max_threads // self.threads, gpu.max_warps // warps,
                          gpu.regs // (self.threads * self.regs),
                          gpu.smem_bytes // smem if smem else gpu.max_ctas))



# --- makespans ---------------------------------------------------------------------------

def dealt_makespan(w: np.ndarray, d: np.ndarray, sms: int, occ: int) -> np.ndarray:
    """Busiest SM's time for CTAs of work ``w`` and latency floor ``d`` (last axis = CTAs).

    CTAs sorted by decreasing work are dealt to SMs cyclically; the busiest SM (the first)
    gets CTAs ``0, S, 2S, ...`` and runs them in rounds of ``occ``; a round costs
    ``max(sum w, max d)``. Leading axes are independent grids (e.g. frames). ``w`` and ``d``
    must be ordered consistently (both non-decreasing in the CTA's work).
    """
    w = np.asarray(w, np.float64)
    d = np.asarray(d, np.float64)
    n = w.shape[-1]
    if n == 0:
        return np.zeros(w.shape[:-1])
    # Consistent order (the precondition): sorting each by itself deals the same CTAs.
    ws = -np.sort(-w, axis=-1)[..., ::sms]
    ds = -np.sort(-d, axis=-1)[..., ::sms]
    k = ws.shape[-1]
    r = -(-k // occ)
    pad = r * occ - k
    if pad:
        z = np.zeros(ws.shape[:-1] + (pad,))
        ws, ds = np.concatenate([ws, z], axis=-1), np.concatenate([ds, z], axis=-1)
    ws = ws.reshape(ws.shape[:-1] + (r, occ))
    ds = ds.reshape(ds.shape[:-1] + (r, occ))
    return np.maximum(ws.sum(-1), ds.max(-1)).sum(-1)


def uniform_makespan(n_ctas: int | np.ndarray, w: float | np.ndarray, d: float | np.ndarray,
                     sms: int, occ: int | np.ndarray) -> np.ndarray:
    """:func:`dealt_makespan` for ``n_ctas`` identical CTAs, in closed form (vectorised)."""
    per_sm = -(-np.asarray(n_ctas) // sms)
    full, rem = np.divmod(per_sm, occ)
    w, d = np.asarray(w, np.float64), np.asarray(d, np.float64)
    return full * np.maximum(occ * w, d) + np.where(rem > 0, np.maximum(rem * w, d), 0.0)




def rate(gpu: GPU, precision: str, unit: str, params: ModelParams) -> float:
    """Achieved FMA per SM per clock of ``unit`` for ``precision``."""
    p = canonical_precision(precision)
    if unit == "tensor":
        return gpu.tensor_fma_per_clk[p] * gpu.ceiling_frac[p] * params.eff(p)
    return gpu.simt_fma_per_clk(p) * gpu.ceiling_frac["fp32"] * params.eff("fp32")


def bandwidth(gpu: GPU, nbytes: np.ndarray | float, params: ModelParams) -> np.ndarray:
    """Bytes per cycle for a kernel moving ``nbytes`` (L2-resident when it fits)."""
    nbytes = np.asarray(nbytes, np.float64)
    return gpu.dram_bytes_per_clk * np.where(nbytes <= gpu.l2_bytes,
                                             params.l2_bandwidth_factor, 1.0)


def mem_cycles(gpu: GPU, nbytes: np.ndarray | float, params: ModelParams) -> np.ndarray:
    """Cycles to move ``nbytes`` (DRAM bandwidth, or L2's when the bytes fit in L2)."""
    return np.asarray(nbytes, np.float64) / bandwidth(gpu, nbytes, params)



def list_schedule_released(dur: np.ndarray, release: np.ndarray, slots_total: int
                           ) -> np.ndarray:
    """Greedy list scheduling of CTAs of duration ``dur`` with release times, in order.

    Vectorised per wave of ``slots_total`` CTAs: the wave's CTAs take the earliest-free slots
    in dispatch order and start at ``max(slot free, release)``. Returns finish times.
    """
    n = dur.shape[0]
    free = np.zeros(slots_total)
    finish = np.empty(n)
    for start in range(0, n, slots_total):  # loop over waves, not CTAs
        chunk = dur[start:start + slots_total]
        order = np.argsort(free, kind="stable")[: chunk.shape[0]]
        end = np.maximum(free[order], release[start:start + slots_total]) + chunk
        free[order] = end
        finish[start:start + slots_total] = end
    return finish

