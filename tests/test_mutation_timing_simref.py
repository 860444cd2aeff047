"""timing.simref against hand computations and the replayer's building blocks (kernels, sm,
scheduler): the tests written for the mutants the GPGPU-Sim tests left alive
(docs/mutation.md)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from secnn_jax.timing import kernels as K
from secnn_jax.timing import simref
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpus import get_gpu
from secnn_jax.timing.params import load_params
from secnn_jax.timing.sm import bandwidth, dealt_makespan, mem_cycles

GPU = simref.SIM_GPUS["titanx"]
PARAMS = load_params()


def _gemm_ref(count: np.ndarray, k: int, n: int, nbytes: float) -> float:
    """A simulated GEMM's cycles from the building blocks: the 1x1 conv ``[M, K] x [K, N]``'s
    sparse grid with the kernel's own tile, CTAs dealt to SMs, at least its memory time."""
    m = count.shape[0]
    from secnn_jax.geometry import LayerGeom
    geom = LayerGeom(name="g", kind="conv", n=1, h=m, w=1, cin=k, ho=m, wo=1, cout=n)
    grid = K.sparse_grid(np.asarray(count, np.int64).reshape(1, m, 1), geom, GPU, "fp32",
                         PARAMS, K.SparseTile(simref.GEMM_TILE))
    comp = float(dealt_makespan(grid.w, grid.d, GPU.sms, grid.occupancy)[0])
    return max(comp, float(mem_cycles(GPU, nbytes, PARAMS)))


def test_sim_gpus_are_the_replayers_gpus_on_the_simulators_clock_and_memory() -> None:
    for key, base, clock, dram, l2 in (("titanx", "titanx", 1417.0, 480.0, 3 * 2**20),
                                      ("qv100", "v100", 1132.0, 870.4, 6 * 2**20)):
        g, b = simref.SIM_GPUS[key], get_gpu(base)
        assert (g.key, g.clock_mhz, g.dram_gbps, g.l2_bytes) == (f"gpgpusim_{base}", clock,
                                                                 dram, l2)
        # everything else is the replayer's GPU
        assert dataclasses.replace(g, key=b.key, clock_mhz=b.clock_mhz, dram_gbps=b.dram_gbps,
                                   l2_bytes=b.l2_bytes, sources=b.sources) == b
        for f in ("clock_mhz", "dram_gbps", "l2_bytes"):
            assert g.sources[f].startswith("GPGPU-Sim config")
        assert {k: v for k, v in g.sources.items()
                if k not in ("clock_mhz", "dram_gbps", "l2_bytes")} == \
            {k: v for k, v in b.sources.items() if k not in ("clock_mhz", "dram_gbps", "l2_bytes")}
    # built at import, before a test can plant a change: the builder called directly too
    direct = simref._sim_gpu("titanx", 1417.0, 480.0, 3 * 2**20)
    assert direct == simref.SIM_GPUS["titanx"]
    assert direct.sources["clock_mhz"] == "GPGPU-Sim config core clock"
    assert direct.sources["dram_gbps"] == "GPGPU-Sim config DRAM"
    assert direct.sources["l2_bytes"] == "GPGPU-Sim config L2"
    # every field the builder is given is set (the simulators' L2 sizes are the products')
    other = simref._sim_gpu("v100", 1000.0, 123.0, 12345)
    assert (other.key, other.clock_mhz, other.dram_gbps, other.l2_bytes) == \
        ("gpgpusim_v100", 1000.0, 123.0, 12345)
    assert set(simref.SIM_GPUS) == {"titanx", "qv100"}
    assert simref.ELEMENTWISE_OPS == {"compare": 4.0, "detect": 3.0, "compact": 3.0}


def test_load_cases_reads_every_case_and_refuses_a_missing_file(tmp_path: Path) -> None:
    a = np.array([[0, 1], [2, 3]], np.uint8)
    b = np.ones((3, 4), np.uint8)
    np.savez(tmp_path / "c.npz", **{"m:x|y|codes": a, "m:x|y|N": np.int32(5),
                                   "b|codes": b, "b|N": np.int64(7)})
    got = simref.load_cases(tmp_path / "c.npz")
    assert sorted(got) == ["b", "m:x|y"]
    np.testing.assert_array_equal(got["m:x|y"][0], a)
    assert got["m:x|y"][1] == 5 and type(got["m:x|y"][1]) is int
    np.testing.assert_array_equal(got["b"][0], b)
    assert got["b"][1] == 7
    with pytest.raises(ReplayError, match="cases file not found: .*nope.npz"):
        simref.load_cases(tmp_path / "nope.npz")


