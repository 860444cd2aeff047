"""The timing package's error for bad input: :class:`ReplayError` (a ``SecnnError``)."""

from __future__ import annotations

from secnn_jax.errors import SecnnError

__all__ = ["ReplayError", "UnknownResultError"]


class ReplayError(SecnnError, ValueError):
    """Bad input to the timing replay or a public timing function (the message names the
    argument: events, GPUs, schemes, precision, frames...)."""


class UnknownResultError(SecnnError, KeyError):
    """:meth:`ReplayResult.get` for a GPU and scheme the replay did not compute."""
