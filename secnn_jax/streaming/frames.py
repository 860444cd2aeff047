"""Frames a stream runs on: checked, cut into chunks, a short last chunk padded.

Bad frames (wrong rank, no frames, no streams, NaN, ragged batches) raise :class:`FramesError`,
a :class:`secnn_jax.SecnnError` and ``ValueError``, naming the problem and the shape expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from secnn_jax.errors import SecnnError

#: The frames' layout, as the error messages spell it.
FRAMES_SHAPE = ("[T, N, H, W, C] (T frames of N streams; [T, N, L, C] or [T, N, F] for 1-D "
                "or dense models)")


class FramesError(SecnnError, ValueError):
    """Frames a stream cannot run on: wrong rank, no frames or streams, NaN/Inf, bad chunking."""


def check_frames(frames: Any, start: int = 0, what: str = "frames") -> np.ndarray | jax.Array:
    """Validates a frame batch ``[T, N, ...]``: numeric (integer or any float, bfloat16 and
    float16 included), 3- to 5-D, non-empty, finite.

    Returns the frames: a ``jax.Array`` stays on its device (the finiteness check runs there),
    anything else becomes a numpy array.

    Raises:
      FramesError: naming the problem and the shape expected, or the first frame with NaN or
        Inf (counting from ``start``).
    """
    if isinstance(frames, jax.Array):
        arr: np.ndarray | jax.Array = frames
    else:
        try:
            arr = np.asarray(frames)
        except ValueError as err:  # a ragged list of frames
            raise FramesError(f"{what}: frames of different shapes cannot be stacked into "
                              f"{FRAMES_SHAPE} ({err})") from err
    dtype = np.dtype(arr.dtype)
    shape = tuple(arr.shape)
    floating = bool(jnp.issubdtype(dtype, jnp.floating))  # bfloat16's numpy kind is "V"
    if not floating and dtype.kind not in "iu":
        raise FramesError(f"{what}: expected numeric frames, got dtype {dtype}")
    if not 3 <= len(shape) <= 5:
        raise FramesError(f"{what}: expected {FRAMES_SHAPE}, got a {len(shape)}-D array of "
                          f"shape {shape}")
    if shape[0] == 0:
        raise FramesError(f"{what}: no frames (T = 0) in shape {shape}; expected "
                          f"{FRAMES_SHAPE} with T >= 1")
    if shape[1] == 0:
        raise FramesError(f"{what}: no streams (N = 0) in shape {shape}; expected "
                          f"{FRAMES_SHAPE} with N >= 1")
    if 0 in shape[2:]:
        raise FramesError(f"{what}: shape {shape} has an empty axis; expected {FRAMES_SHAPE}")
    if floating:
        xp = jnp if isinstance(arr, jax.Array) else np
        bad = np.asarray(~xp.isfinite(arr.reshape(shape[0], -1)).all(axis=1))
        if bad.any():
            i = int(np.argmax(bad))
            raise FramesError(f"{what}: frame {start + i} contains NaN or Inf")
    return arr


def no_stream_axis(frames_shape: tuple[int, ...]) -> str:
    """The message for frames whose model reads each frame as one unbatched input."""
    return (f"frames of shape {frames_shape} have no stream axis N: the model reads each frame "
            f"{frames_shape[1:]} as one unbatched input; expected {FRAMES_SHAPE} (for one "
            "stream use frames[:, None])")


def chunks(frames: Iterable[Any] | np.ndarray | jax.Array, size: int) -> Iterator[np.ndarray]:
    """``frames`` as numpy chunks ``[t <= size, N, ...]``, every one but the last ``size`` long.

    ``frames`` is an array ``[T, N, ...]`` or any iterable of batches ``[N, ...]`` (a
    generator); the chunks are not checked (see :func:`check_frames`).

    Raises:
      FramesError: a batch of the iterable shaped unlike the batches before it in its chunk.
    """
    if isinstance(frames, np.ndarray | jax.Array):
        for i in range(0, frames.shape[0], size):
            yield np.asarray(frames[i:i + size])
        return
    buf: list[np.ndarray] = []
    for frame in frames:
        frame = np.asarray(frame)
        if buf and frame.shape != buf[0].shape:
            raise FramesError(f"a frame batch of shape {frame.shape} follows batches of shape "
                              f"{buf[0].shape}; every batch of a stream is [N, ...] alike")
        buf.append(frame)
        if len(buf) == size:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def pad_chunk(chunk: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(frames [size, ...], valid bool [size])``: a chunk of ``t <= size`` frames padded.

    A short chunk is padded with copies of its last frame (``valid`` false there; the scan
    leaves the state alone on them and the caller drops their outputs); a full chunk is
    returned as it is.

    Raises:
      FramesError: an empty chunk or one longer than ``size``.
    """
    t = int(chunk.shape[0])
    if not 1 <= t <= size:
        raise FramesError(f"a chunk of {t} frames cannot be padded to {size} frames")
    valid = np.arange(size) < t
    if t < size:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - t, axis=0)])
    return chunk, valid
