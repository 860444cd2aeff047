"""Sparsity study: per layer, the fraction of input neurons that fire (are non-zero).

Tests the paper's claim that fewer than 10% of neurons fire in trained CNNs. For every model and
stream, the plain forward pass (:meth:`experiments.cells.Workspace.reference`) counts, per layer
and frame, the input neurons ``!= 0``. A layer is *rectified* when none of its inputs was ever
negative on the stream (it reads a ReLU/ReLU6 output, possibly pooled) and *signed* otherwise
(the image, BatchNorm outputs, residual sums: EfficientNet's expansion convs read the residual
stream, which is dense by construction).

Library: :func:`sparsity`. Command line::

    python -m experiments.sparsity --out_dir=runs/sparsity --config.frames=16
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, logging

from experiments.cells import Workspace

__all__ = ["CLAIM_FIRED", "sparsity", "summarise"]

#: The paper's claim: fewer than this fraction of neurons fire.
CLAIM_FIRED = 0.10


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
        "verdict": ("not measured" if fired_all is None else
                    "holds" if fired_all < CLAIM_FIRED else "does not hold"),
    }


def sparsity(ws: Workspace, models: Sequence[str], streams: Sequence[str]) -> dict[str, Any]:
    """Per-layer firing rates for every model and stream.

    Returns:
      ``{"study": "sparsity", "claim": ..., "cells": [...], "summary": [...]}`` (a summary
      row per cell: ``model``, ``stream``, ``fired_all``, ``claim``, ``verdict``); each cell
      holds ``model``, ``stream``, ``summary`` (:func:`summarise`) and ``layers``: per layer
      ``name``, ``kind``,
      ``role`` (rectified/signed), ``n_inputs``, ``fired`` (fraction of input neurons != 0 over
      all frames), ``fired_min``/``fired_max`` over frames.
    """
    cells = []
    for m in models:
        for s in streams:
            ref = ws.reference(m, s)
            layers = ws.layers(m, s)
            rectified = ref.negative.sum(0) == 0
            per_frame = ref.nonzero / ref.n_inputs[None].astype(np.float64)
            rows = []
            for i, lyr in enumerate(layers):
                rows.append({
                    "name": lyr.name, "kind": lyr.kind,
                    "role": "rectified" if rectified[i] else "signed",
                    "n_inputs": int(ref.n_inputs[i]),
                    "fired": float(ref.nonzero[:, i].sum() / (ref.n_inputs[i] * len(ref.nonzero))),
                    "fired_min": float(per_frame[:, i].min()),
                    "fired_max": float(per_frame[:, i].max()),
                })
            summary = summarise(ref.nonzero, ref.negative, ref.n_inputs)
            logging.info("sparsity %s/%s: %.1f%% of input neurons fire (%.1f%% in rectified "
                         "layers)", m, s, 100 * summary["fired_all"],
                         100 * (summary["fired_rectified"] or float("nan")))
            cells.append({"model": m, "stream": s, "summary": summary, "layers": rows})
    summary = [{"model": c["model"], "stream": c["stream"], "fired_all": c["summary"]["fired_all"],
                "claim": f"fewer than {CLAIM_FIRED:.0%} of input neurons fire",
                "verdict": c["summary"]["verdict"]} for c in cells]
    return {"study": "sparsity", "claim": {"fired_below": CLAIM_FIRED}, "cells": cells,
            "summary": summary}


def main(argv: Sequence[str]) -> None:
    """Runs the sparsity study, prints its claims and table, and writes results/sparsity.json,
    its figure and report.md (its claims and section)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import sys  # noqa: PLC0415

    from experiments import cli, figures, report  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, timer=None,
                   studies=("sparsity",))
    res = sparsity(st.ws, list(st.ws.models), list(st.ws.streams))
    st.run.write_json("results/sparsity.json", res)
    figures.sparsity_bars(res, st.run.path("figures", "sparsity.png"))
    md, printed = report.study_output({"sparsity": res}, cfg.to_dict(), "experiments.sparsity")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/sparsity", _FIELDS["sparsity"])
