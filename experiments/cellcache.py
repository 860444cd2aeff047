"""The cell cache: where each finished chunk of a cell lives on disk (key -> file).

Only storage, no computation (that is :class:`experiments.cells.Workspace` on
:func:`secnn_jax.pipeline.stream_program`). A cell's directory is
``root/<model>/<stream>/<predictor>/<tau key>[-<timer key>]`` (each part through
:func:`safe_name`; :func:`tau_key` names the threshold); the reference pass of a (model, stream)
pair lives in ``root/<model>/<stream>/reference``. In a cell's directory:

* ``chunk{k:05d}.npz`` — the summaries of chunk ``k`` (``runs.save_arrays``, written
  atomically), with ``n`` its number of frames;
* ``state{k:05d}.npz`` — the predictor state after chunk ``k`` (its pytree leaves in order), kept
  only for the last finished chunk of an unfinished cell, so a killed run resumes after it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from experiments import runs
from secnn_jax.layers import Layer

__all__ = ["CellCache", "flatten_state", "safe_name", "tau_key", "unflatten_state"]

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
