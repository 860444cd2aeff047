"""Issue 23's command-line findings: every flag and input checked before any model loads or any
study runs, one-line errors for a user's mistakes, the peers and energy commands, one-frame runs.

Runs use the tiny CNN of ``test_experiments_studies`` (``--models=module:factory``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--models=test_experiments_studies:tiny_model", "--streams=bikes", "--frames=2",
        "--config.chunk_size=2", "--config.gpus=h100"]


def _run(module: str, out: Path, *extra: str, timeout: int = 180
         ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO),
                                         env.get("PYTHONPATH", "")])
    env.setdefault("JAX_PLATFORMS", "cpu")
    return subprocess.run([sys.executable, "-m", f"experiments.{module}", f"--out_dir={out}",
                           *extra], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _error_lines(stderr: str) -> list[str]:
    """The lines a user reads (absl's log lines, prefixed ``E1205 ...``, aside)."""
    return [ln for ln in stderr.splitlines() if ln.startswith("error: ")]


@pytest.mark.parametrize("module,flag,message", [
    ("reproduce", "--config.tune_stream=nosuch",
     "error: ConfigError: config.tune_stream='nosuch': not among the streams ['bikes']"),
    ("reproduce", "--config.transfer_streams=nosuchclip",
     "error: ConfigError: config.transfer_streams: unknown stream 'nosuchclip'"),
    ("sparsity", "--models=test_input_validation:_raises",
     "error: ConfigError: model 'test_input_validation:_raises': the factory raised "
     "RuntimeError: weights not found at /data/w.npz"),
])
def test_bad_flags_are_refused_before_any_work(tmp_path: Path, module: str, flag: str,
                                               message: str) -> None:
    out = tmp_path / "out"
    r = _run(module, out, *TINY, flag, timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert any(message in ln for ln in r.stderr.splitlines()), r.stderr[-2000:]
    assert not out.exists()  # nothing written: no cells, results or figures


def test_empty_tune_stream_turns_tuning_off(tmp_path: Path) -> None:
    from experiments import accuracy, cli, config

    cfg = config.get_config()
    cfg.tune_stream = "nosuch"
    with pytest.raises(config.ConfigError, match="tune_stream='nosuch'"):
        cli.check_accuracy_inputs(cfg, {"bikes": None})
    cfg.tune_stream, cfg.transfer_streams = "", "nosuchclip"
    cli.check_accuracy_inputs(cfg, {"bikes": None})  # no tuning: nothing to transfer

    class _WS:
        streams = {"bikes": None}

    cfg.tune_stream = "photos"
    with pytest.raises(config.ConfigError, match="tune_stream='photos'"):  # library callers
        accuracy.run_from_config(_WS(), cfg)


@pytest.mark.parametrize("module,flags", [
    ("peers", ["--out_dir", "--models", "--streams", "--frames", "--overwrite",
               "--config.peer_taus", "--config.peer_frames", "--config.agreement_floor",
               "--config.silence", "--config.gpus", "--config.launch"]),
    ("energy", ["--out_dir", "--models", "--streams", "--frames", "--overwrite",
                "--config.gpus", "--config.launch", "--config.fusion", "--config.precision"]),
])
def test_peers_and_energy_help_explains_their_flags(tmp_path: Path, module: str,
                                                    flags: list[str]) -> None:
    r = _run(module, tmp_path / "out", "--help", timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    for f in flags:
        assert f in r.stdout, f


def test_peers_command_prints_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _run("peers", out, *TINY, "--config.peer_frames=2", "--config.peer_taus=0")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results" / "peers.json").read_text())
    assert res["study"] == "peers" and res["taus"] == [0.0]
    methods = {p["method"] for p in res["points"]}
    assert {"secnn_hw", "deltacnn", "cbinfer"} <= methods
    assert (out / "figures" / "peers.png").stat().st_size > 0
    assert "| model | stream | hardware | method | tau | speedup over dense |" in r.stdout
    assert r.stdout.count("| test_experiments_studies:tiny_model | bikes |") >= len(methods)


def test_energy_command_prints_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _run("energy", out, *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    en = json.loads((out / "results" / "energy.json").read_text())
    assert en["study"] == "energy" and en["area"][0]["gpu"] == "h100"
    assert {v["placement"] for v in en["verdicts"]} == {"on_chip", "off_chip"}
    assert (out / "results" / "speedup.json").exists()
    assert "Energy per frame (uJ):" in r.stdout and "| on_chip |" in r.stdout


def test_one_frame_run_schedules_frame_0(tmp_path: Path) -> None:
    # --frames=1 / --config.model_frames=NAME=1 crashed in reproduce's speedup step after
    # writing speedup.json: the schedule replayed frame 1. Decision: it works, on frame 0.
    import types

    import numpy as np

    from experiments import reproduce, runs
    from secnn_jax import timing
    from secnn_jax.geometry import LayerGeom

    layers = [LayerGeom.conv("stem", n=1, h=8, cin=3, cout=8, k=3),
              LayerGeom.dense("fc", n=1, fin=8 * 8 * 8, fout=4)]
    rng = np.random.default_rng(0)
    one = {g.name: rng.choice(4, size=(1, *g.in_nhwc)).astype(np.uint8) for g in layers}
    ws = types.SimpleNamespace(timer=types.SimpleNamespace(
        gpus=("h100",), precision="fp32", fusion="none", config=timing.SchemeConfig()))
    rd = runs.RunDir(tmp_path / "out", {"frames": 1})
    reproduce._schedule(rd, "m", layers, {"zero": one, "predictor": one}, (), ws, "persistent")
    trace = json.loads((rd.root / "figures" / "schedule_m.trace.json").read_text())
    assert trace["traceEvents"] and (rd.root / "figures" / "schedule_m.png").exists()


LABEL_ERRORS = [  # (file text, the error after "config.labels: PATH")
    (None, ": no such file"),
    (b"\xff\xfe", ": unreadable (UnicodeDecodeError"),
    ("", ": empty; expected the header stream,frame,label"),
    ("frame,label\n0,3\n", " line 1: header 'frame,label' lacks stream"),
    ("stream,frame,label\nbikes,0,3\n\nbikes,1\n", " line 4: no label"),
    ("stream,frame,label\nbikes,zero,3\n", " line 2: frame 'zero' and label '3' must be"),
    ("stream,frame,label\nbikes,-1,3\n", " line 2: frame -1 must be >= 0"),
    ("stream,frame,label\nbikes,0,1000\n", " line 2: label 1000 is not a class index in"),
    ("stream,frame,label\nbikes,0,3\nbikes,0,4\n", " line 3: frame 0 of stream 'bikes' is "
     "labelled twice"),
    ("stream,frame,label\nbikes,0,3\nnosuch,1,4\n", " line 3: stream 'nosuch' is not among "
     "this run's streams ['bikes']"),
]


@pytest.mark.parametrize("text,error", LABEL_ERRORS)
def test_labels_file_is_checked_row_by_row(tmp_path: Path, text: str | bytes | None,
                                           error: str) -> None:
    from experiments import config

    path = tmp_path / "labels.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(config.ConfigError) as e:
        config.read_labels(path, streams=["bikes"])
    assert str(e.value).startswith(f"config.labels: {path}{error}"), str(e.value)
    assert "\n" not in str(e.value)


def test_labels_accepted_in_any_column_order(tmp_path: Path) -> None:
    from experiments import config

    path = tmp_path / "labels.csv"
    path.write_text("label,frame,stream,note\n7,0,bikes,a bike\n\n9, 2 ,photos,\n")
    assert config.read_labels(path) == {("bikes", 0): 7, ("photos", 2): 9}


def test_bad_labels_row_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    labels, out = tmp_path / "labels.csv", tmp_path / "out"
    labels.write_text("stream,frame,label\nbikes,0,3\nphotos,1,4\n")
    # The factory would fail on load: the labels must be refused first.
    r = _run("accuracy", out, *TINY, "--models=test_input_validation:_raises",
             f"--config.labels={labels}", timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    assert _error_lines(r.stderr) == [
        f"error: ConfigError: config.labels: {labels} line 3: stream 'photos' is not among "
        "this run's streams ['bikes']"]
    assert not out.exists()