def test_gemm_classes_from_the_building_blocks() -> None:
    rng = np.random.default_rng(3)
    for m, k, n_out in ((300, 40, 24), (40, 7, 3), (2048, 64, 64)):
        codes = rng.integers(0, 4, (m, k)).astype(np.uint8)
        io = 4.0 * (m * k + k * n_out + m * n_out)
        fires = (codes != 0).sum(1)
        missed = (codes % 2 == 1).sum(1)
        assert simref.predict("dense_simt", codes, n_out, GPU) == \
            pytest.approx(_gemm_ref(np.full(m, k), k, n_out, io), rel=1e-12)
        assert simref.predict("zero_skip", codes, n_out, GPU) == \
            pytest.approx(_gemm_ref(fires, k, n_out, io), rel=1e-12)
        assert simref.predict("amend", codes, n_out, GPU, PARAMS) == \
            pytest.approx(_gemm_ref(missed, k, n_out, io + 4.0 * m * n_out), rel=1e-12)


def test_amend_is_memory_bound_with_y_read_and_written() -> None:
    # One mispredicted input, a wide output: the amendment is its bytes over the bandwidth.
    m, k, n_out = 64, 4, 4096
    codes = np.zeros((m, k), np.uint8)
    codes[0, 0] = 1
    io = 4.0 * (m * k + k * n_out + m * n_out)
    want = float(mem_cycles(GPU, io + 4.0 * m * n_out, PARAMS))
    assert simref.predict("amend", codes, n_out, GPU, PARAMS) == pytest.approx(want, rel=1e-12)
    assert simref.predict("zero_skip", codes, n_out, GPU, PARAMS) == \
        pytest.approx(float(mem_cycles(GPU, io, PARAMS)), rel=1e-12)


@pytest.mark.parametrize("gpu_key", ["titanx", "qv100"])
def test_elementwise_classes_by_hand(gpu_key: str) -> None:
    gpu = simref.SIM_GPUS[gpu_key]
    rng = np.random.default_rng(5)
    for shape in ((3000, 9), (5, 3)):
        codes = rng.integers(0, 4, shape).astype(np.uint8)
        n = codes.size
        miss = int((codes % 2 == 1).sum())
        for cls, nbytes, ops in (("compare", 17 * n, 4.0), ("detect", 12 * n + 4 * miss, 3.0),
                                 ("compact", n + 4 * miss, 3.0)):
            want = K.elementwise_cost(n, nbytes, ops * n, gpu, "fp32", PARAMS).cycles
            got = simref.predict(cls, codes, 11, gpu, PARAMS)
            assert type(got) is float
            assert got == pytest.approx(float(want), rel=1e-12), cls


def test_large_elementwise_kernels_are_memory_bound_by_hand() -> None:
    codes = np.random.default_rng(7).integers(0, 4, (100_000, 16)).astype(np.uint8)
    n, miss = codes.size, int((codes % 2 == 1).sum())
    for cls, nbytes, ops in (("compact", n + 4 * miss, 3.0), ("detect", 12 * n + 4 * miss, 3.0)):
        want = K.elementwise_cost(n, nbytes, ops * n, GPU, "fp32", PARAMS).cycles
        # the bytes bind: without the misses' bytes the kernel is faster
        assert want > K.elementwise_cost(n, nbytes - 4 * miss, ops * n, GPU, "fp32",
                                         PARAMS).cycles
        assert simref.predict(cls, codes, 4, GPU, PARAMS) == pytest.approx(want, rel=1e-12)


