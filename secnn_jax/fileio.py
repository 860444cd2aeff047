"""Crash-safe files: the one atomic writer every module uses (traces, run directories, replay
results, timing calibration outputs).

:func:`atomic_write` writes to a temporary file in the target's directory, flushes and fsyncs it,
then renames it into place (``os.replace``), so a reader sees either the old file or the whole new
one. On any failure the temporary file is removed (a full disk must not also be left holding a
hidden partial copy) and an ``OSError`` becomes a :class:`FileWriteError` naming the target and
the OS error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from secnn_jax.errors import SecnnError

__all__ = ["FileWriteError", "atomic_write", "os_error_text"]


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
