"""VGG-16 and VGG-19 (Simonyan & Zisserman 2015), torchvision's variants without BatchNorm.

As in ``torchvision.models.vgg``: configurations "D" (16) and "E" (19) of 3x3 pad-1 convs with
ReLU, 2x2/2 max pools between the five groups, an adaptive average pool to 7x7, and three fully
connected layers (4096, 4096, 1000; dropout is an inference no-op).

Layer names ``conv<group>_<index>`` (``conv1_1`` ... ``conv5_4``), ``fc6``, ``fc7``, ``fc8``;
torch keys ``features.<i>`` (position in the ``nn.Sequential``) and ``classifier.{0,3,6}``.
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax.numpy as jnp

from models import layers
from models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Preprocessing

__all__ = ["VGG", "SPECS", "CONFIGS", "torch_prefixes"]

#: Convs per group for each depth (torchvision cfgs "D" and "E"); channels 64, 128, 256, 512, 512.
CONFIGS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_CHANNELS = (64, 128, 256, 512, 512)


class VGG(nn.Module):
    """VGG without BatchNorm: NHWC float32 images -> logits ``[N, num_classes]``."""

    groups: tuple[int, ...]
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Classify an NHWC batch, preprocessed by ``models.preprocess``."""
        for group, (convs, channels) in enumerate(zip(self.groups, _CHANNELS, strict=True), 1):
            for index in range(1, convs + 1):
                x = nn.relu(layers.conv(channels, 3, f"conv{group}_{index}", padding=1)(x))
            x = layers.max_pool(x, 2, 2)
        x = layers.flatten_nhwc(layers.adaptive_avg_pool(x, 7))
        x = nn.relu(layers.dense(4096, "fc6")(x))
        x = nn.relu(layers.dense(4096, "fc7")(x))
        return layers.dense(self.num_classes, "fc8")(x)


def torch_prefixes(groups: tuple[int, ...]) -> dict[str, str]:
    """``{flax module name: torch prefix}``: each conv is followed by a ReLU (two Sequential
    slots), each group by a MaxPool (one slot)."""
    table: dict[str, str] = {}
    position = 0
    for group, convs in enumerate(groups, 1):
        for index in range(1, convs + 1):
            table[f"conv{group}_{index}"] = f"features.{position}"
            position += 2
        position += 1
    table.update({"fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"})
    return table


def _torch_prefix(table: dict[str, str], path: tuple[str, ...]) -> str:
    return table[path[0]]


def _make(groups: tuple[int, ...], num_classes: int = 1000) -> VGG:
    return VGG(groups=groups, num_classes=num_classes)


SPECS: tuple[ModelSpec, ...] = tuple(
    ModelSpec(
        name=name,
        family="vgg",
        make=partial(_make, groups),
        torch_prefix=partial(_torch_prefix, torch_prefixes(groups)),
        preprocessing=Preprocessing(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        weights="torchvision",
        min_size=32,
        flatten_chw={"fc6": (512, 7, 7)},
        description=f"VGG-{name[3:]} (torchvision, no BatchNorm)",
    )
    for name, groups in CONFIGS.items())
