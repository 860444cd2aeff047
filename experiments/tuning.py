"""Tuning methods: what the threshold tuner requires of its calibration frames.

A :class:`TuneMethod` turns per-frame primary scores of a model's declared metric into the one
number the tuner compares with ``floor + margin``: the mean over all calibration frames
(``mean``), the worst of several contiguous windows (``worst_window``), or the window mean minus
``k`` standard deviations (``mean_std``); ``backoff`` scales the chosen thresholds down.
:func:`tune_method` parses a spec string (``worst_window(windows=4,backoff=0.25)``). The tuner
itself is :func:`experiments.accuracy.tune`.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from experiments.errors import ConfigError

__all__ = ["TuneMethod", "tune_method"]


@dataclasses.dataclass(frozen=True)
class TuneMethod:
    """What the tuner requires of the calibration frames (see the module docstring).

    Attributes:
      kind: ``"mean"`` (score over all calibration frames), ``"worst_window"`` (the worst of
        ``windows`` contiguous windows) or ``"mean_std"`` (mean of the window scores minus ``k``
        standard deviations).
      windows: calibration windows (``worst_window``, ``mean_std``: at least 2).
      margin: safety margin: the criterion must reach ``floor + margin``.
      k: standard deviations subtracted (``mean_std``).
      backoff: the chosen ``alpha`` is multiplied by this (``(0, 1]``; 1 = none).
    """

    kind: str = "mean"
    windows: int = 1
    margin: float = 0.0
    k: float = 1.0
    backoff: float = 1.0

    KINDS = ("mean", "worst_window", "mean_std")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ConfigError(f"tune method {self.kind!r}: unknown; known: "
                              f"{', '.join(self.KINDS)}")
        if int(self.windows) != self.windows or self.windows < 1:
            raise ConfigError(f"tune method {self.spec}: windows must be an integer >= 1")
        if self.kind != "mean" and self.windows < 2:
            raise ConfigError(f"tune method {self.spec}: {self.kind} needs windows >= 2")
        if not 0.0 <= self.margin < 1.0:
            raise ConfigError(f"tune method {self.spec}: margin must lie in [0, 1)")
        if not (np.isfinite(self.k) and self.k >= 0):
            raise ConfigError(f"tune method {self.spec}: k must be finite and >= 0")
        if not 0.0 < self.backoff <= 1.0:
            raise ConfigError(f"tune method {self.spec}: backoff must lie in (0, 1]")

    @property
    def spec(self) -> str:
        """Canonical spec string: ``worst_window(windows=4,margin=0.02,backoff=0.5)``."""
        args = []
        if self.kind != "mean":
            args.append(f"windows={int(self.windows)}")
        if self.kind == "mean_std":
            args.append(f"k={self.k:g}")
        if self.margin:
            args.append(f"margin={self.margin:g}")
        if self.backoff != 1.0:
            args.append(f"backoff={self.backoff:g}")
        return self.kind + (f"({','.join(args)})" if args else "")

    def window_scores(self, per_frame: np.ndarray) -> np.ndarray:
        """Mean score of each of the ``windows`` contiguous windows of ``per_frame``."""
        parts = np.array_split(np.asarray(per_frame, np.float64), int(self.windows))
        return np.array([p.mean() for p in parts if p.size], np.float64)

    def criterion(self, per_frame: np.ndarray) -> float:
        """The number compared with ``floor + margin``, from per-frame primary scores."""
        per_frame = np.asarray(per_frame, np.float64)
        if self.kind == "mean":
            return float(per_frame.mean())
        w = self.window_scores(per_frame)
        if self.kind == "worst_window":
            return float(w.min())
        return float(w.mean() - self.k * (w.std(ddof=1) if w.size > 1 else 0.0))


def tune_method(spec: str | TuneMethod) -> TuneMethod:
    """A :class:`TuneMethod` from ``mean``, ``worst_window(windows=4,margin=0.02)``,
    ``mean_std(windows=4,k=1,backoff=0.5)``...; :class:`ConfigError` naming the problem (an
    unknown kind or argument, an argument given twice, a value out of range)."""
    if isinstance(spec, TuneMethod):
        return spec
    m = re.fullmatch(r"\s*(\w+)\s*(?:\((.*)\))?\s*", str(spec))
    if not m:
        raise ConfigError(f"bad tune method spec {spec!r}")
    kind, args = m.group(1), m.group(2) or ""
    kwargs: dict[str, float] = {}
    names = ("windows", "margin", "k", "backoff")
    for part in filter(None, (p.strip() for p in args.split(","))):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in names:
            raise ConfigError(f"tune method {spec!r}: unknown argument {key!r}; known: "
                              f"{', '.join(names)}")
        if key in kwargs:
            raise ConfigError(f"tune method {spec!r}: {key!r} is given twice")
        try:
            kwargs[key] = float(value)
        except ValueError as e:
            raise ConfigError(f"tune method {spec!r}: {part!r} is not key=number") from e
    if kind != "mean" and "windows" not in kwargs:
        kwargs["windows"] = 4
    if "windows" in kwargs:
        w = kwargs["windows"]
        if not float(w).is_integer():
            raise ConfigError(f"tune method {spec!r}: windows must be an integer")
        kwargs["windows"] = int(w)
    return TuneMethod(kind, **kwargs)
