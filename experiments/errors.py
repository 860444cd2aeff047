"""The experiments' configuration error, below every experiments module (the configuration,
the tuning-method specs, the cell engine and the metrics all raise it; none of them needs to
import another to do so)."""

from __future__ import annotations

from secnn_jax.errors import SecnnError

__all__ = ["CellError", "ConfigError", "MetricError", "UnknownCellError"]


class ConfigError(SecnnError, ValueError):
    """A configuration field has an invalid value (the message names the field)."""


class MetricError(SecnnError, ValueError):
    """Outputs a metric cannot score (shapes that differ, values outside the metric's range);
    the message names the metric and the shapes or values."""


class CellError(SecnnError, ValueError):
    """Bad input to the studies' cell engine (a frame count or chunk size below 1)."""


class UnknownCellError(SecnnError, KeyError):
    """A model or stream the workspace does not have (the message lists the ones it has)."""
