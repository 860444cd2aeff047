"""Input validation of the public timing functions: :class:`ReplayError` naming the argument.

:func:`~secnn_jax.timing.replayer.replay`, :func:`~secnn_jax.timing.replayer.replay_launches`,
:func:`~secnn_jax.timing.ladder.ladder` and :func:`~secnn_jax.timing.ladder.oracle_events` check
their arguments here before any work, so a wrong argument is one clear error, never an
``IndexError`` deep in the work maps or a silently misread value:

* ``events``: a mapping of uint8 event codes ``[T, ...]`` with ``T >= 1`` and every code in
  ``0..3`` (``ZZ, ZN, VH, VM``);
* ``gpus``, ``schemes``: a name or a sequence of names, each known (a single string is one name:
  ``schemes="dense"`` is ``("dense",)``, not five one-letter schemes);
* ``precision``: a known precision name;
* ``frames``: ``None``, a count ``>= 1``, a slice, or indices inside the replayed events;
* ``batch_frames`` ``>= 1``; ``frame_offset`` ``>= 0``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpus import GPU, canonical_precision, get_gpu
from secnn_jax.timing.names import SCHEMES

__all__ = ["ReplayError", "check_events", "check_replay", "frame_indices", "names"]


def _one_or_many(value: Any, arg: str, single: type | tuple[type, ...],
                 expected: str = "a name or a sequence of names", plural: str = ""
                 ) -> tuple[Any, ...]:
    """``value`` as a non-empty tuple, one ``single`` instance counting as one element.

    Raises:
      ReplayError: naming ``arg``: neither one element nor a sequence, or empty.
    """
    if isinstance(value, single):
        value = (value,)
    try:
        out = tuple(value)
    except TypeError as e:
        raise ReplayError(f"{arg}: expected {expected}, got {type(value).__name__}") from e
    if not out:
        raise ReplayError(f"{arg}: no {plural or arg} requested")
    return out


def names(value: Any, arg: str, known: Sequence[str]) -> tuple[str, ...]:
    """``value`` (a name or a sequence of names) as a tuple of known names.

    Raises:
      ReplayError: naming ``arg``: not a name or sequence of names, empty, or an unknown name.
    """
    out = _one_or_many(value, arg, str)
    bad = [v for v in out if not isinstance(v, str) or v not in known]
    if bad:
        raise ReplayError(f"{arg}: unknown {arg} {bad}; known: {', '.join(known)}")
    return out


def _int_at_least(value: Any, arg: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ReplayError(f"{arg}={value!r}: expected an integer >= {low}")
    return int(value)


def check_events(events: Any, arg: str = "events") -> None:
    """Checks a mapping ``{layer: uint8 codes [T, ...]}``: ``T >= 1``, codes in ``0..3``.

    Raises:
      ReplayError: naming ``arg[layer]`` and what is wrong (not a mapping, another dtype, no
        frames, a code above ``VM = 3``).
    """
    if not isinstance(events, Mapping):
        raise ReplayError(f"{arg}: expected a mapping {{layer name: uint8 codes [T, ...]}}, "
                          f"got {type(events).__name__}")
    for name, ev in events.items():
        where = f"{arg}[{name!r}]"
        ev = np.asarray(ev)
        if ev.dtype != np.uint8:
            raise ReplayError(f"{where}: event codes must be uint8 (ZZ=0, ZN=1, VH=2, VM=3), "
                              f"got {ev.dtype}")
        shape = tuple(np.shape(ev))
        if not shape or shape[0] == 0:
            raise ReplayError(f"{where}: no frames (T = 0) in events of shape {shape}; "
                              "expected [T, ...] with T >= 1")
        top = int(np.max(ev))
        if top > 3:
            raise ReplayError(f"{where}: event code {top} is not one of ZZ=0, ZN=1, VH=2, VM=3")


def _check_frames(frames: Any) -> None:
    if frames is None or isinstance(frames, slice):
        return
    if isinstance(frames, numbers.Integral) and not isinstance(frames, bool):
        _int_at_least(frames, "frames", 1)
        return
    if isinstance(frames, str | bytes) or not isinstance(frames, Sequence | np.ndarray):
        raise ReplayError(f"frames={frames!r}: expected None, a count, a slice or a sequence "
                          "of frame indices")
    idx = np.asarray(frames)
    if idx.size and (idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer)):
        raise ReplayError(f"frames={frames!r}: frame indices must be integers")


def frame_indices(frames: Any, n: int) -> np.ndarray:
    """:func:`secnn_jax.traces.frame_indices` with a :class:`ReplayError` naming ``frames``
    and the ``n`` frames there are, for indices outside ``[0, n)``."""
    from secnn_jax.traces import frame_indices as select  # noqa: PLC0415

    _check_frames(frames)
    try:
        return select(frames, n)
    except IndexError as e:  # only explicit indices are range-checked: show the first 8
        raise ReplayError(f"frames={list(frames)[:8]!r}: indices outside the {n} replayed "
                          f"frames [0, {n})") from e


def check_replay(source: Any, events: Any, *, gpus: Any, schemes: Any, precision: Any,
                 frames: Any, batch_frames: Any, frame_offset: Any
                 ) -> tuple[tuple[Any, ...], tuple[str, ...], str]:
    """Checks :func:`~secnn_jax.timing.replayer.replay_launches`' arguments (module docstring).

    Returns:
      ``(gpus, schemes, precision)``: GPUs and schemes as tuples (a single name as one), the
      precision in canonical form.

    Raises:
      ReplayError: naming the first bad argument.
    """
    if events is None and isinstance(source, tuple) and len(source) == 2:
        events = source[1]
    if events is not None:
        check_events(events)
    gpu_list = _one_or_many(gpus, "gpus", (str, GPU), "a GPU name or a sequence of them", "GPUs")
    for g in gpu_list:
        try:
            get_gpu(g)
        except ValueError as e:  # get_gpu's message lists the built-in and loaded GPUs
            raise ReplayError(f"gpus: {e}") from e
    schemes = names(schemes, "schemes", SCHEMES)
    try:
        prec = canonical_precision(precision)
    except ValueError as e:
        raise ReplayError(f"precision: {e}") from e
    _check_frames(frames)
    _int_at_least(batch_frames, "batch_frames", 1)
    _int_at_least(frame_offset, "frame_offset", 0)
    return gpu_list, schemes, prec
