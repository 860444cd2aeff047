"""The main job: every study on embedded defaults, ending in one ``report.md``.

``python -m experiments.reproduce`` runs, on EfficientNet-Lite0 (real ImageNet weights, 224) and
HED's VGG-16 (real trained weights, 128 x 128, fewer frames: ``config.model_frames``), the bikes
clip and the photo sequence, replayed on the H100 and a Pascal-era GTX 1080 Ti:

1. sparsity (plain forward pass), 2. speedup (zero-predictor baselines and SE-CNN, tau = 0, the
attribution ladder), 3. prediction (every predictor's event codes), 4. accuracy on each model's
declared metric (tau sweep, threshold tuner per tuning method, held-out evaluation, transfer to
other clips), 5. the operating point (every method tuned to the same floor), 6. peers (DeltaCNN,
CBinfer, like for like: stock GPU against stock GPU, SM extension against the peers given it
too; sanity rows on ``carphone_pristine``), 7. energy and area, 8. what-if (synthetic firing
and hit rates: where the paper's speedups would come out; :mod:`experiments.whatif`),

then writes ``results/*.json``, ``figures/*.png`` and ``report.md`` into ``--out_dir`` (default
``runs/reproduce``), with ``config.json``, ``environment.json`` and ``run_info.json`` beside them.
Work is cached chunk by chunk under ``cells/``: a killed run restarted with the same flags resumes
after its last finished chunk and writes byte-identical outputs. The defaults take about 11
minutes on 2 CPU cores. ``--models=ilsvrc9`` runs the nine ILSVRC CNNs whose checkpoints exist and
lists the missing ones with the command that converts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np
from absl import app, logging

from experiments import accuracy as accuracy_lib
from experiments import config as config_lib
from experiments import energy as energy_lib
from experiments import figures, runs
from experiments import operating_point as operating_point_lib
from experiments import peers as peers_lib
from experiments import prediction as prediction_lib
from experiments import report as report_lib
from experiments import sparsity as sparsity_lib
from experiments import speedup as speedup_lib
from experiments import whatif as whatif_lib
from experiments.cells import Workspace, predictor_spec

__all__ = ["notes", "reproduce"]


#: Layers a note names before "...".
SHOWN = 3


def notes(results: dict[str, Any]) -> list[str]:
    """Plain-language observations the numbers support (what holds, what does not, and why)."""
    out: list[str] = []
    sp = results.get("sparsity")
    if sp:
        for c in sp["cells"]:
            s = c["summary"]
            signed = [r for r in c["layers"] if r["role"] == "signed"]
            if signed:
                out.append(
                    f"{c['model']} / {c['stream']}: {len(signed)} of {s['layers']} layers read "
                    f"signed, dense inputs (the image, BatchNorm outputs or residual sums: "
                    f"{', '.join(r['name'] for r in signed[:SHOWN])}"
                    f"{', ...' if len(signed) > SHOWN else ''}); {pct(s['fired_signed'])} of "
                    f"their inputs are non-zero. Rectified layers: "
                    f"{pct(s['fired_rectified'])} fire.")
    su = results.get("speedup")
    if su and su["cells"]:
        same = all(abs(c["total_us"].get("fast_conv", np.nan) - c["total_us"]["dense"]) < 1e-9
                   for c in su["cells"] if "dense" in c["total_us"])
        if same and any("fast_conv" in c["total_us"] for c in su["cells"]):
            out.append("No layer of these models is a dense (ungrouped) stride-1 3x3 or larger "
                       "conv, where Winograd/FFT apply, so `winograd`, `fft` and `fast_conv` "
                       "fall back to `dense`: the paper's second scheme gives the same numbers "
                       "as its first here.")
        sw = [r for r in su["summary"] if r["variant"] == "secnn_sw" and r["baseline"] == "dense"]
        if sw and all(r["average"] < 1 for r in sw):
            out.append("On a stock GPU (`secnn_sw`) SE-CNN is slower than dense: one kernel "
                       "launch per layer for each phase costs more than the skipped work saves "
                       "on a network of small layers; the speedups need the SM extension "
                       "(`secnn_hw`), as in the paper.")
        out.append("Frame 0 of every stream is a cold start (no history: everything predicted "
                   "0); it is included in every average.")
    pr = results.get("prediction")
    if pr:
        vals = [(c["stream"], c["overall"]) for c in pr["cells"]
                if c["predictor"].startswith("secnn(silence=0.5,") and c["tau"] == 0.0]
        if vals:
            out.append("At tau = 0 a value hit needs the very same float on two frames: with "
                       "the paper's predictor, value hits (VH) / value misses (VM) are "
                       + ", ".join(f"{pct(o[2])} / {pct(o[3])} of input neurons on {s}"
                                   for s, o in vals) + "."
                       + (" Most neurons that keep firing change value, so they are "
                          "mispredicted; only a tolerance tau > 0 turns them into hits."
                          if all(o[3] > o[2] for _, o in vals) else ""))
    ac = results.get("accuracy")
    if ac:
        sweep = [r for r in ac["sweep"] if r.get("speedup") is not None]
        if sweep:
            lo = min(r["speedup"] for r in sweep)
            hi = max(r["speedup"] for r in sweep)
            why = ""
            obj = ac["objective"]
            share = _parallel_share(results.get("speedup"), obj["scheme"], obj["gpu"])
            if share is not None and share > 0.5:
                why = (f" Dropping small deltas shrinks the serial phase, but the parallel "
                       f"phase alone takes {pct(share)} of `{obj['scheme']}`'s frame time on "
                       f"{results['speedup']['gpus'][obj['gpu']]} (phase table), and tau barely "
                       "changes it: the parallel phase computes every predicted non-zero "
                       "input, and the serial phase overlaps with it.")
            low = min(ac["sweep"], key=_score)
            out.append(f"Across the tau sweep the replayed speedup ranges from {times(lo)} to "
                       f"{times(hi)} while the declared metric falls as low as "
                       f"{pct(_score(low))} ({report_lib.metric_label(ac, low['model'])}, "
                       f"{low['model']}).{why}")
        for t in ac.get("tuned", []):
            held = [e for e in t["evaluation"] if "heldout" in e]
            label = report_lib.metric_label(ac, t["model"])
            if held:
                worth = ""
                if t.get("metric", "top1") == "top1":
                    worth = (" Each disagreement is worth "
                             + ", ".join(f"{pct(1 / e['heldout_frames'])} on {e['stream']}"
                                         for e in held) + ".")
                out.append(
                    f"The tuner ({t['model']}, {t['stream']}, method `{t.get('method', 'mean')}`)"
                    f" calibrated on {t['calibration_frames']} frames; {label} on held-out "
                    "frames: "
                    + ", ".join(f"{e['stream']} {pct(_score(e['heldout']))} "
                                f"({e['heldout_frames']} frames)" for e in held)
                    + "." + worth + _transfer(t, held))
        out += _transfer_notes(ac)
    return out


def _score(r: dict[str, Any]) -> float:
    return r["score"] if "score" in r else r["top1_agreement"]


def _transfer_notes(ac: dict[str, Any]) -> list[str]:
    """Per model: which tuning methods held the floor on every held-out window, at what cost."""
    out = []
    tuned = [t for t in ac.get("tuned", []) if t.get("transfer")]
    for m in dict.fromkeys(t["model"] for t in tuned):
        mine = [t for t in tuned if t["model"] == m]
        label = report_lib.metric_label(ac, m)
        parts = [f"`{t['method']}` lowest held-out score "
                 f"{pct(min(p['score'] for p in t['transfer']['streams']))} at "
                 f"{times(t['speedup'])} calibration speedup" for t in mine]
        held = [t for t in mine if t["transfer"]["floor_met"]]
        verdict = (f"`{max(held, key=lambda t: t['speedup'] or 0)['method']}` holds the floor "
                   "on the held-out frames of every clip" if held else
                   f"no tuning method holds the {pct(mine[0]['floor'])} floor on the held-out "
                   "frames of every clip; only tau = 0 (exact) is safe")
        empty = [p["stream"] for p in mine[0]["transfer"]["streams"]
                 if p.get("exact_on") is not None and p["exact_on"] < report_lib.EMPTY_MAP]
        caution = (f" Caution: the exact map is almost empty on {', '.join(empty)}, where the "
                   "score is ~1 whatever SE-CNN computes." if empty else "")
        out.append(f"Transfer ({m}, {label}): " + "; ".join(parts) + f". Verdict: {verdict}."
                   + caution)
    return out


pct = report_lib.pct
times = report_lib.times


def _transfer(t: dict[str, Any], held: list[dict[str, Any]]) -> str:
    """A sentence when tuned thresholds keep the floor on calibration but not on held-out."""
    bad = [e for e in held if _score(e["heldout"]) < t["floor"]]
    if not bad or t["agreement"] < t["floor"]:
        return ""
    return (f" The thresholds meet the {pct(t['floor'])} floor on the calibration frames "
            f"({pct(t['agreement'])}) but not on later frames of "
            + ", ".join(e["stream"] for e in bad)
            + ": the agreement cliff over tau is steep and moves with the content, so a "
            "threshold tuned on one stretch of video does not transfer. tau = 0 (exact) is "
            f"the safe setting: {times(t['history'][0]['speedup'])} on the calibration frames "
            f"against {times(t['speedup'])} tuned.")


def _parallel_share(su: dict[str, Any] | None, scheme: str, gpu: int = 0) -> float | None:
    """Mean over speedup cells on the ``gpu``-th GPU of (parallel-phase makespan / frame time)
    of ``scheme``."""
    if not su or gpu >= len(su["gpus"]):
        return None
    shares = [c["phase_us"][scheme]["parallel"] / (c["total_us"][scheme] / c["frames"])
              for c in su["cells"] if c["gpu"] == su["gpus"][gpu]
              and "parallel" in c.get("phase_us", {}).get(scheme, {})]
    return float(np.mean(shares)) if shares else None


def reproduce(ws: Workspace, cfg: ml_collections.ConfigDict, run: runs.RunDir | None = None,
              *, missing: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Runs the configured studies on ``ws``; with ``run``, writes results, figures, report.

    Returns ``{"results": {study: result}, "report": report_md_text}``.
    """
    studies = config_lib.names(cfg.studies, "studies")
    models, streams = list(ws.models), list(ws.streams)
    secnn = predictor_spec("secnn", cfg.silence, cfg.decay)
    results: dict[str, Any] = {}

    def out(name: str, res: dict[str, Any], fig: Any = None, fig_name: str = "") -> None:
        results[name] = res
        if run is not None:
            run.write_json(f"results/{name}.json", res)
            if fig is not None:
                fig(res, run.path("figures", fig_name))

    if "sparsity" in studies:
        out("sparsity", sparsity_lib.sparsity(ws, models, streams,
                                              change_tau=float(cfg.activated_tau)),
            figures.sparsity_bars, "sparsity.png")
    if "speedup" in studies and ws.timer is not None:
        # One run_stream of the first frames per model feeds the bands, the sensitivity table
        # and the schedule figure.
        inputs = {m: speedup_lib.replay_inputs(ws, m, streams[0], secnn) for m in models}
        su = speedup_lib.speedup(ws, models, streams, secnn, launch=str(cfg.launch),
                                 inputs=inputs)
        out("speedup", su, figures.speedup_bars, "speedup.png")
        if run is not None:
            figures.ladder_bars(su, run.path("figures", "ladder.png"))
        sens = []
        for m in models:  # the sensitivity table and one frame's schedule, per model
            res = speedup_lib.sensitivity(ws, m, streams[0], secnn, gpu=ws.timer.gpus[0],
                                          launch=str(cfg.launch), inputs=inputs[m])
            res.pop("_replay_inputs")
            sens.append(res)
            if run is not None:  # frames 0-1 suffice (the schedule shows frame 1)
                layers, ev, ops = inputs[m].first(2)
                _schedule(run, m, layers, ev, ops, ws, str(cfg.launch))
        results["sensitivity"] = {"study": "sensitivity", "cells": sens}
        if run is not None:
            run.write_json("results/sensitivity.json", results["sensitivity"])
        out("energy", energy_lib.energy_area(ws, su, models, streams,
                                             results["sensitivity"]))
    if "prediction" in studies:
        preds = [predictor_spec(p, cfg.silence, cfg.decay)
                 for p in config_lib.names(cfg.predictors, "predictors")]
        out("prediction", prediction_lib.prediction(
            ws, models, streams, preds, config_lib.floats(cfg.prediction_taus, "prediction_taus")),
            figures.event_stacks, "events.png")
    if "accuracy" in studies:
        acc = accuracy_lib.run_from_config(ws, cfg)
        if run is not None:
            accuracy_lib.record_effective(run, cfg, acc)
        out("accuracy", acc, figures.accuracy_curves, "accuracy.png")
        if results.get("sparsity") and acc.get("tuned"):  # "changed" at the tuned thresholds
            out("sparsity", sparsity_lib.add_tuned(results["sparsity"], ws, acc["tuned"]))
        panels = accuracy_lib.dense_map_panels(ws, results["accuracy"])
        if panels and run is not None:
            figures.dense_maps(panels, run.path("figures", "dense_maps.png"))
    if ("operating_point" in studies and ws.timer is not None
            and str(cfg.tune_stream).strip()):
        out("operating_point", operating_point_lib.run_from_config(ws, cfg))
    if "peers" in studies and ws.timer is not None:
        out("peers", peers_lib.peers(ws, models, streams, secnn,
                                     config_lib.floats(cfg.peer_taus, "peer_taus"),
                                     frames=config_lib.peer_frames(cfg),
                                     floor=float(cfg.agreement_floor), launch=str(cfg.launch),
                                     sanity_stream=peers_lib.open_sanity_stream()),
            figures.pareto, "peers.png")
    if "whatif" in studies:
        out("whatif", _whatif(ws, cfg), whatif_lib.figure, "whatif.png")
    text = report_lib.render(results, cfg.to_dict(), notes=notes(results), missing=missing)
    if run is not None:
        run.write_text("report.md", text)
    return {"results": results, "report": text}


