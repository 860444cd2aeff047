"""Task metrics: how close SE-CNN's output is to the exact model's, in the model's own terms.

Every zoo model declares its metric (``models.get_spec(name).metric``, see
:class:`models.spec.ModelSpec`); the accuracy study judges SE-CNN, and its tuner's floor, on that
metric's *primary score*, a number in ``[0, 1]`` with 1 meaning "the same output as the exact
model":

* ``top1`` (classifiers; logits ``[T, C]``): primary ``top1_agreement``, the fraction of frames
  whose arg-max class equals the exact model's; also ``top5_overlap``, the shared classes among
  the two top-5 sets over 5.
* ``edge_f1`` (HED; edge *probabilities* ``[T, H, W, 1]`` or flattened ``[T, H*W]``): primary
  ``edge_f1``, the F1 score of SE-CNN's edge map binarised at 0.5 against the exact model's
  binarised map, per frame, averaged over frames; also ``edge_mae``, the mean absolute
  difference of the probabilities, and ``edge_on``, the share of the exact map's pixels that
  are on (how much there is to agree on). ``hed_vgg16`` returns probabilities (``models/hed.py``);
  :func:`edge_f1` takes ``from_logits=True`` for its ``logits=True`` variant and refuses values
  outside ``[0, 1]`` otherwise.
* ``region_f1`` (CRAFT; raw scores ``[T, H', W', 2]`` or flattened): primary ``region_f1``, the
  F1 score of the region-score channel (channel 0) binarised at 0.4 (EasyOCR's ``low_text``)
  against the exact model's, per frame, averaged; also ``region_iou`` (Jaccard index) and
  ``region_on`` (share of the exact region map that is on: on footage without text it is ~0
  and the F1 is 1 by the empty-map convention below, so read the two together).

Conventions. A pixel is "on" when its value is strictly above the threshold. Per frame,
``F1 = 2 TP / (2 TP + FP + FN)`` and ``IoU = TP / (TP + FP + FN)``; when *both* maps are empty
(no pixel on in either) the frame scores 1.0 for both (SE-CNN agrees with the exact model that
there is nothing there), when only one is empty it scores 0.0. Stream-level scores are means
over frames, so every primary score is the mean of a per-frame score (:func:`frame_scores`) and
a window of frames is scored by averaging its frames (:func:`summarize`).

Pure numpy; nothing here runs a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from experiments.errors import ConfigError, MetricError

__all__ = [
    "METRICS",
    "Metric",
    "binary_f1_iou",
    "edge_f1",
    "evaluate",
    "frame_scores",
    "get_metric",
    "model_metric",
    "region_f1",
    "summarize",
    "top1",
]

FrameFn = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


def _frames2d(x: Any) -> np.ndarray:
    """``[T, ...]`` as float64 ``[T, D]``."""
    a = np.asarray(x, np.float64)
    if a.ndim < 2:
        raise MetricError(f"expected outputs of shape [T, ...] (T frames), got {a.shape}")
    return a.reshape(a.shape[0], -1)


def _check_pair(outputs: Any, exact: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = _frames2d(outputs), _frames2d(exact)
    if a.shape != b.shape:
        raise MetricError(f"SE-CNN outputs {np.shape(outputs)} and exact outputs "
                         f"{np.shape(exact)} differ in shape")
    return a, b


def binary_f1_iou(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame F1 and IoU of boolean maps ``pred`` vs ``true`` ``[T, ...]``.

    Both empty: 1.0 and 1.0; exactly one empty: 0.0 and 0.0 (see the module docstring).
    """
    p = np.asarray(pred, bool).reshape(np.shape(pred)[0], -1)
    t = np.asarray(true, bool).reshape(np.shape(true)[0], -1)
    if p.shape != t.shape:
        raise MetricError(f"maps {np.shape(pred)} and {np.shape(true)} differ in shape")
    tp = np.sum(p & t, axis=1, dtype=np.int64)
    fp = np.sum(p & ~t, axis=1, dtype=np.int64)
    fn = np.sum(~p & t, axis=1, dtype=np.int64)
    empty = (tp + fp + fn) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(empty, 1.0, 2 * tp / np.maximum(2 * tp + fp + fn, 1))
        iou = np.where(empty, 1.0, tp / np.maximum(tp + fp + fn, 1))
    return f1.astype(np.float64), iou.astype(np.float64)


def _top1_frames(outputs: Any, exact: Any) -> dict[str, np.ndarray]:
    a, b = _check_pair(outputs, exact)
    agree = (a.argmax(-1) == b.argmax(-1)).astype(np.float64)
    k = min(5, b.shape[-1])
    ta = np.argsort(-a, axis=-1, kind="stable")[:, :k]
    tb = np.argsort(-b, axis=-1, kind="stable")[:, :k]
    overlap = np.array([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)],
                       np.float64)
    return {"top1_agreement": agree, "top5_overlap": overlap}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _edge_frames(outputs: Any, exact: Any, threshold: float = 0.5,
                 from_logits: bool = False) -> dict[str, np.ndarray]:
    a, b = _check_pair(outputs, exact)
    if from_logits:
        a, b = _sigmoid(a), _sigmoid(b)
    else:
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise MetricError(f"edge_f1 expects probabilities in [0, 1], got values in "
                             f"[{lo:.3g}, {hi:.3g}]; pass from_logits=True for pre-sigmoid maps")
    f1, _ = binary_f1_iou(a > threshold, b > threshold)
    return {"edge_f1": f1, "edge_mae": np.abs(a - b).mean(axis=1),
            "edge_on": (b > threshold).mean(axis=1)}


