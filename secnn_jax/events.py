"""Event codes: what happened to each input neuron of each layer on each frame.

=====  ====  ==================================================================================
code   name  meaning
=====  ====  ==================================================================================
0      ZZ    predicted 0 and real ``|x| <= tau``: nothing to compute in either phase
1      ZN    predicted 0, real ``|x| > tau``: zero misprediction, amended in the serial phase
2      VH    predicted non-zero, ``|x - P| <= tau``: value hit, parallel phase only
3      VM    predicted non-zero, ``|x - P| > tau``: value miss, amended in the serial phase
=====  ====  ==================================================================================

The code is ``2 * (P != 0) + (|x - P| > tau)``: bit 1 says "predicted non-zero" (the neuron is
computed in the parallel phase), bit 0 says "mispredicted" (it is amended in the serial phase).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ZZ: int = 0
ZN: int = 1
VH: int = 2
VM: int = 3
NAMES: tuple[str, str, str, str] = ("ZZ", "ZN", "VH", "VM")
DTYPE = np.uint8


def classify(x: jax.Array, prediction: jax.Array, tau: float | jax.Array = 0.0) -> jax.Array:
    """Event code (uint8) of every neuron, from its real value, prediction and tolerance."""
    predicted_nonzero = prediction != 0
    missed = jnp.abs(x - prediction) > tau
    return (2 * predicted_nonzero.astype(jnp.uint8) + missed.astype(jnp.uint8)).astype(DTYPE)


def mispredicted(codes: jax.Array | np.ndarray) -> jax.Array | np.ndarray:
    """True where the serial phase must amend the neuron (ZN or VM)."""
    return (codes & 1) == 1


def predicted_nonzero(codes: jax.Array | np.ndarray) -> jax.Array | np.ndarray:
    """True where the parallel phase computes the neuron (VH or VM)."""
    return codes >= VH


def count(codes: np.ndarray, axis: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Counts of each code along ``axis``; a new trailing axis of size 4 indexes the code."""
    xp = jnp if isinstance(codes, jax.Array) else np
    return xp.stack([(codes == c).sum(axis=axis) for c in range(4)], axis=-1)
