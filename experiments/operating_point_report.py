"""The operating-point study's report: its section (the headline table) and its verdict rows.

Kept apart from :mod:`experiments.operating_point` (which runs the tuner, through
:mod:`experiments.accuracy`) so that :mod:`experiments.report` can render the section without an
import circle. Numbers are formatted as :mod:`experiments.report` formats them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.studyresult import claim_row

__all__ = ["AT_EXACT", "AT_OP", "claims", "section", "table"]

#: Where a claim is judged.
AT_OP, AT_EXACT = "operating point", "tau = 0"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.2f}%"


def _times(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}x"


def _band(b: Mapping[str, Any] | None) -> str:
    return f" [band {b['low']:.2f}-{b['high']:.2f}x]" if b else ""


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines."""
    return (["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
            + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _tau_text(r: Mapping[str, Any]) -> str:
    if r["tau_max"] == 0.0:
        return "0 (exact)"
    if r["tau_min"] == r["tau_max"]:
        return f"{r['tau_min']:.3g}"
    return f"{r['tau_min']:.3g}-{r['tau_max']:.3g}"


def _tables(rows: Sequence[Mapping[str, Any]], gpus: Sequence[str], floor: float,
            frames: str) -> list[str]:
    """Per model and stream of ``rows`` one table: every method's tuned tau, score against the
    floor, and per GPU time per frame with its speedup."""
    out: list[str] = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for s in dict.fromkeys(r["stream"] for r in rows if r["model"] == model):
            mine = [r for r in rows if r["model"] == model and r["stream"] == s]
            first = [r for r in mine if r["gpu"] == gpus[0]]
            lines = []
            for r in first:
                cells_ = [r["method"], r["scheme"], r["predictor"] or "—", r["hardware"],
                          _tau_text(r),
                          f"{_pct(r['score'])}" + ("" if r["meets_floor"] else
                                                   " **below the floor**")]
                for g in gpus:
                    o = next(x for x in mine if x["gpu"] == g and x["method"] == r["method"])
                    cells_.append(f"{o['time_us']:.1f} ({_times(o['speedup'])})")
                lines.append(cells_)
            out += [f"**{model} / {s}** ({first[0]['heldout_frames']} {frames}; "
                    f"floor {_pct(floor)} of {first[0]['metric']})", ""]
            out += table(["method", "scheme", "predictor", "hardware", "tuned tau",
                          "held-out score"] + [f"{g}: us/frame (speedup)" for g in gpus],
                         lines) + [""]
    return out


def section(result: Mapping[str, Any]) -> list[str]:
    """The study's report section (Markdown lines): per model and stream the headline table
    (every method at the same floor: time per frame and speedup over the strongest exact
    baseline per GPU, held-out score), then the claims at the operating point and at
    tau = 0, then (with transfer clips) the same tables on every clip and whether each method
    keeps the floor on all of them."""
    rows = result["rows"]
    gpus = result["gpus"]
    out = ["## The operating point: every method at the same accuracy", "",
           f"Every method is tuned by the same tuner (method `{result['method']}`, objective: "
           f"its own replayed speedup on {result['objective_gpu']}) to the same floor, "
           f"{_pct(result['floor'])} of each model's declared metric on the calibration frames "
           f"of `{result['tune_stream']}`, and judged on held-out frames (the tuning stream "
           "after its calibration frames, every frame of the other streams). Times are "
           f"microseconds per held-out frame under `{result['launch']}` launch; speedups are "
           "over the strongest exact baseline (per frame the fastest of dense, winograd, fft "
           "and zero_skip at tau = 0) on the same frames. `zero_skip` at tau skips |x| <= tau: "
           "its outputs are SE-CNN's with the zero predictor at that tau, so both read one cell.",
           ""]
    out += _tables(rows, gpus, result["floor"], "held-out frames")
    cl = result["claims_at"]
    if cl:
        out += ["Value prediction and the paper's claims, at the operating point and at "
                "tau = 0 (averages over the streams' held-out frames; band: the timing "
                "model's uncertainty, verdict by the band rule):", ""]
        lines = []
        for r in cl:
            what = (f"value prediction ({r['scheme']}, {r['hardware']})"
                    if r["kind"] == "value_prediction" else
                    f"secnn_hw over {r['baseline']} (paper {_times(r['paper_average'])})")
            lines.append([r["model"], r["gpu"], what, r["at"],
                          _times(r["value"]) + _band(r.get("band")), r["verdict"]])
        out += table(["model", "GPU", "ratio", "at", "ours", "verdict"], lines) + [""]
    tr = result.get("transfer")
    if tr and tr["rows"]:
        out += ["### Off the tuning clip: the transfer clips", "",
                "The same thresholds on clips the tuner never saw (every frame held out; "
                "speedups over the strongest exact baseline on the same clip):", ""]
        out += _tables(tr["rows"], gpus, result["floor"], "frames, all held out")
        lines = []
        for k in tr["kept"]:
            lines.append([k["model"], k["method"], "yes" if k["floor_met"] else "**no**",
                          f"{_pct(k['worst_score'])} ({k['worst_stream']})"])
        out += table(["model", "method", f"keeps the {_pct(result['floor'])} floor on every "
                      "clip", "lowest score (clip)"], lines) + [""]
    return out


def claims(result: Mapping[str, Any]) -> list[dict[str, str]]:
    """Verdict rows in :func:`experiments.report.claims`' format (``claim``, ``paper``,
    ``ours``, ``verdict``): per model and GPU the paper's speedup claims and the
    value-prediction factor (SE-CNN's SM extension), each at the operating point and at
    tau = 0; with transfer clips, per model whether every tuned method keeps the floor on
    every clip (``holds``: all do, ``partly``: some, ``does not hold``: none)."""
    out = []
    floor = _pct(result["floor"])
    for r in result["claims_at"]:
        where = (f"every method tuned to {floor} on the calibration frames, held-out frames"
                 if r["at"] == AT_OP else "every method exact, held-out frames")
        at = "at the operating point" if r["at"] == AT_OP else "at tau = 0"
        if r["kind"] == "paper":
            out.append({
                "key": f"SE-CNN faster than {r['baseline']} on average {at}",
                "model": r["model"], "gpu": r["gpu"],
                "claim": f"SE-CNN faster than {r['baseline']} on average {at} "
                         f"({r['model']}, {r['gpu']}; {where})",
                "paper": f"{_times(r['paper_average'])} ({_times(r['paper_at_most'])})",
                "ours": f"{_times(r['value'])}{_band(r.get('band'))} secnn_hw",
                "verdict": r["verdict"]})
        elif r["scheme"] == "secnn_hw":
            out.append({
                "key": f"value prediction is what makes SE-CNN fast, {at}",
                "model": r["model"], "gpu": r["gpu"],
                "claim": f"value prediction is what makes SE-CNN fast, {at} "
                         f"({r['model']}, {r['gpu']}; {where})",
                "paper": "the speedup comes from predicting inputs",
                "ours": f"value prediction buys {_times(r['value'])}{_band(r.get('band'))} "
                        "over SE-CNN with the zero predictor (secnn_hw)",
                "verdict": r["verdict"]})
    tr = result.get("transfer")
    for model in dict.fromkeys(k["model"] for k in (tr or {}).get("kept", [])):
        mine = [k for k in tr["kept"] if k["model"] == model]
        ok = [k for k in mine if k["floor_met"]]
        below = [f"{k['method']} {_pct(k['worst_score'])} on {k['worst_stream']}"
                 for k in mine if not k["floor_met"]]
        verdict = ("holds" if len(ok) == len(mine) else "partly" if ok else "does not hold")
        key = "every method keeps the accuracy floor off its tuning clip"
        # Scores do not depend on the GPU: one row per model, no GPU named.
        out.append(claim_row(
            key, f"{key} ({model}; thresholds tuned to {floor} on {result['tune_stream']}, "
                 f"clips {', '.join(tr['streams'])})",
            "over 95% of classification accuracy",
            f"{len(ok)} of {len(mine)} methods keep it"
            + (f"; below: {'; '.join(below)}" if below else ""), verdict, model=model))
    return out
