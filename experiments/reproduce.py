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
after its last finished chunk and writes byte-identical outputs. The defaults take about 8
minutes on 2 CPU cores. ``--models=ilsvrc9`` runs the nine ILSVRC CNNs whose checkpoints exist and
lists the missing ones with the command that converts them.
"""

from __future__ import annotations

import time
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
from experiments.studyresult import StudyResult

__all__ = ["notes", "reproduce"]


def notes(results: dict[str, Any]) -> list[str]:
    """Plain-language observations the numbers support (what holds, what does not, and why)."""
    out: list[str] = []
    for name, fn in (("sparsity", sparsity_lib.notes), ("speedup", speedup_lib.notes),
                     ("prediction", prediction_lib.notes)):
        if results.get(name) is not None:
            out += fn(results[name])
    ac = results.get("accuracy")
    if ac:
        out += accuracy_lib.notes(ac, parallel_share=speedup_lib.parallel_share(
            results.get("speedup"), ac.target.scheme, ac.target.gpu))
    return out



def reproduce(ws: Workspace, cfg: ml_collections.ConfigDict | config_lib.Settings,
              run: runs.RunDir | None = None,
              *, missing: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Runs the configured studies on ``ws``; with ``run``, writes results, figures, report.
    ``cfg``: :class:`~experiments.config.Settings`, or a ConfigDict parsed and checked once by
    :func:`~experiments.config.settings`.

    Returns ``{"results": {study: result}, "report": report_md_text}``.
    """
    cfg = config_lib.settings(cfg)
    studies = cfg.studies
    models, streams = list(ws.models), list(ws.streams)
    secnn = predictor_spec("secnn", cfg.silence, cfg.decay)
    results: dict[str, Any] = {}
    last = [time.perf_counter()]

    def out(name: str, res: Any, fig: Any = None, fig_name: str = "") -> None:
        # A typed result (a StudyResult) is written through its versioned envelope.
        results[name] = res
        # Each study's wall time (since the previous study's result), to see where a run goes.
        now = time.perf_counter()
        logging.info("reproduce: %s done in %.1f s", name, now - last[0])
        last[0] = now
        if run is not None:
            run.write_json(f"results/{name}.json",
                           res.to_json() if isinstance(res, StudyResult) else res)
            if fig is not None:
                fig(res, run.path("figures", fig_name))

    if "sparsity" in studies:
        out("sparsity", sparsity_lib.sparsity(ws, models, streams,
                                              change_tau=cfg.activated_tau),
            figures.sparsity_bars, "sparsity.png")
    if "speedup" in studies and ws.timer is not None:
        # One run_stream of the first frames per model feeds the bands, the sensitivity table
        # and the schedule figure.
        inputs = {m: speedup_lib.replay_inputs(ws, m, streams[0], secnn) for m in models}
        su = speedup_lib.speedup(ws, models, streams, secnn, launch=cfg.launch,
                                 inputs=inputs)
        out("speedup", su, figures.speedup_bars, "speedup.png")
        if run is not None:
            figures.ladder_bars(su, run.path("figures", "ladder.png"))
        sens = []
        for m in models:  # the sensitivity table and one frame's schedule, per model
            sens.append(speedup_lib.sensitivity(ws, m, streams[0], secnn, gpu=ws.timer.gpus[0],
                                                launch=cfg.launch, inputs=inputs[m]))
            if run is not None:  # frames 0-1 suffice (the schedule shows frame 1)
                layers, ev, ops = inputs[m].first(2)
                _schedule(run, m, layers, ev, ops, ws, cfg.launch)
        out("sensitivity", speedup_lib.sensitivity_result(sens))
        out("energy", energy_lib.energy_area(ws, su, models, streams,
                                             results["sensitivity"]))
    if "prediction" in studies:
        preds = [predictor_spec(p, cfg.silence, cfg.decay) for p in cfg.predictors]
        out("prediction", prediction_lib.prediction(
            ws, models, streams, preds, cfg.prediction_taus),
            figures.event_stacks, "events.png")
    if "accuracy" in studies:
        acc = accuracy_lib.run_from_config(ws, cfg)
        if run is not None:
            accuracy_lib.record_effective(run, cfg, acc)
        out("accuracy", acc, figures.accuracy_curves, "accuracy.png")
        if results.get("sparsity") and acc.tuned:  # "changed" at the tuned thresholds
            out("sparsity", sparsity_lib.add_tuned(results["sparsity"], ws,
                                                   acc.to_json()["tuned"]))
        panels = figures.dense_map_panels(ws, acc)
        if panels and run is not None:
            figures.dense_maps(panels, run.path("figures", "dense_maps.png"))
    if ("operating_point" in studies and ws.timer is not None
            and cfg.tune_stream):
        out("operating_point", operating_point_lib.run_from_config(ws, cfg))
    if "peers" in studies and ws.timer is not None:
        out("peers", peers_lib.peers(ws, models, streams, secnn,
                                     cfg.peer_taus, frames=cfg.peer_frames_used,
                                     floor=cfg.agreement_floor, launch=cfg.launch,
                                     sanity_stream=peers_lib.open_sanity_stream()),
            figures.pareto, "peers.png")
    if "whatif" in studies:
        out("whatif", _whatif(ws, cfg), whatif_lib.figure, "whatif.png")
    text = report_lib.render(results, cfg.to_dict(), notes=notes(results), missing=missing)
    if run is not None:
        run.write_text("report.md", text)
    return {"results": results, "report": text}


def _whatif(ws: Workspace, cfg: config_lib.Settings) -> whatif_lib.WhatifResult:
    """:func:`experiments.whatif.from_workspace`, memoised in the cell cache
    (:meth:`experiments.cells.Workspace.memo`) by what it reads: every model's inputs at the
    first stream (weights, input size, code) and the study's configuration fields; a rerun
    that changes neither reads it (the value as JSON reads it back, on a fresh run too, so
    both give the same report)."""
    import json  # noqa: PLC0415

    stream = next(iter(ws.streams))
    asked = cfg.to_dict()  # the values as given (as config.json records them) key the memo
    key = {"study": "whatif", "inputs": [ws.inputs_fingerprint(m, stream) for m in ws.models],
           "config": {f: asked[f] for f in whatif_lib.FIELDS}}
    got = ws.memo(next(iter(ws.models)), stream, "whatif", key,
                  lambda: whatif_lib.from_workspace(ws, cfg).to_json())
    return whatif_lib.WhatifResult.from_json(json.loads(json.dumps(got)))


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
                   skip_missing=len(cfg.models) > 1)
    logging.info("reproduce: models %s, streams %s, up to %d frames each, out_dir %s",
                 list(st.ws.models), list(st.ws.streams), cfg.frames, st.run.root)
    reproduce(st.ws, cfg, st.run, missing=st.missing_models)
    wall = st.run.finish(**st.ws.stats, missing_models=[m for m, _ in st.missing_models])
    logging.info("report written to %s in %.1f s", st.run.root / "report.md", wall)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/reproduce", _FIELDS["reproduce"],
             choices={"op_methods": ("all", *(m.name for m in operating_point_lib.METHODS))})
