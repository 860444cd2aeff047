"""Issue 22, item 3: a request is never silently changed.

A value that must be rounded is refused with the nearest valid value named; a value that must be
capped is applied with a warning and recorded in ``config.json`` under ``"effective"``;
``--frames`` caps every step's frames (the transfer evaluation included); the accuracy sweep
times every GPU of ``--config.gpus``. Runs use the tiny CNN of ``test_experiments_studies``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from experiments import accuracy, config, runs

REPO = Path(__file__).resolve().parents[1]
MODEL = "test_experiments_studies:tiny_model"
TINY = [f"--models={MODEL}", "--streams=bikes", "--frames=2", "--config.chunk_size=2",
        "--config.taus=0,0.1", "--config.tune_evals=2", "--config.tune_methods=mean",
        "--config.transfer_streams=carphone_pristine"]


def _run(module: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO),
                                         env.get("PYTHONPATH", "")])
    env.setdefault("JAX_PLATFORMS", "cpu")
    return subprocess.run([sys.executable, "-m", f"experiments.{module}", f"--out_dir={out}",
                           *extra], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("calib,chunk,nearest", [(4, 8, "8"), (12, 8, "8 or 16"),
                                                 (13, 8, "16"), (3, 2, "2 or 4")])
def test_calibration_frames_off_the_chunks_are_refused_naming_the_nearest(
        calib: int, chunk: int, nearest: str) -> None:
    cfg = config.get_config()
    cfg.calibration_frames, cfg.chunk_size = calib, chunk
    with pytest.raises(config.ConfigError) as e:
        config.validate(cfg)
    assert str(e.value) == (f"config.calibration_frames={calib}: the tuner calibrates on whole "
                            f"chunks of config.chunk_size={chunk} frames; nearest valid value: "
                            f"{nearest}")
    cfg.calibration_frames = int(nearest.split()[0])
    config.validate(cfg)  # the value named is accepted


def test_calibration_frames_refused_on_the_command_line_before_any_work(tmp_path: Path
                                                                        ) -> None:
    out = tmp_path / "out"
    r = _run("accuracy", out, *TINY, "--config.calibration_frames=3")
    assert r.returncode == 1, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert lines == ["error: ConfigError: config.calibration_frames=3: the tuner calibrates on "
                     "whole chunks of config.chunk_size=2 frames; nearest valid value: 2 or 4"]
    assert not out.exists()


def test_effective_values_follow_frames() -> None:
    cfg = config.get_config()
    assert config.effective(cfg) == {}  # the defaults keep every request
    assert config.transfer_frames(cfg) == 24 and config.peer_frames(cfg) == 16
    cfg.frames = 8
    assert config.effective(cfg) == {"transfer_frames": 8, "peer_frames": 8}
    assert config.transfer_frames(cfg) == 8 and config.peer_frames(cfg) == 8
    cfg.transfer_frames = 0  # 0 = frames: kept
    assert config.effective(cfg) == {"peer_frames": 8}


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``--frames=2`` with the default transfer_frames (24), peer_frames (16) and
    calibration_frames (16), timed on two GPUs."""
    out = tmp_path_factory.mktemp("capped") / "run"
    r = _run("accuracy", out, *TINY, "--config.gpus=h100,gtx1080ti")
    assert r.returncode == 0, r.stderr[-3000:]
    return {"out": out, "stderr": r.stderr,
            "config": json.loads((out / "config.json").read_text()),
            "acc": json.loads((out / "results" / "accuracy.json").read_text())}


def test_frames_caps_transfer_and_config_json_records_what_was_used(capped: dict[str, Any]
                                                                    ) -> None:
    cfg = capped["config"]
    assert cfg["frames"] == 2 and cfg["transfer_frames"] == 24  # what was asked for
    assert cfg["effective"] == {"transfer_frames": 2, "peer_frames": 2,
                                "calibration_frames": {MODEL: 2}}
    assert ("config.transfer_frames=24 capped to 2: config.frames=2 caps every step's frames "
            "(recorded in config.json as effective)") in capped["stderr"]
    assert (f"calibration_frames=16: {MODEL} calibrates on 2 of its 2 bikes frames (whole "
            "chunks of 2, none held out); recorded in config.json as effective"
            ) in capped["stderr"]
    (t,) = capped["acc"]["tuned"]
    assert t["calibration_frames"] == 2
    tr = t["transfer"]
    assert tr["rows"] and max(r["end"] for r in tr["rows"]) <= 2  # no step past --frames
    assert {p["stream"]: p["frames"] for p in tr["streams"]} == {"carphone_pristine": 2}
    # The record of what was used is not a change of request: the same flags resume.
    asked = {k: v for k, v in cfg.items() if k != "effective"}
    assert runs.check_config(capped["out"], asked) == "resume"


def test_sweep_times_every_gpu_asked_for(capped: dict[str, Any]) -> None:
    acc = capped["acc"]
    assert acc["gpus"] == ["h100", "gtx1080ti"]
    assert acc["gpu_name"] == "h100"
    for r in acc["sweep"]:
        by = r["speedup_by_gpu"]
        assert set(by) == {"h100", "gtx1080ti"} and all(v > 0 for v in by.values())
        assert by["h100"] == r["speedup"]  # the objective's GPU
    assert acc["sweep"][0]["speedup_by_gpu"]["h100"] != \
        acc["sweep"][0]["speedup_by_gpu"]["gtx1080ti"]
    md = "\n".join(accuracy.section(accuracy.AccuracyResult.from_json(acc)))
    assert "on h100 (the tuner's objective; the sweep also on gtx1080ti)" in md
    assert "| speedup | speedup on gtx1080ti |" in md
    assert (capped["out"] / "figures" / "accuracy.png").stat().st_size > 0
