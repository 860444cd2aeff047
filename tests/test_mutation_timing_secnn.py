"""Mutation tests of :mod:`secnn_jax.timing.secnn` (issue 23 item 4): the SE-CNN machine of a
stock and an extended GPU field by field from the configuration, and the two-phase schedule
computed by hand (the parallel kernels' bytes at the L2 or the DRAM bandwidth, a correction
waiting for its layer's parallel work, releases per frame). Peer costs are not tested here."""

from __future__ import annotations

import numpy as np
import pytest

from secnn_jax.timing import scheduler as SCH
from secnn_jax.timing import secnn as SE
from secnn_jax.timing.gpus import GPUS
from secnn_jax.timing.params import ModelParams, SchemeConfig

H100, PASCAL = GPUS["h100"], GPUS["gtx1080ti"]


@pytest.mark.parametrize("gpu", [H100, PASCAL])
def test_the_extended_machine_reads_the_sm_extension_fields(gpu) -> None:
    cfg = SchemeConfig(comparators_per_sm=48, hw_compaction="none", hw_dependency_us=0.5,
                       buffer_placement="on_chip", compare_ops_per_neuron=3.0,
                       sw_compaction="software")
    m = SE.Machine.of(True, gpu, cfg)
    assert m.extended is True
    assert m.comparators_per_sm == 48.0 and isinstance(m.comparators_per_sm, float)
    assert m.compare_instructions == 0.0
    assert m.compaction == "none"
    assert m.dependency_cycles == pytest.approx(0.5 * gpu.clock_mhz)
    assert m.buffer_placement == "on_chip"
    # Default comparators: one beside every FP32 lane.
    d = SE.Machine.of(True, gpu, SchemeConfig(hw_compaction="auto", buffer_placement="off_chip"))
    assert d.comparators_per_sm == float(gpu.fp32_lanes)
    assert d.compaction == "auto" and d.buffer_placement == "off_chip"


@pytest.mark.parametrize(("placement", "want"), [("on_chip", "cache"), ("cache", "cache"),
                                                 ("off_chip", "off_chip")])
def test_the_stock_machine_compares_in_software(placement: str, want: str) -> None:
    """A stock GPU: compares are ``compare_ops_per_neuron`` SIMT instructions each, at the FP32
    lanes' rate divided by that count, no hardware dependency signal, and no on-chip buffer."""
    cfg = SchemeConfig(comparators_per_sm=48, hw_compaction="none", buffer_placement=placement,
                       compare_ops_per_neuron=4.0, sw_compaction="none")
    m = SE.Machine.of(False, H100, cfg)
    assert m.extended is False
    assert m.comparators_per_sm == pytest.approx(H100.fp32_lanes / 4.0)
    assert m.compare_instructions == 4.0
    assert m.compaction == "none"
    assert m.dependency_cycles is None
    assert m.buffer_placement == want


def _serial(dur, nbytes, dep, gap=0.0) -> SCH.Chain:
    dur = np.asarray(dur, np.float64)
    k = dur.shape[1]
    return SCH.Chain(duration=dur, busy=np.zeros_like(dur), nbytes=np.asarray(nbytes, float),
                     gap=np.full(k, gap), issue=np.zeros(k), dep=np.asarray(dep),
                     labels=tuple(f"s{i}" for i in range(k)))


@pytest.mark.parametrize("l2_factor", [1.0, 3.0])
def test_the_parallel_bytes_set_the_bandwidth(l2_factor: float) -> None:
    """One layer whose parallel kernel is bound by its bytes: in L2 (the frame's bytes fit) at
    the L2 factor times DRAM's bandwidth, else at DRAM's; the frame's bytes are the parallel
    and the serial ones together."""
    params = ModelParams(l2_bandwidth_factor=l2_factor)
    bw = H100.dram_bytes_per_clk
    w, d = [np.array([[1.0], [1.0]])], [np.zeros((2, 1))]
    small = 1000.0 * bw
    big = H100.l2_bytes  # with the serial item's bytes, the frame no longer fits in L2
    ser = _serial([[5.0], [5.0]], [[0.0], [1.0]], dep=[0])
    f = SE.schedule(w, d, [1], np.array([[small], [big]]), np.array([10.0]), ser, H100, params)
    # frame 0: 1000 cycles of bytes at L2 speed; frame 1: at DRAM speed.
    done = np.array([10.0 + 1000.0 / l2_factor, 10.0 + big / bw])
    np.testing.assert_allclose(f.parallel_done[:, 0], done, rtol=1e-12)
    np.testing.assert_allclose(f.start[:, 0], done, rtol=1e-12)  # the correction waits
    np.testing.assert_allclose(f.end[:, 0], done + 5.0, rtol=1e-12)
    np.testing.assert_allclose(f.total, np.maximum(done + 5.0, (big + 1.0) / bw * np.array([0, 1])),
                               rtol=1e-12)
    np.testing.assert_array_equal(f.parallel_release, [10.0])
    np.testing.assert_allclose(f.busy, [1.0, 1.0])  # the parallel CTA's work


def test_two_layers_corrections_follow_their_parallel_work() -> None:
    """Layer 0's parallel work (one CTA of 100 cycles) and layer 1's (one of 300, released at
    50 per frame 0, 0 in frame 1), corrections of 20 cycles each after a 4-cycle boundary,
    an op kernel (no dependence) between them; the frame starts at ``start_at``."""
    w = [np.array([[100.0], [100.0]]), np.array([[300.0], [300.0]])]
    d = [np.zeros((2, 1)), np.zeros((2, 1))]
    release = np.array([[0.0, 50.0], [0.0, 0.0]])
    ser = _serial(np.full((2, 3), 20.0), np.zeros((2, 3)), dep=[0, -1, 1], gap=4.0)
    f = SE.schedule(w, d, [1, 1], 0.0, release, ser, H100, ModelParams(), start_at=30.0)
    np.testing.assert_allclose(f.parallel_done, [[100.0, 350.0], [100.0, 300.0]])
    np.testing.assert_allclose(f.start, [[100.0, 124.0, 350.0], [100.0, 124.0, 300.0]])
    np.testing.assert_allclose(f.end, f.start + 20.0)
    np.testing.assert_allclose(f.total, [370.0, 320.0])
    np.testing.assert_array_equal(f.parallel_release, release)
    np.testing.assert_allclose(f.busy, [400.0, 400.0])
