"""Convert a PyTorch state dict (``{key: numpy array}``) into the Flax variables of a zoo model.

One generic converter serves every model. It walks the variables the Flax model expects (from
``jax.eval_shape`` of its ``init``, so nothing is computed) and, for each leaf, asks the model's
:class:`~models.spec.ModelSpec` for the torch module prefix of its Flax module, then:

* ``kernel`` (4-D) <- ``<prefix>.weight`` OIHW, transposed to HWIO (grouped and depthwise
  kernels included: torch ``(O, I/g, kh, kw)`` is Flax ``(kh, kw, I/g, O)``);
* ``kernel`` (2-D) <- ``<prefix>.weight`` ``(out, in)``, transposed to ``(in, out)``; for the
  first dense layer after a flatten its rows are permuted from torch's NCHW flatten order to
  our NHWC order (``spec.flatten_chw``);
* ``bias`` <- ``<prefix>.bias``; BatchNorm ``scale``/``bias`` <- ``weight``/``bias`` and
  ``batch_stats`` ``mean``/``var`` <- ``running_mean``/``running_var``.

Every torch key must be consumed exactly once and every Flax leaf filled with the right shape;
otherwise :class:`ConversionError` names the offending key. The only keys ignored are the
``num_batches_tracked`` counters (training bookkeeping), explicitly. Auxiliary classifier heads
(GoogLeNet ``aux1``/``aux2``, Inception-v3 ``AuxLogits``) are converted and validated against
the full model (``spec.build_full()``) and then dropped from the inference variables.

Keras ``.weights.h5`` files (``spec.weights_format == "keras_h5"``, read by
:mod:`models.keras_reader`) go through the same walk: ``spec.torch_prefix`` then gives a
layer's HDF5 group, ``kernel`` <- ``<group>/vars/0`` (already HWIO, not transposed) and
``bias`` <- ``<group>/vars/1``; every dataset must be consumed, as for torch keys.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import traverse_util

from models.spec import ModelSpec, join_path
from secnn_jax.errors import SecnnError

__all__ = [
    "CONVERTER_FILES",
    "CONVERTER_VERSION",
    "ConversionError",
    "conv_kernel",
    "dense_kernel",
    "bn_variables",
    "abstract_variables",
    "expected_torch_keys",
    "abstract_for",
    "convert_state_dict",
    "converter_digest",
    "IGNORED_SUFFIXES",
]

#: Bumped whenever the mapping changes, so stale cached checkpoints are detected.
CONVERTER_VERSION = "1"

#: The converter's code: its digest (:func:`converter_digest`) is recorded in every checkpoint,
#: so an edit of the mapping or of a weight reader converts again even without a version bump.
CONVERTER_FILES = ("conversion.py", "torch_reader.py", "keras_reader.py")


@functools.cache
def converter_digest() -> str:
    """sha256 hex of :data:`CONVERTER_FILES` (names and bytes): the converter code version."""
    import hashlib  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in CONVERTER_FILES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return h.hexdigest()

#: torch keys ignored on purpose (never silently): BatchNorm's step counter.
IGNORED_SUFFIXES = (".num_batches_tracked",)

# Flax leaf name -> Keras variable dataset (within the layer group).
_LEAF_TO_KERAS = {
    ("params", "kernel"): "vars/0",
    ("params", "bias"): "vars/1",
}

# Flax leaf name -> torch parameter name (within the module prefix).
_LEAF_TO_TORCH = {
    ("params", "kernel"): "weight",
    ("params", "bias"): "bias",
    ("params", "scale"): "weight",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}


class ConversionError(SecnnError, ValueError):
    """A state dict does not match the model: unknown, missing, or wrong-shape key."""


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """torch conv weight ``(O, I/groups, kh, kw)`` -> Flax HWIO ``(kh, kw, I/groups, O)``."""
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))


def dense_kernel(weight: np.ndarray, chw: tuple[int, int, int] | None = None) -> np.ndarray:
    """torch Linear weight ``(out, in)`` -> Flax ``(in, out)``.

    With ``chw = (C, H, W)`` the input is a flattened feature map: torch's row index is
    ``c*H*W + h*W + w`` (NCHW flatten), ours ``h*W*C + w*C + c`` (NHWC flatten), so the columns
    of ``weight`` are reordered accordingly before transposing.
    """
    if chw is not None:
        c, h, w = chw
        out = weight.shape[0]
        if weight.shape[1] != c * h * w:
            raise ConversionError(f"dense weight {weight.shape} does not flatten {chw}")
        weight = weight.reshape(out, c, h, w).transpose(0, 2, 3, 1).reshape(out, h * w * c)
    return np.ascontiguousarray(weight.T)


def bn_variables(weight: np.ndarray, bias: np.ndarray, running_mean: np.ndarray,
                 running_var: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """torch BatchNorm tensors -> Flax ``({"scale", "bias"}, {"mean", "var"})``."""
    return {"scale": weight, "bias": bias}, {"mean": running_mean, "var": running_var}


def abstract_variables(module: Any, size: int) -> dict[str, Any]:
    """The variable tree of ``module`` as ``jax.ShapeDtypeStruct`` leaves (nothing computed)."""
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x), x)


def _keras(spec: ModelSpec) -> bool:
    return spec.weights_format == "keras_h5"


def _torch_key(spec: ModelSpec, path: tuple[str, ...]) -> str:
    """The weight-file key of Flax variable ``path`` (a torch key, or a Keras dataset path)."""
    collection, *module_path, leaf = path
    table, separator = (_LEAF_TO_KERAS, "/") if _keras(spec) else (_LEAF_TO_TORCH, ".")
    try:
        suffix = table[(collection, leaf)]
    except KeyError:
        raise ConversionError(
            f"{spec.name}: Flax variable {'/'.join(path)} has no counterpart in a "
            f"{spec.weights_format} weight file") from None
    return f"{spec.torch_prefix(tuple(module_path))}{separator}{suffix}"


def _torch_shape(spec: ModelSpec, path: tuple[str, ...], flax_shape: tuple[int, ...]
                 ) -> tuple[int, ...]:
    """The weight-file shape whose conversion yields ``flax_shape`` at ``path``."""
    if _keras(spec):  # Keras stores HWIO kernels and (in, out) dense kernels, as Flax does
        return tuple(flax_shape)
    if path[-1] == "kernel" and len(flax_shape) == 4:
        kh, kw, cin, cout = flax_shape
        return cout, cin, kh, kw
    if path[-1] == "kernel" and len(flax_shape) == 2:
        return flax_shape[1], flax_shape[0]
    return tuple(flax_shape)


class _ByIdentity:
    """A spec as a cache key, by identity (a ``ModelSpec`` holds dicts, so it has no hash);
    the cache holds the key, so the spec stays alive and its ``id`` is never reused."""

    __slots__ = ("spec",)

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def __hash__(self) -> int:
        return id(self.spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.spec is self.spec


@functools.lru_cache(maxsize=64)
def _abstract_cached(key: _ByIdentity, full: bool, options: tuple[tuple[str, Any], ...]
                     ) -> dict[str, Any]:
    spec = key.spec
    module = spec.build_full(**dict(options)) if full else spec.build(**dict(options))
    return abstract_variables(module, spec.input_size)


def abstract_for(spec: ModelSpec, full: bool, **options: Any) -> dict[str, Any]:
    """Abstract variables of the (full or inference) model, cached per spec object: tracing
    ResNet-152's init takes seconds, and load() checks every checkpoint against it."""
    cached = _abstract_cached(_ByIdentity(spec), full, tuple(sorted(options.items())))
    # A fresh tree each time: callers may mutate containers; the leaves are immutable.
    return jax.tree.map(lambda leaf: leaf, cached)


