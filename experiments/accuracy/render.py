"""The accuracy study in the report: its claim rows (:func:`claims`), its section
(:func:`section`) and its plain-language notes (:func:`notes`), from an
:class:`~experiments.accuracy.result.AccuracyResult`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments.accuracy.result import AccuracyResult, Scores, TunedRow
from experiments.metrics import METRICS
from experiments.paper import above
from experiments.reporting import pct, times
from experiments.reporting import table as _table
from experiments.studyresult import claim_row

__all__ = ["DENSE_METRICS", "EMPTY_MAP", "claims", "metric_label", "notes", "section"]

#: Metrics of dense-prediction models (their maps get a figure).
DENSE_METRICS = ("edge_f1", "region_f1")

#: Below this share of "on" pixels in the exact map a dense-prediction score says little.
EMPTY_MAP = 0.01

#: The paper's figure for the ">95% of accuracy" claim, as the claim rows show it.
_PAPER = "> 95.00%"


def metric_label(ac: AccuracyResult, model: str) -> str:
    """How the accuracy study names ``model``'s primary score (e.g. ``top-1 agreement``)."""
    return ac.metrics[model].label


def _field(r: Scores, key: str) -> str:
    """A metric field as the tables show it (MAE in scientific notation, shares in %)."""
    v = r.field(key)
    if v is None:
        return "n/a"
    return f"{v:.2e}" if key.endswith("_mae") else pct(v)


def claims(ac: AccuracyResult) -> list[dict[str, str]]:
    """The ">95% of accuracy" rows, each judged on the model's declared metric
    (:func:`experiments.paper.above`, as the study's summary)."""
    obj = ac.target
    floor = ac.claim_floor
    rows = []
    for r in (r for r in ac.sweep if r.tau == 0.0):
        label = metric_label(ac, r.model)
        rows.append(claim_row(
            "keeps > 95% of accuracy at tau = 0",
            f"keeps > 95% of accuracy at the speedups above: tau = 0 ({r.model}, {r.stream})",
            _PAPER,
            f"{pct(r.score)} {label} with the exact model on {r.frames} frames at "
            f"{times(r.speedup)} ({obj.scheme} over {obj.baseline}; output "
            f"error {r.scores.error.mean:.2e})",
            above(r.score, floor), model=r.model, stream=r.stream))
    for t in ac.tuned:
        label = metric_label(ac, t.model)
        for e in t.evaluation:
            if e.heldout is None:
                continue
            a = e.heldout.score
            rows.append(claim_row(
                f"keeps > 95% of accuracy with tau > 0 tuned ({t.method}), held out",
                f"keeps > 95% of accuracy with tau > 0: per-layer tau tuned ({t.method}) on "
                f"{t.calibration_frames} {t.stream} frames, held-out {e.stream} ({t.model})",
                _PAPER,
                f"{pct(a)} {label} on {e.heldout_frames} held-out frames at "
                f"{times(e.speedup)} ({obj.scheme} over {obj.baseline})",
                above(a, floor), model=t.model, stream=e.stream))
        tr = t.transfer
        if tr and tr.streams:
            worst = min(tr.streams, key=lambda p: p.worst_window)
            rows.append(claim_row(
                f"tuned thresholds ({t.method}) transfer to later frames and other clips",
                f"tuned thresholds transfer: held-out frames of the tuning stream and "
                f"of every other clip at >= the floor ({t.model}, {t.method})",
                "(not claimed)",
                "; ".join(f"{p.stream} {pct(p.score)} (worst window {pct(p.worst_window)})"
                          for p in tr.streams) + f" {label}; worst: {worst.stream}",
                "holds" if tr.floor_met else "does not hold", model=t.model))
    return rows


