"""The studies' timer: event maps -> replayed microseconds per frame, GPU and scheme.

A thin adapter over :func:`secnn_jax.timing.replay` with the shapes the cell engine stores
(see :class:`experiments.cells.Timer`): ``time_us`` ``[t, G, S]`` and ``phase_us``
``[t, G, S, len(PHASES)]``. Schemes not asked for in a call, and phases a scheme does not have,
are NaN. The calibrated timing parameters are read once, when the timer is made, so one run uses
one parameter set; :attr:`ReplayTimer.key` fingerprints them for the cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import numpy as np

from secnn_jax.layers import Layer

__all__ = ["PHASES", "ReplayTimer"]

#: Phases reported by the replayer: layer-after-layer schemes have ``compute`` and ``launch``;
#: SE-CNN has ``parallel`` (the parallel phase's makespan), ``serial`` (the sum of the per-layer
#: corrections), and the corrections' ``compare`` and ``amend`` parts.
PHASES: tuple[str, ...] = ("compute", "launch", "parallel", "serial", "compare", "amend")


class ReplayTimer:
    """Replays chunks of events on fixed GPUs and schemes.

    Args:
      gpus: GPU keys (``secnn_jax.timing.GPUS``), e.g. ``("h100", "gtx1080ti")``.
      schemes: scheme names (``secnn_jax.timing.SCHEMES``).
      precision: ``fp32``, ``tf32`` or ``fp16``.
    """

    def __init__(self, gpus: Sequence[str], schemes: Sequence[str],
                 precision: str = "fp32") -> None:
        from secnn_jax import timing  # noqa: PLC0415

        self.gpus = tuple(timing.get_gpu(g).key for g in gpus)
        self.schemes = tuple(schemes)
        bad = [s for s in self.schemes if s not in timing.SCHEMES]
        if bad:
            raise ValueError(f"unknown schemes {bad}; the replayer knows {timing.SCHEMES}")
        self.precision = timing.canonical_precision(precision)
        self.params = timing.load_params()
        blob = json.dumps({"gpus": self.gpus, "schemes": self.schemes,
                           "precision": self.precision, "params": self.params.as_dict()},
                          sort_keys=True, default=str)
        #: Fingerprint of GPUs, schemes, precision and timing parameters (cache key).
        self.key = "timed-" + hashlib.sha256(blob.encode()).hexdigest()[:10]

    def __call__(self, layers: Sequence[Layer], events: Mapping[str, np.ndarray],
                 schemes: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """``{"time_us": [t, G, S], "phase_us": [t, G, S, P]}`` float64 microseconds."""
        from secnn_jax import timing  # noqa: PLC0415

        want = tuple(s for s in self.schemes if schemes is None or s in schemes)
        t = int(next(iter(events.values())).shape[0])
        out = np.full((t, len(self.gpus), len(self.schemes)), np.nan)
        phases = np.full(out.shape + (len(PHASES),), np.nan)
        if not want:
            return {"time_us": out, "phase_us": phases}
        r = timing.replay(tuple(layers), dict(events), gpus=self.gpus, schemes=want,
                          precision=self.precision, params=self.params,
                          batch_frames=max(t, 1))
        for g, gpu in enumerate(self.gpus):
            for s in want:
                res = r.get(gpu, s)
                j = self.schemes.index(s)
                out[:, g, j] = res.total_us
                for k, name in enumerate(PHASES):
                    if name in res.phases:
                        phases[:, g, j, k] = np.asarray(res.phases[name]) / res.clock_mhz
        return {"time_us": out, "phase_us": phases}
