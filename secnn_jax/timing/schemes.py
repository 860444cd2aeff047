"""Execution-scheme cost models over CTAs: dense (cuDNN-style implicit GEMM), depthwise, Winograd,
FFT, zero_skip, and SE-CNN on a stock GPU (``secnn_sw``) or with the SM extension (``secnn_hw``).

Everything is counted in SM clock cycles of one :class:`~secnn_jax.timing.gpus.GPU`.

**Kernel model (all schemes).** A kernel is a grid of CTAs. A CTA of tile ``bm x bn`` (output
positions x output channels) runs ``ksteps`` main-loop steps of depth ``bk``; its *work* is
``w = bm * bn * k / rate`` cycles at the SM's throughput (``rate`` = peak FMA/clk/SM x the GPU's
measured matmul ceiling fraction x the calibrated efficiency, :class:`ModelParams`), and its
*latency floor* is ``d = ksteps * latency_cycles / stages`` (a software pipeline of ``stages``
hides one memory latency per step only that far). An SM holds ``o`` CTAs at once (occupancy from
threads, registers, shared memory and the CTA limit). CTAs are dealt to SMs in order of
decreasing work (the busiest SM gets CTAs ``0, S, 2S, ...``); an SM runs them in rounds of ``o``
and a round costs ``max(sum of its w, max of its d)`` — so a full wave costs ``max(o*w, d)`` and
the tail wave ``max(r*w, d)`` with ``r < o`` CTAs. The kernel takes the busiest SM's time, or
the memory time ``bytes / bandwidth`` if larger (bandwidth = DRAM, x ``l2_bandwidth_factor``
when the kernel's bytes fit in L2). This closed form is exact for a uniform grid and monotone:
more work never costs less, more SMs never cost more.

**dense**: implicit GEMM as cuDNN does it. ``M = N*Ho*Wo``, ``Ncol = Cout/groups``,
``K = Cin/groups*kh*kw``; grouped convs are a batch of ``groups`` GEMMs. The tile menu is
CUTLASS-like (:data:`SIMT_TILES` for FP32 / GPUs without tensor cores, :data:`TENSOR_TILES`
with split-K for TF32/FP16); like ``cudnn.benchmark`` the fastest candidate is taken. Tensor-core
K is iterated per filter tap in channel blocks (small ``Cin`` wastes MMA depth). ``layout="NCHW"``
adds the two NHWC<->NCHW transposes cuDNN runs around tensor-core convs that are not 1x1/s1.
Depthwise convs are *not* GEMMs: a direct SIMT kernel (:data:`DEPTHWISE_TILE`), usually
memory-bound. Dense layers are 1x1 convs.

**winograd**: F(m x m, 3 x 3) for 3x3 stride-1 undilated ungrouped convs: ``(m+2)^2`` batched
GEMMs of ``[tiles x Cin] x [Cin x Cout]`` (``tiles = N*ceil(Ho/m)*ceil(Wo/m)``) — the arithmetic
saving is ``(m+2)^2 / (9 m^2)`` — plus filter, input and output transform kernels costed by their
memory traffic; ``dense`` elsewhere. **fft**: stride-1 undilated ungrouped convs with ``k >= 3``:
real FFTs of the inputs and filters on ``P x P`` planes (``P`` the next power of two >= H + k - 1),
a batched complex GEMM per frequency bin (4 real FMAs per complex MAC, SIMT) and inverse FFTs of
the outputs, with the complex intermediates' memory traffic; ``dense`` elsewhere.

**zero_skip**: layer after layer, the dense SIMT tiling, each lane skipping the zero inputs of
its output's receptive field: a warp costs its busiest lane, a CTA its busiest warp, so a CTA's
``k`` is the largest count of non-zero inputs over its tile's output positions
(:func:`secnn_jax.timing.workmaps.tile_reduce`). With no zero input it costs what ``dense``
costs on the SIMT unit (exactly ``dense`` at FP32). ``nonzero`` is read from the codes as "not
ZZ": a VM neuron whose real value is 0 counts as non-zero (the codes do not say).

**secnn_sw / secnn_hw**: per frame, (1) the *parallel phase* dispatches every layer's CTAs at
once; each layer uses the cheaper of the dense kernel and the zero-skipping SIMT kernel over its
*predicted* non-zero inputs (VH, VM); the CTAs are list-scheduled in layer order onto the SMs'
concurrent-kernel slots (``slots = occupancy`` CTAs per SM, each running at ``1/slots`` of the
SM's throughput), giving each layer's completion time ``P_l``; its memory traffic is shared:
``P_l >= bytes of layers <= l / bandwidth``. (2) The *serial phase*: layer ``l``'s correction
starts when ``P_l`` and the correction of ``l-1`` are both done (corrections have priority on the
SMs, so parallel work still running does not delay them), and costs a compare per input neuron
plus the amendment of each mispredicted input (ZN, VM) over its exact fan-out — computed as the
gather dual (each output re-accumulates the mispredicted inputs of its receptive field).
``secnn_sw`` (stock GPU): one kernel launch per layer per phase (``launch_us``: the parallel
kernels are issued ``launch_us`` apart, each correction is a launched kernel issued after them),
compares on the SIMT lanes (``compare_ops_per_neuron`` instructions), amendment with SIMT
divergence (a CTA costs its busiest lane). ``secnn_hw`` (the original design's SM extension):
one launch per frame, the correction sequenced by hardware (no launches), ``comparators_per_sm``
comparators per SM, and the mispredicted inputs compacted into dense work queues
(``hw_compact``: a CTA costs the *mean* of its lanes' work, not the max). Both read ``x`` and the
prediction to compare and read-modify-write the outputs the amendment touches.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from secnn_jax.timing.geometry import LayerGeom
from secnn_jax.timing.gpus import ELEMENT_BYTES, GPU, canonical_precision
from secnn_jax.timing.workmaps import tile_reduce

#: All execution schemes, in report order.
SCHEMES: tuple[str, ...] = ("dense", "winograd", "fft", "zero_skip", "secnn_sw", "secnn_hw")
#: Schemes that run layer after layer without SE-CNN (the baselines of the speedups).
BASELINES: tuple[str, ...] = ("dense", "winograd", "fft", "zero_skip")
#: SE-CNN schemes.
SECNN: tuple[str, ...] = ("secnn_sw", "secnn_hw")

#: Depth of one MMA instruction in elements (channel-block granularity of tensor-core K).
MMA_K: Mapping[str, int] = MappingProxyType({"tf32": 8, "fp16": 16})

PARAMS_PATH = Path(__file__).with_name("params_h100.json")


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


#: CUTLASS SIMT SGEMM-like tiles (FP32 on CUDA cores): 8x8 or smaller thread tiles.
SIMT_TILES: tuple[Tile, ...] = (
    Tile(128, 128, 8, 256, 128, 2, "simt"), Tile(128, 64, 8, 256, 64, 2, "simt"),
    Tile(64, 128, 8, 256, 64, 2, "simt"), Tile(64, 64, 8, 128, 64, 2, "simt"),
    Tile(64, 32, 8, 64, 64, 2, "simt"), Tile(32, 64, 8, 64, 64, 2, "simt"),
    Tile(32, 32, 8, 64, 40, 2, "simt"),
)
#: CUTLASS tensor-core tiles (TF32/FP16, 3-stage pipelines).
TENSOR_TILES: tuple[Tile, ...] = (
    Tile(256, 128, 32, 256, 232, 3, "tensor"), Tile(128, 256, 32, 256, 232, 3, "tensor"),
    Tile(128, 128, 32, 128, 232, 3, "tensor"), Tile(128, 128, 32, 256, 128, 3, "tensor"),
    Tile(128, 64, 32, 128, 168, 3, "tensor"), Tile(64, 128, 32, 128, 168, 3, "tensor"),
    Tile(64, 64, 32, 128, 128, 3, "tensor"), Tile(64, 32, 32, 64, 128, 3, "tensor"),
    Tile(32, 64, 32, 64, 128, 3, "tensor"),
)
#: Direct depthwise kernel: warps of 32 channels, 32 positions per CTA; the taps' loads are
#: independent, so a CTA waits one memory latency, not one per tap.
DEPTHWISE_TILE = Tile(32, 32, 1, 256, 32, 2, "simt")


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """The few efficiency parameters fitted on measurements (:mod:`.calibration`).

    Attributes:
      efficiency: per precision, the fraction of the GPU's measured large-matmul ceiling a
        convolution's main loop reaches (SIMT kernels use the ``fp32`` value).
      latency_cycles: memory latency one main-loop step waits for, hidden over ``stages``.
      l2_bandwidth_factor: bandwidth multiplier over DRAM when a kernel's bytes fit in L2.
      extra_kernel_us: time each additional kernel of one layer's operation adds when the
        operation is timed alone (transposes, split-K reduction, transforms).
      cta_overhead_cycles: fixed cost per CTA with work (prologue/epilogue).
      provenance: where the values come from.
    """

    efficiency: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: MappingProxyType({"fp32": 0.6, "tf32": 0.8, "fp16": 0.8}))
    latency_cycles: float = 650.0
    l2_bandwidth_factor: float = 1.2
    extra_kernel_us: float = 7.0
    cta_overhead_cycles: float = 0.0
    provenance: str = "uncalibrated defaults"

    def eff(self, precision: str) -> float:
        """Efficiency for ``precision``."""
        return float(self.efficiency[canonical_precision(precision)])

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["efficiency"] = dict(self.efficiency)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelParams:
        """Inverse of :meth:`as_dict` (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "efficiency" in kw:
            kw["efficiency"] = MappingProxyType({k: float(v) for k, v in kw["efficiency"].items()})
        return cls(**kw)


def load_params(path: str | Path | None = None) -> ModelParams:
    """The calibrated parameters (default: the committed ``params_h100.json``).

    Falls back to :class:`ModelParams` defaults when the default file does not exist.
    """
    p = Path(path) if path is not None else PARAMS_PATH
    if not p.is_file():
        if path is not None:
            raise FileNotFoundError(f"timing parameters file not found: {p}")
        return ModelParams()
    data = json.loads(p.read_text())
    return ModelParams.from_dict(data.get("params", data))


@dataclasses.dataclass(frozen=True)
class SchemeConfig:
    """Documented knobs of the schemes (defaults are the reference configuration).

    Attributes:
      layout: ``"NHWC"`` (JAX/Flax models) or ``"NCHW"`` (adds cuDNN's tensor-core transposes).
      launch_us: per-kernel issue cost; ``None`` uses the GPU's measured ``launch_us``.
      split_k: split-K factors tensor-core GEMMs may use.
      winograd_m: Winograd output tile ``m`` of F(m x m, 3 x 3).
      secnn_parallel: ``"auto"`` (cheaper of dense and zero-skipping per layer), ``"sparse"``
        or ``"dense"`` kernels for the SE-CNN parallel phase.
      compare_ops_per_neuron: SIMT instructions per compared neuron in ``secnn_sw`` (load x,
        load P, subtract, abs-compare, predicated store: 2 arithmetic lanes-ops counted).
      comparators_per_sm: ``secnn_hw``'s comparators per SM (one per FP32 lane by default).
      hw_compact: ``secnn_hw`` amends compacted work (CTA costs the mean of its lanes).
      hw_launches_per_frame: kernel launches ``secnn_hw`` pays per frame.
    """

    layout: str = "NHWC"
    launch_us: float | None = None
    split_k: tuple[int, ...] = (1, 2, 4, 8, 16)
    winograd_m: int = 4
    secnn_parallel: str = "auto"
    compare_ops_per_neuron: float = 2.0
    comparators_per_sm: int | None = None
    hw_compact: bool = True
    hw_launches_per_frame: int = 1

    def launch(self, gpu: GPU) -> float:
        """Per-kernel issue cost in microseconds."""
        return gpu.launch_us if self.launch_us is None else float(self.launch_us)


@dataclasses.dataclass(frozen=True)
class KernelCost:
    """Cost of one layer's operation under one scheme (all its kernels).

    Attributes:
      algo: algorithm (``implicit_gemm``, ``depthwise``, ``winograd``, ``fft``, ``sparse``...).
      cycles: execution cycles of all the operation's kernels (launch issue not included).
      kernels: kernels the operation launches.
      n_ctas: CTAs of the main kernel.
      occupancy: resident CTAs per SM of the main kernel.
      waves: ``n_ctas / (SMs * occupancy)``.
      compute_cycles: busiest SM's time of the main kernel.
      memory_cycles: memory time of all kernels.
      busy_cycles: SM-cycles of useful work (sum of CTA work), for utilisation.
      tile: the main kernel's tile (``None`` for FFT).
      split_k: split-K factor.
      cta_work: work cycles of one CTA of the main kernel.
      cta_latency: latency floor of one CTA of the main kernel.
    """

    algo: str
    cycles: float
    kernels: int
    n_ctas: int
    occupancy: int
    waves: float
    compute_cycles: float
    memory_cycles: float
    busy_cycles: float
    tile: Tile | None = None
    split_k: int = 1
    cta_work: float = 0.0
    cta_latency: float = 0.0

    def standalone_us(self, gpu: GPU, params: ModelParams) -> float:
        """Time of this operation timed alone with CUDA events (as in the measurement CSVs)."""
        return gpu.event_overhead_us + gpu.us(self.cycles) + (self.kernels - 1) * \
            params.extra_kernel_us


# --- the SM model ---------------------------------------------------------------------------

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
    order = np.argsort(-w, axis=-1, kind="stable")
    ws = np.take_along_axis(w, order, axis=-1)[..., ::sms]
    ds = np.take_along_axis(d, order, axis=-1)[..., ::sms]
    k = ws.shape[-1]
    r = -(-k // occ)
    pad = r * occ - k
    if pad:
        widths = [(0, 0)] * (ws.ndim - 1) + [(0, pad)]
        ws, ds = np.pad(ws, widths), np.pad(ds, widths)
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


# --- dense operations -----------------------------------------------------------------------

def _rate(gpu: GPU, precision: str, unit: str, params: ModelParams) -> float:
    """Achieved FMA per SM per clock of ``unit`` for ``precision``."""
    p = canonical_precision(precision)
    if unit == "tensor":
        return gpu.tensor_fma_per_clk[p] * gpu.ceiling_frac[p] * params.eff(p)
    return gpu.simt_fma_per_clk(p) * gpu.ceiling_frac["fp32"] * params.eff("fp32")


def _bandwidth(gpu: GPU, nbytes: np.ndarray | float, params: ModelParams) -> np.ndarray:
    """Bytes per cycle for a kernel moving ``nbytes`` (L2-resident when it fits)."""
    nbytes = np.asarray(nbytes, np.float64)
    return gpu.dram_bytes_per_clk * np.where(nbytes <= gpu.l2_bytes,
                                             params.l2_bandwidth_factor, 1.0)


def mem_cycles(gpu: GPU, nbytes: np.ndarray | float, params: ModelParams) -> np.ndarray:
    """Cycles to move ``nbytes`` (DRAM bandwidth, or L2's when the bytes fit in L2)."""
    return np.asarray(nbytes, np.float64) / _bandwidth(gpu, nbytes, params)


def dense_unit(gpu: GPU, precision: str) -> str:
    """``"tensor"`` if dense GEMMs of ``precision`` use tensor cores on ``gpu``, else ``"simt"``."""
    return "tensor" if gpu.uses_tensor_cores(precision) else "simt"


#: Order of the efficiency parameters in candidate tables (SIMT kernels use ``fp32``).
EFF_KEYS: tuple[str, ...] = ("fp32", "tf32", "fp16")


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Parameter-free description of candidate kernels (arrays over candidates).

    The calibration fit evaluates thousands of parameter vectors on the same candidates, so
    everything that does not depend on :class:`ModelParams` is computed once here and
    :func:`evaluate` applies the parameters with array arithmetic.

    Attributes:
      tiles: the tile of each candidate.
      split: split-K factor.
      macs_cta: MACs one CTA performs (``bm * bn * ksteps * bk``).
      rate_base: peak FMA/clk/SM x measured ceiling fraction of the candidate's unit.
      eff_index: which :data:`EFF_KEYS` efficiency applies.
      ksteps_per_stage: main-loop steps over pipeline stages (latency multiplier).
      n_ctas: CTAs of the main kernel.
      occupancy: resident CTAs per SM.
      io_bytes: main kernel's memory traffic (with split-K workspace).
      extra_bytes: helper kernels' traffic (transposes, transforms).
      kernels: kernels launched.
      algo: algorithm name.
    """

    tiles: tuple[Tile, ...]
    split: np.ndarray
    macs_cta: np.ndarray
    rate_base: np.ndarray
    eff_index: np.ndarray
    ksteps_per_stage: np.ndarray
    n_ctas: np.ndarray
    occupancy: np.ndarray
    io_bytes: np.ndarray
    extra_bytes: np.ndarray
    kernels: np.ndarray
    algo: str = "implicit_gemm"


def gemm_candidates(gpu: GPU, precision: str, *, m: int, ncol: int, k_channels: int, taps: int,
                    batch: int, io_bytes: float, unit: str, split_k: Sequence[int] = (1,),
                    extra_bytes: float = 0.0, extra_kernels: int = 0,
                    algo: str = "implicit_gemm", tiles: Sequence[Tile] | None = None
                    ) -> Candidates:
    """Tile/split-K candidates for ``batch`` GEMMs ``[m x K] x [K x ncol]``.

    ``K = taps * k_channels``; tensor-core kernels iterate each tap's channels in blocks
    (:data:`MMA_K` granularity for small channel counts), SIMT kernels the flattened K.
    ``io_bytes`` is the compulsory traffic of the main kernel; ``extra_bytes`` and
    ``extra_kernels`` those of helper kernels.
    """
    p = canonical_precision(precision)
    eb = ELEMENT_BYTES[p]
    tiles = tuple(tiles) if tiles is not None else (
        TENSOR_TILES if unit == "tensor" else SIMT_TILES)
    if unit == "tensor":
        rate_base = gpu.tensor_fma_per_clk[p] * gpu.ceiling_frac[p]
        eff_index = EFF_KEYS.index(p)
    else:
        rate_base = gpu.simt_fma_per_clk(p) * gpu.ceiling_frac["fp32"]
        eff_index = 0
    rows: list[tuple[Tile, int, float, float, int, int, float]] = []
    for t in tiles:
        if unit == "tensor":
            ck = t.bk if k_channels >= t.bk else max(MMA_K[p], 1 << (k_channels - 1).bit_length())
            k_eff = taps * -(-k_channels // ck) * ck
        else:
            k_eff = -(-(taps * k_channels) // t.bk) * t.bk
        occ = t.occupancy(gpu, eb)
        for sk in (split_k if unit == "tensor" else (1,)):
            ksteps = -(-k_eff // (sk * t.bk))
            if sk > 1 and ksteps < 4:
                continue
            n_ctas = batch * -(-m // t.bm) * -(-ncol // t.bn) * sk
            ws = 2.0 * sk * batch * m * ncol * 4 if sk > 1 else 0.0
            rows.append((t, sk, float(t.bm * t.bn * ksteps * t.bk), ksteps / t.stages, n_ctas,
                         occ, io_bytes + ws))
    n = len(rows)
    split = np.array([r[1] for r in rows])
    return Candidates(
        tiles=tuple(r[0] for r in rows), split=split,
        macs_cta=np.array([r[2] for r in rows]), rate_base=np.full(n, float(rate_base)),
        eff_index=np.full(n, eff_index), ksteps_per_stage=np.array([r[3] for r in rows]),
        n_ctas=np.array([r[4] for r in rows], np.int64),
        occupancy=np.array([r[5] for r in rows], np.int64),
        io_bytes=np.array([r[6] for r in rows]), extra_bytes=np.full(n, float(extra_bytes)),
        kernels=1 + extra_kernels + (split > 1).astype(np.int64), algo=algo)


def evaluate(c: Candidates, gpu: GPU, params: ModelParams,
             eff: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Cycles of every candidate under ``params`` (see the module docstring's kernel model).

    Returns arrays ``w`` and ``d`` (per-CTA work and latency floor), ``compute`` (busiest SM),
    ``memory``, ``cycles`` (``max(compute, memory) + helper memory``) and ``score`` (cycles
    plus the extra kernels' cost, what ``cudnn.benchmark`` minimises).
    """
    e = eff if eff is not None else np.array([params.eff(k) for k in EFF_KEYS])
    rate = c.rate_base * e[c.eff_index]
    w = c.macs_cta / rate
    d = c.ksteps_per_stage * params.latency_cycles + params.cta_overhead_cycles
    comp = uniform_makespan(c.n_ctas, w, d, gpu.sms, c.occupancy)
    mem = mem_cycles(gpu, c.io_bytes, params)
    xmem = np.where(c.extra_bytes > 0, mem_cycles(gpu, c.extra_bytes, params), 0.0)
    cyc = np.maximum(comp, mem) + xmem
    score = cyc + gpu.cycles(params.extra_kernel_us) * (c.kernels - 1)
    return {"w": w, "d": d, "compute": comp, "memory": mem + xmem, "cycles": cyc,
            "score": score}


def _pick(c: Candidates, gpu: GPU, params: ModelParams) -> KernelCost:
    ev = evaluate(c, gpu, params)
    i = int(np.argmin(ev["score"]))
    return KernelCost(algo=c.algo, cycles=float(ev["cycles"][i]), kernels=int(c.kernels[i]),
                      n_ctas=int(c.n_ctas[i]), occupancy=int(c.occupancy[i]),
                      waves=float(c.n_ctas[i] / (gpu.sms * c.occupancy[i])),
                      compute_cycles=float(ev["compute"][i]),
                      memory_cycles=float(ev["memory"][i]),
                      busy_cycles=float(c.n_ctas[i] * ev["w"][i]), tile=c.tiles[i],
                      split_k=int(c.split[i]), cta_work=float(ev["w"][i]),
                      cta_latency=float(ev["d"][i]))


def gemm_cost(gpu: GPU, precision: str, *, params: ModelParams, **kw: Any) -> KernelCost:
    """Cheapest candidate of :func:`gemm_candidates` (``kw``) under ``params``."""
    return _pick(gemm_candidates(gpu, precision, **kw), gpu, params)


def _io_bytes(g: LayerGeom, precision: str) -> float:
    return float(ELEMENT_BYTES[canonical_precision(precision)] *
                 (g.n_inputs + g.weights + g.n_outputs))


def depthwise_candidates(g: LayerGeom, gpu: GPU, precision: str) -> Candidates:
    """The direct depthwise kernel (:data:`DEPTHWISE_TILE`, SIMT) as a one-row table."""
    t = DEPTHWISE_TILE
    p = canonical_precision(precision)
    taps = g.kh * g.kw
    n_ctas = -(-g.m // t.bm) * -(-g.cout // t.bn)
    one = np.ones(1)
    return Candidates(
        tiles=(t,), split=np.ones(1, np.int64), macs_cta=one * t.bm * t.bn * taps,
        rate_base=one * gpu.simt_fma_per_clk(p) * gpu.ceiling_frac["fp32"],
        # The taps' loads are independent and issued back to back: one latency per CTA.
        eff_index=np.zeros(1, np.int64), ksteps_per_stage=one,
        n_ctas=np.array([n_ctas]), occupancy=np.array([t.occupancy(gpu, ELEMENT_BYTES[p])]),
        io_bytes=one * _io_bytes(g, p), extra_bytes=np.zeros(1), kernels=np.ones(1, np.int64),
        algo="depthwise")


def depthwise_cost(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams) -> KernelCost:
    """Direct depthwise kernel on the SIMT lanes (:data:`DEPTHWISE_TILE`)."""
    return _pick(depthwise_candidates(g, gpu, precision), gpu, params)


def _nchw_transposes(g: LayerGeom, precision: str, unit: str, cfg: SchemeConfig
                     ) -> tuple[float, int]:
    if cfg.layout.upper() != "NCHW" or unit != "tensor" or g.kind == "dense":
        return 0.0, 0
    if g.kh == g.kw == 1 and g.sh == g.sw == 1:
        return 0.0, 0  # a 1x1 stride-1 conv is a plain GEMM in NCHW
    eb = ELEMENT_BYTES[canonical_precision(precision)]
    return 2.0 * eb * (g.n_inputs + g.n_outputs), 2


def dense_candidates(g: LayerGeom, gpu: GPU, precision: str,
                     cfg: SchemeConfig = SchemeConfig(), unit: str | None = None) -> Candidates:
    """Candidate kernels of the ``dense`` scheme for one layer."""
    if g.is_depthwise:
        return depthwise_candidates(g, gpu, precision)
    unit = unit or dense_unit(gpu, precision)
    xb, xk = _nchw_transposes(g, precision, unit, cfg)
    return gemm_candidates(gpu, precision, m=g.m, ncol=g.cout_g, k_channels=g.cin_g,
                           taps=g.kh * g.kw, batch=g.groups, io_bytes=_io_bytes(g, precision),
                           unit=unit, split_k=cfg.split_k, extra_bytes=xb, extra_kernels=xk)


def dense_cost(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
               cfg: SchemeConfig = SchemeConfig(), unit: str | None = None) -> KernelCost:
    """The ``dense`` scheme's cost of one layer (implicit GEMM, or direct depthwise)."""
    return _pick(dense_candidates(g, gpu, precision, cfg, unit), gpu, params)


def winograd_applies(g: LayerGeom) -> bool:
    """3x3, stride 1, undilated, ungrouped convolution."""
    return (g.kind == "conv" and g.kh == g.kw == 3 and g.sh == g.sw == 1 and g.dh == g.dw == 1
            and g.groups == 1)


def winograd_cost(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                  cfg: SchemeConfig = SchemeConfig()) -> KernelCost:
    """F(m x m, 3 x 3) Winograd (non-fused: filter/input/output transforms + batched GEMM)."""
    if not winograd_applies(g):
        return dense_cost(g, gpu, precision, params, cfg)
    p = canonical_precision(precision)
    eb = ELEMENT_BYTES[p]
    mt = cfg.winograd_m
    a2 = (mt + 2) ** 2
    tiles = g.n * -(-g.ho // mt) * -(-g.wo // mt)
    t_in, t_out, t_w = a2 * tiles * g.cin, a2 * tiles * g.cout, a2 * g.cin * g.cout
    gemm_io = eb * (t_in + t_w + t_out)
    # Transforms: each reads its source and writes the transformed copy (a memory pass).
    xbytes = eb * ((g.n_inputs + t_in) + (g.weights + t_w) + (t_out + g.n_outputs))
    return gemm_cost(gpu, p, params=params, m=tiles, ncol=g.cout, k_channels=g.cin, taps=1,
                     batch=a2, io_bytes=gemm_io, unit=dense_unit(gpu, p), split_k=cfg.split_k,
                     extra_bytes=xbytes, extra_kernels=3, algo="winograd")


def fft_applies(g: LayerGeom) -> bool:
    """Stride-1, undilated, ungrouped convolution with a window of at least 3."""
    return (g.kind == "conv" and g.sh == g.sw == 1 and g.dh == g.dw == 1 and g.groups == 1
            and min(g.kh, g.kw) >= 3)


def fft_cost(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
             cfg: SchemeConfig = SchemeConfig()) -> KernelCost:
    """FFT convolution: forward FFTs, per-bin complex GEMM, inverse FFT (see module doc)."""
    if not fft_applies(g):
        return dense_cost(g, gpu, precision, params, cfg)
    p = canonical_precision(precision)
    ph = 1 << (g.h + g.kh - 2).bit_length()
    pw = 1 << (g.w + g.kw - 2).bit_length()
    bins = ph * (pw // 2 + 1)
    cbytes = 8  # complex64 intermediates
    rate = _rate(gpu, "fp32", "simt", params)
    fft_fma = 1.25 * ph * pw * math.log2(ph * pw)  # ~2.5 N log2 N flops per real FFT plane
    planes = g.n * g.cin + g.cin * g.cout + g.n * g.cout
    fft_cycles = planes * fft_fma / (rate * gpu.sms)
    eb = ELEMENT_BYTES[p]
    xbytes = (eb * (g.n_inputs + g.weights + g.n_outputs)
              + cbytes * bins * (g.n * g.cin + g.cin * g.cout + g.n * g.cout))
    kc = gemm_cost(gpu, "fp32", params=params, m=g.n, ncol=g.cout, k_channels=4 * g.cin,
                   taps=1, batch=bins,
                   io_bytes=cbytes * bins * (g.n * g.cin + g.cin * g.cout + g.n * g.cout),
                   unit="simt", extra_bytes=xbytes, extra_kernels=3, algo="fft")
    return dataclasses.replace(kc, cycles=kc.cycles + fft_cycles,
                               compute_cycles=kc.compute_cycles + fft_cycles,
                               busy_cycles=kc.busy_cycles + fft_cycles * gpu.sms)


def scheme_dense_cost(scheme: str, g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                      cfg: SchemeConfig = SchemeConfig()) -> KernelCost:
    """Frame-independent per-layer cost of ``dense``, ``winograd`` or ``fft``."""
    if scheme == "dense":
        return dense_cost(g, gpu, precision, params, cfg)
    if scheme == "winograd":
        return winograd_cost(g, gpu, precision, params, cfg)
    if scheme == "fft":
        return fft_cost(g, gpu, precision, params, cfg)
    raise ValueError(f"{scheme!r} is not a frame-independent scheme")


def best_algorithm(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                   cfg: SchemeConfig = SchemeConfig(),
                   algos: Sequence[str] = ("dense",)) -> KernelCost:
    """The cheapest of ``algos`` for ``g`` timed alone (what ``cudnn.benchmark`` would pick)."""
    costs = [scheme_dense_cost(a, g, gpu, precision, params, cfg) for a in algos]
    return min(costs, key=lambda c: c.standalone_us(gpu, params))


# --- sparse (event-driven) CTA grids --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SparseGrid:
    """Per-CTA work of a zero-skipping kernel over one layer, for a batch of frames.

    Attributes:
      w: ``[T, n_ctas]`` work cycles of each CTA.
      d: ``[T, n_ctas]`` latency floor of each CTA.
      occupancy: resident CTAs per SM.
      tile: the tile.
      active_frac: ``[T]`` fraction of CTAs with any work.
    """

    w: np.ndarray
    d: np.ndarray
    occupancy: int
    tile: Tile
    active_frac: np.ndarray


def sparse_tile(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                cfg: SchemeConfig = SchemeConfig()) -> Tile:
    """The tile a zero-skipping SIMT kernel uses: the best dense SIMT tile of the layer."""
    if g.is_depthwise:
        return DEPTHWISE_TILE
    kc = dense_cost(g, gpu, precision, params, dataclasses.replace(cfg, layout="NHWC"),
                    unit="simt")
    assert kc.tile is not None
    return kc.tile


def sparse_grid(cnt: np.ndarray, g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                tile: Tile, compact: bool = False) -> SparseGrid:
    """CTA work of a zero-skipping kernel from per-position counts ``cnt [T, M, G]``.

    ``cnt`` counts the inputs that must be processed in each output's receptive field (per
    group; per channel for depthwise). SIMT (``compact=False``): a CTA's depth is the largest
    count over its tile (busiest lane -> busiest warp -> CTA). Compacted (``secnn_hw``): the
    mean count over its tile's outputs.
    """
    p = canonical_precision(precision)
    rate = _rate(gpu, p, "simt", params)
    t = tile
    if g.is_depthwise:
        # cnt [T, M, C]: reduce over bm positions and over bn channels (x channel multiplier).
        mult = g.cout // g.cin
        c = np.repeat(cnt, mult, axis=-1) if mult > 1 else cnt
        nct = -(-g.cout // t.bn)
        if nct * t.bn != g.cout:
            c = np.pad(c, [(0, 0), (0, 0), (0, nct * t.bn - g.cout)])
        mx, sm = tile_reduce(c, t.bm)  # [T, Mt, Cpad]
        shp = mx.shape[:-1] + (nct, t.bn)
        mx = mx.reshape(shp).max(-1)
        sm = sm.reshape(shp).sum(-1)
        depth = sm / (t.bm * t.bn) if compact else mx.astype(np.float64)
        depth = depth.reshape(depth.shape[0], -1)
    else:
        mx, sm = tile_reduce(cnt, t.bm)  # [T, Mt, G]
        depth = sm / t.bm if compact else mx.astype(np.float64)
        # CTA grid (group, m-tile, n-tile): the n-tiles of a group share their rows' work.
        nt = -(-g.cout_g // t.bn)
        depth = np.repeat(np.moveaxis(depth, -1, 1), nt, axis=-1)  # [T, G, Mt*nt]
        depth = depth.reshape(depth.shape[0], -1)
    if g.is_depthwise:  # independent tap loads: one latency per CTA with work
        steps_per_stage = (depth > 0).astype(np.float64)
    else:
        steps_per_stage = np.ceil(depth / t.bk) / t.stages
    w = t.bm * t.bn * depth / rate
    d = steps_per_stage * params.latency_cycles + np.where(depth > 0,
                                                           params.cta_overhead_cycles, 0.0)
    occ = t.occupancy(gpu, ELEMENT_BYTES[p])
    return SparseGrid(w=w, d=d, occupancy=occ, tile=t, active_frac=(depth > 0).mean(-1))


def dense_grid(kc: KernelCost, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-CTA ``(w, d)`` ``[T, n_ctas]`` of a dense implicit-GEMM or depthwise kernel."""
    n = max(kc.n_ctas, 1)
    return np.full((frames, n), kc.cta_work), np.full((frames, n), kc.cta_latency)


# --- network level --------------------------------------------------------------------------

def chain(exec_cycles: np.ndarray, kernels: Sequence[int], launch_cycles: float) -> np.ndarray:
    """Layer-after-layer end times ``[T, L]``.

    Kernels are issued back to back, one every ``launch_cycles``; layer ``l`` starts when the
    previous one ended and its first kernel was issued: ``end_l = max(end_{l-1}, issue_l) +
    exec_l``.
    """
    exec_cycles = np.asarray(exec_cycles, np.float64)
    issue = (np.cumsum(kernels) - np.asarray(kernels) + 1) * launch_cycles
    end = np.empty_like(exec_cycles)
    prev = np.zeros(exec_cycles.shape[0])
    for i in range(exec_cycles.shape[1]):  # loop over layers
        prev = np.maximum(prev, issue[i]) + exec_cycles[:, i]
        end[:, i] = prev
    return end


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


@dataclasses.dataclass(frozen=True)
class SecnnFrame:
    """Timeline of one SE-CNN scheme over a batch of frames (cycles, ``[T]`` or ``[T, L]``).

    Attributes:
      total: frame time.
      parallel_done: ``[T, L]`` completion of each layer's parallel work.
      correction: ``[T, L]`` duration of each layer's correction (compare + amend).
      compare: ``[T, L]`` compare part of ``correction``.
      amend: ``[T, L]`` amendment part of ``correction`` (busiest SM, or memory).
      corr_end: ``[T, L]`` end of each layer's correction.
      busy: ``[T]`` SM-cycles of work (for utilisation).
      parallel_kernel: ``[T, L]`` 1 where the parallel phase used the dense kernel.
    """

    total: np.ndarray
    parallel_done: np.ndarray
    correction: np.ndarray
    compare: np.ndarray
    amend: np.ndarray
    corr_end: np.ndarray
    busy: np.ndarray
    parallel_kernel: np.ndarray


def secnn_timeline(par_w: Sequence[np.ndarray], par_d: Sequence[np.ndarray],
                   par_occ: Sequence[int], par_bytes: np.ndarray, compare: np.ndarray,
                   amend: np.ndarray, gpu: GPU, params: ModelParams, *, launch_cycles: float,
                   hw: bool, launches_per_frame: int = 1,
                   parallel_kernel: np.ndarray | None = None,
                   busy_extra: np.ndarray | None = None) -> SecnnFrame:
    """Schedules the two SE-CNN phases (see the module docstring).

    Args:
      par_w, par_d: per layer, ``[T, n_ctas_l]`` parallel-phase CTA work and latency floors.
      par_occ: per layer, the parallel kernel's occupancy.
      par_bytes: ``[T, L]`` bytes each layer's parallel kernel moves.
      compare, amend: ``[T, L]`` correction parts (cycles, already including memory bounds).
      launch_cycles: per-kernel issue cost.
      hw: ``secnn_hw`` (hardware-sequenced) instead of ``secnn_sw``.
      launches_per_frame: ``secnn_hw``'s launches per frame.
      parallel_kernel: ``[T, L]`` which kernel the parallel phase used (reported only).
      busy_extra: ``[T]`` SM-cycles of the correction work (for utilisation).
    """
    n_layers = len(par_w)
    frames = compare.shape[0]
    slots = max(1, min(par_occ))
    sizes = [w.shape[1] for w in par_w]
    layer_of = np.repeat(np.arange(n_layers), sizes)
    if hw:
        release_l = np.full(n_layers, launches_per_frame * launch_cycles)
        corr_issue = np.zeros(n_layers)
    else:
        release_l = (np.arange(n_layers) + 1) * launch_cycles
        corr_issue = (n_layers + np.arange(n_layers) + 1) * launch_cycles
    release = release_l[layer_of]
    parallel_done = np.empty((frames, n_layers))
    busy = np.zeros(frames)
    for t in range(frames):  # loop over frames; each frame's CTAs are scheduled per wave
        w = np.concatenate([a[t] for a in par_w])
        d = np.concatenate([a[t] for a in par_d])
        fin = list_schedule_released(np.maximum(slots * w, d), release, gpu.sms * slots)
        done = np.full(n_layers, -np.inf)
        np.maximum.at(done, layer_of, fin)
        parallel_done[t] = np.maximum(done, release_l)
        busy[t] = w.sum()
    # Memory is shared by the concurrent kernels: layer l cannot finish before the bytes of
    # layers <= l have moved.
    mem = np.cumsum(mem_cycles(gpu, par_bytes, params), axis=1)
    parallel_done = np.maximum(parallel_done, mem)
    correction = compare + amend
    corr_end = np.empty_like(correction)
    prev = np.zeros(frames)
    for i in range(n_layers):  # the serial phase: a chain over layers
        start = np.maximum(np.maximum(parallel_done[:, i], prev), corr_issue[i])
        prev = start + correction[:, i]
        corr_end[:, i] = prev
    total = np.maximum(prev, parallel_done.max(axis=1))
    if busy_extra is not None:
        busy = busy + busy_extra
    pk = parallel_kernel if parallel_kernel is not None else np.zeros_like(compare)
    return SecnnFrame(total=total, parallel_done=parallel_done, correction=correction,
                      compare=compare, amend=amend, corr_end=corr_end, busy=busy,
                      parallel_kernel=pk)
