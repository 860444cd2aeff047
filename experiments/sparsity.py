"""Sparsity study: per layer, the fraction of input neurons that are "activated", read two ways.

Tests the paper's claim that fewer than 10% of neurons are activated in trained CNNs, under both
readings of "activated":

* **non-zero** (the neuron *fires*): for every model and stream, the plain forward pass
  (:meth:`experiments.cells.Workspace.reference`) counts, per layer and frame, the input neurons
  ``!= 0``. A layer is *rectified* when none of its inputs was ever negative on the stream (it
  reads a ReLU/ReLU6 output, possibly pooled) and *signed* otherwise (the image, BatchNorm
  outputs, residual sums, which are dense by construction).
* **changed** since the previous frame by more than a threshold: ``|x_t - x_{t-1}| > tau``. The
  same pass counts, per layer and frame, the changed input neurons at every threshold of
  :data:`experiments.config.CHANGE_TAUS` (0, then 1, 1.5, 2, 3, 5, 7 per decade from 1e-4 to
  100). Frame 0 has no previous frame: it is left out of every changed share (the shares are
  over frames 1 .. T-1). Reported at a fixed global tau (``config.activated_tau``, default
  0.05: the accuracy sweep's global-threshold scale, where the issue found top-1 agreement
  still 100% on EfficientNet-Lite0) and, once the accuracy study has tuned per-layer
  thresholds, at each tuned map (:func:`add_tuned`). The sparsity study runs first, so the tuned
  thresholds are not known when the pass runs: a tuned ``tau_l`` between two grid thresholds is
  reported as the exact bracket the grid gives (the share is non-increasing in tau: between the
  share at the grid threshold above ``tau_l`` and the one below), exact when ``tau_l`` is on it.

Beside ours, the published ImageNet figure: Cnvlutin (ISCA 2016) finds 44% of conv-layer inputs
zero on average (:data:`experiments.paper.CNVLUTIN_ZERO_SHARE`).

The result is a :class:`SparsityResult` (``results/sparsity.json``); :func:`claims`,
:func:`section` and :func:`notes` turn it into the report's claim rows, section and
"What this means" lines.

Library: :func:`sparsity`, :func:`add_tuned`. Command line::

    python -m experiments.sparsity --out_dir=runs/sparsity --config.frames=16
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from absl import app, logging

from experiments.cells import Workspace
from experiments.config import CHANGE_TAUS
from experiments.errors import ConfigError
from experiments.paper import CLAIM_ACTIVATED, CNVLUTIN_ZERO_SHARE
from experiments.records import RecordResult, optional
from experiments.reporting import pct, table
from experiments.studyresult import claim_row

__all__ = ["CLAIM_FIRED", "CURVE_TAUS", "DEFAULT_CHANGE_TAU", "SHOWN", "CellSummary",
           "CurvePoint", "LayerSparsity", "SparsityCell", "SparsityResult", "SummaryRow",
           "TunedChange", "add_tuned", "changed_share", "claims", "notes", "section",
           "sparsity", "summarise", "tuned_bracket", "verdict"]

#: The paper's claim: fewer than this fraction of neurons fire.
CLAIM_FIRED = CLAIM_ACTIVATED
#: The fixed threshold of the "changed" reading (``config.activated_tau``'s default).
DEFAULT_CHANGE_TAU = 0.05
#: The global thresholds the report's "share changed against a global tau" table shows (those
#: of them the run's grid has).
CURVE_TAUS: tuple[float, ...] = (0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: Layers a note names before "...".
SHOWN = 3


@dataclasses.dataclass(frozen=True)
class CellSummary:
    """One (model, stream)'s summary numbers (:func:`summarise`, then the changed shares).

    ``fired_*`` are shares of input neurons that are non-zero over all frames (``None``: no
    layer of that kind); ``changed*`` shares changed over frames 1 .. T-1 (``None``: fewer than
    two frames) at the fixed tau, ``changed_zero`` at tau = 0.
    """

    frames: int
    layers: int
    rectified_layers: int
    fired_all: float | None
    fired_rectified: float | None
    fired_signed: float | None
    median_layer_fired: float
    layers_below_claim: int
    claim_holds: bool
    verdict: str
    change_frames: int
    changed: float | None
    changed_rectified: float | None
    changed_zero: float | None
    changed_verdict: str


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """The share changed by more than a global ``tau`` (all layers)."""

    tau: float
    changed: float | None


@dataclasses.dataclass(frozen=True)
class LayerSparsity:
    """One layer's shares: non-zero over all frames (``fired``, its per-frame ``fired_min`` and
    ``fired_max``), changed at the fixed tau, and per tuning method the bracket
    ``(low, high)`` at the tuned thresholds (``changed_tuned``, once :func:`add_tuned` ran).
    ``role``: ``rectified`` (no input ever negative) or ``signed``."""

    name: str
    kind: str
    role: str
    n_inputs: int
    fired: float
    fired_min: float
    fired_max: float
    changed: float | None
    changed_tuned: Mapping[str, tuple[float, float]] | None = optional()


@dataclasses.dataclass(frozen=True)
class TunedChange:
    """The share changed at one tuning method's per-layer thresholds: the bracket the grid
    gives (``changed_low``-``changed_high``; ``exact`` when every threshold is on the grid)."""

    method: str
    changed_low: float | None
    changed_high: float | None
    exact: bool
    tau_min: float
    tau_max: float
    verdict: str


@dataclasses.dataclass(frozen=True)
class SparsityCell:
    """One (model, stream): its summary, the changed curve over the grid, per layer shares and,
    once :func:`add_tuned` ran, the changed shares at each tuned map (``tuned``)."""

    model: str
    stream: str
    summary: CellSummary
    changed_curve: tuple[CurvePoint, ...]
    layers: tuple[LayerSparsity, ...]
    tuned: tuple[TunedChange, ...] | None = optional()


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One (model, stream)'s verdicts on "fewer than 10% are activated", both readings."""

    model: str
    stream: str
    fired_all: float | None
    changed: float | None
    claim: str
    verdict: str
    changed_verdict: str


