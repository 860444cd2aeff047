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

__all__ = ["ImageError", "ImageTypeError", "preprocess_image", "validate_image"]


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


def preprocess_image(config: Preprocessing, image: Any) -> jnp.ndarray:
    """Apply ``config`` to one uint8 ``[H, W, 3]`` image; returns float32 ``[crop, crop, 3]``."""
    validate_image(image)
    x = jnp.asarray(image).astype(jnp.float32)
    height, width = x.shape[:2]
    size = config.crop
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
    mean = jnp.asarray(config.mean, jnp.float32)
    std = jnp.asarray(config.std, jnp.float32)
    return ((x / 255.0 - mean) / std).astype(jnp.float32)
