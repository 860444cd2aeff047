"""The report: ``report.md`` with each claim of the paper beside our measurement and a verdict.

:func:`render` turns the studies' results (any subset) into Markdown: the headline table of
claims, then one section per study with its tables and figure. Each study renders its own claim
rows and sections (``claims(result)``, ``section(result)`` in its module); this module only
concatenates them, in the order of :func:`sections` and the claim sources. Numbers are formatted
by :func:`pct` and :func:`times` (:mod:`experiments.reporting`, re-exported here), so tests can
compare the report with the library's numbers exactly. Nothing time- or host-dependent goes in:
equal results give a byte-identical report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from experiments import energy, prediction, reporting, sparsity, speedup
from experiments import operating_point_report as op_report
from experiments import peersresult as peers_lib
from experiments.reporting import band_range, claim_key, document, pct, summary, times, us
from experiments.whatif import claims as whatif_claims
from experiments.whatif import section as whatif_section

__all__ = ["MACHINES", "band_range", "claim_key", "claims", "energy_section", "energy_terms",
           "pct", "peers_section", "render", "sections", "study_output",
           "summary", "times", "us"]


def claims(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """The headline rows: claim, paper, ours, verdict (one per claim and GPU), each with the
    claim it judges (``key``, the same for every model, stream and GPU) and, where it has them,
    ``model``, ``stream`` and ``gpu`` (what :func:`summary` groups)."""
    rows: list[dict[str, str]] = []
    for keys, fn in _claim_sources():
        if all(results.get(k) for k in keys):
            rows += fn(*(results[k] for k in keys))
    return rows


#: The energy study's section (from the speedup study's energy tables and its own result).
energy_section = energy.section
#: What the energy model counts (the energy section's first paragraph).
energy_terms = energy.energy_terms


def _claim_sources() -> tuple[tuple[tuple[str, ...], Any], ...]:
    """Which results feed which claim rows, in report order: ``(results keys, fn)`` with
    ``fn(*results[keys])`` the rows (a new study adds one entry here)."""
    from experiments.accuracy import render as accuracy_render  # noqa: PLC0415

    return (
        (("operating_point",), op_report.claims),
        (("sparsity",), sparsity.claims),
        (("speedup",), speedup.claims),
        (("energy",), energy.claims),
        (("peers",), peers_lib.claims),
        (("accuracy",), accuracy_render.claims),
        (("whatif",), whatif_claims),
    )


#: How the peers' claim names each machine (defined with the peers' result).
MACHINES = peers_lib.MACHINES
#: The peers study's section.
peers_section = peers_lib.section


def render(results: Mapping[str, Any], config: Mapping[str, Any], *,
           notes: Sequence[str] = (), missing: Sequence[tuple[str, str]] = (),
           command: str = "experiments.reproduce") -> str:
    """The full ``report.md`` text from the studies' results and the run's config (``command``:
    the module that generated it): :func:`experiments.reporting.document` of their claim rows
    (:func:`claims`) and sections (:func:`sections`)."""
    return document(config, claims(results), _sections(results), notes=notes, missing=missing,
                    command=command)


def sections() -> tuple[tuple[tuple[str, ...], Any], ...]:
    """Every study's report section, in report order: ``(results keys, fn)``, the section
    ``fn(*results[keys])`` rendered when every key has results (a new study adds one entry)."""
    from experiments.accuracy import render as accuracy_render  # noqa: PLC0415

    return (
        (("operating_point",), op_report.section),  # the headline table first
        (("sparsity",), sparsity.section),
        (("prediction",), prediction.section),
        (("speedup",), speedup.ladder_section),
        (("speedup",), speedup.section),
        (("sensitivity",), speedup.sensitivity_section),
        (("speedup", "energy"), energy.section),
        (("accuracy",), accuracy_render.section),
        (("peers",), peers_lib.section),
        (("whatif",), whatif_section),
    )


def _sections(results: Mapping[str, Any]) -> list[str]:
    """Every study's section of the report, in report order (:func:`sections`)."""
    out: list[str] = []
    for keys, fn in sections():
        if all(results.get(k) for k in keys):
            out += fn(*(results[k] for k in keys))
    return out


def study_output(results: Mapping[str, Any], config: Mapping[str, Any],
                 command: str) -> tuple[str, str]:
    """What a study run alone (``python -m <command>``, e.g. ``experiments.speedup``) writes
    as ``report.md`` and prints: ``(report_md, printed)``
    (:func:`experiments.reporting.study_output` of the study's claim rows and sections: the
    same text ``reproduce`` renders for them)."""
    return reporting.study_output(config, claims(results), _sections(results), command)