def test_parallel_cycles_of_compute_bound_layers() -> None:
    rng = np.random.default_rng(11)
    layers = [((rng.random((1024, 256)) < 0.5).astype(np.uint8) * 2, 16),
              ((rng.random((512, 128)) < 0.3).astype(np.uint8) * 3, 8)]
    alone = []
    for codes, n_out in layers:
        m, k = codes.shape
        io = 4.0 * (m * k + k * n_out + m * n_out)
        cyc = _gemm_ref((codes != 0).sum(1), k, n_out, io)
        assert cyc > float(mem_cycles(GPU, io, PARAMS))  # the lanes bind, not the bytes
        alone.append(cyc)
    ser, par = simref.parallel_cycles(layers, GPU, PARAMS)
    assert ser == pytest.approx(sum(alone), rel=1e-12)
    assert max(alone) * (1 - 1e-9) <= par <= ser * (1 + 1e-9)


def test_predict_refuses_bad_codes_naming_them() -> None:
    good = np.zeros((2, 2), np.uint8)
    for bad in (np.zeros(4, np.uint8), np.zeros((1, 2, 2), np.uint8), good.astype(np.int32),
                np.zeros((0, 3), np.uint8), np.full((2, 2), 4, np.uint8)):
        with pytest.raises(ReplayError, match=r"^codes: expected non-empty uint8 \[M, K\] "
                                              r"event codes \(0-3\), got "):
            simref.predict("zero_skip", bad, 2, GPU, PARAMS)
    with pytest.raises(ReplayError, match=r"got int32 \(2, 2\)"):
        simref.predict("zero_skip", good.astype(np.int32), 2, GPU, PARAMS)
    # the largest code is accepted; the list of classes is named
    assert simref.predict("zero_skip", np.full((2, 2), 3, np.uint8), 2, GPU, PARAMS) > 0
    with pytest.raises(ReplayError, match=r"^kernel_class='x': one of dense_simt, zero_skip, "
                                          r"amend, compare, detect, compact$"):
        simref.predict("x", good, 2, GPU, PARAMS)


def test_params_default_to_the_shipped_calibration() -> None:
    codes = np.random.default_rng(0).integers(0, 4, (100, 20)).astype(np.uint8)
    for cls in ("zero_skip", "compare"):
        assert simref.predict(cls, codes, 8, GPU) == simref.predict(cls, codes, 8, GPU, PARAMS)
    layers = [(codes, 8), (codes[:50], 4)]
    assert simref.parallel_cycles(layers, GPU) == simref.parallel_cycles(layers, GPU, PARAMS)
    assert simref.params_or_default(None) == PARAMS
    other = dataclasses.replace(PARAMS, latency_cycles=PARAMS.latency_cycles + 1)
    assert simref.params_or_default(other) is other


def test_parallel_cycles_of_one_layer_is_the_layer_alone() -> None:
    codes = np.random.default_rng(1).integers(0, 4, (500, 33)).astype(np.uint8)
    alone = simref.predict("zero_skip", codes, 20, GPU, PARAMS)
    ser, par = simref.parallel_cycles([(codes, 20)], GPU, PARAMS)
    assert ser == pytest.approx(alone, rel=1e-12)
    assert par == pytest.approx(alone, rel=1e-9)


def test_parallel_cycles_are_memory_bound_by_the_shared_bandwidth() -> None:
    # Two layers that only move bytes (no input fires): together they take their bytes over
    # the bandwidth of the combined traffic, more than the longest alone.
    layers = [(np.zeros((64, 4), np.uint8), 8192), (np.zeros((64, 4), np.uint8), 4096)]
    ios = [4.0 * (64 * 4 + 4 * n + 64 * n) for _, n in layers]
    ser, par = simref.parallel_cycles(layers, GPU, PARAMS)
    assert ser == pytest.approx(sum(float(mem_cycles(GPU, b, PARAMS)) for b in ios), rel=1e-12)
    bw = float(bandwidth(GPU, sum(ios), PARAMS))
    assert par >= sum(ios) / bw * (1 - 1e-9)
    assert par > max(float(mem_cycles(GPU, b, PARAMS)) for b in ios)


