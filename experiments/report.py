"""The report: ``report.md`` with each claim of the paper beside our measurement and a verdict.

:func:`render` turns the studies' result dicts (any subset) into Markdown: the headline table of
claims, then one section per study with its tables and figure. Numbers are formatted by
:func:`pct` and :func:`times`, so tests can compare the report with the library's numbers
exactly. Nothing time- or host-dependent goes in: equal results give a byte-identical report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments import peersresult as peers_lib
from experiments.paper import (
    CLAIM_ACTIVATED,
    CNVLUTIN_ZERO_SHARE,
    PAPER,
    value_prediction_verdict,
)
from experiments.whatif import claims as whatif_claims
from experiments.whatif import section as whatif_section

__all__ = ["MACHINES", "band_range", "claim_key", "claims", "energy_section", "energy_terms",
           "pct", "peers_section", "render", "sections", "study_output",
           "summary", "times", "us"]


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals (``0.1234 -> '12.34%'``)."""
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.2f}%"


def times(x: float | None) -> str:
    """A speedup with two decimals (``3.456 -> '3.46x'``)."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}x"


def us(x: float | None) -> str:
    """Microseconds with one decimal."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def claims(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """The headline rows: claim, paper, ours, verdict (one per claim and GPU), each with the
    claim it judges (``key``, the same for every model, stream and GPU) and, where it has them,
    ``model``, ``stream`` and ``gpu`` (what :func:`summary` groups)."""
    rows: list[dict[str, str]] = []
    for keys, fn in _claim_sources():
        if all(results.get(k) for k in keys):
            rows += fn(*(results[k] for k in keys))
    return rows


def _claim_sources() -> tuple[tuple[tuple[str, ...], Any], ...]:
    """Which results feed which claim rows, in report order: ``(results keys, fn)`` with
    ``fn(*results[keys])`` the rows (a new study adds one entry here)."""
    from experiments.accuracy import render as accuracy_render  # noqa: PLC0415

    return ((("operating_point",), _operating_point_claims), (("sparsity",), _sparsity_claims),
            (("speedup",), _speedup_claims), (("energy",), _energy_claims),
            (("peers",), peers_lib.claims), (("accuracy",), accuracy_render.claims),
            (("whatif",), whatif_claims))


def _operating_point_claims(op: Mapping[str, Any]) -> list[dict[str, str]]:
    from experiments.operating_point_report import claims as op_claims  # noqa: PLC0415

    return op_claims(op)


def _operating_point_section(op: Mapping[str, Any]) -> list[str]:
    from experiments.operating_point_report import section as op_section  # noqa: PLC0415

    return op_section(op)


def _sparsity_claims(sp: Mapping[str, Any]) -> list[dict[str, str]]:
    """Both readings of "fewer than 10% of neurons are activated": non-zero, and changed by
    more than tau since the previous frame (at the fixed tau and at each tuned map), with the
    published ImageNet figure (Cnvlutin) beside the first."""
    rows: list[dict[str, str]] = []
    cnv = pct(1.0 - CNVLUTIN_ZERO_SHARE)
    limit = pct(CLAIM_ACTIVATED)
    for c in sp["cells"]:
        s = c["summary"]
        where = {"model": c["model"], "stream": c["stream"]}
        rows.append({
            "key": "fewer than 10% of neurons are activated, read as non-zero", **where,
            "claim": f"fewer than 10% of neurons are activated, read as non-zero "
                     f"({c['model']}, {c['stream']})",
            "paper": f"< {limit}",
            "ours": f"{pct(s['fired_all'])} of all input neurons; "
                    f"{pct(s['fired_rectified'])} in rectified (post-ReLU) layers "
                    f"(Cnvlutin, ImageNet CNNs: {cnv})",
            "verdict": s.get("verdict", "holds" if s["claim_holds"] else "does not hold"),
        })
        if s.get("changed") is None and "changed_verdict" not in s:
            continue
        tau = sp.get("change_tau", 0.05)
        rows.append({
            "key": "fewer than 10% of neurons are activated, read as changed since the "
                   "previous frame", **where,
            "claim": f"fewer than 10% of neurons are activated, read as changed by more "
                     f"than tau = {tau:g} since the previous frame ({c['model']}, "
                     f"{c['stream']})",
            "paper": f"< {limit}",
            "ours": f"{pct(s['changed'])} of all input neurons over frames 1 .. T-1; "
                    f"{pct(s['changed_zero'])} at tau = 0",
            "verdict": s["changed_verdict"],
        })
        for t in c.get("tuned", []):
            rows.append({
                "key": "fewer than 10% of neurons are activated, read as changed beyond the "
                       "tuned tau", **where,
                "claim": f"same, at the tuned per-layer tau (`{t['method']}`; "
                         f"{c['model']}, {c['stream']})",
                "paper": f"< {limit}",
                "ours": f"{_bracket(t)} of all input neurons (tau {t['tau_min']:.3g} to "
                        f"{t['tau_max']:.3g})",
                "verdict": t["verdict"],
            })
    return rows


def _speedup_claims(su: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = []
    for r in su["summary"]:
        if r["variant"] != "secnn_hw" or r["baseline"] not in PAPER:
            continue
        rows.append({
            "key": f"SE-CNN faster than {r['baseline']} on average (at most)",
            "model": r["model"], "gpu": r["gpu"],
            "claim": f"SE-CNN faster than {r['baseline']} on average (at most) — "
                     f"{r['model']}, {r['gpu']}, both {su.get('launch')}, fusion "
                     f"{su.get('fusion')}",
            "paper": f"{times(r['paper_average'])} ({times(r['paper_at_most'])})",
            "ours": f"{times(r['average'])} ({times(r['at_most'])}) secnn_hw"
                    + _band_text(r.get("band")) + "; "
                    + _sw(su, r["model"], r["gpu"], r["baseline"]),
            "verdict": r["verdict"],
        })
    for c in su["cells"]:
        lad = c.get("ladder", {})
        if "value_prediction_factor" not in lad:
            continue
        vp, of = lad["value_prediction_factor"], lad["oracle_factor"]
        vb = lad.get("value_prediction_band")
        strongest = c["speedups"].get("secnn_hw", {}).get("strongest", {}).get("mean")
        rows.append({
            "key": "value prediction is what makes SE-CNN fast", "model": c["model"],
            "stream": c["stream"], "gpu": c["gpu"],
            "claim": f"value prediction is what makes SE-CNN fast ({c['model']}, "
                     f"{c['stream']}, {c['gpu']})",
            "paper": "the speedup comes from predicting inputs",
            "ours": f"value prediction buys {times(vp)}{_band_text(vb)} (oracle ceiling "
                    f"{times(of)}) over SE-CNN's sequencing without prediction; secnn_hw "
                    f"over the strongest baseline {times(strongest)}",
            "verdict": _judge(vb, vp, value_prediction_verdict),
        })
    return rows


def _energy_claims(en: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{
        "key": "marginal hardware overheads in area and power", "model": v["model"],
        "stream": v["stream"], "gpu": v["gpu"],
        "claim": f"marginal hardware overheads in area and power ({v['model']}, "
                 f"{v['stream']}, {v['gpu']}, buffers {v['placement'].replace('_', '-')})",
        "paper": "marginal",
        "ours": f"{pct(v['area_share'])} of the die; energy per frame "
                f"{times(v['energy_ratio'])} the lower-energy baseline's",
        "verdict": v["verdict"],
    } for v in en["verdicts"]]


#: How the peers' claim names each machine (:data:`experiments.peersresult.MACHINES`).
MACHINES = peers_lib.MACHINES


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


def _judge(band: Mapping[str, Any] | None, value: float, rule: Any) -> str:
    """``rule``'s verdict on ``value``, or by the band rule
    (:meth:`secnn_jax.timing.Band.judge`) when the band is known."""
    if not band:
        return rule(value)
    from secnn_jax.timing.uncertainty import Band  # noqa: PLC0415

    return Band(band["default"], band["low"], band["high"]).judge(rule)


def _band_text(band: Mapping[str, Any] | None) -> str:
    """`` [band low-high]`` over the timing model's uncertainty, or nothing."""
    return f" [band {band_range(band)}]" if band else ""


