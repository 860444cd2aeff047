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
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from secnn_jax.errors import SecnnError

__all__ = ["FileWriteError", "atomic_write", "dumps_json", "os_error_text", "to_jsonable",
           "write_json"]


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