def test_overlap_on_simulated_by_hand() -> None:
    sms = GPU.sms
    # One kernel alone takes its simulated time, whatever its CTAs.
    for ctas in (1, sms, sms + 1, 3 * sms, 0):
        assert simref.overlap_on_simulated([(1000.0, ctas)], GPU) == pytest.approx(1000.0)
    # Two kernels that each fill every SM for one wave run one after the other.
    assert simref.overlap_on_simulated([(1000.0, sms), (500.0, sms)], GPU) == \
        pytest.approx(1500.0)
    # Half the SMs each: side by side.
    half = sms // 2
    assert simref.overlap_on_simulated([(1000.0, half), (600.0, half)], GPU) == \
        pytest.approx(1000.0)
    # Two waves of 2 * sms CTAs (500 each) beside one full-machine wave of 300.
    got = simref.overlap_on_simulated([(1000.0, 2 * sms), (300.0, sms)], GPU)
    assert got == pytest.approx(1300.0)


def test_gemm_breakdown_by_hand() -> None:
    cases = {"a": (np.zeros((10, 40), np.uint8), 8), "b": (np.zeros((10, 3), np.uint8), 8)}
    row = {"layers": "a+b", "ctas": "3", "instructions": "19200", "cycles": "6000"}
    b = simref.gemm_breakdown(row, cases)
    per_thread = 19200 / (3 * 64)  # 100
    assert b == pytest.approx({"fmas_per_thread": 40 * 16, "instructions_per_thread": per_thread,
                               "instructions_per_fma": per_thread / 640,
                               "cycles_per_kstep": 6000 / 3,  # K = 40 in 3 steps of 16
                               "cycles_per_warp_instruction": 6000 / per_thread})


