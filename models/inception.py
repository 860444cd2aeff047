"""Inception-v3 (Szegedy et al. 2016), torchvision's variant, 299x299 input.

As in ``torchvision.models.inception_v3``: ``BasicConv2d`` units (bias-free conv, BatchNorm eps
1e-3, ReLU), stem ``Conv2d_1a_3x3`` ... ``Conv2d_4a_3x3`` with two 3x3/2 max pools, blocks
``Mixed_5b``..``Mixed_7c`` (InceptionA/B/C/D/E) whose pooling branches use 3x3/1 average pools
with padding 1 and ``count_include_pad=True`` (torch's default), global average pooling, dropout
(inference no-op) and a 1000-way fc.

* ``transform_input`` (default True, as torchvision sets when loading its pretrained weights).
* ``aux_logits`` (default False): the training-only ``AuxLogits`` head after ``Mixed_6e``; it
  exists so its state-dict keys are converted and validated; with ``aux_logits=True`` the model
  returns ``(logits, aux)`` like torchvision's training output.

Flax module names equal torchvision's (``Mixed_6b/branch7x7dbl_3/conv``), so the torch prefix
is the path joined with dots.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from models import layers
from models.googlenet import BasicConv2d, transform_input
from models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Preprocessing

__all__ = ["InceptionV3", "SPECS", "torch_prefix"]


def _pool_branch(x: jnp.ndarray) -> jnp.ndarray:
    # F.avg_pool2d(x, kernel_size=3, stride=1, padding=1), count_include_pad=True.
    return layers.avg_pool(x, 3, 1, 1, count_include_pad=True)


class InceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pool branches."""

    pool_features: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Apply the block to an NHWC batch."""
        b1 = BasicConv2d(64, 1, name="branch1x1")(x)
        b5 = BasicConv2d(48, 1, name="branch5x5_1")(x)
        b5 = BasicConv2d(64, 5, padding=2, name="branch5x5_2")(b5)
        b3 = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
        b3 = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(b3)
        b3 = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_3")(b3)
        bp = BasicConv2d(self.pool_features, 1, name="branch_pool")(_pool_branch(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Apply the block to an NHWC batch."""
        b3 = BasicConv2d(384, 3, stride=2, name="branch3x3")(x)
        bd = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = BasicConv2d(96, 3, stride=2, name="branch3x3dbl_3")(bd)
        bp = layers.max_pool(x, 3, 2)
        return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions."""

    channels_7x7: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Apply the block to an NHWC batch."""
        c7 = self.channels_7x7
        b1 = BasicConv2d(192, 1, name="branch1x1")(x)
        b7 = BasicConv2d(c7, 1, name="branch7x7_1")(x)
        b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = BasicConv2d(c7, 1, name="branch7x7dbl_1")(x)
        bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = BasicConv2d(192, 1, name="branch_pool")(_pool_branch(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Apply the block to an NHWC batch."""
        b3 = BasicConv2d(192, 1, name="branch3x3_1")(x)
        b3 = BasicConv2d(320, 3, stride=2, name="branch3x3_2")(b3)
        b7 = BasicConv2d(192, 1, name="branch7x7x3_1")(x)
        b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv2d(192, 3, stride=2, name="branch7x7x3_4")(b7)
        bp = layers.max_pool(x, 3, 2)
        return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionE(nn.Module):
    """8x8 block with expanded filter banks."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Apply the block to an NHWC batch."""
        b1 = BasicConv2d(320, 1, name="branch1x1")(x)
        b3 = BasicConv2d(384, 1, name="branch3x3_1")(x)
        b3 = jnp.concatenate([
            BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
            BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
        bd = BasicConv2d(448, 1, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(384, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([
            BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
            BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
        bp = BasicConv2d(192, 1, name="branch_pool")(_pool_branch(x))
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionAux(nn.Module):
    """Training-only auxiliary classifier after ``Mixed_6e``."""

    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Auxiliary logits from the 17x17 feature map."""
        x = layers.avg_pool(x, 5, 3)
        x = BasicConv2d(128, 1, name="conv0")(x)
        x = BasicConv2d(768, 5, name="conv1")(x)
        x = layers.global_avg_pool(x)
        return layers.dense(self.num_classes, "fc")(x)


class InceptionV3(nn.Module):
    """torchvision Inception-v3: NHWC float32 images (299x299) -> logits ``[N, num_classes]``."""

    num_classes: int = 1000
    transform_input: bool = True
    aux_logits: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray | tuple[jnp.ndarray, jnp.ndarray]:
        """Classify an NHWC batch, preprocessed by ``models.preprocess``."""
        if self.transform_input:
            x = transform_input(x)
        x = BasicConv2d(32, 3, stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv2d(32, 3, name="Conv2d_2a_3x3")(x)
        x = BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
        x = layers.max_pool(x, 3, 2)
        x = BasicConv2d(80, 1, name="Conv2d_3b_1x1")(x)
        x = BasicConv2d(192, 3, name="Conv2d_4a_3x3")(x)
        x = layers.max_pool(x, 3, 2)
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = InceptionC(128, name="Mixed_6b")(x)
        x = InceptionC(160, name="Mixed_6c")(x)
        x = InceptionC(160, name="Mixed_6d")(x)
        x = InceptionC(192, name="Mixed_6e")(x)
        aux = InceptionAux(self.num_classes, name="AuxLogits")(x) if self.aux_logits else None
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(name="Mixed_7b")(x)
        x = InceptionE(name="Mixed_7c")(x)
        x = layers.global_avg_pool(x)
        logits = layers.dense(self.num_classes, "fc")(x)
        return (logits, aux) if self.aux_logits else logits


def torch_prefix(path: tuple[str, ...]) -> str:
    """Flax module path -> torchvision module prefix (the same names, dot-joined)."""
    return ".".join(path)


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="inception_v3", family="inception", make=InceptionV3, torch_prefix=torch_prefix,
        preprocessing=Preprocessing(resize=342, crop=299, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        weights="torchvision", min_size=75,
        options={"transform_input": True}, full_options={"aux_logits": True},
        description="Inception-v3 (torchvision, 299px, aux head off)"),
)
