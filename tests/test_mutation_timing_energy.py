"""Mutation tests of :mod:`secnn_jax.timing.energy` (issue 23 item 4): the per-GPU parameters
built at test time (``ENERGY`` is built at import, out of mutmut's reach) against the module
docstring's formulas, every component of ``energy_parts`` from one kind of work at a time,
``graph_work`` against numpy, and the area and buffer sizes computed by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import energy as E
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpus import ELEMENT_BYTES, GPUS, PRECISIONS

_ARGS = dict(node=5, volts=0.8, dram_pj_bit=3.9, dram_src="DRAM-SRC", tdp=700.0,
             static_frac=0.15, proc_src="PROC-SRC", tdp_src="TDP-SRC")


def _built(gpu: str, **kw) -> E.EnergyParams:
    a = dict(_ARGS, **kw)
    return E._params(gpu, a["node"], a["volts"], a["dram_pj_bit"], a["dram_src"], a["tdp"],
                     a["static_frac"], a["proc_src"], a["tdp_src"])


@pytest.mark.parametrize(("gpu", "node", "volts", "tdp", "static_frac"),
                         [("h100", 5, 0.8, 700.0, 0.15), ("gtx1080ti", 16, 1.05, 250.0, 0.2),
                          ("a100", 7, 0.9, 400.0, 0.1)])
def test_params_follow_the_documented_formulas(gpu: str, node: float, volts: float, tdp: float,
                                               static_frac: float) -> None:
    """Every energy of ``_params`` from the 45 nm figures scaled by ``(node/45)(V/0.9)^2``, the
    DRAM energy per bit times 8, static power a fraction of TDP, and the issue overheads from
    the premise (dynamic power over the peak rate, less the counted arithmetic and register
    file), capped at FP32's on the SIMT lanes."""
    p = _built(gpu, node=node, volts=volts, tdp=tdp, static_frac=static_frac, dram_pj_bit=14.0)
    s = (node / 45.0) * (volts / 0.9) ** 2
    assert p.gpu == gpu and p.node_nm == node and p.volts == volts
    assert dict(p.fma_pj) == pytest.approx({"fp32": 4.6 * s, "tf32": 4.6 * s, "fp16": 1.5 * s})
    assert dict(p.tensor_mac_pj) == pytest.approx(
        {"fp32": 4.6 * s, "tf32": 1.5 * s * 1.3, "fp16": 1.5 * s})
    assert p.compare_pj == pytest.approx(0.1 * s)
    assert p.rf_byte_pj == pytest.approx(1.25 * s) and p.smem_byte_pj == pytest.approx(1.25 * s)
    assert p.l2_byte_pj == pytest.approx(12.5 * s)
    assert p.dram_byte_pj == pytest.approx(14.0 * 8)
    assert p.static_w == pytest.approx(static_frac * tdp) and p.tdp_w == tdp
    g = GPUS[gpu]
    ops_per_s = g.sms * g.clock_mhz * 1e6
    dyn = tdp * (1 - static_frac)
    fma = {"fp32": 4.6 * s, "tf32": 4.6 * s, "fp16": 1.5 * s}
    want_simt = {}
    for prec in PRECISIONS:
        rate = g.simt_fma_per_clk(prec)
        counted = fma[prec] + 4 * ELEMENT_BYTES[prec] * 1.25 * s
        want_simt[prec] = max(dyn / (rate * ops_per_s) * 1e12 - counted, 0.0) if rate else 0.0
    want_simt = {k: min(v, want_simt["fp32"]) for k, v in want_simt.items()}
    assert dict(p.issue_simt_pj) == pytest.approx(want_simt, rel=1e-12)
    tensor = dict(p.tensor_mac_pj)
    for prec in PRECISIONS:
        rate = g.tensor_fma_per_clk.get(prec, 0)
        counted = tensor[prec] + 0.5 * ELEMENT_BYTES[prec] * 1.25 * s
        want = max(dyn / (rate * ops_per_s) * 1e12 - counted, 0.0) if rate else 0.0
        assert p.issue_tensor_pj[prec] == pytest.approx(want, rel=1e-12, abs=1e-12), prec
    # The committed table is built by the same rule from its listed arguments.
    assert E.ENERGY["h100"].fma_pj["fp32"] == pytest.approx(4.6 * (5 / 45) * (0.8 / 0.9) ** 2)


