"""Prediction study: per layer, the rate of each event code, per predictor and threshold.

For every model, stream, predictor and tau, SE-CNN runs over the stream
(:meth:`experiments.cells.Workspace.run`) and counts, per layer and frame, the input neurons of
each event code (:mod:`secnn_jax.events`): ZZ (predicted 0, stays 0: free), ZN (zero
misprediction), VH (value hit: parallel phase only), VM (value miss). The *misprediction rate*
ZN + VM is the fraction of input neurons the serial phase must amend; *predicted non-zero*
VH + VM the fraction the parallel phase computes.

Library: :func:`prediction`. Command line::

    python -m experiments.prediction --out_dir=runs/prediction --config.predictors=zero,secnn
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, logging

from experiments.cells import Workspace
from secnn_jax import events as ev

__all__ = ["code_rates", "prediction", "summary_rows"]


def code_rates(counts: np.ndarray, n_inputs: np.ndarray) -> dict[str, Any]:
    """Event-code rates from ``counts [T, L, 4]`` and ``n_inputs [L]``.

    Returns ``per_layer`` ``[L, 4]`` rates (each row sums to 1) and ``overall`` ``[4]`` rates
    weighted by neurons, plus ``mispredicted`` (ZN + VM) and ``predicted_nonzero`` (VH + VM).
    """
    t = counts.shape[0]
    per_layer = counts.sum(0) / (n_inputs[:, None].astype(np.float64) * t)
    overall = counts.sum((0, 1)) / (float(n_inputs.sum()) * t)
    return {
        "per_layer": per_layer,
        "overall": overall,
        "mispredicted": float(overall[ev.ZN] + overall[ev.VM]),
        "predicted_nonzero": float(overall[ev.VH] + overall[ev.VM]),
    }


def prediction(ws: Workspace, models: Sequence[str], streams: Sequence[str],
               predictors: Sequence[str], taus: Sequence[float]) -> dict[str, Any]:
    """Event-code rates per layer for every model, stream, predictor spec and tau.

    Returns:
      ``{"study": "prediction", "codes": [...], "cells": [...], "summary": [...]}``
      (:func:`summary_rows`); each cell holds ``model``,
      ``stream``, ``predictor``, ``tau``, ``frames``, ``overall`` (rates of ZZ, ZN, VH, VM),
      ``mispredicted``, ``predicted_nonzero`` and ``layers``: per layer ``name`` and ``rates``.
    """
    cells = []
    for m in models:
        for s in streams:
            layers = ws.layers(m, s)
            n_inputs = np.array([lyr.n_inputs for lyr in layers], np.int64)
            for p in predictors:
                for tau in taus:
                    res = ws.run(m, s, p, float(tau), timed=False)
                    r = code_rates(res.counts, n_inputs)
                    logging.info("prediction %s/%s %s tau=%g: %.1f%% mispredicted, %.1f%% "
                                 "predicted non-zero", m, s, p, tau, 100 * r["mispredicted"],
                                 100 * r["predicted_nonzero"])
                    cells.append({
                        "model": m, "stream": s, "predictor": p, "tau": float(tau),
                        "frames": int(res.counts.shape[0]),
                        "overall": r["overall"].tolist(),
                        "mispredicted": r["mispredicted"],
                        "predicted_nonzero": r["predicted_nonzero"],
                        "layers": [{"name": lyr.name, "rates": r["per_layer"][i].tolist()}
                                   for i, lyr in enumerate(layers)],
                    })
    return {"study": "prediction", "codes": list(ev.NAMES), "cells": cells,
            "summary": summary_rows(cells)}


def summary_rows(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, stream, predictor, tau) other than the zero predictor: its mispredicted
    share beside the zero predictor's at the same tau, and the verdict on "predicting values
    leaves fewer inputs to amend than predicting zero" (``not measured`` without a zero
    predictor cell to compare with)."""
    zero = {(c["model"], c["stream"], c["tau"]): c["mispredicted"] for c in cells
            if c["predictor"] == "zero"}
    rows = []
    for c in cells:
        if c["predictor"] == "zero":
            continue
        z = zero.get((c["model"], c["stream"], c["tau"]))
        rows.append({"model": c["model"], "stream": c["stream"], "predictor": c["predictor"],
                     "tau": c["tau"], "mispredicted": c["mispredicted"],
                     "zero_mispredicted": z,
                     "claim": "fewer inputs to amend than the zero predictor",
                     "verdict": "not measured" if z is None else
                     "holds" if c["mispredicted"] < z else "does not hold"})
    return rows


def main(argv: Sequence[str]) -> None:
    """Runs the prediction study, prints its table, and writes results/prediction.json, its
    figure and report.md (its section)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import sys  # noqa: PLC0415

    from experiments import cli, figures, report  # noqa: PLC0415
    from experiments import config as config_lib  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, timer=None,
                   studies=("prediction",))
    preds = [predictor_spec(p, cfg.silence, cfg.decay)
             for p in config_lib.names(cfg.predictors, "predictors")]
    res = prediction(st.ws, list(st.ws.models), list(st.ws.streams), preds,
                     config_lib.floats(cfg.prediction_taus, "prediction_taus"))
    st.run.write_json("results/prediction.json", res)
    figures.event_stacks(res, st.run.path("figures", "events.png"))
    md, printed = report.study_output({"prediction": res}, cfg.to_dict(),
                                      "experiments.prediction")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/prediction", _FIELDS["prediction"])