def section(ac: AccuracyResult) -> list[str]:
    """The report's accuracy section: the sweep per metric, each tuner's search and held-out
    table, the transfer tables, the figures."""
    obj = ac.target
    gpus = list(ac.gpus)  # every GPU timed; the objective's column first
    others = [g for i, g in enumerate(gpus) if i != obj.gpu]
    on = (f"on {gpus[obj.gpu]}" + (f" (the tuner's objective; the sweep also on "
                                     f"{', '.join(others)})" if others else "")
          if gpus else f"on GPU #{obj.gpu}")
    out = ["## Accuracy: agreement with the exact model against tau", "",
           f"Predictor `{ac.predictor}`. Speedup = `{obj.scheme}` over "
           f"`{obj.baseline}` {on}. Each model is judged on the task metric "
           "it declares (`models.get_spec(name).metric`, `experiments/metrics.py`), against "
           "the exact model: " + _metric_text(ac) + ". Scores are per frame, averaged (for a "
           "map metric, a frame where both maps are empty scores 1). The >95% claim and the "
           "tuner's floor use the metric's first field. Output error = max |output "
           "difference| / max |exact output|, averaged over frames.", ""]
    labelled = any(r.labels is not None for r in ac.sweep)
    by_metric: dict[str, list] = {}
    for r in ac.sweep:
        by_metric.setdefault(r.metric, []).append(r)
    for name, mine in by_metric.items():
        fields = METRICS[name].fields
        rows = []
        for r in mine:
            row = [r.model, r.stream, f"{r.tau:g}", r.frames,
                   *[_field(r.scores, k) for k, _ in fields],
                   f"{r.scores.error.mean:.2e}", pct(r.mispredicted), times(r.speedup),
                   *[times(r.speedup_by_gpu.get(g)) for g in others]]
            if labelled and name == "top1":
                row += [pct(r.labels.top1 if r.labels else None),
                        pct(r.labels.top1_exact if r.labels else None)]
            rows.append(row)
        header = ["model", "stream", "tau", "frames", *[lab for _, lab in fields],
                  "output error", "mispredicted", "speedup",
                  *[f"speedup on {g}" for g in others]]
        if labelled and name == "top1":
            header += ["top-1 accuracy (labels)", "exact model's accuracy"]
        out += [f"Judged on {METRICS[name].label}:", "", _table(header, rows), ""]
    for t in ac.tuned:
        out += _tuner_section(ac, t)
    out += _transfer_section(ac)
    out += ["![accuracy vs speedup](figures/accuracy.png)", ""]
    dense = sorted({t.model for t in ac.tuned if t.metric in DENSE_METRICS})
    if dense:
        out += ["Dense-prediction outputs on one frame (" + ", ".join(dense) + "), exact "
                "against SE-CNN at each tuning method's thresholds (the frame's score in each "
                "title):", "", "![dense maps](figures/dense_maps.png)", ""]
    return out


def _tuner_section(ac: AccuracyResult, t: TunedRow) -> list[str]:
    """One tuned model and method: the search and the held-out table."""
    label = metric_label(ac, t.model)
    out = [f"### Threshold tuner: {t.model} on {t.stream}, method `{t.method}`", "",
           f"Per-layer tau = alpha x mean|x| of the layer's input on the first "
           f"{t.calibration_frames} frames (calibration); floor {pct(t.floor)} "
           f"{label}" + (f" + margin {pct(t.margin)}" if t.margin else "")
           + f" on the method's criterion. Chosen: calibration {label} "
           f"{pct(t.score)}, criterion {pct(t.criterion)}, "
           f"speedup {times(t.speedup)}; alpha per layer from "
           f"{min(t.alpha.values()):g} to {max(t.alpha.values()):g}.", ""]
    hist = [[h.step, h.note, pct(h.score), pct(h.criterion), times(h.speedup),
             "yes" if h.feasible else "no"] for h in t.history]
    out += [_table(["step", "candidate", f"calibration {label}", "criterion", "speedup",
                    "feasible"], hist), ""]
    fields = METRICS[t.metric].fields
    rows = []
    for e in t.evaluation:
        ho = e.heldout
        rows.append([e.stream, e.heldout_frames,
                     *[_field(ho, k) if ho else "n/a" for k, _ in fields],
                     f"{ho.error.mean:.2e}" if ho else "n/a",
                     pct(e.mispredicted), times(e.speedup)])
    out += ["Tuned thresholds on held-out frames:", "",
            _table(["stream", "held-out frames", *[lab for _, lab in fields],
                    "output error", "mispredicted", "speedup"], rows), ""]
    return out


def _metric_text(ac: AccuracyResult) -> str:
    """Per metric the run's results use: the models judged on it and its fields."""
    by: dict[str, list[str]] = {}
    for r in ac.sweep:
        by.setdefault(r.metric, [])
        if r.model not in by[r.metric]:
            by[r.metric].append(r.model)
    return "; ".join(f"{', '.join(ms)} on {METRICS[m].label} (fields: "
                     + ", ".join(lab for _, lab in METRICS[m].fields) + ")"
                     for m, ms in by.items())


