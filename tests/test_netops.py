"""secnn_jax.netops: the non-linear kernels of a CNN, checked against hand counts.

Every expectation below is written from the architecture (shapes multiplied out by hand), not
from the code's output: element counts are for the whole traced batch, BatchNorm inference is
``(x - mean) * (scale * rsqrt(var + eps)) + bias`` (three x-dependent equations over three
per-channel vectors; the ``rsqrt`` part acts on params only and is folded), and a conv bias
add directly followed by BatchNorm is one affine kernel with it.
"""

from __future__ import annotations

import collections
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import secnn_jax as sj
from secnn_jax import netops
from secnn_jax.netops import NetOp

F32 = jnp.float32


def _abstract_init(module: nn.Module, x: jax.ShapeDtypeStruct):
    return jax.eval_shape(module.init, jax.random.key(0), x)


def _random(tree, seed: int = 0):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda s: (rng.standard_normal(s.shape) * 0.3 + 1.0).astype(np.float32), tree)


def _column(ops, field):
    return [getattr(op, field) for op in ops]


class SmallResCNN(nn.Module):
    """conv(bias) -> BN -> relu -> maxpool -> conv -> BN -> (+shortcut) -> relu -> mean -> dense."""

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(8, (3, 3), padding="SAME", name="c1")(x)  # [2, 8, 8, 8] = 1024
        y = nn.relu(nn.BatchNorm(use_running_average=True, name="bn1")(y))
        y = nn.max_pool(y, (2, 2), (2, 2))  # [2, 4, 4, 8] = 256
        s = y
        y = nn.Conv(8, (3, 3), padding="SAME", use_bias=False, name="c2")(y)  # 256
        y = nn.BatchNorm(use_running_average=True, name="bn2")(y)
        y = nn.relu(y + s)
        y = y.mean((1, 2))  # [2, 8] = 16
        return nn.Dense(5, name="fc")(y)  # [2, 5] = 10


def test_small_cnn_hand_counted() -> None:
    x = jax.ShapeDtypeStruct((2, 8, 8, 3), F32)
    model = SmallResCNN()
    variables = _abstract_init(model, x)
    ops = netops.find_ops(model.apply, variables, x)
    assert _column(ops, "kind") == ["affine", "activation", "pool", "affine", "binary",
                                    "activation", "reduce", "affine"]
    # Layers: c1 = 0, c2 = 1, fc = 2.
    assert _column(ops, "after") == [0, 0, 0, 1, 1, 1, 1, 2]
    assert _column(ops, "reads") == [1024, 1024, 1024, 256, 256 + 256, 256, 256, 10]
    # c1 bias + (mean, folded scale, bias) of bn1; bn2's three vectors; fc's bias.
    assert _column(ops, "param_reads") == [8 + 3 * 8, 0, 0, 3 * 8, 0, 0, 0, 5]
    assert _column(ops, "writes") == [1024, 1024, 256, 256, 256, 256, 16, 10]
    # bias add + sub, mul, add; max; 256 outputs x 2x2 window; 3 BN eqns; add; max;
    # reduce_sum over 256 inputs + div of 16; fc bias add.
    assert _column(ops, "flops") == [4 * 1024, 1024, 256 * 4, 3 * 256, 256, 256, 256 + 16, 10]
    # The pool and the global mean are never fused; the add joins c2's chain and reads the
    # shortcut (the pool output, 256 elements) from outside it.
    assert _column(ops, "epilogue_of") == [0, 0, -1, 1, 1, 1, -1, 2]
    assert _column(ops, "extra_reads") == [0, 0, 0, 0, 256, 0, 0, 0]
    assert ops[3].primitives == ("sub", "mul", "add") and "bn2" in ops[3].name
    assert ops[6].primitives == ("reduce_sum", "div")
    assert len({op.name for op in ops}) == len(ops)
    assert all(op.name.endswith(":" + op.kind) for op in ops)
    # Same answer from real arrays and with the layers passed in.
    real = _random(variables)
    layers = sj.find_layers(model.apply, real, jnp.zeros(x.shape, F32))
    assert netops.find_ops(model.apply, real, jnp.zeros(x.shape, F32), layers) == ops


