"""Synthetic event maps at controlled firing and value-hit rates, on real layer shapes.

For what-if studies of the timing model (:mod:`experiments.whatif`): instead of running a
network over a stream, :func:`synthesize` writes the event codes (:mod:`secnn_jax.events`) and
fires maps the replayer (:func:`secnn_jax.timing.replay`) consumes, for any list of layers
(:class:`secnn_jax.geometry.LayerGeom` or :class:`secnn_jax.layers.Layer`), one frame per
requested :class:`Rates`:

* **firing rate** ``f``: the share of a layer's input neurons that are non-zero. Exactly
  ``round(f * n)`` of the layer's ``n`` inputs fire (the fires map).
* **hit rate** ``h``: the share of the firing inputs whose predicted value equals the real one
  (VH). A firing input is a hit when it is among the ``round(h * n)`` hit candidates of the
  layer, drawn independently of firing: the achieved share among the firing inputs is ``h``
  up to hypergeometric sampling (:func:`achieved` measures it).
* **zero-miss share** ``z``: of the firing inputs that are missed, the share predicted zero
  (ZN: amended in the serial phase only); the others are value misses (VM: computed in the
  parallel phase with a wrong value, then amended). Drawn like the hits, from the
  ``round(z * n)`` zero-miss candidates.
* A silent input (zero) is predicted zero (ZZ): the predictor never predicts a value for an
  input that is silent — the assumption most favourable to SE-CNN.

**Coupling.** Which inputs fire, which are hit candidates and which zero-miss candidates is
fixed per layer by seeded random permutations shared by every frame (:class:`Synthesizer`
draws them once): raising the firing rate only adds firing inputs, raising the hit rate only
turns misses into hits (with ``z = 0``: VM into VH, less serial work and the same parallel
work). So a cost model that never charges less for more work is monotone over the frames, and
equal seeds give equal maps. Inputs are placed uniformly at random (no spatial clustering,
unlike real activations), each layer independently of the others.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from secnn_jax.errors import SecnnError
from secnn_jax.events import VH, VM, ZN, ZZ, EventMaps
from secnn_jax.geometry import LayerGeom

__all__ = ["PREDICTOR", "Rates", "Synthesizer", "SyntheticError", "achieved", "synthesize"]

#: The predictor name synthetic event maps carry (:attr:`EventMaps.predictor`): not a built-in
#: predictor, so schemes that model one (DeltaCNN, CBinfer: ``accumulated``) refuse them.
PREDICTOR = "synthetic"


class SyntheticError(SecnnError, ValueError):
    """A rate outside ``[0, 1]``, no rates, or a layer that is not a layer (message names it)."""


@dataclasses.dataclass(frozen=True)
class Rates:
    """The rates of one synthetic frame (module docstring: what each means).

    Attributes:
      firing: share of input neurons that are non-zero, in ``[0, 1]``.
      hit: share of firing inputs predicted exactly (VH), in ``[0, 1]``.
      zero_miss: share of missed firing inputs predicted zero (ZN; the rest VM), in ``[0, 1]``.
    """

    firing: float
    hit: float
    zero_miss: float = 0.0

    def __post_init__(self) -> None:
        for f in ("firing", "hit", "zero_miss"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer) \
                    or not 0.0 <= float(v) <= 1.0:
                raise SyntheticError(f"Rates.{f}={v!r}: must be a number in [0, 1]")

    def as_dict(self) -> dict[str, float]:
        """``{"firing", "hit", "zero_miss"}`` as floats."""
        return {"firing": float(self.firing), "hit": float(self.hit),
                "zero_miss": float(self.zero_miss)}


def _geom(layer: Any) -> LayerGeom:
    if isinstance(layer, LayerGeom):
        return layer
    if isinstance(layer, Mapping):
        return LayerGeom.from_dict(layer.get("geom", layer))
    try:
        return LayerGeom.from_layer(layer)
    except (AttributeError, TypeError, ValueError) as e:
        raise SyntheticError(f"synthesize: {type(layer).__name__} is not a layer "
                             f"(LayerGeom, Layer or its dict form): {e}") from e


def _count(rate: float, n: int) -> int:
    """``round(rate * n)``, half up (so that rate 0.5 of 1 input is 1, not banker's 0)."""
    return min(n, int(math.floor(float(rate) * n + 0.5)))


class Synthesizer:
    """The per-layer draws of :func:`synthesize`, made once and reused for any rates.

    ``Synthesizer(layers, seed=s).events(rates)`` equals ``synthesize(layers, rates, seed=s)``
    (the same draws): a study that replays a grid chunk by chunk draws once and keeps only one
    chunk's event maps in memory.

    Args:
      layers: the linear layers (:class:`LayerGeom`, :class:`secnn_jax.layers.Layer` or their
        dict forms); only their input shapes matter.
      seed: seeds the per-layer permutations (layer ``i`` draws from ``(seed, i)``).
    """

    def __init__(self, layers: Sequence[Any], *, seed: int = 0) -> None:
        self.geoms = tuple(_geom(x) for x in layers)
        if not self.geoms:
            raise SyntheticError("synthesize: no layers")
        self.seed = int(seed)
        self._ranks: list[tuple[np.ndarray, np.ndarray]] = []
        self._rngs: list[np.random.Generator] = []
        self._zero_ranks: dict[int, np.ndarray] = {}
        for i, g in enumerate(self.geoms):
            n = int(np.prod(g.in_nhwc))
            rng = np.random.default_rng([self.seed, i])
            # Neuron j's place in the firing draw and in the hit-candidate draw.
            self._ranks.append((self._draw(rng, n), self._draw(rng, n)))
            self._rngs.append(rng)

    @staticmethod
    def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.permutation(n).astype(np.int32 if n < 2 ** 31 else np.int64)

    def _zero_rank(self, i: int) -> np.ndarray:
        """Layer ``i``'s zero-miss draw: its third permutation, drawn on first use."""
        if i not in self._zero_ranks:
            self._zero_ranks[i] = self._draw(self._rngs[i], self._ranks[i][0].size)
        return self._zero_ranks[i]

    def events(self, rates: Rates | Sequence[Rates]) -> EventMaps:
        """Event maps with one frame per entry of ``rates`` (frame ``t`` has ``rates[t]``):
        uint8 codes ``[T, *in_nhwc]`` per layer (NHWC, as the replayer reads them), the fires
        maps, and predictor :data:`PREDICTOR`."""
        rs = (rates,) if isinstance(rates, Rates) else tuple(rates)
        if not rs:
            raise SyntheticError("synthesize: no rates (expected at least one Rates)")
        for r in rs:
            if not isinstance(r, Rates):
                raise SyntheticError(f"synthesize: rates must be Rates, got {type(r).__name__}")
        codes: dict[str, np.ndarray] = {}
        fires: dict[str, np.ndarray] = {}
        for i, (g, (fire_rank, hit_rank)) in enumerate(zip(self.geoms, self._ranks,
                                                           strict=True)):
            n = fire_rank.size
            k = np.array([[_count(r.firing, n), _count(r.hit, n), _count(r.zero_miss, n)]
                          for r in rs])  # [T, 3]
            fire = fire_rank[None, :] < k[:, :1]
            miss = (hit_rank[None, :] >= k[:, 1:2]).view(np.uint8)
            # uint8 arithmetic: a firing input is VH (2), or VM (3) when missed, or ZN (1)
            # when missed and a zero-miss candidate; a silent one ZZ (0).
            val = np.uint8(VH) + miss
            if k[:, 2].any():
                zmiss = (self._zero_rank(i)[None, :] < k[:, 2:3]).view(np.uint8)
                val -= np.uint8(VM - ZN) * (miss & zmiss)
            codes[g.name] = (val * fire.view(np.uint8)).reshape(len(rs), *g.in_nhwc)
            fires[g.name] = fire.reshape(len(rs), *g.in_nhwc)
        return EventMaps(codes, fires, PREDICTOR)


def synthesize(layers: Sequence[Any], rates: Rates | Sequence[Rates], *, seed: int = 0
               ) -> EventMaps:
    """Event maps of ``layers``, one frame per entry of ``rates`` (module docstring).

    Args:
      layers: the linear layers (:class:`LayerGeom`, :class:`secnn_jax.layers.Layer` or their
        dict forms); only their input shapes matter.
      rates: one :class:`Rates` or a sequence of them: frame ``t`` has ``rates[t]``.
      seed: seeds the per-layer permutations (layer ``i`` draws from ``(seed, i)``).

    Returns:
      :class:`EventMaps` with uint8 codes ``[T, *in_nhwc]`` per layer (NHWC, as the replayer
      reads them), the fires maps, and predictor :data:`PREDICTOR`.
    """
    return Synthesizer(layers, seed=seed).events(rates)


def achieved(events: Mapping[str, Any]) -> list[dict[str, float]]:
    """The rates a frame's event maps actually hold, per frame, over all layers' inputs:
    ``firing`` (firing inputs / inputs), ``hit`` (VH / firing) and ``zero_miss`` (ZN / missed
    firing), ``nan`` where the denominator is 0. Firing is read from the fires maps where the
    events carry them, else as "not ZZ"."""
    fires = getattr(events, "fires", None)
    tot = None
    for name in events:
        c = np.asarray(events[name])
        t = c.shape[0]
        f = (np.asarray(fires[name]) if fires is not None else c != ZZ).reshape(t, -1)
        c = c.reshape(t, -1)
        part = np.stack([np.full(t, c.shape[1]), f.sum(1), (f & (c == VH)).sum(1),
                         (f & (c == ZN)).sum(1), (f & (c != VH)).sum(1)], 1).astype(np.int64)
        tot = part if tot is None else tot + part
    if tot is None:
        raise SyntheticError("achieved: no layers")
    return [{"firing": fi / n if n else math.nan, "hit": vh / fi if fi else math.nan,
             "zero_miss": zn / miss if miss else math.nan}
            for n, fi, vh, zn, miss in tot.tolist()]
