"""GPU configurations, calibration fit, validation report and the validate_timing CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from secnn_jax.timing import calibration as C
from secnn_jax.timing import gpus
from secnn_jax.timing import params as S

REPO = Path(__file__).resolve().parents[1]

# Rows of shared/measurements/h100_cudnn_conv.csv, columns reordered and an extra one added.
SAMPLE = """\
mode,net,name,cin,cout,k,stride,pad,groups,H,Ho,B,macs,us_median,us_min,comment
fp32_strict,vgg16,conv1,64,64,3,1,1,1,224,224,1,1849688064,148.032,144.576,x
fp32_strict,resnet50,l1.0.c1,64,64,1,1,0,1,56,56,1,12845056,26.656,23.872,x
fp32_strict,resnet50,l4.1.c2,512,512,3,1,1,1,7,7,1,115605504,123.424,122.272,x
fp32_strict,vgg16,conv5,256,256,3,1,1,1,56,56,16,29595009024,1385.856,1377.824,x
tf32,vgg16,conv7,512,512,3,1,1,1,28,28,16,29595009024,223.936,215.328,x
tf32,resnet50,l2.0.c2,128,128,3,2,1,1,56,28,1,115605504,61.152,58.816,x
fp16,resnet50,conv1,3,64,7,2,3,1,224,112,16,1888223232,119.072,115.904,x
fp16,vgg16,conv3,128,128,3,1,1,1,112,112,16,29595009024,212.608,208.48,x
"""


def shared_csv() -> Path:
    """The packaged H100 kernel measurements (always present: they ship in the package)."""
    return C.default_measurements()


# --- GPU configurations ---------------------------------------------------------------------

def test_every_gpu_number_has_a_source() -> None:
    assert set(gpus.GPUS) == {"gtx1080ti", "titanx", "titanv", "v100", "a100", "h100", "h200"}
    for g in gpus.GPUS.values():
        for f in dataclasses.fields(g):
            if f.name not in ("key", "name", "arch", "sources"):
                assert g.sources.get(f.name), (g.key, f.name)
        assert g.max_warps * 32 == g.max_threads
        assert json.dumps(g.as_dict())


def test_h100_uses_the_measured_ceilings() -> None:
    """The H100 configuration is built from the packaged measurement file (the source), not
    from numbers copied into the test: SMs, clock, bandwidth, launch costs and the matmul
    ceilings each equal the file's value."""
    data = json.loads((C.MEASUREMENTS_DIR / "h100_ceilings.json").read_text())
    h = gpus.H100
    assert h.sms == data["device"]["sms"]
    assert h.clock_mhz == pytest.approx(data["max_sm_clock_mhz"])
    assert h.dram_gbps == pytest.approx(1000 * data["copy_bandwidth_TBps_read_plus_write"])
    assert h.launch_us == pytest.approx(data["back_to_back_launch_us_per_kernel"])
    assert h.event_overhead_us == pytest.approx(data["tiny_kernel_cuda_event_us"])
    # The measured matmul throughput is the ceiling times the peak (rounded to 4 places).
    for precision, key in (("fp32", "matmul_8192_fp32_no_tf32_TFLOPs"),
                           ("tf32", "matmul_8192_tf32_TFLOPs"),
                           ("fp16", "matmul_8192_bf16_TFLOPs")):
        measured = h.peak_tflops(precision) * h.ceiling_frac[precision]
        assert measured == pytest.approx(data[key], rel=1e-3), precision
    # The frozen copy in gpus.py equals the packaged measurement file.
    for k, v in gpus.H100_MEASURED.items():
        got = data["device"][k] if k in ("sms", "l2") else data[k]
        assert got == pytest.approx(v), k