def test_batchnorm_param_arithmetic_is_folded() -> None:
    x = jax.ShapeDtypeStruct((2, 6, 6, 3), F32)

    class ConvBN(nn.Module):
        @nn.compact
        def __call__(self, x):
            y = nn.Conv(4, (1, 1), use_bias=False, name="c")(x)  # [2, 6, 6, 4] = 288
            return nn.BatchNorm(use_running_average=True, name="bn")(y)

    model = ConvBN()
    ops = netops.find_ops(model.apply, _abstract_init(model, x), x)
    assert len(ops) == 1
    (bn,) = ops
    assert bn.primitives == ("sub", "mul", "add")  # no add(var, eps), rsqrt, mul(scale)
    assert bn.flops == 3 * 288 and bn.param_reads == 3 * 4
    # Arithmetic on params alone is no kernel at all.

    def scaled(p, x):
        return x @ (p["w"] * 2.0 + 1.0)

    assert netops.find_ops(scaled, {"w": jnp.ones((3, 4))}, jnp.ones((2, 3))) == ()


def _dense_chain(*activations):
    """dense -> act -> dense -> act ...: params ``w0..`` of shape [4, 4] (no bias)."""

    def f(p, x):
        for i, act in enumerate(activations):
            x = act(x @ p[f"w{i}"])
        return x

    params = {f"w{i}": jnp.ones((4, 4)) for i in range(len(activations))}
    return f, params


def test_swish_and_relu6_are_one_activation_each() -> None:
    f, params = _dense_chain(
        lambda v: v * jax.nn.sigmoid(v),          # swish written out
        jax.nn.swish,                              # jax.nn's (a jitted silu)
        jax.nn.relu6,                              # a custom_jvp around max, min
        lambda v: jnp.minimum(jnp.maximum(v, 0.0), 6.0),  # relu6 written out
    )
    x = jnp.ones((3, 4))  # every activation reads and writes 3 x 4 = 12 elements
    ops = netops.find_ops(f, params, x)
    assert _column(ops, "kind") == ["activation"] * 4
    assert _column(ops, "primitives") == [("logistic", "mul")] * 2 + [("max", "min")] * 2
    assert _column(ops, "reads") == [12] * 4 and _column(ops, "writes") == [12] * 4
    assert _column(ops, "flops") == [24] * 4
    assert _column(ops, "after") == [0, 1, 2, 3] == _column(ops, "epilogue_of")
    assert _column(ops, "extra_reads") == [0] * 4


def test_jax_nn_relu_through_custom_jvp() -> None:
    f, params = _dense_chain(jax.nn.relu)
    x = jnp.ones((3, 4))
    jaxpr = jax.make_jaxpr(f)(params, x)
    assert "custom_jvp_call" in {e.primitive.name for e in jaxpr.jaxpr.eqns}  # really hidden
    (op,) = netops.find_ops(f, params, x)
    assert op.kind == "activation" and op.primitives == ("max",)
    assert (op.reads, op.writes, op.flops, op.epilogue_of) == (12, 12, 12, 0)


@pytest.mark.parametrize(("kernel", "out_hw"), [((2, 2), 10), ((3, 3), 11)])
def test_conv_transpose_is_a_matmul_with_its_macs(kernel, out_hw) -> None:
    """Stride 2, VALID: out = (5 - 1) * 2 + k; with k = 3 neighbouring windows overlap."""
    x = jax.ShapeDtypeStruct((2, 5, 5, 3), F32)

    class Up(nn.Module):
        @nn.compact
        def __call__(self, x):
            y = nn.Conv(4, (3, 3), padding="SAME", use_bias=False, name="c")(x)  # [2,5,5,4]
            return nn.ConvTranspose(6, kernel, strides=(2, 2), padding="VALID", name="up")(y)

    model = Up()
    variables = _abstract_init(model, x)
    # Input dilation: the ConvTranspose is no linear layer (a stride-1 one would be a conv).
    assert len(sj.find_layers(model.apply, variables, x)) == 1
    ops = netops.find_ops(model.apply, variables, x)
    assert _column(ops, "kind") == ["matmul", "affine"]
    mm, bias = ops
    taps = kernel[0] * kernel[1]
    # Every input element meets every kernel tap once (no cropping with VALID): as PyTorch
    # counts a transposed conv, N*H*W*Cin*Cout*kh*kw, not the dilated-input dense count.
    assert mm.flops == 2 * 5 * 5 * 4 * 6 * taps
    assert (mm.reads, mm.param_reads, mm.writes) == (2 * 5 * 5 * 4, taps * 4 * 6,
                                                     2 * out_hw * out_hw * 6)
    assert mm.after == 0 and mm.epilogue_of == -1 and mm.primitives == ("conv_general_dilated",)
    # Its bias add is a kernel of its own: a matmul is not a linear layer with an epilogue.
    assert (bias.reads, bias.param_reads, bias.epilogue_of) == (2 * out_hw * out_hw * 6, 6, -1)


