"""Calibrated GPU files (``secnn_jax/timing/gpufile.py``): round trips, every refusal and its
message, registration, and a GPU built from measured ceilings checked against hand-computed
peaks; written where mutation testing (``mutmut``, docs/mutation.md) found changes no test
noticed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from secnn_jax.timing import gpufile as F
from secnn_jax.timing import gpus as G
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.params import ModelParams, TimingConfigError, load_params

PARAMS = ModelParams(efficiency={"fp32": 0.5, "tf32": 0.7, "fp16": 0.9}, latency_cycles=600.0,
                     provenance="test fit")


def _doc(**gpu_changes) -> dict:
    gpu = {**G.H100.as_dict(), "key": "lab_h100", **gpu_changes}
    return {"format": F.FORMAT, "gpu": gpu, "params": PARAMS.as_dict(), "meta": {"fit": 1}}


def _write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_a_written_gpu_file_reads_back_equal(tmp_path: Path) -> None:
    gpu = G.H100.replace(key="lab_h100", sms=100)
    path = F.write_gpu_file(tmp_path / "g.json", gpu, PARAMS, {"note": "x"})
    cal = F.read_gpu_file(path)
    assert cal.gpu == gpu and dict(cal.gpu.sources) == dict(gpu.sources)
    assert cal.params == PARAMS and cal.meta == {"note": "x"} and cal.path == path
    doc = json.loads(path.read_text())
    assert doc["format"] == F.FORMAT and doc["meta"] == {"note": "x"}
    assert json.loads(F.write_gpu_file(tmp_path / "h.json", gpu, PARAMS).read_text())["meta"] == {}
    assert F.read_gpu_file(_write(tmp_path / "m.json", {**_doc(), "meta": None})).meta == {}


def test_read_gpu_file_converts_field_types(tmp_path: Path) -> None:
    doc = _doc(sms="100", clock_mhz="1500", tensor_fma_per_clk={"fp16": "512"},
               ceiling_frac={"fp32": "0.5", "tf32": 1, "fp16": 0.25}, sources={"sms": 7},
               compute_capability=9.0)
    g = F.read_gpu_file(_write(tmp_path / "g.json", doc)).gpu
    assert g.sms == 100 and type(g.sms) is int and g.clock_mhz == 1500.0
    assert type(g.clock_mhz) is float and type(g.launch_us) is float
    assert dict(g.tensor_fma_per_clk) == {"fp16": 512}
    assert dict(g.ceiling_frac) == {"fp32": 0.5, "tf32": 1.0, "fp16": 0.25}
    assert dict(g.sources) == {"sms": "7"} and g.compute_capability == "9.0"
    del doc["gpu"]["sources"]  # optional
    assert dict(F.read_gpu_file(_write(tmp_path / "s.json", doc)).gpu.sources) == {}


@pytest.mark.parametrize("doc,message", [
    ([1, 2], r" is not a GPU file \(expected format 'secnn_jax.timing.gpu_file/1'; write one "
             r"with python -m experiments.calibrate_timing --measurements=DIR --gpu=NAME "
             r"--out=FILE\)$"),
    ({**_doc(), "format": "other/1"}, r" is not a GPU file"),
    ({**_doc(), "gpu": None}, r": GPU entry lacks field\(s\) key, name, arch, compute_capability"
                              r", sms, clock_mhz, "),
    ({**_doc(), "gpu": {k: v for k, v in _doc()["gpu"].items() if k not in ("sms", "regs")}},
     r": GPU entry lacks field\(s\) sms, regs$"),
    (_doc(sms="many"), r": GPU entry field 'sms' has a bad value: invalid literal"),
    (_doc(tensor_fma_per_clk=5), r": GPU entry field 'tensor_fma_per_clk' has a bad value"),
    (_doc(sms=0), r": GPU entry field 'sms' must be > 0, got 0$"),
    (_doc(clock_mhz=float("nan")), r": GPU entry field 'clock_mhz' must be > 0, got nan$"),
    (_doc(dram_gbps=float("inf")), r": GPU entry field 'dram_gbps' must be > 0, got inf$"),
    (_doc(fp32_lanes=-1), r": GPU entry field 'fp32_lanes' must be > 0"),
    (_doc(l2_bytes=0), r": GPU entry field 'l2_bytes' must be > 0"),
    (_doc(max_threads=0), r": GPU entry field 'max_threads' must be > 0"),
    (_doc(ceiling_frac={"fp32": 0.5, "tf32": 0.5}),
     r": GPU entry 'ceiling_frac' must give \('fp32', 'tf32', 'fp16'\)$"),
    (_doc(key="Lab H100"), r": GPU key 'Lab H100' is not normalised$"),
    ({k: v for k, v in _doc().items() if k != "params"}, r": bad or missing 'params' entry: "),
    ({**_doc(), "params": {"efficiency": {"fp32": 0.5}}}, r": bad or missing 'params' entry: "),
])
def test_read_gpu_file_refuses_bad_files_naming_the_problem(tmp_path: Path, doc,
                                                            message: str) -> None:
    path = _write(tmp_path / "g.json", doc)
    with pytest.raises(TimingConfigError, match=message) as e:
        F.read_gpu_file(path)
    assert str(path) in str(e.value)


def test_read_gpu_file_refuses_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TimingConfigError, match=r"^GPU file not found: .*nope.json$"):
        F.read_gpu_file(tmp_path / "nope.json")
    for content in (b"{", b"\xff\xfe"):
        (tmp_path / "b.json").write_bytes(content)
        with pytest.raises(TimingConfigError, match=r"^GPU file .*b.json is not valid JSON: "):
            F.read_gpu_file(tmp_path / "b.json")


def test_load_registers_the_gpu_and_its_params_and_unload_forgets_both(tmp_path: Path) -> None:
    path = _write(tmp_path / "g.json", _doc())
    default = load_params()
    try:
        cal = F.load_gpu_file(path)
        assert G.get_gpu("LAB-H100") is cal.gpu
        assert F.params_for("Lab H100") == PARAMS and F.params_for(cal.gpu) == PARAMS
        assert F.params_for("h100") == default
    finally:
        F.unload_gpu_file("LAB-H100")
    with pytest.raises(ReplayError, match="unknown GPU 'lab_h100'"):
        G.get_gpu("lab_h100")
    assert F.params_for("lab_h100") == default
    F.unload_gpu_file("lab_h100")  # not loaded: no error


def test_load_refuses_a_built_in_key_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "g.json", _doc(key="h100"))
    with pytest.raises(TimingConfigError, match=r"g.json: GPU key 'h100' is a built-in"):
        F.load_gpu_file(path)
    assert F.params_for("h100") == load_params()


# --- a GPU from measured ceilings -----------------------------------------------------------------

def test_gpu_from_ceilings_takes_every_measured_value() -> None:
    ceilings = {"device": {"name": "Lab card", "sms": 100, "l2": 1000},
                "max_sm_clock_mhz": 1500, "copy_bandwidth_TBps_read_plus_write": 2.0,
                "matmul_fp32_TFLOPs": 30.72,         # peak 2 x 128 x 100 x 1.5 GHz = 38.4
                "matmul_8192_tf32_TFLOPs": 245.76,   # old name; peak 2 x 1024 x ... = 307.2
                "matmul_tf32_TFLOPs": None,          # absent under the new name: the old one
                "tiny_kernel_us": 5.0, "back_to_back_launch_us_per_kernel": 3.0}
    g = F.gpu_from_ceilings(ceilings, "Lab-Card", "h100", source="lab run 1")
    assert (g.key, g.name, g.sms, g.l2_bytes, g.clock_mhz) == ("lab_card", "Lab card", 100, 1000,
                                                               1500.0)
    assert g.dram_gbps == 2000.0 and g.launch_us == 3.0 and g.event_overhead_us == 5.0
    assert g.ceiling_frac["fp32"] == 0.8 and g.ceiling_frac["tf32"] == 0.8
    assert g.ceiling_frac["fp16"] == G.H100.ceiling_frac["fp16"]  # not measured: the base's
    s = g.sources
    assert s["sms"] == "lab run 1 (device.sms)" and s["l2_bytes"] == "lab run 1 (device.l2)"
    assert s["name"] == "lab run 1 (device name)"
    assert s["clock_mhz"] == "lab run 1 (max_sm_clock_mhz)"
    assert s["dram_gbps"] == "lab run 1 (copy bandwidth, read + write)"
    assert s["launch_us"] == "lab run 1 (back_to_back_launch_us_per_kernel)"
    assert s["event_overhead_us"] == "lab run 1 (tiny_kernel_us)"
    assert s["ceiling_frac"] == ("lab run 1 (matmul TFLOP/s over the peak of base 'h100''s "
                                 "per-SM rates at the measured SMs and clock)")
    assert s["regs"] == f"from base GPU 'h100': {G.H100.sources['regs']}"
    assert g.tensor_fma_per_clk == G.H100.tensor_fma_per_clk and g.regs == G.H100.regs


def test_gpu_from_ceilings_without_measurements_is_the_base_renamed() -> None:
    g = F.gpu_from_ceilings({}, "v100_copy", G.V100)
    assert dataclasses.replace(g, key="v100", name=G.V100.name) == G.V100
    assert g.name == "v100_copy"
    assert g.sources["ceiling_frac"] == f"from base GPU 'v100': {G.V100.sources['ceiling_frac']}"
    assert g.sources["sms"] == f"from base GPU 'v100': {G.V100.sources['sms']}"
    assert g.sources["name"] == "measured (device name)"
    # measured SMs and clock set the peak the ceilings are divided by
    g2 = F.gpu_from_ceilings({"device": {"sms": 40}, "matmul_fp16_TFLOPs": 49.152},
                             "half_v100", "v100")
    assert g2.ceiling_frac["fp16"] == pytest.approx(49.152e12 / (2 * 512 * 40 * 1530e6), abs=1e-4)
    assert g2.clock_mhz == G.V100.clock_mhz


@pytest.mark.parametrize("ceilings,key,message", [
    ({"max_sm_clock_mhz": "fast"}, "x", r"^ceilings field 'max_sm_clock_mhz' is not a number: "
                                        r"'fast'$"),
    ({"matmul_fp32_TFLOPs": -1}, "x", r"^ceilings field 'matmul_fp32_TFLOPs' must be a finite "
                                      r"number > 0, got -1$"),
    ({"max_sm_clock_mhz": 0}, "x", r"^ceilings field 'max_sm_clock_mhz' must be a finite number "
                                   r"> 0, got 0$"),
    ({"tiny_kernel_cuda_event_us": float("inf")}, "x",
     r"^ceilings field 'tiny_kernel_cuda_event_us' must be a finite number > 0, got inf$"),
    ({"copy_bandwidth_TBps_read_plus_write": [1]}, "x", r"is not a number: \[1\]$"),
    ({}, "", r"^a calibrated GPU needs a non-empty name$"),
])
def test_gpu_from_ceilings_refuses_bad_values(ceilings: dict, key: str, message: str) -> None:
    with pytest.raises(TimingConfigError, match=message):
        F.gpu_from_ceilings(ceilings, key, "h100")


def test_gpu_from_ceilings_prefers_the_new_key_and_refuses_an_unknown_base() -> None:
    g = F.gpu_from_ceilings({"tiny_kernel_us": 4.0, "tiny_kernel_cuda_event_us": 9.0}, "x", "h100")
    assert g.event_overhead_us == 4.0
    with pytest.raises(ReplayError, match="unknown GPU 'h1000'"):
        F.gpu_from_ceilings({}, "x", "h1000")
