"""AlexNet (Krizhevsky et al. 2012, torchvision's single-tower variant) and ZFNet.

AlexNet follows ``torchvision.models.alexnet``: five convs (64, 192, 384, 256, 256 channels;
11x11/4 pad 2, 5x5 pad 2, then 3x3 pad 1) with 3x3/2 max pools after conv1, conv2 and conv5,
an adaptive average pool to 6x6, and three fully connected layers (4096, 4096, 1000; dropout is
an inference no-op). No local response norm, as in torchvision.

ZFNet has **no torchvision version**; it is defined here from Zeiler & Fergus, "Visualizing and
Understanding Convolutional Networks" (ECCV 2014), Fig. 3: conv1 96 filters 7x7 stride 2 (224 ->
110), 3x3/2 max pool (-> 55), contrast normalisation; conv2 256 filters 5x5 stride 2 (-> 26),
3x3/2 max pool (-> 13), contrast normalisation; conv3 384, conv4 384, conv5 256 filters 3x3
stride 1; 3x3/2 max pool (-> 6x6x256); fc6 4096, fc7 4096, fc8 1000. Choices the paper leaves
open, made to reproduce its feature map sizes exactly: conv1 padding 1, max pools with
``ceil_mode=True``, conv3-5 padding 1; the contrast normalisation is a local response norm
across 5 channels (AlexNet's constants k=2, alpha=1e-4, beta=0.75). An adaptive 6x6 average
pool (identity at 224px) lets small test inputs through, like torchvision's AlexNet. There are
**no pretrained ZFNet weights offline**: ``models.load("zfnet")`` returns a seeded random
initialisation unless a checkpoint was converted from a user's own torch file, whose keys must
follow the AlexNet-like layout of :func:`zfnet_torch_prefix` (``features.<i>``,
``classifier.<i>``).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from models import layers
from models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Preprocessing

__all__ = ["AlexNet", "ZFNet", "SPECS", "alexnet_torch_prefix", "zfnet_torch_prefix"]


class AlexNet(nn.Module):
    """torchvision AlexNet: NHWC float32 images -> logits ``[N, num_classes]``.

    Layer names ``conv1``..``conv5``, ``fc6``, ``fc7``, ``fc8``.
    """

    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Classify an NHWC batch, preprocessed by ``models.preprocess``."""
        x = nn.relu(layers.conv(64, 11, "conv1", stride=4, padding=2)(x))
        x = layers.max_pool(x, 3, 2)
        x = nn.relu(layers.conv(192, 5, "conv2", padding=2)(x))
        x = layers.max_pool(x, 3, 2)
        x = nn.relu(layers.conv(384, 3, "conv3", padding=1)(x))
        x = nn.relu(layers.conv(256, 3, "conv4", padding=1)(x))
        x = nn.relu(layers.conv(256, 3, "conv5", padding=1)(x))
        x = layers.max_pool(x, 3, 2)
        x = layers.flatten_nhwc(layers.adaptive_avg_pool(x, 6))
        x = nn.relu(layers.dense(4096, "fc6")(x))
        x = nn.relu(layers.dense(4096, "fc7")(x))
        return layers.dense(self.num_classes, "fc8")(x)


class ZFNet(nn.Module):
    """ZFNet (Zeiler & Fergus 2014, Fig. 3), see the module docstring for the details.

    Layer names ``conv1``..``conv5``, ``fc6``, ``fc7``, ``fc8``.
    """

    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Classify an NHWC batch, preprocessed by ``models.preprocess``."""
        x = nn.relu(layers.conv(96, 7, "conv1", stride=2, padding=1)(x))
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        x = layers.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=2.0)
        x = nn.relu(layers.conv(256, 5, "conv2", stride=2)(x))
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        x = layers.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=2.0)
        x = nn.relu(layers.conv(384, 3, "conv3", padding=1)(x))
        x = nn.relu(layers.conv(384, 3, "conv4", padding=1)(x))
        x = nn.relu(layers.conv(256, 3, "conv5", padding=1)(x))
        x = layers.max_pool(x, 3, 2, ceil_mode=True)
        x = layers.flatten_nhwc(layers.adaptive_avg_pool(x, 6))
        x = nn.relu(layers.dense(4096, "fc6")(x))
        x = nn.relu(layers.dense(4096, "fc7")(x))
        return layers.dense(self.num_classes, "fc8")(x)


# torch layout: features.<i> for the convs (index in the nn.Sequential), classifier.<i> for fc.
_ALEXNET_TORCH = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
                  "conv4": "features.8", "conv5": "features.10", "fc6": "classifier.1",
                  "fc7": "classifier.4", "fc8": "classifier.6"}
# ZFNet as an AlexNet-like nn.Sequential: conv, ReLU, MaxPool, LRN, conv, ReLU, MaxPool, LRN,
# conv, ReLU, conv, ReLU, conv, ReLU, MaxPool; classifier: Dropout, Linear, ReLU, Dropout,
# Linear, ReLU, Linear.
_ZFNET_TORCH = {"conv1": "features.0", "conv2": "features.4", "conv3": "features.8",
                "conv4": "features.10", "conv5": "features.12", "fc6": "classifier.1",
                "fc7": "classifier.4", "fc8": "classifier.6"}


def alexnet_torch_prefix(path: tuple[str, ...]) -> str:
    """Flax module path -> torchvision AlexNet module prefix."""
    return _ALEXNET_TORCH[path[0]]


def zfnet_torch_prefix(path: tuple[str, ...]) -> str:
    """Flax module path -> module prefix of the AlexNet-like torch ZFNet layout."""
    return _ZFNET_TORCH[path[0]]


_TORCHVISION = Preprocessing(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="alexnet", family="alexnet", make=AlexNet, torch_prefix=alexnet_torch_prefix,
        preprocessing=_TORCHVISION, weights="torchvision", min_size=63,
        flatten_chw={"fc6": (256, 6, 6)},
        description="AlexNet (torchvision single-tower variant)"),
    ModelSpec(
        name="zfnet", family="alexnet", make=ZFNet, torch_prefix=zfnet_torch_prefix,
        preprocessing=_TORCHVISION, weights="none", min_size=37,
        flatten_chw={"fc6": (256, 6, 6)},
        description="ZFNet (Zeiler & Fergus 2014; no torchvision version, random init)"),
)
