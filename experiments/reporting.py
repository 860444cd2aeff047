"""How the report writes numbers, tables and the document: what every study's section shares.

The studies render their own report sections (``section(result)``) and claim rows
(``claims(result)``); they format with these helpers, and a study's command writes its own
``report.md`` with :func:`study_output`, so no study imports :mod:`experiments.report` (which
imports them and keeps the registry of which results feed which rows and sections).
:mod:`experiments.report` re-exports :func:`pct`, :func:`times`, :func:`us`, :func:`band_range`,
:func:`summary` and :func:`claim_key`, so tests can compare the report with the library's numbers
exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["band_range", "band_text", "claim_key", "document", "judge", "pct", "study_output",
           "summary", "table", "times", "us"]


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


def claim_key(row: Mapping[str, str]) -> str:
    """The claim a row judges: its ``key``, or its claim text before the parenthesis."""
    return row.get("key") or row["claim"].split(" (")[0]


def summary(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """The one-screen summary: one line per claim (rows grouped by :func:`claim_key`), its
    verdicts counted over the rows (``inconclusive (low-high)`` verdicts counted together, with
    the lowest and highest end of their bands), and the models, streams and GPUs they cover."""
    groups: dict[str, list[Mapping[str, str]]] = {}
    for r in rows:
        groups.setdefault(claim_key(r), []).append(r)
    out = []
    for key, rs in groups.items():
        counts: dict[str, int] = {}
        ends: dict[str, list[float]] = {}
        for r in rs:
            kind, _, rest = r["verdict"].partition(" (")
            counts[kind] = counts.get(kind, 0) + 1
            lo_hi = re.fullmatch(r"(-?[\d.]+)-(-?[\d.]+)\)", rest)
            if lo_hi:
                ends.setdefault(kind, []).extend(float(x) for x in lo_hi.groups())
        verdicts = ", ".join(
            f"{v} {n}/{len(rs)}" + (f" ({min(ends[v]):.2f}-{max(ends[v]):.2f})" if v in ends
                                    else "") for v, n in counts.items())
        over = "; ".join(f"{what}: {', '.join(vals)}" for what, vals in (
            (what, list(dict.fromkeys(r[f] for r in rs if r.get(f))))
            for what, f in (("models", "model"), ("streams", "stream"), ("GPUs", "gpu")))
            if vals)
        out.append(f"**{key}**: {verdicts}" + (f" ({over})" if over else ""))
    return out


#: The run settings the report's preamble lists (those the config has).
SETTINGS: tuple[str, ...] = ("models", "streams", "frames", "resolution", "gpus", "precision",
                             "launch", "fusion", "taus", "agreement_floor", "tune_methods",
                             "transfer_streams")


def document(config: Mapping[str, Any], rows: Sequence[Mapping[str, str]],
             sections: Sequence[str], *, notes: Sequence[str] = (),
             missing: Sequence[tuple[str, str]] = (),
             command: str = "experiments.reproduce") -> str:
    """The ``report.md`` text: the preamble (the run's settings from ``config``), the summary
    and table of the claim ``rows``, the ``notes`` ("What this means"), the ``missing`` models
    and the studies' ``sections`` (Markdown lines); ``command`` is the module that ran."""
    out = ["# SE-CNN reproduction report", "",
           f"Generated by `python -m {command}`. Configuration: `config.json`; code "
           "version and environment: `environment.json`; wall time and host: `run_info.json`.",
           "",
           table(["setting", "value"], [[k, f"`{config[k]}`"] for k in SETTINGS
                                        if k in config]),
           ""]
    if rows:
        out += ["## Summary", "", "Each claim's verdicts over the rows that judge it (the "
                "table below), and the models, streams and GPUs they cover:", ""]
        out += [f"- {line}" for line in summary(rows)] + [""]
    out += ["## The paper's claims beside our measurements", ""]
    out += [table(["claim", "paper", "ours", "verdict"],
                  [[r["claim"], r["paper"], r["ours"], f"**{r['verdict']}**"] for r in rows]),
            ""]
    if notes:
        out += ["### What this means", ""] + [f"- {n}" for n in notes] + [""]
    if missing:
        out += ["### Models not run (no checkpoint)", "",
                table(["model", "create the checkpoint with"],
                      [[m, f"`{c}`"] for m, c in missing]), ""]
    out += list(sections)
    return "\n".join(out).rstrip() + "\n"


def study_output(config: Mapping[str, Any], rows: Sequence[Mapping[str, str]],
                 sections: Sequence[str], command: str) -> tuple[str, str]:
    """What a study run alone (``python -m <command>``) writes as ``report.md`` and prints:
    ``(report_md, printed)``. ``report_md`` is :func:`document` of the study's claim ``rows``
    and ``sections`` alone; ``printed`` the claims table and the sections without the
    report's preamble."""
    printed: list[str] = []
    if rows:
        printed += [table(["claim", "paper", "ours", "verdict"],
                          [[r["claim"], r["paper"], r["ours"], r["verdict"]] for r in rows]),
                    ""]
    printed += sections
    return (document(config, rows, sections, command=command),
            "\n".join(printed).rstrip() + "\n")
