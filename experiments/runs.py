"""Run hygiene for the studies: output directory, provenance, atomic and deterministic files.

A :class:`RunDir` is a study's output directory. On open it writes, next to the results:

* ``config.json`` — the full configuration (compared on resume: a different config in the same
  directory is refused, so finished work is only ever reused for the same flags), and under
  ``"effective"`` every value the run used that differs from the one asked for (a capped
  ``transfer_frames``, a model's ``calibration_frames``: :meth:`RunDir.record_effective`);
* ``environment.json`` — code version (git commit, dirty flag) and environment (Python, JAX,
  jaxlib, NumPy, Flax versions, platform, JAX backend);
* ``run_info.json`` — what must *not* be compared between runs: start/end times, wall time,
  hostname, command line, how much work was resumed.

Everything is written atomically (a temporary file in the same directory, then ``os.replace``),
so a run killed at any point leaves either the old file or the new one, never a half-written one.
Files other than ``run_info.json`` are deterministic: JSON with sorted keys, ``.npz`` archives with
fixed zip timestamps, so the same inputs and flags give byte-identical outputs.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from secnn_jax import fileio
from secnn_jax.errors import SecnnError
from secnn_jax.fileio import atomic_write

__all__ = [
    "ArrayFileError",
    "RunConfigError",
    "check_config",
    "RunDir",
    "code_digest",
    "compared_files",
    "environment",
    "git_version",
    "load_arrays",
    "save_arrays",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class RunConfigError(SecnnError, ValueError):
    """The output directory holds a run made with a different configuration."""


class ArrayFileError(SecnnError, ValueError):
    """A saved array file is missing, truncated or corrupted (the message names it)."""


# ---------------------------------------------------------------------------------------------
# Atomic, deterministic files


def save_arrays(path: str | Path, arrays: Mapping[str, Any]) -> Path:
    """Saves named arrays as an uncompressed ``.npz`` with fixed timestamps, atomically.

    Unlike ``np.savez`` the bytes depend only on the arrays (and their order), so equal results
    give byte-identical files.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return atomic_write(path, buf.getvalue())


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Loads a :func:`save_arrays` file fully into memory.

    Raises:
      ArrayFileError: naming the file if it is missing, truncated or not an array archive.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError as e:
        raise ArrayFileError(f"array file {str(path)!r} is missing") from e
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise ArrayFileError(f"array file {str(path)!r} is truncated or corrupted: {e}") from e


# ---------------------------------------------------------------------------------------------
# Provenance


