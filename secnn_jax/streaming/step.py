"""One SE-CNN step: predict, parallel phase, serial phase, update — pure and jit-able.

:func:`pipeline` composes the step ``step(params, state, x, tau) -> (state, logits, events)``
and returns it with ``tau`` fixed by ``functools.partial``: call it without ``tau`` for the
fixed value, or pass ``tau=`` (``{layer_name: scalar}``, may be traced) to run it at another,
which is how :func:`secnn_jax.streaming.scan.scan_program` compiles one program for every tau.
There is no second, "dynamic" step: both calls run the same function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

from secnn_jax import events as ev
from secnn_jax.layers import Layer
from secnn_jax.phases import Tau, parallel_compute, serial_amend, tau_map
from secnn_jax.prediction_check import PredictorTypeError, check_predictions
from secnn_jax.predictors import PredictorLike, builtin_name, update_needs_tau

#: ``step(params, state, x[, tau=...]) -> (state, logits, events)``, what :func:`pipeline` makes.
Step = Callable[..., tuple[Any, Any, ev.EventMaps]]


def check_predictor(predictor: Any) -> None:
    """Raises :class:`PredictorTypeError` unless ``predictor`` has callable init/predict/update."""
    missing = [a for a in ("init", "predict", "update")
               if not callable(getattr(predictor, a, None))]
    if missing:
        raise PredictorTypeError(
            f"predictor {type(predictor).__name__} lacks callable {missing}; a predictor needs "
            "init(layers), predict(state) and update(state, inputs)"
        )


def pipeline(apply_fn: Callable, layers: tuple[Layer, ...], predictor: PredictorLike,
             tau: Tau = 0.0) -> functools.partial[tuple[Any, Any, ev.EventMaps]]:
    """Composes one SE-CNN step: ``step(params, state, x) -> (state, logits, events)``.

    predict -> parallel_compute -> serial_amend -> update. Pure: the predictor state goes in
    and comes out; safe under ``jax.jit`` and ``jax.lax.scan``. ``events`` is an
    :class:`secnn_jax.events.EventMaps`: the codes per layer, each layer's fires map beside
    them and the built-in predictor's name (``None`` for others).

    The step takes ``tau``: the returned object is ``functools.partial(step, tau=taus)`` with
    ``taus = tau_map(layers, tau)``, so ``step(params, state, x)`` runs at this ``tau`` and
    ``step(params, state, x, tau=other)`` at ``other`` (``{layer_name: scalar}``, every layer;
    it may be traced, so a sweep over thresholds compiles once). ``step.func`` is the step
    itself. A predictor with ``update_needs_tau`` gets the very ``tau`` the serial phase
    compared against as ``update(state, inputs, tau)``'s third argument (see
    :mod:`secnn_jax.predictors`).

    Args:
      apply_fn: the unmodified model ``(params, x) -> logits``.
      layers: ``find_layers(apply_fn, params, x)`` for the input shape used.
      predictor: a :class:`secnn_jax.predictors.Predictor` or any object with the same methods.
      tau: misprediction tolerance, a float or ``{layer_name: float}``.

    Raises:
      TauError: ``tau`` not a finite number >= 0 or naming unknown layers.
      PredictorTypeError: ``predictor`` lacks ``init``, ``predict`` or ``update``.
    """
    taus = tau_map(layers, tau)
    check_predictor(predictor)
    needs_tau = update_needs_tau(predictor)
    parallel = parallel_compute(apply_fn, layers)
    serial = serial_amend(apply_fn, layers)
    # Only predict and update run inside the step: holding them, not the predictor, keeps a
    # cached program from pinning what init alone needs (the mean predictor's statistics).
    predict, update = predictor.predict, predictor.update
    name = builtin_name(predictor)

    def step(params: Any, state: Any, x: jax.Array, tau: Any
             ) -> tuple[Any, Any, ev.EventMaps]:
        predictions = predict(state)
        check_predictions(layers, predictions)
        y_pred = parallel(params, predictions)
        logits, inputs, events = serial(params, x, predictions, y_pred, tau=tau)
        # The very tau object the serial phase compared against, so a predictor that rebuilds
        # its mask (accumulated) gets the propagated set bit for bit.
        new_state = update(state, inputs, tau) if needs_tau else update(state, inputs)
        return new_state, logits, ev.EventMaps(events.codes, events.fires, name)

    return functools.partial(step, tau=taus)
