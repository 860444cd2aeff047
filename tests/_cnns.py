"""Small CNNs in three styles (Flax Linen, Flax NNX, plain JAX) covering every construct SE-CNN
must handle: strided, dilated, grouped, depthwise, 1x1 and asymmetric-padding convs, BatchNorm in
inference mode, residual add, concatenation, a kernel reused twice, and a dense head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import nnx
from jax import lax


class LinenCNN(nn.Module):
    """Linen CNN with every construct; ``shared`` is applied twice."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), strides=2, padding="SAME", name="stem")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, name="stem_bn")(x))
        # depthwise, asymmetric padding
        y = nn.Conv(8, (3, 3), feature_group_count=8, padding=((0, 2), (1, 1)), name="dw")(x)
        y = nn.relu(y)
        y = nn.Conv(8, (1, 1), name="pw")(y)  # 1x1
        x = nn.relu(x + y[:, : x.shape[1], : x.shape[2]])  # residual add
        g = nn.relu(nn.Conv(8, (3, 3), feature_group_count=2, name="grouped")(x))
        d = nn.relu(nn.Conv(8, (3, 3), kernel_dilation=2, padding=2, name="dilated")(x))
        x = jnp.concatenate([g, d], axis=-1)  # concatenation
        shared = nn.Conv(16, (3, 3), name="shared")
        x = nn.relu(shared(x))
        x = nn.relu(shared(x))  # the same kernel reused
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(10, name="head")(x.reshape(x.shape[0], -1))


class NNXCNN(nnx.Module):
    """NNX CNN: strided conv, BatchNorm, depthwise, residual, dense head."""

    def __init__(self, rngs: nnx.Rngs):
        self.stem = nnx.Conv(3, 8, (3, 3), strides=2, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.dw = nnx.Conv(8, 8, (3, 3), feature_group_count=8, rngs=rngs)
        self.pw = nnx.Conv(8, 16, (1, 1), rngs=rngs)
        self.head = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn(self.stem(x)))
        x = nnx.relu(x + nnx.relu(self.dw(x)))
        x = nnx.relu(self.pw(x))
        return self.head(x.mean((1, 2)))


def plain_init(key: jax.Array) -> dict:
    """Parameters of :func:`plain_apply` (OIHW kernels: the model runs in NCHW)."""
    k = jax.random.split(key, 4)
    return {
        "conv1": {"w": jax.random.normal(k[0], (8, 3, 3, 3)) * 0.3, "b": jnp.full((8,), 0.1)},
        "conv2": {"w": jax.random.normal(k[1], (8, 4, 3, 3)) * 0.3},  # grouped, NCHW
        "fc": {"w": jax.random.normal(k[2], (8, 10)) * 0.3, "b": jnp.zeros((10,))},
    }


def plain_apply(params: dict, x: jax.Array) -> jax.Array:
    """A plain-JAX CNN over NHWC input that computes in NCHW (general dimension numbers)."""
    x = jnp.transpose(x, (0, 3, 1, 2))
    x = lax.conv_general_dilated(x, params["conv1"]["w"], (2, 2), ((1, 1), (1, 1)),
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    x = jax.nn.relu(x + params["conv1"]["b"][None, :, None, None])
    x = lax.conv_general_dilated(x, params["conv2"]["w"], (1, 1), ((0, 1), (2, 0)),
                                 rhs_dilation=(2, 1), feature_group_count=2,
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    x = jax.nn.relu(x).mean((2, 3))
    return x @ params["fc"]["w"] + params["fc"]["b"]


def linen_model(x: jax.Array):
    """``(apply_fn, variables)`` of :class:`LinenCNN` with non-trivial BatchNorm statistics."""
    model = LinenCNN()
    variables = model.init(jax.random.key(0), x)
    stats = jax.tree_util.tree_map(lambda a: a + 0.3, variables["batch_stats"])
    return model.apply, {"params": variables["params"], "batch_stats": stats}


def nnx_model():
    """``(apply_fn, params)`` of :class:`NNXCNN` in eval mode."""
    from secnn_jax import nnx_apply

    module = NNXCNN(nnx.Rngs(0))
    module.eval()
    return nnx_apply(module)


def plain_model():
    """``(apply_fn, params)`` of the plain-JAX CNN."""
    return plain_apply, plain_init(jax.random.key(1))


MODELS = {"linen": linen_model, "nnx": lambda x: nnx_model(), "plain": lambda x: plain_model()}


class HalvedPredictor:
    """A user-written predictor (plain object, two-argument ``update``, no ``config_key`` or
    ``update_needs_tau``): predicts half of each layer's previous input."""

    def init(self, layers):
        return {lyr.name: jnp.zeros(lyr.in_shape) for lyr in layers}

    def predict(self, state):
        return {k: v * 0.5 for k, v in state.items()}

    def update(self, state, inputs):
        return {k: inputs[k] for k in state}