def test_issue_overhead_is_never_negative_and_fp16_simt_is_capped() -> None:
    """A tiny board power leaves nothing for issue (clamped at 0, not negative); Pascal's slow
    FP16 lanes (1/64 rate) get FP32's per-op overhead, not 64 times it."""
    low = _built("h100", tdp=1e-6)
    assert all(v == 0.0 for v in low.issue_simt_pj.values())
    assert all(v == 0.0 for v in low.issue_tensor_pj.values())
    pascal = _built("gtx1080ti", node=16, volts=1.05, tdp=250.0)
    assert pascal.issue_simt_pj["fp16"] == pascal.issue_simt_pj["fp32"] > 0
    assert all(v == 0.0 for v in pascal.issue_tensor_pj.values())  # no tensor cores


def test_params_sources_name_every_field_and_cite_the_arguments() -> None:
    """Each numeric field has a source; the process, TDP and DRAM sources are the arguments'
    and the static share and the SM count the numbers used."""
    p = _built("h100", static_frac=0.25)
    fields = {f.name for f in dataclasses.fields(E.EnergyParams)} - {"gpu", "sources"}
    assert set(p.sources) == fields
    assert p.sources["node_nm"] == p.sources["volts"] == "PROC-SRC"
    assert p.sources["tdp_w"] == "TDP-SRC" and p.sources["dram_byte_pj"] == "DRAM-SRC"
    assert p.sources["static_w"] == "assumption: 25% of the board power is static/idle"
    assert p.sources["issue_simt_pj"] == p.sources["issue_tensor_pj"]
    g = GPUS["h100"]
    assert f"{g.sms} SMs x {g.clock_mhz:g} MHz" in p.sources["issue_simt_pj"]
    for k in ("fma_pj", "tensor_mac_pj", "compare_pj", "rf_byte_pj", "smem_byte_pj",
              "l2_byte_pj"):
        assert p.sources[k].startswith(E._HOROWITZ + ": "), k
        assert p.sources[k].endswith("; " + E._RULE), k


def test_unknown_gpu_gets_a_copy_of_the_h100_parameters() -> None:
    p = E.get_energy_params("mygpu")
    assert p.gpu == "mygpu"
    assert dataclasses.replace(p, gpu="h100") == E.ENERGY["h100"]
    assert E.get_energy_params("a100") is E.ENERGY["a100"]


def test_graph_work_sums_every_kernel_of_every_track() -> None:
    rng = np.random.default_rng(1)
    span_work = {"stream": {k: rng.integers(0, 9, (3, 4)) for k in E.WORK_KEYS},
                 "serial": {k: rng.integers(0, 9, (3, 2)) for k in E.WORK_KEYS[:3]}}
    got = E.graph_work(span_work)
    assert set(got) == set(E.WORK_KEYS)
    for k in E.WORK_KEYS:
        want = span_work["stream"][k].sum(1) + (span_work["serial"][k].sum(1)
                                                if k in span_work["serial"] else 0)
        np.testing.assert_array_equal(got[k], want)
        assert got[k].dtype == np.float64
    empty = E.graph_work({})
    assert all(v.shape == (0,) for v in empty.values()) and set(empty) == set(E.WORK_KEYS)


@pytest.mark.parametrize(("gpu", "precision"), [("h100", "fp16"), ("a100", "tf32"),
                                                ("gtx1080ti", "FP32")])
def test_energy_parts_one_kind_of_work_at_a_time(gpu: str, precision: str) -> None:
    """Each work key priced alone, by the docstring's formulas (picojoules -> microjoules)."""
    p = E.ENERGY[gpu]
    prec = precision.lower()
    eb = ELEMENT_BYTES[prec]
    n = 1e6
    zero = {k: np.zeros(2) for k in E.WORK_KEYS}

    def parts(key: str) -> dict[str, np.ndarray]:
        return E.energy_parts(dict(zero, **{key: np.array([n, 2 * n])}), np.array([3.0, 5.0]),
                              gpu, precision)

    want = {
        "fma_simt": {"compute": n * p.fma_pj[prec], "on_chip": 4 * n * eb * p.rf_byte_pj,
                     "issue": n * p.issue_simt_pj[prec]},
        "fma_tensor": {"compute": n * p.tensor_mac_pj[prec],
                       "on_chip": 0.5 * n * eb * p.rf_byte_pj,
                       "issue": n * p.issue_tensor_pj[prec]},
        "compares": {"compute": n * p.compare_pj},
        "compare_instructions": {"issue": n * p.issue_simt_pj["fp32"]},
        "smem_bytes": {"on_chip": n * p.smem_byte_pj},
        "l2_bytes": {"on_chip": n * p.l2_byte_pj},
        "dram_bytes": {"dram": n * p.dram_byte_pj},
    }
    for key, comps in want.items():
        got = parts(key)
        assert list(got) == list(E.COMPONENTS), key
        for c in E.COMPONENTS:
            if c == "static":
                np.testing.assert_allclose(got[c], p.static_w * np.array([3.0, 5.0]))
                continue
            v = comps.get(c, 0.0) * 1e-6
            np.testing.assert_allclose(got[c], [v, 2 * v], rtol=1e-12, atol=0, err_msg=key)
    # A missing key counts as no work.
    only = E.energy_parts({"dram_bytes": np.array([n])}, np.zeros(1), gpu, precision)
    assert only["compute"] == 0 and only["dram"][0] == pytest.approx(n * p.dram_byte_pj * 1e-6)