@dataclasses.dataclass(frozen=True)
class SparsityResult(RecordResult):
    """The sparsity study's result (``results/sparsity.json``): the claim's threshold
    (``claim["fired_below"]``), the fixed tau of the changed reading and the grid the pass
    counts at, one cell per (model, stream), and their summary rows."""

    STUDY: ClassVar[str] = "sparsity"
    VERSION: ClassVar[int] = 1

    claim: Mapping[str, float]
    change_tau: float
    change_taus: tuple[float, ...]
    cells: tuple[SparsityCell, ...]
    summary: tuple[SummaryRow, ...]


def verdict(low: float | None, high: float | None = None) -> str:
    """The verdict on "fewer than 10% are activated" for a share, or a bracket ``[low, high]``
    (holds if ``high`` < 10%, does not hold if ``low`` >= 10%, else ``inconclusive (low-high)``,
    the timing bands' word)."""
    high = low if high is None else high
    if low is None or high is None:
        return "not measured"
    if high < CLAIM_FIRED:
        return "holds"
    if low >= CLAIM_FIRED:
        return "does not hold"
    return f"inconclusive ({100 * low:.2f}%-{100 * high:.2f}%)"


def summarise(nonzero: np.ndarray, negative: np.ndarray, n_inputs: np.ndarray) -> dict[str, Any]:
    """Summary numbers of one (model, stream) from ``[T, L]`` counts and ``[L]`` sizes."""
    t = nonzero.shape[0]
    total = n_inputs.astype(np.float64) * t
    rectified = negative.sum(0) == 0
    per_layer = nonzero.sum(0) / total

    def frac(mask: np.ndarray) -> float | None:
        return float(nonzero.sum(0)[mask].sum() / total[mask].sum()) if mask.any() else None

    fired_all = frac(np.ones_like(rectified))
    return {
        "frames": int(t),
        "layers": int(len(n_inputs)),
        "rectified_layers": int(rectified.sum()),
        "fired_all": fired_all,
        "fired_rectified": frac(rectified),
        "fired_signed": frac(~rectified),
        "median_layer_fired": float(np.median(per_layer)),
        "layers_below_claim": int((per_layer < CLAIM_FIRED).sum()),
        "claim_holds": bool(fired_all is not None and fired_all < CLAIM_FIRED),
        "verdict": verdict(fired_all),
    }


