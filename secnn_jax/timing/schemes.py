"""The registry of execution schemes: name -> small cost functions that :func:`.replay` folds over.

Every scheme runs the *whole network* — its linear layers and the op kernels between them
(:mod:`.opkernels`, one fusion policy per comparison) — under one launch model (:mod:`.launch`).
A scheme is a :class:`Scheme`: which event indicators it needs, a frame-independent ``plan``
(per GPU: kernel choices, tiles, occupancy) and a ``cost`` of one chunk of frames.

* ``dense`` — cuDNN/cuBLAS-style kernels (implicit GEMM with tile, split-K and GEMV candidates;
  direct depthwise), the fastest per layer, layer after layer (:mod:`.kernels`).
* ``winograd`` / ``fft`` — Winograd F(m x m, 3 x 3) / FFT convolution where they apply, ``dense``
  elsewhere.
* ``zero_skip`` — layer after layer, a SIMT kernel whose lanes skip zero inputs (a CTA costs
  its busiest lane, or the mean of its lanes after compaction where that pays); with no zero
  input and no balancing it costs what ``dense`` costs on the SIMT unit.
* ``secnn_sw`` / ``secnn_hw`` — one SE-CNN graph on two machines (:class:`.secnn.Machine`):
  the parallel phase's kernels all issued at once, then per layer a compare, an optional
  compaction and an amendment. On the stock GPU (``secnn_sw``) each is a kernel
  (``compare_ops_per_neuron`` SIMT instructions per compare, ``sw_compaction``) behind the
  launch model's boundaries; with the SM extension (``secnn_hw``, declared in
  :data:`.secnn.SM_EXTENSION`) ``comparators_per_sm`` hardware comparators, compaction in
  hardware or software (``hw_compaction``), and each layer's compare -> compaction -> amend
  sequenced by hardware: no kernel boundaries inside a correction, one ``hw_dependency_us``
  before it. Op kernels between the layers are ordinary kernels.
* ``deltacnn`` / ``cbinfer`` — the change-based peers on a stock GPU, or with
  ``peer_extension`` on the GPU with SE-CNN's SM extension. How they are costed:
  deltacnn (DeltaCNN, CVPR 2022): layer after layer on a stock GPU; frame 0 dense (cuDNN-style,
  plus writing the output buffer); later frames per layer: delta generation fused with the
  activation's truncation into the previous layer's epilogue (read x and the accumulated value,
  write both and the update mask; the first layer's is its own elementwise kernel), a sparse
  convolution over the update mask (each output whose receptive field saw a change accumulates
  the deltas of its changed inputs; lanes balanced by compaction where it pays, as every
  stock-GPU sparse kernel), read-modify-write of the touched outputs: one kernel per layer.
  cbinfer (change-based inference): per layer the change map (the same detection, its own
  elementwise kernel) and the output pixels whose receptive field holds a changed input
  recomputed with their full fan-in (a tile runs when any of its outputs is touched), writing
  them into the previous output. Both replay the accumulated predictor's events: a propagated
  input is one that changed beyond tau. On the GPU with SE-CNN's SM extension
  (SchemeConfig.peer_extension, set by extended_peer_config) each peer takes what SE-CNN takes,
  by the same rules, where it helps: its change detection (a threshold compare of x against the
  stored value, the compare SE-CNN's comparators do) on the hardware comparators, so no SIMT
  compare instructions (its time stays the pass's memory time); the dependency signal instead of
  the kernel boundary between a detection kernel and its update (CBinfer's every layer,
  DeltaCNN's first: its other delta generations are fused into the previous layer's epilogue,
  with no boundary to remove) where hw_dependency_us is the shorter wait, and no boundary before
  a compaction pass inside the layer; hardware compaction where hw_compaction is hardware; and
  with buffer_placement on_chip an on-chip buffer of SE-CNN's capacity holding its stored inputs
  (their read and write cost no memory time) and then, in layer order while they fit, its output
  buffers (the touched outputs' read and write in SRAM, their new values still written to memory
  for the next layer).

Shared techniques, each applied by one rule to every scheme whose library or design uses it:
load balancing by stream compaction (:func:`_balanced`: every SIMT sparse kernel, ``auto`` on
a stock GPU), change detection and compares as elementwise kernels with a memory-latency floor
(:func:`_detection`), split-K and GEMV in every dense and zero-skipping tiling
(:mod:`.kernels`), and fusion of op groups into the producing kernel's epilogue under
``epilogue`` (:mod:`.opkernels`; SE-CNN re-executes them in the amendment's epilogue,
DeltaCNN fuses its delta generation into the previous layer's).

Both SE-CNN schemes compare every input neuron (reading ``x`` and the prediction, and the
predictor's update writing the next prediction: the compare is at least that memory time; the
prediction buffer's placement, ``buffer_placement``, decides whether that traffic goes through
the cache hierarchy like any other, always to DRAM, or to on-chip SRAM), amend each
mispredicted input over its exact fan-out (gathered: each
output re-accumulates the mispredicted inputs of its receptive field; a CTA costs its busiest
lane without compaction, the mean of its lanes with it), read the mispredicted inputs' deltas
(or the compacted lists) and read-modify-write the outputs they touch. A software compaction
writes ``compaction_bytes_per_miss`` per mispredicted input and waits one decoupled look-back
scan latency (two memory latencies). Both phases are timed by :mod:`.scheduler` (see
:mod:`.secnn`).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import kernels as K
from secnn_jax.timing import scheduler as SCH
from secnn_jax.timing import secnn as SE
from secnn_jax.timing.energy import METHOD_BUFFERS, WORK_KEYS, graph_work
from secnn_jax.timing.gpus import ELEMENT_BYTES, GPU
from secnn_jax.timing.launch import LaunchCosts, persistent_occupancy
from secnn_jax.timing.names import BASELINES, SCHEMES, SECNN
from secnn_jax.timing.opkernels import OpPlan, plan_ops
from secnn_jax.timing.params import ModelParams, SchemeConfig
from secnn_jax.timing.sm import dealt_makespan, mem_cycles, rate

__all__ = ["BASELINES", "REGISTRY", "SCHEMES", "SECNN", "Context", "Scheme", "SchemeTimes",
           "extended_peer_config", "needs"]


@dataclasses.dataclass(frozen=True)
class Context:
    """Everything frame-independent one scheme's cost on one GPU depends on.

    Attributes:
      geoms: the linear layers.
      ops: op records (:class:`~.opkernels.OpGeom` or :class:`secnn_jax.netops.NetOp`).
      gpu, precision, params, cfg: the GPU, arithmetic precision, fitted parameters and knobs.
      launch: the launch model's costs on ``gpu``.
      fusion: the fusion policy.
    """

    geoms: tuple[LayerGeom, ...]
    ops: tuple[Any, ...]
    gpu: GPU
    precision: str
    params: ModelParams
    cfg: SchemeConfig
    launch: LaunchCosts
    fusion: str

    @property
    def persistent(self) -> bool:
        """Whether kernels run as phases of one persistent kernel."""
        return self.launch.model == "persistent"

    @property
    def eb(self) -> int:
        """Bytes per element."""
        return ELEMENT_BYTES[self.precision]

    def op_plan(self, occ_cap: int | None) -> OpPlan:
        """The op kernels' costs (occupancy capped inside a persistent kernel)."""
        return plan_ops(self.ops, self.geoms, self.gpu, self.precision, self.params, self.fusion,
                        occ_cap)


