"""The two SE-CNN phases as pure functions over an unmodified model.

* :func:`parallel_compute` — every linear layer evaluated on its *prediction*; layers share no
  data: the only values that flow into a layer are its prediction and its kernel (computed from
  ``params`` alone). XLA is free to run all layers at once.
* :func:`serial_amend` — the real network, in order; at each linear layer the parallel result is
  corrected by the mispredicted part of the real input::

      delta = x - P;   miss = |delta| > tau;   y = y_pred + linear(where(miss, delta, 0))

  ``linear`` is the layer's own primitive without bias. With ``tau = 0`` this equals the plain
  forward pass up to float rounding; with ``tau > 0`` small deltas are dropped.
* :func:`layer_inputs` — the plain forward pass, returning every layer's real input as well.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from secnn_jax import events as ev
from secnn_jax import interpret
from secnn_jax.errors import SecnnError
from secnn_jax.layers import Layer, LayerError, layers_from_trace
from secnn_jax.prediction_check import check_predictions

#: A threshold: one global tau, or a per-layer map ``{layer name: tau}`` (the one definition;
#: the streaming step, the cell engine and its cache import it).
Tau = float | Mapping[str, float]


class TauError(SecnnError, ValueError):
    """A misprediction tolerance that is not a finite number >= 0 (or names unknown layers)."""


def _tau_value(value: Any, what: str) -> float:
    """``value`` as a float, or :class:`TauError` saying what ``tau`` must be."""
    if isinstance(value, jax.core.Tracer):
        raise TauError(f"{what} is traced; a static tau must be concrete (to trace tau, pass it "
                       "to the step: step(params, state, x, tau={layer_name: value}))")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TauError(f"{what} must be a number, got {type(value).__name__}") from err
    if arr.ndim != 0:
        raise TauError(
            f"{what} must be one number, got an array of shape {arr.shape}; for one tau per "
            "layer pass a dict {layer_name: tau}")
    if arr.dtype.kind not in "fiu":
        raise TauError(f"{what} must be a number, got {value!r} (dtype {arr.dtype})")
    out = float(arr)
    if not math.isfinite(out) or out < 0:
        raise TauError(f"{what} must be finite and >= 0, got {out}")
    return out


def tau_map(layers: Sequence[Layer], tau: Tau) -> dict[str, float]:
    """Expands ``tau`` (global float or ``{name: float}``) to one float per layer.

    Layers missing from a dict get 0 (exact). An array instead of a number, a negative, NaN or
    infinite value, or a dict naming an unknown layer raises :class:`TauError` (a
    ``ValueError``).
    """
    names = [layer.name for layer in layers]
    if isinstance(tau, Mapping):
        unknown = sorted(set(tau) - set(names), key=str)
        if unknown:
            raise TauError(f"tau names unknown layers {unknown[:5]}; layers are {names[:5]}...")
        return {n: _tau_value(tau.get(n, 0.0), f"tau for layer {n!r}") for n in names}
    return dict.fromkeys(names, _tau_value(tau, "tau"))


class _Program:
    """``apply_fn`` traced lazily per params structure, checked against ``layers``."""

    def __init__(self, apply_fn: Callable, layers: Sequence[Layer]) -> None:
        if not layers:
            raise LayerError("SE-CNN needs at least one layer (see find_layers)")
        self.apply_fn = apply_fn
        self.layers = tuple(layers)
        self.by_candidate = {layer.candidate: layer for layer in self.layers}
        self._cache: dict[Any, interpret.TracedModel] = {}

    @property
    def x_aval(self) -> jax.ShapeDtypeStruct:
        return self.layers[0].model_input

    def traced(self, params: Any) -> interpret.TracedModel:
        leaves, treedef = jax.tree_util.tree_flatten(params)
        key = (treedef, tuple((jnp.shape(a), jnp.result_type(a)) for a in leaves))
        if key not in self._cache:
            traced = interpret.trace_model(self.apply_fn, params, self.x_aval)
            found = layers_from_trace(traced)
            sig = lambda ls: [(lyr.name, lyr.candidate, lyr.in_shape, lyr.kernel_shape)
                              for lyr in ls]
            if sig(found) != sig(self.layers):
                raise LayerError(
                    "the layers passed in do not match apply_fn(params, x): found "
                    f"{len(found)} layers ({[lyr.name for lyr in found[:3]]}...), expected "
                    f"{len(self.layers)} ({[lyr.name for lyr in self.layers[:3]]}...); call "
                    "find_layers with the same apply_fn, params and input shape"
                )
            self._cache[key] = traced
        return self._cache[key]

    def check_x(self, x: Any) -> None:
        want = self.x_aval
        if tuple(jnp.shape(x)) != tuple(want.shape):
            raise LayerError(
                f"input has shape {tuple(jnp.shape(x))}, but the layers were found for input "
                f"shape {tuple(want.shape)}; call find_layers again for a new shape"
            )


class _ParallelWalker(interpret.Walker):
    """Evaluates only what does not depend on ``x``; each layer runs on its prediction."""

    def __init__(self, program: _Program, predictions: Mapping[str, jax.Array]) -> None:
        super().__init__()
        self.program = program
        self.predictions = predictions
        self.y_pred: dict[str, jax.Array] = {}

    def default(self, eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
        if any(v is None for v in invals):
            return [None] * len(eqn.outvars)
        return interpret.bind_eqn(eqn, invals)

    def linear(self, eqn: jcore.JaxprEqn, invals: list[Any], k: int) -> Any:
        layer = self.program.by_candidate.get(k)
        if layer is None:
            return self.default(eqn, invals)[0]
        kernel = invals[1 - layer.input_index]
        with jax.named_scope(f"parallel/{layer.name}"):
            p = jnp.asarray(self.predictions[layer.name]).astype(layer.dtype)
            self.y_pred[layer.name] = layer.apply(p, kernel)
        return None  # the layer's real output depends on x: not available in this phase


def parallel_compute(apply_fn: Callable, layers: Sequence[Layer]
                     ) -> Callable[[Any, Mapping[str, jax.Array]], dict[str, jax.Array]]:
    """Builds ``f(params, predictions) -> {name: y_pred}``: every layer on its prediction.

    No layer's computation reads another layer's output (only its prediction and its kernel),
    so the layers are mutually independent and can run concurrently. ``y_pred`` excludes the
    bias, which the model adds after the linear map itself.
    """
    program = _Program(apply_fn, layers)

    def f(params: Any, predictions: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        check_predictions(program.layers, predictions)
        traced = program.traced(params)
        walker = _ParallelWalker(program, predictions)
        n = len(traced.param_paths)
        args = list(jax.tree_util.tree_leaves(params)) + [None]
        assert len(args) == n + 1
        walker.run(traced.closed_jaxpr, args)
        return walker.y_pred

    return f


class _SerialWalker(interpret.Walker):
    """Runs the real network, amending each layer's parallel result with its mispredictions."""

    def __init__(self, program: _Program, predictions: Mapping[str, jax.Array] | None,
                 y_pred: Mapping[str, jax.Array] | None, taus: Mapping[str, Any]) -> None:
        super().__init__()
        self.program = program
        self.predictions = predictions
        self.y_pred = y_pred
        self.taus = taus
        self.inputs: dict[str, jax.Array] = {}
        self.codes: dict[str, jax.Array] = {}
        self.fires: dict[str, jax.Array] = {}

    @property
    def events(self) -> ev.EventMaps:
        """The codes recorded so far, with each layer's fires map beside them."""
        return ev.EventMaps(self.codes, self.fires)

    def linear(self, eqn: jcore.JaxprEqn, invals: list[Any], k: int) -> Any:
        layer = self.program.by_candidate.get(k)
        if layer is None:
            return interpret.bind_eqn(eqn, invals)[0]
        x = invals[layer.input_index]
        kernel = invals[1 - layer.input_index]
        self.inputs[layer.name] = x
        if self.predictions is None:  # plain forward pass (layer_inputs)
            return layer.apply(x, kernel)
        with jax.named_scope(f"serial/{layer.name}"):
            p = jnp.asarray(self.predictions[layer.name]).astype(x.dtype)
            tau = self.taus[layer.name]
            delta = x - p
            # Comparisons on x itself, never on delta: see secnn_jax.events (missed).
            miss = ev.missed(x, p, tau)
            self.codes[layer.name] = ev.classify(x, p, tau)
            self.fires[layer.name] = ev.fires(x, tau)
            # where(), not delta * miss: an infinite delta must not turn into NaN via inf * 0.
            correction = layer.apply(jnp.where(miss, delta, jnp.zeros_like(delta)), kernel)
            y_pred = jnp.asarray(self.y_pred[layer.name])
            if y_pred.shape != correction.shape:
                raise LayerError(
                    f"y_pred for layer {layer.name!r} has shape {y_pred.shape}, expected "
                    f"{correction.shape}"
                )
            return (y_pred + correction).astype(correction.dtype)


