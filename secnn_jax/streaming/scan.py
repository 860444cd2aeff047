"""The one compiled scan: a step over every frame of a chunk, with reducers inside the jit.

:func:`scan_program` is what :func:`secnn_jax.run_stream`, :func:`secnn_jax.iter_stream`,
:func:`secnn_jax.stream_program` (the studies' cell engine) and
:func:`secnn_jax.distributed.run_stream_sharded` run. Padded frames (``valid`` false) leave the
state untouched, so a short last chunk padded by :func:`secnn_jax.streaming.frames.pad_chunk`
reuses the full-chunk program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from secnn_jax import events as ev
from secnn_jax.layers import Layer
from secnn_jax.streaming.step import Step

#: A reducer: ``f(logits, events) -> pytree`` of one frame's outputs, run inside the scan.
Reducer = Callable[[jax.Array, dict[str, jax.Array]], Any]


class ScanOutput(NamedTuple):
    """What a program of :func:`scan_program` returns for a chunk of ``T`` frames.

    Attributes:
      state: predictor state after the last frame whose ``valid`` is true.
      logits: ``[T, ...]`` the SE-CNN output per frame.
      reduced: ``{name: pytree stacked over T}``, one entry per reducer (``{}`` without).
      events: :class:`secnn_jax.events.EventMaps` ``{layer_name: uint8 [T, *in_shape]}`` (with
        the fires maps), or ``{}`` when the events are not kept.
    """

    state: Any
    logits: jax.Array
    reduced: dict[str, Any]
    events: ev.EventMaps | dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class EventCounts:
    """A reducer: each layer's input neurons per event code in one frame, over all streams.

    ``EventCounts(layers)(logits, events)`` is int32 ``[L, 4]``: per layer of ``layers`` (in
    that order) the neurons coded ZZ, ZN, VH, VM (:mod:`secnn_jax.events`). Hashable (by its
    layers), so programs built with equal reducers share the program cache.
    """

    layers: tuple[Layer, ...]

    def __call__(self, logits: jax.Array, events: dict[str, jax.Array]) -> jax.Array:
        del logits
        return jnp.stack([
            jnp.stack([jnp.sum(events[lyr.name] == c, dtype=jnp.int32) for c in range(4)])
            for lyr in self.layers])


def scan_program(step: Step, *, reducers: Mapping[str, Reducer] | None = None,
                 keep_events: bool = True) -> Callable[..., ScanOutput]:
    """Jitted ``run(params, state, frames, valid, tau=None) -> ScanOutput`` scanning ``step``.

    ``step(params, state, x, tau=...) -> (state, logits, events)`` (a
    :func:`secnn_jax.pipeline` step) runs on every frame of ``frames [T, ...]``. ``tau``
    (``{layer_name: scalar}``) is passed to it unchanged, by keyword, and traced: one compile
    serves every value. ``tau=None`` calls ``step(params, state, x)``: the step's own fixed tau
    (a :func:`secnn_jax.pipeline` step made with ``tau``). Padded frames (``valid`` false)
    leave the state untouched, so a short last chunk padded by
    :func:`secnn_jax.streaming.frames.pad_chunk` reuses the full-chunk program.

    Args:
      step: the per-frame step.
      reducers: ``{name: f(logits, events) -> pytree}`` computed per frame inside the compiled
        scan (after the state update), stacked over frames in :attr:`ScanOutput.reduced`.
      keep_events: ``False``: the event maps are not returned (``events`` is ``{}``), so a
        program that needs only reducers never materialises ``[T, *in_shape]`` per layer.
    """
    reduce = dict(sorted((reducers or {}).items()))

    def body(carry: tuple[Any, Any, Any], inp: tuple[jax.Array, jax.Array]) -> Any:
        params, tau, state = carry
        x, ok = inp
        if tau is None:
            new_state, logits, events = step(params, state, x)
        else:
            new_state, logits, events = step(params, state, x, tau=tau)
        state = jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new_state, state)
        reduced = {name: f(logits, events) for name, f in reduce.items()}
        kept = events if keep_events else {}
        return (params, tau, state), (logits, reduced, kept)

    @jax.jit
    def run(params: Any, state: Any, frames: jax.Array, valid: jax.Array, tau: Any = None
            ) -> ScanOutput:
        (_, _, state), (logits, reduced, events) = jax.lax.scan(
            body, (params, tau, state), (frames, valid))
        return ScanOutput(state, logits, reduced, events)

    return run
