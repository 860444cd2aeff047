"""The studies' timer: event maps -> replayed microseconds per frame, GPU and scheme.

A thin adapter over :func:`secnn_jax.timing.replay` with the shape the cell engine stores
(``[t, G, S]``, see :class:`experiments.cells.Timer`). Schemes not asked for in a call are NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from secnn_jax.layers import Layer

__all__ = ["ReplayTimer"]


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

    def __call__(self, layers: Sequence[Layer], events: Mapping[str, np.ndarray],
                 schemes: Sequence[str] | None = None) -> np.ndarray:
        """``[t, G, S]`` float64 microseconds; schemes outside ``schemes`` are NaN."""
        from secnn_jax import timing  # noqa: PLC0415

        want = tuple(s for s in self.schemes if schemes is None or s in schemes)
        t = int(next(iter(events.values())).shape[0])
        out = np.full((t, len(self.gpus), len(self.schemes)), np.nan)
        if not want:
            return out
        r = timing.replay(tuple(layers), dict(events), gpus=self.gpus, schemes=want,
                          precision=self.precision, batch_frames=max(t, 1))
        for g, gpu in enumerate(self.gpus):
            for s in want:
                out[:, g, self.schemes.index(s)] = r.get(gpu, s).total_us
        return out
