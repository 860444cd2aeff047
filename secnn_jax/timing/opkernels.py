"""The kernels between the linear layers, under a fusion policy every scheme of a comparison
shares.

A network's non-linear ops (BatchNorm, activations, pooling, residual adds, concatenation, ...)
come from :func:`secnn_jax.netops.find_ops` as groups, one per kernel eager PyTorch would launch,
each with the elements it reads and writes and the linear layer whose epilogue it could join.
:func:`plan_ops` turns them into costs on one GPU:

* fusion ``none``: every group is a kernel (:func:`~.kernels.elementwise_cost`: its bytes over
  the bandwidth, its arithmetic on the SIMT lanes, one memory latency per CTA), issued in program
  order after the linear layer that precedes it;
* fusion ``epilogue``: groups with ``epilogue_of = l`` disappear into layer ``l``'s kernel, which
  pays only the extra bytes they read (a residual shortcut, BatchNorm's vectors); the other
  groups stay kernels. SE-CNN cannot fuse them into its parallel phase (they need the amended
  values): its serial phase re-executes them in each layer's amendment epilogue over the
  layer's outputs (``secnn_pass``, the bytes and work of that epilogue: read ``y``, the extra
  operands, write the chain's output; the cycles it would take as its own pass).

Everything here is frame-independent (a function of shapes only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from secnn_jax.geometry import LayerGeom
from secnn_jax.netops import FUSABLE_KINDS
from secnn_jax.timing.gpus import ELEMENT_BYTES, GPU, canonical_precision
from secnn_jax.timing.kernels import elementwise_cost
from secnn_jax.timing.names import FUSIONS
from secnn_jax.timing.params import ModelParams, TimingConfigError
from secnn_jax.timing.sm import mem_cycles


@dataclasses.dataclass(frozen=True)
class OpGeom:
    """What the timing model needs of one op group (see :class:`secnn_jax.netops.NetOp`).

    Attributes:
      name: readable unique name.
      kind: op kind (``affine``, ``activation``, ``binary``, ``pool``, ...).
      after: index of the linear layer executed before it (``-1``: before the first).
      reads, param_reads, writes: elements read from activations, from parameters, written.
      flops: arithmetic operations.
      epilogue_of: linear layer whose epilogue it can join, or ``-1``.
      extra_reads: elements read from outside the fused chain when fused.
    """

    name: str
    kind: str
    after: int
    reads: int
    param_reads: int
    writes: int
    flops: int
    epilogue_of: int = -1
    extra_reads: int = 0

    @classmethod
    def from_op(cls, op: Any) -> OpGeom:
        """From a :class:`secnn_jax.netops.NetOp`, an :class:`OpGeom` or their dict forms."""
        if isinstance(op, OpGeom):
            return op
        get = op.get if isinstance(op, Mapping) else lambda k, d=None: getattr(op, k, d)
        try:
            return cls(name=str(get("name")), kind=str(get("kind")), after=int(get("after")),
                       reads=int(get("reads")), param_reads=int(get("param_reads", 0)),
                       writes=int(get("writes")), flops=int(get("flops", 0)),
                       epilogue_of=int(get("epilogue_of", -1)),
                       extra_reads=int(get("extra_reads", 0)))
        except (TypeError, ValueError) as e:
            raise TimingConfigError(f"op record {op!r} is missing a field or has a bad "
                                    f"value: {e}") from e

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable fields."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class OpPlan:
    """Costs of a network's op groups on one GPU under one fusion policy (cycles).

    Attributes:
      fusion: the policy.
      kernels: indices (into ``ops``) of the groups that run as their own kernels, in order.
      kernel_cycles: ``[K]`` execution cycles of each such kernel.
      kernel_busy: ``[K]`` SM-cycles of work of each.
      kernel_bytes: ``[K]`` bytes each moves.
      kernel_after: ``[K]`` the linear layer each follows (``-1``: before the first).
      layer_extra: ``[L]`` cycles added to each linear layer's kernel by the groups fused into
        its epilogue (their extra bytes).
      layer_extra_bytes: ``[L]`` those extra bytes.
      secnn_pass: ``[L]`` cycles of SE-CNN's per-layer elementwise pass re-executing the groups
        fused into that layer (0 where none, and always 0 under ``none``).
      secnn_pass_busy, secnn_pass_bytes: ``[L]`` its work and bytes.
      names: names of all groups.
      kernel_ctas: ``[K]`` CTAs of each op kernel.
    """

    fusion: str
    kernels: tuple[int, ...]
    kernel_cycles: np.ndarray
    kernel_busy: np.ndarray
    kernel_bytes: np.ndarray
    kernel_after: np.ndarray
    layer_extra: np.ndarray
    layer_extra_bytes: np.ndarray
    secnn_pass: np.ndarray
    secnn_pass_busy: np.ndarray
    secnn_pass_bytes: np.ndarray
    names: tuple[str, ...]
    kernel_ctas: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))


def op_bytes(op: OpGeom, precision: str) -> float:
    """Bytes one unfused op kernel moves."""
    eb = ELEMENT_BYTES[canonical_precision(precision)]
    return float(eb * (op.reads + op.param_reads + op.writes))


def plan_ops(ops: Sequence[Any], geoms: Sequence[LayerGeom], gpu: GPU, precision: str,
             params: ModelParams, fusion: str, occ_cap: int | None = None) -> OpPlan:
    """Costs of ``ops`` (see the module docstring). ``occ_cap`` caps kernels' occupancy."""
    if fusion not in FUSIONS:
        raise TimingConfigError(f"unknown fusion policy {fusion!r}; known: {FUSIONS}")
    og = [OpGeom.from_op(o) for o in ops]
    n_layers = len(geoms)
    for o in og:
        if not -1 <= o.after < n_layers:
            raise TimingConfigError(f"op {o.name!r}: after={o.after} but the network has "
                                    f"{n_layers} linear layers (-1 <= after < {n_layers})")
        if o.epilogue_of >= n_layers:
            raise TimingConfigError(f"op {o.name!r}: epilogue_of={o.epilogue_of} but the "
                                    f"network has {n_layers} linear layers")
    eb = ELEMENT_BYTES[canonical_precision(precision)]
    fused = [fusion == "epilogue" and o.kind in FUSABLE_KINDS and o.epilogue_of >= 0 for o in og]
    kernels = tuple(i for i, f in enumerate(fused) if not f)
    costs = [elementwise_cost(og[i].writes or og[i].reads, op_bytes(og[i], precision),
                              og[i].flops, gpu, precision, params, occ_cap) for i in kernels]
    layer_extra = np.zeros(n_layers)
    extra_bytes = np.zeros(n_layers)
    pass_elems = np.zeros(n_layers, np.int64)
    pass_bytes = np.zeros(n_layers)
    pass_flops = np.zeros(n_layers)
    last_writes = np.zeros(n_layers, np.int64)
    for o, f in zip(og, fused, strict=True):
        if not f:
            continue
        lyr = o.epilogue_of
        extra = eb * (o.extra_reads + o.param_reads)
        layer_extra[lyr] += float(mem_cycles(gpu, extra, params))
        extra_bytes[lyr] += extra
        pass_bytes[lyr] += extra
        pass_flops[lyr] += o.flops
        last_writes[lyr] = o.writes
        pass_elems[lyr] = max(pass_elems[lyr], o.writes)
    sp = np.zeros(n_layers)
    sp_busy = np.zeros(n_layers)
    for lyr in np.flatnonzero(pass_elems):
        g = geoms[lyr]
        nbytes = pass_bytes[lyr] + eb * (g.n_outputs + last_writes[lyr])
        kc = elementwise_cost(int(pass_elems[lyr]), nbytes, pass_flops[lyr], gpu, precision,
                              params, occ_cap)
        sp[lyr], sp_busy[lyr] = kc.cycles, kc.busy_cycles
        pass_bytes[lyr] = nbytes
    return OpPlan(
        fusion=fusion, kernels=kernels,
        kernel_cycles=np.array([c.cycles for c in costs], np.float64),
        kernel_busy=np.array([c.busy_cycles for c in costs], np.float64),
        kernel_bytes=np.array([op_bytes(og[i], precision) for i in kernels], np.float64),
        kernel_after=np.array([og[i].after for i in kernels], np.int64),
        layer_extra=layer_extra, layer_extra_bytes=extra_bytes, secnn_pass=sp,
        secnn_pass_busy=sp_busy,
        secnn_pass_bytes=np.where(pass_elems > 0, pass_bytes, 0.0),
        names=tuple(o.name for o in og),
        kernel_ctas=np.array([c.n_ctas for c in costs], np.int64))

