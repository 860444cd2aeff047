"""The non-linear kernels of a CNN: every op a GPU runs besides the linear layers, from the jaxpr.

The GPU timing model needs, besides the convolutions and dense layers of
:func:`secnn_jax.find_layers`, the kernels that run between them — BatchNorm, activations,
pooling, residual adds, concatenations, padding, transposes, reductions, transposed
convolutions — with what each reads and writes, and which linear layer's epilogue it could be
fused into. :func:`find_ops` enumerates them from the same traced jaxpr, abstractly (no FLOP is
executed; ``params`` and ``x`` may be ``jax.ShapeDtypeStruct``), in program order.

Grouping (fusion policy "none": one kernel per model-level op, as eager PyTorch issues them):

* The jaxpr is walked in program order with :class:`secnn_jax.interpret.Walker`, recursing into
  *every* call-like primitive (``jit``, ``custom_jvp_call``, ``custom_vjp_call``, ``remat``, ...),
  so ``jax.nn.relu`` (a ``custom_jvp``) is seen as its inner ``max``. For every value we track
  whether it depends on ``x`` and which group (or linear layer) produced it. Only x-dependent
  equations are kernels: arithmetic on params alone (BatchNorm's ``scale * rsqrt(var + eps)``)
  is folded at load time and costs nothing.
* Linear layers (the equations :func:`~secnn_jax.find_layers` classifies, linked by
  ``Layer.candidate``) are not ops; any other x-dependent ``conv_general_dilated`` /
  ``dot_general`` (``ConvTranspose``'s input-dilated conv, x-by-x products) is a ``"matmul"``
  group whose ``flops`` are its *effective* MACs: taps that land on input padding or on the
  zeros of input dilation are not counted (a transposed conv then counts like PyTorch's,
  ``N*H*W*Cin*Cout*kh*kw/groups`` for an un-cropped one).
* Free, no kernel (their result aliases their operand's buffer and group): ``reshape``,
  ``squeeze``, ``expand_dims``, ``broadcast_in_dim``, ``convert_element_type``, ``copy``,
  ``stop_gradient`` and the other views/annotations in :data:`FREE_PRIMITIVES`.
* Elementwise: ``"affine"`` is add/sub/mul/neg with exactly one x-dependent operand (appearing
  once) and ``div`` with x as the numerator; consecutive affine equations, each consuming an
  output of the group, form one group (BatchNorm inference = sub, mul, add -> one kernel; a conv
  bias add directly followed by BatchNorm joins that kernel). ``"activation"`` is any other
  elementwise function of one x-dependent value (max/min/clamp with a constant, logistic, tanh,
  exp, integer_pow, select_n, comparisons, ...); consecutive activations merge, and an
  elementwise op with several x-dependent operands that all are members of the current
  activation group or its input joins it (swish ``x * logistic(x)``, relu6 ``min(max(x,0),6)``:
  one kernel each). ``"binary"`` is an elementwise op with two or more x-dependent operands from
  different groups (residual add, SE gating multiply): always its own group, so a following
  relu is a new activation group, as eager PyTorch runs ``out += identity`` then ``relu``.
  Groups of different kinds never merge.
* Where these rules are silent we chose (so that one activation *function* is one kernel):
  (a) inside one *op scope* — an inlined call with no linear layer inside, in practice a
  ``jax.nn`` function such as ``leaky_relu``, ``hard_swish``, ``silu`` — every elementwise
  equation that reads only the group's members and inputs joins the group, which becomes an
  activation as soon as one step is not affine, and none joins a group opened outside the
  scope (``jax.nn.hard_swish``'s ``x + 3`` does not join the preceding bias add, and
  ``relu6(swish(x))`` is two kernels); (b) an affine step that consumes the current
  activation group and carries the same name stack as the group's first equation joins it
  (``jax.nn.gelu``, which is not jitted, inside one Flax module). A Flax ``BatchNorm`` after a
  ReLU has its own name stack (``.../bn``) and stays a separate affine group.
* ``reduce_window_*`` (max/avg pooling) -> ``"pool"`` (``flops`` = outputs x window); avg-pool's
  ``reduce_window_sum`` followed by the ``div``/``mul`` by a constant divisor is one group.
  ``reduce_sum``/``reduce_max``/``argmax``/... -> ``"reduce"`` (``flops`` = input elements);
  a mean's ``reduce_sum`` + ``div`` is one group. ``concatenate`` -> ``"concat"``, ``pad`` ->
  ``"pad"``, ``transpose``/``slice``/``dynamic_slice``/``gather``/``rev`` -> ``"copy"`` (no
  flops; slices and gathers read only the elements they output). Any other x-dependent
  equation (``sort``, ``cumsum``, a ``scan``...) is its own ``"other"`` group (reads and writes
  from the avals, ``flops`` = output elements, nominal).
* Any linear layer, matmul or group issued in between closes the current group: only
  equations adjacent in program order (ignoring free and folded ones) share a kernel.

Counts: ``reads`` are the elements of the distinct x-dependent buffers the group reads from
outside itself (a broadcast operand counts its un-broadcast size; literals count nothing),
``param_reads`` the same for params/constant-derived operands (a folded value counts once, at
its materialised size), ``writes`` the elements of the group's outputs consumed outside it (by
a later kernel, a layer, or as a model output); all for the whole traced batch.

Fusion policy "epilogue" (BN + activation + residual add fused into the conv's epilogue, as
cuDNN/XLA fusions do): a value is *in the chain of layer l* when layer l produced it or a group
with ``epilogue_of == l`` did. An affine/activation group whose primary (first) x-dependent
input is in the chain of l gets ``epilogue_of = l``; a binary group is fusable into l if one of
its operands is in l's chain, its other operands' elements being ``extra_reads``. Where the
rules were silent we require, conservatively, that the chain operand is full-size (not
broadcast up: an epilogue maps the layer's own output elements) and that every operand outside
the chain was produced before l in program order; among several valid chains the last layer
wins. So a ResNet add of ``bn3(conv3)`` and ``bn(downsample_conv)`` fuses into the downsample
conv (it runs last) with the ``bn3`` output as extra reads, while an SE gate multiply, whose
gate is computed from the conv's own output, is not fused. A group reading a pool, concat,
copy, matmul or other group's output, or the network input, gets ``-1``; those kinds are never
fused. ``after`` is the index of the last linear layer met before the group's first equation.

Names are ``op017:<name stack>:<kind>`` (``op017:layer1_0/bn1:affine``), the Flax module path
of the group's first equation with the root module stripped, or ``op017:<kind>`` without one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from jax.extend import core as jcore

from secnn_jax import interpret
from secnn_jax import layers as layers_mod
from secnn_jax.errors import SecnnError

__all__ = ["FREE_PRIMITIVES", "FUSABLE_KINDS", "OP_KINDS", "NetOp", "NetOpError", "find_ops"]


class NetOpError(SecnnError, ValueError):
    """Bad input to :func:`find_ops` or :class:`NetOp` (the message names the argument)."""

#: Kinds of :class:`NetOp`, see the module docstring.
OP_KINDS: tuple[str, ...] = ("affine", "activation", "binary", "pool", "reduce", "concat",
                             "pad", "copy", "matmul", "other")

#: Primitives that launch no kernel: views, dtype casts and annotations.
FREE_PRIMITIVES = frozenset({
    "reshape", "squeeze", "expand_dims", "broadcast_in_dim", "convert_element_type", "copy",
    "copy_p", "stop_gradient", "bitcast_convert_type", "sharding_constraint", "device_put",
    "optimization_barrier", "mesh_cast", "reshard", "pvary",
})

_AFFINE = frozenset({"add", "add_any", "sub", "mul", "div", "neg"})
_ELEMENTWISE = _AFFINE | frozenset({
    "max", "min", "clamp", "logistic", "tanh", "exp", "exp2", "log", "log1p", "expm1", "erf",
    "erfc", "erf_inv", "integer_pow", "pow", "abs", "sqrt", "rsqrt", "cbrt", "square", "sign",
    "floor", "ceil", "round", "select_n", "sin", "cos", "tan", "asin", "acos", "atan", "atan2",
    "sinh", "cosh", "asinh", "acosh", "atanh", "rem", "nextafter", "is_finite", "eq", "ne",
    "lt", "le", "gt", "ge", "and", "or", "not", "xor", "shift_left", "shift_right_logical",
    "shift_right_arithmetic", "population_count", "clz", "lgamma", "digamma", "igamma",
    "igammac", "bessel_i0e", "bessel_i1e", "conj", "real", "imag", "complex",
    "reduce_precision",
})
_POOL = frozenset({"reduce_window_max", "reduce_window_min", "reduce_window_sum",
                   "reduce_window"})
_REDUCE = frozenset({"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and",
                     "reduce_or", "reduce_xor", "argmax", "argmin"})
_SUMS = frozenset({"reduce_window_sum", "reduce_sum"})  # a mean's divisor joins these
_COPY = frozenset({"transpose", "slice", "dynamic_slice", "gather", "rev"})
_PARTIAL_READ = frozenset({"slice", "dynamic_slice", "gather"})
#: Op kinds that fuse into a linear layer's epilogue (an elementwise map of the layer's output);
#: the one definition, read by the timing model's op kernels too.
FUSABLE_KINDS: tuple[str, ...] = ("affine", "activation", "binary")


@dataclasses.dataclass(frozen=True)
class NetOp:
    """One non-linear kernel group of a traced CNN (see the module docstring for the rules).

    Attributes:
      name: readable and unique, ``op017:layer1_0/bn1:affine``.
      kind: one of :data:`OP_KINDS`.
      after: ``Layer.index`` of the last linear layer executed before this op; -1 if none.
      reads: elements read from x-dependent buffers from outside the group (whole batch).
      param_reads: elements read from params/constant-derived buffers (batch-independent).
      writes: elements of the group's outputs consumed outside the group.
      flops: arithmetic operations (elementwise: equations x elements; pools: outputs x
        window; reductions: input elements; matmul: effective MACs).
      epilogue_of: ``Layer.index`` of the linear layer whose epilogue this group can be fused
        into, or -1.
      extra_reads: when fused into that epilogue, elements read from outside the fused chain
        (the residual shortcut); 0 otherwise.
      primitives: the jaxpr primitive names of the group, in program order (diagnostics).
    """

    name: str
    kind: str
    after: int
    reads: int
    param_reads: int
    writes: int
    flops: int
    epilogue_of: int
    extra_reads: int
    primitives: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise NetOpError(f"NetOp {self.name!r}: kind {self.kind!r} is not one of {OP_KINDS}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (:meth:`from_dict` inverts it)."""
        d = dataclasses.asdict(self)
        d["primitives"] = list(self.primitives)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NetOp:
        """Inverse of :meth:`as_dict`; raises ``ValueError`` naming a missing field."""
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in d]
        if missing:
            raise NetOpError(f"NetOp.from_dict: missing field(s) {', '.join(missing)}")
        ints = ("after", "reads", "param_reads", "writes", "flops", "epilogue_of",
                "extra_reads")
        return cls(name=str(d["name"]), kind=str(d["kind"]),
                   primitives=tuple(str(p) for p in d["primitives"]),
                   **{k: int(d[k]) for k in ints})


