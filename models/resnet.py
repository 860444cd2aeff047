"""ResNet-50/101/152 (He et al. 2016), torchvision's "v1.5" variant.

As in ``torchvision.models.resnet``: a 7x7/2 stem conv, BatchNorm (eps 1e-5), ReLU and a 3x3/2
max pool (padding 1); four stages of bottleneck blocks (1x1, 3x3, 1x1, expansion 4) whose
*3x3* conv carries the stride (v1.5; the original paper strides the first 1x1); a 1x1 conv + BN
projection shortcut on the first block of each stage; global average pooling and a 1000-way fc.

Layer names: ``conv1``, ``layer<s>_<b>/{conv1,conv2,conv3,downsample_conv}``, ``fc``; torch
keys ``layer<s>.<b>.conv1.weight``, ``layer<s>.<b>.downsample.0.weight`` (conv) and
``.downsample.1.*`` (BN).
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax.numpy as jnp

from models import layers
from models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Preprocessing

__all__ = ["Bottleneck", "ResNet", "SPECS", "STAGES", "torch_prefix"]

BN_EPS = 1e-5

#: Bottleneck blocks per stage.
STAGES = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}


class Bottleneck(nn.Module):
    """torchvision ``Bottleneck`` (expansion 4, stride on the 3x3 conv)."""

    planes: int
    stride: int = 1
    downsample: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Apply the block to an NHWC batch."""
        identity = x
        out = layers.conv(self.planes, 1, "conv1", use_bias=False)(x)
        out = nn.relu(layers.batch_norm("bn1", BN_EPS)(out))
        out = layers.conv(self.planes, 3, "conv2", stride=self.stride, padding=1,
                          use_bias=False)(out)
        out = nn.relu(layers.batch_norm("bn2", BN_EPS)(out))
        out = layers.conv(self.planes * 4, 1, "conv3", use_bias=False)(out)
        out = layers.batch_norm("bn3", BN_EPS)(out)
        if self.downsample:
            identity = layers.conv(self.planes * 4, 1, "downsample_conv", stride=self.stride,
                                   use_bias=False)(x)
            identity = layers.batch_norm("downsample_bn", BN_EPS)(identity)
        return nn.relu(out + identity)


class ResNet(nn.Module):
    """A bottleneck ResNet: NHWC float32 images -> logits ``[N, num_classes]``."""

    stages: tuple[int, ...]
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Classify an NHWC batch, preprocessed by ``models.preprocess``."""
        x = layers.conv(64, 7, "conv1", stride=2, padding=3, use_bias=False)(x)
        x = nn.relu(layers.batch_norm("bn1", BN_EPS)(x))
        x = layers.max_pool(x, 3, 2, 1)
        in_channels = 64
        for stage, (blocks, planes) in enumerate(zip(self.stages, (64, 128, 256, 512),
                                                     strict=True), start=1):
            for block in range(blocks):
                stride = 2 if stage > 1 and block == 0 else 1
                downsample = block == 0 and (stride != 1 or in_channels != planes * 4)
                x = Bottleneck(planes, stride, downsample, name=f"layer{stage}_{block}")(x)
                in_channels = planes * 4
        x = layers.global_avg_pool(x)
        return layers.dense(self.num_classes, "fc")(x)


def torch_prefix(path: tuple[str, ...]) -> str:
    """Flax module path -> torchvision module prefix."""
    if len(path) == 1:
        return path[0]  # conv1, bn1, fc
    block, module = path
    stage, index = block.split("_")
    module = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(module,
                                                                                      module)
    return f"{stage}.{index}.{module}"


def _make(stages: tuple[int, ...], num_classes: int = 1000) -> ResNet:
    return ResNet(stages=stages, num_classes=num_classes)


SPECS: tuple[ModelSpec, ...] = tuple(
    ModelSpec(
        name=name,
        family="resnet",
        make=partial(_make, stages),
        torch_prefix=torch_prefix,
        preprocessing=Preprocessing(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        weights="torchvision",
        min_size=32,
        description=f"ResNet-{name[6:]} v1.5 (torchvision layout)",
    )
    for name, stages in STAGES.items())
