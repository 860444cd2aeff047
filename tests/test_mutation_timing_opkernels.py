"""Op kernels between the linear layers (``secnn_jax/timing/opkernels.py``) against hand
computations from the module's documented rules: reading op records, an unfused kernel's bytes,
and ``plan_ops`` under ``none`` and ``epilogue`` (which groups stay kernels, the bytes a fused
group adds to its layer, SE-CNN's per-layer pass over the layer's outputs). Written where
mutation testing (``mutmut``, docs/mutation.md) found changes no test noticed."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import opkernels as O
from secnn_jax.timing.gpus import H100
from secnn_jax.timing.kernels import elementwise_cost
from secnn_jax.timing.params import ModelParams, TimingConfigError
from secnn_jax.timing.sm import mem_cycles

PARAMS = ModelParams(efficiency={"fp32": 0.5, "tf32": 0.75, "fp16": 0.8}, latency_cycles=600.0,
                     l2_bandwidth_factor=1.25, extra_kernel_us=5.0, cta_overhead_cycles=30.0)
GEOMS = (LayerGeom("a", "conv", 1, 8, 8, 4, 8, 8, 16),       # 1024 outputs
         LayerGeom("b", "conv", 1, 8, 8, 16, 8, 8, 32))      # 2048 outputs


def test_op_records_from_every_form() -> None:
    full = dict(name="bn", kind="affine", after=0, reads=10, param_reads=2, writes=10, flops=20,
                epilogue_of=0, extra_reads=3)
    g = O.OpGeom.from_op(full)
    assert g == O.OpGeom(**full) and O.OpGeom.from_op(g) is g
    assert O.OpGeom.from_op(SimpleNamespace(**full)) == g
    assert g.as_dict() == full
    # defaults of the optional fields, from a dict and from an object
    short = dict(name=7, kind="pool", after="1", reads=5.0, writes=4)
    want = O.OpGeom("7", "pool", 1, 5, 0, 4, 0, -1, 0)
    assert O.OpGeom.from_op(short) == want
    assert O.OpGeom.from_op(SimpleNamespace(**short)) == want
    for bad in (dict(name="x", kind="pool", after=0, reads=1),  # no writes
                dict(name="x", kind="pool", after="one", reads=1, writes=1)):
        with pytest.raises(TimingConfigError, match=r"op record .* is missing a field or has a "
                                                    r"bad value"):
            O.OpGeom.from_op(bad)


def test_an_unfused_kernel_moves_what_it_reads_and_writes() -> None:
    op = O.OpGeom("x", "binary", 0, reads=10, param_reads=3, writes=7, flops=0)
    assert O.op_bytes(op, "fp32") == 4.0 * 20 and O.op_bytes(op, "TF32") == 80.0
    assert O.op_bytes(op, "fp16") == 2.0 * 20


OPS = (
    O.OpGeom("pre", "pool", -1, reads=300, param_reads=0, writes=256, flops=300),
    O.OpGeom("bn", "affine", 0, reads=1024, param_reads=8, writes=1024, flops=2048,
             epilogue_of=0),
    O.OpGeom("relu", "activation", 0, reads=1024, param_reads=0, writes=512, flops=1024,
             epilogue_of=0),
    O.OpGeom("add", "binary", 0, reads=2048, param_reads=0, writes=1024, flops=1024,
             epilogue_of=0, extra_reads=1024),
    O.OpGeom("pool", "pool", 0, reads=1024, param_reads=0, writes=256, flops=1024,
             epilogue_of=0),                      # not a fusable kind: stays a kernel
    O.OpGeom("act", "activation", 1, reads=2048, param_reads=0, writes=0, flops=2048,
             epilogue_of=-1),                     # no epilogue to join: stays a kernel
)


def _kernel(op: O.OpGeom, precision: str, occ_cap: int | None):
    return elementwise_cost(op.writes or op.reads, O.op_bytes(op, precision), op.flops, H100,
                            precision, PARAMS, occ_cap)


@pytest.mark.parametrize("precision,occ_cap", [("fp32", None), ("fp16", 1)])
def test_plan_without_fusion_runs_every_group(precision: str, occ_cap: int | None) -> None:
    p = O.plan_ops(OPS, GEOMS, H100, precision, PARAMS, "none", occ_cap)
    assert p.fusion == "none" and p.kernels == tuple(range(len(OPS)))
    assert p.names == tuple(o.name for o in OPS)
    want = [_kernel(o, precision, occ_cap) for o in OPS]
    np.testing.assert_array_equal(p.kernel_cycles, [c.cycles for c in want])
    np.testing.assert_array_equal(p.kernel_busy, [c.busy_cycles for c in want])
    np.testing.assert_array_equal(p.kernel_ctas, [c.n_ctas for c in want])
    np.testing.assert_array_equal(p.kernel_bytes, [O.op_bytes(o, precision) for o in OPS])
    np.testing.assert_array_equal(p.kernel_after, [-1, 0, 0, 0, 0, 1])
    assert p.kernel_after.dtype == np.int64 and p.kernel_ctas.dtype == np.int64
    for a in (p.layer_extra, p.layer_extra_bytes, p.secnn_pass, p.secnn_pass_busy,
              p.secnn_pass_bytes):
        np.testing.assert_array_equal(a, np.zeros(2))


def test_the_occupancy_cap_reaches_the_op_kernels() -> None:
    """A latency-bound kernel of many CTAs per SM: capped at one resident CTA it is slower."""
    big = O.OpGeom("big", "activation", 0, reads=2**24, param_reads=0, writes=2**24, flops=0)
    capped = O.plan_ops((big,), GEOMS, H100, "fp16", PARAMS, "none", occ_cap=1)
    free = O.plan_ops((big,), GEOMS, H100, "fp16", PARAMS, "none")
    assert capped.kernel_cycles[0] == _kernel(big, "fp16", 1).cycles
    assert free.kernel_cycles[0] == _kernel(big, "fp16", None).cycles
    assert capped.kernel_cycles[0] > free.kernel_cycles[0]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_plan_with_epilogue_fusion(precision: str) -> None:
    eb = {"fp32": 4, "fp16": 2}[precision]
    p = O.plan_ops(OPS, GEOMS, H100, precision, PARAMS, "epilogue")
    assert p.kernels == (0, 4, 5)  # pre (before layer 0), pool, act
    want = [_kernel(OPS[i], precision, None) for i in p.kernels]
    np.testing.assert_array_equal(p.kernel_cycles, [c.cycles for c in want])
    np.testing.assert_array_equal(p.kernel_after, [-1, 0, 1])
    # fused into layer 0: bn (8 parameter reads), relu (none), add (1024 shortcut reads)
    extras = [eb * 8, 0, eb * 1024]
    np.testing.assert_array_equal(p.layer_extra_bytes, [sum(extras), 0.0])
    assert p.layer_extra[0] == pytest.approx(
        sum(float(mem_cycles(H100, e, PARAMS)) for e in extras), rel=1e-12)
    assert p.layer_extra[1] == 0.0
    # SE-CNN's pass over layer 0: reads y (1024 outputs) and the extras, writes the chain's
    # last output (add's 1024); as many elements as the widest write; all the fused flops
    nbytes = sum(extras) + eb * (1024 + 1024)
    kc = elementwise_cost(1024, nbytes, 2048 + 1024 + 1024, H100, precision, PARAMS)
    assert (p.secnn_pass[0], p.secnn_pass_busy[0]) == (kc.cycles, kc.busy_cycles)
    np.testing.assert_array_equal(p.secnn_pass_bytes, [nbytes, 0.0])
    assert (p.secnn_pass[1], p.secnn_pass_busy[1]) == (0.0, 0.0)


def test_the_pass_writes_the_last_fused_output_and_spans_the_widest() -> None:
    """The chain's last group writes fewer elements than an earlier one: the pass writes the
    last group's output but runs over the widest write."""
    ops = (O.OpGeom("bn", "affine", 1, reads=2048, param_reads=0, writes=2048, flops=10,
                    epilogue_of=1),
           O.OpGeom("half", "activation", 1, reads=2048, param_reads=0, writes=100, flops=5,
                    epilogue_of=1))
    p = O.plan_ops(ops, GEOMS, H100, "fp32", PARAMS, "epilogue")
    assert p.kernels == () and p.kernel_cycles.shape == (0,) and p.kernel_ctas.shape == (0,)
    assert p.kernel_ctas.dtype == np.int64 and p.kernel_after.dtype == np.int64
    nbytes = 4.0 * (2048 + 100)
    kc = elementwise_cost(2048, nbytes, 15, H100, "fp32", PARAMS)
    assert p.secnn_pass[1] == kc.cycles and p.secnn_pass_bytes[1] == nbytes
    np.testing.assert_array_equal(p.layer_extra, [0.0, 0.0])
    # the same ops with the occupancy cap: the pass is capped too
    capped = O.plan_ops(ops, GEOMS, H100, "fp32", PARAMS, "epilogue", occ_cap=1)
    kc1 = elementwise_cost(2048, nbytes, 15, H100, "fp32", PARAMS, 1)
    assert capped.secnn_pass[1] == kc1.cycles


