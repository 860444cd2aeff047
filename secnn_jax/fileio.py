"""Files: the one atomic writer and the one deterministic JSON encoding every module uses
(traces, run directories, replay results, timing calibration outputs, checkpoint metadata).

:func:`atomic_write` writes to a temporary file in the target's directory, flushes and fsyncs it,
then renames it into place (``os.replace``), so a reader sees either the old file or the whole new
one. On any failure the temporary file is removed (a full disk must not also be left holding a
hidden partial copy) and an ``OSError`` becomes a :class:`FileWriteError` naming the target and
the OS error.

:func:`dumps_json` is the one JSON encoding: keys sorted, numpy scalars/arrays, tuples, paths and
dataclasses converted by :func:`to_jsonable`, and one NaN policy — a non-finite float becomes
``null`` (JSON has no NaN; writing ``NaN`` would produce files other readers reject).

:func:`file_digest` is the one content fingerprint of an input file or directory, cheap for
large files (what the caches key on, so that a replaced input is recomputed, never mixed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from secnn_jax.errors import SecnnError

__all__ = ["FileWriteError", "atomic_write", "dumps_json", "file_digest", "os_error_text",
           "to_jsonable", "write_json"]

#: :func:`file_digest` reads at most this many blocks of :data:`DIGEST_BLOCK` bytes per file.
DIGEST_BLOCKS = 16
DIGEST_BLOCK = 1 << 16


class FileWriteError(SecnnError, OSError):
    """A file could not be written (the message names it and the OS error)."""


def os_error_text(e: OSError) -> str:
    """``"No space left on device (ENOSPC)"``, or the error's own text."""
    if e.errno is None:
        return str(e) or type(e).__name__
    return f"{e.strerror or os.strerror(e.errno)} ({errno.errorcode.get(e.errno, e.errno)})"


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Writes ``data`` (``str`` as UTF-8) to ``path`` atomically; creates parent directories.

    Raises:
      FileWriteError: the write failed (no temporary file is left behind).
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileWriteError):
            raise FileWriteError(f"cannot write {path}: {os_error_text(e)}") from e
        raise
    return path


def to_jsonable(obj: Any) -> Any:
    """``obj`` made JSON-ready: mappings (keys as ``str``), lists/tuples, numpy scalars and
    arrays, dataclass instances and paths converted; non-finite floats become ``None``; any
    other object that ``json`` cannot encode becomes its ``str``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    return str(obj)


def dumps_json(obj: Any, *, indent: int | None = 2, compact: bool = False,
               newline: bool = True) -> str:
    """Deterministic JSON text of ``obj`` (:func:`to_jsonable`, keys sorted).

    Args:
      obj: what to encode.
      indent: spaces per level (``None``: one line).
      compact: no spaces after separators (for checksums over the canonical form).
      newline: end with a newline (files) or not (checksums, embedded strings).
    """
    text = json.dumps(to_jsonable(obj), sort_keys=True, indent=indent, allow_nan=False,
                      ensure_ascii=True, separators=(",", ":") if compact else None)
    return text + "\n" if newline else text


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Writes :func:`dumps_json` of ``obj`` to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, dumps_json(obj, indent=indent))


def file_digest(path: str | os.PathLike[str]) -> str:
    """A content fingerprint of a file or a directory of files (sha256 hex), cheap for large files.

    A file's digest hashes its size, its modification time (``st_mtime_ns``) and
    :data:`DIGEST_BLOCKS` blocks of :data:`DIGEST_BLOCK` (64 KiB) bytes read at evenly spaced
    offsets, the first and the last block included; a file of at most 1 MiB is hashed whole. A
    multi-gigabyte video thus costs 16 reads, not a full pass. Replacing a file by another clip
    changes its size, its time and (almost surely) its sampled bytes; a ``touch`` changes the
    time only, and is treated as a change (a recomputation, never a stale result). An in-place
    edit that keeps size and time and touches no sampled block is not seen: the documented
    price of not reading the whole file.

    A directory's digest hashes the sorted names of its non-hidden entries and each file's
    digest (sub-directories recursively).

    Raises:
      FileNotFoundError: ``path`` does not exist.
    """
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        h.update(b"dir\0")
        for child in sorted(c for c in p.iterdir() if not c.name.startswith(".")):
            h.update(child.name.encode() + b"\0" + file_digest(child).encode() + b"\0")
        return h.hexdigest()
    st = p.stat()
    size = st.st_size
    h.update(f"file\0{size}\0{st.st_mtime_ns}\0".encode())
    with open(p, "rb") as f:
        if size <= DIGEST_BLOCKS * DIGEST_BLOCK:
            h.update(f.read())
        else:
            last = size - DIGEST_BLOCK
            for i in range(DIGEST_BLOCKS):
                f.seek(last * i // (DIGEST_BLOCKS - 1))
                h.update(f.read(DIGEST_BLOCK))
    return h.hexdigest()
