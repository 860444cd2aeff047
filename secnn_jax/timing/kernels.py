"""Kernel cost models of one layer's operation: dense implicit GEMM (tile/split-K/GEMV candidates
as cuBLAS/cuDNN heuristics choose), depthwise, Winograd, FFT, zero-skipping sparse grids, and the
bandwidth-bound elementwise/reduction kernels between the layers.

**dense**: implicit GEMM as cuDNN does it. ``M = N*Ho*Wo``, ``Ncol = Cout/groups``,
``K = Cin/groups*kh*kw``; grouped convs are a batch of ``groups`` GEMMs. The tile menu is
CUTLASS-like (:data:`SIMT_TILES` for FP32 / GPUs without tensor cores, :data:`TENSOR_TILES` for
TF32/FP16); tensor-core kernels and dense layers (cuBLAS) may split K (``split_k``: a workspace
write and a reduction kernel), and dense layers with at most :data:`GEMV_MAX_ROWS` rows (batch 1)
also get a GEMV kernel (:data:`GEMV_TILE`: one warp per output column block streaming K with
several loads in flight, the cuBLAS ``gemv`` path). Strict-FP32 (SIMT) convs do not split K: the
H100 measurements show cuDNN running them unsplit at batch 1. Like ``cudnn.benchmark`` the
fastest candidate is taken.
Tensor-core K is iterated per filter tap in channel blocks (small ``Cin`` wastes MMA depth).
``layout="NCHW"`` adds the two NHWC<->NCHW transposes cuDNN runs around tensor-core convs that
are not 1x1/s1. Depthwise convs are *not* GEMMs: a direct SIMT kernel (:data:`DEPTHWISE_TILE`),
usually memory-bound. Dense layers are 1x1 convs.

**winograd**: F(m x m, 3 x 3) for 3x3 stride-1 undilated ungrouped convs: ``(m+2)^2`` batched
GEMMs of ``[tiles x Cin] x [Cin x Cout]`` plus filter, input and output transform kernels costed
by their memory traffic; ``dense`` elsewhere. **fft**: stride-1 undilated ungrouped convs with
``k >= 3``: real FFTs on ``P x P`` planes, a batched complex GEMM per frequency bin (4 real FMAs
per complex MAC, SIMT) and inverse FFTs, with the complex intermediates' traffic; ``dense``
elsewhere.

**sparse grids** (zero_skip and SE-CNN): the dense SIMT tiling, each lane skipping the inputs
of its output's receptive field that need no work: a warp costs its busiest lane, a CTA its
busiest warp (or, compacted, the mean of its lanes). Their reductions of a layer's per-position
counts (:func:`tile_max_sum`, :func:`frame_totals`, :func:`touched_frac`; CBinfer's full-fan-in
counts as a :class:`Fanin`) are memoised per counts array (:func:`memo`) when the scheme costs
of a replay share one chunk's counts.

**elementwise** (:func:`elementwise_cost`): a grid of :data:`ELEMENTWISE_TILE` CTAs, each
thread handling ``ELEMENTS_PER_THREAD`` elements: work at the SIMT rate, one memory latency per
CTA, and the kernel at least its bytes over the bandwidth.

Everything is counted in SM clock cycles of one :class:`~secnn_jax.timing.gpus.GPU`.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpus import ELEMENT_BYTES, GPU, canonical_precision
from secnn_jax.timing.params import DEFAULT_CONFIG, ModelParams, SchemeConfig
from secnn_jax.timing.sm import Tile, mem_cycles, rate, uniform_makespan
from secnn_jax.workmaps import tile_reduce

#: Depth of one MMA instruction in elements (channel-block granularity of tensor-core K).
MMA_K: Mapping[str, int] = MappingProxyType({"tf32": 8, "fp16": 16})

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
#: GEMV kernel (cuBLAS gemv-like): ``bm`` is set to the GEMM's rows (at most
#: :data:`GEMV_MAX_ROWS`), 32 output columns per CTA, K streamed 256 elements per step with four
#: independent loads in flight per thread (``stages``), no shared-memory tiles.
GEMV_TILE = Tile(1, 32, 256, 256, 40, 4, "simt")
#: GEMMs with at most this many rows get a GEMV candidate.
GEMV_MAX_ROWS = 8
#: Elementwise/reduction kernels: 256 threads per CTA, each handling a few elements.
ELEMENTWISE_TILE = Tile(1024, 1, 1, 256, 32, 1, "simt")
ELEMENTS_PER_THREAD = 4


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
                    algo: str = "implicit_gemm", tiles: Sequence[Tile] | None = None,
                    gemv: bool = False) -> Candidates:
    """Tile/split-K (and GEMV) candidates for ``batch`` GEMMs ``[m x K] x [K x ncol]``.

    ``K = taps * k_channels``; tensor-core kernels iterate each tap's channels in blocks
    (:data:`MMA_K` granularity for small channel counts), SIMT kernels the flattened K. Every
    unit may split K by the factors in ``split_k`` (a split needs at least 4 main-loop steps);
    ``gemv`` adds a :data:`GEMV_TILE` candidate when ``m <= GEMV_MAX_ROWS``. ``io_bytes`` is the
    compulsory traffic of the main kernel; ``extra_bytes`` and ``extra_kernels`` those of helper
    kernels.
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
    simt_base = gpu.simt_fma_per_clk(p) * gpu.ceiling_frac["fp32"]
    # (tile, split, macs per CTA, k-steps per stage, CTAs, occupancy, bytes, rate base, eff index)
    rows: list[tuple[Tile, int, float, float, int, int, float, float, int]] = []

    def add(t: Tile, k_eff: int, base: float, eidx: int, splits: Sequence[int]) -> None:
        occ = t.occupancy(gpu, eb)
        for sk in splits:
            ksteps = -(-k_eff // (sk * t.bk))
            if sk > 1 and ksteps < 4:
                continue  # too little K per split to be worth a reduction kernel
            n_ctas = batch * -(-m // t.bm) * -(-ncol // t.bn) * sk
            # Split-K: each split writes fp32 partial sums, the reduction kernel reads them.
            ws = 2.0 * sk * batch * m * ncol * 4 if sk > 1 else 0.0
            rows.append((t, sk, float(t.bm * t.bn * ksteps * t.bk), ksteps / t.stages, n_ctas,
                         occ, io_bytes + ws, base, eidx))

    for t in tiles:
        if unit == "tensor":
            ck = t.bk if k_channels >= t.bk else max(MMA_K[p], 1 << (k_channels - 1).bit_length())
            k_eff = taps * -(-k_channels // ck) * ck
        else:
            k_eff = -(-(taps * k_channels) // t.bk) * t.bk
        add(t, k_eff, rate_base, eff_index, split_k)
    if gemv and m <= GEMV_MAX_ROWS:
        # cuBLAS's gemv path runs on the SIMT lanes whatever the GEMM precision.
        t = dataclasses.replace(GEMV_TILE, bm=max(1, m))
        add(t, -(-(taps * k_channels) // t.bk) * t.bk, simt_base, 0, split_k)
    split = np.array([r[1] for r in rows])
    return Candidates(
        tiles=tuple(r[0] for r in rows), split=split,
        macs_cta=np.array([r[2] for r in rows]),
        rate_base=np.array([r[7] for r in rows], np.float64),
        eff_index=np.array([r[8] for r in rows], np.int64),
        ksteps_per_stage=np.array([r[3] for r in rows]),
        n_ctas=np.array([r[4] for r in rows], np.int64),
        occupancy=np.array([r[5] for r in rows], np.int64),
        io_bytes=np.array([r[6] for r in rows]),
        extra_bytes=np.full(len(rows), float(extra_bytes)),
        kernels=1 + extra_kernels + (split > 1).astype(np.int64), algo=algo)


def evaluate(c: Candidates, gpu: GPU, params: ModelParams,
             eff: np.ndarray | None = None, occ_cap: int | None = None) -> dict[str, np.ndarray]:
    """Cycles of every candidate under ``params`` (see the module docstring's kernel model).

    ``occ_cap`` caps every candidate's occupancy (a persistent kernel's fixed resources).
    Returns arrays ``w`` and ``d`` (per-CTA work and latency floor), ``compute`` (busiest SM),
    ``memory``, ``cycles`` (``max(compute, memory) + helper memory``) and ``score`` (cycles
    plus the extra kernels' cost, what ``cudnn.benchmark`` minimises).
    """
    e = eff if eff is not None else np.array([params.eff(k) for k in EFF_KEYS])
    r = c.rate_base * e[c.eff_index]
    w = c.macs_cta / r
    d = c.ksteps_per_stage * params.latency_cycles + params.cta_overhead_cycles
    occ = c.occupancy if occ_cap is None else np.minimum(c.occupancy, max(1, int(occ_cap)))
    comp = uniform_makespan(c.n_ctas, w, d, gpu.sms, occ)
    mem = mem_cycles(gpu, c.io_bytes, params)
    xmem = np.where(c.extra_bytes > 0, mem_cycles(gpu, c.extra_bytes, params), 0.0)
    cyc = np.maximum(comp, mem) + xmem
    score = cyc + gpu.cycles(params.extra_kernel_us) * (c.kernels - 1)
    return {"w": w, "d": d, "compute": comp, "memory": mem + xmem, "cycles": cyc,
            "score": score, "occupancy": occ}


def pick(c: Candidates, gpu: GPU, params: ModelParams, occ_cap: int | None = None
         ) -> KernelCost:
    """The candidate with the lowest standalone score (what ``cudnn.benchmark`` picks)."""
    ev = evaluate(c, gpu, params, occ_cap=occ_cap)
    i = int(np.argmin(ev["score"]))
    occ = int(ev["occupancy"][i])
    return KernelCost(algo=c.algo, cycles=float(ev["cycles"][i]), kernels=int(c.kernels[i]),
                      n_ctas=int(c.n_ctas[i]), occupancy=occ,
                      waves=float(c.n_ctas[i] / (gpu.sms * occ)),
                      compute_cycles=float(ev["compute"][i]),
                      memory_cycles=float(ev["memory"][i]),
                      busy_cycles=float(c.n_ctas[i] * ev["w"][i]), tile=c.tiles[i],
                      split_k=int(c.split[i]), cta_work=float(ev["w"][i]),
                      cta_latency=float(ev["d"][i]))


def gemm_cost(gpu: GPU, precision: str, *, params: ModelParams, **kw: Any) -> KernelCost:
    """Cheapest candidate of :func:`gemm_candidates` (``kw``) under ``params``."""
    return pick(gemm_candidates(gpu, precision, **kw), gpu, params)


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


def _nchw_transposes(g: LayerGeom, precision: str, unit: str, cfg: SchemeConfig
                     ) -> tuple[float, int]:
    if cfg.layout.upper() != "NCHW" or unit != "tensor" or g.kind == "dense":
        return 0.0, 0
    if g.kh == g.kw == 1 and g.sh == g.sw == 1:
        return 0.0, 0  # a 1x1 stride-1 conv is a plain GEMM in NCHW
    eb = ELEMENT_BYTES[canonical_precision(precision)]
    return 2.0 * eb * (g.n_inputs + g.n_outputs), 2


def dense_candidates(g: LayerGeom, gpu: GPU, precision: str,
                     cfg: SchemeConfig = DEFAULT_CONFIG, unit: str | None = None) -> Candidates:
    """Candidate kernels of the ``dense`` scheme for one layer."""
    if g.is_depthwise:
        return depthwise_candidates(g, gpu, precision)
    unit = unit or dense_unit(gpu, precision)
    xb, xk = _nchw_transposes(g, precision, unit, cfg)
    # Measured (h100_cudnn_conv.csv): cuDNN's strict-FP32 convs do not split K at batch 1
    # (ResNet-50 layer4 3x3 at 7x7: 123 us measured, 40 us if split-K were used), so SIMT
    # split-K and GEMV are cuBLAS paths, offered to dense layers only.
    cublas = g.kind == "dense"
    split = cfg.split_k if (unit == "tensor" or cublas) else (1,)
    return gemm_candidates(gpu, precision, m=g.m, ncol=g.cout_g, k_channels=g.cin_g,
                           taps=g.kh * g.kw, batch=g.groups, io_bytes=_io_bytes(g, precision),
                           unit=unit, split_k=split, extra_bytes=xb, extra_kernels=xk,
                           gemv=cfg.gemv and cublas)


def dense_cost(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
               cfg: SchemeConfig = DEFAULT_CONFIG, unit: str | None = None,
               occ_cap: int | None = None) -> KernelCost:
    """The ``dense`` scheme's cost of one layer (implicit GEMM, or direct depthwise)."""
    return pick(dense_candidates(g, gpu, precision, cfg, unit), gpu, params, occ_cap)


def winograd_applies(g: LayerGeom) -> bool:
    """3x3, stride 1, undilated, ungrouped convolution."""
    return (g.kind == "conv" and g.kh == g.kw == 3 and g.sh == g.sw == 1 and g.dh == g.dw == 1
            and g.groups == 1)


def winograd_cost(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                  cfg: SchemeConfig = DEFAULT_CONFIG, occ_cap: int | None = None) -> KernelCost:
    """F(m x m, 3 x 3) Winograd (non-fused: filter/input/output transforms + batched GEMM)."""
    if not winograd_applies(g):
        return dense_cost(g, gpu, precision, params, cfg, occ_cap=occ_cap)
    p = canonical_precision(precision)
    eb = ELEMENT_BYTES[p]
    mt = cfg.winograd_m
    a2 = (mt + 2) ** 2
    tiles = g.n * -(-g.ho // mt) * -(-g.wo // mt)
    t_in, t_out, t_w = a2 * tiles * g.cin, a2 * tiles * g.cout, a2 * g.cin * g.cout
    gemm_io = eb * (t_in + t_w + t_out)
    # Transforms: each reads its source and writes the transformed copy (a memory pass).
    xbytes = eb * ((g.n_inputs + t_in) + (g.weights + t_w) + (t_out + g.n_outputs))
    c = gemm_candidates(gpu, p, m=tiles, ncol=g.cout, k_channels=g.cin, taps=1, batch=a2,
                        io_bytes=gemm_io, unit=dense_unit(gpu, p), split_k=cfg.split_k,
                        extra_bytes=xbytes, extra_kernels=3, algo="winograd")
    return pick(c, gpu, params, occ_cap)


def fft_applies(g: LayerGeom) -> bool:
    """Stride-1, undilated, ungrouped convolution with a window of at least 3."""
    return (g.kind == "conv" and g.sh == g.sw == 1 and g.dh == g.dw == 1 and g.groups == 1
            and min(g.kh, g.kw) >= 3)


def fft_cost(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
             cfg: SchemeConfig = DEFAULT_CONFIG, occ_cap: int | None = None) -> KernelCost:
    """FFT convolution: forward FFTs, per-bin complex GEMM, inverse FFT (see module doc)."""
    if not fft_applies(g):
        return dense_cost(g, gpu, precision, params, cfg, occ_cap=occ_cap)
    p = canonical_precision(precision)
    ph = 1 << (g.h + g.kh - 2).bit_length()
    pw = 1 << (g.w + g.kw - 2).bit_length()
    bins = ph * (pw // 2 + 1)
    cbytes = 8  # complex64 intermediates
    simt = rate(gpu, "fp32", "simt", params)
    fft_fma = 1.25 * ph * pw * math.log2(ph * pw)  # ~2.5 N log2 N flops per real FFT plane
    planes = g.n * g.cin + g.cin * g.cout + g.n * g.cout
    fft_cycles = planes * fft_fma / (simt * gpu.sms)
    eb = ELEMENT_BYTES[p]
    xbytes = (eb * (g.n_inputs + g.weights + g.n_outputs)
              + cbytes * bins * (g.n * g.cin + g.cin * g.cout + g.n * g.cout))
    c = gemm_candidates(gpu, "fp32", m=g.n, ncol=g.cout, k_channels=4 * g.cin, taps=1,
                        batch=bins,
                        io_bytes=cbytes * bins * (g.n * g.cin + g.cin * g.cout + g.n * g.cout),
                        unit="simt", extra_bytes=xbytes, extra_kernels=3, algo="fft")
    kc = pick(c, gpu, params, occ_cap)
    return dataclasses.replace(kc, cycles=kc.cycles + fft_cycles,
                               compute_cycles=kc.compute_cycles + fft_cycles,
                               busy_cycles=kc.busy_cycles + fft_cycles * gpu.sms)


def scheme_dense_cost(scheme: str, g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                      cfg: SchemeConfig = DEFAULT_CONFIG) -> KernelCost:
    """Frame-independent per-layer cost of ``dense``, ``winograd`` or ``fft``."""
    if scheme == "dense":
        return dense_cost(g, gpu, precision, params, cfg)
    if scheme == "winograd":
        return winograd_cost(g, gpu, precision, params, cfg)
    if scheme == "fft":
        return fft_cost(g, gpu, precision, params, cfg)
    raise ReplayError(f"{scheme!r} is not a frame-independent scheme")


def best_algorithm(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                   cfg: SchemeConfig = DEFAULT_CONFIG,
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


@dataclasses.dataclass(frozen=True)
class SparseTile:
    """How a zero-skipping kernel tiles one layer: the tile and its split-K factor."""

    tile: Tile
    split: int = 1


# Reductions of one layer's per-position counts. One chunk's counts feed every scheme, GPU
# and launch model of a replay (and every corner of a band replaying the same counts): the
# scheme costs reduce each counts array once (:func:`memo`) instead of once per cost call.

_MEMO: dict[int, tuple[weakref.ref, dict[Hashable, Any]]] = {}


def _forget(ref: weakref.ref, key: int) -> None:
    ent = _MEMO.get(key)
    if ent is not None and ent[0] is ref:
        del _MEMO[key]


def memo(cnt: Any, key: Hashable, fn: Callable[[], Any]) -> Any:
    """``fn()``, a pure function of the counts array ``cnt`` and ``key``, computed once per
    array and kept while the array lives.

    The first use marks ``cnt`` read-only, so that an in-place write to it afterwards raises
    instead of reading a stale reduction. A view is memoised under the array that owns its
    memory, by where it starts, its shape, strides and dtype, when that array is read-only
    already (a chunk of :class:`~secnn_jax.timing.replayer.ReducedEvents`, whose arrays are
    frozen when made: every replay of the chunk, under every GPU and launch model and every
    corner of a band, reads one reduction); a view of a writable array, or any other object,
    is not memoised (``fn()`` each time). Callers must not write to the returned arrays
    (those of this module are read-only).
    """
    if not isinstance(cnt, np.ndarray):
        return fn()
    owner, where = cnt, key
    if cnt.base is not None:
        owner = cnt.base
        if (not isinstance(owner, np.ndarray) or owner.base is not None
                or owner.flags.writeable):
            return fn()
        start = cnt.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
        where = (start, cnt.shape, cnt.strides, cnt.dtype.str, key)
    k = id(owner)
    ent = _MEMO.get(k)
    if ent is None or ent[0]() is not owner:
        owner.flags.writeable = False
        ent = _MEMO[k] = (weakref.ref(owner, lambda ref, k=k: _forget(ref, k)), {})
    out = ent[1]
    if where not in out:
        out[where] = fn()
    return out[where]


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.flags.writeable = False
    return arrays


@dataclasses.dataclass(frozen=True, eq=False)
class Fanin:
    """The counts ``where(cnt > 0, fanin, 0)`` (int64), never built: every output whose
    receptive field holds any work item does its full ``fanin`` (CBinfer's recomputation).
    Its reductions come from those of ``cnt`` (exact integers: the same values)."""

    cnt: np.ndarray
    fanin: int

    @property
    def shape(self) -> tuple[int, ...]:
        """The counts' shape."""
        return self.cnt.shape


def tile_max_sum(cnt: np.ndarray | Fanin, bm: int, shared: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per row tile of ``bm`` positions: ``(max, sum)`` of ``cnt [T, M, G]`` over the tile
    (``workmaps.tile_reduce``'s values), memoised per counts array (:func:`memo`) if
    ``shared``."""
    def keep(c: np.ndarray, key: Hashable, fn: Callable[[], Any]) -> Any:
        return memo(c, key, fn) if shared else fn()

    if isinstance(cnt, Fanin):
        c, fanin = cnt.cnt, cnt.fanin
        mx, nnz = keep(c, ("nnz_tiles", bm),
                       lambda: _frozen(*tile_reduce((c > 0).view(np.uint8), bm)))
        return _frozen(np.where(mx > 0, np.int64(fanin), np.int64(0)), nnz * np.int64(fanin))
    return keep(cnt, ("tiles", bm), lambda: _frozen(*tile_reduce(cnt, bm)))


def _depthwise_tiles(cnt: np.ndarray | Fanin, bm: int, bn: int, mult: int, cout: int,
                     shared: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(max, sum)`` of a depthwise layer's ``cnt [T, M, C]`` over each CTA's ``bm`` positions
    and ``bn`` output channels (each input channel ``mult`` times, zero-work channels padding
    the last tile): ``[T, Mt, ceil(cout / bn)]``. Reduced over positions first (a channel's
    copies and the zero padding reduce alike, so the values are the padded array's)."""
    mx, sm = tile_max_sum(cnt, bm, shared)
    if mult > 1:
        mx, sm = np.repeat(mx, mult, axis=-1), np.repeat(sm, mult, axis=-1)
    nct = -(-cout // bn)
    if nct * bn != cout:
        pad = [(0, 0)] * (mx.ndim - 1) + [(0, nct * bn - cout)]
        mx, sm = np.pad(mx, pad), np.pad(sm, pad)
    shp = mx.shape[:-1] + (nct, bn)
    return mx.reshape(shp).max(-1), sm.reshape(shp).sum(-1)


def frame_totals(cnt: np.ndarray | Fanin) -> np.ndarray:
    """``[T]`` each frame's total count (int64), memoised per counts array."""
    if isinstance(cnt, Fanin):
        c = cnt.cnt
        nnz = memo(c, "nnz_frames",
                   lambda: _frozen(np.count_nonzero(c.reshape(c.shape[0], -1), axis=1)
                                   .astype(np.int64))[0])
        return nnz * np.int64(cnt.fanin)
    return memo(cnt, "frames", lambda: _frozen(cnt.reshape(cnt.shape[0], -1).sum(1))[0])


def touched_frac(cnt: np.ndarray) -> np.ndarray:
    """``[T]`` the fraction of ``cnt [T, ..., M, G]``'s entries that are non-zero (the outputs
    a sparse kernel touches), memoised per counts array."""
    return memo(cnt, "touched", lambda: _frozen((cnt > 0).mean(axis=(-2, -1)))[0])


def sparse_tile(g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                cfg: SchemeConfig = DEFAULT_CONFIG) -> SparseTile:
    """The tiling a zero-skipping SIMT kernel uses: the best dense SIMT candidate of the layer
    (tile, split-K or GEMV), in NHWC — so that with no zero to skip it costs what ``dense``
    costs on the SIMT lanes."""
    if g.is_depthwise:
        return SparseTile(DEPTHWISE_TILE)
    kc = dense_cost(g, gpu, precision, params, dataclasses.replace(cfg, layout="NHWC"),
                    unit="simt")
    assert kc.tile is not None
    return SparseTile(kc.tile, kc.split_k)


def sparse_grid(cnt: np.ndarray, g: LayerGeom, gpu: GPU, precision: str, params: ModelParams,
                tile: Tile | SparseTile, compact: bool = False) -> SparseGrid:
    """CTA work of a zero-skipping kernel from per-position counts ``cnt [T, M, G]``.

    With a split-K :class:`SparseTile` every tile's CTA is split into ``split`` CTAs over K,
    each taking ``1/split`` of the depth (the caller adds the workspace and reduction kernel).
    ``cnt`` counts the inputs that must be processed in each output's receptive field (per
    group; per channel for depthwise). SIMT (``compact=False``): a CTA's depth is the largest
    count over its tile (busiest lane -> busiest warp -> CTA). Compacted (``secnn_hw``): the
    mean count over its tile's outputs.
    """
    return sparse_grids(cnt, g, gpu, precision, params, tile, (compact,))[0]


def sparse_grids(cnt: np.ndarray | Fanin, g: LayerGeom, gpu: GPU, precision: str,
                 params: ModelParams, tile: Tile | SparseTile,
                 compact: tuple[bool, ...] = (False, True), *, shared: bool = False
                 ) -> tuple[SparseGrid, ...]:
    """:func:`sparse_grid` for each ``compact`` choice, from one reduction of ``cnt`` (or of a
    :class:`Fanin`'s counts); ``shared``: that reduction is memoised per counts array
    (:func:`memo`: ``cnt`` becomes read-only), as the scheme costs of a replay share it, and
    so is each grid (read-only) for the values it is computed from."""
    p = canonical_precision(precision)
    r = rate(gpu, p, "simt", params)
    st = tile if isinstance(tile, SparseTile) else SparseTile(tile)
    occ = st.tile.occupancy(gpu, ELEMENT_BYTES[p])
    if not shared:
        return _sparse_grids(cnt, g, r, occ, params, st, compact, False)
    # One grid per compact choice, memoised on the values it is computed from: the latest
    # GRIDS_PER_COUNTS of each counts array (a band's corners would otherwise pile up grids).
    arr, fanin = (cnt.cnt, cnt.fanin) if isinstance(cnt, Fanin) else (cnt, None)
    key = (fanin, g, st, float(r).hex(), float(params.latency_cycles).hex(),
           float(params.cta_overhead_cycles).hex(), occ)
    grids = memo(arr, "grids", dict)  # insertion order: least recently used first
    out = []
    for cp in compact:  # one or two choices
        grid = grids.pop((*key, cp), None)
        if grid is None:
            grid = _frozen_grid(_sparse_grids(cnt, g, r, occ, params, st, (cp,), True)[0])
        grids[(*key, cp)] = grid
        while len(grids) > GRIDS_PER_COUNTS:
            del grids[next(iter(grids))]
        out.append(grid)
    return tuple(out)


#: How many sparse grids :func:`sparse_grids` keeps per counts array (``shared``): enough for
#: the GPUs, tilings and compact choices one chunk's replay asks of it.
GRIDS_PER_COUNTS = 16


def _frozen_grid(grid: SparseGrid) -> SparseGrid:
    _frozen(grid.w, grid.d, grid.active_frac)
    return grid


def _sparse_grids(cnt: np.ndarray | Fanin, g: LayerGeom, r: float, occ: int,
                  params: ModelParams, st: SparseTile, compact: tuple[bool, ...], shared: bool
                  ) -> tuple[SparseGrid, ...]:
    """:func:`sparse_grids` at the SIMT rate ``r`` and occupancy ``occ``."""
    t, split = st.tile, max(1, st.split)
    if g.is_depthwise:
        # cnt [T, M, C]: reduce over bm positions and over bn channels (x channel multiplier).
        mx, sm = _depthwise_tiles(cnt, t.bm, t.bn, g.cout // g.cin, g.cout, shared)
    else:
        mx, sm = tile_max_sum(cnt, t.bm, shared)  # [T, Mt, G]
        nt = -(-g.cout_g // t.bn)
    out = []
    for cp in compact:  # one or two choices
        if g.is_depthwise:
            depth = sm / (t.bm * t.bn) if cp else mx.astype(np.float64)
            depth = depth.reshape(depth.shape[0], -1)
        else:
            depth = sm / t.bm if cp else mx.astype(np.float64)
            # CTA grid (group, m-tile, n-tile): the n-tiles of a group share their rows' work.
            depth = np.repeat(np.moveaxis(depth, -1, 1), nt, axis=-1)  # [T, G, Mt*nt]
            depth = depth.reshape(depth.shape[0], -1)
        if split > 1:  # each of the split CTAs of a tile takes 1/split of its K (rounded up)
            depth = np.repeat(np.ceil(depth / split) if not cp else depth / split, split,
                              axis=-1)
        if g.is_depthwise:  # independent tap loads: one latency per CTA with work
            steps_per_stage = (depth > 0).astype(np.float64)
        else:
            steps_per_stage = np.ceil(depth / t.bk) / t.stages
        w = t.bm * t.bn * depth / r
        d = steps_per_stage * params.latency_cycles + np.where(depth > 0,
                                                               params.cta_overhead_cycles, 0.0)
        out.append(SparseGrid(w=w, d=d, occupancy=occ, tile=t,
                              active_frac=(depth > 0).mean(-1)))
    return tuple(out)


def dense_grid(kc: KernelCost, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-CTA ``(w, d)`` ``[T, n_ctas]`` of a dense implicit-GEMM or depthwise kernel."""
    n = max(kc.n_ctas, 1)
    return np.full((frames, n), kc.cta_work), np.full((frames, n), kc.cta_latency)



def elementwise_cost(elements: int, nbytes: float, flops: float, gpu: GPU, precision: str,
                     params: ModelParams, occ_cap: int | None = None) -> KernelCost:
    """A bandwidth-bound elementwise, pooling or reduction kernel over ``elements`` outputs.

    ``nbytes`` is everything the kernel reads and writes, ``flops`` its arithmetic (on the SIMT
    lanes). CTAs of :data:`ELEMENTWISE_TILE` threads each handle ``ELEMENTS_PER_THREAD`` outputs;
    a CTA waits one memory latency (its loads are independent) and works
    ``flops / n_ctas / rate`` cycles; the kernel takes at least ``nbytes`` over the bandwidth.
    """
    t = ELEMENTWISE_TILE
    per_cta = t.threads * ELEMENTS_PER_THREAD
    n_ctas = max(1, -(-int(elements) // per_cta))
    r = rate(gpu, precision, "simt", params)
    w = float(flops) / n_ctas / r
    d = params.latency_cycles + params.cta_overhead_cycles
    occ = t.occupancy(gpu, ELEMENT_BYTES[canonical_precision(precision)])
    if occ_cap is not None:
        occ = min(occ, max(1, int(occ_cap)))
    comp = float(uniform_makespan(n_ctas, w, d, gpu.sms, occ))
    mem = float(mem_cycles(gpu, nbytes, params))
    return KernelCost(algo="elementwise", cycles=max(comp, mem), kernels=1, n_ctas=n_ctas,
                      occupancy=occ, waves=n_ctas / (gpu.sms * occ), compute_cycles=comp,
                      memory_cycles=mem, busy_cycles=n_ctas * w, tile=t, cta_work=w,
                      cta_latency=d)
