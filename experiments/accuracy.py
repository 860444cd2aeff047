"""Accuracy study: what a tolerance tau costs in agreement with the exact model, and what it buys.

Every model is judged on the task metric it declares (``models.get_spec(name).metric``,
:mod:`experiments.metrics`): classifiers on *top-1 agreement* (same arg-max class as the exact
model; also top-5 overlap), HED on the F1 score of its edge map binarised at 0.5 (also the mean
absolute error of the probabilities), CRAFT on the F1 score of its region score binarised at 0.4
(also the IoU). The metric's *primary score* (in ``[0, 1]``, 1 = the exact model's output) is
what the ">95%" claim, the tuner's floor and the held-out verdicts are judged on; every row
names its metric.

* **Sweep.** For every model, stream and global tau, SE-CNN runs over the stream and is compared,
  frame by frame, with the plain forward pass: the metric's fields and *output error* (max
  absolute output difference over the exact output's max absolute value, ``logit_error``). With
  a timer, each tau also gets its replayed speedup (the tuner's scheme over its baseline) on
  every GPU of ``--config.gpus``. With ``labels`` (classifiers), top-1 accuracy against the
  labels is reported for the exact model and every tau.
* **Threshold tuner** (:func:`tune`). Per-layer thresholds ``tau_l = alpha_l * s_l``, with
  ``s_l`` the mean ``|x|`` of layer ``l``'s input on the calibration frames (thresholds relative
  to each layer's activation scale), chosen to maximise the replayed speedup subject to a floor
  (default 95%) on the metric's primary score over the calibration frames (the first
  ``calibration_frames`` of the tuning stream). Stage 1 searches one global ``alpha`` by
  doubling/halving; stage 2 doubles ``alpha`` for groups of layers, largest serial-phase work
  first, keeping each change that stays above the floor and gains speed. Every evaluation is one
  SE-CNN run over the calibration frames with tau traced (one compile).
* **Tuning methods** (:class:`TuneMethod`, ``config.tune_methods``) decide what "above the
  floor" means on the calibration frames. ``mean`` (the original tuner): the score over all
  calibration frames. ``worst_window``: the calibration frames are cut into ``windows``
  contiguous windows and the *worst* window's score must clear the floor. ``mean_std``: the mean
  of the window scores minus ``k`` standard deviations must. Every method takes a safety
  ``margin`` (the criterion must reach ``floor + margin``) and a ``backoff`` (the chosen
  ``alpha`` is multiplied by it, a margin in threshold space).
* **Transfer** (:func:`transfer`). The chosen thresholds run over a longer stretch of the tuning
  stream (``transfer_frames``) and over other clips; the study reports the score over the
  held-out frames of every clip and on every window of ``transfer_window`` frames (after the
  calibration frames on the tuning stream), whether the floor holds on every clip's held-out
  frames (and, stricter, on every window), and what each method's margin costs: its held-out
  speedup beside exact SE-CNN's (tau = 0) on the same frames, and the serial work left.

Library: :func:`sweep`, :func:`tune`, :func:`transfer`, :func:`accuracy`,
:func:`dense_map_panels`. Command line::

    python -m experiments.accuracy --out_dir=runs/accuracy --config.taus=0,0.1,0.2 \\
        --config.tune_methods='mean,worst_window(windows=4,backoff=0.5)'
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import app, logging

from experiments import metrics as metrics_lib
from experiments.cells import CellResult, Workspace
from experiments.errors import ConfigError
from experiments.paper import COMPARISON_LAUNCH, above
from experiments.speedup import frame_times
from experiments.timer import variant
from experiments.tuning import TuneMethod, tune_method
from secnn_jax import events as ev
from secnn_jax.timing.names import SECNN

__all__ = [
    "CLAIM_AGREEMENT",
    "TuneMethod",
    "accuracy",
    "agreement",
    "dense_map_panels",
    "effective_calibration",
    "evaluate",
    "load_labels",
    "record_effective",
    "sweep",
    "transfer",
    "tune",
    "tune_method",
]

#: The paper's claim: SE-CNN keeps over this fraction of the accuracy (judged on each model's
#: declared metric).
CLAIM_AGREEMENT = 0.95


def _output_error(outputs: np.ndarray, exact: np.ndarray) -> dict[str, float]:
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
            **_output_error(logits, exact)}


def evaluate(metric: str, outputs: np.ndarray, exact: np.ndarray) -> dict[str, Any]:
    """``metric``'s fields (:func:`experiments.metrics.evaluate`: ``score``, ``score_min``,
    ``metric`` and the named fields) plus the output error of ``outputs`` vs ``exact``."""
    return {**metrics_lib.evaluate(metric, outputs, exact), **_output_error(outputs, exact)}


def load_labels(path: str | Path) -> dict[tuple[str, int], int]:
    """Labels from a CSV with header ``stream,frame,label`` (ImageNet class indices)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ConfigError(f"labels file {str(path)!r} cannot be read: {e}") from e
    out = {}
    for i, r in enumerate(rows):
        try:
            out[(r["stream"].strip(), int(r["frame"]))] = int(r["label"])
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"labels file {str(path)!r} row {i + 2}: expected columns "
                             f"stream,frame,label with integer frame and label: {r}") from e
    return out


