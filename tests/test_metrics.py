"""The task metrics (``experiments.metrics``) on hand-computed arrays and an independent loop."""

from __future__ import annotations

import numpy as np
import pytest

import models
from experiments import metrics


def _loop_f1_iou(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """F1 and IoU of two flat boolean maps, counted pixel by pixel in plain python."""
    tp = fp = fn = 0
    for p, t in zip(pred.ravel().tolist(), true.ravel().tolist(), strict=True):
        tp += p and t
        fp += p and not t
        fn += t and not p
    if tp + fp + fn == 0:
        return 1.0, 1.0
    return 2 * tp / (2 * tp + fp + fn), tp / (tp + fp + fn)


def test_declared_metrics() -> None:
    assert models.get_spec("hed_vgg16").metric == "edge_f1"
    assert models.get_spec("craft_vgg16_bn").metric == "region_f1"
    for name in ("efficientnet_lite0", "resnet50", "alexnet"):
        assert models.get_spec(name).metric == "top1"
    for name in models.available():
        assert models.get_spec(name).metric in metrics.METRICS
    assert metrics.model_metric("hed_vgg16") == "edge_f1"
    assert metrics.model_metric("no_such_module_xyz:factory") == "top1"
    with pytest.raises(ValueError, match="unknown metric 'bogus'"):
        metrics.get_metric("bogus")


def test_top1_hand_computed() -> None:
    exact = np.array([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                      [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    # frame 0: same arg-max (5), top-5 {5,4,3,2,1} vs {5,4,3,2,0}: 4 shared
    # frame 1: arg-max 1 instead of 0, top-5 sets identical
    outs = np.array([[1.0, 0.0, 2.0, 3.0, 4.0, 5.0],
                     [4.0, 5.0, 3.0, 2.0, 1.0, 0.0]])
    r = metrics.top1(outs, exact)
    assert r["top1_agreement"] == 0.5 == r["score"]
    assert r["top5_overlap"] == pytest.approx((4 / 5 + 1) / 2)
    assert r["score_min"] == 0.0 and r["metric"] == "top1"
    assert metrics.top1(exact, exact)["score"] == 1.0


def test_edge_f1_hand_computed() -> None:
    exact = np.array([[0.9, 0.8, 0.1, 0.2]])        # on: 0, 1
    outs = np.array([[0.6, 0.4, 0.7, 0.1]])         # on: 0, 2 -> TP 1, FP 1, FN 1
    r = metrics.edge_f1(outs, exact)
    assert r["edge_f1"] == pytest.approx(2 / 4) and r["score"] == r["edge_f1"]
    assert r["edge_mae"] == pytest.approx(np.mean([0.3, 0.4, 0.6, 0.1]))
    assert r["edge_on"] == 0.5                       # half the exact map is on
    # identical maps: 1; disjoint maps: 0
    assert metrics.edge_f1(exact, exact)["score"] == 1.0
    assert metrics.edge_f1(1 - exact, exact)["score"] == 0.0
    # a map shaped [T, H, W, 1] is the same as flattened
    four = exact.reshape(1, 2, 2, 1)
    assert metrics.edge_f1(outs.reshape(1, 2, 2, 1), four) == r
    # exactly 0.5 is off (strictly above the threshold is on)
    assert metrics.edge_f1(np.array([[0.5, 0.9]]), np.array([[0.9, 0.9]]))["edge_f1"] == \
        pytest.approx(2 / 3)


def test_edge_f1_logits_and_probability_check() -> None:
    logits = np.array([[3.0, -2.0, 0.5, -0.1]])
    probs = 1 / (1 + np.exp(-logits))
    exact = np.array([[0.9, 0.1, 0.2, 0.7]])
    assert metrics.edge_f1(logits, np.log(exact / (1 - exact)), from_logits=True) == \
        pytest.approx(metrics.edge_f1(probs, exact))
    with pytest.raises(ValueError, match="from_logits=True"):
        metrics.edge_f1(logits, exact)


def test_empty_maps() -> None:
    zeros = np.zeros((2, 3, 3, 1))
    some = zeros.copy()
    some[1, 0, 0, 0] = 0.9
    # both empty: 1.0 (documented convention); one empty: 0.0
    assert metrics.edge_f1(zeros, zeros)["score"] == 1.0
    assert metrics.edge_f1(zeros, zeros)["edge_on"] == 0.0   # nothing to agree on
    r = metrics.edge_f1(zeros, some)
    assert r["score"] == 0.5 and r["score_min"] == 0.0
    f1, iou = metrics.binary_f1_iou(np.zeros((1, 4), bool), np.zeros((1, 4), bool))
    assert f1.tolist() == [1.0] and iou.tolist() == [1.0]


def test_region_f1_uses_channel_0_at_0_4() -> None:
    # [T=1, H=2, W=2, 2]: channel 0 region, channel 1 affinity
    exact = np.zeros((1, 2, 2, 2))
    exact[0, :, :, 0] = [[0.5, 0.3], [0.45, 0.1]]    # on: (0,0), (1,0)
    exact[0, :, :, 1] = 0.9                          # the affinity channel must be ignored
    outs = exact.copy()
    outs[0, :, :, 0] = [[0.41, 0.41], [0.2, 0.0]]    # on: (0,0), (0,1) -> TP 1, FP 1, FN 1
    outs[0, :, :, 1] = 0.0
    r = metrics.region_f1(outs, exact)
    assert r["region_f1"] == pytest.approx(0.5) and r["region_iou"] == pytest.approx(1 / 3)
    assert r["region_on"] == 0.5
    assert metrics.region_f1(outs.reshape(1, -1), exact.reshape(1, -1)) == r
    assert metrics.region_f1(exact, exact)["score"] == 1.0
    disjoint = exact.copy()
    disjoint[0, :, :, 0] = 0.9 - exact[0, :, :, 0] * 2   # on exactly where exact is off
    assert metrics.region_f1(disjoint, exact)["score"] == 0.0
    with pytest.raises(ValueError, match="multiple of 2"):
        metrics.region_f1(np.zeros((1, 3)), np.zeros((1, 3)))


def _random_maps() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    exact = rng.random((6, 7, 5, 2))
    outs = np.clip(exact + rng.normal(0, 0.15, exact.shape), 0, 1)
    outs[3] = 0.0                                    # one frame: SE-CNN finds nothing
    return outs, exact


def test_against_independent_loop() -> None:
    outs, exact = _random_maps()
    r = metrics.region_f1(outs, exact)
    e = metrics.edge_f1(outs[..., :1], exact[..., :1])
    loops = [_loop_f1_iou(outs[t, ..., 0] > 0.4, exact[t, ..., 0] > 0.4) for t in range(6)]
    assert r["region_f1"] == pytest.approx(np.mean([f for f, _ in loops]), abs=1e-12)
    assert r["region_iou"] == pytest.approx(np.mean([i for _, i in loops]), abs=1e-12)
    loops = [_loop_f1_iou(outs[t, ..., 0] > 0.5, exact[t, ..., 0] > 0.5) for t in range(6)]
    assert e["edge_f1"] == pytest.approx(np.mean([f for f, _ in loops]), abs=1e-12)
    assert 0.0 < r["score"] < 1.0 and r["score_min"] == 0.0


def test_against_sklearn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    outs, exact = _random_maps()
    for t in range(6):
        p, q = (outs[t, ..., 0] > 0.4).ravel(), (exact[t, ..., 0] > 0.4).ravel()
        f1, iou = metrics.binary_f1_iou(p[None], q[None])
        assert f1[0] == pytest.approx(sk.f1_score(q, p, zero_division=1.0))
        assert iou[0] == pytest.approx(sk.jaccard_score(q, p, zero_division=1.0))


def test_summarize_windows_are_frame_means() -> None:
    exact = np.eye(4)
    outs = np.eye(4)[[0, 2, 2, 3]]                   # frame 1 disagrees
    scores = metrics.frame_scores("top1", outs, exact)
    assert scores["top1_agreement"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert metrics.summarize("top1", scores, slice(0, 2))["score"] == 0.5
    assert metrics.summarize("top1", scores, slice(2, 4))["score"] == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.top1(outs[:3], exact)
