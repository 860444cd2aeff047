"""How one SE-CNN cell is scored against the exact model: metric fields, output error,
mispredicted share, replayed speedup, and the one way to take some frames of a cell.

Every stage of the accuracy study (the sweep, the tuner, the held-out and transfer
evaluation) scores cells with these functions, so a number means the same wherever it
appears.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments import metrics as metrics_lib
from experiments.cells import CellResult, Workspace
from experiments.paper import COMPARISON_LAUNCH
from experiments.speedup import frame_times
from experiments.timer import variant
from secnn_jax import events as ev
from secnn_jax.timing.names import SECNN

__all__ = ["agreement", "cell_speedup", "evaluate", "frames_of", "mispredicted",
           "output_error"]


def output_error(outputs: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Max absolute output difference over the exact output's max absolute value, per frame:
    its mean (``logit_error``) and its worst frame (``logit_error_max``)."""
    a = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    b = np.asarray(exact, np.float64).reshape(len(exact), -1)
    scale = np.maximum(np.abs(b).max(-1), 1e-30)
    err = np.abs(a - b).max(-1) / scale
    return {"logit_error": float(err.mean()), "logit_error_max": float(err.max())}


def agreement(logits: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Top-1 agreement, top-5 overlap and logit error of ``logits`` vs ``exact`` ``[T, C]``
    (the classifier metric; :func:`evaluate` uses each model's declared one)."""
    r = metrics_lib.top1(logits, exact)
    return {"top1_agreement": r["top1_agreement"], "top5_overlap": r["top5_overlap"],
            **output_error(logits, exact)}


def evaluate(metric: str, outputs: np.ndarray, exact: np.ndarray) -> dict[str, Any]:
    """``metric``'s fields (:func:`experiments.metrics.evaluate`: ``score``, ``score_min``,
    ``metric`` and the named fields) plus the output error of ``outputs`` vs ``exact``."""
    return {**metrics_lib.evaluate(metric, outputs, exact), **output_error(outputs, exact)}


def frames_of(cell: CellResult, idx: slice | np.ndarray) -> CellResult:
    """The frames ``idx`` of ``cell`` (every per-frame array sliced alike; ``None`` stays)."""
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[idx]

    return CellResult(cell.logits[idx], cell.counts[idx], cut(cell.time_us),
                      cut(cell.phase_us), cut(cell.energy_uj))


def mispredicted(cell: CellResult) -> float:
    """Share of input neurons mispredicted (zero misses ZN and value misses VM) in ``cell``."""
    c = cell.counts.sum((0, 1))
    return float((c[ev.ZN] + c[ev.VM]) / c.sum())


def cell_speedup(ws: Workspace, model: str, stream: str, cell: CellResult, gpu: int,
                 scheme: str, baseline: str, frames: slice = slice(None)) -> float | None:
    """Replayed speedup of ``scheme`` over ``baseline`` on the timer's ``gpu``-th GPU over
    ``frames`` of ``cell`` (baselines timed from the exact zero predictor's cell); ``None``
    without times or when either scheme is not timed."""
    if cell.time_us is None or ws.timer is None:
        return None
    schemes = tuple(ws.timer.schemes)
    n = cell.time_us.shape[0]
    base = ws.run(model, stream, "zero", 0.0, n_frames=n, timed=True).time_us
    ft = frame_times(base[:, gpu], cell.time_us[:, gpu], schemes)
    own = variant(scheme, COMPARISON_LAUNCH)
    if scheme not in SECNN and own in schemes:
        # A scheme the cell's own events feed (zero_skip on the zero predictor's at tau > 0, a
        # change-based peer on the accumulated predictor's) is timed from the cell, not from
        # the exact zero pattern.
        col = cell.time_us[:, gpu, schemes.index(own)]
        if np.isfinite(col).all():
            ft[scheme] = col.astype(np.float64)
    if scheme not in ft or baseline not in ft:
        return None
    return float(ft[baseline][frames].sum() / ft[scheme][frames].sum())