def band_range(band: Mapping[str, Any] | None) -> str:
    """A band as ``low-high`` (two decimals, ``x``), or ``''``."""
    return f"{band['low']:.2f}-{band['high']:.2f}x" if band else ""


def _sw(su: Mapping[str, Any], model: str, gpu: str, baseline: str) -> str:
    for r in su["summary"]:
        if (r["model"], r["gpu"], r["variant"], r["baseline"]) == (model, gpu, "secnn_sw",
                                                                    baseline):
            return (f"{times(r['average'])} ({times(r['at_most'])}) secnn_sw"
                    + _band_text(r.get("band")))
    return ""


def _sparsity_section(sp: Mapping[str, Any]) -> list[str]:
    """The sparsity section: "activated" read as non-zero and as changed since the previous
    frame (fixed tau, tau = 0, every tuned map), with the published ImageNet figure."""
    tau = sp.get("change_tau", 0.05)
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
    for c in sp["cells"]:
        s = c["summary"]
        rows.append([c["model"], c["stream"], s["frames"], pct(s["fired_all"]),
                     pct(s["fired_rectified"]), pct(s["fired_signed"]), pct(cnv),
                     f"{s['rectified_layers']}/{s['layers']}", pct(s["median_layer_fired"]),
                     f"{s['layers_below_claim']}/{s['layers']}", s["verdict"]])
    out.append(_table(["model", "stream", "frames", "non-zero (all)", "non-zero (rectified)",
                       "non-zero (signed)", "Cnvlutin, ImageNet (non-zero)",
                       "rectified layers", "median layer", "layers < 10%", "verdict"], rows))
    out += ["", f"*Changed*: the share of input neurons with |x_t - x_(t-1)| > tau, over frames "
            "1 .. T-1 (frame 0 has no previous frame and is left out), at tau = 0, at the fixed "
            f"tau = {tau:g} (`config.activated_tau`) and at "
            "each per-layer map the accuracy study's tuner chose (per method). The pass counts "
            "changes at fixed thresholds (0, then 1, 1.5, 2, 3, 5, 7 per decade); a tuned "
            "threshold between two of them gives the bracket shown (low-high), exact when "
            "every layer's threshold is one of them.", ""]
    methods = sorted({t["method"] for c in sp["cells"] for t in c.get("tuned", [])})
    rows = []
    for c in sp["cells"]:
        s = c["summary"]
        if "changed" not in s:
            continue
        tuned = {t["method"]: t for t in c.get("tuned", [])}
        rows.append([c["model"], c["stream"], s["change_frames"], pct(s["changed_zero"]),
                     pct(s["changed"]), pct(s["changed_rectified"]), s["changed_verdict"]]
                    + [(_bracket(tuned[m]) + f" ({tuned[m]['verdict']})") if m in tuned
                       else "n/a" for m in methods])
    if rows:
        out.append(_table(["model", "stream", "frames compared", "changed (tau = 0)",
                           f"changed (tau = {tau:g})", f"changed (tau = {tau:g}, rectified)",
                           "verdict"] + [f"changed (tuned, `{m}`)" for m in methods], rows))
        if not methods:
            out += ["", "No tuned thresholds in this run (the accuracy study tunes them)."]
        shown = [t for t in (0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
                 if t in sp.get("change_taus", ())]
        curve_rows = []
        for c in sp["cells"]:
            at = {p["tau"]: p["changed"] for p in c.get("changed_curve", [])}
            curve_rows.append([c["model"], c["stream"]] + [pct(at.get(t)) for t in shown])
        out += ["", "Share changed against a global tau (all layers):", "",
                _table(["model", "stream"] + [f"{t:g}" for t in shown], curve_rows)]
    out += ["", "![per-layer sparsity](figures/sparsity.png)", ""]
    return out


def _bracket(t: Mapping[str, Any]) -> str:
    """A tuned map's changed share: one number when exact, else ``low-high``."""
    lo, hi = t["changed_low"], t["changed_high"]
    return pct(lo) if t["exact"] or pct(lo) == pct(hi) else f"{pct(lo)}-{pct(hi)}"


def _prediction_section(pr: Mapping[str, Any]) -> list[str]:
    out = ["## Prediction: event codes per predictor", "",
           "Share of input neurons per event code over all layers and frames (ZZ: predicted 0 "
           "and 0, free; ZN: zero misprediction; VH: value hit; VM: value miss). "
           "*Mispredicted* = ZN + VM, the serial phase's work. `secnn(silence=0.5,decay=0.5)` is "
           "the paper's predictor (a neuron that fired on the last frame is predicted its last "
           "value, any other 0); a higher `silence` also predicts 0 for neurons that fired only "
           "recently." + _same_codes(pr["cells"]), ""]
    judged = {(r["model"], r["stream"], r["predictor"], r["tau"]): r["verdict"]
              for r in pr.get("summary", [])}
    rows = []
    for c in pr["cells"]:
        o = c["overall"]
        rows.append([c["model"], c["stream"], c["predictor"], f"{c['tau']:g}", c["frames"],
                     pct(o[0]), pct(o[1]), pct(o[2]), pct(o[3]), pct(c["mispredicted"]),
                     judged.get((c["model"], c["stream"], c["predictor"], c["tau"]),
                                "(reference)")])
    out += ["*Verdict*: does the predictor leave fewer inputs to amend (mispredicted) than the "
            "zero predictor at the same tau?", "",
            _table(["model", "stream", "predictor", "tau", "frames", "ZZ", "ZN", "VH", "VM",
                    "mispredicted", "verdict"], rows)]
    out += ["", "![event codes per layer](figures/events.png)", ""]
    return out


def _same_codes(cells: Sequence[Mapping[str, Any]]) -> str:
    """A sentence naming the predictors whose event codes are equal in every (model, stream,
    tau) cell both ran in this run (computed, so it holds for this run's configuration)."""
    codes: dict[str, dict[tuple[Any, ...], Any]] = {}
    for c in cells:
        codes.setdefault(c["predictor"], {})[(c["model"], c["stream"], c["tau"])] = c["overall"]
    names = list(codes)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = set(codes[a]) & set(codes[b])
            if shared and all(list(codes[a][k]) == list(codes[b][k]) for k in shared):
                pairs.append(f"`{a}` and `{b}` (in all {len(shared)} cells both ran)")
    return (" In this run these predictors gave exactly the same codes: " + "; ".join(pairs)
            + ".") if pairs else ""


def _ladder_section(su: Mapping[str, Any]) -> list[str]:
    from secnn_jax.timing import LADDER  # noqa: PLC0415

    out = ["## Attribution ladder: which mechanism buys how much", "",
           f"Whole-network replayed time per frame, every step under fusion "
           f"`{su.get('fusion')}`; each step changes one mechanism, and its ratio to the step "
           "before is that mechanism's contribution. SE-CNN's own steps use the zero predictor "
           "(sequencing and hardware, no value prediction), the chosen predictor, and an oracle "
           "that predicts every input exactly (the ceiling of value prediction).", ""]
    peers = ("deltacnn", "cbinfer")
    header = ["model", "stream", "gpu"] + [s.key for s in LADDER] + [
        f"beside: {p}/{su.get('launch')}" for p in peers]
    rows = []
    for c in su["cells"]:
        lad = c.get("ladder", {})
        if not lad.get("mean_us"):
            continue
        rows.append([c["model"], c["stream"], c["gpu"]] + [
            f"{us(lad['mean_us'].get(s.key))} ({times(lad['step_ratio'].get(s.key))})"
            for s in LADDER] + [us(lad.get("peers_us", {}).get(p)) for p in peers])
    out += [_table(header, rows), "",
            "Mechanisms: " + "; ".join(f"`{s.key}`: {s.mechanism}" for s in LADDER) + ".", "",
            "![ladder](figures/ladder.png)", ""]
    return out


def _sensitivity_section(se: Mapping[str, Any]) -> list[str]:
    from secnn_jax.timing import PHYSICS  # noqa: PLC0415

    out = ["## Sensitivity to SE-CNN's assumed physics", "",
           "The headline ratio (strongest baseline / secnn_hw, same launch model and fusion) as "
           "each assumed parameter moves to the ends of its plausible range (sources below), "
           "on the first frames of the first stream.", ""]
    for c in se["cells"]:
        rows = [[r["parameter"], r.get("end", ""), f"{r['value']}{r.get('unit', '')}",
                 us(r["secnn_hw_us"]), us(r["strongest_us"]), times(r["ratio"])]
                for r in c["rows"]]
        out += [f"{c['model']} / {c['stream']} on {c['gpu']} ({c['launch']}, fusion "
                f"{c['fusion']}, {c['frames']} frames):", "",
                _table(["parameter", "end", "value", "secnn_hw (us)", "strongest (us)", "ratio"],
                       rows), ""]
    out += ["Sources: " + " ".join(f"`{p.field}` ({p.default}{p.unit}, range {p.low}-{p.high}): "
                                   f"{p.source}." for p in PHYSICS.values()), ""]
    for c in se["cells"]:
        out += [f"![schedule of one frame, {c['model']}](figures/schedule_{c['model']}.png)",
                f"(Chrome/Perfetto trace: `figures/schedule_{c['model']}.trace.json`)", ""]
    return out


def _energy_section(su: Mapping[str, Any], en: Mapping[str, Any]) -> list[str]:
    from secnn_jax.timing import LADDER  # noqa: PLC0415
    from secnn_jax.timing.energy import COMPONENTS  # noqa: PLC0415

    out = ["## Energy and area", "", energy_terms(), ""]
    rows = []
    for c in su["cells"]:
        e = c.get("energy_uj") or {}
        for k in ("dense", "zero_skip", "secnn_sw", "secnn_hw"):
            if k in e:
                rows.append([c["model"], c["stream"], c["gpu"], k, f"{e[k]['total']:.1f}",
                             *[f"{e[k][comp]:.1f}" for comp in COMPONENTS]])
    out += ["Energy per frame (uJ):", "",
            _table(["model", "stream", "gpu", "scheme", "total", *COMPONENTS], rows), ""]
    rows = []
    for c in su["cells"]:
        e = c.get("energy_uj") or {}
        vals = []
        for st in LADDER:
            key = f"{st.scheme}@{st.launch}" + (":oracle" if st.events == "oracle" else
                                                ":zero" if st.events == "zero" and
                                                st.scheme.startswith("secnn") else "")
            vals.append(f"{e[key]['total']:.0f}" if key in e else "")
        rows.append([c["model"], c["stream"], c["gpu"], *vals])
    out += ["The attribution ladder in energy (uJ per frame):", "",
            _table(["model", "stream", "gpu", *[st.key for st in LADDER]], rows), ""]
    rows = [[a["model"], a["gpu"], f"{a['buffer_bytes'] / 2**20:.1f} MiB",
             f"{a['buffer_mm2']:.1f}", f"{a['comparators_mm2']:.2f}", f"{a['sm_mm2']:.2f}",
             pct(a["on_chip_share"]), pct(a["off_chip_share"])] for a in en["area"]]
    out += ["Area of SE-CNN's additions: prediction + firing-state buffers (two values per "
            "input neuron of every layer) and one comparator per lane per SM; on chip the "
            "buffers are SRAM (published high-density bitcell x1.6 array overhead), off chip "
            "they cost no area but their traffic is DRAM traffic.", "",
            _table(["model", "gpu", "buffers", "buffers mm^2 (on chip)", "comparators mm^2",
                    "one SM mm^2", "die share on chip", "die share off chip"], rows), ""]
    a = en["anchors"]
    out += [f"Sanity anchors (dense ResNet-50, batch {a['batch']}, {a['precision']}, H100 graph "
            f"launch): modelled power {a['modelled_power_w']:.0f} W = {pct(a['power_fraction'])} "
            f"of the {a['board_power_w']:.0f} W board power — "
            + ("plausible" if a["plausible"] else "**not plausible**")
            + f" (band {pct(a['plausible_band'][0])}-{pct(a['plausible_band'][1])}); modelled "
            f"{a['modelled_mj_per_image']:.1f} mJ per image (issue overhead "
            f"{a['parts_mj_per_image']['issue']:.1f}, static "
            f"{a['parts_mj_per_image']['static']:.1f})"
            + (f" against at most {a['bound_mj_per_image']:.1f} mJ per image that the measured "
               f"{a['measured_graph_us']:.0f} us latency at board power allows"
               if "bound_mj_per_image" in a else "") + ". No MLPerf power figure was "
            "available offline to compare with.", ""]
    rows = [[v["model"], v["stream"], v["gpu"], v["placement"], pct(v["area_share"]),
             times(v["energy_ratio"]), v["verdict"]] for v in en["verdicts"]]
    out += ["Verdicts (marginal area and power): area share of the die, and SE-CNN's energy per "
            "frame over the lower-energy baseline's:", "",
            _table(["model", "stream", "gpu", "placement", "area share", "energy ratio",
                    "verdict"], rows), ""]
    return out


def energy_terms() -> str:
    """What the energy model counts, from its own lists (:data:`secnn_jax.timing.energy.WORK_KEYS`,
    the work counted per frame, and :data:`~secnn_jax.timing.energy.COMPONENTS`, the terms it
    is priced into)."""
    from secnn_jax.timing.energy import COMPONENTS, WORK_KEYS  # noqa: PLC0415

    return ("Energy per frame from the replay's work counts, priced with per-event energies "
            "from published circuit figures scaled to each GPU's process "
            "(`secnn_jax/timing/energy.py`, every number sourced); every scheme under the same "
            "launch model and fusion as its time. Work counted per frame: "
            + ", ".join(f"`{k}`" for k in WORK_KEYS) + ". Energy terms: "
            + ", ".join(f"`{k}`" for k in COMPONENTS) + ". Nothing outside these terms is "
            "counted: first-order numbers, for comparing schemes.")


#: The peers study's report section (:func:`experiments.peersresult.section`).
peers_section = peers_lib.section


def energy_section(su: Mapping[str, Any], en: Mapping[str, Any]) -> list[str]:
    """The energy study's report section (markdown lines) from the speedup study ``su`` and
    the energy study ``en``, with its verdicts per buffer placement."""
    return _energy_section(su, en)


def _speedup_section(su: Mapping[str, Any]) -> list[str]:
    out = ["## Speedup: replayed GPU time", "",
           f"Every scheme under the `{su.get('launch')}` launch model and fusion "
           f"`{su.get('fusion')}` (speedups under the other launch models: "
           "`results/speedup.json`, `by_launch`).",
           f"Predictor `{su['predictor']}`, tau = {su['tau']:g}. Baselines are replayed from the "
           "zero predictor's events (exact zero pattern), SE-CNN from its own. Mapping of the "
           "paper's three GPU schemes: " + "; ".join(f"`{k}` = {v}"
                                                    for k, v in su["mapping"].items()) + ". "
           "*mean* = ratio of total times over the stream, *max* = best single frame.", ""]
    # The schemes under the comparison launch model (every variant: results/speedup.json).
    schemes = ([k for k in su["cells"][0]["total_us"] if "@" not in k] if su["cells"] else [])
    rows = []
    for c in su["cells"]:
        rows.append([c["model"], c["stream"], c["gpu"], c["frames"],
                     *[us(c["total_us"][s] / c["frames"]) for s in schemes]])
    out += ["Mean time per frame (us):", "",
            _table(["model", "stream", "gpu", "frames", *schemes], rows), ""]
    rows = []
    for c in su["cells"]:
        for s, ph in c.get("phase_us", {}).items():
            if s in ("secnn_sw", "secnn_hw"):
                rows.append([c["model"], c["stream"], c["gpu"], s, us(ph.get("parallel")),
                             us(ph.get("serial")), us(ph.get("compare")), us(ph.get("amend")),
                             us(c["total_us"][s] / c["frames"])])
    if rows:
        out += ["Where SE-CNN's time goes (mean us per frame): *parallel* = the parallel phase's "
                "makespan, *serial* = the sum of the per-layer corrections (compare + amend); "
                "the frame time is the critical path through both.", "",
                _table(["model", "stream", "gpu", "SE-CNN", "parallel", "serial", "compare",
                        "amend", "frame"], rows), ""]
    rows = []
    for c in su["cells"]:
        for v, per in c["speedups"].items():
            for b, x in per.items():
                rows.append([c["model"], c["stream"], c["gpu"], v, b, times(x["mean"]),
                             times(x["max"]), times(x["min"])])
    out += ["Speedups per cell:", "",
            _table(["model", "stream", "gpu", "SE-CNN", "baseline", "mean", "max", "min"], rows),
            ""]
    rows = [[r["model"], r["gpu"], r["variant"], r["baseline"], times(r["average"]),
             band_range(r.get("band")), times(r["at_most"]),
             f"{times(r['paper_average'])} ({times(r['paper_at_most'])})"
             if "paper_average" in r else "", r["verdict"]] for r in su["summary"]]
    bd = su.get("bands") or {}
    out += ["Averaged over each model's streams. *band*: the average at the SE-CNN-pessimistic "
            "and -optimistic corners of the timing model's uncertainty box (every fitted "
            "parameter over its leave-one-network-out refits, every assumed one over its "
            "sourced range: `secnn_jax/timing/uncertainty.py`), found on the first "
            f"{bd.get('frames', '?')} frames of `{bd.get('stream')}` (probes on "
            f"{bd.get('probe_frames', '?')}); a verdict is *holds* or *does not hold* only "
            "when both corners agree, else *inconclusive (low-high)*. Without a paper claim "
            "the verdict judges \"SE-CNN is faster\" (above 1x).", "",
            _table(["model", "gpu", "SE-CNN", "baseline", "average", "band", "at most",
                    "paper", "verdict"], rows), "", "![speedups](figures/speedup.png)", ""]
    return out


def render(results: Mapping[str, Any], config: Mapping[str, Any], *,
           notes: Sequence[str] = (), missing: Sequence[tuple[str, str]] = (),
           command: str = "experiments.reproduce") -> str:
    """The full ``report.md`` text from the studies' results and the run's config (``command``:
    the module that generated it)."""
    out = ["# SE-CNN reproduction report", "",
           f"Generated by `python -m {command}`. Configuration: `config.json`; code "
           "version and environment: `environment.json`; wall time and host: `run_info.json`.",
           "",
           _table(["setting", "value"], [[k, f"`{config[k]}`"] for k in
                                         ("models", "streams", "frames", "resolution", "gpus",
                                          "precision", "launch", "fusion", "taus",
                                          "agreement_floor", "tune_methods",
                                          "transfer_streams") if k in config]),
           ""]
    rows = claims(results)
    if rows:
        out += ["## Summary", "", "Each claim's verdicts over the rows that judge it (the "
                "table below), and the models, streams and GPUs they cover:", ""]
        out += [f"- {line}" for line in summary(rows)] + [""]
    out += ["## The paper's claims beside our measurements", ""]
    out += [_table(["claim", "paper", "ours", "verdict"],
                   [[r["claim"], r["paper"], r["ours"], f"**{r['verdict']}**"] for r in rows]),
            ""]
    if notes:
        out += ["### What this means", ""] + [f"- {n}" for n in notes] + [""]
    if missing:
        out += ["### Models not run (no checkpoint)", "",
                _table(["model", "create the checkpoint with"],
                       [[m, f"`{c}`"] for m, c in missing]), ""]
    out += _sections(results)
    return "\n".join(out).rstrip() + "\n"


def sections() -> tuple[tuple[tuple[str, ...], Any], ...]:
    """Every study's report section, in report order: ``(results keys, fn)``, the section
    ``fn(*results[keys])`` rendered when every key has results (a new study adds one entry)."""
    from experiments.accuracy import render as accuracy_render  # noqa: PLC0415

    return ((("operating_point",), _operating_point_section),  # the headline table first
            (("sparsity",), _sparsity_section), (("prediction",), _prediction_section),
            (("speedup",), _ladder_section), (("speedup",), _speedup_section),
            (("sensitivity",), _sensitivity_section), (("speedup", "energy"), _energy_section),
            (("accuracy",), accuracy_render.section), (("peers",), peers_lib.section),
            (("whatif",), whatif_section))


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
    as ``report.md`` and prints:
    ``(report_md, printed)``. ``report_md`` is :func:`render` of the study's results alone
    (the claims they judge, then their sections: the same text ``reproduce`` renders for them);
    ``printed`` the claims table and the sections without the report's preamble."""
    rows = claims(results)
    printed = []
    if rows:
        printed += [_table(["claim", "paper", "ours", "verdict"],
                           [[r["claim"], r["paper"], r["ours"], r["verdict"]] for r in rows]),
                    ""]
    printed += _sections(results)
    return render(results, config, command=command), "\n".join(printed).rstrip() + "\n"
