"""A TensorFlow-free reader of Keras 3 ``.weights.h5`` files (``model.save_weights``).

A Keras 3 weights file is plain HDF5: one group per layer, nested as the model's attributes
nest (``block1/layers/conv2d``), whose ``vars`` subgroup holds the layer's variables as datasets
named by position (``vars/0`` the kernel, ``vars/1`` the bias; a conv kernel is already HWIO)
and whose ``name`` attribute is the Keras layer name (``block1_conv1``). This module reads the
datasets with ``h5py``; neither TensorFlow nor Keras is imported, and no code stored in the file
is ever run (HDF5 holds arrays and attributes only).

Public entry points: :func:`load_weights_h5` (``{dataset path: numpy array}``) and
:func:`layer_names` (``{variables group path: Keras layer name}``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from secnn_jax.errors import SecnnError

__all__ = ["KerasReaderError", "load_weights_h5", "layer_names"]


class KerasReaderError(SecnnError, ValueError):
    """A Keras weights file could not be read; the message names the file and the cause."""


def _open(path: Path) -> Any:
    if not path.is_file():
        raise KerasReaderError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise KerasReaderError(f"{path}: not a readable HDF5 file ({err})") from None


def load_weights_h5(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every dataset of a ``.weights.h5`` file as ``{"block1/layers/conv2d/vars/0": array}``.

    Raises:
      KerasReaderError: naming the file, if it is missing, not HDF5, or holds a dataset that is
        not a numeric array.
    """
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    with _open(path) as handle:
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                try:
                    array = np.asarray(obj[()])
                except (OSError, TypeError, ValueError) as err:
                    raise KerasReaderError(f"{path}: dataset {name!r} unreadable ({err})") from None
                if array.dtype.kind not in "fiub":
                    raise KerasReaderError(
                        f"{path}: dataset {name!r} has dtype {array.dtype}, not numeric")
                out[name] = array

        handle.visititems(visit)
    if not out:
        raise KerasReaderError(f"{path}: no weight arrays in the file")
    return out


def layer_names(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{"block1/layers/conv2d": "block1_conv1"}``: each layer group's Keras ``name``
    attribute (stored on its ``vars`` subgroup), for checking a layer mapping by name."""
    path = Path(path)
    names: dict[str, str] = {}
    with _open(path) as handle:
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group) and name.endswith("vars") and "name" in obj.attrs:
                value = obj.attrs["name"]
                names[name.removesuffix("vars").rstrip("/")] = (
                    value.decode() if isinstance(value, bytes) else str(value))

        handle.visititems(visit)
    return names