def test_an_empty_plan_has_the_documented_shapes() -> None:
    p = O.plan_ops((), GEOMS, H100, "fp32", PARAMS, "epilogue")
    assert p.kernels == () and p.names == ()
    assert p.kernel_after.dtype == np.int64 and p.kernel_after.shape == (0,)
    assert p.layer_extra.shape == p.secnn_pass.shape == (2,)
    d = O.OpPlan("none", (), *(np.zeros(0),) * 4, *(np.zeros(2),) * 5, ())
    assert d.kernel_ctas.shape == (0,) and d.kernel_ctas.dtype == np.int64


@pytest.mark.parametrize("op,match", [
    (dict(after=2), r"after=2 but the network has 2 linear layers \(-1 <= after < 2\)"),
    (dict(after=-2, epilogue_of=-1), "op 'bn': after=-2 but"),
    (dict(after=-2, epilogue_of=0), "op 'bn': after=-2 but"),  # names the field that is wrong
    (dict(after=0, epilogue_of=2), "op 'bn': epilogue_of=2 but the network has 2 linear"),
])
def test_plans_refuse_ops_outside_the_network(op: dict, match: str) -> None:
    o = dataclasses.replace(OPS[1], **op)
    with pytest.raises(TimingConfigError, match=match):
        O.plan_ops((o,), GEOMS, H100, "fp32", PARAMS, "none")
    with pytest.raises(TimingConfigError, match="unknown fusion policy 'full'"):
        O.plan_ops((), GEOMS, H100, "fp32", PARAMS, "full")
    # the last layer and "before the first" are inside
    assert O.plan_ops((dataclasses.replace(OPS[1], after=1, epilogue_of=1),
                       dataclasses.replace(OPS[1], after=-1)), GEOMS, H100, "fp32", PARAMS,
                      "none").kernels == (0, 1)


def test_a_fused_group_writing_nothing_adds_bytes_but_no_pass() -> None:
    """A fused group with parameter reads but no output: its bytes join the layer's kernel;
    SE-CNN has no pass over that layer (no elements), so the pass's bytes are 0 too."""
    op = O.OpGeom("scale", "affine", 0, reads=0, param_reads=8, writes=0, flops=0,
                  epilogue_of=0)
    p = O.plan_ops((op,), GEOMS, H100, "fp32", PARAMS, "epilogue")
    np.testing.assert_array_equal(p.layer_extra_bytes, [32.0, 0.0])
    np.testing.assert_array_equal(p.secnn_pass_bytes, [0.0, 0.0])
    np.testing.assert_array_equal(p.secnn_pass, [0.0, 0.0])