def _empty(t: TunedRow) -> list:
    """``t``'s transfer streams whose exact map is (almost) empty."""
    return [p for p in t.transfer.streams
            if p.exact_on is not None and p.exact_on < EMPTY_MAP]


def _empty_map_notes(tuned: Sequence[TunedRow]) -> list[str]:
    """A warning per model whose exact maps are (almost) empty on some transfer streams: there
    F1 is ~1 by the both-empty convention, whatever SE-CNN computes."""
    out = []
    for m in dict.fromkeys(t.model for t in tuned):
        empty = _empty(next(t for t in tuned if t.model == m))
        if empty:
            out += [f"Caution ({m}): the exact map is almost empty on "
                    + ", ".join(f"{p.stream} ({pct(p.exact_on)} of pixels on)" for p in empty)
                    + "; there the score is ~1 by the both-empty convention and is a weak "
                    "test of SE-CNN (the dense-map figure shows a frame with content).", ""]
    return out


def _transfer_section(ac: AccuracyResult) -> list[str]:
    """Tuned thresholds on later windows and other clips, and what each method costs."""
    tuned = [t for t in ac.tuned if t.transfer]
    if not tuned:
        return []
    out = ["### Transfer: the tuned thresholds on later frames and other clips", "",
           "Each method's thresholds on the frames after the calibration frames of the tuning "
           "stream and on the other clips from their first frame (none seen by the tuner). "
           "*held-out score* = over all of a clip's held-out frames; the floor is met when it "
           f"reaches the floor. *worst window* = the lowest score over "
           f"{tuned[0].transfer.window}-frame windows (the stricter reading: every window "
           "at the floor). *exact speedup* = SE-CNN at tau = 0 on the same frames, what the "
           "thresholds' gain is measured against.", ""]
    rows = []
    for t in tuned:
        label = metric_label(ac, t.model)
        for p in t.transfer.streams:
            wins = [r for r in t.transfer.rows if r.stream == p.stream]
            rows.append([t.model, t.method, label, p.stream,
                         f"{p.start}-{p.start + p.frames}", pct(p.score),
                         "yes" if p.floor_met else "no", pct(p.worst_window),
                         times(p.speedup), times(p.exact_speedup), pct(p.mispredicted),
                         ", ".join(f"{100 * r.score:.1f}" for r in wins)])
    out += [_table(["model", "method", "metric", "stream", "frames", "held-out score",
                    "floor met", "worst window", "speedup", "exact speedup", "mispredicted",
                    "window scores (%)"], rows), ""]
    rows = []
    for t in tuned:
        tr = t.transfer
        ps = [p for p in tr.streams if p.speedup is not None]
        gain = [p.speedup / p.exact_speedup for p in ps if p.exact_speedup] or [None]
        rows.append([t.model, t.method, pct(t.score), pct(t.criterion), times(t.speedup),
                     times(float(np.mean([p.speedup for p in ps])) if ps else None),
                     times(float(np.mean(gain)) if gain[0] is not None else None),
                     pct(float(np.mean([p.mispredicted for p in ps])) if ps else None),
                     pct(min(p.score for p in tr.streams)),
                     pct(min(p.worst_window for p in tr.streams)),
                     "yes" if tr.floor_met else "no"])
    out += ["What each method costs: calibration score and criterion, speedup on the "
            "calibration frames, mean held-out speedup over the transfer streams and its ratio "
            "to exact SE-CNN's on the same frames (the gain the thresholds buy), mean serial "
            "work left (mispredicted inputs, held out), the lowest held-out score and window, "
            "and whether the floor held on every clip's held-out frames:", "",
            _table(["model", "method", "calibration score", "criterion", "calibration speedup",
                    "held-out speedup", "gain over exact", "mispredicted",
                    "lowest held-out score", "worst window", "floor held"], rows), ""]
    out += _empty_map_notes(tuned)
    for m in dict.fromkeys(t.model for t in tuned):
        mine = [t for t in tuned if t.model == m]
        if not any(t.transfer.floor_met for t in mine):
            out += [f"**No tuning method held the {pct(mine[0].floor)} floor on the "
                    f"held-out frames of every clip for {m}** (methods: "
                    + ", ".join(f"`{t.method}`" for t in mine) + "); only tau = 0 (exact) "
                    "is safe.", ""]
        else:
            ok = [t for t in mine if t.transfer.floor_met]
            best = max(ok, key=lambda t: t.speedup or 0)
            out += [f"{m}: `{best.method}` holds the floor on the held-out frames of every "
                    f"clip at {times(best.speedup)} on the calibration frames"
                    + ("" if best.transfer.windows_met else
                       f" (not on every {best.transfer.window}-frame window)") + ".", ""]
    return out