# ---------------------------------------------------------------------------------------------
# Sweep


def _cell_speedup(ws: Workspace, model: str, stream: str, cell: CellResult, gpu: int,
                  scheme: str, baseline: str, frames: slice = slice(None)) -> float | None:
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
                               "mispredicted": _mispredicted(cell),
                               "speedup": _cell_speedup(ws, model, stream, cell, gpu, scheme,
                                                        baseline),
                               "speedup_by_gpu": {
                                   g: _cell_speedup(ws, model, stream, cell, i, scheme, baseline)
                                   for i, g in enumerate(gpus)}}
        if labelled:
            lab = np.array([labels[(stream, f)] for f in labelled])
            row["label_top1"] = float(np.mean(cell.logits[labelled].argmax(-1) == lab))
            row["label_top1_exact"] = float(np.mean(ref.logits[labelled].argmax(-1) == lab))
            row["labelled_frames"] = len(labelled)
        rows.append(row)
    return rows


def _mispredicted(cell: CellResult) -> float:
    c = cell.counts.sum((0, 1))
    return float((c[ev.ZN] + c[ev.VM]) / c.sum())


# ---------------------------------------------------------------------------------------------
# Tuner


def _calibration_frames(ws: Workspace, model: str, stream: str, requested: int) -> int:
    total = ws.n_frames(model, stream)
    cs = ws.chunk_size
    calib = max(cs, (min(requested, total) // cs) * cs)
    if calib >= total and total > cs:
        calib = ((total - 1) // cs) * cs
    return min(calib, total)


def tune(ws: Workspace, model: str, stream: str, predictor: str, *, calibration_frames: int,
         floor: float = CLAIM_AGREEMENT, evals: int = 8, gpu: int = 0,
         scheme: str = "secnn_hw", baseline: str = "dense", groups: int = 4,
         method: str | TuneMethod = "mean", metric: str | None = None) -> dict[str, Any]:
    """Per-layer thresholds maximising replayed speedup with the metric's score >= ``floor``.

    Args:
      calibration_frames: frames the tuner sees (rounded down to a multiple of the workspace's
        chunk size; at least one chunk; at most all frames but one chunk when possible); a
        change is logged as a warning and returned as ``calibration_frames``
        (:func:`record_effective` writes it to ``config.json``; the command line refuses a
        request that is not a whole number of chunks).
      floor: minimum of the method's criterion (minus its margin) on the calibration frames,
        on the primary score of ``metric``.
      evals: maximum SE-CNN runs over the calibration frames (a ``backoff`` below 1 adds one).
      gpu, scheme, baseline: the objective: speedup of ``scheme`` over ``baseline`` on the
        timer's ``gpu``-th GPU.
      groups: layer groups of stage 2 (by serial-phase work).
      method: a :class:`TuneMethod` or its spec (``mean``: the score over all calibration
        frames).
      metric: the metric (default: the model's declared one).

    Returns:
      ``tau`` (``{layer: float}``), ``alpha`` and ``scale`` per layer, ``metric``, ``method``
      (its spec; ``windows_used``: its windows, fewer when the calibration frames are fewer
      than the windows), the calibration ``agreement`` (the primary score over all
      calibration frames),
      ``criterion`` (the method's number), ``window_scores``, ``speedup``,
      ``calibration_frames``, and ``history`` (every evaluation).
    """
    if ws.timer is None:
        raise ConfigError("the threshold tuner needs a timer (timing replay)")
    meth = tune_method(method)
    metric = metric or metrics_lib.model_metric(model)
    primary = metrics_lib.get_metric(metric).primary
    layers = ws.layers(model, stream)
    calib = _calibration_frames(ws, model, stream, calibration_frames)
    if calib != calibration_frames:
        total = ws.n_frames(model, stream)
        logging.warning(
            "calibration_frames=%d: %s calibrates on %d of its %d %s frames (whole chunks of "
            "%d%s); recorded in config.json as effective", calibration_frames, model, calib,
            total, stream, ws.chunk_size,
            f", {total - calib} held out" if calib < total else ", none held out")
    spec = meth.spec
    if meth.windows > calib:  # a small run: as many windows as frames (one frame: the mean)
        logging.warning("tune method %s: %d windows but only %d calibration frames; using %d",
                        spec, meth.windows, calib, calib)
        meth = dataclasses.replace(meth, windows=calib) if calib >= 2 else \
            dataclasses.replace(meth, kind="mean", windows=1)
    ref = ws.reference(model, stream)
    n_inputs = ref.n_inputs.astype(np.float64)
    scale = ref.abs_sum[:calib].sum(0) / (n_inputs * calib)
    fan = np.array([lyr.macs / lyr.n_inputs / lyr.in_shape[0] for lyr in layers], np.float64)
    names = [lyr.name for lyr in layers]
    need = floor + meth.margin
    history: list[dict[str, Any]] = []
    cache: dict[tuple[float, ...], dict[str, Any]] = {}

    def evaluate_alpha(alpha: np.ndarray, note: str) -> dict[str, Any]:
        key = tuple(float(a) for a in alpha)
        if key in cache:
            return cache[key]
        tau = {n: float(a * s) for n, a, s in zip(names, alpha, scale, strict=True)}
        cell = ws.run(model, stream, predictor, tau, n_frames=calib, timed=True)
        per = metrics_lib.frame_scores(metric, cell.logits, ref.logits[:calib])[primary]
        agr = float(per.mean())
        crit = meth.criterion(per)
        sp = _cell_speedup(ws, model, stream, cell, gpu, scheme, baseline)
        miss = cell.counts[:, :, ev.ZN].sum(0) + cell.counts[:, :, ev.VM].sum(0)
        ok = bool(crit >= need)
        out = {"alpha": np.array(alpha, np.float64), "tau": tau, "agreement": agr,
               "criterion": crit, "windows": meth.window_scores(per).tolist(),
               "speedup": sp, "feasible": ok, "serial_work": miss * fan,
               "mispredicted": _mispredicted(cell)}
        cache[key] = out
        history.append({"step": len(history), "note": note, "agreement": agr,
                        "criterion": crit, "speedup": sp, "feasible": ok,
                        "alpha_min": float(np.min(alpha)), "alpha_max": float(np.max(alpha))})
        logging.info("tuner %s %s %s: %s %.3f, criterion %.3f, speedup %s (%s)", model,
                     spec, note, metric, agr, crit,
                     f"{sp:.3f}" if sp is not None else "n/a", "ok" if ok else "below")
        return out

    L = len(layers)
    best = evaluate_alpha(np.zeros(L), "exact (alpha 0)")
    budget = evals - 1
    # Stage 1: one global alpha, doubling up from 0.02 or halving down.
    a = 0.02
    first = evaluate_alpha(np.full(L, a), f"global alpha {a:g}") if budget > 0 else None
    budget -= 1 if first is not None else 0
    if first is not None and first["feasible"]:
        best = _better(best, first)
        while budget > 0 and a < 64:
            a *= 2
            r = evaluate_alpha(np.full(L, a), f"global alpha {a:g}")
            budget -= 1
            if not r["feasible"]:
                break
            best = _better(best, r)
    elif first is not None:
        while budget > 0 and a > 0.001:
            a /= 2
            r = evaluate_alpha(np.full(L, a), f"global alpha {a:g}")
            budget -= 1
            if r["feasible"]:
                best = _better(best, r)
                break
    # Stage 2: double alpha per group of layers, largest serial work first.
    if budget > 0 and float(best["alpha"].max()) > 0:
        order = np.argsort(-best["serial_work"], kind="stable")
        sw = best["serial_work"][order]
        # A layer's group is where its share *starts* (the work before it), so the largest
        # layer is always in group 0 (an inclusive share put a layer holding >= 1/groups of
        # the work in a later group and left group 0 empty).
        start = (np.cumsum(sw) - sw) * groups / max(float(sw.sum()), 1e-30)
        group_of = np.minimum(start.astype(int), groups - 1)
        frozen: set[int] = set()
        while budget > 0 and len(frozen) < groups:
            for gi in range(groups):
                if budget <= 0:
                    break
                if gi in frozen:
                    continue
                members = order[group_of == gi]
                if members.size == 0:
                    frozen.add(gi)
                    continue
                alpha = best["alpha"].copy()
                alpha[members] *= 2
                r = evaluate_alpha(alpha, f"group {gi} ({members.size} layers) x2")
                budget -= 1
                if r["feasible"] and (r["speedup"] or 0) > (best["speedup"] or 0):
                    best = r
                else:
                    frozen.add(gi)
    searched = best
    if meth.backoff < 1.0 and float(best["alpha"].max()) > 0:
        best = evaluate_alpha(best["alpha"] * meth.backoff, f"backoff x{meth.backoff:g}")
    return {
        "model": model, "stream": stream, "predictor": predictor, "floor": float(floor),
        "metric": metric, "method": spec, "windows_used": int(meth.windows),
        "margin": float(meth.margin),
        "calibration_frames": int(calib), "tau": best["tau"],
        "alpha": dict(zip(names, best["alpha"].tolist(), strict=True)),
        "scale": dict(zip(names, scale.tolist(), strict=True)),
        "agreement": best["agreement"], "criterion": best["criterion"],
        "window_scores": best["windows"], "speedup": best["speedup"],
        "mispredicted": best["mispredicted"],
        "searched": {"agreement": searched["agreement"], "speedup": searched["speedup"],
                     "criterion": searched["criterion"]},
        "history": history, "objective": {"gpu": gpu, "scheme": scheme, "baseline": baseline},
    }


def _better(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The feasible result with the higher speedup (``b`` on ties)."""
    if not b["feasible"]:
        return a
    return b if (b["speedup"] or 0) >= (a["speedup"] or 0) else a


# ---------------------------------------------------------------------------------------------
# Held-out evaluation and transfer


def _evaluation(ws: Workspace, model: str, streams: Sequence[str], t: Mapping[str, Any],
                predictor: str, gpu: int, scheme: str, baseline: str) -> list[dict[str, Any]]:
    """Per workspace stream: the metric on calibration and held-out frames, speedup."""
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
            e["speedup"] = _cell_speedup(ws, model, s, cell, gpu, scheme, baseline, held)
            e["mispredicted"] = _mispredicted(
                CellResult(cell.logits[held], cell.counts[held], None))
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
            r = {"model": model, "method": tuned["method"], "stream": s, "start": a, "end": b,
                 "frames": b - a, **metrics_lib.summarize(metric, scores, sl),
                 "speedup": _cell_speedup(ws, model, s, cell, gpu, scheme, baseline, sl),
                 "mispredicted": _mispredicted(CellResult(cell.logits[sl], cell.counts[sl],
                                                          None))}
            mine.append(r)
        rows += mine
        held = slice(start, n)
        worst = min(r["score"] for r in mine)
        score = float(np.mean(scores[primary][held]))
        on = next((k for k in scores if k.endswith("_on")), None)
        exact = ws.run(model, s, predictor, 0.0, n_frames=n, timed=True)
        per_stream.append({
            "stream": s, "calibration_stream": s == tuned["stream"], "start": start,
            "frames": n - start, "windows": len(mine), "score": score, "worst_window": worst,
            "speedup": _cell_speedup(ws, model, s, cell, gpu, scheme, baseline, held),
            "exact_speedup": _cell_speedup(ws, model, s, exact, gpu, scheme, baseline, held),
            "mispredicted": _mispredicted(CellResult(cell.logits[held], cell.counts[held],
                                                     None)),
            "exact_mispredicted": _mispredicted(CellResult(exact.logits[held],
                                                           exact.counts[held], None)),
            "exact_on": float(np.mean(scores[on][held])) if on else None,
            "floor_met": bool(score >= floor), "windows_met": bool(worst >= floor)})
    return {"model": model, "method": tuned["method"], "metric": metric, "floor": floor,
            "window": int(window), "rows": rows, "streams": per_stream,
            "floor_met": bool(per_stream) and all(p["floor_met"] for p in per_stream),
            "windows_met": bool(per_stream) and all(p["windows_met"] for p in per_stream)}


def effective_calibration(result: Mapping[str, Any], requested: int) -> dict[str, int]:
    """``{model: calibration frames used}`` for every tuned model whose calibration frames
    differ from ``requested`` (fewer frames than asked, or not a whole number of chunks:
    :func:`tune`); ``{}`` when every model calibrated on what was asked."""
    return {t["model"]: int(t["calibration_frames"]) for t in result.get("tuned", [])
            if int(t["calibration_frames"]) != int(requested)}


def record_effective(run: Any, cfg: Any, result: Mapping[str, Any]) -> None:
    """Records in ``run``'s ``config.json`` (:meth:`experiments.runs.RunDir.record_effective`)
    the calibration frames each model used where they differ from ``cfg.calibration_frames``."""
    eff = effective_calibration(result, int(cfg.calibration_frames))
    if eff:
        run.record_effective("calibration_frames", eff)


def _transfer_workspace(ws: Workspace, streams: Mapping[str, Any], frames: int) -> Workspace:
    """A workspace over ``streams`` sharing ``ws``'s models, timer and chunk cache (cells are
    keyed by model and stream, so a longer run of a stream reuses the shorter run's chunks;
    the operating point's transfer gets the same one: :meth:`Workspace.with_streams`)."""
    return ws.with_streams(streams, frames)


def accuracy(ws: Workspace, models: Sequence[str], streams: Sequence[str], predictor: str,
             taus: Sequence[float], *, tune_stream: str | None = None,
             calibration_frames: int = 16, floor: float = CLAIM_AGREEMENT, evals: int = 8,
             gpu: int = 0, scheme: str = "secnn_hw", baseline: str = "dense",
             labels: Mapping[tuple[str, int], int] | None = None,
             methods: Sequence[str | TuneMethod] = ("mean",),
             transfer_streams: Mapping[str, Any] | None = None, transfer_frames: int = 0,
             transfer_window: int = 16) -> dict[str, Any]:
    """The sweep for every model and stream, then the tuner, its held-out evaluation and
    transfer.

    Args:
      methods: tuning methods (:func:`tune_method` specs); each is tuned and evaluated.
      transfer_streams: ``{name: Stream}`` for :func:`transfer`: the tuning stream (with
        ``transfer_frames`` frames, for the windows after the calibration frames) and other
        clips. ``None``: no transfer evaluation.
      transfer_frames: frames per transfer stream (0: the workspace's frame cap).
      transfer_window: frames per transfer window.

    Returns:
      ``{"study": "accuracy", "sweep": [...], "tuned": [...], "metrics": {...}, "claim": ...,
      "summary": [...]}`` (:func:`summarised`).
      ``sweep`` rows hold ``model``, ``stream``, ``metric`` and the :func:`sweep` fields
      (``speedup_by_gpu``: every GPU of the timer, listed in ``gpus``; ``speedup``: the
      objective's, ``objective["gpu_name"]``).
      ``tuned`` (one per model and method, if ``tune_stream`` is given and a timer is set)
      holds the :func:`tune` result plus ``evaluation`` — per workspace stream the metric on
      the calibration frames (tuning stream only), ``heldout`` fields and ``speedup`` over the
      held-out frames — and ``transfer`` (:func:`transfer`, with transfer streams). ``metrics``
      maps each model to its metric's ``name``, ``primary`` and ``label``.
    """
    taus = sorted({0.0, *map(float, taus)})
    meths = [tune_method(m) for m in methods]
    model_metrics = {m: metrics_lib.model_metric(m) for m in models}
    rows = []
    for m in models:
        for s in streams:
            for r in sweep(ws, m, s, predictor, taus, gpu=gpu, scheme=scheme,
                           baseline=baseline, labels=labels, metric=model_metrics[m]):
                rows.append({"model": m, "stream": s, **r})
    tuned = []
    if tune_stream is not None and ws.timer is not None:
        if tune_stream not in streams:
            raise ConfigError(f"tune_stream {tune_stream!r} is not among the streams {streams}")
        tws = None
        if transfer_streams:
            n = transfer_frames or ws.max_frames
            # The workspace itself when it already holds every transfer stream (no recompile).
            tws = ws if (n <= ws.max_frames and all(s in ws.streams for s in transfer_streams)) \
                else _transfer_workspace(ws, transfer_streams, n)
        for m in models:
            for meth in meths:
                t = tune(ws, m, tune_stream, predictor, calibration_frames=calibration_frames,
                         floor=floor, evals=evals, gpu=gpu, scheme=scheme, baseline=baseline,
                         method=meth, metric=model_metrics[m])
                t["evaluation"] = _evaluation(ws, m, streams, t, predictor, gpu, scheme,
                                              baseline)
                if tws is not None:
                    t["transfer"] = transfer(tws, m, t, list(transfer_streams),
                                             predictor=predictor, window=transfer_window,
                                             gpu=gpu, scheme=scheme, baseline=baseline)
                tuned.append(t)
    return summarised({"study": "accuracy", "predictor": predictor, "sweep": rows,
                       "tuned": tuned,
            "metrics": {m: {"name": k, "primary": metrics_lib.get_metric(k).primary,
                            "label": metrics_lib.get_metric(k).label}
                        for m, k in model_metrics.items()},
            "methods": [mt.spec for mt in meths],
            "claim": {"agreement_above": CLAIM_AGREEMENT},
            "gpus": list(ws.timer.gpus) if ws.timer is not None else [],
            "objective": {"gpu": gpu, "scheme": scheme, "baseline": baseline,
                          "gpu_name": ws.timer.gpus[gpu] if ws.timer is not None else None}})


def summarised(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with its ``summary``: one row per judged claim, each with a ``verdict``:
    ``kind`` ``tau0`` (per sweep row at tau = 0: the score against the paper's >95%),
    ``heldout`` (per tuned model, method and stream: the held-out score) and ``transfer``
    (per tuned model and method: every transfer stream at the floor)."""
    floor = result["claim"]["agreement_above"]

    def score(r: Mapping[str, Any]) -> float:
        return r["score"] if "score" in r else r["top1_agreement"]

    rows = [{"kind": "tau0", "model": r["model"], "stream": r["stream"], "score": score(r),
             "floor": floor, "verdict": above(score(r), floor)}
            for r in result["sweep"] if r["tau"] == 0.0]
    for t in result.get("tuned", []):
        for e in t["evaluation"]:
            if "heldout" in e:
                a = score(e["heldout"])
                rows.append({"kind": "heldout", "model": t["model"],
                             "method": t.get("method", "mean"), "stream": e["stream"],
                             "score": a, "floor": floor, "verdict": above(a, floor)})
        tr = t.get("transfer")
        if tr and tr["streams"]:
            rows.append({"kind": "transfer", "model": t["model"],
                         "method": t.get("method", "mean"), "floor": tr.get("floor"),
                         "verdict": "holds" if tr["floor_met"] else "does not hold"})
    return {**result, "summary": rows}


# ---------------------------------------------------------------------------------------------
# Dense-prediction maps for the figure


def dense_map_panels(ws: Workspace, result: Mapping[str, Any], stream: str | None = None,
                     frame: int | None = None) -> list[dict[str, Any]]:
    """Exact and SE-CNN output maps of one frame for each dense-prediction model tuned.

    For every model whose metric is ``edge_f1`` or ``region_f1`` and that was tuned, the map
    the metric binarises (HED's edge probabilities; CRAFT's region score) of ``frame`` of
    ``stream`` (default: ``photos`` if the workspace has it, else the tuning stream; by default
    the frame whose exact map has the most pixels on, the last on ties), exact and at each
    tuning method's thresholds.

    Returns:
      One dict per model: ``model``, ``metric``, ``threshold``, ``stream``, ``frame``,
      ``image`` (the stream's uint8 frame), ``exact`` ``[H, W]`` and ``secnn``: a list of
      ``{"method", "map", "score"}`` (the frame's primary score).
    """
    import itertools  # noqa: PLC0415

    import jax  # noqa: PLC0415

    thresholds = {"edge_f1": 0.5, "region_f1": 0.4}
    out = []
    for m in dict.fromkeys(t["model"] for t in result.get("tuned", [])):
        metric = result["metrics"][m]["name"]
        if metric not in thresholds:
            continue
        mine = [t for t in result["tuned"] if t["model"] == m]
        s = stream or ("photos" if "photos" in ws.streams else mine[0]["stream"])
        x = ws.frames(m, s)
        ref = ws.reference(m, s)
        if frame is None:
            on = metrics_lib.frame_scores(metric, ref.logits, ref.logits)[
                "edge_on" if metric == "edge_f1" else "region_on"]
            k = int(len(on) - 1 - np.argmax(on[::-1]))
        else:
            k = int(frame)
        h = ws.model(m)
        shape = jax.eval_shape(h.apply_fn, h.variables, jax.ShapeDtypeStruct(
            x.shape[1:], x.dtype)).shape[1:]
        channel = 0

        def plane(flat: np.ndarray, shape: tuple[int, ...] = shape,
                  channel: int = channel) -> np.ndarray:
            return np.asarray(flat, np.float64).reshape(shape)[..., channel]

        exact = plane(ref.logits[k])
        panels = []
        for t in mine:
            cell = ws.run(m, s, t["predictor"], t["tau"], timed=False)
            score = metrics_lib.summarize(metric, metrics_lib.frame_scores(
                metric, cell.logits[k:k + 1], ref.logits[k:k + 1]))["score"]
            panels.append({"method": t["method"], "map": plane(cell.logits[k]),
                           "score": score})
        image = next(itertools.islice(iter(ws.streams[s]), k, k + 1), None)
        out.append({"model": m, "metric": metric, "label": result["metrics"][m]["label"],
                    "threshold": thresholds[metric], "stream": s, "frame": k,
                    "image": None if image is None else np.asarray(image), "exact": exact,
                    "secnn": panels})
    return out


# ---------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str]) -> None:
    """Runs the accuracy study, prints its claims and tables, and writes
    results/accuracy.json, its figures and report.md (its claims and sections)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import sys  # noqa: PLC0415

    from experiments import cli, figures, report  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite,
                   studies=("accuracy",))
    res = run_from_config(st.ws, cfg)
    record_effective(st.run, cfg, res)
    st.run.write_json("results/accuracy.json", res)
    figures.accuracy_curves(res, st.run.path("figures", "accuracy.png"))
    panels = dense_map_panels(st.ws, res)
    if panels:
        figures.dense_maps(panels, st.run.path("figures", "dense_maps.png"))
    md, printed = report.study_output({"accuracy": res}, cfg.to_dict(), "experiments.accuracy")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


def transfer_streams_from_config(cfg: Any, tune_stream: str | None,
                                 opened: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{name: Stream}`` of the tuning stream and ``cfg.transfer_streams``, each opened with
    ``cfg.transfer_frames`` frames (0: ``cfg.frames``; at most ``cfg.frames``:
    :func:`experiments.config.transfer_frames`); ``{}`` when nothing is to transfer.

    The tuning stream is reopened by its name; a stream that cannot be (``pan:...`` streams
    are named differently from their spec) is taken from ``opened`` as it is.
    """
    from experiments import config as config_lib  # noqa: PLC0415
    from secnn_jax import datasources  # noqa: PLC0415

    specs = (config_lib.names(cfg.transfer_streams, "transfer_streams")
             if str(cfg.transfer_streams).strip() else ())
    if tune_stream is None or (not specs and not int(cfg.transfer_frames)):
        return {}
    n = config_lib.transfer_frames(cfg)
    try:
        out = {tune_stream: datasources.open_stream(tune_stream, max_frames=n)}
    except datasources.StreamError:
        if opened is None or tune_stream not in opened:
            raise
        logging.warning("transfer: stream %r cannot be reopened with %d frames; using its %s",
                        tune_stream, n, "frames in the workspace")
        out = {tune_stream: opened[tune_stream]}
    for spec in specs:
        try:
            s = datasources.open_stream(spec, max_frames=n)
        except datasources.StreamError as e:
            raise ConfigError(f"config.transfer_streams: {e}") from e
        out.setdefault(s.info.name, s)
    return out


def run_from_config(ws: Workspace, cfg: Any) -> dict[str, Any]:
    """:func:`accuracy` with every argument taken from a config (:mod:`experiments.config`).

    Raises:
      ConfigError: ``cfg.tune_stream`` is not one of the workspace's streams (``''``: no
        tuning), or a transfer stream does not open.
    """
    from experiments import config as config_lib  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    streams = list(ws.streams)
    tune_stream = str(cfg.tune_stream).strip() or None  # '' turns threshold tuning off
    if tune_stream is not None and tune_stream not in streams:
        raise ConfigError(f"config.tune_stream={tune_stream!r}: not among the streams "
                          f"{sorted(streams)}; name one of them, or '' for no tuning")
    return accuracy(
        ws, list(ws.models), streams, predictor_spec("secnn", cfg.silence, cfg.decay),
        config_lib.floats(cfg.taus, "taus"), tune_stream=tune_stream,
        calibration_frames=int(cfg.calibration_frames), floor=float(cfg.agreement_floor),
        evals=int(cfg.tune_evals), gpu=0, scheme=cfg.tune_scheme, baseline=cfg.tune_baseline,
        labels=load_labels(cfg.labels) if cfg.labels else None,
        methods=config_lib.names(cfg.tune_methods, "tune_methods"),
        transfer_streams=transfer_streams_from_config(cfg, tune_stream, ws.streams),
        transfer_frames=config_lib.transfer_frames(cfg),
        transfer_window=int(cfg.transfer_window))


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/accuracy", _FIELDS["accuracy"])