@dataclasses.dataclass(frozen=True)
class SchemeTimes:
    """One scheme's timing of a chunk of frames (cycles), before it becomes a result.

    Attributes:
      total: ``[T]`` frame time.
      layer: ``[T, L]`` critical-path time attributed to each linear layer (and the ops after it).
      phases: ``{phase: [T]}`` (:data:`~.names.PHASES`).
      layer_phases: ``{name: [T, L]}``.
      busy: ``[T]`` SM-cycles of work.
      spans: ``{track: (labels, start [T, n], end [T, n])}`` of what runs when.
      work: ``{key: [T]}`` work executed (:data:`~.energy.WORK_KEYS`), for the energy model.
      span_args: ``{track: {"sms", "ctas", "bytes": [T, n]}}``: per span the SMs it held
        while it ran (SMs with one of its CTAs resident; a kernel of the parallel phase, its
        average share of the machine), its CTAs with work and the bytes it moved.
      span_work: ``{track: {key: [T, n]}}``: the work each span's kernel executed
        (:data:`~.energy.WORK_KEYS`); ``work`` is their sum (:func:`~.energy.graph_work`).
    """

    total: np.ndarray
    layer: np.ndarray
    phases: Mapping[str, np.ndarray]
    layer_phases: Mapping[str, np.ndarray]
    busy: np.ndarray
    spans: Mapping[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]]
    work: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    span_args: Mapping[str, Mapping[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    span_work: Mapping[str, Mapping[str, np.ndarray]] = dataclasses.field(default_factory=dict)


def _span_args(ctas: np.ndarray, nbytes: np.ndarray, sms: int,
               share: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``sms``, ``ctas``, ``bytes`` of spans: a kernel holds the SMs its CTAs occupy (at most
    all of them), or ``share`` (its average SMs while it shares the machine) when smaller."""
    ctas = np.asarray(ctas, np.float64)
    held = np.minimum(ctas, float(sms))
    if share is not None:
        held = np.minimum(held, np.ceil(share - 1e-9))
    return {"sms": held, "ctas": ctas, "bytes": np.asarray(nbytes, np.float64)}


def _active_ctas(grid: K.SparseGrid) -> np.ndarray:
    """``[T]`` CTAs of a sparse grid with any work."""
    return (grid.w > 0).sum(-1)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One execution scheme of the registry.

    Attributes:
      name: scheme name (:data:`~.names.SCHEMES`).
      needs: event indicators its cost reads (:data:`~.workmaps.INDICATORS`); ``()`` for
        frame-independent schemes.
      plan: ``plan(ctx) -> plan`` (frame-independent; computed once per GPU and replay).
      cost: ``cost(ctx, plan, counts, misses, frames, frame_ids) -> SchemeTimes`` for one
        chunk, with ``counts[l][indicator]`` the per-position counts of layer ``l``, ``misses``
        ``[T, L]`` the mispredicted inputs per layer and ``frame_ids`` the stream's frame
        indices (a change-based peer runs frame 0 densely).
      events: whose events the scheme is replayed from: ``"zero"`` (the zero predictor's:
        the exact zero pattern), ``"own"`` (the SE-CNN predictor's) or ``"accumulated"``
        (:func:`secnn_jax.predictors.accumulated`, DeltaCNN's propagation rule).
    """

    name: str
    needs: tuple[str, ...]
    plan: Callable[[Context], Any]
    cost: Callable[..., SchemeTimes]
    events: str = "zero"


class _Work:
    """Counts a frame's work for the energy model on the graph's nodes: FMAs by unit (from
    SM-cycles of work at the unit's rate), shared-memory tile traffic of GEMM tiles, compares,
    and each kernel's bytes as L2 traffic when they fit in L2, else DRAM traffic (the time
    model's rule). Every count goes to the node set by :meth:`node` (``(kind, index)``:
    ``("layer", l)``, ``("op", k)``, ``("parallel", l)``, ``("compare", l)``,
    ``("compaction", l)``, ``("amend", l)``); :meth:`on_spans` lays them on the schedule's
    kernels, and the frame's work is their sum (:func:`~.energy.graph_work`)."""

    def __init__(self, ctx: Context, frames: int) -> None:
        self.ctx = ctx
        self.frames = frames
        self.nodes: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self.at: tuple[str, int] = ("frame", -1)
        self._rates: dict[str, float] = {}

    def node(self, kind: str, index: int) -> _Work:
        """Counts that follow go to node ``(kind, index)``."""
        self.at = (kind, int(index))
        return self

    def add(self, key: str, amount: Any) -> None:
        """Adds ``amount`` (``[T]`` or scalar) of ``key`` to the current node."""
        v = np.asarray(amount, np.float64)
        if v.ndim and v.shape != (self.frames,):
            v = np.broadcast_to(v, (self.frames,))
        w = self.nodes.setdefault(self.at, {})
        old = w.get(key)
        # A scalar is added as is: elementwise, the same sums as its broadcast (and cheaper).
        if old is None:
            w[key] = np.full(self.frames, v) if not v.ndim else v.copy()
        else:
            w[key] = old + v

    def fmas(self, busy_cycles: Any, unit: str, tile: K.Tile | None = None) -> None:
        c = self.ctx
        if unit not in self._rates:
            self._rates[unit] = rate(c.gpu, c.precision, unit, c.params)
        macs = np.asarray(busy_cycles, np.float64) * self._rates[unit]
        self.add("fma_tensor" if unit == "tensor" else "fma_simt", macs)
        if tile is not None and tile.bm > 1 and tile.bn > 1 and tile.bk > 1:
            # A GEMM tile stages (bm + bn) x bk operands per bm x bn x bk MACs in shared
            # memory: written once and read once.
            self.add("smem_bytes", 2.0 * c.eb * macs * (1.0 / tile.bm + 1.0 / tile.bn))

    def bytes(self, nbytes: Any) -> None:
        nb = np.asarray(nbytes, np.float64)
        in_l2 = nb <= self.ctx.gpu.l2_bytes
        self.add("l2_bytes", np.where(in_l2, nb, 0.0))
        self.add("dram_bytes", np.where(in_l2, 0.0, nb))

    def compares(self, n: Any, instructions: Any = 0.0) -> None:
        """``n`` compares; ``instructions`` SIMT lane-instructions they take (0 on hardware
        comparators; the issue overhead is charged per instruction)."""
        self.add("compares", n)
        self.add("compare_instructions", instructions)

    def ops(self, ops: OpPlan, kernels: Sequence[int] | None = None) -> None:
        """The op kernels (all, or those given) on the SIMT lanes, each on its node."""
        for k in range(len(ops.kernels)) if kernels is None else kernels:
            self.node("op", k).fmas(ops.kernel_busy[k], "simt")
            self.bytes(ops.kernel_bytes[k])

    def on_spans(self, spans: Mapping[str, Sequence[tuple[str, int]]]
                 ) -> dict[str, dict[str, np.ndarray]]:
        """``{track: {key: [T, n]}}``: each node's counts on its kernel of the schedule
        (``spans[track]``: the nodes of the track's kernels, in order). A node with no kernel
        must have counted nothing."""
        placed = {n for nodes in spans.values() for n in nodes}
        for n, w in self.nodes.items():
            if n not in placed and any(np.any(v != 0) for v in w.values()):
                raise AssertionError(f"work counted on {n}, which is no kernel of the schedule")
        zero = np.zeros(self.frames)
        return {track: {k: (np.stack([self.nodes.get(n, {}).get(k, zero) for n in nodes], 1)
                            if nodes else np.zeros((self.frames, 0))) for k in WORK_KEYS}
                for track, nodes in spans.items()}


def _kernel_bytes(ctx: Context, g: LayerGeom, kc: K.KernelCost) -> float:
    """Bytes one layer's dense operation moves: inputs, weights, outputs, a split-K workspace."""
    ws = 2.0 * kc.split_k * g.groups * g.m * g.cout_g * 4 if kc.split_k > 1 else 0.0
    return float(ctx.eb * (g.n_inputs + g.weights + g.n_outputs) + ws)


def _unit(kc: K.KernelCost) -> str:
    return kc.tile.unit if kc.tile is not None else "simt"


# --- shared techniques ----------------------------------------------------------------------
# Each is applied by one rule to every scheme whose library or design uses it.

@dataclasses.dataclass(frozen=True)
class _Sparse:
    """A SIMT sparse kernel over one layer after load balancing (:func:`_balanced`).

    Attributes:
      grid: the CTA grid taken (per frame: balanced where ``balanced``; mixed grids hold the
        busiest-lane CTAs where not).
      compute: ``[T]`` its CTAs' makespan alone.
      busy: ``[T]`` SM-cycles of work.
      balanced: ``[T]`` whether it ran load-balanced.
      compaction: ``[T]`` cycles of the software compaction pass it waited for (0: none or in
        hardware).
      compaction_bytes: ``[T]`` bytes of that pass.
    """

    grid: K.SparseGrid
    compute: np.ndarray
    busy: np.ndarray
    balanced: np.ndarray
    compaction: np.ndarray
    compaction_bytes: np.ndarray


def _balanced(ctx: Context, cnt: np.ndarray | K.Fanin, g: LayerGeom, tile: K.SparseTile,
              occ_cap: int | None, items: np.ndarray | None, compaction: str,
              boundary: float, floor: Any = 0.0) -> _Sparse:
    """Load balancing by stream compaction, a technique any SIMT sparse kernel may use
    (single-pass decoupled look-back scan: Merrill & Garland, NVIDIA TR 2016).

    ``cnt`` counts each output's work items (``items [T]`` of them in the layer): ``none`` — a
    CTA costs its busiest lane (``items=None``: the layer's inputs times the fraction of its
    receptive-field work present); ``software`` — a compaction pass writes
    ``compaction_bytes_per_miss`` per item and reads the item bitmap, waits two memory
    latencies (the scan's look-back; no pass where there is no item), and a CTA then costs
    the mean of its lanes; ``hardware``
    — the mean, with no pass (SE-CNN's SM extension); ``auto`` — per frame the cheaper of
    ``none`` and ``software`` (the pass and its kernel ``boundary`` counted; the kernel takes
    at least ``floor``, its memory time), as a library would choose.
    """
    gpu, params, cfg = ctx.gpu, ctx.params, ctx.cfg
    frames = cnt.shape[0]

    def run(grid: K.SparseGrid) -> tuple[K.SparseGrid, np.ndarray]:
        return grid, dealt_makespan(grid.w, grid.d, gpu.sms, _occ(grid, occ_cap))

    zero = np.zeros(frames)
    if compaction in ("none", "hardware"):
        grid, mk = run(K.sparse_grids(cnt, g, gpu, ctx.precision, params, tile,
                                      (compaction == "hardware",), shared=True)[0])
        return _Sparse(grid, mk, grid.w.sum(-1), np.full(frames, compaction == "hardware"),
                       zero, zero)
    if items is None:
        fanin = max(1, g.cin_g * g.kh * g.kw)
        items = (K.frame_totals(cnt) / max(1, math.prod(cnt.shape[1:]) * fanin)
                 * g.n_inputs)
    cb = cfg.compaction_bytes_per_miss * np.asarray(items, np.float64) + g.n_inputs / 8.0
    grids = K.sparse_grids(cnt, g, gpu, ctx.precision, params, tile,
                           (True,) if compaction == "software" else (True, False),
                           shared=True)
    bal = grids[0]
    # No work item, no pass (the compare or the predictor counted them).
    has = bal.active_frac > 0
    cb = np.where(has, cb, 0.0)
    pass_t = np.where(has, mem_cycles(gpu, cb, params) + 2.0 * params.latency_cycles, 0.0)
    if compaction == "software":
        bal, bmk = run(bal)
        return _Sparse(bal, bmk, bal.w.sum(-1), np.ones(frames, bool), pass_t, cb)
    raw, rmk = run(grids[1])
    # The balanced kernel's makespan is at least its work over the SMs and its largest CTA:
    # where even that cannot pay for the pass, it is not needed.
    lower = np.maximum.reduce([bal.w.sum(-1) / gpu.sms, bal.w.max(-1, initial=0.0),
                               bal.d.max(-1, initial=0.0)])
    if not (np.maximum(lower, floor) + pass_t + boundary < np.maximum(rmk, floor)).any():
        return _Sparse(raw, rmk, raw.w.sum(-1), np.zeros(frames, bool), zero, zero)
    bal, bmk = run(bal)
    use = np.maximum(bmk, floor) + pass_t + boundary < np.maximum(rmk, floor)
    grid = K.SparseGrid(w=np.where(use[:, None], bal.w, raw.w),
                        d=np.where(use[:, None], bal.d, raw.d), occupancy=raw.occupancy,
                        tile=raw.tile, active_frac=raw.active_frac)
    return _Sparse(grid, np.where(use, bmk, rmk), grid.w.sum(-1), use,
                   np.where(use, pass_t, 0.0), np.where(use, cb, 0.0))


def _detection(ctx: Context, n_in: int, nbytes: float, occ_cap: int | None) -> float:
    """A change-detection or compare pass over ``n_in`` inputs moving ``nbytes`` as its own
    kernel: an elementwise kernel (its bytes over the bandwidth, one memory latency per CTA:
    :func:`~.kernels.elementwise_cost`), like every other elementwise kernel."""
    return K.elementwise_cost(n_in, nbytes, 0.0, ctx.gpu, ctx.precision, ctx.params,
                              occ_cap).cycles


# --- layer after layer ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _LayerwisePlan:
    costs: tuple[K.KernelCost, ...]
    ops: OpPlan
    occ_cap: int | None


def _capped_plan(ctx: Context, choose: Callable[[int | None], Sequence[K.KernelCost]]
                 ) -> tuple[tuple[K.KernelCost, ...], int | None]:
    """Per-layer kernels, re-chosen at a persistent kernel's fixed occupancy until stable."""
    costs = tuple(choose(None))
    if not ctx.persistent:
        return costs, None
    cap = persistent_occupancy([c.occupancy for c in costs]
                               + [K.ELEMENTWISE_TILE.occupancy(ctx.gpu, ctx.eb)])
    for _ in range(4):  # a re-choice can only lower the cap; it settles in a step or two
        costs = tuple(choose(cap))
        new = persistent_occupancy([cap] + [c.occupancy for c in costs])
        if new == cap:
            break
        cap = new
    return costs, cap


def _frame_independent_plan(scheme: str) -> Callable[[Context], _LayerwisePlan]:
    def plan(ctx: Context) -> _LayerwisePlan:
        def choose(cap: int | None) -> list[K.KernelCost]:
            fn = {"dense": K.dense_cost, "winograd": K.winograd_cost, "fft": K.fft_cost}[scheme]
            if scheme == "dense":
                return [fn(g, ctx.gpu, ctx.precision, ctx.params, ctx.cfg, occ_cap=cap)
                        for g in ctx.geoms]
            return [fn(g, ctx.gpu, ctx.precision, ctx.params, ctx.cfg, cap) for g in ctx.geoms]

        costs, cap = _capped_plan(ctx, choose)
        return _LayerwisePlan(costs, ctx.op_plan(cap), cap)

    return plan


def _program(ctx: Context, ops: OpPlan) -> tuple[list[tuple[str, int]], np.ndarray]:
    """Items of a layer-after-layer frame in program order: ``("layer", l)`` / ``("op", k)``,
    and each item's owner layer (ops before the first layer belong to layer 0)."""
    items: list[tuple[str, int]] = [("op", k) for k in np.flatnonzero(ops.kernel_after == -1)]
    for lyr in range(len(ctx.geoms)):
        items.append(("layer", lyr))
        items += [("op", int(k)) for k in np.flatnonzero(ops.kernel_after == lyr)]
    owner = np.array([max(i, 0) if t == "layer" else max(int(ops.kernel_after[i]), 0)
                      for t, i in items], np.int64)
    return items, owner


def _layer_times(end: np.ndarray, owner: np.ndarray, n_layers: int, total: np.ndarray
                 ) -> np.ndarray:
    """Critical-path time per layer from item end times (items owned in program order)."""
    last = np.zeros((end.shape[0], n_layers))
    for lyr in range(n_layers):  # loop over layers
        mine = np.flatnonzero(owner == lyr)
        last[:, lyr] = end[:, mine[-1]] if mine.size else (last[:, lyr - 1] if lyr else 0.0)
    layer = np.diff(last, axis=1, prepend=0.0)
    layer[:, -1] += total - last[:, -1]
    return layer


def _chain(ex: np.ndarray, kernels: np.ndarray, lc: LaunchCosts, labels: tuple[str, ...],
           sms: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end ``[T, K]`` of a layer-after-layer frame's items, timed by the one
    scheduler (:func:`.scheduler.schedule`, no parallel phase) under the launch model: an item
    of ``kernels[k]`` kernels pays its inner boundaries, the host issues kernels one every
    ``lc.issue`` (eager) — :func:`~.launch.chain`'s rule."""
    frames, n = ex.shape
    kern = np.asarray(kernels, np.int64)
    zeros = np.zeros((frames, n))
    fs = SCH.schedule(
        SCH.Chain(duration=ex + (kern - 1) * lc.gap, busy=zeros, nbytes=zeros,
                  gap=np.full(n, lc.gap), issue=(np.cumsum(kern) - kern) * lc.issue + lc.submit,
                  dep=np.full(n, -1), labels=labels),
        None, sms, np.ones(frames), start_at=lc.submit)
    return fs.start, fs.end


def _layerwise_times(ctx: Context, exec_layers: np.ndarray, layer_kernels: Sequence[int],
                     layer_busy: np.ndarray, ops: OpPlan, work: _Work, layer_ctas: np.ndarray,
                     layer_bytes: np.ndarray) -> SchemeTimes:
    """Whole-network frame time of a layer-after-layer scheme from its linear layers' costs
    (``layer_ctas``, ``layer_bytes``: ``[T, L]`` each layer's CTAs and bytes)."""
    frames = exec_layers.shape[0]
    layer_ctas = np.broadcast_to(np.asarray(layer_ctas, np.float64), exec_layers.shape)
    layer_bytes = np.broadcast_to(np.asarray(layer_bytes, np.float64), exec_layers.shape)
    ctas = np.empty((frames, 0))
    nbytes = np.empty((frames, 0))
    exec_layers = exec_layers + ops.layer_extra[None, :]
    items, owner = _program(ctx, ops)
    ex = np.empty((frames, len(items)))
    kern = np.empty(len(items), np.int64)
    labels = []
    cols_c, cols_b = [], []
    for j, (t, i) in enumerate(items):
        if t == "layer":
            ex[:, j], kern[j] = exec_layers[:, i], layer_kernels[i]
            labels.append(ctx.geoms[i].name)
            cols_c.append(layer_ctas[:, i])
            cols_b.append(layer_bytes[:, i] + ops.layer_extra_bytes[i])
        else:
            ex[:, j], kern[j] = ops.kernel_cycles[i], 1
            labels.append(ops.names[ops.kernels[i]])
            cols_c.append(np.full(frames, float(ops.kernel_ctas[i])))
            cols_b.append(np.full(frames, float(ops.kernel_bytes[i])))
    if items:
        ctas, nbytes = np.stack(cols_c, 1), np.stack(cols_b, 1)
    start, end = _chain(ex, kern, ctx.launch, tuple(labels), ctx.gpu.sms)
    total = end[:, -1] if len(items) else np.zeros(frames)
    is_layer = np.array([t == "layer" for t, _ in items])
    compute = ex[:, is_layer].sum(1)
    op_time = ex[:, ~is_layer].sum(1)
    busy = layer_busy + ops.kernel_busy.sum()
    work.ops(ops)
    for i in np.flatnonzero(ops.layer_extra_bytes):
        work.node("layer", i).bytes(ops.layer_extra_bytes[i])
    span_work = work.on_spans({"stream": items})
    return SchemeTimes(
        total=total, layer=_layer_times(end, owner, len(ctx.geoms), total),
        phases={"compute": compute, "ops": op_time, "launch": total - compute - op_time},
        layer_phases={"exec": exec_layers}, busy=busy,
        spans={"stream": (tuple(labels), start, end)}, work=graph_work(span_work),
        span_args={"stream": _span_args(ctas, nbytes, ctx.gpu.sms)}, span_work=span_work)


def _frame_independent_cost(ctx: Context, plan: _LayerwisePlan, counts: Any, misses: Any,
                            frames: int, frame_ids: Any = None) -> SchemeTimes:
    ex = np.broadcast_to(np.array([c.cycles for c in plan.costs]), (frames, len(plan.costs)))
    busy = np.full(frames, sum(c.busy_cycles for c in plan.costs))
    work = _Work(ctx, frames)
    nbytes = [_kernel_bytes(ctx, g, c) for g, c in zip(ctx.geoms, plan.costs, strict=True)]
    for li, (c, nb) in enumerate(zip(plan.costs, nbytes, strict=True)):
        work.node("layer", li).fmas(c.busy_cycles, _unit(c), c.tile)
        work.bytes(nb)
    return _layerwise_times(ctx, np.array(ex), [c.kernels for c in plan.costs], busy, plan.ops,
                            work, np.array([c.n_ctas for c in plan.costs]), np.array(nbytes))


# --- zero skipping --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _SparsePlan:
    tiles: tuple[K.SparseTile, ...]
    io_bytes: np.ndarray
    ops: OpPlan
    occ_cap: int | None


def _sparse_tiles(ctx: Context) -> tuple[tuple[K.SparseTile, ...], int | None]:
    tiles = tuple(K.sparse_tile(g, ctx.gpu, ctx.precision, ctx.params, ctx.cfg)
                  for g in ctx.geoms)
    if not ctx.persistent:
        return tiles, None
    return tiles, persistent_occupancy([t.tile.occupancy(ctx.gpu, ctx.eb) for t in tiles]
                                       + [K.ELEMENTWISE_TILE.occupancy(ctx.gpu, ctx.eb)])


def _io_bytes(ctx: Context, tiles: Sequence[K.SparseTile] | None = None) -> np.ndarray:
    """Compulsory bytes per layer (inputs, weights, outputs; a split-K workspace if split)."""
    out = np.array([ctx.eb * (g.n_inputs + g.weights + g.n_outputs) for g in ctx.geoms],
                   np.float64)
    if tiles is not None:
        ws = [2.0 * t.split * g.groups * g.m * g.cout_g * 4 if t.split > 1 else 0.0
              for g, t in zip(ctx.geoms, tiles, strict=True)]
        out = out + np.array(ws)
    return out


def _zero_skip_plan(ctx: Context) -> _SparsePlan:
    tiles, cap = _sparse_tiles(ctx)
    return _SparsePlan(tiles, _io_bytes(ctx, tiles), ctx.op_plan(cap), cap)


def _occ(grid: K.SparseGrid, cap: int | None) -> int:
    return grid.occupancy if cap is None else min(grid.occupancy, cap)


def _zero_skip_cost(ctx: Context, plan: _SparsePlan, counts: Sequence[Mapping[str, np.ndarray]],
                    misses: np.ndarray, frames: int, frame_ids: Any = None) -> SchemeTimes:
    n_layers = len(ctx.geoms)
    ex = np.zeros((frames, n_layers))
    ctas = np.zeros((frames, n_layers))
    nbytes = np.zeros((frames, n_layers))
    busy = np.zeros(frames)
    work = _Work(ctx, frames)
    boundary = max(ctx.launch.gap, ctx.launch.issue)
    for li, g in enumerate(ctx.geoms):  # loop over layers
        mem = mem_cycles(ctx.gpu, plan.io_bytes[li], ctx.params)
        sp = _balanced(ctx, counts[li]["nonzero"], g, plan.tiles[li], plan.occ_cap, None,
                       ctx.cfg.sw_compaction, boundary, mem)
        # A compaction pass is one more kernel before the layer's (its boundary included).
        ex[:, li] = (np.maximum(sp.compute, mem)
                     + np.where(sp.compaction > 0, sp.compaction + boundary, 0.0))
        busy += sp.busy
        ctas[:, li] = _active_ctas(sp.grid)
        nbytes[:, li] = plan.io_bytes[li] + sp.compaction_bytes
        work.node("layer", li).fmas(sp.busy, "simt", plan.tiles[li].tile)
        work.bytes(plan.io_bytes[li])
        work.bytes(sp.compaction_bytes)
    return _layerwise_times(ctx, ex, [1 + (t.split > 1) for t in plan.tiles], busy, plan.ops,
                            work, ctas, nbytes)


# --- SE-CNN ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _SecnnPlan:
    dense: tuple[K.KernelCost, ...]
    tiles: tuple[K.SparseTile, ...]
    io_bytes: np.ndarray
    ops: OpPlan
    occ_cap: int | None


def _secnn_plan(ctx: Context) -> _SecnnPlan:
    tiles, cap = _sparse_tiles(ctx)

    def choose(c: int | None) -> list[K.KernelCost]:
        return [K.dense_cost(g, ctx.gpu, ctx.precision, ctx.params, ctx.cfg, occ_cap=c)
                for g in ctx.geoms]

    dense, dcap = _capped_plan(ctx, choose)
    if cap is not None and dcap is not None:
        cap = min(cap, dcap)
        dense = tuple(choose(cap))
    return _SecnnPlan(dense, tiles, _io_bytes(ctx), ctx.op_plan(cap), cap)


def _padc(a: np.ndarray, n: int) -> np.ndarray:
    return a if a.shape[1] == n else np.pad(a, [(0, 0), (0, n - a.shape[1])])


def _parallel_grids(ctx: Context, plan: _SecnnPlan, counts: Sequence[Mapping[str, np.ndarray]],
                    frames: int, work: _Work, compaction: str, boundary: float
                    ) -> tuple[list, list, list, np.ndarray, np.ndarray, np.ndarray]:
    """Per layer: the parallel phase's CTA work and latency, occupancy, dense choice, bytes and
    the delay of a compaction pass and its kernel ``boundary`` before it (its FMAs counted
    into ``work``). The
    zero-skipping kernel balances its lanes by the machine's ``compaction`` like every SIMT
    sparse kernel (:func:`_balanced`); it moves the inputs, weights and outputs of its CTAs
    with work only: a layer with no predicted work moves nothing (its outputs are the
    amendment's)."""
    ws, ds, occs = [], [], []
    use = np.zeros((frames, len(ctx.geoms)))
    nbytes = np.zeros((frames, len(ctx.geoms)))
    delay = np.zeros((frames, len(ctx.geoms)))
    for li, g in enumerate(ctx.geoms):  # loop over layers
        bal = _balanced(ctx, counts[li]["predicted"], g, plan.tiles[li], plan.occ_cap, None,
                        compaction, boundary)
        sp = bal.grid
        dk = plan.dense[li]
        dw, dd = K.dense_grid(dk, frames)
        sp_occ = _occ(sp, plan.occ_cap)
        sp_t = bal.compute + np.where(bal.compaction > 0, bal.compaction + boundary, 0.0)
        mode = ctx.cfg.secnn_parallel
        use_dense = (np.zeros(frames, bool) if mode == "sparse" else np.ones(frames, bool)
                     if mode == "dense" else np.full(frames, dk.compute_cycles) < sp_t)
        delay[:, li] = np.where(use_dense | (bal.compaction <= 0), 0.0,
                                bal.compaction + boundary)
        if use_dense.all():
            ws.append(dw), ds.append(dd), occs.append(dk.occupancy)
        elif not use_dense.any():
            ws.append(sp.w), ds.append(sp.d), occs.append(sp_occ)
        else:  # mixed choice over frames: pad the smaller grid with empty CTAs
            n = max(dw.shape[1], sp.w.shape[1])
            ws.append(np.where(use_dense[:, None], _padc(dw, n), _padc(sp.w, n)))
            ds.append(np.where(use_dense[:, None], _padc(dd, n), _padc(sp.d, n)))
            occs.append(min(sp_occ, dk.occupancy))
        use[:, li] = use_dense
        nbytes[:, li] = np.where(use_dense, plan.io_bytes[li],
                                 plan.io_bytes[li] * sp.active_frac + bal.compaction_bytes)
        work.node("parallel", li).fmas(np.where(use_dense, dk.busy_cycles, 0.0), _unit(dk),
                                       dk.tile)
        work.fmas(np.where(use_dense, 0.0, sp.w.sum(-1)), "simt", plan.tiles[li].tile)
    return ws, ds, occs, use, nbytes, delay


def _secnn_cost(extended: bool) -> Callable[..., SchemeTimes]:
    def cost(ctx: Context, plan: _SecnnPlan, counts: Sequence[Mapping[str, np.ndarray]],
             misses: np.ndarray, frames: int, frame_ids: Any = None) -> SchemeTimes:
        return _secnn_times(ctx, plan, counts, misses, frames,
                            SE.Machine.of(extended, ctx.gpu, ctx.cfg))

    return cost


def _secnn_times(ctx: Context, plan: _SecnnPlan, counts: Sequence[Mapping[str, np.ndarray]],
                 misses: np.ndarray, frames: int, machine: SE.Machine) -> SchemeTimes:
    """SE-CNN's graph on ``machine`` (the stock GPU for secnn_sw, the extended for secnn_hw)."""
    gpu, params, cfg, lc = ctx.gpu, ctx.params, ctx.cfg, ctx.launch
    n_layers = len(ctx.geoms)
    eb = ctx.eb
    work = _Work(ctx, frames)
    ws, ds, occs, use_dense, par_bytes, par_delay = _parallel_grids(ctx, plan, counts, frames,
                                                                     work, machine.compaction,
                                                                     0.0 if machine.extended
                                                                     else lc.gap)
    hw = machine.extended
    compaction = machine.compaction
    parts = {k: np.zeros((frames, n_layers)) for k in
             ("compare", "compaction", "amend", "compare_busy", "amend_busy", "compare_bytes",
              "compaction_bytes", "amend_bytes", "amend_compute")}
    amend_ctas = np.zeros((frames, n_layers))
    # A compare or compaction pass: an elementwise kernel's CTAs over the layer's inputs.
    per_cta = K.ELEMENTWISE_TILE.threads * K.ELEMENTS_PER_THREAD
    pass_ctas = [-(-g.n_inputs // per_cta) for g in ctx.geoms]
    for li, g in enumerate(ctx.geoms):  # loop over layers
        n_in = g.n_inputs
        cmp_ops = n_in / (gpu.sms * machine.comparators_per_sm)
        # The compare reads x and the prediction; the predictor's update writes the next
        # prediction. Where the prediction buffer lives decides what that traffic costs.
        pred_bytes = 2.0 * eb * n_in
        placement = machine.buffer_placement
        cmp_bytes = eb * n_in + (pred_bytes if placement == "cache" else 0.0)
        mem = _detection(ctx, n_in, cmp_bytes, plan.occ_cap)  # an elementwise pass's floor
        if placement == "off_chip":
            mem = mem + pred_bytes / gpu.dram_bytes_per_clk
            work.node("compare", li).add("dram_bytes", pred_bytes)
        elif placement == "on_chip":
            work.node("compare", li).add("smem_bytes", pred_bytes)
        parts["compare"][:, li] = np.maximum(cmp_ops, mem)
        parts["compare_busy"][:, li] = cmp_ops * gpu.sms
        parts["compare_bytes"][:, li] = cmp_bytes + (pred_bytes if placement == "off_chip"
                                                     else 0.0)
        miss = misses[:, li]
        touched = K.touched_frac(counts[li]["mispredicted"])
        sp = _balanced(ctx, counts[li]["mispredicted"], g, plan.tiles[li], plan.occ_cap, miss,
                       compaction, 0.0 if hw else lc.gap,
                       mem_cycles(gpu, 2.0 * eb * g.n_outputs * touched, params))
        parts["compaction"][:, li] = sp.compaction
        parts["compaction_bytes"][:, li] = sp.compaction_bytes
        mk = sp.compute
        per_miss = np.where(sp.balanced, cfg.compaction_bytes_per_miss, float(eb))
        ab = (eb * g.weights * sp.grid.active_frac + 2.0 * eb * g.n_outputs * touched
              + per_miss * miss)
        # Under epilogue fusion the op groups fused into this layer are re-executed in the
        # amendment's epilogue (their bytes; their arithmetic on the SIMT lanes), as the dense
        # kernel's epilogue executes them: no pass of their own.
        ab = ab + plan.ops.secnn_pass_bytes[li]
        parts["amend_compute"][:, li] = mk
        parts["amend"][:, li] = np.maximum(mk, mem_cycles(gpu, ab, params))
        parts["amend_busy"][:, li] = sp.busy + plan.ops.secnn_pass_busy[li]
        parts["amend_bytes"][:, li] = ab
        amend_ctas[:, li] = _active_ctas(sp.grid)
        work.node("amend", li).fmas(sp.busy, "simt", plan.tiles[li].tile)
        work.node("compare", li).compares(n_in, n_in * machine.compare_instructions)
        for kind, nb in (("parallel", par_bytes[:, li]), ("compare", cmp_bytes),
                         ("compaction", parts["compaction_bytes"][:, li]), ("amend", ab)):
            work.node(kind, li).bytes(nb)
    ops = plan.ops
    # Serial items in program order.
    dur, busy, nbytes, gap, layer, hostk, labels = [], [], [], [], [], [], []

    item_ctas: list[np.ndarray] = []
    item_nodes: list[tuple[str, int]] = []

    def item(d: np.ndarray, b: np.ndarray, nb: np.ndarray, g: float, lyr: int, host: bool,
             label: str, ctas: Any, node: tuple[str, int]) -> None:
        item_nodes.append(node)
        item_ctas.append(np.broadcast_to(np.asarray(ctas, np.float64), (frames,)))
        dur.append(np.broadcast_to(d, (frames,)))
        busy.append(np.broadcast_to(b, (frames,)))
        nbytes.append(np.broadcast_to(nb, (frames,)))
        gap.append(g)
        layer.append(lyr)
        hostk.append(host)
        labels.append(label)

    def op_items(after: int) -> None:
        for k in np.flatnonzero(ops.kernel_after == after):
            item(ops.kernel_cycles[k], ops.kernel_busy[k], ops.kernel_bytes[k], lc.gap, -1,
                 True, ops.names[ops.kernels[k]], ops.kernel_ctas[k], ("op", int(k)))

    hw_dep = machine.dependency_cycles or 0.0
    op_items(-1)
    for li, g in enumerate(ctx.geoms):  # loop over layers
        name = g.name
        item(parts["compare"][:, li], parts["compare_busy"][:, li], parts["compare_bytes"][:, li],
             hw_dep if hw else lc.gap, -1, not hw, f"{name}:compare", pass_ctas[li],
             ("compare", li))
        if compaction == "software":
            item(parts["compaction"][:, li], np.zeros(frames), parts["compaction_bytes"][:, li],
                 0.0 if hw else lc.gap, -1, not hw, f"{name}:compaction", pass_ctas[li],
                 ("compaction", li))
        elif compaction == "auto":  # a pass (and its boundary) only where it is taken
            used = parts["compaction"][:, li] > 0
            item(np.where(used, parts["compaction"][:, li] + (0.0 if hw else lc.gap), 0.0),
                 np.zeros(frames), parts["compaction_bytes"][:, li], 0.0, -1, not hw,
                 f"{name}:compaction", np.where(used, pass_ctas[li], 0), ("compaction", li))
        item(parts["amend"][:, li], parts["amend_busy"][:, li], parts["amend_bytes"][:, li],
             0.0 if hw else lc.gap, li, not hw, f"{name}:amend", amend_ctas[:, li],
             ("amend", li))
        op_items(li)
    host = np.array(hostk, bool)
    # Eager: the host issues the L parallel kernels first, then the serial kernels in order.
    if lc.issue > 0:
        release = lc.submit + np.arange(n_layers) * lc.issue
        issue = np.where(host, lc.submit + (n_layers + np.cumsum(host) - 1) * lc.issue, 0.0)
    else:
        release = np.full(n_layers, lc.submit)
        issue = np.zeros(len(host))
    chain_ = SCH.Chain(duration=np.stack(dur, 1), busy=np.stack(busy, 1),
                       nbytes=np.stack(nbytes, 1), gap=np.array(gap), issue=issue,
                       dep=np.array(layer, np.int64), labels=tuple(labels))
    # A parallel kernel that compacts its predicted inputs first starts after that pass.
    tl = SE.schedule(ws, ds, occs, par_bytes, release[None, :] + par_delay, chain_, gpu,
                     params, start_at=lc.submit)
    # Per-layer critical path: up to the end of each layer's last serial item.
    owner = np.maximum.accumulate(np.where(chain_.dep >= 0, chain_.dep, -1))
    owner = np.where(owner < 0, 0, owner)
    for k, lab in enumerate(labels):  # compares belong to the layer they precede
        if lab.endswith(":compare") or lab.endswith(":compaction"):
            owner[k] = next(i for i, g in enumerate(ctx.geoms) if lab.startswith(g.name + ":"))
    is_ops = np.array([not (lab.endswith((":compare", ":compaction", ":amend")))
                       for lab in labels])
    correction = parts["compare"] + parts["compaction"] + parts["amend"]
    span_work = _secnn_work(work, ops).on_spans(
        {"parallel": [("parallel", li) for li in range(n_layers)], "serial": item_nodes})
    return SchemeTimes(
        total=tl.total, layer=_layer_times(tl.end, owner, n_layers, tl.total),
        phases={"parallel": tl.parallel_done.max(1), "serial": correction.sum(1),
                "compare": parts["compare"].sum(1), "compaction": parts["compaction"].sum(1),
                "amend": parts["amend"].sum(1),
                "ops": chain_.duration[:, is_ops].sum(1),
                "launch": np.full(frames, float(np.sum(chain_.gap[1:])) + lc.submit)},
        layer_phases={"parallel_done": tl.parallel_done, "correction": correction,
                      "compare": parts["compare"], "compaction": parts["compaction"],
                      "amend": parts["amend"], "amend_compute": parts["amend_compute"],
                      "parallel_dense": use_dense},
        busy=tl.busy, work=graph_work(span_work), span_work=span_work,
        spans={"parallel": (tuple(g.name for g in ctx.geoms),
                            np.broadcast_to(tl.parallel_release, tl.parallel_done.shape).copy(),
                            tl.parallel_done),
               "serial": (tuple(labels), tl.start, tl.end)},
        span_args={"parallel": _span_args(
                       np.stack([(w > 0).sum(-1) for w in ws], 1), par_bytes, gpu.sms,
                       _pool_share(ws, ds, occs, tl)),
                   "serial": _span_args(np.stack(item_ctas, 1), chain_.nbytes, gpu.sms)})


def _pool_share(ws: Sequence[np.ndarray], ds: Sequence[np.ndarray], occs: Sequence[int],
                tl: SE.SecnnFrame) -> np.ndarray:
    """``[T, L]`` average SMs each parallel kernel held between its release and its end."""
    hold = np.stack([np.maximum(w, d / max(1, o)).sum(-1) for w, d, o in
                     zip(ws, ds, occs, strict=True)], 1)
    span = tl.parallel_done - np.broadcast_to(tl.parallel_release, tl.parallel_done.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span > 0, hold / span, 0.0)


def _secnn_work(work: _Work, ops: OpPlan) -> _Work:
    """Adds SE-CNN's op kernels and the op groups its amendments' epilogues re-execute to
    ``work`` (their bytes are in the amendments')."""
    work.ops(ops)
    for li in np.flatnonzero(ops.secnn_pass > 0):
        work.node("amend", li).fmas(ops.secnn_pass_busy[li], "simt")
    return work


# --- change-based peers ---------------------------------------------------------------------

#: The peers' plan is SE-CNN's: dense kernels for the first frame, the SIMT tiling for the
#: sparse frames (one function, so a replay computes it once for all four schemes).


def _peer_cost(kind: str) -> Callable[..., SchemeTimes]:
    def cost(ctx: Context, plan: _SecnnPlan, counts: Sequence[Mapping[str, np.ndarray]],
             misses: np.ndarray, frames: int, frame_ids: Any = None) -> SchemeTimes:
        return _peer_times(ctx, plan, counts, misses, frames, frame_ids, kind)

    return cost


def _peer_output_on_chip(ctx: Context) -> np.ndarray:
    """``[L]`` whether each layer's output buffer is on chip when a peer is given SE-CNN's
    on-chip buffer: the same capacity as SE-CNN's (:data:`~.energy.METHOD_BUFFERS`
    ``"secnn"``: its values per input and output neuron of every layer), filled first with the
    stored inputs (the compare's operand, as SE-CNN's predictions are; they always fit), then
    with the layers' output buffers in layer order while they fit."""
    per_in, per_out = METHOD_BUFFERS["secnn"]
    cap = sum(per_in * g.n_inputs + per_out * g.n_outputs for g in ctx.geoms)
    used = sum(g.n_inputs for g in ctx.geoms)
    out = np.zeros(len(ctx.geoms), bool)
    for li, g in enumerate(ctx.geoms):  # loop over layers
        if used + g.n_outputs <= cap:
            out[li] = True
            used += g.n_outputs
    return out


def _peer_times(ctx: Context, plan: _SecnnPlan, counts: Sequence[Mapping[str, np.ndarray]],
                misses: np.ndarray, frames: int, frame_ids: Any, kind: str) -> SchemeTimes:
    """DeltaCNN or CBinfer layer after layer, on a stock GPU or (``cfg.peer_extension``) on
    the GPU with SE-CNN's SM extension (the module docstring)."""
    gpu, params, eb = ctx.gpu, ctx.params, ctx.eb
    first = (np.zeros(frames, bool) if frame_ids is None
             else np.asarray(frame_ids).reshape(-1)[:frames] == 0)
    n_layers = len(ctx.geoms)
    ex = np.zeros((frames, n_layers))
    ctas = np.zeros((frames, n_layers))
    nbytes = np.zeros((frames, n_layers))
    busy = np.zeros(frames)
    work = _Work(ctx, frames)
    # The SM extension, where the peer runs on it (its capabilities by SE-CNN's own rules).
    ext = SE.Machine.of(True, gpu, ctx.cfg) if ctx.cfg.peer_extension else None
    on_chip = ext is not None and ext.buffer_placement == "on_chip"
    # The dependency signal replaces the kernel boundary between a detection and its update
    # where it is the shorter wait; inside a hardware-sequenced layer a compaction pass waits
    # for no boundary (as SE-CNN's compaction -> amend on the extension).
    seq = ext is not None and ext.dependency_cycles <= ctx.launch.gap
    boundary = 0.0 if ext is not None else max(ctx.launch.gap, ctx.launch.issue)
    # Change detection reads x and the stored value and writes the stored value and the mask;
    # the stored value's read and write (2 values per input) stay on chip where the peer has
    # SE-CNN's on-chip buffer, as SE-CNN's prediction traffic does.
    state = [2.0 * eb * g.n_inputs if on_chip else 0.0 for g in ctx.geoms]
    det_bytes = [3.0 * eb * g.n_inputs + g.n_inputs / 8.0 - st
                 for g, st in zip(ctx.geoms, state, strict=True)]
    out_chip = _peer_output_on_chip(ctx) if on_chip else np.zeros(n_layers, bool)
    # DeltaCNN fuses delta generation into the previous layer's activation, i.e. its epilogue
    # (Parger et al., DeltaCNN, CVPR 2022, Sec. 4): only the first layer's is its own kernel.
    # CBinfer runs change detection as its own kernel per layer (Cavigelli et al., ACM MM 2017).
    fused = kind == "deltacnn"
    own = [li == 0 or not fused for li in range(n_layers)]
    kernels = [2 if (o and not seq) else 1 for o in own]
    for li, g in enumerate(ctx.geoms):  # loop over layers
        dk = plan.dense[li]
        n_in = g.n_inputs
        det = _detection(ctx, n_in, det_bytes[li], plan.occ_cap) if own[li] else 0.0
        # Hardware-sequenced: the dependency signal instead of the second kernel's boundary.
        dep = ext.dependency_cycles if (own[li] and seq) else 0.0
        epi = det_bytes[li + 1] if fused and li + 1 < n_layers else 0.0
        cnt = counts[li]["mispredicted"]  # inputs propagated (changed beyond tau)
        touched = K.touched_frac(cnt)
        # The touched outputs' buffer: read and written (an on-chip buffer is read and written
        # in SRAM; the new value is still written to memory for the next layer to read).
        rmw = (1.0 if out_chip[li] else 2.0) * eb * g.n_outputs * touched
        smem = state[li] + (2.0 * eb * g.n_outputs * touched if out_chip[li] else 0.0)
        if kind == "deltacnn":
            # Sparse conv over the update mask: each output whose receptive field saw a change
            # accumulates the deltas of its changed inputs into the output buffer.
            out_bytes = rmw + eb * misses[:, li]
            sp = _balanced(ctx, cnt, g, plan.tiles[li], plan.occ_cap, misses[:, li],
                           ctx.cfg.sw_compaction, boundary, mem_cycles(gpu, out_bytes, params))
        else:
            # CBinfer: the output pixels whose receptive field holds a change are recomputed
            # with their full fan-in (the rest keep their previous value).
            full = K.Fanin(cnt, g.cin_g * g.kh * g.kw)
            out_bytes = (eb * n_in * touched + rmw)
            sp = _balanced(ctx, full, g, plan.tiles[li], plan.occ_cap, None,
                           ctx.cfg.sw_compaction, boundary, mem_cycles(gpu, out_bytes, params))
        conv_bytes = eb * g.weights * sp.grid.active_frac + out_bytes
        sparse = (np.maximum(sp.compute, mem_cycles(ctx.gpu, conv_bytes + epi, params)) + det
                  + dep + np.where(sp.compaction > 0, sp.compaction + boundary, 0.0))
        # Frame 0 runs dense and fills the output buffer (in memory, or in the on-chip one).
        buf0 = 0.0 if out_chip[li] else eb * g.n_outputs
        dense_t = dk.cycles + (mem_cycles(gpu, buf0, params) if buf0 else 0.0)
        ex[:, li] = np.where(first, dense_t, sparse)
        busy += np.where(first, dk.busy_cycles, sp.busy)
        ctas[:, li] = np.where(first, dk.n_ctas, _active_ctas(sp.grid))
        nbytes[:, li] = np.where(first, _kernel_bytes(ctx, g, dk) + buf0,
                                 conv_bytes + det_bytes[li] + sp.compaction_bytes)
        work.node("layer", li).fmas(np.where(first, dk.busy_cycles, 0.0), _unit(dk), dk.tile)
        work.fmas(np.where(first, 0.0, sp.busy), "simt", plan.tiles[li].tile)
        work.bytes(np.where(first, _kernel_bytes(ctx, g, dk) + buf0,
                            conv_bytes + det_bytes[li] + sp.compaction_bytes))
        if on_chip:
            work.add("smem_bytes", np.where(first, eb * g.n_outputs - buf0, smem))
        n_cmp = np.where(first, 0.0, float(n_in))
        # Change detection runs on the SIMT lanes, or on the extension's comparators.
        work.compares(n_cmp, n_cmp if ext is None else 0.0)
    return _layerwise_times(ctx, ex, kernels, busy, plan.ops, work, ctas, nbytes)



def extended_peer_config(cfg: SchemeConfig) -> SchemeConfig:
    """The knobs under which ``deltacnn`` / ``cbinfer`` run on a GPU given SE-CNN's SM
    extension (:data:`.secnn.SM_EXTENSION`), taking each capability where it helps them.

    ``peer_extension`` is set: the peers' cost then reads the extension's comparators,
    dependency signal and buffer placement by SE-CNN's own rules (:class:`.secnn.Machine`;
    what each gives them: the module docstring), in the point estimate and in every corner of a
    band that varies them. Of the compaction choices the peers' sparse kernels balance their
    lanes by ``sw_compaction``, which becomes ``hw_compaction`` when that is ``hardware``
    (free balanced work lists, never slower than a costed pass); a software ``hw_compaction``
    is a costed pass on every layer, never faster than the stock ``auto`` choice, so the peer
    keeps its own. The comparators and the dependency signal shorten a peer only where it has
    a compare kernel followed by its update: CBinfer's change detection on every layer,
    DeltaCNN's first layer only (its other delta generations are fused into the previous
    layer's epilogue: no kernel boundary to replace, and a compare whose time is the
    epilogue's memory traffic, so the comparators take only its SIMT instructions).
    """
    sw = "hardware" if cfg.hw_compaction == "hardware" else cfg.sw_compaction
    return dataclasses.replace(cfg, sw_compaction=sw, peer_extension=True)


def _content_key(obj: Any) -> Any:
    """A hashable value equal for equal contents (floats by their bits), for :func:`_memo_plan`.
    """
    if isinstance(obj, float):
        return ("f", float(obj).hex())
    if isinstance(obj, Mapping):
        return ("m", tuple((_content_key(k), _content_key(v)) for k, v in obj.items()))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return (type(obj), tuple(_content_key(getattr(obj, f.name))
                                 for f in dataclasses.fields(obj)))
    if isinstance(obj, list | tuple):
        return (type(obj), tuple(_content_key(x) for x in obj))
    if isinstance(obj, np.ndarray):
        return ("a", obj.dtype.str, obj.shape, obj.tobytes())
    return obj


def _memo_plan(fn: Callable[[Context], Any], size: int = 64) -> Callable[[Context], Any]:
    """``fn`` (a plan: pure and frame-independent) computed once per :class:`Context` content:
    a replay builds its plans per call, and a study replays chunk after chunk (and launch model
    after launch model) under the same contexts. The plans returned are shared: never
    modified by their users."""
    cache: collections.OrderedDict[Any, Any] = collections.OrderedDict()

    @functools.wraps(fn)
    def plan(ctx: Context) -> Any:
        key = _content_key(ctx)
        try:
            hash(key)
        except TypeError:  # a field of no comparable content: no memo
            return fn(ctx)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        out = cache[key] = fn(ctx)
        if len(cache) > size:
            cache.popitem(last=False)
        return out

    return plan


_SECNN_PLAN = _memo_plan(_secnn_plan)


#: The registry: every scheme by name, in report order.
REGISTRY: Mapping[str, Scheme] = MappingProxyType({s.name: s for s in (
    # cuDNN/cuBLAS-style kernels: implicit GEMM (tiles, split-K, GEMV), direct depthwise
    Scheme("dense", (), _memo_plan(_frame_independent_plan("dense")),
           _frame_independent_cost),
    # Winograd F(4x4, 3x3) where it applies, dense elsewhere
    Scheme("winograd", (), _memo_plan(_frame_independent_plan("winograd")),
           _frame_independent_cost),
    # FFT convolution where it applies, dense elsewhere
    Scheme("fft", (), _memo_plan(_frame_independent_plan("fft")),
           _frame_independent_cost),
    # zero-skipping SIMT convolution, layer after layer
    Scheme("zero_skip", ("nonzero",), _memo_plan(_zero_skip_plan), _zero_skip_cost),
    # SE-CNN on a stock GPU (compare and amend kernels)
    Scheme("secnn_sw", ("predicted", "mispredicted"), _SECNN_PLAN, _secnn_cost(False), "own"),
    # SE-CNN with the SM extension (hardware comparators and sequencing)
    Scheme("secnn_hw", ("predicted", "mispredicted"), _SECNN_PLAN, _secnn_cost(True), "own"),
    # the peers' plan is SE-CNN's (the same per-layer geometry and dense tilings)
    Scheme("deltacnn", ("mispredicted",), _SECNN_PLAN, _peer_cost("deltacnn"), "accumulated"),
    Scheme("cbinfer", ("mispredicted",), _SECNN_PLAN, _peer_cost("cbinfer"), "accumulated"),
)})
assert tuple(REGISTRY) == SCHEMES, "the registry and names.SCHEMES must agree"


def needs(schemes: Sequence[str]) -> tuple[str, ...]:
    """Event indicators the given schemes need, in a fixed order."""
    want = {n for s in schemes for n in REGISTRY[s].needs}
    return tuple(n for n in ("nonzero", "predicted", "mispredicted") if n in want)
