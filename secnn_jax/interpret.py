"""A small jaxpr interpreter: the machinery that lets SE-CNN wrap an *unmodified* CNN.

Any JAX function ``apply_fn(params, x) -> logits`` is traced once to a jaxpr. Its linear layers are
the ``conv_general_dilated`` / ``dot_general`` equations with one operand computed from ``params``
alone (the learned kernel) and the other from ``x`` (the layer's input). Everything else —
BatchNorm, activations, pooling, residual adds, concatenations — is re-executed exactly as the
model wrote it, by binding the original primitives.

The interpreter walks equations in program order and recurses into call-like higher-order
primitives (nested ``jit``, ``custom_jvp_call`` such as ``jax.nn.relu``, ``remat``) whenever they
contain a linear candidate, so the k-th ``conv``/``dot_general`` met is the same equation in every
walk. Control-flow primitives (``scan``, ``while``, ``cond``) that hide a linear layer are refused
with a clear error rather than silently executed without SE-CNN.

This is the route recommended by JAX's "Writing custom Jaxpr interpreters" guide; it works the
same for Flax Linen, Flax NNX (through :func:`secnn_jax.nnx_apply`) and plain JAX.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax.extend import core as jcore

LINEAR_PRIMITIVES = frozenset({"conv_general_dilated", "dot_general"})
# Primitives that merely call a sub-jaxpr on their operands: safe to inline.
_CALL_PRIMITIVES = frozenset(
    {
        "jit",
        "pjit",
        "closed_call",
        "core_call",
        "custom_jvp_call",
        "custom_vjp_call",
        "custom_vjp_call_jaxpr",
        "remat",
        "remat2",
        "checkpoint",
        "named_call",
    }
)


@dataclasses.dataclass(frozen=True)
class TracedModel:
    """``apply_fn`` traced at fixed shapes.

    Attributes:
      closed_jaxpr: jaxpr whose invars are the flattened param leaves followed by ``x``.
      param_paths: a readable path for every param leaf, in invar order.
      param_treedef: tree structure of ``params``.
      out_treedef: tree structure of the output of ``apply_fn``.
      x_aval: shape/dtype of ``x``.
    """

    closed_jaxpr: jcore.ClosedJaxpr
    param_paths: tuple[tuple[str, ...], ...]
    param_treedef: Any
    out_treedef: Any
    x_aval: jax.ShapeDtypeStruct


def _key_to_str(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def trace_model(apply_fn: Callable, params: Any, x: Any) -> TracedModel:
    """Traces ``apply_fn(params, x)`` to a jaxpr over flattened params and ``x``.

    ``params`` and ``x`` may be arrays, tracers or ``jax.ShapeDtypeStruct``s.
    """
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    leaves = [leaf for _, leaf in path_leaves]
    paths = tuple(tuple(_key_to_str(k) for k in path) for path, _ in path_leaves)

    def flat_fn(flat_params, x):
        return apply_fn(jax.tree_util.tree_unflatten(treedef, flat_params), x)

    as_struct = lambda a: jax.ShapeDtypeStruct(jax.numpy.shape(a), jax.numpy.result_type(a))
    leaf_structs = [as_struct(a) for a in leaves]
    x_struct = as_struct(x)
    closed, out_shape = jax.make_jaxpr(flat_fn, return_shape=True)(leaf_structs, x_struct)
    out_treedef = jax.tree_util.tree_structure(out_shape)
    return TracedModel(closed, paths, treedef, out_treedef, x_struct)


def _sub_jaxpr(eqn: jcore.JaxprEqn) -> jcore.ClosedJaxpr | jcore.Jaxpr | None:
    """The sub-jaxpr a call-like equation applies to its operands, if any."""
    if eqn.primitive.name not in _CALL_PRIMITIVES:
        return None
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = eqn.params.get(key)
        if isinstance(sub, jcore.ClosedJaxpr | jcore.Jaxpr):
            inner = sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub
            if len(inner.invars) == len(eqn.invars):
                return sub
    return None


@functools.lru_cache(maxsize=4096)
def _contains_linear_cached(jaxpr: jcore.Jaxpr) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in LINEAR_PRIMITIVES:
            return True
        for sub in jcore.jaxprs_in_params(eqn.params):
            if _contains_linear_cached(sub):
                return True
    return False


def contains_linear(jaxpr: jcore.ClosedJaxpr | jcore.Jaxpr) -> bool:
    """Whether ``jaxpr`` (or any sub-jaxpr) holds a ``conv_general_dilated``/``dot_general``."""
    inner = jaxpr.jaxpr if isinstance(jaxpr, jcore.ClosedJaxpr) else jaxpr
    return _contains_linear_cached(inner)


def bind_eqn(eqn: jcore.JaxprEqn, invals: Sequence[Any]) -> list[Any]:
    """Executes one equation exactly as the traced program would."""
    bind_params = eqn.primitive.get_bind_params(eqn.params)
    subfuns: Sequence[Any] = ()
    if isinstance(bind_params, tuple):  # older JAX returned (subfuns, params)
        subfuns, bind_params = bind_params
    with eqn.ctx.manager:
        out = eqn.primitive.bind(*subfuns, *invals, **bind_params)
    return list(out) if eqn.primitive.multiple_results else [out]


class Walker:
    """Walks a jaxpr in program order, delegating linear candidates and plain equations.

    Subclasses override :meth:`linear` (called with the candidate's running index ``k``) and
    optionally :meth:`default`. Call-like equations that contain a candidate are inlined so that
    candidate indices are identical across walks.
    """

    def __init__(self) -> None:
        self.k = 0

    def linear(self, eqn: jcore.JaxprEqn, invals: list[Any], k: int) -> Any:
        """Handles the ``k``-th conv/dot_general of the program; returns its output value."""
        raise NotImplementedError

    def default(self, eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
        """Handles any other equation; by default executes it unchanged."""
        return bind_eqn(eqn, invals)

    def opaque_with_linear(self, eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
        """An equation we do not inline (scan, cond, ...) that hides a linear primitive."""
        return self.default(eqn, invals)

    def run(self, jaxpr: jcore.ClosedJaxpr | jcore.Jaxpr, args: Sequence[Any],
            consts: Sequence[Any] | None = None) -> list[Any]:
        """Walks ``jaxpr`` on ``args`` (one value per invar); returns the output values."""
        if isinstance(jaxpr, jcore.ClosedJaxpr):
            consts, jaxpr = jaxpr.consts, jaxpr.jaxpr
        env: dict[Any, Any] = {}

        def read(v: Any) -> Any:
            return v.val if isinstance(v, jcore.Literal) else env[v]

        for v, val in zip(jaxpr.constvars, consts or (), strict=True):
            env[v] = self.lift_const(val)
        for v, val in zip(jaxpr.invars, args, strict=True):
            env[v] = val
        for eqn in jaxpr.eqns:
            invals = [read(v) for v in eqn.invars]
            name = eqn.primitive.name
            if name in LINEAR_PRIMITIVES:
                k = self.k
                self.k += 1
                outs = [self.linear(eqn, invals, k)]
            else:
                sub = _sub_jaxpr(eqn)
                if sub is not None and contains_linear(sub):
                    outs = self.run(sub, invals)
                elif any(contains_linear(s) for s in jcore.jaxprs_in_params(eqn.params)):
                    outs = self.opaque_with_linear(eqn, invals)
                else:
                    outs = self.default(eqn, invals)
            for v, val in zip(eqn.outvars, outs, strict=True):
                if not isinstance(v, jcore.DropVar):
                    env[v] = val
        return [read(v) for v in jaxpr.outvars]

    def lift_const(self, val: Any) -> Any:
        """Turns a closed-over constant into this walker's value domain."""
        return val