def git_version(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """``{"commit": hash or "unknown", "dirty": bool | None}`` of the code that runs."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              check=True, timeout=20).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


@functools.cache
def code_digest(root: Path = REPO_ROOT) -> str:
    """sha256 hex of the code that computes results: every ``.py`` file (relative path and
    bytes) of the ``secnn_jax``, ``experiments`` and ``models`` packages under ``root``.

    Unlike :func:`git_version` it sees uncommitted edits and needs no git; the cell cache keys
    on it, so edited code recomputes instead of reusing chunks the old code computed.
    """
    h = hashlib.sha256()
    for pkg in ("secnn_jax", "experiments", "models"):
        for p in sorted((root / pkg).rglob("*.py")):
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def environment() -> dict[str, Any]:
    """Versions and platform the results were computed with (no hostname, no time)."""
    import flax  # noqa: PLC0415
    import jax  # noqa: PLC0415
    import jaxlib  # noqa: PLC0415

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "flax": flax.__version__,
        "platform": f"{platform.system()}-{platform.machine()}",
        "jax_backend": jax.default_backend(),
        "jax_devices": len(jax.devices()),
    }


# ---------------------------------------------------------------------------------------------
# Run directories


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [prefix.rstrip(".")] if a != b else []


EFFECTIVE = "effective"


def _requested(config: Any) -> Any:
    """``config`` without its :data:`EFFECTIVE` record (what was asked for: compared on
    resume; the values used follow from it)."""
    if isinstance(config, dict):
        return {k: v for k, v in config.items() if k != EFFECTIVE}
    return config


def check_config(root: str | Path, config: Mapping[str, Any], *,
                 overwrite: bool = False) -> str:
    """What :class:`RunDir` will do with ``root`` for ``config``, checked without writing:
    ``"new"`` (no run there), ``"resume"`` (the same configuration) or ``"overwrite"``. The
    ``"effective"`` record (values used where a request was capped) is not compared.

    Raises:
      RunConfigError: ``root`` holds a run with a different configuration (the message names
        the differing fields) and ``overwrite`` is false.
    """
    cfg_path = Path(root) / RunDir.CONFIG
    if not cfg_path.exists():
        return "new"
    config = _requested(json.loads(fileio.dumps_json(config)))
    try:
        old = _requested(json.loads(cfg_path.read_text()))
    except (OSError, ValueError):
        old = None
    if old == config:
        return "resume"
    if not overwrite:
        fields = _diff_keys(old, config) if isinstance(old, dict) else ["<all>"]
        raise RunConfigError(
            f"{str(root)!r} holds a run with a different configuration (fields "
            f"{', '.join(fields[:8])} differ); choose another --out_dir or pass "
            "--overwrite to start over")
    return "overwrite"


class RunDir:
    """A study's output directory with provenance files (see module docstring).

    Args:
      root: the directory (created if needed).
      config: the run's full configuration (a mapping; ConfigDicts via ``to_dict()``).
      overwrite: if the directory holds a run with a different config, start over instead of
        failing (only files this module and the studies write are removed).

    Raises:
      RunConfigError: the directory holds a different configuration (the message names the
        differing fields) and ``overwrite`` is false.
    """

    CONFIG = "config.json"
    ENVIRONMENT = "environment.json"
    RUN_INFO = "run_info.json"

    def __init__(self, root: str | Path, config: Mapping[str, Any], *,
                 overwrite: bool = False) -> None:
        self.root = Path(root)
        self.config = json.loads(fileio.dumps_json(config))
        action = check_config(self.root, self.config, overwrite=overwrite)  # before any write
        self.root.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()
        self.resumed = action == "resume"
        cfg_path = self.root / self.CONFIG
        if action == "overwrite":
            self.clear()
        fileio.write_json(cfg_path, self.config)
        env = {"code": git_version(), "environment": environment()}
        env_path = self.root / self.ENVIRONMENT
        if env_path.exists():
            with contextlib.suppress(OSError, ValueError):
                old_env = json.loads(env_path.read_text())
                if old_env != json.loads(fileio.dumps_json(env)):
                    logging.warning("resuming %s with a different code version or environment "
                                    "(was %s)", self.root, old_env)
        fileio.write_json(env_path, env)
        self.info: dict[str, Any] = {
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "hostname": socket.gethostname(),
            "argv": list(sys.argv),
            "pid": os.getpid(),
            "resumed": self.resumed,
            "finished": None,
            "wall_s": None,
        }
        self.write_info()

    def record_effective(self, field: str, value: Any) -> None:
        """Records in ``config.json``, under ``"effective"``, the value a run used for
        ``field`` where it differs from the one asked for (a capped or per-model value);
        rewrites the file atomically. Not compared on resume (it follows from the request)."""
        eff = dict(self.config.get(EFFECTIVE) or {})
        eff[field] = json.loads(fileio.dumps_json(value))
        self.config[EFFECTIVE] = eff
        fileio.write_json(self.root / self.CONFIG, self.config)

    def path(self, *parts: str) -> Path:
        """A path under the run directory (parents created)."""
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def clear(self) -> None:
        """Removes this run's outputs (results, figures, cells, report, provenance files)."""
        import shutil  # noqa: PLC0415

        for name in ("results", "figures", "cells"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for name in ("report.md", self.CONFIG, self.ENVIRONMENT, self.RUN_INFO):
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()

    def write_info(self, **extra: Any) -> None:
        """Updates ``run_info.json`` (the one file that is not compared between runs)."""
        self.info.update(extra)
        fileio.write_json(self.root / self.RUN_INFO, self.info)

    def finish(self, **extra: Any) -> float:
        """Records the end time and wall time; returns the wall time in seconds."""
        wall = time.time() - self._t0
        self.write_info(
            finished=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            wall_s=round(wall, 2), **extra)
        return wall

    def write_json(self, rel: str, obj: Any) -> Path:
        """Writes a deterministic JSON result under the run directory, atomically."""
        return fileio.write_json(self.path(rel), obj)

    def write_text(self, rel: str, text: str) -> Path:
        """Writes a text result under the run directory, atomically."""
        return atomic_write(self.path(rel), text)

    def compared_files(self) -> list[Path]:
        """Every output file that must be byte-identical across runs (:func:`compared_files`)."""
        return compared_files(self.root)


def compared_files(root: str | Path) -> list[Path]:
    """Every output file of a run directory that must be byte-identical across runs with the
    same flags, sorted.

    Excludes the cache of cells, ``run_info.json`` (times, host), ``environment.json`` (the code
    version may legitimately move between an interrupted run and its resumption) and hidden
    temporary files.
    """
    root = Path(root)
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] != "cells" and not p.name.startswith(".") \
                and p.name not in (RunDir.RUN_INFO, RunDir.ENVIRONMENT):
            out.append(p)
    return out
