"""The GPGPU-Sim reference without the simulator: the case builder's im2col against numpy's
sliding windows, the stats parser, the runner's resume (the simulator replaced by a stub), the
model's predictions against its own building blocks and invariants, and the committed CSV's
comparison recomputed by hand."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import experiments.gpgpusim as G
from secnn_jax.timing import kernels as K
from secnn_jax.timing import simref
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.params import load_params

MEAS = Path(simref.__file__).with_name("measurements")


def test_im2col_codes_equals_numpy_sliding_windows():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (7, 9, 3)).astype(np.uint8)
    got = G.im2col_codes(codes, (3, 3), (2, 1), ((1, 1), (0, 2)))
    padded = np.pad(codes, [(1, 1), (0, 2), (0, 0)])
    win = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(0, 1))[::2, ::1]
    # win [Ho, Wo, C, kh, kw] -> [Ho*Wo, kh*kw*C] in (kh, kw, C) order, as the kernel reads it
    want = win.transpose(0, 1, 3, 4, 2).reshape(win.shape[0] * win.shape[1], -1)
    np.testing.assert_array_equal(got, want)


def test_parse_stats_reads_the_last_totals_and_sums_kernels():
    out = ("gpu_sim_cycle = 100\ngpu_tot_sim_cycle = 100\ngpu_tot_sim_insn = 7\n"
           "gpu_sim_cycle = 50\ngpu_tot_sim_cycle = 150\ngpu_tot_sim_insn = 9\n")
    assert G.parse_stats(out) == {"cycles": 150, "kernel_cycles": 150, "instructions": 9}
    with pytest.raises(G.SimError, match="gpu_tot_sim_cycle"):
        G.parse_stats("no statistics")


def test_runner_resumes_after_its_last_row(tmp_path, monkeypatch):
    codes = np.array([[0, 1, 2, 3], [1, 1, 0, 0]], np.uint8)
    np.savez_compressed(tmp_path / "c.npz", **{"m:a|codes": codes, "m:a|N": np.int32(4),
                                              "m:b|codes": codes, "m:b|N": np.int32(4)})
    calls = []

    def fake_sim(paths, exe, args, config, *, concurrent_kernel_sm=False):
        calls.append(args[0])
        return f"gpu_sim_cycle = {len(calls)}\ngpu_tot_sim_cycle = {len(calls)}\n" \
               f"gpu_tot_sim_insn = 1\nSECNN_CASE {args[0]} ok\n"

    monkeypatch.setattr(G, "simulate", fake_sim)
    monkeypatch.setattr(G, "compile_kernels", lambda *a, **k: tmp_path / "exe")
    out = tmp_path / "sim.csv"
    first = list(G.run_cases(G.SimPaths(tmp_path), "titanx", tmp_path / "c.npz", out,
                             progress=False))
    rows = G.default_rows(["m:a", "m:b"])
    assert len(first) == len(rows) == len(calls)
    assert list(G.run_cases(G.SimPaths(tmp_path), "titanx", tmp_path / "c.npz", out,
                            progress=False)) == []
    with open(out, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)


def test_runner_refuses_a_wrong_kernel_result(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "c.npz", **{"m:a|codes": np.ones((2, 2), np.uint8),
                                              "m:a|N": np.int32(2)})
    monkeypatch.setattr(G, "simulate", lambda *a, **k: "SECNN_CASE zero_skip WRONG\n")
    monkeypatch.setattr(G, "compile_kernels", lambda *a, **k: tmp_path / "exe")
    with pytest.raises(G.SimError, match="wrong"):
        list(G.run_cases(G.SimPaths(tmp_path), "titanx", tmp_path / "c.npz",
                         tmp_path / "o.csv", progress=False))


codes_strategy = st.integers(1, 40).flatmap(
    lambda m: st.integers(1, 48).flatmap(
        lambda k: st.lists(st.integers(0, 3), min_size=m * k, max_size=m * k).map(
            lambda v: np.asarray(v, np.uint8).reshape(m, k))))


@settings(max_examples=25, deadline=None)
@given(codes=codes_strategy, n_out=st.integers(1, 40))
def test_prediction_invariants(codes, n_out):
    gpu = simref.SIM_GPUS["titanx"]
    dense = simref.predict("dense_simt", codes, n_out, gpu)
    skip = simref.predict("zero_skip", codes, n_out, gpu)
    amend = simref.predict("amend", codes, n_out, gpu)
    assert 0 < skip <= dense  # skipping never costs more than using every input
    # firing inputs include every mispredicted one; the amendment moves y twice more
    fires_all = np.ones_like(codes)
    assert simref.predict("zero_skip", fires_all, n_out, gpu) == pytest.approx(dense)
    assert amend >= simref.predict("zero_skip", (codes & 1).astype(np.uint8), n_out, gpu)


def test_elementwise_prediction_is_the_replayers_elementwise_kernel():
    codes = np.array([[0, 1, 2, 3]] * 300, np.uint8)
    gpu, params = simref.SIM_GPUS["qv100"], load_params()
    n, misses = codes.size, int(((codes & 1) == 1).sum())
    want = K.elementwise_cost(n, n + 4 * misses, 3.0 * n, gpu, "fp32", params).cycles
    assert simref.predict("compact", codes, 8, gpu, params) == pytest.approx(want)


def test_serial_is_the_sum_and_parallel_between_longest_and_sum():
    rng = np.random.default_rng(1)
    layers = [(rng.integers(0, 4, (200, 64)).astype(np.uint8), 32) for _ in range(3)]
    gpu = simref.SIM_GPUS["titanx"]
    alone = [simref.predict("zero_skip", c, n, gpu) for c, n in layers]
    ser, par = simref.parallel_cycles(layers, gpu)
    assert ser == pytest.approx(sum(alone))
    assert max(alone) <= par <= ser


def test_bad_codes_and_class_are_refused():
    gpu = simref.SIM_GPUS["titanx"]
    with pytest.raises(ReplayError, match="codes"):
        simref.predict("zero_skip", np.full((2, 2), 4, np.uint8), 2, gpu)
    with pytest.raises(ReplayError, match="kernel_class"):
        simref.predict("winograd", np.zeros((2, 2), np.uint8), 2, gpu)


def test_committed_csv_compares_row_by_row():
    cases = G.load_cases(MEAS / "gpgpusim_cases.npz")
    with open(MEAS / "gpgpusim.csv", newline="") as fh:
        configs = sorted({r["config"] for r in csv.DictReader(fh)})
    for config in configs:
        cmp = simref.compare_rows(MEAS / "gpgpusim.csv", cases, config)
        errs = [abs(r["error_pct"]) for r in cmp.rows]
        assert cmp.mape["all"] == pytest.approx(float(np.mean(errs)))
        for r in cmp.rows:  # every prediction recomputed from the cases
            if r["kernel_class"] not in ("serial", "parallel"):
                codes, n = cases[r["case"]]
                assert r["predicted"] == pytest.approx(
                    simref.predict(r["kernel_class"], codes, n, simref.SIM_GPUS[config]))
        assert cmp.table().splitlines()[-1].startswith("GPGPU-Sim MAPE ")
        for r in cmp.rows:  # the simulator ran the same kernels: serial = the sum of alone
            if r["kernel_class"] == "serial":
                alone = [float(a["cycles"]) for a in cmp.rows if a["kernel_class"] == "zero_skip"
                         and a["case"] in r["layers"].split("+")]
                assert float(r["cycles"]) == pytest.approx(sum(alone), rel=0.01)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(1.0, 1e6), st.integers(1, 120)), min_size=1, max_size=4))
def test_scheduler_on_simulated_kernels_between_longest_and_sum(kernels):
    gpu = simref.SIM_GPUS["titanx"]
    par = simref.overlap_on_simulated(kernels, gpu)
    longest, total = max(c for c, _ in kernels), sum(c for c, _ in kernels)
    assert longest * (1 - 1e-9) <= par <= total * (1 + 1e-9)
    if sum(n for _, n in kernels) <= gpu.sms:  # every CTA on an SM of its own: full overlap
        assert par == pytest.approx(longest)


def test_scheduler_on_simulated_kernels_of_the_committed_rows():
    cases = G.load_cases(MEAS / "gpgpusim_cases.npz")
    cmp = simref.compare_rows(MEAS / "gpgpusim.csv", cases, "titanx")
    conc = [r for r in cmp.rows if "scheduler_over_serial" in r]
    assert conc
    for r in conc:
        alone = [next(a for a in cmp.rows if a["kernel_class"] == "zero_skip"
                      and a["layers"] == n and a["concurrent_kernel_sm"] == "0")
                 for n in r["layers"].split("+")]
        cyc = [float(a["cycles"]) for a in alone]
        # These kernels' CTAs all fit on the machine's SMs at once: the scheduler's overlap is
        # the longest kernel.
        assert sum(int(a["ctas"]) for a in alone) <= simref.SIM_GPUS["titanx"].sms
        assert r["scheduler_over_serial"] == pytest.approx(max(cyc) / sum(cyc))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.integers(1, 40), st.floats(0.0, 1.0), st.integers(0, 2**31))
def test_lane_union_against_a_loop(m, k, density, seed):
    rng = np.random.default_rng(seed)
    codes = (rng.random((m, k)) < density).astype(np.uint8) * rng.integers(1, 4, (m, k),
                                                                           dtype=np.uint8)
    unions, busiest = [], []
    for w0 in range(0, m, 32):
        rows = codes[w0:w0 + 32] != 0
        unions.append(sum(bool(rows[:, j].any()) for j in range(k)) / k)
        busiest.append(max(int(r.sum()) for r in rows) / k)
    got = simref.lane_union(codes)
    assert got["union"] == pytest.approx(np.mean(unions))
    assert got["busiest"] == pytest.approx(np.mean(busiest))
    assert got["busiest"] <= got["union"] + 1e-12


def test_gemm_breakdown_from_the_csv_columns():
    cases = G.load_cases(MEAS / "gpgpusim_cases.npz")
    with open(MEAS / "gpgpusim.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kernel_class"] == "dense_simt"]
    assert rows
    for r in rows:
        k = cases[r["case"]][0].shape[1]
        b = simref.gemm_breakdown(r, cases)
        per_thread = int(r["instructions"]) / (int(r["ctas"]) * 64)
        assert b["instructions_per_fma"] == pytest.approx(per_thread / (k * 16))
        assert b["cycles_per_kstep"] == pytest.approx(int(r["cycles"]) / -(-k // 16))
        assert b["cycles_per_warp_instruction"] == pytest.approx(int(r["cycles"]) / per_thread)
