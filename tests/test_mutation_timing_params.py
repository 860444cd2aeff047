"""The timing model's GPU table and parameters (``secnn_jax/timing/{gpus,params}.py``) checked
against hand computations from their documented formulas and sources, where mutation testing
(``mutmut``, docs/mutation.md) found changes no test noticed: the per-precision rates, unit
conversions, GPU names and registration, parameter files and every ``SchemeConfig`` check."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from types import MappingProxyType

import pytest

from secnn_jax.timing import gpus as G
from secnn_jax.timing import params as P
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.names import COMPACTIONS

# --- precisions and per-SM rates ---------------------------------------------------------------


@pytest.mark.parametrize("name,canonical", [
    ("fp32", "fp32"), ("FP32_strict", "fp32"), ("Float32", "fp32"), ("tf32", "tf32"),
    ("fp16", "fp16"), ("HALF", "fp16"), ("bf16", "fp16"), ("bfloat16", "fp16"),
    ("float16", "fp16"),
])
def test_canonical_precision_reads_every_alias_in_any_case(name: str, canonical: str) -> None:
    assert G.canonical_precision(name) == canonical


def test_canonical_precision_refuses_an_unknown_name_listing_the_known() -> None:
    known = sorted(G.PRECISION_ALIASES)
    with pytest.raises(ReplayError, match=r"^unknown precision 'fp8'; known: (.*)$") as e:
        G.canonical_precision("fp8")
    assert str(e.value).endswith(str(known))


@pytest.mark.parametrize("gpu,precision,simt,tensor,dense", [
    # H100 whitepaper: 128 FP32 lanes, FP16 SIMT 256, tensor TF32 1024 / FP16 2048 per SM/clk
    ("h100", "fp32", 128, False, 128),
    ("h100", "tf32", 128, True, 1024),   # TF32 on the SIMT lanes runs as FP32
    ("h100", "fp16", 256, True, 2048),
    ("v100", "tf32", 64, False, 64),     # Volta: no TF32 tensor cores -> SIMT FP32
    ("v100", "fp16", 128, True, 512),
    ("gtx1080ti", "fp16", 2, False, 2),  # Pascal: no tensor cores, FP16 at 1/64 rate
])
def test_per_sm_rates_follow_the_datasheets(gpu: str, precision: str, simt: int, tensor: bool,
                                            dense: int) -> None:
    g = G.get_gpu(gpu)
    assert g.simt_fma_per_clk(precision) == simt
    assert g.uses_tensor_cores(precision) is tensor
    assert g.dense_fma_per_clk(precision) == dense


def test_peak_and_units_match_the_datasheet_figures() -> None:
    h = G.H100
    # whitepaper: dense FP16 989.4 TFLOPS at 1830 MHz; the model's clock is 1980 MHz
    assert h.peak_tflops("fp16") == pytest.approx(989.4 * 1980 / 1830, rel=1e-3)
    assert G.A100.peak_tflops("tf32") == pytest.approx(156.0, rel=2e-3)  # A100 whitepaper
    assert G.V100.peak_tflops("fp32") == pytest.approx(15.67, rel=1e-3)  # V100: 15.7 TFLOPS
    assert h.us(1980) == 1.0 and h.cycles(2) == 3960.0
    assert isinstance(h.us(3), float) and isinstance(h.cycles(3), float)
    assert h.us(h.cycles(7.25)) == pytest.approx(7.25)
    # 2.967 TB/s measured copy bandwidth over a 1.98 GHz clock
    assert h.dram_bytes_per_clk == pytest.approx(2.967e12 / 1.98e9)


def test_h100_ceilings_are_the_measured_matmul_rates_over_the_peak() -> None:
    m = G.H100_MEASURED
    for p, tflops in (("fp32", m["matmul_8192_fp32_no_tf32_TFLOPs"]),
                      ("tf32", m["matmul_8192_tf32_TFLOPs"]),
                      ("fp16", m["matmul_8192_bf16_TFLOPs"])):
        assert G.H100.ceiling_frac[p] == pytest.approx(tflops / G.H100.peak_tflops(p), abs=1e-4)
    assert G._h100_ceilings() == dict(G.H100.ceiling_frac)
    assert G.V100.ceiling_frac == G.H100.ceiling_frac  # reused, as its source says


def test_replace_and_as_dict() -> None:
    small = G.H100.replace(sms=66)
    assert small.sms == 66 and G.H100.sms == 132 and small.key == "h100"
    d = G.H100.as_dict()
    assert set(d) == {f.name for f in dataclasses.fields(G.GPU)}
    assert type(d["tensor_fma_per_clk"]) is dict and type(d["ceiling_frac"]) is dict
    assert type(d["sources"]) is dict and d["sources"]["sms"] == G.H100.sources["sms"]
    assert json.loads(json.dumps(d))["tensor_fma_per_clk"] == {"tf32": 1024, "fp16": 2048}
    assert d["clock_mhz"] == 1980.0 and d["key"] == "h100"


def test_common_sources_name_the_cuda_guide_and_assumptions() -> None:
    src = G._common("8.6", "WP", extra="x")
    assert src["max_threads"] == G._CUDA_GUIDE.format(cc="8.6") and src["schedulers"] == "WP"
    assert src["extra"] == "x" and src["launch_us"].startswith("assumption:")
    assert "tiny-kernel value" in src["event_overhead_us"]
    assert set(src) >= {"compute_capability", "max_warps", "max_ctas", "regs", "smem_bytes",
                        "max_regs_per_thread", "max_smem_per_cta", "ceiling_frac"}
    g = G._gpu(**{**G.H100.as_dict(), "key": "x", "ceiling_frac": {"fp32": 0.5}})
    assert isinstance(g.tensor_fma_per_clk, MappingProxyType) and g.ceiling_frac["fp32"] == 0.5
    d = G.H100.as_dict()
    del d["ceiling_frac"]
    assert G._gpu(**d).ceiling_frac == G.H100.ceiling_frac  # the H100's by default


# --- names and registration ----------------------------------------------------------------------

@pytest.mark.parametrize("name,key", [
    ("H100", "h100"), ("H100-SXM", "h100"), ("h200 sxm", "h200"), ("GTX 1080 Ti", "gtx1080ti"),
    ("1080ti", "gtx1080ti"), ("Titan-V", "titanv"), ("TITAN_X", "titanx"), ("titanxp", "titanx"),
    ("My GPU-2", "my_gpu_2"),
])
def test_gpu_key_normalises_case_separators_and_aliases(name: str, key: str) -> None:
    assert G.gpu_key(name) == key


def test_get_gpu_by_any_spelling_or_instance() -> None:
    assert G.get_gpu("Titan-V") is G.TITAN_V
    assert G.get_gpu(G.A100) is G.A100
    custom = G.H100.replace(key="not_registered")
    assert G.get_gpu(custom) is custom


def test_register_get_and_unregister_a_gpu() -> None:
    mine = G.H100.replace(key="h100_mine", sms=100)
    try:
        assert G.register_gpu(mine) is mine
        assert G.get_gpu("H100-MINE") is mine and G.registered_gpus()["h100_mine"] is mine
        with pytest.raises(TypeError):
            G.registered_gpus()["x"] = mine  # a read-only view
        again = mine.replace(sms=90)
        G.register_gpu(again)  # replaces the earlier registration
        assert G.get_gpu("h100_mine").sms == 90
        with pytest.raises(ReplayError, match=r", h200, h100_mine$"):
            G.get_gpu("nosuch")
    finally:
        G.unregister_gpu("H100-Mine")
    assert "h100_mine" not in G.registered_gpus()
    G.unregister_gpu("h100_mine")  # not registered: no error
    with pytest.raises(ReplayError, match=(r"^unknown GPU 'nosuch'; known: gtx1080ti, titanx, "
                                           r"titanv, v100, a100, h100, h200$")):
        G.get_gpu("nosuch")


@pytest.mark.parametrize("key,message", [
    ("My GPU", r"^GPU key 'My GPU' is not normalised \(use 'my_gpu'\)$"),
    ("", r"^GPU key '' is not normalised \(use ''\)$"),
    ("h100", r"^GPU key 'h100' is a built-in configuration; register a calibrated GPU under "
             r"another name \(e.g. 'h100_mine'\)$"),
])
def test_register_gpu_refuses_bad_keys(key: str, message: str) -> None:
    with pytest.raises(ReplayError, match=message):
        G.register_gpu(G.H100.replace(key=key))
    assert key not in G.registered_gpus()


# --- ModelParams and parameter files -------------------------------------------------------------

def test_model_params_efficiency_by_any_precision_spelling() -> None:
    p = P.ModelParams(efficiency={"fp32": 0.25, "tf32": 0.5, "fp16": 0.75})
    assert (p.eff("float32"), p.eff("TF32"), p.eff("bf16")) == (0.25, 0.5, 0.75)
    assert type(p.eff("fp32")) is float
    defaults = P.ModelParams()
    assert dict(defaults.efficiency) == {"fp32": 0.6, "tf32": 0.8, "fp16": 0.8}


def test_model_params_round_trip_through_a_dict() -> None:
    p = P.ModelParams(efficiency={"fp32": 0.5, "tf32": 0.7, "fp16": 0.9}, latency_cycles=600.0,
                      l2_bandwidth_factor=1.5, extra_kernel_us=3.0, cta_overhead_cycles=10.0,
                      graph_kernel_us=1.25, provenance="test")
    d = p.as_dict()
    assert set(d) == {f.name for f in dataclasses.fields(P.ModelParams)}
    assert type(d["efficiency"]) is dict and json.loads(json.dumps(d)) == d
    back = P.ModelParams.from_dict({**d, "unknown_key": 1, "efficiency": {"fp32": 1, "tf32": 0.7,
                                                                          "fp16": 0.9}})
    assert back.efficiency["fp32"] == 1.0 and type(back.efficiency["fp32"]) is float
    assert isinstance(back.efficiency, MappingProxyType)
    assert dataclasses.replace(back, efficiency=p.efficiency) == p
    assert P.ModelParams.from_dict({"latency_cycles": 5.0}) == P.ModelParams(latency_cycles=5.0)


def test_load_params_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = P.ModelParams(latency_cycles=123.0, provenance="file")
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"params": p.as_dict(), "fit": {"mape": 1}}))
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(p.as_dict()))
    assert P.load_params(nested) == p and P.load_params(str(flat)) == p
    missing = tmp_path / "none.json"
    with pytest.raises(P.TimingConfigError, match=r"^timing parameters file not found: .*none"):
        P.load_params(missing)
    monkeypatch.setattr(P, "PARAMS_PATH", missing)  # no shipped file: the defaults
    assert P.load_params() == P.ModelParams()
    monkeypatch.setattr(P, "PARAMS_PATH", flat)
    assert P.load_params() == p
    bad = tmp_path / "bad.json"
    for content in (b"{not json", b"\xff\xfe\x00"):
        bad.write_bytes(content)
        with pytest.raises(P.TimingConfigError, match=r"^timing parameters file .*bad.json is "
                                                      r"not valid JSON: "):
            P.load_params(bad)


def test_shipped_params_load() -> None:
    shipped = json.loads(P.PARAMS_PATH.read_text())
    got = P.load_params()
    assert got.latency_cycles == shipped["params"]["latency_cycles"]
    assert dict(got.efficiency) == shipped["params"]["efficiency"]


# --- SchemeConfig ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    ({"buffer_placement": "l1"}, r"^SchemeConfig.buffer_placement='l1': must be one of "
                                 r"\('cache', 'off_chip', 'on_chip'\)$"),
    ({"hw_compaction": "magic"}, r"^SchemeConfig.hw_compaction='magic': must be one of "
                                 + re.escape(str(COMPACTIONS)) + "$"),
    ({"sw_compaction": "x"}, r"^SchemeConfig.sw_compaction='x': must be one of"),
    ({"layout": "NCWH"}, r"^SchemeConfig.layout='NCWH': NHWC or NCHW$"),
    ({"secnn_parallel": "half"}, r"^SchemeConfig.secnn_parallel='half': auto, sparse or dense$"),
    ({"barrier_us": -1.0}, r"^SchemeConfig.barrier_us=-1.0: must be finite and >= 0$"),
    ({"barrier_us": math.inf}, r"^SchemeConfig.barrier_us=inf: must be finite and >= 0$"),
    ({"hw_dependency_us": math.nan}, r"^SchemeConfig.hw_dependency_us=nan: must be finite"),
    ({"compaction_bytes_per_miss": -0.5}, r"^SchemeConfig.compaction_bytes_per_miss=-0.5:"),
    ({"compare_ops_per_neuron": math.inf}, r"^SchemeConfig.compare_ops_per_neuron=inf:"),
    ({"launch_us": -2.0}, r"^SchemeConfig.launch_us=-2.0: must be finite and >= 0$"),
    ({"launch_us": math.inf}, r"^SchemeConfig.launch_us=inf: must be finite and >= 0$"),
    ({"graph_kernel_us": math.nan}, r"^SchemeConfig.graph_kernel_us=nan: must be finite"),
    ({"graph_kernel_us": -1e-9}, r"^SchemeConfig.graph_kernel_us=-1e-09: must be finite"),
])
def test_scheme_config_refuses_bad_values_naming_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(P.TimingConfigError, match=message):
        P.SchemeConfig(**kwargs)


def test_scheme_config_accepts_the_edges_of_its_ranges() -> None:
    cfg = P.SchemeConfig(layout="nchw", barrier_us=0.0, hw_dependency_us=0,
                         compaction_bytes_per_miss=0.0, compare_ops_per_neuron=0.0,
                         launch_us=0.0, graph_kernel_us=0.0, secnn_parallel="sparse",
                         hw_compaction="hardware", sw_compaction="software",
                         buffer_placement="on_chip")
    assert cfg.launch(G.H100) == 0.0 and cfg.graph_gap(P.ModelParams()) == 0.0
    for placement in P.PLACEMENTS:
        assert P.SchemeConfig(buffer_placement=placement).buffer_placement == placement
    for parallel in ("auto", "sparse", "dense"):
        assert P.SchemeConfig(secnn_parallel=parallel).secnn_parallel == parallel


def test_launch_and_graph_gap_default_to_the_gpu_and_the_fitted_value() -> None:
    params = P.ModelParams(graph_kernel_us=2.5)
    default = P.SchemeConfig()
    assert default.launch(G.H100) == G.H100.launch_us == G.H100_MEASURED[
        "back_to_back_launch_us_per_kernel"]
    assert default.graph_gap(params) == 2.5
    cfg = P.SchemeConfig(launch_us=3, graph_kernel_us=4)
    assert cfg.launch(G.H100) == 3.0 and type(cfg.launch(G.H100)) is float
    assert cfg.graph_gap(params) == 4.0 and type(cfg.graph_gap(params)) is float


def test_scheme_config_as_dict_is_json() -> None:
    cfg = P.SchemeConfig(split_k=(1, 4))
    d = cfg.as_dict()
    assert d["split_k"] == [1, 4] and type(d["split_k"]) is list
    assert set(d) == {f.name for f in dataclasses.fields(P.SchemeConfig)}
    assert json.loads(json.dumps(d)) == d and P.SchemeConfig(**{**d, "split_k": (1, 4)}) == cfg