def test_network_input_and_pool_outputs_are_not_fused() -> None:
    x = jax.ShapeDtypeStruct((1, 8, 8, 2), F32)

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = x * 2.0 - 1.0  # input scaling: one affine kernel on the input
            y = nn.Conv(3, (1, 1), use_bias=False, name="c")(x)  # [1, 8, 8, 3] = 192
            y = nn.avg_pool(y, (2, 2), (2, 2))  # reduce_window_sum + div: [1, 4, 4, 3] = 48
            return y * 3.0

    model = Net()
    ops = netops.find_ops(model.apply, _abstract_init(model, x), x)
    assert _column(ops, "kind") == ["affine", "pool", "affine"]
    assert _column(ops, "after") == [-1, 0, 0]
    assert _column(ops, "epilogue_of") == [-1, -1, -1]
    assert ops[1].primitives == ("reduce_window_sum", "div")
    assert ops[1].flops == 48 * 4 + 48 and ops[1].reads == 192 and ops[1].writes == 48
    assert ops[0].flops == 2 * 128 and ops[0].writes == 128


def test_gate_computed_from_the_conv_is_not_in_its_epilogue() -> None:
    """SE gating: ``y * sigmoid(dense(mean(y)))`` needs all of y first, so no conv epilogue
    can hold the multiply; a residual add of an earlier value can."""
    x = jax.ShapeDtypeStruct((2, 4, 4, 3), F32)

    class SE(nn.Module):
        @nn.compact
        def __call__(self, x):
            y = nn.Conv(6, (1, 1), use_bias=False, name="c")(x)  # [2, 4, 4, 6] = 192
            g = jax.nn.sigmoid(nn.Dense(6, use_bias=False, name="se")(y.mean((1, 2))))
            return y * g[:, None, None, :]

    model = SE()
    ops = netops.find_ops(model.apply, _abstract_init(model, x), x)
    assert _column(ops, "kind") == ["reduce", "activation", "binary"]
    gate = ops[-1]
    assert gate.reads == 192 + 12 and gate.writes == 192  # the gate is read un-broadcast
    assert (gate.epilogue_of, gate.extra_reads) == (-1, 0)


def test_netop_dict_round_trip() -> None:
    x = jax.ShapeDtypeStruct((2, 8, 8, 3), F32)
    model = SmallResCNN()
    ops = netops.find_ops(model.apply, _abstract_init(model, x), x)
    for op in ops:
        d = json.loads(json.dumps(op.as_dict()))
        assert NetOp.from_dict(d) == op
    d = ops[0].as_dict()
    del d["flops"]
    with pytest.raises(ValueError, match="flops"):
        NetOp.from_dict(d)
    with pytest.raises(ValueError, match="kind"):
        NetOp.from_dict({**ops[0].as_dict(), "kind": "fused"})
    assert set(netops.OP_KINDS) >= {op.kind for op in ops}


def test_resnet50_from_the_zoo() -> None:
    """torchvision's ResNet-50: 53 BatchNorm2d (stem 1, 16 bottlenecks x 3, 4 downsample),
    49 ReLU calls (stem 1, 16 x 3: each block's one ReLU module runs three times), 16 residual
    adds, one max pool, one global average pool; the fc bias add is one more affine kernel
    (PyTorch's Linear folds it into addmm; here it is an add after the dot_general): 54."""
    import models

    module = models.build("resnet50")
    variables = models.variable_shapes("resnet50")
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), F32)
    layers = sj.find_layers(module.apply, variables, x)
    ops = netops.find_ops(module.apply, variables, x, layers)
    assert collections.Counter(op.kind for op in ops) == {
        "affine": 54, "activation": 49, "binary": 16, "pool": 1, "reduce": 1}
    # Every BN, ReLU and add sits in some conv's epilogue; each linear layer has one affine.
    assert all(op.epilogue_of >= 0 for op in ops if op.kind != "pool" and op.kind != "reduce")
    assert sorted(op.epilogue_of for op in ops if op.kind == "affine") == list(range(54))
    names = [layer.name for layer in layers]
    pool = next(op for op in ops if op.kind == "pool")
    assert pool.after == names.index("conv1") and pool.writes == 64 * 16 * 16
    assert next(op for op in ops if op.kind == "reduce").writes == 2048
    for op in ops:
        if op.kind == "binary":
            # Shortcut read from outside the chain: as large as the block output.
            assert op.extra_reads == op.writes and op.reads == 2 * op.writes
            block = names[op.epilogue_of].split("/")[0]
            last = "downsample_conv" if block.endswith("_0") else "conv3"
            assert names[op.epilogue_of] == f"{block}/{last}"
