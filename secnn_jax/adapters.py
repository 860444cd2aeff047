"""Adapters that turn other model styles into the ``apply_fn(params, x)`` form SE-CNN wraps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from secnn_jax.errors import SecnnError


class AdapterError(SecnnError, TypeError):
    """An object an adapter cannot turn into ``(apply_fn, params)`` (e.g. not an NNX module)."""


def nnx_apply(module: nnx.Module) -> tuple[Callable[[Any, jax.Array], Any], Any]:
    """Splits a ``flax.nnx`` module into a pure ``(apply_fn, params)`` pair.

    ``params`` is the module's state as a plain nested dict of arrays (``nnx.to_pure_dict``),
    so layer names are the NNX attribute paths (``"conv1"``, ``"blocks/0/conv"``). The module's
    current mode is kept: call ``module.eval()`` first so BatchNorm uses running statistics and
    Dropout is off. The module itself is not modified. Call it once and reuse ``apply_fn``:
    :func:`secnn_jax.run_stream` caches compiled programs by the ``apply_fn`` object, and each
    call of ``nnx_apply`` makes a new one.

    Returns:
      ``(apply_fn, params)`` with ``apply_fn(params, x) == module(x)``.
    """
    if not isinstance(module, nnx.Module):
        raise AdapterError(f"nnx_apply expects a flax.nnx.Module, got {type(module).__name__}")
    graphdef, state = nnx.split(module)
    params = nnx.to_pure_dict(state)

    def apply_fn(params: Any, x: jax.Array) -> Any:
        # Fresh copy of the state template each call: replace_by_pure_dict mutates in place.
        template = jax.tree_util.tree_map(lambda a: a, state)
        nnx.replace_by_pure_dict(template, params)
        return nnx.merge(graphdef, template)(x)

    return apply_fn, params
