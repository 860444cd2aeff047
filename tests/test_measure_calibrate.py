"""Calibrate to your GPU: ``measure_gpu`` (dry run on XLA:CPU), its CSV formats and resume, the
software SE-CNN kernels' exactness, calibration from a measurement directory (refusing a CPU
run; recovering known parameters from a synthetic set), GPU files used by ``replay``, and the
packaged calibration's guards (``--restarts`` >= 1, shipped files written only with ``--write``).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import calibrate_timing as CT
from experiments import gpu_measure as G
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import calibration as C
from secnn_jax.timing import e2e as E
from secnn_jax.timing import gpufile, replay
from secnn_jax.timing import params as P
from secnn_jax.timing import probes as PR
from secnn_jax.timing.gpus import get_gpu

REPO = Path(__file__).resolve().parents[1]


# --- the packaged calibration's guards (issue 23) ---------------------------------------------

def _shipped() -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in (P.PARAMS_PATH, C.VALIDATION_PATH)}


def test_calibrate_refuses_zero_restarts_and_leaves_shipped_files() -> None:
    before = _shipped()
    proc = subprocess.run([sys.executable, "-m", "experiments.calibrate_timing", "--restarts=0"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: CalibrationError: --restarts")
    assert _shipped() == before
    with pytest.raises(C.CalibrationError, match="restarts"):
        C.fit(C.read_measurements(C.default_measurements())[1][:4], restarts=0)


def test_calibrate_writes_shipped_files_only_with_write(tmp_path: Path) -> None:
    before = _shipped()
    CT.calibrate("h100", restarts=1)  # no --write, no --out: nothing written
    assert _shipped() == before
    CT.calibrate("h100", restarts=1, out=tmp_path / "p.json")
    assert _shipped() == before
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["provenance"]["rows"] == 204 and (tmp_path / "p.md").is_file()
    with pytest.raises(C.CalibrationError, match="unknown GPU"):
        CT.calibrate("h1000", restarts=1)


# --- measure_gpu: dry run, formats, resume ----------------------------------------------------

def _cfg(out: Path, **kw: object) -> G.MeasureConfig:
    base = {"out": out, "nets": ("efficientnet_lite0",), "sizes": {"efficientnet_lite0": 32},
            "batches": (1,), "modes": ("fp32_strict",), "repeats": 1, "warmup": 0,
            "dry_run": True, "densities": (0.1,), "sw_layers": 1, "concurrency_n": (1, 2),
            "limit": 3}
    base.update(kw)
    return G.MeasureConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("measure") / "dry"
    added = G.measure(_cfg(out), progress=False)
    assert added == {"ceilings": 1, "conv": 3, "ops": 3, "concurrency": 3, "secnn_sw": 1,
                     "e2e": 1}
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_dry_run_writes_the_documented_formats(dry_dir: Path) -> None:
    for section, cols in G.COLUMNS.items():
        with open(dry_dir / f"{section}.csv", newline="") as f:
            assert next(csv.reader(f)) == list(cols)
        assert {r["platform"] for r in _rows(dry_dir / f"{section}.csv")} == {"cpu-dry-run"}
    # The calibration's readers accept every file.
    _, ms = C.read_measurements(dry_dir / "conv.csv")
    assert [m.layout for m in ms] == ["NHWC"] * 3
    assert ms[0].geom.pad == ((0, 1), (0, 1)) and ms[0].geom.sh == 2  # SAME, asymmetric
    assert ms[1].layer_class == "depthwise"
    for kind in ("ops", "concurrency", "secnn_sw"):
        assert PR.read_probe(dry_dir / f"{kind}.csv", kind)
    (row,) = E.read_e2e(dry_dir / "e2e.csv")[1]
    assert (row.net, row.size, row.layout, row.batch) == ("efficientnet_lite0", 32, "NHWC", 1)
    conc = _rows(dry_dir / "concurrency.csv")
    assert [(r["n"], r["arrangement"]) for r in conc] == [("1", "independent"),
                                                          ("1", "chained"), ("2", "independent")]
    ceil = json.loads((dry_dir / "ceilings.json").read_text())
    assert ceil["gpu_measurement"] is False and ceil["dry_run"] is True
    for k in ("copy_bandwidth_TBps_read_plus_write", "matmul_fp32_TFLOPs", "tiny_kernel_us",
              "back_to_back_launch_us_per_kernel"):
        assert ceil[k] > 0
    assert json.loads((dry_dir / "device.json").read_text())["gpu_measurement"] is False


def _keys(path: Path) -> list[dict[str, str]]:
    timing = {"us_median", "us_min", "compare_us", "compact_us", "amend_us", "dense_us"}
    return [{k: v for k, v in r.items() if k not in timing} for r in _rows(path)]


def test_a_killed_run_resumes_with_the_same_rows(dry_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    shutil.copytree(dry_dir, out)
    conv = out / "conv.csv"
    lines = conv.read_text().split("\n")
    conv.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])  # one row kept, one torn
    added = G.measure(_cfg(out, sections=("conv",)), progress=False)
    assert added == {"conv": 2}
    assert _keys(conv) == _keys(dry_dir / "conv.csv")
    assert G.measure(_cfg(out, sections=("conv",)), progress=False) == {"conv": 0}
    # A restart into a directory of another device or mode is refused.
    dev = json.loads((out / "device.json").read_text())
    (out / "device.json").write_text(json.dumps({**dev, "device": "another"}))
    with pytest.raises(G.MeasureError, match="holds measurements"):
        G.measure(_cfg(out, sections=("conv",)), progress=False)


def test_measure_refuses_bad_config(tmp_path: Path) -> None:
    with pytest.raises(G.MeasureError, match="sections"):
        _cfg(tmp_path, sections=("nope",))
    with pytest.raises(G.MeasureError, match="densities"):
        _cfg(tmp_path, densities=(0.0,))
    if jax.default_backend() == "cpu":
        with pytest.raises(G.MeasureError, match="no GPU"):
            G.measure(_cfg(tmp_path, dry_run=False), progress=False)
    proc = subprocess.run([sys.executable, "-m", "experiments.measure_gpu", "--helpshort"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    for flag in ("out", "nets", "sizes", "batches", "modes", "sections", "repeats", "warmup",
                 "densities", "sw_layers", "concurrency_n", "limit", "time_budget_s",
                 "dry_run", "seed", "progress"):
        assert f"--{flag}:" in proc.stdout or f"--[no]{flag}:" in proc.stdout, flag
    proc = subprocess.run([sys.executable, "-m", "experiments.measure_gpu", f"--out={tmp_path}",
                           "--nets=nosuch", "--dry_run"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1 and "--nets" in proc.stderr and not (tmp_path / "conv.csv").exists()


@pytest.mark.parametrize("geom", [
    LayerGeom.conv("c", n=2, h=9, cin=5, cout=7, k=3, stride=2, pad=1),
    LayerGeom.conv("c1", n=1, h=6, cin=4, cout=3, k=1),
    LayerGeom.dense("fc", n=3, fin=11, fout=5),
], ids=["conv3x3s2", "conv1x1", "dense"])
def test_software_secnn_kernels_amend_exactly(geom: LayerGeom) -> None:
    """compare -> compaction -> sparse amendment of y(P) gives y(x) (the dense layer's)."""
    rng = np.random.default_rng(0)
    fn, (xs, ws) = G.layer_fn(geom)
    x = jnp.asarray(rng.normal(size=xs), jnp.float32)
    hit = rng.random(xs) < 0.3
    p = jnp.where(hit, x - jnp.asarray(rng.normal(size=xs), jnp.float32), x)
    w = jnp.asarray(rng.normal(size=ws), jnp.float32)
    fns = G.sw_fns(geom, int(hit.sum()))
    with jax.default_matmul_precision("float32"):
        m, d = fns["compare"](x, p)
        idx, vals = fns["compact"](m, d)
        y = fns["amend"](fn(p, w), w, idx, vals)
        np.testing.assert_allclose(y, fn(x, w), rtol=1e-4, atol=1e-4)
    assert int(m.sum()) == int(hit.sum())


# --- calibration from a directory -------------------------------------------------------------

def test_calibration_refuses_a_cpu_run_unless_told(dry_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(C.CalibrationError, match="not a GPU measurement"):
        CT.calibrate_dir(dry_dir, "mine", base="h100")
    out = tmp_path / "d"
    shutil.copytree(dry_dir, out)
    (out / "ceilings.json").write_text(json.dumps(
        {**json.loads((out / "ceilings.json").read_text()), "gpu_measurement": True}))
    (out / "device.json").unlink()
    with pytest.raises(C.CalibrationError, match="cpu-dry-run"):  # the rows say so too
        CT.calibrate_dir(out, "mine", base="h100")
    cal = CT.calibrate_dir(dry_dir, "mine", base="h100", restarts=1, allow_cpu=True)
    assert "Not a GPU measurement" in cal.markdown
    assert set(cal.probes) == {"ops", "concurrency", "secnn_sw"}
    for section in ("Op kernels timed alone", "Concurrency:", "Software SE-CNN",
                    "Per layer class", "| depthwise |", "End to end"):
        assert section in cal.markdown, section
    with pytest.raises(C.CalibrationError, match="built-in"):
        CT.calibrate_dir(dry_dir, "h100", base="h100", allow_cpu=True)
    with pytest.raises(C.CalibrationError, match="restarts"):
        CT.calibrate_dir(dry_dir, "mine", base="h100", restarts=0, allow_cpu=True)


CEILINGS = {"device": {"name": "Synthetic GPU", "sms": 100, "l2": 40 * 2**20},
            "max_sm_clock_mhz": 1500.0, "copy_bandwidth_TBps_read_plus_write": 1.8,
            "matmul_fp32_TFLOPs": 30.0, "matmul_tf32_TFLOPs": 200.0,
            "matmul_fp16_TFLOPs": 400.0, "tiny_kernel_us": 12.0,
            "back_to_back_launch_us_per_kernel": 5.0, "gpu_measurement": True}
TRUE = P.ModelParams(efficiency=MappingProxyType({"fp32": 0.5, "tf32": 0.7, "fp16": 0.65}),
                     latency_cycles=900.0, l2_bandwidth_factor=1.6, extra_kernel_us=4.0,
                     graph_kernel_us=3.0)
#: (cin, cout, k, stride, groups, H) per synthetic network: standard, depthwise, grouped.
SHAPES = {"efficientnet_lite0": [(3, 32, 3, 2, 1, 64), (32, 32, 3, 1, 32, 56),
                                 (32, 96, 1, 1, 1, 56), (256, 256, 3, 1, 1, 14),
                                 (512, 512, 3, 1, 1, 7), (96, 96, 5, 2, 96, 28)],
          "resnet50": [(64, 64, 3, 1, 1, 56), (128, 128, 3, 1, 1, 28), (64, 256, 1, 1, 1, 56),
                       (1024, 2048, 1, 2, 1, 14), (144, 144, 3, 1, 144, 28),
                       (128, 128, 3, 1, 4, 28)]}


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)


def _synthetic(d: Path) -> None:
    """A measurement directory generated from :data:`TRUE` on the GPU of :data:`CEILINGS`."""
    d.mkdir()
    (d / "ceilings.json").write_text(json.dumps(CEILINGS))
    gpu = gpufile.gpu_from_ceilings(CEILINGS, "synth", "h100")
    rows: list[dict[str, object]] = []
    for net, specs in SHAPES.items():
        geoms = [LayerGeom.conv(f"l{i}", n=b, h=h, cin=ci, cout=co, k=k, stride=s, groups=g)
                 for i, (ci, co, k, s, g, h) in enumerate(specs) for b in (1, 16)]
        geoms += [LayerGeom.dense("fc", n=b, fin=1280, fout=1000) for b in (1, 16)]
        for g in geoms:
            for mode in G.MODES:
                geom = json.dumps({k: v for k, v in g.as_dict().items() if k != "name"})
                rows.append({"net": net, "name": g.name, "cin": g.cin, "cout": g.cout, "k": g.kh,
                             "stride": g.sh, "pad": g.pad[0][0], "groups": g.groups, "H": g.h,
                             "Ho": g.ho, "B": g.n, "mode": mode, "us_median": 1.0, "geom": geom,
                             "layout": "NHWC", "platform": "gpu"})
    _write_csv(d / "conv.csv", rows)
    _, ms = C.read_measurements(d / "conv.csv")
    for r, us in zip(rows, C.predict_us(ms, gpu, TRUE), strict=True):
        r["us_median"] = f"{us:.5f}"
    _write_csv(d / "conv.csv", rows)
    from experiments.zoo_networks import network

    e2e = []
    for mode in ("fp32_strict", "fp16"):
        us = E.network_us(network("efficientnet_lite0", 1, 32), gpu, mode, "graph", TRUE,
                          P.SchemeConfig(layout="NHWC"))
        e2e.append({"net": "efficientnet_lite0", "mode": mode, "B": 1, "size": 32,
                    "eager_us": f"{2 * us:.4f}", "graph_us": f"{us:.4f}", "layout": "NHWC",
                    "platform": "gpu"})
    _write_csv(d / "e2e.csv", e2e)


def test_calibration_recovers_known_parameters(tmp_path: Path) -> None:
    """Fit on rows generated from known parameters: each within 1% (latency, L2 factor and
    extra-kernel time 2%), graph_kernel_us within 0.02 us, fitted MAPE below 0.5%."""
    d = tmp_path / "synthetic"
    _synthetic(d)
    with pytest.raises(C.CalibrationError, match="base_gpu"):
        CT.calibrate_dir(d, "synth")  # "Synthetic GPU" resembles no built-in one
    cal = CT.calibrate_dir(d, "synth", base="h100", restarts=2)
    assert cal.gpu.sms == 100 and cal.gpu.clock_mhz == 1500 and cal.gpu.dram_gbps == 1800
    assert cal.gpu.event_overhead_us == 12 and cal.gpu.launch_us == 5
    assert cal.gpu.peak_tflops("tf32") * cal.gpu.ceiling_frac["tf32"] == pytest.approx(
        200, rel=1e-3)
    s = cal.report.summary()
    assert s["mape_fit"] < 0.5 and s["mape_cv"] < 0.5
    assert set(s["classes"]) == {"standard", "depthwise", "grouped", "dense"}
    fit, true = C.vector_from_params(cal.params), C.vector_from_params(TRUE)
    np.testing.assert_allclose(fit[:3], true[:3], rtol=0.01)
    np.testing.assert_allclose(fit[3:], true[3:], rtol=0.02)
    assert cal.params.graph_kernel_us == pytest.approx(3.0, abs=0.02)


# --- GPU files and replay ---------------------------------------------------------------------

@pytest.fixture
def gpu_file(tmp_path: Path) -> Iterator[Path]:
    gpu = gpufile.gpu_from_ceilings(CEILINGS, "test_gpu", "h100")
    path = gpufile.write_gpu_file(tmp_path / "test_gpu.json", gpu, TRUE, {"note": "test"})
    yield path
    gpufile.unload_gpu_file("test_gpu")


def test_a_gpu_file_is_used_by_replay(gpu_file: Path) -> None:
    geom = LayerGeom.conv("c", n=1, h=14, cin=64, cout=64, k=3)
    codes = np.where(np.random.default_rng(0).random((2, *geom.in_nhwc)) < 0.2, 3, 2
                     ).astype(np.uint8)
    with pytest.raises(ValueError, match="unknown GPU"):
        get_gpu("test_gpu")
    cal = gpufile.load_gpu_file(gpu_file)
    assert get_gpu("test_gpu") == cal.gpu and cal.gpu.sms == 100
    assert gpufile.params_for("test_gpu") == TRUE
    assert gpufile.params_for("h100") == P.load_params()
    mine = replay([geom], {"c": codes}, gpus=["test_gpu", "h100"], schemes=["dense", "secnn_sw"],
                  ops=())
    explicit = replay([geom], {"c": codes}, gpus=[cal.gpu], schemes=["dense", "secnn_sw"],
                      ops=(), params=TRUE)
    h100 = replay([geom], {"c": codes}, gpus=["h100"], schemes=["dense", "secnn_sw"], ops=())
    for s in ("dense", "secnn_sw"):
        np.testing.assert_array_equal(mine.get("test_gpu", s).total_us,
                                      explicit.get(cal.gpu, s).total_us)
        np.testing.assert_array_equal(mine.get("h100", s).total_us, h100.get("h100", s).total_us)
        assert not np.allclose(mine.get("test_gpu", s).total_us, h100.get("h100", s).total_us)


def test_bad_gpu_files_are_refused(gpu_file: Path, tmp_path: Path) -> None:
    doc = json.loads(gpu_file.read_text())
    bad = tmp_path / "bad.json"
    for change, match in (({"format": "x"}, "not a GPU file"),
                          ({"gpu": {**doc["gpu"], "key": "h100"}}, "built-in"),
                          ({"gpu": {**doc["gpu"], "sms": 0}}, "'sms'"),
                          ({"gpu": {k: v for k, v in doc["gpu"].items() if k != "l2_bytes"}},
                           "l2_bytes")):
        bad.write_text(json.dumps({**doc, **change}))
        with pytest.raises(P.TimingConfigError, match=match):
            gpufile.load_gpu_file(bad)
    bad.write_text("{")
    with pytest.raises(P.TimingConfigError, match="not valid JSON"):
        gpufile.load_gpu_file(bad)
    with pytest.raises(P.TimingConfigError, match="finite number"):
        gpufile.gpu_from_ceilings({**CEILINGS, "tiny_kernel_us": -1}, "x", "h100")


def test_the_packaged_h100_ceilings_rebuild_the_h100_entry() -> None:
    """gpu_from_ceilings maps the measured figures exactly as the built-in H100 used them."""
    ceil = json.loads((C.MEASUREMENTS_DIR / "h100_ceilings.json").read_text())
    g, h = gpufile.gpu_from_ceilings(ceil, "h100_again", "h100"), get_gpu("h100")
    for f in ("sms", "clock_mhz", "dram_gbps", "launch_us", "event_overhead_us", "l2_bytes",
              "fp32_lanes", "tensor_fma_per_clk"):
        assert getattr(g, f) == getattr(h, f), f
    assert dict(g.ceiling_frac) == dict(h.ceiling_frac)
    assert g.key == "h100_again" and "measured" in g.sources["dram_gbps"]
    assert "base GPU 'h100'" in g.sources["fp32_lanes"]
