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

Modules: :mod:`~experiments.accuracy.objective` (the claim and the tuner's
:class:`Objective`), :mod:`~experiments.accuracy.scoring` (how a cell is scored; ``frames_of``),
:mod:`~experiments.accuracy.sweep`, :mod:`~experiments.accuracy.tuner` (the search over
``evaluate(alpha) -> Evaluation`` with an explicit budget, and :func:`tune`),
:mod:`~experiments.accuracy.heldout` (held-out evaluation, :func:`transfer`),
:mod:`~experiments.accuracy.labels`, :mod:`~experiments.accuracy.study` (:func:`accuracy`,
:func:`run_from_config`), :mod:`~experiments.accuracy.result` (:class:`AccuracyResult`) and
:mod:`~experiments.accuracy.render` (its report :func:`claims`, :func:`section` and
:func:`notes`). The dense-map figure panels are :func:`experiments.figures.dense_map_panels`.
Command line::

    python -m experiments.accuracy --out_dir=runs/accuracy --config.taus=0,0.1,0.2 \\
        --config.tune_methods='mean,worst_window(windows=4,backoff=0.5)'
"""

from __future__ import annotations

from typing import Any

from experiments.accuracy.heldout import evaluation, transfer, transfer_workspace
from experiments.accuracy.labels import load_labels
from experiments.accuracy.objective import CLAIM_AGREEMENT, Objective
from experiments.accuracy.render import claims, metric_label, notes, section
from experiments.accuracy.result import AccuracyResult
from experiments.accuracy.scoring import agreement, evaluate, frames_of
from experiments.accuracy.study import (
    accuracy,
    effective_calibration,
    record_effective,
    run_from_config,
    transfer_streams_from_config,
)
from experiments.accuracy.sweep import sweep
from experiments.accuracy.tuner import Evaluation, tune
from experiments.tuning import TuneMethod, tune_method

__all__ = [
    "CLAIM_AGREEMENT",
    "AccuracyResult",
    "Evaluation",
    "Objective",
    "TuneMethod",
    "accuracy",
    "agreement",
    "claims",
    "dense_map_panels",
    "effective_calibration",
    "evaluate",
    "evaluation",
    "frames_of",
    "load_labels",
    "metric_label",
    "notes",
    "record_effective",
    "run_from_config",
    "section",
    "sweep",
    "transfer",
    "transfer_streams_from_config",
    "transfer_workspace",
    "tune",
    "tune_method",
]


def __getattr__(name: str) -> Any:
    # dense_map_panels lives in experiments.figures (matplotlib): imported on first use only.
    if name == "dense_map_panels":
        from experiments.figures import dense_map_panels  # noqa: PLC0415

        return dense_map_panels
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
