"""The secnn_jax model zoo: nine ILSVRC CNNs, EfficientNet-Lite0/1/2, HED and CRAFT (Flax Linen).

Public API (README.md, "Models: adding a model and converting weights")::

    import models
    apply_fn, variables = models.load("efficientnet_lite0")   # converts itself on first use
    x = models.preprocess("efficientnet_lite0", image_uint8)[None]
    logits = apply_fn(variables, x)                            # [1, 1000]

Models: ``alexnet, zfnet, vgg16, vgg19, googlenet, inception_v3, resnet50, resnet101, resnet152,
efficientnet_lite0, efficientnet_lite1, efficientnet_lite2`` (ImageNet classifiers: logits
``[N, 1000]``) and the fully convolutional ``hed_vgg16`` (edge probabilities ``[N, H, W, 1]``)
and ``craft_vgg16_bn`` (text region/affinity scores ``[N, H//2, W//2, 2]``), both on trained
VGG-16 trunks (:func:`available`). All take NHWC float32 input and use inference-mode BatchNorm.
Every conv/dense module has a readable name (``layer1_0/conv1``, ``blocks_3/depthwise_conv``,
``block3/conv2``) that becomes the SE-CNN layer name.

torch is never imported here: PyTorch weight files are read by :mod:`models.torch_reader`, and
HED's Keras weights by :mod:`models.keras_reader` (h5py; never TensorFlow).

Every error raised for a bad name, file, size or checkpoint derives from
``secnn_jax.SecnnError``: :class:`UnknownModelError`, :class:`InputSizeError`,
:class:`MissingCheckpointError`, :class:`MissingWeightsError`, :class:`CheckpointError`,
:class:`ConversionError`, :class:`TorchReaderError`, :class:`KerasReaderError`,
``models.preprocessing.ImageError`` and
``ImageTypeError``.
"""

from models.checkpoints import CheckpointError, MissingCheckpointError
from models.conversion import CONVERTER_VERSION, ConversionError
from models.keras_reader import KerasReaderError
from models.registry import (
    MissingWeightsError,
    UnknownModelError,
    available,
    build,
    convert,
    convert_command,
    get_spec,
    init_variables,
    load,
    preprocess,
    variable_shapes,
)
from models.spec import InputSizeError, ModelSpec, Preprocessing
from models.torch_reader import TorchReaderError, load_state_dict

__all__ = [
    "CONVERTER_VERSION",
    "CheckpointError",
    "ConversionError",
    "InputSizeError",
    "KerasReaderError",
    "MissingCheckpointError",
    "MissingWeightsError",
    "ModelSpec",
    "Preprocessing",
    "TorchReaderError",
    "UnknownModelError",
    "available",
    "build",
    "convert",
    "convert_command",
    "get_spec",
    "init_variables",
    "load",
    "load_state_dict",
    "preprocess",
    "variable_shapes",
]