# --- abstract values ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class _Val:
    """What the walk knows about one value.

    ``origin`` identifies the stored buffer (free ops return their operand's ``_Val``, so a
    reshape or broadcast shares its source's buffer); ``size`` is that buffer's element count
    (0 for an immediate: a literal baked into the kernel). ``group``/``layer`` name the producer
    of an x-dependent value (-1: neither, i.e. the network input).
    """

    x: bool
    origin: int
    size: int
    group: int = -1
    layer: int = -1


@dataclasses.dataclass
class _Group:
    """A kernel group while it is being built."""

    gid: int
    kind: str
    after: int
    scope: int | None
    stack: str
    prims: list[str] = dataclasses.field(default_factory=list)
    flops: int = 0
    members: dict[int, int] = dataclasses.field(default_factory=dict)  # origin -> elements
    reads: dict[int, tuple[int, _Val]] = dataclasses.field(default_factory=dict)
    params: dict[int, int] = dataclasses.field(default_factory=dict)
    normalised: bool = False  # a mean's divisor already joined this pool/reduce group


def _elements(aval: Any) -> int:
    return int(math.prod(getattr(aval, "shape", ())))


def _effective_conv_macs(eqn: jcore.JaxprEqn) -> int:
    """MACs of a conv counting only taps on real input elements (not padding, not dilation)."""
    p = eqn.params
    lhs, rhs = (v.aval for v in eqn.invars[:2])
    dn = p["dimension_numbers"]
    out = eqn.outvars[0].aval
    n = lhs.shape[dn.lhs_spec[0]] // p["batch_group_count"]
    cin_per_group = rhs.shape[dn.rhs_spec[1]]
    cout = out.shape[dn.out_spec[1]]
    pairs = 1
    for i, (ld, kd, od) in enumerate(zip(dn.lhs_spec[2:], dn.rhs_spec[2:], dn.out_spec[2:],
                                         strict=True)):
        size, k, o = lhs.shape[ld], rhs.shape[kd], out.shape[od]
        lo = p["padding"][i][0]
        ldil, rdil, stride = p["lhs_dilation"][i], p["rhs_dilation"][i], p["window_strides"][i]
        # Position of every (output, tap) pair in the padded, dilated input.
        pos = (np.arange(o)[:, None] * stride + np.arange(k)[None, :] * rdil - lo)
        valid = (pos >= 0) & (pos <= (size - 1) * ldil) & (pos % ldil == 0)
        pairs *= int(valid.sum())
    return int(n * cout * cin_per_group * pairs)