def expected_torch_keys(spec: ModelSpec, *, with_aux: bool = True,
                        **options: Any) -> dict[str, tuple[int, ...]]:
    """``{torch key: torch shape}`` the converter consumes for ``spec`` (ignored keys excluded).

    For a Keras model (``spec.weights_format == "keras_h5"``): ``{dataset path: shape}``.
    ``with_aux=False`` leaves out auxiliary heads (optional as a group).
    """
    flat = traverse_util.flatten_dict(abstract_for(spec, full=with_aux, **options))
    return {_torch_key(spec, path): _torch_shape(spec, path, tuple(leaf.shape))
            for path, leaf in flat.items()}


def _convert_leaf(spec: ModelSpec, path: tuple[str, ...], key: str, value: np.ndarray,
                  expected_shape: tuple[int, ...]) -> np.ndarray:
    if not (np.issubdtype(value.dtype, np.floating) or value.dtype.name == "bfloat16"):
        raise ConversionError(f"{spec.name}: key {key!r} has dtype {value.dtype}, not floating")
    value = np.asarray(value, np.float32)
    module_name = join_path(path[1:-1])
    if _keras(spec):
        converted = value
    elif path[-1] == "kernel" and value.ndim == 4:
        converted = conv_kernel(value)
    elif path[-1] == "kernel" and value.ndim == 2:
        chw = spec.flatten_chw.get(module_name)
        if chw is not None and value.shape[1] != int(np.prod(chw)):
            raise ConversionError(
                f"{spec.name}: key {key!r} has shape {value.shape}, expected (*, {np.prod(chw)})"
                f" flattened from {chw}")
        converted = dense_kernel(value, chw)
    else:
        converted = value
    if converted.shape != expected_shape:
        torch_shape = _torch_shape(spec, path, expected_shape)
        raise ConversionError(
            f"{spec.name}: key {key!r} has shape {tuple(value.shape)}, expected {torch_shape} "
            f"(Flax {'/'.join(path)} {expected_shape})")
    return converted