def test_lane_union_by_hand_with_a_small_warp() -> None:
    codes = np.array([[1, 0, 0, 0],
                      [0, 2, 0, 0],
                      [0, 0, 0, 0],
                      [3, 3, 3, 0],
                      [0, 0, 0, 1]], np.uint8)
    # warps of 2 rows: {0,1}: union 2/4, busiest 1/4; {2,3}: 3/4, 3/4; {4, pad}: 1/4, 1/4
    got = simref.lane_union(codes, warp=2)
    assert got == pytest.approx({"union": (2 + 3 + 1) / 12, "busiest": (1 + 3 + 1) / 12})
    # one warp of 32 holds every row
    assert simref.lane_union(codes) == pytest.approx({"union": 1.0, "busiest": 3 / 4})


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields = ["config", "concurrent_kernel_sm", "kernel_class", "case", "layers", "cycles",
              "kernel_cycles", "instructions", "ctas", "streams", "wall_s"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({f: r.get(f, "1") for f in fields})


def _cases() -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(9)
    return {"a": (rng.integers(0, 4, (256, 48)).astype(np.uint8), 32),
            "b": (rng.integers(0, 4, (128, 16)).astype(np.uint8), 8)}


def _rows() -> list[dict]:
    def row(cls: str, layers: str, cycles: float, cks: str = "0", ctas: int = 4,
            config: str = "titanx") -> dict:
        return {"config": config, "concurrent_kernel_sm": cks, "kernel_class": cls,
                "case": layers, "layers": layers, "cycles": str(cycles), "ctas": str(ctas),
                "instructions": "64000"}
    return [row("dense_simt", "a", 9000), row("zero_skip", "a", 7000, ctas=4),
            row("zero_skip", "b", 3000, ctas=2), row("zero_skip", "b", 2500, cks="1"),
            row("compare", "b", 800), row("serial", "a+b", 10500),
            row("parallel", "a+b", 8000, cks="0"), row("parallel", "a+b", 7500, cks="1"),
            row("zero_skip", "a", 1, config="qv100")]


def test_compare_rows_by_hand(tmp_path: Path) -> None:
    cases = _cases()
    _write_csv(tmp_path / "s.csv", _rows())
    cmp = simref.compare_rows(tmp_path / "s.csv", cases, "titanx", PARAMS)
    assert [r["kernel_class"] for r in cmp.rows] == ["dense_simt", "zero_skip", "zero_skip",
                                                     "zero_skip", "compare", "serial",
                                                     "parallel", "parallel"]
    ser, par = simref.parallel_cycles([cases["a"], cases["b"]], GPU, PARAMS)
    for r in cmp.rows:
        cls = r["kernel_class"]
        want = (ser if cls == "serial" else par if cls == "parallel"
                else simref.predict(cls, *cases[r["layers"]], GPU, PARAMS))
        assert r["predicted"] == pytest.approx(want, rel=1e-12)
        sim = float(r["cycles"])
        assert r["error_pct"] == pytest.approx(100 * (want - sim) / sim)
    classes = {"compare", "dense_simt", "parallel", "serial", "zero_skip"}
    assert set(cmp.mape) == classes | {"all"}
    for c in classes:
        assert cmp.mape[c] == pytest.approx(np.mean([abs(r["error_pct"]) for r in cmp.rows
                                                     if r["kernel_class"] == c]))
    assert cmp.mape["all"] == pytest.approx(np.mean([abs(r["error_pct"]) for r in cmp.rows]))
    # concurrency rows: over the serial row; the scheduler on the concurrent_kernel_sm=0 alone
    # rows (a: 7000 over 4 CTAs, b: 3000 over 2: both fit on the SMs at once)
    conc = [r for r in cmp.rows if r["kernel_class"] == "parallel"]
    for r, sim in zip(conc, (8000, 7500), strict=True):
        assert r["sim_over_serial"] == pytest.approx(sim / 10500)
        assert r["model_over_serial"] == pytest.approx(par / ser)
        assert r["scheduler_over_serial"] == pytest.approx(7000 / 10000)
    assert all("sim_over_serial" not in r for r in cmp.rows if r["kernel_class"] != "parallel")
    # the table
    lines = cmp.table().splitlines()
    assert lines[0] == f"{'class':<12} {'rows':>4} {'MAPE %':>8}"
    assert lines[1:6] == [f"{c:<12} {n:>4} {cmp.mape[c]:>8.1f}" for c, n in
                          (("compare", 1), ("dense_simt", 1), ("parallel", 2), ("serial", 1),
                           ("zero_skip", 3))]
    assert lines[6] == ("parallel / serial (concurrent_kernel_sm, layers: simulated vs model; "
                        "scheduler on the simulated kernel times)")
    assert lines[7] == (f"  0 a+b: {8000 / 10500:.2f} vs {par / ser:.2f}; "
                        f"{7000 / 10000:.2f}")
    assert lines[8] == f"  1 a+b: {7500 / 10500:.2f} vs {par / ser:.2f}; {7000 / 10000:.2f}"
    assert lines[9] == f"GPGPU-Sim MAPE {cmp.mape['all']:.1f}%"
    assert len(lines) == 10
    # the other configuration is compared on its own machine
    q = simref.compare_rows(tmp_path / "s.csv", cases, "qv100", PARAMS)
    assert len(q.rows) == 1
    assert q.rows[0]["predicted"] == pytest.approx(
        simref.predict("zero_skip", *cases["a"], simref.SIM_GPUS["qv100"], PARAMS))


def test_compare_rows_without_alone_rows_or_a_serial_row(tmp_path: Path) -> None:
    cases = _cases()
    rows = [r for r in _rows() if r["kernel_class"] != "zero_skip" or r["layers"] != "b"]
    _write_csv(tmp_path / "s.csv", rows)
    cmp = simref.compare_rows(tmp_path / "s.csv", cases, "titanx", PARAMS)
    conc = [r for r in cmp.rows if r["kernel_class"] == "parallel"]
    assert conc and all("sim_over_serial" in r and "scheduler_over_serial" not in r
                        for r in conc)
    lines = cmp.table().splitlines()
    assert f"  0 a+b: {8000 / 10500:.2f} vs {conc[0]['model_over_serial']:.2f}" in lines
    _write_csv(tmp_path / "t.csv", [r for r in _rows() if r["kernel_class"] != "serial"])
    cmp = simref.compare_rows(tmp_path / "t.csv", cases, "titanx", PARAMS)
    assert all("sim_over_serial" not in r for r in cmp.rows)
    assert not any(line.startswith("parallel / serial") for line in cmp.table().splitlines())


def test_compare_rows_refuses_bad_inputs_naming_them(tmp_path: Path) -> None:
    cases = _cases()
    _write_csv(tmp_path / "s.csv", _rows())
    with pytest.raises(ReplayError, match=r"^config='h100': one of \['qv100', 'titanx'\]$"):
        simref.compare_rows(tmp_path / "s.csv", cases, "h100", PARAMS)
    with pytest.raises(ReplayError, match="GPGPU-Sim CSV not found: .*no.csv"):
        simref.compare_rows(tmp_path / "no.csv", cases, "titanx", PARAMS)
    _write_csv(tmp_path / "q.csv", [r for r in _rows() if r["config"] == "qv100"])
    with pytest.raises(ReplayError, match=r"q.csv: no rows for config 'titanx'$"):
        simref.compare_rows(tmp_path / "q.csv", cases, "titanx", PARAMS)
    with pytest.raises(ReplayError, match=r"s.csv: row zero_skip names cases \['b'\] that the "
                                          r"cases file lacks$"):
        simref.compare_rows(tmp_path / "s.csv", {"a": cases["a"]}, "titanx", PARAMS)
    _write_csv(tmp_path / "p.csv", [r for r in _rows() if r["kernel_class"] == "parallel"])
    with pytest.raises(ReplayError, match=r"row parallel names cases \['b'\] "):
        simref.compare_rows(tmp_path / "p.csv", {"a": cases["a"]}, "titanx", PARAMS)
    with pytest.raises(ReplayError, match=r"row parallel names cases \['a', 'b'\] "):
        simref.compare_rows(tmp_path / "p.csv", {}, "titanx", PARAMS)


def test_markdown_by_hand(tmp_path: Path) -> None:
    params = dataclasses.replace(PARAMS, latency_cycles=777.0)  # not the shipped calibration
    cases = _cases()
    _write_csv(tmp_path / "s.csv", _rows())
    np.savez(tmp_path / "c.npz", **{f"{n}|codes": c for n, (c, _) in cases.items()},
             **{f"{n}|N": np.int32(v) for n, (_, v) in cases.items()})
    assert simref.markdown(tmp_path / "none.csv", tmp_path / "c.npz", params) == []
    assert simref.markdown(tmp_path / "s.csv", tmp_path / "none.npz", params) == []
    lines = simref.markdown(tmp_path / "s.csv", tmp_path / "c.npz", params)
    text = "\n".join(lines)
    assert lines[0] == "## GPGPU-Sim (a second reference, no GPU)"
    assert "(`s.csv`; `python -m experiments.gpgpusim`)" in text
    assert lines.index("### qv100") < lines.index("### titanx")
    cmp = simref.compare_rows(tmp_path / "s.csv", cases, "titanx", params)
    at = lines.index("### titanx")
    assert lines[at:at + 4] == ["### titanx", "", "| class | rows | simulated cycles | predicted "
                                "| MAPE |", "| --- | ---: | ---: | ---: | ---: |"]
    rs = [r for r in cmp.rows if r["kernel_class"] == "zero_skip"]
    sim = np.mean([float(r["cycles"]) for r in rs])
    pred = np.mean([r["predicted"] for r in rs])
    assert (f"| zero_skip | 3 | {sim:,.0f} | {pred:,.0f} | {cmp.mape['zero_skip']:.1f}% |"
            in lines[at:])
    assert f"| **all** | 8 | | | **{cmp.mape['all']:.1f}%** |" in lines[at:]
    par = [r for r in cmp.rows if r["kernel_class"] == "parallel"]
    assert (f"| a+b | 0 | {8000 / 10500:.2f} | {par[0]['model_over_serial']:.2f} | "
            f"{7000 / 10000:.2f} |") in lines[at:]
    # the dense row's breakdown, its latency floor and the zero-skipping warp's union
    assert (f"model latency floor per k-step: "
            f"{params.latency_cycles / simref.GEMM_TILE.stages:,.0f} cycles):") in text
    dense = next(r for r in cmp.rows if r["kernel_class"] == "dense_simt")
    b = simref.gemm_breakdown(dense, cases)
    assert (f"| a | {b['fmas_per_thread']:,.0f} | {b['instructions_per_thread']:,.0f} | "
            f"{b['instructions_per_fma']:.1f} | {b['cycles_per_kstep']:,.0f} | "
            f"{b['cycles_per_warp_instruction']:.1f} | "
            f"{dense['predicted'] / 9000:.2f} |") in lines[at:]
    u = simref.lane_union(cases["a"][0])
    assert f"| a | {u['union']:.2f} | {u['busiest']:.2f} | {7000 / 9000:.2f} |" in lines[at:]
    ub = simref.lane_union(cases["b"][0])
    assert f"| b | {ub['union']:.2f} | {ub['busiest']:.2f} | - |" in lines[at:]
    assert (f"{b['instructions_per_fma']:.1f}-{b['instructions_per_fma']:.1f} instructions per "
            "FMA") in text
    assert (f"each warp issues once every {b['cycles_per_warp_instruction']:.1f}-"
            f"{b['cycles_per_warp_instruction']:.1f} cycles") in text
    assert lines[-1] == ""
    # the fixed text: each part a paragraph after a blank line, its table's header, sources
    for head, table in (
            ("Parallel over serial (the same layers' kernels on independent streams against "
             "one stream):", "| layers | concurrent_kernel_sm | simulated | model | scheduler on "
             "simulated kernels |"),
            ("A zero-skipping warp (`lane_union`: share of K stepped through):",
             "| case | warp union | busiest lane (model) | simulated zero_skip / dense_simt |"),
            ("Why the classes differ by more than 25% (stated as limits; the model is not "
             "changed to match the simulator):", None)):
        k = lines.index(head, at)
        assert lines[k - 1] == "" and lines[k + 1] == ""
        if table:
            assert lines[k + 2] == table
    k = next(i for i in range(at, len(lines)) if lines[i].startswith("Where a dense SIMT GEMM"))
    assert lines[k - 1] == "" and lines[k + 2].startswith("| case | FMAs / thread | "
                                                          "instructions / thread | "
                                                          "instructions / FMA | ")
    k = next(i for i in range(at, len(lines)) if lines[i].startswith("*Scheduler on simulated"))
    assert lines[k - 1] == "" and lines[k].endswith("not in how they share the machine.")
    assert "(`overlap_on_simulated`)" in lines[k]
    assert lines[2].startswith("Our CUDA kernels of SE-CNN's pieces "
                               "(`experiments/gpgpusim/secnn_kernels.cu`) on real Lite0/HED")
    assert "predicted by `secnn_jax.timing.simref` from the replayer's building blocks" in text
    for src in ("Gutierrez et al., HPCA 2018", "Jain et al., SIGMETRICS 2018",
                "Khairy et al., ISCA 2020"):
        assert src in text
    bullets = [line for line in lines[at:] if line.startswith("- *")]
    assert [b.split("*")[1] for b in bullets] == ["GEMM classes", "Zero skipping",
                                                   "Elementwise classes", "Concurrency"]
    assert bullets[0].endswith("the simulator is not evidence about real GPUs' absolute "
                               "cycles here.")
    assert ("so the simulated kernel takes as long as the dense one (last column above); the "
            "model charges the busiest lane.") in bullets[1]
    assert ("(what `sw_compaction` models) does not step through the union; ours does not "
            "compact") in bullets[1]
    assert bullets[1].endswith("which one a real implementation would be is a limit of both "
                               "sides.")
    assert ("dependent load-then-store work; both sides are latency-bound") in bullets[2]
    assert bullets[2].endswith("(consistent with two dependent DRAM round trips).")
    assert ("the scheduler reproduces the simulated overlap (table above); the model's overlap "
            "differs only through the kernels' modelled durations.") in bullets[3]
    # qv100 has one zero_skip row: no concurrency or breakdown section
    q = lines[lines.index("### qv100"):at]
    assert not any(line.startswith("Parallel over serial") for line in q)
    assert not any("gemm_breakdown" in line for line in q)
    assert q[-1] == "" and q[-2].startswith("| **all** | 1 |")


def test_markdown_defaults_are_the_committed_files() -> None:
    assert simref.SIM_CSV.name == "gpgpusim.csv" and simref.SIM_CASES.name == \
        "gpgpusim_cases.npz"
    assert simref.SIM_CSV.parent == Path(simref.__file__).with_name("measurements")
    lines = simref.markdown(params=PARAMS)
    assert lines == simref.markdown(simref.SIM_CSV, simref.SIM_CASES, PARAMS)
    assert lines and lines[0].startswith("## GPGPU-Sim")