def _matmul_macs(eqn: jcore.JaxprEqn) -> int:
    if eqn.primitive.name == "conv_general_dilated":
        return _effective_conv_macs(eqn)
    (contract_l, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval
    return _elements(eqn.outvars[0].aval) * int(math.prod(lhs.shape[d] for d in contract_l))


def _strip_root(stack: str, prefix: str) -> str:
    if prefix and stack.startswith(prefix):
        return stack[len(prefix):]
    if prefix and stack == prefix.rstrip("/"):
        return ""
    return stack


# --- the walk -------------------------------------------------------------------------------

class _OpWalker(interpret.Walker):
    """Abstract walk that groups the x-dependent, non-linear equations into kernels."""

    def __init__(self, by_candidate: Mapping[int, layers_mod.Layer]) -> None:
        super().__init__()
        self.by_candidate = dict(by_candidate)
        self.groups: list[_Group] = []
        self.uses: dict[int, set[Any]] = {}  # origin -> consumers (group id, ("L", i), "out")
        self.layer_stacks: dict[int, str] = {}
        self.layer_origin: dict[int, int] = {}  # layer index -> origin of its output
        self.last_layer = -1
        self.current: _Group | None = None
        self._origins = itertools.count()
        self._scopes = itertools.count()
        self.scope: int | None = None
        self.scope_stack: str | None = None

    # -- values
    def new(self, size: int, *, x: bool, group: int = -1, layer: int = -1) -> _Val:
        """A fresh buffer."""
        return _Val(x=x, origin=next(self._origins), size=size, group=group, layer=layer)

    def lift_const(self, val: Any) -> _Val:
        return self.new(int(np.size(val)), x=False)

    def input_val(self, aval: Any) -> _Val:
        """The network input ``x``."""
        return self.new(_elements(aval), x=True)

    def _use(self, invals: Sequence[Any], consumer: Any) -> None:
        for v in invals:
            if isinstance(v, _Val) and v.x:
                self.uses.setdefault(v.origin, set()).add(consumer)

    def _stack(self, eqn: jcore.JaxprEqn) -> str:
        # Inside an op scope the call's own stack names the op (inner stacks are relative).
        if self.scope_stack is not None:
            return self.scope_stack
        return str(eqn.source_info.name_stack)

    # -- linear candidates
    def linear(self, eqn: jcore.JaxprEqn, invals: list[Any], k: int) -> _Val:
        out_size = _elements(eqn.outvars[0].aval)
        layer = self.by_candidate.get(k)
        if layer is not None:
            self._use(invals, ("L", layer.index))
            if tuple(eqn.outvars[0].aval.shape) != tuple(layer.out_shape):
                raise NetOpError(f"find_ops: layer {layer.name!r} (candidate {k}) has out_shape "
                                 f"{layer.out_shape} but that equation outputs "
                                 f"{tuple(eqn.outvars[0].aval.shape)}; pass the find_layers "
                                 "result of the same (apply_fn, params, x)")
            self.layer_stacks[layer.index] = str(eqn.source_info.name_stack)
            self.last_layer = layer.index
            self.current = None
            out = self.new(out_size, x=True, layer=layer.index)
            self.layer_origin[layer.index] = out.origin
            return out
        if not any(isinstance(v, _Val) and v.x for v in invals):
            return self.new(out_size, x=False)  # a product of params: folded at load time
        g = self._open("matmul", eqn)
        self._add(g, eqn, invals, _matmul_macs(eqn))
        self.current = None  # nothing fuses into a matmul's epilogue in this model
        return self._outs(g, eqn)[0]

    def opaque_with_linear(self, eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
        return self._kernel(eqn, invals)

    # -- everything else
    def default(self, eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
        sub = interpret._sub_jaxpr(eqn)
        if sub is not None:
            if self.scope is not None:
                return self.run(sub, invals)
            self.scope, self.scope_stack = next(self._scopes), str(eqn.source_info.name_stack)
            try:
                return self.run(sub, invals)
            finally:
                self.scope, self.scope_stack = None, None
        name = eqn.primitive.name
        if name in FREE_PRIMITIVES:
            outs = []
            for i in range(len(eqn.outvars)):
                src = invals[i] if i < len(invals) else None
                outs.append(src if isinstance(src, _Val)
                            else self.new(0, x=False))  # a broadcast literal: an immediate
            return outs
        if not any(isinstance(v, _Val) and v.x for v in invals):
            return [self.new(_elements(v.aval), x=False) for v in eqn.outvars]
        return self._kernel(eqn, invals)

    def _kernel(self, eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
        name = eqn.primitive.name
        if not any(isinstance(v, _Val) and v.x for v in invals):
            return [self.new(_elements(v.aval), x=False) for v in eqn.outvars]
        out_elems = sum(_elements(v.aval) for v in eqn.outvars)
        if name in _ELEMENTWISE:
            return self._elementwise(eqn, invals)
        if name in _POOL:
            window = int(math.prod(eqn.params.get("window_dimensions", (1,))))
            g = self._open("pool", eqn)
            self._add(g, eqn, invals, out_elems * window)
        elif name in _REDUCE:
            g = self._open("reduce", eqn)
            self._add(g, eqn, invals, sum(v.size for v in invals if isinstance(v, _Val) and v.x))
        elif name == "concatenate":
            g = self._open("concat", eqn)
            self._add(g, eqn, invals, 0)
        elif name == "pad":
            g = self._open("pad", eqn)
            self._add(g, eqn, invals, 0)
        elif name in _COPY:
            g = self._open("copy", eqn)
            self._add(g, eqn, invals, 0, partial=name in _PARTIAL_READ)
        else:
            g = self._open("other", eqn)
            self._add(g, eqn, invals, out_elems)
        return self._outs(g, eqn)

    def _elementwise(self, eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
        name = eqn.primitive.name
        x_pos = [i for i, v in enumerate(invals) if isinstance(v, _Val) and v.x]
        origins = {invals[i].origin for i in x_pos}
        affine = (name in _AFFINE and len(x_pos) == 1
                  and (name != "div" or x_pos == [0]))
        g = self.current
        if g is not None and self.scope is not None and g.scope != self.scope:
            g = None  # an activation function starts its own kernel
        stack = self._stack(eqn)
        joined = False
        if g is not None:
            members_only = origins <= g.members.keys()
            within = origins <= (g.members.keys() | g.reads.keys())
            touches = bool(origins & g.members.keys())
            if (g.kind in ("affine", "activation") and self.scope is not None
                    and g.scope == self.scope and within):
                joined = True  # rule (a): one activation function, one kernel
                if not affine:
                    g.kind = "activation"
            elif affine and g.kind == "affine" and members_only:
                joined = True
            elif affine and g.kind in ("pool", "reduce") and self._normaliser(g, eqn, invals):
                joined = True
                g.normalised = True
            elif affine and g.kind == "activation" and within and touches and stack == g.stack:
                joined = True  # rule (b): e.g. jax.nn.gelu's scale steps
            elif not affine and len(origins) == 1 and g.kind == "activation" and members_only:
                joined = True
            elif len(origins) > 1 and g.kind == "activation" and within and touches:
                joined = True  # swish: x * logistic(x)
        if not joined:
            kind = "affine" if affine else ("activation" if len(origins) == 1 else "binary")
            g = self._open(kind, eqn)
        flops = sum(_elements(v.aval) for v in eqn.outvars)
        self._add(g, eqn, invals, flops)
        outs = self._outs(g, eqn)
        if g.kind == "binary":
            self.current = None  # a binary op is always a kernel of its own
        return outs

    def _normaliser(self, g: _Group, eqn: jcore.JaxprEqn, invals: list[Any]) -> bool:
        """Whether ``eqn`` is the divisor of a mean/avg-pool that ``g`` summed."""
        if g.normalised or len(g.prims) != 1 or g.prims[0] not in _SUMS:
            return False
        name = eqn.primitive.name
        x_pos = [i for i, v in enumerate(invals) if isinstance(v, _Val) and v.x]
        return (name in ("div", "mul") and len(x_pos) == 1
                and (name != "div" or x_pos == [0]) and invals[x_pos[0]].origin in g.members)

    # -- group bookkeeping
    def _open(self, kind: str, eqn: jcore.JaxprEqn) -> _Group:
        g = _Group(gid=len(self.groups), kind=kind, after=self.last_layer, scope=self.scope,
                   stack=self._stack(eqn))
        self.groups.append(g)
        self.current = g
        return g

    def _add(self, g: _Group, eqn: jcore.JaxprEqn, invals: list[Any], flops: int,
             partial: bool = False) -> None:
        g.prims.append(eqn.primitive.name)
        g.flops += int(flops)
        out_elems = sum(_elements(v.aval) for v in eqn.outvars)
        for v in invals:
            if not isinstance(v, _Val):
                continue  # a literal: an immediate of the kernel
            if v.x:
                if v.origin not in g.members and v.origin not in g.reads:
                    g.reads[v.origin] = (min(v.size, out_elems) if partial else v.size, v)
            elif v.size:
                g.params.setdefault(v.origin, v.size)
        self._use(invals, g.gid)

    def _outs(self, g: _Group, eqn: jcore.JaxprEqn) -> list[_Val]:
        outs = [self.new(_elements(v.aval), x=True, group=g.gid) for v in eqn.outvars]
        g.members.update((o.origin, o.size) for o in outs)
        return outs


# --- finishing ------------------------------------------------------------------------------

def _chain(v: _Val, epilogue: Sequence[int]) -> int:
    """The layer whose epilogue chain produced ``v`` (-1: none)."""
    if v.layer >= 0:
        return v.layer
    if v.group >= 0:
        return epilogue[v.group]
    return -1


def _epilogue(walker: _OpWalker, g: _Group, epilogue: Sequence[int]) -> tuple[int, int]:
    """``(epilogue_of, extra_reads)`` of ``g`` given the earlier groups' ``epilogue``.

    A candidate layer ``l`` is the chain of the primary input (affine/activation) or of any
    operand (binary). It must produce a full-size operand (not one broadcast up: an epilogue
    maps the layer's own output elements) and every operand outside its chain must exist before
    ``l`` runs, in program order (the SE gate, computed from the conv's output, cannot be read
    in that conv's epilogue). Among valid candidates the last layer wins.
    """
    ext = list(g.reads.values())
    if g.kind not in FUSABLE_KINDS or not ext:
        return -1, 0
    full = max(g.members.values(), default=0)
    chains = [_chain(v, epilogue) for _, v in ext]
    best = -1
    for i in range(len(ext) if g.kind == "binary" else 1):
        c, v = chains[i], ext[i][1]
        if c < 0 or v.size != full:
            continue
        start = walker.layer_origin[c]
        if all(cj == c or u.origin < start for cj, (_, u) in zip(chains, ext, strict=True)):
            best = max(best, c)
    if best < 0:
        return -1, 0
    return best, sum(n for (n, _), c in zip(ext, chains, strict=True) if c != best)


def _writes(walker: _OpWalker, g: _Group) -> int:
    """Elements of ``g``'s outputs that something outside ``g`` consumes."""
    return sum(size for origin, size in g.members.items()
               if walker.uses.get(origin, set()) - {g.gid})


def _root_prefix(walker: _OpWalker, layers: Sequence[layers_mod.Layer]) -> str:
    """The root module's part of the name stack (``"ResNet/"``), found from the first layer."""
    for layer in layers:
        stack = walker.layer_stacks.get(layer.index, "")
        base = layer.name.split("@")[0]
        if stack == base:
            return ""
        if stack.endswith("/" + base):
            return stack[: -len(base)]
    return ""


def _finish(walker: _OpWalker, layers: Sequence[layers_mod.Layer]) -> tuple[NetOp, ...]:
    prefix = _root_prefix(walker, layers)
    epilogue: list[int] = []
    ops: list[NetOp] = []
    for g in walker.groups:
        ext = list(g.reads.values())
        epi, extra = _epilogue(walker, g, epilogue)
        epilogue.append(epi)
        stack = _strip_root(g.stack, prefix)
        name = f"op{g.gid:03d}:{stack}:{g.kind}" if stack else f"op{g.gid:03d}:{g.kind}"
        ops.append(NetOp(name=name, kind=g.kind, after=g.after,
                         reads=sum(n for n, _ in ext), param_reads=sum(g.params.values()),
                         writes=_writes(walker, g), flops=g.flops, epilogue_of=epi,
                         extra_reads=extra, primitives=tuple(g.prims)))
    return tuple(ops)


def find_ops(apply_fn: Callable[[Any, Any], Any], params: Any, x: Any,
             layers: Sequence[layers_mod.Layer] | None = None) -> tuple[NetOp, ...]:
    """Non-linear kernel groups of ``apply_fn(params, x)`` in program order.

    Args:
      apply_fn: any JAX function ``(params, x) -> logits``, as for :func:`~secnn_jax.find_layers`.
      params: its parameters/variables pytree (arrays or ``ShapeDtypeStruct``s).
      x: an input batch (array or ``ShapeDtypeStruct``); counts are for this whole batch.
      layers: the result of :func:`secnn_jax.find_layers` for the same ``(apply_fn, params,
        x)`` (computed from the same trace if None).

    Returns:
      A tuple of :class:`NetOp` (the rules are in the module docstring).

    Raises:
      NetOpError: (a ``ValueError``) ``x`` is not an array, or ``layers`` do not belong to
        this trace.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise NetOpError(f"find_ops: x must be an array or ShapeDtypeStruct, got {type(x)}")
    traced = interpret.trace_model(apply_fn, params, x)
    if layers is None:
        layers = layers_mod.layers_from_trace(traced)
    layers = tuple(layers)
    by_candidate = {layer.candidate: layer for layer in layers}
    if len(by_candidate) != len(layers) or any(k < 0 for k in by_candidate):
        raise NetOpError("find_ops: layers must come from find_layers (distinct candidates)")
    walker = _OpWalker(by_candidate)
    jaxpr = traced.closed_jaxpr
    invars = jaxpr.jaxpr.invars
    args = [walker.new(_elements(v.aval), x=False) for v in invars[:-1]]
    args.append(walker.input_val(invars[-1].aval))
    outs = walker.run(jaxpr, args)
    for v in outs:
        if isinstance(v, _Val) and v.x:
            walker.uses.setdefault(v.origin, set()).add("out")
    if walker.k <= max(by_candidate, default=-1):
        raise NetOpError(f"find_ops: layers name candidate {max(by_candidate)} but the "
                         f"program has only {walker.k} conv/dot_general equations")
    return _finish(walker, layers)
