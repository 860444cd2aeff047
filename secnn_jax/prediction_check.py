"""What a predictor hands the phases: the check that a ``{layer: prediction}`` dict fits the
model's layers, and the errors predictors raise.

It sits below both :mod:`secnn_jax.phases` (which checks what it is given) and
:mod:`secnn_jax.predictors` (which re-exports these names), so neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp

from secnn_jax.errors import SecnnError
from secnn_jax.layers import Layer

__all__ = ["PredictorError", "PredictorTypeError", "check_predictions"]


class PredictorError(SecnnError, ValueError):
    """A predictor argument out of range, or a state/prediction that does not fit the model."""


class PredictorTypeError(SecnnError, TypeError):
    """An object that is not a predictor, or a ``predict`` that does not return a dict."""


def check_predictions(layers: Sequence[Layer], predictions: Mapping[str, Any]) -> None:
    """Raises a clear error if ``predictions`` does not hold one array per layer, shaped right."""
    if not isinstance(predictions, Mapping):
        raise PredictorTypeError(
            f"predict(state) must return a dict {{layer_name: array}}, got "
            f"{type(predictions).__name__}"
        )
    names = [layer.name for layer in layers]
    missing = [n for n in names if n not in predictions]
    extra = [n for n in predictions if n not in set(names)]
    if missing or extra:
        raise PredictorError(
            "predictor state does not match the model's layers: "
            f"missing predictions for {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unknown layers {extra[:5]}{'...' if len(extra) > 5 else ''} "
            "(was the state initialised with predictor.init(layers) of this model?)"
        )
    for layer in layers:
        shape = tuple(jnp.shape(predictions[layer.name]))
        if shape != tuple(layer.in_shape):
            raise PredictorError(
                f"prediction for layer {layer.name!r} has shape {shape}, expected the layer's "
                f"input shape {layer.in_shape}"
            )