def changed_share(changed: np.ndarray, n_inputs: np.ndarray, k: int | np.ndarray,
                  layers: np.ndarray | None = None) -> float | None:
    """The share of input neurons changed by more than threshold ``k`` over frames 1 .. T-1.

    Args:
      changed: ``[T, L, K]`` counts (:attr:`experiments.cells.RefResult.changed`); frame 0 is
        left out (no previous frame).
      n_inputs: ``[L]`` input neurons per layer.
      k: the threshold's index, one for every layer or ``[L]`` (one per layer).
      layers: a boolean ``[L]`` mask of the layers counted (default: all).

    Returns:
      ``None`` with fewer than two frames or no layer counted.
    """
    if changed.shape[0] < 2:
        return None
    mask = np.ones(changed.shape[1], bool) if layers is None else np.asarray(layers, bool)
    if not mask.any():
        return None
    ks = np.broadcast_to(np.asarray(k), (changed.shape[1],))
    per_layer = changed[1:].sum(0)[np.arange(changed.shape[1]), ks]  # [L]
    total = n_inputs.astype(np.float64) * (changed.shape[0] - 1)
    return float(per_layer[mask].sum() / total[mask].sum())


def tuned_bracket(taus: np.ndarray, change_taus: Sequence[float] | np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(k_low, k_high)`` ``[L]``: per layer, the grid indices whose shares bracket the share
    at ``taus`` (a threshold per layer): the grid threshold at or above it (the lower share; -1
    past the grid's end: share 0) and the one at or below it (the higher share)."""
    grid = np.asarray(change_taus, np.float32)
    t = np.asarray(taus, np.float32)
    above = np.searchsorted(grid, t, side="left")  # first grid >= tau
    below = np.searchsorted(grid, t, side="right") - 1  # last grid <= tau
    return np.where(above < len(grid), above, -1), np.maximum(below, 0)


def _bracket_shares(changed: np.ndarray, n_inputs: np.ndarray, taus: np.ndarray,
                    change_taus: np.ndarray) -> tuple[float | None, float | None, np.ndarray]:
    """``(low, high, per_layer [L, 2])`` shares changed at per-layer ``taus``."""
    k_lo, k_hi = tuned_bracket(taus, change_taus)
    padded = np.concatenate([changed, np.zeros_like(changed[..., :1])], axis=-1)  # -1: none
    k_lo = np.where(k_lo < 0, padded.shape[-1] - 1, k_lo)
    low = changed_share(padded, n_inputs, k_lo)
    high = changed_share(padded, n_inputs, k_hi)
    rows = np.array([[changed_share(padded[:, [i]], n_inputs[[i]], k_lo[i]) or 0.0,
                      changed_share(padded[:, [i]], n_inputs[[i]], k_hi[i]) or 0.0]
                     for i in range(changed.shape[1])]) if changed.shape[0] > 1 else \
        np.zeros((changed.shape[1], 2))
    return low, high, rows


def sparsity(ws: Workspace, models: Sequence[str], streams: Sequence[str], *,
             change_tau: float = DEFAULT_CHANGE_TAU) -> SparsityResult:
    """Per-layer firing rates and change rates for every model and stream.

    Args:
      change_tau: the fixed threshold of the "changed" reading (one of
        :data:`experiments.config.CHANGE_TAUS`, else :class:`ConfigError`).

    Returns:
      The :class:`SparsityResult`: per (model, stream) a :class:`SparsityCell` whose
      ``summary`` is :func:`summarise`'s numbers plus ``change_frames`` (T - 1), ``changed``
      and ``changed_rectified`` at ``change_tau``, ``changed_zero`` at tau = 0 and
      ``changed_verdict``; ``changed_curve`` the share changed at every threshold of
      ``change_taus``; and ``layers``: per layer ``name``, ``kind``, ``role``
      (rectified/signed), ``n_inputs``, ``fired`` (fraction of input neurons != 0 over all
      frames), ``fired_min``/``fired_max`` over frames, ``changed`` (at ``change_tau``, frames
      1 .. T-1). A :class:`SummaryRow` per cell.
    """
    if float(change_tau) not in CHANGE_TAUS:
        raise ConfigError(f"change_tau={change_tau!r} is not one of the thresholds the plain "
                          f"pass counts changes at (experiments.config.CHANGE_TAUS)")
    k_fixed = CHANGE_TAUS.index(float(change_tau))
    cells = []
    for m in models:
        for s in streams:
            ref = ws.reference(m, s)
            layers = ws.layers(m, s)
            rectified = ref.negative.sum(0) == 0
            per_frame = ref.nonzero / ref.n_inputs[None].astype(np.float64)
            rows = []
            for i, lyr in enumerate(layers):
                rows.append(LayerSparsity(
                    name=lyr.name, kind=lyr.kind,
                    role="rectified" if rectified[i] else "signed",
                    n_inputs=int(ref.n_inputs[i]),
                    fired=float(ref.nonzero[:, i].sum() / (ref.n_inputs[i] * len(ref.nonzero))),
                    fired_min=float(per_frame[:, i].min()),
                    fired_max=float(per_frame[:, i].max()),
                    changed=changed_share(ref.changed[:, [i]], ref.n_inputs[[i]], k_fixed),
                ))
            ch = changed_share(ref.changed, ref.n_inputs, k_fixed)
            summary = CellSummary(
                **summarise(ref.nonzero, ref.negative, ref.n_inputs),
                change_frames=int(max(ref.changed.shape[0] - 1, 0)),
                changed=ch,
                changed_rectified=changed_share(ref.changed, ref.n_inputs, k_fixed, rectified),
                changed_zero=changed_share(ref.changed, ref.n_inputs, 0),
                changed_verdict=verdict(ch),
            )
            logging.info("sparsity %s/%s: %.1f%% of input neurons fire (%.1f%% in rectified "
                         "layers); %s change by more than %g", m, s, 100 * summary.fired_all,
                         100 * (summary.fired_rectified or float("nan")),
                         "n/a" if ch is None else f"{100 * ch:.1f}%", change_tau)
            curve = tuple(CurvePoint(float(t), changed_share(ref.changed, ref.n_inputs, k))
                          for k, t in enumerate(CHANGE_TAUS))
            cells.append(SparsityCell(m, s, summary, curve, tuple(rows)))
    summary_rows = tuple(SummaryRow(
        model=c.model, stream=c.stream, fired_all=c.summary.fired_all,
        changed=c.summary.changed, claim=f"fewer than {CLAIM_FIRED:.0%} of input neurons fire",
        verdict=c.summary.verdict, changed_verdict=c.summary.changed_verdict) for c in cells)
    return SparsityResult(claim={"fired_below": CLAIM_FIRED}, change_tau=float(change_tau),
                          change_taus=tuple(float(t) for t in CHANGE_TAUS), cells=tuple(cells),
                          summary=summary_rows)


def add_tuned(result: SparsityResult, ws: Workspace, tuned: Sequence[Mapping[str, Any]]
              ) -> SparsityResult:
    """``result`` with the "changed" reading at the accuracy study's tuned thresholds.

    ``tuned`` is the accuracy result's ``tuned`` list (``model``, ``method``, ``tau``:
    ``{layer: float}``, missing layers 0). For every cell of a tuned model, per method: a
    :class:`TunedChange` (the bracket the grid gives: :func:`tuned_bracket`; ``exact`` when
    every layer's threshold is on the grid) and, per layer, ``changed_tuned``
    ``{method: (low, high)}``; every cell gets ``tuned`` (empty for a model not tuned). The
    references come from ``ws`` (in memory after :func:`sparsity`).
    """
    cells = []
    for c in result.cells:
        ref = ws.reference(c.model, c.stream)
        names = [r.name for r in c.layers]
        rows = []
        per_layer_tuned: list[dict[str, tuple[float, float]]] = [
            dict(r.changed_tuned or {}) for r in c.layers]
        for t in tuned:
            if t["model"] != c.model:
                continue
            taus = np.array([float(t["tau"].get(n, 0.0)) for n in names], np.float64)
            low, high, per_layer = _bracket_shares(ref.changed, ref.n_inputs, taus,
                                                   ref.change_taus)
            k_lo, k_hi = tuned_bracket(taus, ref.change_taus)
            method = str(t.get("method", "mean"))
            rows.append(TunedChange(method=method, changed_low=low, changed_high=high,
                                    exact=bool(np.array_equal(k_lo, k_hi)),
                                    tau_min=float(taus.min()), tau_max=float(taus.max()),
                                    verdict=verdict(low, high)))
            for mine, (lo, hi) in zip(per_layer_tuned, per_layer.tolist(), strict=True):
                mine[method] = (lo, hi)
        layers = tuple(dataclasses.replace(r, changed_tuned=mine) if mine else r
                       for r, mine in zip(c.layers, per_layer_tuned, strict=True))
        cells.append(dataclasses.replace(c, layers=layers, tuned=tuple(rows)))
    return dataclasses.replace(result, cells=tuple(cells))


def claims(result: SparsityResult) -> list[dict[str, str]]:
    """Both readings of "fewer than 10% of neurons are activated": non-zero, and changed by
    more than tau since the previous frame (at the fixed tau and at each tuned map), with the
    published ImageNet figure (Cnvlutin) beside the first."""
    rows: list[dict[str, str]] = []
    cnv = pct(1.0 - CNVLUTIN_ZERO_SHARE)
    limit = pct(CLAIM_ACTIVATED)
    for c in result.cells:
        s = c.summary
        where = {"model": c.model, "stream": c.stream}
        rows.append(claim_row(
            "fewer than 10% of neurons are activated, read as non-zero",
            f"fewer than 10% of neurons are activated, read as non-zero "
            f"({c.model}, {c.stream})",
            f"< {limit}",
            f"{pct(s.fired_all)} of all input neurons; {pct(s.fired_rectified)} in rectified "
            f"(post-ReLU) layers (Cnvlutin, ImageNet CNNs: {cnv})",
            s.verdict, **where))
        tau = result.change_tau
        rows.append(claim_row(
            "fewer than 10% of neurons are activated, read as changed since the previous frame",
            f"fewer than 10% of neurons are activated, read as changed by more than "
            f"tau = {tau:g} since the previous frame ({c.model}, {c.stream})",
            f"< {limit}",
            f"{pct(s.changed)} of all input neurons over frames 1 .. T-1; "
            f"{pct(s.changed_zero)} at tau = 0",
            s.changed_verdict, **where))
        for t in c.tuned or ():
            rows.append(claim_row(
                "fewer than 10% of neurons are activated, read as changed beyond the tuned tau",
                f"same, at the tuned per-layer tau (`{t.method}`; {c.model}, {c.stream})",
                f"< {limit}",
                f"{_bracket(t)} of all input neurons (tau {t.tau_min:.3g} to "
                f"{t.tau_max:.3g})",
                t.verdict, **where))
    return rows


def section(result: SparsityResult) -> list[str]:
    """The sparsity section: "activated" read as non-zero and as changed since the previous
    frame (fixed tau, tau = 0, every tuned map), with the published ImageNet figure."""
    tau = result.change_tau
    cnv = 1.0 - CNVLUTIN_ZERO_SHARE
    out = ["## Sparsity: how many neurons are activated", "",
           f"The paper's \"fewer than {CLAIM_ACTIVATED:.0%} of neurons are activated\", read "
           "two ways. *Non-zero*: the share of each layer's input neurons that are non-zero, "
           "over all frames. *Rectified* layers read a ReLU/ReLU6 output (no input was ever "
           "negative); *signed* layers read the image, a BatchNorm output or a residual sum. "
           f"Beside it, the published ImageNet figure: Cnvlutin (Albericio et al., ISCA 2016) "
           f"finds {pct(CNVLUTIN_ZERO_SHARE)} of conv-layer inputs zero on average, i.e. "
           f"{pct(cnv)} non-zero.", ""]
    rows = []
    for c in result.cells:
        s = c.summary
        rows.append([c.model, c.stream, s.frames, pct(s.fired_all), pct(s.fired_rectified),
                     pct(s.fired_signed), pct(cnv), f"{s.rectified_layers}/{s.layers}",
                     pct(s.median_layer_fired), f"{s.layers_below_claim}/{s.layers}",
                     s.verdict])
    out.append(table(["model", "stream", "frames", "non-zero (all)", "non-zero (rectified)",
                      "non-zero (signed)", "Cnvlutin, ImageNet (non-zero)",
                      "rectified layers", "median layer", "layers < 10%", "verdict"], rows))
    out += ["", f"*Changed*: the share of input neurons with |x_t - x_(t-1)| > tau, over frames "
            "1 .. T-1 (frame 0 has no previous frame and is left out), at tau = 0, at the fixed "
            f"tau = {tau:g} (`config.activated_tau`) and at "
            "each per-layer map the accuracy study's tuner chose (per method). The pass counts "
            "changes at fixed thresholds (0, then 1, 1.5, 2, 3, 5, 7 per decade); a tuned "
            "threshold between two of them gives the bracket shown (low-high), exact when "
            "every layer's threshold is one of them.", ""]
    methods = sorted({t.method for c in result.cells for t in c.tuned or ()})
    rows = []
    for c in result.cells:
        s = c.summary
        tuned = {t.method: t for t in c.tuned or ()}
        rows.append([c.model, c.stream, s.change_frames, pct(s.changed_zero), pct(s.changed),
                     pct(s.changed_rectified), s.changed_verdict]
                    + [(_bracket(tuned[m]) + f" ({tuned[m].verdict})") if m in tuned
                       else "n/a" for m in methods])
    if rows:
        out.append(table(["model", "stream", "frames compared", "changed (tau = 0)",
                          f"changed (tau = {tau:g})", f"changed (tau = {tau:g}, rectified)",
                          "verdict"] + [f"changed (tuned, `{m}`)" for m in methods], rows))
        if not methods:
            out += ["", "No tuned thresholds in this run (the accuracy study tunes them)."]
        shown = [t for t in CURVE_TAUS if t in result.change_taus]
        curve_rows = []
        for c in result.cells:
            at = {p.tau: p.changed for p in c.changed_curve}
            curve_rows.append([c.model, c.stream] + [pct(at.get(t)) for t in shown])
        out += ["", "Share changed against a global tau (all layers):", "",
                table(["model", "stream"] + [f"{t:g}" for t in shown], curve_rows)]
    out += ["", "![per-layer sparsity](figures/sparsity.png)", ""]
    return out


def _bracket(t: TunedChange) -> str:
    """A tuned map's changed share: one number when exact, else ``low-high``."""
    lo, hi = t.changed_low, t.changed_high
    return pct(lo) if t.exact or pct(lo) == pct(hi) else f"{pct(lo)}-{pct(hi)}"


def notes(result: SparsityResult) -> list[str]:
    """The report's "What this means" lines: per cell with signed layers, which layers read
    dense inputs and how many of their inputs are non-zero, beside the rectified layers'."""
    out = []
    for c in result.cells:
        s = c.summary
        signed = [r for r in c.layers if r.role == "signed"]
        if signed:
            out.append(
                f"{c.model} / {c.stream}: {len(signed)} of {s.layers} layers read "
                f"signed, dense inputs (the image, BatchNorm outputs or residual sums: "
                f"{', '.join(r.name for r in signed[:SHOWN])}"
                f"{', ...' if len(signed) > SHOWN else ''}); {pct(s.fired_signed)} of "
                f"their inputs are non-zero. Rectified layers: "
                f"{pct(s.fired_rectified)} fire.")
    return out


def main(argv: Sequence[str]) -> None:
    """Runs the sparsity study, prints its claims and table, and writes results/sparsity.json,
    its figure and report.md (its claims and section)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import sys  # noqa: PLC0415

    from experiments import cli, figures, reporting  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, timer=None,
                   studies=("sparsity",))
    res = sparsity(st.ws, list(st.ws.models), list(st.ws.streams),
                   change_tau=cfg.activated_tau)
    st.run.write_json("results/sparsity.json", res.to_json())
    figures.sparsity_bars(res, st.run.path("figures", "sparsity.png"))
    md, printed = reporting.study_output(cfg.to_dict(), claims(res), section(res),
                                         "experiments.sparsity")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/sparsity", _FIELDS["sparsity"])