def notes(ac: AccuracyResult, *, parallel_share: float | None = None) -> list[str]:
    """Plain-language observations on the accuracy result: the sweep's speedup range against
    its lowest score (with why tau barely moves the speedup when the parallel phase takes
    ``parallel_share`` > 1/2 of the objective scheme's frame time: the speedup study's phase
    table), each tuner's held-out scores, and the transfer verdict per model."""
    out: list[str] = []
    obj = ac.target
    timed = [r for r in ac.sweep if r.speedup is not None]
    if timed:
        lo = min(r.speedup for r in timed)
        hi = max(r.speedup for r in timed)
        why = ""
        if parallel_share is not None and parallel_share > 0.5:
            why = (f" Dropping small deltas shrinks the serial phase, but the parallel "
                   f"phase alone takes {pct(parallel_share)} of `{obj.scheme}`'s frame time on "
                   f"{ac.gpus[obj.gpu]} (phase table), and tau barely "
                   "changes it: the parallel phase computes every predicted non-zero "
                   "input, and the serial phase overlaps with it.")
        low = min(ac.sweep, key=lambda r: r.score)
        out.append(f"Across the tau sweep the replayed speedup ranges from {times(lo)} to "
                   f"{times(hi)} while the declared metric falls as low as "
                   f"{pct(low.score)} ({metric_label(ac, low.model)}, {low.model}).{why}")
    for t in ac.tuned:
        held = [e for e in t.evaluation if e.heldout is not None]
        label = metric_label(ac, t.model)
        if held:
            worth = ""
            if t.metric == "top1":
                worth = (" Each disagreement is worth "
                         + ", ".join(f"{pct(1 / e.heldout_frames)} on {e.stream}"
                                     for e in held) + ".")
            out.append(
                f"The tuner ({t.model}, {t.stream}, method `{t.method}`)"
                f" calibrated on {t.calibration_frames} frames; {label} on held-out "
                "frames: "
                + ", ".join(f"{e.stream} {pct(e.heldout.score)} ({e.heldout_frames} frames)"
                            for e in held)
                + "." + worth + _off_calibration(t, held))
    return out + _transfer_notes(ac)


def _off_calibration(t: TunedRow, held: Sequence) -> str:
    """A sentence when tuned thresholds keep the floor on calibration but not on held-out."""
    bad = [e for e in held if e.heldout.score < t.floor]
    if not bad or t.score < t.floor:
        return ""
    return (f" The thresholds meet the {pct(t.floor)} floor on the calibration frames "
            f"({pct(t.score)}) but not on later frames of "
            + ", ".join(e.stream for e in bad)
            + ": the agreement cliff over tau is steep and moves with the content, so a "
            "threshold tuned on one stretch of video does not transfer. tau = 0 (exact) is "
            f"the safe setting: {times(t.history[0].speedup)} on the calibration frames "
            f"against {times(t.speedup)} tuned.")


def _transfer_notes(ac: AccuracyResult) -> list[str]:
    """Per model: which tuning methods held the floor on every held-out window, at what cost."""
    out = []
    tuned = [t for t in ac.tuned if t.transfer]
    for m in dict.fromkeys(t.model for t in tuned):
        mine = [t for t in tuned if t.model == m]
        label = metric_label(ac, m)
        parts = [f"`{t.method}` lowest held-out score "
                 f"{pct(min(p.score for p in t.transfer.streams))} at "
                 f"{times(t.speedup)} calibration speedup" for t in mine]
        held = [t for t in mine if t.transfer.floor_met]
        verdict = (f"`{max(held, key=lambda t: t.speedup or 0).method}` holds the floor "
                   "on the held-out frames of every clip" if held else
                   f"no tuning method holds the {pct(mine[0].floor)} floor on the held-out "
                   "frames of every clip; only tau = 0 (exact) is safe")
        empty = [p.stream for p in _empty(mine[0])]
        caution = (f" Caution: the exact map is almost empty on {', '.join(empty)}, where the "
                   "score is ~1 whatever SE-CNN computes." if empty else "")
        out.append(f"Transfer ({m}, {label}): " + "; ".join(parts) + f". Verdict: {verdict}."
                   + caution)
    return out
