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

import numpy as np

from experiments import energy, prediction, reporting, sparsity, speedup
from experiments.paper import above
from experiments.reporting import band_range, claim_key, document, pct, summary, times, us
from experiments.reporting import table as _table
from experiments.whatif import claims as whatif_claims
from experiments.whatif import section as whatif_section

__all__ = ["MACHINES", "band_range", "claim_key", "claims", "energy_section", "energy_terms",
           "metric_label", "pct", "peers_section", "render", "sections", "study_output",
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
    return (
        (("operating_point",), _operating_point_claims),
        (("sparsity",), sparsity.claims),
        (("speedup",), speedup.claims),
        (("energy",), energy.claims),
        (("peers",), _peers_claims),
        (("accuracy",), _accuracy_claims),
        (("whatif",), whatif_claims),
    )


def _operating_point_claims(op: Mapping[str, Any]) -> list[dict[str, str]]:
    from experiments.operating_point_report import claims as op_claims  # noqa: PLC0415

    return op_claims(op)


def _operating_point_section(op: Mapping[str, Any]) -> list[str]:
    from experiments.operating_point_report import section as op_section  # noqa: PLC0415

    return op_section(op)


#: How the peers' claim names each machine.
MACHINES = {"stock": "on a stock GPU (secnn_sw against the stock peers)",
            "extended": "with the SM extension (secnn_hw against the peers given it too)"}


def _peers_claims(pe: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per (model, stream, machine): SE-CNN against the peers on the same machine."""
    rows = []
    for v in pe["verdicts"]:
        hw = v.get("hardware", "stock")
        ch = v["chosen"]
        parts = "; ".join(f"{k} {times(c['heldout_speedup'])} at tau={c['tau']:g} "
                          f"({pct(c['heldout_agreement'])})" for k, c in ch.items())
        key = f"SE-CNN beats change-based peers {MACHINES.get(hw, hw)}"
        rows.append({
            "key": key, "model": v["model"], "stream": v["stream"], "gpu": v["gpu"],
            "claim": f"{key} at >= {pct(v['floor'])} agreement "
                     f"({v.get('metric', 'top1')}; {v['model']}, {v['stream']}, {v['gpu']})",
            "paper": "(not claimed; DeltaCNN/CBinfer are later work)",
            "ours": f"fastest: {v['fastest'] or 'none meets the floor'}; held-out: "
                    f"{parts or 'no method meets the floor on the calibration half'}"
                    + (f"; band {band_range(v['band'])}" if v.get("band") else ""),
            "verdict": v["verdict"],
        })
    return rows


def peers_section(pe: Mapping[str, Any]) -> list[str]:
    """The peers study's report section (markdown lines): ``python -m experiments.peers``
    prints it."""
    return _peers_section(pe)


def _peers_section(pe: Mapping[str, Any]) -> list[str]:
    ext = pe.get("peer_extension") or {}
    knobs = ext.get("knobs") or {}
    given = ("; on this run that changes " + ", ".join(
        f"`{k}` {a} -> {b}" for k, (a, b) in knobs.items()) if ext.get("changed") else
        "; on this run's configuration the extension offers them nothing, so `+ext` equals "
        "the stock peer")
    out = ["## Peers: SE-CNN, DeltaCNN and CBinfer on the same events and timing model", "",
           f"Every method under the `{pe['launch']}` launch model, speedup over `dense`, on the "
           f"first {pe['frames']} frames; DeltaCNN and CBinfer replay the `accumulated` "
           "predictor's events (DeltaCNN's rule). Like for like: on a stock GPU `secnn_sw` "
           "(and `secnn_sw(accumulated)`, SE-CNN on the peers' events) against `deltacnn` and "
           "`cbinfer`; with the SM extension `secnn_hw` (and `secnn_hw(accumulated)`) against "
           "`deltacnn+ext` and `cbinfer+ext`, the peers given the extension where it helps "
           "them (`secnn_jax.timing.schemes.extended_peer_config`)" + given + ".", ""]
    rows = [[p["model"], p["stream"], p.get("hardware", ""), p["method"], f"{p['tau']:g}",
             times(p["speedup"]), pct(p.get("agreement", p.get("top1_agreement"))),
             p.get("metric", "top1")] for p in pe["points"]]
    out += [_table(["model", "stream", "hardware", "method", "tau", "speedup over dense",
                    "agreement", "metric"], rows), "", "![peers](figures/peers.png)", ""]
    rows = [[v["model"], v["stream"], v.get("hardware", ""), v["fastest"] or "none",
             times(v["fastest_speedup"]), " / ".join(v.get("same_events", [])),
             times(v["parallel_phase_effect"]), band_range(v.get("band")), v["verdict"]]
            for v in pe["verdicts"]]
    out += ["Per machine, its methods only: the fastest meeting the floor on the held-out half "
            "(tau chosen on the first half); *same events* = SE-CNN over DeltaCNN on the same "
            "events at tau = 0 on that machine (above 1: SE-CNN's parallel phase beats cached "
            "outputs); *band*: SE-CNN's best over the best peer over the timing model's "
            "uncertainty.", "",
            _table(["model", "stream", "hardware", "fastest", "its speedup",
                    "same events (SE-CNN / peer)", "ratio", "band", "verdict"], rows), ""]
    out += _peer_sanity(pe.get("sanity") or [])
    rows = [[b["model"], *[f"{b[k] / 2**20:.1f} MiB" for k in ("secnn", "deltacnn",
                                                                "cbinfer")]]
            for b in pe["buffers"]]
    out += ["Extra buffers per stream kept between frames (predictions and firing state; "
            "accumulated inputs and output buffers; stored inputs and previous outputs):", "",
            _table(["model", "SE-CNN", "DeltaCNN", "CBinfer"], rows), ""]
    return out


def _peer_sanity(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The sanity rows (modelled peers at tau > 0 beside their published figures) and one
    sentence per peer on what differs, from the rows themselves."""
    if not rows:
        return ["Sanity rows: not measured (the sanity clip could not be opened).", ""]
    table = [[r["model"], r["stream"], r["gpu"], r["method"], f"{r['tau']:g}", r["frames"],
              r["input"], times(r["ours"]), pct(r["agreement"]), r["published"]["figure"],
              r["published"]["source"]] for r in rows]
    out = ["Sanity: the modelled peers over dense at tau > 0 on the clip closest to their "
           "published setting, beside the published figures; *ours* over the frames after the "
           "first (which every peer runs dense), *agreement* over all frames:", "",
           _table(["model", "stream", "gpu", "peer", "tau", "frames", "input", "ours",
                   "agreement", "published", "source"], table), ""]
    for meth in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == meth]
        pub = mine[0]["published"]
        ours = "; ".join(dict.fromkeys(
            f"{r['model']} at {r['input']} on {r['gpu']} ({r['precision']})" for r in mine))
        out += [f"What differs for {meth}: published {pub['figure']} ({pub['source']}) on "
                f"{pub['setting']}; ours: {ours}, {mine[0]['frames']} frames of "
                f"{mine[0]['clip']}, tau in "
                + ", ".join(dict.fromkeys(f"{r['tau']:g}" for r in mine)) + ".", ""]
    return out


#: Metrics of dense-prediction models (their maps get a figure).
DENSE_METRICS = ("edge_f1", "region_f1")


def metric_label(ac: Mapping[str, Any], model: str) -> str:
    """How the accuracy study names ``model``'s primary score (``top-1 agreement`` when the
    results predate declared metrics)."""
    return ac.get("metrics", {}).get(model, {}).get("label", "top-1 agreement")


def _score(r: Mapping[str, Any]) -> float:
    """The primary score of a result row (``top1_agreement`` in results without ``score``)."""
    return r["score"] if "score" in r else r["top1_agreement"]


def _field(r: Mapping[str, Any], key: str) -> str:
    """A metric field as the tables show it (MAE in scientific notation, shares in %)."""
    v = r.get(key)
    if v is None:
        return "n/a"
    return f"{v:.2e}" if key.endswith("_mae") else pct(v)


def _accuracy_claims(ac: Mapping[str, Any]) -> list[dict[str, str]]:
    """The ">95% of accuracy" rows, each judged on the model's declared metric
    (:func:`experiments.paper.above`, as the study's summary)."""
    obj = ac["objective"]
    floor = ac["claim"]["agreement_above"]
    rows = []
    for r in (r for r in ac["sweep"] if r["tau"] == 0.0):
        label = metric_label(ac, r["model"])
        rows.append({
            "key": "keeps > 95% of accuracy at tau = 0", "model": r["model"],
            "stream": r["stream"],
            "claim": f"keeps > 95% of accuracy at the speedups above: tau = 0 "
                     f"({r['model']}, {r['stream']})",
            "paper": "> 95.00%",
            "ours": f"{pct(_score(r))} {label} with the exact model on {r['frames']} frames at "
                    f"{times(r['speedup'])} ({obj['scheme']} over {obj['baseline']}; output "
                    f"error {r['logit_error']:.2e})",
            "verdict": above(_score(r), floor),
        })
    for t in ac.get("tuned", []):
        label = metric_label(ac, t["model"])
        method = t.get("method", "mean")
        for e in t["evaluation"]:
            if "heldout" not in e:
                continue
            a = _score(e["heldout"])
            rows.append({
                "key": f"keeps > 95% of accuracy with tau > 0 tuned ({method}), held out",
                "model": t["model"], "stream": e["stream"],
                "claim": f"keeps > 95% of accuracy with tau > 0: per-layer tau tuned "
                         f"({method}) on {t['calibration_frames']} {t['stream']} frames, "
                         f"held-out {e['stream']} ({t['model']})",
                "paper": "> 95.00%",
                "ours": f"{pct(a)} {label} on {e['heldout_frames']} held-out frames at "
                        f"{times(e.get('speedup'))} ({obj['scheme']} over {obj['baseline']})",
                "verdict": above(a, floor),
            })
        tr = t.get("transfer")
        if tr and tr["streams"]:
            worst = min(tr["streams"], key=lambda p: p["worst_window"])
            rows.append({
                "key": f"tuned thresholds ({method}) transfer to later frames and other clips",
                "model": t["model"],
                "claim": f"tuned thresholds transfer: held-out frames of the tuning stream and "
                         f"of every other clip at >= the floor ({t['model']}, {method})",
                "paper": "(not claimed)",
                "ours": "; ".join(f"{p['stream']} {pct(p['score'])} (worst window "
                                  f"{pct(p['worst_window'])})" for p in tr["streams"])
                        + f" {label}; worst: {worst['stream']}",
                "verdict": "holds" if tr["floor_met"] else "does not hold",
            })
    return rows


def _accuracy_section(ac: Mapping[str, Any]) -> list[str]:
    from experiments.metrics import METRICS  # noqa: PLC0415

    obj = ac["objective"]
    gpus = list(ac.get("gpus") or [])  # every GPU timed; the objective's column first
    others = [g for i, g in enumerate(gpus) if i != obj["gpu"]]
    on = (f"on {gpus[obj['gpu']]}" + (f" (the tuner's objective; the sweep also on "
                                        f"{', '.join(others)})" if others else "")
          if gpus else f"on GPU #{obj['gpu']}")
    out = ["## Accuracy: agreement with the exact model against tau", "",
           f"Predictor `{ac['predictor']}`. Speedup = `{obj['scheme']}` over "
           f"`{obj['baseline']}` {on}. Each model is judged on the task metric "
           "it declares (`models.get_spec(name).metric`, `experiments/metrics.py`), against "
           "the exact model: " + _metric_text(ac) + ". Scores are per frame, averaged (for a "
           "map metric, a frame where both maps are empty scores 1). The >95% claim and the "
           "tuner's floor use the metric's first field. Output error = max |output "
           "difference| / max |exact output|, averaged over frames.", ""]
    labelled = any("label_top1" in r for r in ac["sweep"])
    by_metric: dict[str, list[Mapping[str, Any]]] = {}
    for r in ac["sweep"]:
        by_metric.setdefault(r.get("metric", "top1"), []).append(r)
    for name, mine in by_metric.items():
        fields = METRICS[name].fields
        rows = []
        for r in mine:
            row = [r["model"], r["stream"], f"{r['tau']:g}", r["frames"],
                   *[_field(r, k) for k, _ in fields],
                   f"{r['logit_error']:.2e}", pct(r["mispredicted"]), times(r["speedup"]),
                   *[times((r.get("speedup_by_gpu") or {}).get(g)) for g in others]]
            if labelled and name == "top1":
                row += [pct(r.get("label_top1")), pct(r.get("label_top1_exact"))]
            rows.append(row)
        header = ["model", "stream", "tau", "frames", *[lab for _, lab in fields],
                  "output error", "mispredicted", "speedup",
                  *[f"speedup on {g}" for g in others]]
        if labelled and name == "top1":
            header += ["top-1 accuracy (labels)", "exact model's accuracy"]
        out += [f"Judged on {METRICS[name].label}:", "", _table(header, rows), ""]
    for t in ac.get("tuned", []):
        label = metric_label(ac, t["model"])
        method = t.get("method", "mean")
        out += [f"### Threshold tuner: {t['model']} on {t['stream']}, method `{method}`", "",
                f"Per-layer tau = alpha x mean|x| of the layer's input on the first "
                f"{t['calibration_frames']} frames (calibration); floor {pct(t['floor'])} "
                f"{label}" + (f" + margin {pct(t['margin'])}" if t.get("margin") else "")
                + f" on the method's criterion. Chosen: calibration {label} "
                f"{pct(t['agreement'])}, criterion {pct(t.get('criterion', t['agreement']))}, "
                f"speedup {times(t['speedup'])}; alpha per layer from "
                f"{min(t['alpha'].values()):g} to {max(t['alpha'].values()):g}.", ""]
        hist = [[h["step"], h["note"], pct(h["agreement"]),
                 pct(h.get("criterion", h["agreement"])), times(h["speedup"]),
                 "yes" if h["feasible"] else "no"] for h in t["history"]]
        out += [_table(["step", "candidate", f"calibration {label}", "criterion", "speedup",
                        "feasible"], hist), ""]
        fields = METRICS[t.get("metric", "top1")].fields
        rows = []
        for e in t["evaluation"]:
            ho = e.get("heldout", {})
            rows.append([e["stream"], e["heldout_frames"],
                         *[_field(ho, k) if ho else "n/a" for k, _ in fields],
                         f"{ho['logit_error']:.2e}" if ho else "n/a",
                         pct(e.get("mispredicted")), times(e.get("speedup"))])
        out += ["Tuned thresholds on held-out frames:", "",
                _table(["stream", "held-out frames", *[lab for _, lab in fields],
                        "output error", "mispredicted", "speedup"], rows), ""]
    out += _transfer_section(ac)
    out += ["![accuracy vs speedup](figures/accuracy.png)", ""]
    if any(t.get("metric") in DENSE_METRICS for t in ac.get("tuned", [])):
        dense = sorted({t["model"] for t in ac.get("tuned", [])
                        if t.get("metric") in DENSE_METRICS})
        out += ["Dense-prediction outputs on one frame (" + ", ".join(dense) + "), exact "
                "against SE-CNN at each tuning method's thresholds (the frame's score in each "
                "title):", "", "![dense maps](figures/dense_maps.png)", ""]
    return out


def _metric_text(ac: Mapping[str, Any]) -> str:
    """Per metric the run's results use: the models judged on it and its fields."""
    from experiments.metrics import METRICS  # noqa: PLC0415

    by: dict[str, list[str]] = {}
    for r in ac["sweep"]:
        by.setdefault(r.get("metric", "top1"), [])
        if r["model"] not in by[r.get("metric", "top1")]:
            by[r.get("metric", "top1")].append(r["model"])
    return "; ".join(f"{', '.join(ms)} on {METRICS[m].label} (fields: "
                     + ", ".join(lab for _, lab in METRICS[m].fields) + ")"
                     for m, ms in by.items())


#: Below this share of "on" pixels in the exact map a dense-prediction score says little.
EMPTY_MAP = 0.01


def _empty_map_notes(tuned: Sequence[Mapping[str, Any]]) -> list[str]:
    """A warning per model whose exact maps are (almost) empty on some transfer streams: there
    F1 is ~1 by the both-empty convention, whatever SE-CNN computes."""
    out = []
    for m in dict.fromkeys(t["model"] for t in tuned):
        t = next(t for t in tuned if t["model"] == m)
        empty = [p for p in t["transfer"]["streams"]
                 if p.get("exact_on") is not None and p["exact_on"] < EMPTY_MAP]
        if empty:
            out += [f"Caution ({m}): the exact map is almost empty on "
                    + ", ".join(f"{p['stream']} ({pct(p['exact_on'])} of pixels on)"
                                for p in empty)
                    + "; there the score is ~1 by the both-empty convention and is a weak "
                    "test of SE-CNN (the dense-map figure shows a frame with content).", ""]
    return out


def _transfer_section(ac: Mapping[str, Any]) -> list[str]:
    """Tuned thresholds on later windows and other clips, and what each method costs."""
    tuned = [t for t in ac.get("tuned", []) if t.get("transfer")]
    if not tuned:
        return []
    out = ["### Transfer: the tuned thresholds on later frames and other clips", "",
           "Each method's thresholds on the frames after the calibration frames of the tuning "
           "stream and on the other clips from their first frame (none seen by the tuner). "
           "*held-out score* = over all of a clip's held-out frames; the floor is met when it "
           f"reaches the floor. *worst window* = the lowest score over "
           f"{tuned[0]['transfer']['window']}-frame windows (the stricter reading: every window "
           "at the floor). *exact speedup* = SE-CNN at tau = 0 on the same frames, what the "
           "thresholds' gain is measured against.", ""]
    rows = []
    for t in tuned:
        label = metric_label(ac, t["model"])
        for p in t["transfer"]["streams"]:
            wins = [r for r in t["transfer"]["rows"] if r["stream"] == p["stream"]]
            rows.append([t["model"], t["method"], label, p["stream"],
                         f"{p['start']}-{p['start'] + p['frames']}", pct(p["score"]),
                         "yes" if p["floor_met"] else "no", pct(p["worst_window"]),
                         times(p["speedup"]), times(p.get("exact_speedup")),
                         pct(p["mispredicted"]),
                         ", ".join(f"{100 * r['score']:.1f}" for r in wins)])
    out += [_table(["model", "method", "metric", "stream", "frames", "held-out score",
                    "floor met", "worst window", "speedup", "exact speedup", "mispredicted",
                    "window scores (%)"], rows), ""]
    rows = []
    for t in tuned:
        tr = t["transfer"]
        ps = [p for p in tr["streams"] if p["speedup"] is not None]
        gain = ([p["speedup"] / p["exact_speedup"] for p in ps if p.get("exact_speedup")]
                or [None])
        rows.append([t["model"], t["method"], pct(t["agreement"]),
                     pct(t.get("criterion", t["agreement"])), times(t["speedup"]),
                     times(float(np.mean([p["speedup"] for p in ps])) if ps else None),
                     times(float(np.mean(gain)) if gain[0] is not None else None),
                     pct(float(np.mean([p["mispredicted"] for p in ps])) if ps else None),
                     pct(min(p["score"] for p in tr["streams"])),
                     pct(min(p["worst_window"] for p in tr["streams"])),
                     "yes" if tr["floor_met"] else "no"])
    out += ["What each method costs: calibration score and criterion, speedup on the "
            "calibration frames, mean held-out speedup over the transfer streams and its ratio "
            "to exact SE-CNN's on the same frames (the gain the thresholds buy), mean serial "
            "work left (mispredicted inputs, held out), the lowest held-out score and window, "
            "and whether the floor held on every clip's held-out frames:", "",
            _table(["model", "method", "calibration score", "criterion", "calibration speedup",
                    "held-out speedup", "gain over exact", "mispredicted",
                    "lowest held-out score", "worst window", "floor held"], rows), ""]
    out += _empty_map_notes(tuned)
    for m in dict.fromkeys(t["model"] for t in tuned):
        mine = [t for t in tuned if t["model"] == m]
        if not any(t["transfer"]["floor_met"] for t in mine):
            out += [f"**No tuning method held the {pct(mine[0]['floor'])} floor on the "
                    f"held-out frames of every clip for {m}** (methods: "
                    + ", ".join(f"`{t['method']}`" for t in mine) + "); only tau = 0 (exact) "
                    "is safe.", ""]
        else:
            ok = [t for t in mine if t["transfer"]["floor_met"]]
            best = max(ok, key=lambda t: t["speedup"] or 0)
            out += [f"{m}: `{best['method']}` holds the floor on the held-out frames of every "
                    f"clip at {times(best['speedup'])} on the calibration frames"
                    + ("" if best["transfer"]["windows_met"] else
                       f" (not on every {best['transfer']['window']}-frame window)") + ".", ""]
    return out


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
    return (
        (("operating_point",), _operating_point_section),  # the headline table first
        (("sparsity",), sparsity.section),
        (("prediction",), prediction.section),
        (("speedup",), speedup.ladder_section),
        (("speedup",), speedup.section),
        (("sensitivity",), speedup.sensitivity_section),
        (("speedup", "energy"), energy.section),
        (("accuracy",), _accuracy_section),
        (("peers",), _peers_section),
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
