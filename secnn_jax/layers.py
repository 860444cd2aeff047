"""Layer discovery: the linear layers of any JAX CNN, found from its jaxpr.

:func:`find_layers` traces ``apply_fn(params, x)`` and classifies every ``conv_general_dilated``
and ``dot_general``: it is a *linear layer* when exactly one operand depends on ``x`` (the input
neurons) and the other on ``params`` only (the learned kernel). Convolutions with input dilation
(``ConvTranspose``) or ``batch_group_count`` are not layers.

Layer names come from the path of the layer's kernel in ``params`` (:func:`layer_names`), and
are the framework's own name for the module, spelled exactly as the framework spells it:

* the container the user passed ``params`` in is not part of any name: when ``params`` is a
  tuple or list at its root (Haiku's ``(params, state)``, an Equinox model partitioned into
  ``(params, state)``, Keras 3's ``(trainable, non_trainable)``), the position in it is dropped;
  so are a leading ``params`` collection (Flax's ``{"params": ..., "batch_stats": ...}``) and
  the leaf's own name (``kernel``, ``w``, ``weight``);
* what remains is the Flax/NNX module path (``"layer1_0/conv1"``, ``"blocks/0/conv"``: a list
  position inside the model is part of its module path), the Haiku module name exactly as its
  ``params`` key and ``module_name`` spell it (``{"res_net18/~/initial_conv": {"w": ...}}`` ->
  ``"res_net18/~/initial_conv"``) or the Equinox attribute path (``"layers/0"``);
* ``layer_0``, ``layer_1``, ... (the kernel's rank among the model's distinct kernels, in
  execution order) where the path holds no name, e.g. the flat lists of params Keras 3's
  ``stateless_call`` takes (``([w0, b0, w1, b1, ...], [...])``): Keras keeps its names on the
  variables (``model.trainable_variables[i].path``), not in the lists;
* ``name@1``, ``name@2``, ... for the second, third, ... application of the *same* kernel leaf.
  Two different kernels that would share a name (one module holding two kernels) are told
  apart by their leaf names instead (``"attn/q"``, ``"attn/k"``).

Errors for a bad input or an unsupported model are :class:`LayerError` and
:class:`UnsupportedModelError`, both :class:`secnn_jax.SecnnError`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from secnn_jax import depthwise, interpret
from secnn_jax.errors import SecnnError


class LayerError(SecnnError, ValueError):
    """Layers that do not fit the model or input at hand, or a model with no linear layer."""


class UnsupportedModelError(SecnnError, NotImplementedError):
    """A model SE-CNN cannot split into layers (a linear layer hidden in ``lax.scan``/``cond``)."""


@dataclasses.dataclass(frozen=True)
class Layer:
    """One linear layer of a traced CNN (see module docstring).

    Attributes:
      name: stable name, the Flax module path of the kernel where there is one.
      kind: ``"conv"`` or ``"dense"``.
      index: position in execution order among the linear layers.
      in_shape: shape of the input operand as the layer consumes it (batch first).
      out_shape: shape of the layer's output (before any bias add).
      kernel_shape: shape of the kernel operand (HWIO for Flax convs, ``(F, Fout)`` for dense).
      strides: window strides per spatial dim (``()`` for dense).
      padding: ``(lo, hi)`` per spatial dim (``()`` for dense).
      dilation: kernel dilation per spatial dim (``()`` for dense).
      groups: ``feature_group_count`` (``C`` for depthwise convs, 1 for dense).
      macs: exact multiply-accumulates of the layer for the traced batch.
      dtype: dtype of the input operand.
      input_index: which operand of the primitive is the input (the other is the kernel).
      lhs_spec: for convs, ``(batch_dim, feature_dim, *spatial_dims)`` of the input;
        for dense, ``(batch_dim, *contracting_dims)``.
      kernel_path: path of the kernel's param leaf.
      candidate: running index of the primitive among all conv/dot_general of the program
        (internal: links the layer to its equation).
      primitive: the JAX primitive name.
      model_input: shape/dtype of ``x`` the model was traced with.
      primitive_params: the primitive's parameters, to apply the same linear map elsewhere.
    """

    name: str
    kind: str
    index: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    macs: int
    dtype: Any = dataclasses.field(default=jnp.float32, repr=False)
    input_index: int = dataclasses.field(default=0, repr=False)
    lhs_spec: tuple[int, ...] = dataclasses.field(default=(), repr=False)
    kernel_path: str = dataclasses.field(default="", repr=False)
    candidate: int = dataclasses.field(default=-1, repr=False)
    primitive: str = dataclasses.field(default="conv_general_dilated", repr=False)
    model_input: Any = dataclasses.field(default=None, repr=False, compare=False)
    primitive_params: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def n_inputs(self) -> int:
        """Input neurons per stream (product of ``in_shape`` without the batch dim)."""
        return math.prod(self.in_shape) // self.in_shape[self.lhs_spec[0]]

    @property
    def in_nhwc(self) -> tuple[int, int, int, int]:
        """``in_shape`` normalised to ``(N, H, W, C)``; dense layers are ``(N, 1, M, F)``."""
        return _nhwc_shape(self, self.in_shape)

    @property
    def out_nhwc(self) -> tuple[int, int, int, int]:
        """``out_shape`` normalised to ``(N, Ho, Wo, Cout)`` (dense: ``(N, 1, M, Fout)``)."""
        if self.kind == "dense":
            n = self.out_shape[0]
            return (n, 1, math.prod(self.out_shape) // (n * self.out_shape[-1]),
                    self.out_shape[-1])
        spec = self.primitive_params["dimension_numbers"].out_spec
        return _spec_to_nhwc(self.out_shape, spec)

    @property
    def in_perm(self) -> tuple[int, ...]:
        """The axes of ``in_shape`` in NHWC order: :meth:`to_nhwc` transposes by them, then
        reshapes to :attr:`in_nhwc` (a trace records them to give events back in this
        layer's own layout)."""
        return tuple(int(p) for p in _nhwc_perm(self)[0])

    def to_nhwc(self, a: Any) -> Any:
        """Transposes an array shaped ``in_shape`` (optionally with leading axes) to NHWC."""
        lead = a.ndim - len(self.in_shape)
        if lead < 0 or tuple(a.shape[lead:]) != tuple(self.in_shape):
            raise LayerError(
                f"layer {self.name!r}: expected an array ending in shape {self.in_shape}, "
                f"got {tuple(a.shape)}"
            )
        xp = jnp if isinstance(a, jax.Array) else np
        perm, target = _nhwc_perm(self)
        a = xp.transpose(a, tuple(range(lead)) + tuple(lead + p for p in perm))
        return a.reshape(a.shape[:lead] + target)

    @functools.cached_property
    def _fast_depthwise(self) -> bool:
        return depthwise.is_nhwc_depthwise(self.primitive_params["dimension_numbers"],
                                         self.kernel_shape, self.groups, self.in_shape[-1])

    def apply(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        """The layer's linear map (no bias) of ``x`` with ``kernel``, as the model computes it."""
        if self.kind == "conv" and self._fast_depthwise:
            out = depthwise.depthwise_conv_nhwc(x, kernel, self.strides, self.padding,
                                              self.dilation)
            pref = self.primitive_params.get("preferred_element_type")
            return out.astype(pref) if pref is not None else out
        operands = (x, kernel) if self.input_index == 0 else (kernel, x)
        prim = _PRIMITIVES[self.primitive]
        return prim.bind(*operands, **self.primitive_params)


def _primitive_table() -> dict[str, Any]:
    from jax._src.lax import convolution, lax  # noqa: PLC0415  (primitives live here)

    return {
        "conv_general_dilated": convolution.conv_general_dilated_p,
        "dot_general": lax.dot_general_p,
    }


_PRIMITIVES = _primitive_table()


def _spec_to_nhwc(shape: tuple[int, ...], spec: tuple[int, ...]) -> tuple[int, int, int, int]:
    batch, feat, *spatial = spec
    sp = [shape[d] for d in spatial]
    if len(sp) == 1:
        sp = [1, sp[0]]
    if len(sp) != 2:
        raise LayerError(f"only 1-D and 2-D convolutions map to NHWC, got spatial dims {sp}")
    return (shape[batch], sp[0], sp[1], shape[feat])


def _nhwc_perm(layer: Layer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if layer.kind == "conv":
        batch, feat, *spatial = layer.lhs_spec
        return (batch, *spatial, feat), layer.in_nhwc
    batch, *contract = layer.lhs_spec
    rest = [d for d in range(len(layer.in_shape)) if d != batch and d not in contract]
    return (batch, *rest, *contract), layer.in_nhwc


def _nhwc_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if layer.kind == "conv":
        return _spec_to_nhwc(shape, layer.lhs_spec)
    batch, *contract = layer.lhs_spec
    f = math.prod(shape[d] for d in contract)
    m = math.prod(shape) // (shape[batch] * f)
    return (shape[batch], 1, m, f)


@dataclasses.dataclass(frozen=True)
class _Dep:
    params: frozenset[int]
    x: bool


class _DependencyWalker(interpret.Walker):
    """Abstract interpretation: which param leaves and whether ``x`` each value depends on."""

    def __init__(self, traced: interpret.TracedModel) -> None:
        super().__init__()
        self.traced = traced
        self.found: list[tuple[int, jcore.JaxprEqn, int, _Dep]] = []

    def lift_const(self, val: Any) -> _Dep:
        return _Dep(frozenset(), False)

    def default(self, eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
        dep = _union(invals)
        return [dep] * len(eqn.outvars)

    def opaque_with_linear(self, eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
        dep = _union(invals)
        if dep.x and dep.params:
            raise UnsupportedModelError(
                f"a conv/dot_general inside a `{eqn.primitive.name}` primitive touches both the "
                "params and the input; SE-CNN cannot split layers hidden in control flow "
                "(unroll the loop, e.g. flax.linen.scan -> a Python loop)"
            )
        return [dep] * len(eqn.outvars)

    def linear(self, eqn: jcore.JaxprEqn, invals: list[Any], k: int) -> _Dep:
        dep = _union(invals)
        input_index = None
        if eqn.primitive.name == "conv_general_dilated":
            lhs, rhs = invals
            p = eqn.params
            if (lhs.x and not rhs.x and rhs.params
                    and all(d == 1 for d in p["lhs_dilation"])
                    and p["batch_group_count"] == 1):
                input_index = 0
        else:
            for i in (0, 1):
                a, b = invals[i], invals[1 - i]
                if a.x and not b.x and b.params:
                    input_index = i
                    break
        if input_index is not None:
            self.found.append((k, eqn, input_index, invals[1 - input_index]))
        return dep


def _union(deps: list[Any]) -> _Dep:
    params: frozenset[int] = frozenset()
    x = False
    for d in deps:
        if isinstance(d, _Dep):
            params |= d.params
            x |= d.x
    return _Dep(params, x)


def _kernel_leaf(traced: interpret.TracedModel, dep: _Dep) -> int:
    """The param leaf that is the kernel: the largest of those the kernel operand comes from."""
    sizes = {
        i: math.prod(traced.closed_jaxpr.jaxpr.invars[i].aval.shape) for i in dep.params
    }
    return max(sorted(dep.params), key=lambda i: sizes[i])


def _parts(path: tuple[str, ...]) -> list[str]:
    # Each key whole: a Haiku key is the module's own name, "/" and "~" included
    # ("res_net18/~/initial_conv"), and must stay spelled as Haiku spells it.
    return [str(key) for key in path if str(key) != ""]


def module_name(path: tuple[str, ...]) -> str | None:
    """The framework's name of the module owning a kernel at param ``path``, if the path has one.

    ``path`` is the kernel's path below the user's container (see the module docstring). Drops
    a leading ``params`` collection and the leaf's own name (``kernel``, ``w``): for Flax
    ``("params", "layer1_0", "conv1", "kernel") -> "layer1_0/conv1"``, for Haiku
    ``("res_net18/~/initial_conv", "w") -> "res_net18/~/initial_conv"``. A path of list
    positions only (``("4",)``, a Keras 3 flat params list) names nothing: ``None``.
    """
    parts = list(path)
    if len(parts) > 1 and parts[0] == "params":
        parts = parts[1:]
    if len(parts) > 1 and not str(parts[-1]).isdigit():
        parts = parts[:-1]  # the leaf's own name; a list position is not one
    names = _parts(tuple(parts))
    if not names or all(p.isdigit() for p in names):
        return None
    return "/".join(names)


def layer_names(kernel_paths: list[tuple[str, ...]], kernel_leaves: list[int]) -> list[str]:
    """Names of the layers whose kernels are the param leaves ``kernel_leaves``, in order.

    ``kernel_paths[i]`` is the param path of ``kernel_leaves[i]``. Reuse is counted by leaf:
    the second application of one kernel is ``name@1``; see the module docstring for the rest.
    """
    distinct: dict[int, tuple[str, ...]] = {}
    for leaf, path in zip(kernel_leaves, kernel_paths, strict=True):
        distinct.setdefault(leaf, path)
    base = {}
    for rank, (leaf, path) in enumerate(distinct.items()):
        base[leaf] = module_name(path) or f"layer_{rank}"
    owners: dict[str, list[int]] = {}
    for leaf, name in base.items():
        owners.setdefault(name, []).append(leaf)
    for leaves in owners.values():
        if len(leaves) > 1:  # one module, several kernels: tell them apart by their leaf names
            for leaf in leaves:
                base[leaf] = "/".join(_parts(distinct[leaf])) or f"param{leaf}"
    if len(set(base.values())) < len(base):  # still ambiguous (odd keys): the leaf's index
        base = {leaf: f"param{leaf}" for leaf in base}
    uses: dict[int, int] = {}
    names = []
    for leaf in kernel_leaves:
        k = uses.get(leaf, 0)
        uses[leaf] = k + 1
        names.append(base[leaf] if k == 0 else f"{base[leaf]}@{k}")
    return names


def _below_container(traced: interpret.TracedModel, path: tuple[str, ...]) -> tuple[str, ...]:
    """``path`` without the position in the tuple or list the user passed ``params`` in."""
    root = traced.param_treedef.node_data()
    if root is not None and root[0] in (tuple, list) and path:
        return path[1:]
    return path


def layers_from_trace(traced: interpret.TracedModel) -> tuple[Layer, ...]:
    """Classifies the linear layers of an already traced model."""
    walker = _DependencyWalker(traced)
    n_params = len(traced.param_paths)
    args = [_Dep(frozenset({i}), False) for i in range(n_params)] + [_Dep(frozenset(), True)]
    walker.run(traced.closed_jaxpr, args)
    leaves = [_kernel_leaf(traced, kdep) for _, _, _, kdep in walker.found]
    paths = [tuple(traced.param_paths[leaf]) for leaf in leaves]
    names = layer_names([_below_container(traced, p) for p in paths], leaves)
    return tuple(
        _make_layer(name, index, k, eqn, input_index, "/".join(path), traced)
        for index, ((k, eqn, input_index, _), name, path)
        in enumerate(zip(walker.found, names, paths, strict=True))
    )


def _make_layer(name: str, index: int, k: int, eqn: jcore.JaxprEqn, input_index: int,
                kernel_path: str, traced: interpret.TracedModel) -> Layer:
    x_aval = eqn.invars[input_index].aval
    w_aval = eqn.invars[1 - input_index].aval
    out_shape = tuple(eqn.outvars[0].aval.shape)
    in_shape = tuple(x_aval.shape)
    p = dict(eqn.params)
    if eqn.primitive.name == "conv_general_dilated":
        dn = p["dimension_numbers"]
        lhs_spec = tuple(dn.lhs_spec)
        cout = w_aval.shape[dn.rhs_spec[0]]
        macs = math.prod(out_shape) * (math.prod(w_aval.shape) // cout)
        return Layer(
            name=name, kind="conv", index=index, in_shape=in_shape, out_shape=out_shape,
            kernel_shape=tuple(w_aval.shape), strides=tuple(p["window_strides"]),
            padding=tuple(tuple(int(v) for v in pad) for pad in p["padding"]),
            dilation=tuple(p["rhs_dilation"]), groups=int(p["feature_group_count"]),
            macs=int(macs), dtype=x_aval.dtype, input_index=input_index, lhs_spec=lhs_spec,
            kernel_path=kernel_path, candidate=k, primitive=eqn.primitive.name,
            model_input=traced.x_aval, primitive_params=p,
        )
    (contract_l, contract_r), (batch_l, batch_r) = p["dimension_numbers"]
    contract = contract_l if input_index == 0 else contract_r
    batch_dims = batch_l if input_index == 0 else batch_r
    free = [d for d in range(len(in_shape)) if d not in contract and d not in batch_dims]
    batch_dim = (list(batch_dims) + free + [0])[0]
    macs = math.prod(out_shape) * math.prod(in_shape[d] for d in contract)
    return Layer(
        name=name, kind="dense", index=index, in_shape=in_shape, out_shape=out_shape,
        kernel_shape=tuple(w_aval.shape), strides=(), padding=(), dilation=(), groups=1,
        macs=int(macs), dtype=x_aval.dtype, input_index=input_index,
        lhs_spec=(batch_dim, *contract), kernel_path=kernel_path, candidate=k,
        primitive=eqn.primitive.name, model_input=traced.x_aval, primitive_params=p,
    )


def find_layers(apply_fn: Callable[[Any, jax.Array], Any], params: Any,
                x: jax.Array | jax.ShapeDtypeStruct) -> tuple[Layer, ...]:
    """The linear layers of ``apply_fn(params, x)`` in execution order.

    Args:
      apply_fn: any JAX function ``(params, x) -> logits`` (a Flax Linen ``model.apply``, the
        first result of :func:`secnn_jax.nnx_apply`, or plain JAX).
      params: its parameters/variables pytree (arrays or ``ShapeDtypeStruct``s).
      x: an input batch (array or ``ShapeDtypeStruct``); its shape fixes the layer shapes.

    Returns:
      A tuple of :class:`Layer`, one per application of a learned kernel.

    Raises:
      LayerError: if ``apply_fn`` has no linear layer, or ``x`` is not an array.
      UnsupportedModelError: if a linear layer hides inside control flow (``lax.scan``...).
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise LayerError(f"find_layers: x must be an array or ShapeDtypeStruct, got {type(x)}")
    traced = interpret.trace_model(apply_fn, params, x)
    layers = layers_from_trace(traced)
    if not layers:
        raise LayerError(
            "find_layers: apply_fn has no linear layer (no conv_general_dilated/dot_general "
            "whose kernel comes from params and whose input comes from x); SE-CNN has nothing "
            "to predict"
        )
    return layers


def layer_table(layers: tuple[Layer, ...]) -> str:
    """A fixed-width text table of layers (name, kind, shapes, groups, MACs)."""
    rows = [("#", "name", "kind", "in_shape", "out_shape", "kernel", "stride", "groups", "MACs")]
    for layer in layers:
        rows.append((str(layer.index), layer.name, layer.kind, str(layer.in_shape),
                     str(layer.out_shape), str(layer.kernel_shape), str(layer.strides),
                     str(layer.groups), f"{layer.macs:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
