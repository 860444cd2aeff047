"""GoogLeNet / Inception-v1 (Szegedy et al. 2015), torchvision's variant.

As in ``torchvision.models.googlenet``: every conv is a ``BasicConv2d`` (bias-free conv,
BatchNorm eps 1e-3, ReLU); max pools use ``ceil_mode=True``; the "5x5" branch of each inception
block uses a 3x3 kernel (torchvision's known, weight-compatible deviation from the paper); global
average pooling, dropout (inference no-op), a 1000-way fc.

* ``transform_input`` (default True, as torchvision sets when loading its pretrained weights):
  re-normalise ImageNet-normalised input to the ``(x - 0.5) / 0.5`` scale the ported weights
  expect. With ``weights=None`` torchvision defaults to False; pass ``transform_input=False``
  to compare against such a model.
* ``aux_logits`` (default False): the two auxiliary classifiers (``aux1``, ``aux2``) only
  matter in training; torchvision drops them from pretrained models. They exist here so their
  state-dict keys can be converted and validated; with ``aux_logits=True`` the model returns
  ``(logits, aux2, aux1)`` as torchvision's training output does.

Layer names: ``conv1/conv``, ``inception3a/branch2_1/conv``, ``fc`` ...; torch keys
``conv1.conv.weight``, ``inception3a.branch2.1.conv.weight``, ``fc.weight`` ...
"""

from __future__ import annotations

import re

import flax.linen as nn
import jax.numpy as jnp

from models import layers
from models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Preprocessing

__all__ = ["BasicConv2d", "Inception", "InceptionAux", "GoogLeNet", "SPECS", "torch_prefix",
           "transform_input"]

BN_EPS = 1e-3

# (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) per block.
_BLOCKS = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}


def transform_input(x: jnp.ndarray) -> jnp.ndarray:
    """torchvision's ``_transform_input``: ImageNet mean/std scale -> ``(x - 0.5) / 0.5``."""
    mean = jnp.asarray(IMAGENET_MEAN, x.dtype)
    std = jnp.asarray(IMAGENET_STD, x.dtype)
    return x * (std / 0.5) + (mean - 0.5) / 0.5


class BasicConv2d(nn.Module):
    """Bias-free conv, BatchNorm (eps ``eps``), ReLU; submodules ``conv`` and ``bn``."""

    features: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: int | tuple[int, int] = 0
    eps: float = BN_EPS

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Apply conv, BN, ReLU to an NHWC batch."""
        x = layers.conv(self.features, self.kernel, "conv", stride=self.stride,
                        padding=self.padding, use_bias=False)(x)
        return nn.relu(layers.batch_norm("bn", self.eps)(x))


class Inception(nn.Module):
    """torchvision ``Inception`` block: four branches concatenated on channels."""

    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Apply the block to an NHWC batch."""
        branch1 = BasicConv2d(self.ch1x1, 1, name="branch1")(x)
        branch2 = BasicConv2d(self.ch3x3red, 1, name="branch2_0")(x)
        branch2 = BasicConv2d(self.ch3x3, 3, padding=1, name="branch2_1")(branch2)
        branch3 = BasicConv2d(self.ch5x5red, 1, name="branch3_0")(x)
        branch3 = BasicConv2d(self.ch5x5, 3, padding=1, name="branch3_1")(branch3)
        branch4 = layers.max_pool(x, 3, 1, 1, ceil_mode=True)
        branch4 = BasicConv2d(self.pool_proj, 1, name="branch4_1")(branch4)
        return jnp.concatenate([branch1, branch2, branch3, branch4], axis=-1)


class InceptionAux(nn.Module):
    """torchvision GoogLeNet ``InceptionAux`` (training-only auxiliary classifier)."""

    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Auxiliary logits from an intermediate NHWC feature map."""
        x = layers.adaptive_avg_pool(x, 4)
        x = BasicConv2d(128, 1, name="conv")(x)
        # After the 4x4 pool and 1x1 conv the map is 4x4x128; torch flattens it NCHW.
        x = nn.relu(layers.dense(1024, "fc1")(layers.flatten_nhwc(x)))
        return layers.dense(self.num_classes, "fc2")(x)


class GoogLeNet(nn.Module):
    """torchvision GoogLeNet: NHWC float32 images -> logits ``[N, num_classes]``."""

    num_classes: int = 1000
    transform_input: bool = True
    aux_logits: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray | tuple[jnp.ndarray, ...]:
        """Classify an NHWC batch, preprocessed by ``models.preprocess``."""
        if self.transform_input:
            x = transform_input(x)
        x = BasicConv2d(64, 7, stride=2, padding=3, name="conv1")(x)
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        x = BasicConv2d(64, 1, name="conv2")(x)
        x = BasicConv2d(192, 3, padding=1, name="conv3")(x)
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        aux = []
        for name, channels in _BLOCKS.items():
            if name == "inception4a":
                x = layers.max_pool(x, 3, 2, ceil_mode=True)
            if name == "inception5a":
                x = layers.max_pool(x, 2, 2, ceil_mode=True)
            x = Inception(*channels, name=name)(x)
            if self.aux_logits and name in ("inception4a", "inception4d"):
                aux.append(InceptionAux(self.num_classes,
                                        name="aux1" if name == "inception4a" else "aux2")(x))
        x = layers.global_avg_pool(x)
        logits = layers.dense(self.num_classes, "fc")(x)
        if self.aux_logits:
            return logits, aux[1], aux[0]
        return logits


def torch_prefix(path: tuple[str, ...]) -> str:
    """Flax module path -> torchvision module prefix (``branch2_1`` -> ``branch2.1``;
    ``branch4_1`` -> ``branch4.1``, the max pool being ``branch4.0``)."""
    return ".".join(re.sub(r"^(branch\d)_(\d)$", r"\1.\2", part) for part in path)


def _aux_flatten() -> dict[str, tuple[int, int, int]]:
    return {"aux1/fc1": (128, 4, 4), "aux2/fc1": (128, 4, 4)}


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="googlenet", family="googlenet", make=GoogLeNet, torch_prefix=torch_prefix,
        preprocessing=Preprocessing(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        weights="torchvision", min_size=32,
        options={"transform_input": True}, full_options={"aux_logits": True},
        flatten_chw=_aux_flatten(),
        description="GoogLeNet / Inception-v1 (torchvision, BN, aux heads off)"),
)
