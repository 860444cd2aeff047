"""The experiments' configuration error, below every experiments module (the configuration,
the tuning-method specs, the cell engine and the metrics all raise it; none of them needs to
import another to do so)."""

from __future__ import annotations

from secnn_jax.errors import SecnnError

__all__ = ["ConfigError"]


class ConfigError(SecnnError, ValueError):
    """A configuration field has an invalid value (the message names the field)."""