def test_buffers_and_area_by_hand() -> None:
    layers = [LayerGeom.conv("a", n=1, h=10, cin=3, cout=4, k=3),
              LayerGeom.dense("fc", n=1, fin=50, fout=7)]
    n_in = 10 * 10 * 3 + 50
    n_out = layers[0].n_outputs + 7
    assert E.buffer_bytes(layers, "fp32") == n_in * 4 * 2
    assert E.buffer_bytes(layers, "FP16", state_values=3) == n_in * 2 * 3
    assert E.method_buffer_bytes(layers, "fp16", "secnn") == n_in * 2 * 2
    assert E.method_buffer_bytes(layers, "tf32", "deltacnn") == 4 * (n_in + n_out)
    assert E.method_buffer_bytes(layers, "FP16", "cbinfer") == 2 * (n_in + n_out)
    with pytest.raises(ReplayError, match="unknown method 'x'; known: secnn, deltacnn, cbinfer"):
        E.method_buffer_bytes(layers, "fp32", "x")
    for key, cell in (("gtx1080ti", 0.074), ("v100", 0.074), ("a100", 0.027), ("h100", 0.021)):
        g = GPUS[key]
        node = E.ENERGY[key].node_nm
        die = E.DIE_MM2[key]
        for cmp_per_sm, state in ((None, 2), (32, 1)):
            a = E.secnn_area(layers, g, "fp16", comparators_per_sm=cmp_per_sm,
                             state_values=state)
            nbytes = n_in * 2 * state
            comp = (cmp_per_sm or g.fp32_lanes) * g.sms * 137.0 * (node / 45) ** 2 / 1e6
            buf = nbytes * 8 * cell * 1.6 / 1e6
            assert a.buffer_bytes == nbytes
            assert a.comparators_mm2 == pytest.approx(comp, rel=1e-12)
            assert a.buffer_mm2 == pytest.approx(buf, rel=1e-12)
            assert a.die_mm2 == die and a.sm_mm2 == pytest.approx(die * 0.6 / g.sms)
            assert dict(a.placement_shares) == pytest.approx(
                {"on_chip": (comp + buf) / die, "off_chip": comp / die}, rel=1e-12)
    # An unknown GPU: the H100's node (5 nm bitcell) and a default die of 814 mm^2.
    other = dataclasses.replace(GPUS["h100"], key="mygpu")
    a = E.secnn_area(layers, other)
    assert a.die_mm2 == 814
    assert a.buffer_mm2 == pytest.approx(n_in * 4 * 2 * 8 * 0.021 * 1.6 / 1e6)
    # A node missing from the bitcell table falls back to the 5 nm cell.
    odd = dataclasses.replace(E.ENERGY["h100"], gpu="odd", node_nm=3)
    E_odd = dict(E.ENERGY, odd=odd)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "ENERGY", E_odd)
        b = E.secnn_area(layers, dataclasses.replace(GPUS["h100"], key="odd"))
    assert b.buffer_mm2 == pytest.approx(n_in * 4 * 2 * 8 * 0.021 * 1.6 / 1e6)
    assert b.comparators_mm2 == pytest.approx(128 * 132 * 137.0 * (3 / 45) ** 2 / 1e6)


def test_params_source_of_a_gpu_without_an_sm_source() -> None:
    """A GPU whose configuration cites no source for its SM count points to the GPU table."""
    bare = dataclasses.replace(GPUS["h100"], sources={})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "GPUS", dict(GPUS, h100=bare))
        p = _built("h100")
    assert p.sources["issue_simt_pj"].endswith("per-SM rate: see secnn_jax.timing.gpus)")
