"""Orbax checkpoints of converted model variables, with metadata, in a per-user cache directory.

Layout, for a cache root ``R`` (see :func:`cache_root`)::

    R/<model>/state/          Orbax StandardCheckpointer directory ({"params", "batch_stats"})
    R/<model>/metadata.json   CheckpointMetadata (written last: its presence marks completeness)

**Content-aware.** The metadata records what a checkpoint was converted from: the source file's
SHA-256 and its cheap :func:`secnn_jax.fileio.file_digest` (size, modification time, sampled
blocks), the converter version and the digest of the converter's code
(:func:`models.conversion.converter_digest`). :func:`stale_reason` compares them with the
inputs of today (``models.load`` does, before restoring), so a weights package upgraded in
place, a torch file replaced at the same path or an edited converter is converted again, never
mixed with the old conversion.

Writes are atomic at the directory level: everything is written into a hidden temporary
sibling, then renamed into place, so a crash never leaves a directory that looks valid. On load,
the tree structure, shapes, dtypes and a CRC32 of every array are checked against the metadata
(Orbax alone does not notice flipped bytes), and any failure raises :class:`CheckpointError`
naming the path.

Orbax runs each save and restore in a fresh asyncio event loop, reading or writing every array
concurrently through tensorstore. When one array fails (a truncated file), Orbax closes that loop
while the other reads are still in flight; their completions then hit the closed loop from
tensorstore's threads and print "Event loop is closed" tracebacks after our error. Saves and
restores here therefore run under :func:`_settled_event_loops`, which lets a loop's unfinished
tasks settle before it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import tempfile
import uuid
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import traverse_util

from secnn_jax import fileio
from secnn_jax.errors import SecnnError

__all__ = [
    "CACHE_ENV",
    "CheckpointError",
    "CheckpointMetadata",
    "MissingCheckpointError",
    "cache_root",
    "checkpoint_dir",
    "exists",
    "read_metadata",
    "restore",
    "save",
    "sha256_file",
    "stale_reason",
]

#: Environment variable overriding the cache root (the directory holding ``<model>/``).
CACHE_ENV = "SECNN_JAX_CACHE"
_STATE = "state"
_METADATA = "metadata.json"
#: Longest wait for a failed restore's other reads to settle before its event loop closes.
_SETTLE_TIMEOUT_S = 60.0


class CheckpointError(SecnnError, ValueError):
    """A checkpoint exists but is corrupt, truncated, or does not match the model."""


class MissingCheckpointError(SecnnError, FileNotFoundError):
    """No checkpoint for a model; the message says which command creates it."""


@dataclasses.dataclass(frozen=True)
class CheckpointMetadata:
    """What a checkpoint holds and where it came from (``metadata.json``).

    Attributes:
      model: the zoo name, e.g. ``"resnet50"``.
      source: the converted torch file (absolute path), or ``"random-init"``.
      source_sha256: hex digest of ``source`` (empty for random init).
      converter_version: :data:`models.conversion.CONVERTER_VERSION` at conversion time.
      created: ISO-8601 UTC timestamp.
      arrays: ``{"params/layer1_0/conv1/kernel": {"shape", "dtype", "crc32"}}`` for every leaf.
      options: model options used at conversion time (informational).
      source_digest: :func:`secnn_jax.fileio.file_digest` of ``source`` at conversion time
        (empty for random init and checkpoints written before it was recorded).
      converter_code: :func:`models.conversion.converter_digest` at conversion time (empty
        when not recorded).
    """

    model: str
    source: str
    source_sha256: str
    converter_version: str
    created: str
    arrays: dict[str, dict[str, Any]]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    source_digest: str = ""
    converter_code: str = ""

    def to_json(self) -> str:
        """Serialise as indented JSON."""
        return fileio.dumps_json(self, indent=1, newline=False)

    @classmethod
    def from_json(cls, text: str) -> CheckpointMetadata:
        """Parse :meth:`to_json` output (unknown fields are an error)."""
        return cls(**json.loads(text))


def _settle_then(loop: asyncio.AbstractEventLoop, close: Any) -> Any:
    """``loop.close`` that first runs the loop until its unfinished tasks are done."""

    def settled_close() -> None:
        if not loop.is_closed() and not loop.is_running():
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            if pending:
                # The tasks' own exceptions are Orbax's to report (the first one already was);
                # we only wait for them, so tensorstore never calls back into a closed loop.
                loop.run_until_complete(asyncio.wait(pending, timeout=_SETTLE_TIMEOUT_S))
        close()

    return settled_close


class _SettlingPolicy(asyncio.AbstractEventLoopPolicy):
    """Delegates to another policy; the loops it creates settle their tasks before closing."""

    def __init__(self, base: asyncio.AbstractEventLoopPolicy) -> None:
        self._base = base

    def get_event_loop(self) -> asyncio.AbstractEventLoop:
        """The base policy's current loop."""
        return self._base.get_event_loop()

    def set_event_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Sets the base policy's current loop."""
        self._base.set_event_loop(loop)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """A base-policy loop whose ``close`` first lets its unfinished tasks settle."""
        loop = self._base.new_event_loop()
        # A loop type without instance attributes (uvloop) is returned as it is.
        with contextlib.suppress(AttributeError):
            loop.close = _settle_then(loop, loop.close)  # type: ignore[method-assign]
        return loop

    def get_child_watcher(self) -> Any:  # pragma: no cover - deprecated API, delegated
        """The base policy's child watcher."""
        return self._base.get_child_watcher()

    def set_child_watcher(self, watcher: Any) -> None:  # pragma: no cover - deprecated API
        """Sets the base policy's child watcher."""
        self._base.set_child_watcher(watcher)