def convert_state_dict(spec: ModelSpec, state_dict: Mapping[str, np.ndarray],
                       **options: Any) -> dict[str, Any]:
    """Convert a torch state dict into ``{"params": ..., "batch_stats": ...}`` for ``spec``.

    Args:
      spec: the target model.
      state_dict: ``{torch key: array}``, e.g. from :func:`models.torch_reader.load_state_dict`
        (for a Keras model ``{dataset path: array}`` from
        :func:`models.keras_reader.load_weights_h5`).
      **options: model options overriding ``spec.options`` (architecture-affecting ones only
        matter if they change variable shapes).

    Returns:
      The inference variables as nested dicts of float32 numpy arrays.

    Raises:
      ConversionError: naming the key, for an unknown (unconsumed) key, a missing key, a wrong
        shape or a non-floating dtype.
    """
    full = traverse_util.flatten_dict(abstract_for(spec, full=True, **options))
    inference = traverse_util.flatten_dict(abstract_for(spec, full=False, **options))
    missing_inference = set(inference) - set(full)
    if missing_inference:  # pragma: no cover - build() would have variables build_full() lacks
        raise ConversionError(f"{spec.name}: spec inconsistent: {sorted(missing_inference)[:3]}")
    keys = {path: _torch_key(spec, path) for path in full}
    if len(set(keys.values())) != len(keys):  # pragma: no cover - a torch_prefix bug
        raise ConversionError(f"{spec.name}: two Flax variables map to one torch key")

    # Auxiliary heads: torchvision's downloadable files contain them, but the state_dict() of a
    # torchvision model built with pretrained weights does not (it deletes them). Accept the
    # group entirely present (then validated) or entirely absent; nothing in between.
    aux = [path for path in full if path not in inference]
    aux_present = [path for path in aux if keys[path] in state_dict]
    if aux_present and len(aux_present) != len(aux):
        absent = next(path for path in aux if keys[path] not in state_dict)
        raise ConversionError(
            f"{spec.name}: missing key {keys[absent]!r} of the auxiliary head (the state dict "
            "has some of its keys but not all)")
    wanted = list(inference) + aux_present

    converted: dict[tuple[str, ...], np.ndarray] = {}
    for path in wanted:
        key = keys[path]
        if key not in state_dict:
            raise ConversionError(
                f"{spec.name}: missing key {key!r} (needed for Flax {'/'.join(path)})")
        converted[path] = _convert_leaf(spec, path, key, state_dict[key], tuple(full[path].shape))

    consumed = {keys[path] for path in wanted}
    unknown = [k for k in state_dict if k not in consumed and not k.endswith(IGNORED_SUFFIXES)]
    if unknown:
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise ConversionError(
            f"{spec.name}: unknown key {unknown[0]!r}: the state dict has keys the model does "
            f"not use: {unknown[:5]}{more}")
    if aux_present:
        logging.info("%s: auxiliary head validated (%d arrays) and dropped: unused at inference",
                     spec.name, len(aux_present))
    return traverse_util.unflatten_dict({path: converted[path] for path in inference})
