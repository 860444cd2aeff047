"""Tuned thresholds off their calibration frames: held-out evaluation and transfer.

:func:`evaluation` judges a tuned threshold map on every workspace stream (the frames after
the calibration frames on the tuning stream, every frame elsewhere); :func:`transfer` on later
stretches of the tuning stream and on other clips, window by window, beside exact SE-CNN
(tau = 0) on the same frames. Both take frames of a cell with
:func:`experiments.accuracy.scoring.frames_of`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from experiments import metrics as metrics_lib
from experiments.accuracy.scoring import cell_speedup, evaluate, frames_of, mispredicted
from experiments.cells import Workspace
from experiments.errors import ConfigError

__all__ = ["evaluation", "transfer", "transfer_workspace"]


def evaluation(ws: Workspace, model: str, streams: Sequence[str], t: Mapping[str, Any],
               predictor: str, gpu: int, scheme: str, baseline: str) -> list[dict[str, Any]]:
    """Per workspace stream, the tuned thresholds ``t`` (:func:`experiments.accuracy.tune`):
    ``stream``, ``frames``, ``heldout_frames``, the metric on the ``calibration`` frames
    (tuning stream only) and, with held-out frames, on them (``heldout``) with ``speedup``
    and ``mispredicted`` over them."""
    metric = t["metric"]
    out = []
    for s in streams:
        ref = ws.reference(model, s)
        cell = ws.run(model, s, predictor, t["tau"], timed=True)
        held = slice(t["calibration_frames"], None) if s == t["stream"] else slice(None)
        e: dict[str, Any] = {"stream": s, "frames": int(cell.logits.shape[0]),
                             "heldout_frames": int(cell.logits[held].shape[0])}
        if s == t["stream"]:
            calib = slice(0, t["calibration_frames"])
            e["calibration"] = evaluate(metric, cell.logits[calib], ref.logits[calib])
        if e["heldout_frames"] > 0:
            e["heldout"] = evaluate(metric, cell.logits[held], ref.logits[held])
            e["speedup"] = cell_speedup(ws, model, s, cell, gpu, scheme, baseline, held)
            e["mispredicted"] = mispredicted(frames_of(cell, held))
        out.append(e)
    return out


def transfer(ws: Workspace, model: str, tuned: Mapping[str, Any], streams: Sequence[str], *,
             predictor: str | None = None, window: int = 16, gpu: int = 0,
             scheme: str = "secnn_hw", baseline: str = "dense") -> dict[str, Any]:
    """The tuned thresholds on later stretches of the tuning stream and on other streams.

    ``ws`` holds the streams (for the tuning stream, typically more frames than the tuner's
    workspace: the calibration frames are its first ``tuned["calibration_frames"]``). On the
    tuning stream every ``window`` frames after the calibration frames form a window; on any
    other stream windows start at frame 0 (every frame is held out).

    Returns:
      ``{"model", "method", "metric", "floor", "rows", "streams", "floor_met",
      "windows_met"}``: ``rows`` per
      (stream, window) with ``start``, ``end``, ``score`` (and the metric's fields),
      ``speedup``, ``mispredicted``; ``streams`` per stream the held-out ``score`` over all its
      held-out frames, ``worst_window``, ``speedup``, ``exact_speedup`` (tau = 0 on the same
      frames: what the thresholds gain over exact SE-CNN), ``mispredicted`` and
      ``exact_mispredicted``, ``exact_on`` (dense maps: the share of the exact map that is on;
      ``None`` for classifiers), ``floor_met`` (the held-out score at or above the floor) and
      ``windows_met`` (every window at or above it: the stricter reading); ``floor_met`` and
      ``windows_met`` at the top: on every stream.
    """
    if window < 1:
        raise ConfigError(f"transfer window must be >= 1 frame, got {window}")
    predictor = predictor or tuned["predictor"]
    metric = tuned["metric"]
    primary = metrics_lib.get_metric(metric).primary
    floor = float(tuned["floor"])
    rows, per_stream = [], []
    for s in streams:
        ref = ws.reference(model, s)
        cell = ws.run(model, s, predictor, tuned["tau"], timed=True)
        n = int(cell.logits.shape[0])
        start = int(tuned["calibration_frames"]) if s == tuned["stream"] else 0
        if start >= n:
            logging.warning("transfer: %s has %d frames, none after the %d calibration frames",
                            s, n, start)
            continue
        scores = metrics_lib.frame_scores(metric, cell.logits, ref.logits)
        mine = []
        for a in range(start, n, window):
            b = min(a + window, n)
            sl = slice(a, b)
            mine.append({"model": model, "method": tuned["method"], "stream": s, "start": a,
                         "end": b, "frames": b - a, **metrics_lib.summarize(metric, scores, sl),
                         "speedup": cell_speedup(ws, model, s, cell, gpu, scheme, baseline,
                                                 sl),
                         "mispredicted": mispredicted(frames_of(cell, sl))})
        rows += mine
        held = slice(start, n)
        worst = min(r["score"] for r in mine)
        score = float(np.mean(scores[primary][held]))
        on = next((k for k in scores if k.endswith("_on")), None)
        exact = ws.run(model, s, predictor, 0.0, n_frames=n, timed=True)
        per_stream.append({
            "stream": s, "calibration_stream": s == tuned["stream"], "start": start,
            "frames": n - start, "windows": len(mine), "score": score, "worst_window": worst,
            "speedup": cell_speedup(ws, model, s, cell, gpu, scheme, baseline, held),
            "exact_speedup": cell_speedup(ws, model, s, exact, gpu, scheme, baseline, held),
            "mispredicted": mispredicted(frames_of(cell, held)),
            "exact_mispredicted": mispredicted(frames_of(exact, held)),
            "exact_on": float(np.mean(scores[on][held])) if on else None,
            "floor_met": bool(score >= floor), "windows_met": bool(worst >= floor)})
    return {"model": model, "method": tuned["method"], "metric": metric, "floor": floor,
            "window": int(window), "rows": rows, "streams": per_stream,
            "floor_met": bool(per_stream) and all(p["floor_met"] for p in per_stream),
            "windows_met": bool(per_stream) and all(p["windows_met"] for p in per_stream)}


def transfer_workspace(ws: Workspace, streams: Mapping[str, Any], frames: int) -> Workspace:
    """A workspace over ``streams`` sharing ``ws``'s models, timer and chunk cache (cells are
    keyed by model and stream, so a longer run of a stream reuses the shorter run's chunks;
    the operating point's transfer gets the same one: :meth:`Workspace.with_streams`)."""
    return ws.with_streams(streams, frames)
