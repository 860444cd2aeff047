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

**How "mispredicted" is computed.** :func:`missed` tests ``x > P + tau or x < P - tau``: ``x``
outside ``[P - tau, P + tau]`` (bounds rounded to the layer's dtype), which is ``|x - P| > tau``
in exact arithmetic and exactly ``x != P`` at ``tau = 0``. The comparisons-only form is what
keeps every compiled path on the same bits: XLA recomputes a cheap layer input inside each
kernel that reads it, and LLVM contracts a product feeding a subtraction into one fused
multiply-add, so ``|x - P|`` written literally compares the *unrounded* ``x`` (e.g. the
``(frame - mean) / std`` of an in-model normalisation, a division XLA turns into a product)
against the rounded value that was stored as the next frame's prediction — every neuron then
looked like a value miss inside a compiled scan and a value hit in a jitted step. A comparison
reads the rounded value, whichever kernel recomputes it (``tests/test_stream_bits.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from secnn_jax.errors import SecnnError

ZZ: int = 0
ZN: int = 1
VH: int = 2
VM: int = 3
NAMES: tuple[str, str, str, str] = ("ZZ", "ZN", "VH", "VM")
DTYPE = np.uint8


def missed(x: jax.Array, prediction: jax.Array, tau: float | jax.Array = 0.0) -> jax.Array:
    """True where ``x`` lies outside ``[prediction - tau, prediction + tau]``: a misprediction.

    Comparisons only, no arithmetic on ``x`` (module docstring: why); ``prediction`` must
    already be in ``x``'s dtype. The one definition the serial phase, :func:`classify` and the
    predictors that replay the serial phase's mask (``predictors.accumulated``) share.
    """
    return (x > prediction + tau) | (x < prediction - tau)


def fires(x: jax.Array, tau: float | jax.Array = 0.0) -> jax.Array:
    """True where the real input fires: ``|x| > tau`` (at ``tau = 0``: ``x != 0``).

    What the zero predictor codes as ZN (and not ZZ), whatever predictor made the codes: the
    work of a zero-skipping kernel at this tolerance. Comparisons only, like :func:`missed`.
    """
    return missed(x, jnp.zeros_like(x), tau)


def classify(x: jax.Array, prediction: jax.Array, tau: float | jax.Array = 0.0) -> jax.Array:
    """Event code (uint8) of every neuron, from its real value, prediction and tolerance."""
    predicted_nonzero = prediction != 0
    miss = missed(x, prediction, tau)
    return (2 * predicted_nonzero.astype(jnp.uint8) + miss.astype(jnp.uint8)).astype(DTYPE)


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


class EventsError(SecnnError, ValueError):
    """Event maps whose parts do not fit together (fires for other layers than the codes)."""


def predictor_name(spec: Any) -> str | None:
    """The built-in predictor name a spec or description starts with (``"secnn(0.5)"`` ->
    ``"secnn"``), or ``None`` when ``spec`` is not a string naming one."""
    if not isinstance(spec, str):
        return None
    m = re.match(r"\s*([A-Za-z_]\w*)", spec)
    return m.group(1) if m else None


@jax.tree_util.register_pytree_node_class
class EventMaps(Mapping[str, Any]):
    """One frame's (or a stream's) event codes per layer, with what every scheme needs beside.

    A read-only mapping ``{layer_name: uint8 codes}``, exactly the codes of the table above, so
    code written for plain dicts keeps working; beside them:

    Attributes:
      fires: ``{layer_name: bool map}`` shaped like the codes, ``True`` where the real input
        fires (:func:`fires`: ``|x| > tau``), or ``None`` when unknown (events from before
        fires were recorded, or a plain dict). The codes cannot say it for a VM neuron (its
        real value may be 0), so a zero-skipping baseline replayed from codes alone depends on
        the predictor; with ``fires`` it does not.
      predictor: the name of the built-in predictor whose codes these are (``"zero"``,
        ``"last_value"``, ``"secnn"``, ``"accumulated"``, ``"mean"``), or ``None`` when
        unknown. Schemes that model a specific predictor (DeltaCNN, CBinfer: ``accumulated``)
        refuse codes of another.

    A JAX pytree (codes, then fires, as leaves), so it passes through ``jit`` and ``scan``;
    :meth:`map` applies a function to every array (slicing frames, ``np.asarray``) and keeps
    the fires and the predictor. ``dict(events)`` is the codes alone.
    """

    __slots__ = ("_codes", "fires", "predictor")

    def __init__(self, codes: Mapping[str, Any], fires: Mapping[str, Any] | None = None,
                 predictor: str | None = None) -> None:
        self._codes = dict(codes)
        if fires is not None:
            fires = dict(fires)
            if set(fires) != set(self._codes):
                raise EventsError(f"fires name layers {sorted(fires)[:5]}, codes "
                                 f"{sorted(self._codes)[:5]}: they must name the same layers")
        self.fires = fires
        self.predictor = predictor

    def __getitem__(self, name: str) -> Any:
        return self._codes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._codes)

    def __len__(self) -> int:
        return len(self._codes)

    def __repr__(self) -> str:
        shapes = {k: tuple(np.shape(v)) for k, v in list(self._codes.items())[:3]}
        more = ", ..." if len(self._codes) > 3 else ""
        return (f"EventMaps({len(self)} layers {shapes}{more}, fires="
                f"{'yes' if self.fires is not None else 'unknown'}, "
                f"predictor={self.predictor!r})")

    @property
    def codes(self) -> dict[str, Any]:
        """``{layer_name: codes}`` as a plain dict."""
        return dict(self._codes)

    def map(self, fn: Callable[[Any], Any]) -> EventMaps:
        """A new :class:`EventMaps` with ``fn`` applied to every codes and fires array."""
        fires = None if self.fires is None else {k: fn(v) for k, v in self.fires.items()}
        return EventMaps({k: fn(v) for k, v in self._codes.items()}, fires, self.predictor)

    def tree_flatten(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """Pytree protocol: the codes, then the fires, in layer order."""
        names = tuple(self._codes)
        leaves = tuple(self._codes[k] for k in names)
        if self.fires is not None:
            leaves += tuple(self.fires[k] for k in names)
        return leaves, (names, self.fires is not None, self.predictor)

    @classmethod
    def tree_unflatten(cls, aux: tuple[Any, ...], leaves: Any) -> EventMaps:
        """Pytree protocol (inverse of :meth:`tree_flatten`)."""
        names, has_fires, predictor = aux
        leaves = list(leaves)
        out = cls.__new__(cls)
        out._codes = dict(zip(names, leaves[:len(names)], strict=True))
        out.fires = (dict(zip(names, leaves[len(names):], strict=True)) if has_fires
                     else None)
        out.predictor = predictor
        return out


def fires_of(events: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``events.fires`` for :class:`EventMaps`, ``None`` for anything else (fires unknown)."""
    return events.fires if isinstance(events, EventMaps) else None


def predictor_of(events: Mapping[str, Any]) -> str | None:
    """``events.predictor`` for :class:`EventMaps`, ``None`` for anything else (unknown)."""
    return events.predictor if isinstance(events, EventMaps) else None