def test_get_gpu() -> None:
    assert gpus.get_gpu("H100").key == "h100" and gpus.get_gpu("1080ti").key == "gtx1080ti"
    assert gpus.get_gpu(gpus.A100) is gpus.A100
    with pytest.raises(ValueError, match="unknown GPU 'rtx9090'.*h100"):
        gpus.get_gpu("rtx9090")
    assert gpus.canonical_precision("fp32_strict") == "fp32"
    assert not gpus.GTX_1080_TI.uses_tensor_cores("fp16")
    assert gpus.V100.dense_fma_per_clk("tf32") == gpus.V100.fp32_lanes  # no TF32 on Volta


# --- calibration ----------------------------------------------------------------------------

def _sample(tmp_path: Path) -> Path:
    p = tmp_path / "m.csv"
    p.write_text(SAMPLE)
    return p


def test_read_measurements_errors(tmp_path: Path) -> None:
    cols, ms = C.read_measurements(_sample(tmp_path))
    assert len(ms) == 8 and cols[-1] == "comment" and ms[0].precision == "fp32"
    assert ms[3].batch == 16 and ms[6].geom.ho == 112
    lines = SAMPLE.splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(line.replace(",us_median", ",us_med") for line in lines[:2]))
    with pytest.raises(C.MeasurementError, match="'us_median'"):
        C.read_measurements(bad)
    bad.write_text("\n".join([lines[0], lines[1].replace("fp32_strict", "int4")]))
    with pytest.raises(C.MeasurementError, match=":2: column 'mode'.*int4"):
        C.read_measurements(bad)
    bad.write_text("\n".join([lines[0], lines[1].replace(",224,224,", ",224,223,")]))
    with pytest.raises(C.MeasurementError, match="'Ho'"):
        C.read_measurements(bad)
    bad.write_text("\n".join([lines[0], lines[1].replace(",64,64,3,", ",64,sixty,3,")]))
    with pytest.raises(C.MeasurementError, match="'cout'.*sixty"):
        C.read_measurements(bad)


def test_fit_recovers_known_parameters(tmp_path: Path) -> None:
    """Synthetic measurements made by the model itself are fitted back to ~0% error."""
    _, ms = C.read_measurements(_sample(tmp_path))
    truth = S.ModelParams(efficiency={"fp32": 0.7, "tf32": 0.6, "fp16": 0.5},
                          latency_cycles=500.0, l2_bandwidth_factor=1.5, extra_kernel_us=4.0)
    pred = C.predict_us(ms, "h100", truth)
    synth = [dataclasses.replace(m, us_median=float(p)) for m, p in zip(ms, pred, strict=True)]
    fitted = C.fit(synth, "h100", restarts=4)
    assert C.mape(C.predict_us(synth, "h100", fitted), pred) < 1.0


def test_validation_report_tables(tmp_path: Path) -> None:
    rep = C.validate(_sample(tmp_path), "h100", restarts=1)
    s = rep.summary()
    assert s["rows"] == 8 and set(rep.folds) == {"resnet50", "vgg16"}
    assert {(g["precision"], g["batch"]) for g in s["groups"]} == {
        ("fp32", 1), ("fp32", 16), ("tf32", 1), ("tf32", 16), ("fp16", 16)}
    md = rep.markdown()
    for heading in ("Per-layer MAPE by precision and batch", "Fitted parameters",
                    "| fp32 | 1 |", "without resnet50", "Depthwise"):
        assert heading in md
    # Cross-validated predictions of a net come from the fold that did not see it.
    nets = np.array([m.net for m in rep.measurements])
    fold_pred = C.predict_us(rep.measurements, "h100", rep.folds["vgg16"])
    np.testing.assert_allclose(rep.pred_cv[nets == "vgg16"], fold_pred[nets == "vgg16"])
    out = tmp_path / "p.json"
    C.write_outputs(rep, out, tmp_path / "V.md")
    assert json.loads(out.read_text())["provenance"]["rows"] == 8
    assert S.load_params(out).efficiency == rep.params.efficiency