def _region_frames(outputs: Any, exact: Any, threshold: float = 0.4, channels: int = 2,
                   channel: int = 0) -> dict[str, np.ndarray]:
    a, b = _check_pair(outputs, exact)
    if a.shape[1] % channels:
        raise MetricError(f"region_f1: {a.shape[1]} values per frame are not a multiple of "
                         f"{channels} channels")
    ra = a.reshape(a.shape[0], -1, channels)[..., channel]
    rb = b.reshape(b.shape[0], -1, channels)[..., channel]
    f1, iou = binary_f1_iou(ra > threshold, rb > threshold)
    return {"region_f1": f1, "region_iou": iou, "region_on": (rb > threshold).mean(axis=1)}


@dataclasses.dataclass(frozen=True)
class Metric:
    """A declared task metric.

    Attributes:
      name: the name models declare (``ModelSpec.metric``).
      primary: the key of the primary score (in ``[0, 1]``, 1 = same as the exact model).
      label: how tables and figures name the primary score.
      frames: ``f(outputs, exact) -> {key: float64 [T]}``, every field per frame.
      fields: ``(key, label)`` of every field, primary first (report columns).
    """

    name: str
    primary: str
    label: str
    frames: FrameFn = dataclasses.field(repr=False)
    fields: tuple[tuple[str, str], ...] = ()


#: The metrics by name.
METRICS: dict[str, Metric] = {
    "top1": Metric("top1", "top1_agreement", "top-1 agreement", _top1_frames,
                   (("top1_agreement", "top-1 agreement"), ("top5_overlap", "top-5 overlap"))),
    "edge_f1": Metric("edge_f1", "edge_f1", "edge-map F1 (binarised at 0.5)", _edge_frames,
                      (("edge_f1", "edge F1 @0.5"), ("edge_mae", "edge MAE"),
                       ("edge_on", "exact map on"))),
    "region_f1": Metric("region_f1", "region_f1", "region-score F1 (binarised at 0.4)",
                        _region_frames,
                        (("region_f1", "region F1 @0.4"), ("region_iou", "region IoU @0.4"),
                         ("region_on", "exact map on"))),
}


def get_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name`` (:class:`ConfigError` listing the known ones)."""
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def model_metric(model: str) -> str:
    """The metric a model declares: its zoo spec's ``metric``; for a user factory
    (``package.module:factory``) the factory's ``metric`` attribute; ``"top1"`` for a factory
    without one and for any other name (a model handed to a workspace under its own name)."""
    if ":" in model:
        import importlib  # noqa: PLC0415

        module, _, attr = model.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return "top1"
        return str(getattr(factory, "metric", "top1"))
    import models  # noqa: PLC0415

    if model not in models.available():
        return "top1"
    return models.get_spec(model).metric


def frame_scores(metric: str, outputs: Any, exact: Any) -> dict[str, np.ndarray]:
    """Every field of ``metric`` per frame (float64 ``[T]``) for outputs vs exact ``[T, ...]``."""
    return get_metric(metric).frames(outputs, exact)


def summarize(metric: str, scores: Mapping[str, np.ndarray],
              frames: slice | np.ndarray | None = None) -> dict[str, Any]:
    """Means over ``frames`` (default: all) of per-frame ``scores``.

    Returns every field's mean, ``score`` (the primary's mean), ``score_min`` (its worst frame)
    and ``metric`` (the name).
    """
    m = get_metric(metric)
    sel = slice(None) if frames is None else frames
    out: dict[str, Any] = {"metric": m.name}
    for key, v in scores.items():
        out[key] = float(np.mean(np.asarray(v)[sel]))
    prim = np.asarray(scores[m.primary])[sel]
    out["score"] = float(np.mean(prim))
    out["score_min"] = float(np.min(prim))
    return out


def evaluate(metric: str, outputs: Any, exact: Any) -> dict[str, Any]:
    """:func:`summarize` of :func:`frame_scores`: ``metric``'s fields, ``score``,
    ``score_min`` and ``metric`` for SE-CNN ``outputs`` vs ``exact`` ``[T, ...]``."""
    return summarize(metric, frame_scores(metric, outputs, exact))


def top1(outputs: Any, exact: Any) -> dict[str, Any]:
    """Top-1 agreement (primary, also as ``score``) and top-5 overlap of logits ``[T, C]``."""
    return evaluate("top1", outputs, exact)


def edge_f1(outputs: Any, exact: Any, *, threshold: float = 0.5,
            from_logits: bool = False) -> dict[str, Any]:
    """F1 of edge maps binarised at ``threshold`` (primary ``edge_f1``, also ``score``) and the
    MAE of the probabilities (``edge_mae``); ``from_logits``: apply a sigmoid first."""
    return summarize("edge_f1", _edge_frames(outputs, exact, threshold, from_logits))


def region_f1(outputs: Any, exact: Any, *, threshold: float = 0.4, channels: int = 2,
              channel: int = 0) -> dict[str, Any]:
    """F1 (primary ``region_f1``, also ``score``) and IoU (``region_iou``) of the region score
    (``channel`` of ``channels``, last axis) binarised at ``threshold``."""
    return summarize("region_f1", _region_frames(outputs, exact, threshold, channels, channel))
