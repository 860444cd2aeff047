"""The studies' timer: event maps -> replayed microseconds per frame, GPU and timed variant.

A thin adapter over :func:`secnn_jax.timing.replay` with the shapes the cell engine stores
(see :class:`experiments.cells.Timer`): ``time_us`` ``[t, G, V]`` and ``phase_us``
``[t, G, V, len(PHASES)]``, one column per *variant* ``scheme@launch`` (every scheme of one
launch model replayed together, under the run's one fusion policy; under ``eager`` only the
event-independent schemes, for the ladder's first rung) or ``scheme@persistent:oracle`` (SE-CNN
on the oracle's events, :func:`secnn_jax.timing.oracle_events`, derived from the zero
predictor's). Which variants a predictor's events feed comes from the scheme registry: the zero
predictor's events (the exact zero pattern at tau = 0) feed the baselines, SE-CNN without value
prediction and the oracle; every other predictor's feed the SE-CNN schemes. Variants not asked
for in a call, and phases a scheme does not have, are NaN. The calibrated timing parameters are
read once, when the timer is made, so one run uses one parameter set; :attr:`ReplayTimer.key`
fingerprints them for the cache. A chunk's events are reduced to counts once
(:func:`secnn_jax.timing.reduce_events`) for all its launch models' replays, the oracle's once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from secnn_jax.layers import Layer
from secnn_jax.timing.energy import COMPONENTS
from secnn_jax.timing.names import (
    DEFAULT_FUSION,
    FRAME_INDEPENDENT,
    LAUNCH_MODELS,
    PHASES,
    SCHEMES,
    SECNN,
)

__all__ = ["PHASES", "ReplayTimer", "ladder_variant", "variant", "variant_parts"]

#: The predictor whose events know the real zero pattern (tau = 0).
ZERO_PREDICTOR = "zero"


def variant(scheme: str, launch: str, oracle: bool = False) -> str:
    """The column name of ``scheme`` under ``launch`` (on the oracle's events if ``oracle``)."""
    return f"{scheme}@{launch}" + (":oracle" if oracle else "")


def ladder_variant(step: Any) -> str:
    """The column of :func:`experiments.speedup.frame_times` that times a
    :class:`~secnn_jax.timing.ladder.LadderStep`: :func:`variant` of its scheme and launch, on
    the oracle's events for an oracle step, with ``:zero`` for SE-CNN on the zero predictor's
    events (the one place the ladder's column key is spelled)."""
    key = variant(step.scheme, step.launch, step.events == "oracle")
    return key + (":zero" if step.events == "zero" and step.scheme in SECNN else "")


def variant_parts(name: str) -> tuple[str, str, bool]:
    """Inverse of :func:`variant`: ``(scheme, launch, oracle)``."""
    head, _, tail = name.partition(":")
    scheme, _, launch = head.partition("@")
    return scheme, launch, tail == "oracle"


class ReplayTimer:
    """Replays chunks of events on fixed GPUs, schemes and launch models, one fusion policy.

    Args:
      gpus: GPU keys (``secnn_jax.timing.GPUS``), e.g. ``("h100", "gtx1080ti")``.
      schemes: scheme names (``secnn_jax.timing.SCHEMES``), replayed under every launch model
        of ``launches``.
      precision: ``fp32``, ``tf32`` or ``fp16``.
      launches: launch models (``secnn_jax.timing.LAUNCH_MODELS``).
      fusion: the one fusion policy of every variant.
      config: scheme knobs (``secnn_jax.timing.SchemeConfig``) or ``None`` for the defaults.
    """

    def __init__(self, gpus: Sequence[str], schemes: Sequence[str] = SCHEMES,
                 precision: str = "fp32", launches: Sequence[str] = LAUNCH_MODELS,
                 fusion: str = DEFAULT_FUSION, config: Any = None) -> None:
        from secnn_jax import timing  # noqa: PLC0415

        self.gpus = tuple(timing.get_gpu(g).key for g in gpus)
        bad = [s for s in schemes if s not in SCHEMES]
        if bad:
            raise timing.ReplayError(f"unknown schemes {bad}; the replayer knows {SCHEMES}")
        badl = [x for x in launches if x not in LAUNCH_MODELS]
        if badl:
            raise timing.ReplayError(f"unknown launch models {badl}; known: {LAUNCH_MODELS}")
        self.base_schemes = tuple(s for s in SCHEMES if s in schemes)
        self.launches = tuple(x for x in LAUNCH_MODELS if x in launches)
        self.fusion = fusion
        self.precision = timing.canonical_precision(precision)
        self.params = timing.load_params()
        self.config = config or timing.SchemeConfig()
        # Eager issue only matters for the ladder's first rung (dense/eager): the
        # event-dependent schemes, and the oracle, are replayed under the launch models the
        # comparisons use (graph, persistent), which keeps a run's replay cost bounded.
        own = [variant(s, ln) for ln in self.launches for s in self.base_schemes
               if ln != "eager" or s in FRAME_INDEPENDENT]
        oracle = [variant(s, "persistent", True) for s in self.base_schemes
                  if s in SECNN and "persistent" in self.launches]
        #: The columns of ``time_us`` (variant names).
        self.schemes: tuple[str, ...] = tuple(own + oracle)
        blob = json.dumps({"gpus": self.gpus, "variants": self.schemes, "fusion": fusion,
                           "energy": list(COMPONENTS), "frame_ids": "stream",
                           "precision": self.precision, "params": self.params.as_dict(),
                           "config": self.config.as_dict()}, sort_keys=True, default=str)
        #: Fingerprint of GPUs, variants, precision, fusion and timing parameters (cache key).
        self.key = "timed-" + hashlib.sha256(blob.encode()).hexdigest()[:10]

    def variants_for(self, predictor: str) -> tuple[str, ...]:
        """The variants a predictor's events are replayed for, from the registry's ``events``
        of each scheme: the zero predictor's feed the baselines, SE-CNN without prediction and
        the oracle; the ``accumulated`` predictor's the change-based peers and SE-CNN; any
        other predictor's SE-CNN."""
        from secnn_jax.timing.schemes import REGISTRY  # noqa: PLC0415

        name = predictor.strip().split("(")[0]

        def wanted(v: str) -> bool:
            scheme, _, oracle = variant_parts(v)
            events = REGISTRY[scheme].events
            if name == ZERO_PREDICTOR:
                return events in ("zero", "own")
            if oracle:
                return False
            return events == "own" or (events == "accumulated" and name == "accumulated")

        return tuple(v for v in self.schemes if wanted(v))

    def __call__(self, layers: Sequence[Layer], events: Mapping[str, np.ndarray],
                 schemes: Sequence[str] | None = None, ops: Sequence[Any] | None = None,
                 frame_offset: int = 0) -> dict[str, np.ndarray]:
        """``{"time_us": [t, G, V], "phase_us": [t, G, V, P], "energy_uj": [t, G, V, C]}``
        (float64 microseconds and microjoules per energy component).

        ``schemes`` selects variants (default: all); ``ops`` are the network's op groups;
        ``frame_offset`` the stream index of the chunk's first frame.
        """
        from secnn_jax import timing  # noqa: PLC0415

        want = [v for v in self.schemes if schemes is None or v in schemes]
        t = int(next(iter(events.values())).shape[0])
        out = np.full((t, len(self.gpus), len(self.schemes)), np.nan)
        phases = np.full(out.shape + (len(PHASES),), np.nan)
        energy = np.full(out.shape + (len(COMPONENTS),), np.nan)
        for oracle in (False, True):
            runs = [(ln, sch) for ln in self.launches
                    if (sch := tuple(s for s in self.base_schemes
                                     if variant(s, ln, oracle) in want))]
            if not runs:
                continue
            # The events as they are: their fires maps and predictor name go with them. They
            # are reduced to counts once for every launch model's replay.
            reduced = timing.reduce_events(
                tuple(layers), timing.oracle_events(events) if oracle else events,
                schemes=tuple(dict.fromkeys(s for _, sch in runs for s in sch)),
                batch_frames=max(t, 1), frame_offset=frame_offset)
            for ln, sch in runs:
                r = timing.replay(reduced, gpus=self.gpus, schemes=sch,
                                  precision=self.precision, launch=ln, fusion=self.fusion,
                                  ops=ops, params=self.params, config=self.config)
                for g, gpu in enumerate(self.gpus):
                    for s in sch:
                        res = r.get(gpu, s)
                        j = self.schemes.index(variant(s, ln, oracle))
                        out[:, g, j] = res.total_us
                        for k, comp in enumerate(COMPONENTS):
                            energy[:, g, j, k] = res.energy_parts[comp]
                        for k, name in enumerate(PHASES):
                            if name in res.phases:
                                phases[:, g, j, k] = np.asarray(res.phases[name]) / res.clock_mhz
        return {"time_us": out, "phase_us": phases, "energy_uj": energy}