def _run_serial(program: _Program, params: Any, x: Any, walker: _SerialWalker) -> Any:
    program.check_x(x)
    traced = program.traced(params)
    outs = walker.run(traced.closed_jaxpr, list(jax.tree_util.tree_leaves(params)) + [x])
    return jax.tree_util.tree_unflatten(traced.out_treedef, outs)


def serial_amend(apply_fn: Callable, layers: Sequence[Layer], tau: Tau = 0.0
                 ) -> functools.partial[tuple[Any, dict[str, jax.Array], ev.EventMaps]]:
    """Builds ``f(params, x, predictions, y_pred) -> (logits, inputs, events)``.

    ``inputs[name]`` is the real input of each layer, ``events[name]`` its uint8 event codes
    (:mod:`secnn_jax.events`), ``events`` an :class:`secnn_jax.events.EventMaps` that also
    carries each layer's fires map (``|x| > tau``). ``tau`` is a float for all layers or
    ``{name: float}`` (missing layers: 0).

    The function takes ``tau``: the returned object is ``functools.partial(f, tau=taus)`` with
    ``taus = tau_map(layers, tau)``, so ``f(params, x, predictions, y_pred, tau=other)`` runs
    at ``other`` (``{name: scalar}``, every layer; it may be traced, so a sweep over thresholds
    compiles once), which is how :func:`secnn_jax.pipeline`'s step passes its own ``tau``.
    """
    program = _Program(apply_fn, layers)
    taus = tau_map(program.layers, tau)

    def f(params: Any, x: Any, predictions: Mapping[str, jax.Array],
          y_pred: Mapping[str, jax.Array], tau: Mapping[str, Any]
          ) -> tuple[Any, dict[str, jax.Array], ev.EventMaps]:
        check_predictions(program.layers, predictions)
        walker = _SerialWalker(program, predictions, y_pred, tau)
        logits = _run_serial(program, params, x, walker)
        return logits, walker.inputs, walker.events

    return functools.partial(f, tau=taus)


def layer_inputs(apply_fn: Callable, layers: Sequence[Layer]
                 ) -> Callable[[Any, Any], tuple[Any, dict[str, jax.Array]]]:
    """Builds ``f(params, x) -> (logits, inputs)``: the plain forward pass plus layer inputs."""
    program = _Program(apply_fn, layers)

    def f(params: Any, x: Any) -> tuple[Any, dict[str, jax.Array]]:
        walker = _SerialWalker(program, None, None, {})
        logits = _run_serial(program, params, x, walker)
        return logits, walker.inputs

    return f