def test_committed_calibration_matches_the_shared_measurements() -> None:
    """The shipped calibration is what fitting the shipped measurements gives: the fit and the
    leave-one-network-out cross-validation are recomputed (about a second), and their
    parameters and errors equal the committed file's, within 20% MAPE both."""
    path = shared_csv()
    doc = json.loads(S.PARAMS_PATH.read_text())
    assert doc["provenance"]["sha256"] == C._sha256_file(path)
    rep = C.validate(path, "h100")  # the committed file's generator, default restarts
    summary = rep.summary()
    assert summary["mape_fit"] == pytest.approx(doc["validation"]["mape_fit"], abs=0.01)
    assert summary["mape_cv"] == pytest.approx(doc["validation"]["mape_cv"], abs=0.01)
    assert summary["mape_fit"] <= 20.0 and summary["mape_cv"] <= 20.0
    shipped = S.load_params()
    # (within 0.1%: an optimiser's last digits may differ between numpy builds)
    assert dict(rep.params.efficiency) == pytest.approx(dict(shipped.efficiency), rel=1e-3)
    assert rep.params.latency_cycles == pytest.approx(shipped.latency_cycles, rel=1e-3)
    assert sorted(rep.folds) == sorted(doc["validation"]["folds"])
    for net, fold in rep.folds.items():
        stored = doc["validation"]["folds"][net]
        assert fold.latency_cycles == pytest.approx(stored["latency_cycles"], rel=1e-3), net
        assert dict(fold.efficiency) == pytest.approx(stored["efficiency"], rel=1e-3), net
    _, ms = C.read_measurements(path)
    got = C.mape(C.predict_us(ms, "h100", shipped), np.array([m.us_median for m in ms]))
    assert got == pytest.approx(summary["mape_fit"], abs=0.01)
    text = C.VALIDATION_PATH.read_text()
    assert f"**{summary['mape_fit']:.1f}%**" in text and f"**{summary['mape_cv']:.1f}%**" in text


# --- the CLI --------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.validate_timing", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_validate_timing_cli_end_to_end(tmp_path: Path) -> None:
    src = _sample(tmp_path)
    out = tmp_path / "out" / "pred.csv"
    r = _cli("--gpu=h100", f"--measurements={src}", f"--out={out}")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"MAPE (\d+(?:\.\d+)?)%", last)
    assert m, last
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(src, newline="") as f:
        orig = list(csv.DictReader(f))
    assert len(rows) == len(orig) == 8
    assert list(rows[0]) == [*orig[0], "pred_us"]
    for a, b in zip(rows, orig, strict=True):
        assert {k: a[k] for k in b} == b and float(a["pred_us"]) > 0
    meas = np.array([float(x["us_median"]) for x in rows])
    pred = np.array([float(x["pred_us"]) for x in rows])
    assert float(m.group(1)) == pytest.approx(C.mape(pred, meas), abs=0.01)


def test_validate_timing_cli_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(SAMPLE.replace(",stride,", ",strides,"))
    r = _cli(f"--measurements={bad}", f"--out={tmp_path / 'o.csv'}")
    assert r.returncode != 0 and "'stride'" in r.stderr
    assert not (tmp_path / "o.csv").exists()
    r = _cli("--gpu=rtx9090", f"--measurements={bad}", f"--out={tmp_path / 'o.csv'}")
    assert r.returncode != 0 and "--gpu" in r.stderr
    r = _cli(f"--measurements={tmp_path / 'missing.csv'}", f"--out={tmp_path / 'o.csv'}")
    assert r.returncode != 0 and "measurements" in r.stderr


def test_validate_timing_refuses_inf_and_binary_files(tmp_path: Path) -> None:
    bad = tmp_path / "inf.csv"
    bad.write_text(SAMPLE.replace("148.032", "inf", 1))  # us_median of the first row
    r = _cli(f"--measurements={bad}", f"--out={tmp_path / 'o.csv'}")
    assert r.returncode == 1 and "us_median" in r.stderr and "Traceback" not in r.stderr
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    r = _cli(f"--measurements={binary}", f"--out={tmp_path / 'o.csv'}")
    assert r.returncode == 1 and "not a" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.csv").exists()
