"""How the report writes numbers and tables: the formatting every study's section shares.

The studies render their own report sections (``section(result)``) and claim rows
(``claims(result)``); they format with these helpers, so they never import
:mod:`experiments.report` (which imports them). :mod:`experiments.report` re-exports
:func:`pct`, :func:`times`, :func:`us` and :func:`band_range`, so tests can compare the report
with the library's numbers exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["band_range", "band_text", "judge", "pct", "table", "times", "us"]


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals (``0.1234 -> '12.34%'``)."""
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.2f}%"


def times(x: float | None) -> str:
    """A speedup with two decimals (``3.456 -> '3.46x'``)."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}x"


def us(x: float | None) -> str:
    """Microseconds with one decimal."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.1f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table: ``header`` and one line per row (cells through ``str``)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def judge(band: Mapping[str, Any] | None, value: float, rule: Callable[[float], str]) -> str:
    """``rule``'s verdict on ``value``, or by the band rule
    (:meth:`secnn_jax.timing.Band.judge`) when the band is known."""
    if not band:
        return rule(value)
    from secnn_jax.timing.uncertainty import Band  # noqa: PLC0415

    return Band(band["default"], band["low"], band["high"]).judge(rule)


def band_text(band: Mapping[str, Any] | None) -> str:
    """`` [band low-high]`` over the timing model's uncertainty, or nothing."""
    return f" [band {band_range(band)}]" if band else ""


def band_range(band: Mapping[str, Any] | None) -> str:
    """A band as ``low-high`` (two decimals, ``x``), or ``''``."""
    return f"{band['low']:.2f}-{band['high']:.2f}x" if band else ""
