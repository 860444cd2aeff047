"""The tau sweep: SE-CNN at each global tau against the exact model, and its speedup."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from experiments import metrics as metrics_lib
from experiments.accuracy.scoring import cell_speedup, evaluate, mispredicted
from experiments.cells import Workspace

__all__ = ["sweep"]


def sweep(ws: Workspace, model: str, stream: str, predictor: str, taus: Sequence[float], *,
          gpu: int = 0, scheme: str = "secnn_hw", baseline: str = "dense",
          labels: Mapping[tuple[str, int], int] | None = None,
          metric: str | None = None) -> list[dict[str, Any]]:
    """The declared metric (and speedup, with a timer) of SE-CNN at each global tau.

    Every GPU of the timer is timed: ``speedup_by_gpu`` maps each GPU key to the speedup of
    ``scheme`` over ``baseline`` on it; ``speedup`` is the one on the ``gpu``-th GPU (the
    tuner's objective).

    Args:
      metric: the metric to judge on (default: the model's declared one).
    """
    metric = metric or metrics_lib.model_metric(model)
    gpus = tuple(ws.timer.gpus) if ws.timer is not None else ()
    ref = ws.reference(model, stream)
    rows = []
    labelled = sorted(f for (s, f) in (labels or {}) if s == stream and f < len(ref.logits))
    if labelled and metric != "top1":
        logging.warning("labels given, but %s is judged on %s: labels ignored", model, metric)
        labelled = []
    for tau in taus:
        cell = ws.run(model, stream, predictor, float(tau), timed=True)
        row: dict[str, Any] = {"tau": float(tau), "frames": int(cell.logits.shape[0]),
                               **evaluate(metric, cell.logits, ref.logits),
                               "mispredicted": mispredicted(cell),
                               "speedup": cell_speedup(ws, model, stream, cell, gpu, scheme,
                                                       baseline),
                               "speedup_by_gpu": {
                                   g: cell_speedup(ws, model, stream, cell, i, scheme, baseline)
                                   for i, g in enumerate(gpus)}}
        if labelled:
            lab = np.array([labels[(stream, f)] for f in labelled])
            row["label_top1"] = float(np.mean(cell.logits[labelled].argmax(-1) == lab))
            row["label_top1_exact"] = float(np.mean(ref.logits[labelled].argmax(-1) == lab))
            row["labelled_frames"] = len(labelled)
        rows.append(row)
    return rows