def _whatif(ws: Workspace, cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """:func:`experiments.whatif.from_workspace`, memoised in the cell cache
    (:meth:`experiments.cells.Workspace.memo`) by what it reads: every model's inputs at the
    first stream (weights, input size, code) and the study's configuration fields; a rerun
    that changes neither reads it (the value as JSON reads it back, on a fresh run too, so
    both give the same report)."""
    import json  # noqa: PLC0415

    stream = next(iter(ws.streams))
    key = {"study": "whatif", "inputs": [ws.inputs_fingerprint(m, stream) for m in ws.models],
           "config": {f: cfg[f] for f in whatif_lib.FIELDS}}
    got = ws.memo(next(iter(ws.models)), stream, "whatif", key,
                  lambda: whatif_lib.from_workspace(ws, cfg))
    return json.loads(json.dumps(got))


def _schedule(run: runs.RunDir, model: str, layers: Any, ev: dict[str, Any], ops: Any,
              ws: Workspace, launch: str) -> None:
    """One frame's schedule per scheme: a figure and a Chrome/Perfetto trace.

    The frame is frame 1 (the first with a history to predict from), or frame 0 when the run
    has only one frame (``--frames=1``, ``--config.model_frames=NAME=1``).
    """
    from secnn_jax import timing  # noqa: PLC0415

    gpu = ws.timer.gpus[0]
    n = min(int(np.shape(v)[0]) for v in ev["zero"].values())
    kw = dict(gpus=(gpu,), precision=ws.timer.precision, launch=launch, fusion=ws.timer.fusion,
              ops=ops, config=ws.timer.config, frames=[min(1, n - 1)])
    base = timing.replay(layers, ev["zero"], schemes=("dense", "zero_skip"), **kw)
    sec = timing.replay(layers, ev["predictor"], schemes=("secnn_sw", "secnn_hw"), **kw)
    both = timing.ReplayResult(layers=base.layers, frames=base.frames, precision=base.precision,
                               gpus=base.gpus, schemes=base.schemes + sec.schemes,
                               results={**base.results, **sec.results}, meta=base.meta,
                               launch=base.launch, fusion=base.fusion)
    figures.schedule(both, run.path("figures", f"schedule_{model}.png"), gpu)
    both.to_chrome_trace(run.path("figures", f"schedule_{model}.trace.json"))


def main(argv: Sequence[str]) -> None:
    """``python -m experiments.reproduce``: all studies, then ``report.md`` in ``--out_dir``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite,
                   skip_missing=len(config_lib.model_names(cfg.models)) > 1)
    logging.info("reproduce: models %s, streams %s, up to %d frames each, out_dir %s",
                 list(st.ws.models), list(st.ws.streams), cfg.frames, st.run.root)
    reproduce(st.ws, cfg, st.run, missing=st.missing_models)
    wall = st.run.finish(**st.ws.stats, missing_models=[m for m, _ in st.missing_models])
    logging.info("report written to %s in %.1f s", st.run.root / "report.md", wall)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/reproduce", _FIELDS["reproduce"])
