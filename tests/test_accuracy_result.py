"""The accuracy study's typed result on :mod:`experiments.records`: built from the study's
dicts, written in layout version 2 (what version 1 flattened is nested), read back equal from
its JSON text, and a version-1 file refused by name (no study is run: hand-built dicts in the
shapes the sweep, the tuner, the held-out evaluation and the transfer return)."""

from __future__ import annotations

import json

import pytest

from experiments.accuracy import render
from experiments.accuracy.result import AccuracyResult, MetricInfo, SpeedTarget
from experiments.studyresult import StaleResultError
from secnn_jax.fileio import dumps_json


def _scores(score: float, error: bool = True) -> dict:
    out = {"metric": "top1", "top1_agreement": score, "top5_overlap": 0.9, "score": score,
           "score_min": score - 0.25}
    return {**out, "logit_error": 0.01, "logit_error_max": 0.02} if error else out


def _sweep_row(tau: float, labels: bool) -> dict:
    row = {"model": "m", "stream": "s", "tau": tau, "frames": 4, **_scores(1.0 - tau),
           "mispredicted": tau / 2, "speedup": 2.0 + tau, "speedup_by_gpu": {"h100": 2.0 + tau}}
    if labels:
        row.update(label_top1=0.5, label_top1_exact=0.75, labelled_frames=4)
    return row


def _tuned() -> dict:
    window = {"model": "m", "method": "mean", "stream": "c", "start": 0, "end": 2,
              "frames": 2, **_scores(0.96, error=False), "speedup": 1.5, "mispredicted": 0.1}
    stream = {"stream": "c", "calibration_stream": False, "start": 0, "frames": 2,
              "windows": 1, "score": 0.96, "worst_window": 0.96, "speedup": 1.5,
              "exact_speedup": 1.2, "mispredicted": 0.1, "exact_mispredicted": 0.05,
              "exact_on": None, "floor_met": True, "windows_met": True}
    return {"model": "m", "stream": "s", "predictor": "secnn", "floor": 0.95, "metric": "top1",
            "method": "mean", "windows_used": 1, "margin": 0.0, "calibration_frames": 2,
            "tau": {"a": 0.1}, "alpha": {"a": 1.0}, "scale": {"a": 0.1}, "agreement": 0.97,
            "criterion": 0.97, "window_scores": [0.97], "speedup": 2.5, "mispredicted": 0.2,
            "searched": {"agreement": 0.98, "speedup": 2.6, "criterion": 0.98},
            "history": [{"step": 0, "note": "start", "agreement": 0.98, "criterion": 0.98,
                         "speedup": 2.6, "feasible": True, "alpha_min": 1.0,
                         "alpha_max": 1.0}],
            "objective": {"gpu": 0, "scheme": "secnn_hw", "baseline": "dense"},
            "evaluation": [{"stream": "s", "frames": 4, "heldout_frames": 2,
                            "calibration": _scores(0.97), "heldout": _scores(0.96),
                            "speedup": 2.4, "mispredicted": 0.2},
                           {"stream": "t", "frames": 4, "heldout_frames": 0}],
            "transfer": {"model": "m", "method": "mean", "metric": "top1", "floor": 0.95,
                         "window": 2, "rows": [window], "streams": [stream],
                         "floor_met": True, "windows_met": True}}


def _result() -> AccuracyResult:
    return AccuracyResult.from_study(
        predictor="secnn", sweep=[_sweep_row(0.0, True), _sweep_row(0.5, False)],
        tuned=[_tuned()], metrics={"m": MetricInfo("top1", "top1_agreement", "top-1")},
        methods=["mean"], claim_floor=0.95, gpus=["h100"],
        target=SpeedTarget(0, "secnn_hw", "dense"), gpu_name="h100")


def test_built_from_the_study_dicts() -> None:
    r = _result()
    row = r.sweep[0]
    assert (row.score, row.metric, row.labels.top1, row.labels.frames) == (1.0, "top1", 0.5, 4)
    assert row.scores.fields == {"top1_agreement": 1.0, "top5_overlap": 0.9}
    assert (row.scores.error.mean, row.scores.error.max) == (0.01, 0.02)
    assert r.sweep[1].labels is None
    t = r.tuned[0]
    assert (t.score, t.history[0].score, t.target.scheme) == (0.97, 0.98, "secnn_hw")
    assert t.evaluation[0].heldout.score == 0.96 and t.evaluation[1].heldout is None
    assert t.transfer.rows[0].score == 0.96 and t.transfer.rows[0].scores.error is None


def test_round_trip_through_sorted_json_text() -> None:
    r = _result()
    text = dumps_json(r.to_json())
    back = AccuracyResult.from_json(json.loads(text), source="accuracy.json")
    assert back == r and dumps_json(back.to_json()) == text
    assert render.section(back) == render.section(r)
    assert render.claims(back) == render.claims(r)


def test_layout_version_2() -> None:
    data = json.loads(dumps_json(_result().to_json()))
    assert (data["study"], data["version"]) == ("accuracy", 2)
    assert data["sweep"][0] == {
        "model": "m", "stream": "s", "tau": 0.0, "frames": 4, "mispredicted": 0.0,
        "speedup": 2.0, "speedup_by_gpu": {"h100": 2.0},
        "scores": {"metric": "top1", "score": 1.0, "score_min": 0.75,
                   "fields": {"top1_agreement": 1.0, "top5_overlap": 0.9},
                   "error": {"mean": 0.01, "max": 0.02}},
        "labels": {"top1": 0.5, "top1_exact": 0.75, "frames": 4}}
    assert "labels" not in data["sweep"][1]
    assert (data["claim_floor"], data["gpu_name"]) == (0.95, "h100")
    assert data["target"] == {"gpu": 0, "scheme": "secnn_hw", "baseline": "dense"}
    t = data["tuned"][0]
    assert (t["score"], t["history"][0]["score"]) == (0.97, 0.98)
    assert t["evaluation"][1] == {"stream": "t", "frames": 4, "heldout_frames": 0}
    assert "error" not in t["transfer"]["rows"][0]["scores"]
    # The summary is written for a reader, derived from the rows, and not read back.
    assert [s["kind"] for s in data["summary"]] == ["tau0", "heldout", "transfer"]
    data["summary"] = []
    assert AccuracyResult.from_json(data) == _result()


def test_version_1_files_are_refused_by_name() -> None:
    data = json.loads(dumps_json(_result().to_json()))
    with pytest.raises(StaleResultError, match="accuracy.json: accuracy result of layout "
                                               "version 1; this code reads version 2"):
        AccuracyResult.from_json({**data, "version": 1}, source="accuracy.json")
    # A version-1 row under a version-2 envelope is another layout, never read in part.
    flat = {**data, "sweep": [_sweep_row(0.0, False)]}
    with pytest.raises(StaleResultError, match="accuracy result of another layout"):
        AccuracyResult.from_json(flat)
