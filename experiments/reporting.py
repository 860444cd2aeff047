"""How the report writes numbers and tables: the formatting every study's section shares.

The studies render their own report sections (``section(result)``) and claim rows
(``claims(result)``); they format with these helpers, so they never import
:mod:`experiments.report` (which imports them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["pct", "table", "times", "us"]


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

