"""Per-model input preprocessing: resize, center crop and normalise one uint8 RGB image.

Written in ``jax.numpy`` with shapes derived only from the (static) input shape, so it runs
eagerly on numpy input and also inside ``jax.jit``/``jax.vmap`` on traced arrays.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models.spec import Preprocessing
from secnn_jax.errors import SecnnError

__all__ = ["ImageError", "ImageTypeError", "fcn_size", "preprocess_image", "validate_image"]


class ImageError(SecnnError, ValueError):
    """An image of the wrong shape (not ``[H, W, 3]``, or empty)."""


class ImageTypeError(SecnnError, TypeError):
    """An image that is not a uint8 numpy/JAX array."""


def validate_image(image: Any) -> None:
    """Raise :class:`ImageTypeError`/:class:`ImageError` unless ``image`` is uint8 ``[H, W, 3]``."""
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None or dtype is None:
        raise ImageTypeError(f"image must be a numpy or JAX array, got {type(image).__name__}")
    if np.dtype(dtype) != np.uint8:
        raise ImageTypeError(f"image must be uint8 RGB, got dtype {dtype}")
    if len(shape) != 3 or shape[-1] != 3:
        raise ImageError(f"image must be [H, W, 3] RGB, got shape {tuple(shape)}")
    if shape[0] < 1 or shape[1] < 1:
        raise ImageError(f"image is empty: shape {tuple(shape)}")


def _center_crop(x: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """torchvision ``center_crop`` offsets: ``int(round((H - h) / 2))``."""
    top = int(round((x.shape[0] - height) / 2.0))
    left = int(round((x.shape[1] - width) / 2.0))
    return x[top:top + height, left:left + width]


def _round_up(numerator: int, denominator: int, multiple: int) -> int:
    """``ceil(numerator / denominator / multiple) * multiple``, in exact integer arithmetic."""
    return -(-numerator // (denominator * multiple)) * multiple


def fcn_size(config: Preprocessing, height: int, width: int) -> tuple[int, int]:
    """The ``(H, W)`` a fully convolutional model's preprocessing resizes ``height x width`` to.

    The image is scaled by ``min(1, crop / max(height, width))`` (down only, aspect kept), and
    each scaled side is rounded up to the next multiple of ``config.multiple``, but not below
    ``config.min_side``. Exact integer arithmetic: a side already a multiple stays as it is.
    """
    if config.multiple is None:
        raise ValueError("fcn_size needs a Preprocessing with `multiple` set")
    longest, multiple = max(height, width), config.multiple
    if longest <= config.crop:  # no scaling
        sides = (_round_up(height, 1, multiple), _round_up(width, 1, multiple))
    else:  # side * crop / longest, rounded up to the multiple
        sides = (_round_up(height * config.crop, longest, multiple),
                 _round_up(width * config.crop, longest, multiple))
    floor = _round_up(config.min_side, 1, multiple)
    return max(sides[0], floor), max(sides[1], floor)


def _normalise(config: Preprocessing, x: jnp.ndarray) -> jnp.ndarray:
    """``(x / 255 - mean) / std`` per channel, after the optional RGB -> BGR swap.

    Computed as ``(x - 255 mean) / (255 std)`` with the constants scaled in float64, so that
    pixel-unit normalisations (HED: ``x - 103.939``) are exact up to one rounding.
    """
    if config.bgr:
        x = x[..., ::-1]
    mean = jnp.asarray(np.multiply(config.mean, 255.0), jnp.float32)
    std = jnp.asarray(np.multiply(config.std, 255.0), jnp.float32)
    return ((x - mean) / std).astype(jnp.float32)


def preprocess_image(config: Preprocessing, image: Any) -> jnp.ndarray:
    """Apply ``config`` to one uint8 ``[H, W, 3]`` image.

    Returns float32 ``[crop, crop, 3]``, or for a fully convolutional model (``config.multiple``
    set) ``[*fcn_size(config, H, W), 3]``: an anti-aliased bilinear resize of the whole image
    to that size (no crop, no padding), then the normalisation.
    """
    validate_image(image)
    x = jnp.asarray(image).astype(jnp.float32)
    height, width = x.shape[:2]
    size = config.crop
    if config.multiple is not None:
        new_hw = fcn_size(config, height, width)
        if new_hw != (height, width):
            x = jax.image.resize(x, (*new_hw, 3), config.method, antialias=True)
        return _normalise(config, x)
    if config.crop_fraction is not None:
        # TensorFlow EfficientNet eval: a centered square of crop_fraction * shorter side
        # (offsets rounded up as in preprocessing._decode_and_center_crop), then a resize
        # without antialiasing (tf.image.resize's default).
        side = int(config.crop_fraction * min(height, width))
        top, left = (height - side + 1) // 2, (width - side + 1) // 2
        x = x[top:top + side, left:left + side]
        x = jax.image.resize(x, (size, size, 3), config.method, antialias=False)
    else:
        # torchvision eval: Resize(shorter side -> resize, long side truncated) with
        # antialiasing, then CenterCrop(crop).
        short, long = (height, width) if height <= width else (width, height)
        new_short, new_long = config.resize, int(config.resize * long / short)
        new_hw = (new_short, new_long) if height <= width else (new_long, new_short)
        x = jax.image.resize(x, (*new_hw, 3), config.method, antialias=True)
        x = _center_crop(x, size, size)
    return _normalise(config, x)