@contextlib.contextmanager
def _settled_event_loops() -> Iterator[None]:
    """Within the block, event loops Orbax creates let unfinished tasks settle before closing.

    The policy is process-wide while the block runs: a loop another thread creates meanwhile
    settles too, which only delays that loop's ``close`` until its own tasks are done.
    """
    base = asyncio.get_event_loop_policy()
    if isinstance(base, _SettlingPolicy):  # nested (save inside restore): already settling
        yield
        return
    asyncio.set_event_loop_policy(_SettlingPolicy(base))
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(base)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding ``<model>/`` checkpoints.

    Precedence: the explicit ``cache_dir`` argument (or ``--cache_dir`` flag), then the
    ``SECNN_JAX_CACHE`` environment variable, then ``$XDG_CACHE_HOME/secnn_jax/checkpoints``
    (``~/.cache/secnn_jax/checkpoints`` when ``XDG_CACHE_HOME`` is unset).
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "secnn_jax" / "checkpoints"


def checkpoint_dir(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache root>/<name>``."""
    return cache_root(cache_dir) / name


def exists(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether a complete checkpoint (metadata written) exists for ``name``."""
    return (checkpoint_dir(name, cache_dir) / _METADATA).is_file()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _crc32(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8).reshape(-1))


def _describe(variables: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    flat = traverse_util.flatten_dict(dict(variables), sep="/")
    return {path: {"shape": list(np.shape(leaf)), "dtype": str(np.asarray(leaf).dtype),
                   "crc32": _crc32(np.asarray(leaf))} for path, leaf in sorted(flat.items())}


def save(name: str, variables: Mapping[str, Any], *, source: str, source_sha256: str,
         converter_version: str, options: Mapping[str, Any] | None = None,
         cache_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
         converter_code: str | None = None) -> Path:
    """Write ``variables`` as the checkpoint of ``name``, atomically; return its directory.

    The metadata records ``source``'s :func:`secnn_jax.fileio.file_digest` (when it is a
    file) and ``converter_code`` (default: :func:`models.conversion.converter_digest`), which
    :func:`stale_reason` compares later. If another process completes the same checkpoint first
    and ``overwrite`` is false, its copy is kept and ours discarded (both hold the same
    conversion).
    """
    root = cache_root(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    variables = {k: dict(v) for k, v in variables.items()}
    metadata = CheckpointMetadata(
        model=name, source=source, source_sha256=source_sha256,
        converter_version=converter_version,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        arrays=_describe(variables), options=dict(options or {}),
        source_digest=fileio.file_digest(source) if Path(source).is_file() else "",
        converter_code=_converter_code() if converter_code is None else converter_code)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    try:
        with _settled_event_loops(), ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(tmp / _STATE, variables)
        # metadata.json last: a directory without it is never treated as a checkpoint.
        (tmp / _METADATA).write_text(metadata.to_json())
        if final.exists():
            if not overwrite and exists(name, cache_dir):
                logging.info("checkpoint %s appeared meanwhile; keeping it", final)
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            stale = root / f".{name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not exists(name, cache_dir):  # a concurrent writer did not win: real failure
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logging.info("wrote checkpoint %s", final)
    return final


def _converter_code() -> str:
    from models.conversion import converter_digest  # noqa: PLC0415  (jax, flax: when writing)

    return converter_digest()


def stale_reason(name: str, source: str | os.PathLike[str] | None, *, converter_version: str,
                 converter_code: str, cache_dir: str | os.PathLike[str] | None = None
                 ) -> str | None:
    """Why ``name``'s checkpoint no longer matches its inputs, or ``None`` when it does.

    Stale: written by another ``converter_version`` or by other converter code (when
    recorded), or ``source`` — the weight file it would be converted from today (``None``:
    unknown, not compared) — has other content than the one converted: its
    :func:`secnn_jax.fileio.file_digest` differs from the recorded one and its SHA-256 (read in
    full only then) differs too. A source whose content is unchanged but whose digest is not
    (a reinstall: a new modification time) gets its new digest recorded.

    Raises:
      FileNotFoundError: no checkpoint; CheckpointError: unreadable metadata.
    """
    meta = read_metadata(name, cache_dir)
    if meta.converter_version != converter_version:
        return (f"written by converter version {meta.converter_version}, this is "
                f"{converter_version}")
    if meta.converter_code and meta.converter_code != converter_code:
        return "written by other converter code (models/conversion.py or a weight reader changed)"
    if source is None or not Path(source).is_file() or meta.source == "random-init":
        return None
    digest = fileio.file_digest(source)
    if meta.source_digest and digest == meta.source_digest:
        return None
    if sha256_file(source) != meta.source_sha256:
        return f"its weights {source} differ from those converted ({meta.source})"
    new = dataclasses.replace(meta, source=str(Path(source).resolve()), source_digest=digest)
    with contextlib.suppress(OSError):  # only a cheaper check next time
        fileio.atomic_write(checkpoint_dir(name, cache_dir) / _METADATA, new.to_json())
    return None


def read_metadata(name: str, cache_dir: str | os.PathLike[str] | None = None
                  ) -> CheckpointMetadata:
    """The metadata of ``name``'s checkpoint (:class:`CheckpointError` if unreadable)."""
    path = checkpoint_dir(name, cache_dir) / _METADATA
    try:
        return CheckpointMetadata.from_json(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint metadata ({err})") from None


def restore(name: str, cache_dir: str | os.PathLike[str] | None = None, *,
            verify: bool = True) -> tuple[dict[str, Any], CheckpointMetadata]:
    """Load ``name``'s checkpoint as nested dicts of numpy arrays, plus its metadata.

    Args:
      name: model name.
      cache_dir: cache root override.
      verify: check every array's CRC32 against the metadata (fast; catches flipped bytes).

    Raises:
      FileNotFoundError: if there is no complete checkpoint (callers add the command to run).
      CheckpointError: naming the path, if it is truncated, corrupt or inconsistent.
    """
    directory = checkpoint_dir(name, cache_dir)
    metadata = read_metadata(name, cache_dir)
    state = directory / _STATE
    try:
        with _settled_event_loops(), ocp.StandardCheckpointer() as checkpointer:
            variables = checkpointer.restore(state)
    except Exception as err:  # Orbax/tensorstore raise assorted types for damaged files
        raise CheckpointError(
            f"{state}: corrupt or truncated checkpoint ({type(err).__name__}: "
            f"{str(err)[:300]}); delete {directory} and convert again") from None
    flat = traverse_util.flatten_dict(variables, sep="/")
    if set(flat) != set(metadata.arrays):
        raise CheckpointError(
            f"{state}: arrays {sorted(set(flat) ^ set(metadata.arrays))[:5]} differ from "
            f"{directory / _METADATA}; delete {directory} and convert again")
    for path, leaf in flat.items():
        expected = metadata.arrays[path]
        leaf = np.asarray(leaf)
        if list(leaf.shape) != expected["shape"] or str(leaf.dtype) != expected["dtype"]:
            raise CheckpointError(f"{state}: {path} is {leaf.dtype}{list(leaf.shape)}, "
                                  f"metadata says {expected['dtype']}{expected['shape']}")
        if verify and _crc32(leaf) != expected["crc32"]:
            raise CheckpointError(
                f"{state}: {path} fails its checksum (corrupt data); delete {directory} "
                "and convert again")
    return variables, metadata
