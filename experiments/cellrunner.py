"""The SE-CNN cells: one model over one stream with one predictor and one threshold, by key.

A cell is named by a :class:`CellKey` (model, stream, predictor spec, tau key, timed). The tau a
study asks for is converted one way each: to the per-layer values the program runs by
:func:`secnn_jax.phases.tau_map`, and to the key that names the cell by
:func:`experiments.cellcache.tau_key` (so two taus the program runs alike, a float and a map
giving every layer that float, are one cell). :class:`CellRunner` computes a cell chunk by chunk
(``chunk_size`` frames per compiled ``lax.scan``:
:func:`secnn_jax.pipeline.stream_program`, with ``tau`` a traced argument so a sweep over
thresholds compiles once per (model, predictor), the event counts reduced inside the scan by
:class:`secnn_jax.pipeline.EventCounts` and the event maps kept only for a timed cell; a short last
chunk padded by :func:`secnn_jax.pipeline.pad_chunk`), and keeps per frame only the summaries of a
:class:`CellResult`.

Where a cell comes from, in order: this runner's memory (the same key, or for an untimed cell
its timed twin's, holding at least the frames asked for); the timed twin's chunks on disk (an
untimed request); the cell's own chunks on disk and, for chunks that a shorter run of the same
key left in memory, those; the rest is computed, resuming from the predictor state after the
last finished chunk (in the cache, or kept in memory after a run over the first frames only).
Predictors are named by spec strings (:func:`secnn_jax.predictors.from_spec`,
:func:`predictor_spec`); which timed variants a predictor's events feed comes from the timer
(:meth:`Timer.variants_for`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from experiments import cellcache
from experiments.cellinputs import CellInputs, load_chunk, progress_bar
from experiments.errors import CellError
from secnn_jax import predictors
from secnn_jax.layers import Layer
from secnn_jax.phases import Tau, tau_map
from secnn_jax.pipeline import EventCounts, pad_chunk, stream_program

__all__ = ["CellKey", "CellResult", "CellRunner", "Timer", "predictor_spec"]


def predictor_spec(name: str, silence: float = 0.5, decay: float = 0.5) -> str:
    """Canonical spec string of a named predictor (a bare ``secnn`` gets its parameters; a spec
    with parentheses is returned unchanged)."""
    if name.strip() == "secnn":
        return f"secnn(silence={silence:g},decay={decay:g})"
    return name


class Timer(Protocol):
    """Replays one chunk of events into per-frame times.

    ``timer(layers, events, schemes, ops=ops)`` returns float64 ``[t, G, S]`` microseconds per
    frame, GPU and timed variant — or a mapping with that array as ``"time_us"`` and optionally
    ``"phase_us"`` ``[t, G, S, P]`` — where ``events`` is ``{layer_name: uint8 [t, *in_shape]}``
    and ``ops`` the network's op groups, ``frame_offset`` the chunk's first stream frame;
    ``gpus`` and ``schemes`` name the axes; variants not in
    the ``schemes`` argument may be left NaN. ``variants_for(predictor)`` says which variants a
    predictor's events feed. ``key`` (optional) names the timing configuration in cache paths.
    """

    gpus: tuple[str, ...]
    schemes: tuple[str, ...]

    def variants_for(self, predictor: str) -> tuple[str, ...]: ...

    def __call__(self, layers: Sequence[Layer], events: Mapping[str, np.ndarray],
                 schemes: Sequence[str] | None = None, ops: Sequence[Any] | None = None,
                 frame_offset: int = 0) -> Any: ...


@dataclasses.dataclass(frozen=True)
class CellKey:
    """The name of a cell: what its results depend on beyond the inputs of its (model, stream).

    Attributes:
      model: model name.
      stream: stream name.
      predictor: predictor spec (:func:`secnn_jax.predictors.from_spec`).
      tau_key: the threshold's key (:func:`experiments.cellcache.tau_key`).
      timed: whether the cell's events are replayed by the timer.
    """

    model: str
    stream: str
    predictor: str
    tau_key: str
    timed: bool

    @classmethod
    def of(cls, layers: Sequence[Layer], model: str, stream: str, predictor: str, tau: Tau, *,
           timed: bool) -> CellKey:
        """The key of ``predictor`` at ``tau`` on ``model``'s ``layers`` (the one conversion
        of a tau to a key, :func:`experiments.cellcache.tau_key`)."""
        return cls(model, stream, predictor, cellcache.tau_key(layers, tau), bool(timed))

    def timed_twin(self) -> CellKey:
        """The same cell, timed (its logits and counts are this one's)."""
        return dataclasses.replace(self, timed=True)

    def dir_parts(self, timer_key: str) -> tuple[str, str]:
        """The cell's directory below its (model, stream) inputs directory: the predictor spec
        and the tau key, with ``-<timer_key>`` for a timed cell
        (:meth:`experiments.cellinputs.CellInputs.cell_dir`)."""
        return self.predictor, self.tau_key + (f"-{timer_key}" if self.timed else "")


@dataclasses.dataclass(frozen=True)
class CellResult:
    """An SE-CNN run over a stream (see module docstring).

    Attributes:
      logits: ``[T, classes]`` float32.
      counts: ``[T, L, 4]`` int64 event counts per layer (ZZ, ZN, VH, VM).
      time_us: ``[T, G, S]`` float64 replayed microseconds, or ``None`` without a timer. The zero
        predictor's cells hold the baseline schemes, other cells the SE-CNN schemes (NaN
        elsewhere).
      phase_us: ``[T, G, S, P]`` microseconds per phase (``experiments.timer.PHASES``) if the
        timer reports phases, else ``None``.
      energy_uj: ``[T, G, S, C]`` microjoules per energy component
        (``secnn_jax.timing.energy.COMPONENTS``) if the timer reports energy, else ``None``.
    """

    logits: np.ndarray
    counts: np.ndarray
    time_us: np.ndarray | None
    phase_us: np.ndarray | None = None
    energy_uj: np.ndarray | None = None

    #: The per-frame arrays a timed cell adds (``None`` in an untimed one).
    TIMED = ("time_us", "phase_us", "energy_uj")

    @property
    def n_frames(self) -> int:
        """Frames in the result."""
        return int(self.logits.shape[0])

    def head(self, n: int) -> CellResult:
        """The first ``n`` frames."""
        return CellResult(self.logits[:n], self.counts[:n],
                          *(None if getattr(self, f) is None else getattr(self, f)[:n]
                            for f in self.TIMED))

    def untimed(self) -> CellResult:
        """The logits and counts alone (what an untimed request of the cell returns)."""
        return CellResult(self.logits, self.counts, None)

    def chunk(self, a: int, b: int) -> dict[str, np.ndarray]:
        """Frames ``a:b`` as a chunk's arrays (what the chunk's file in the cell cache holds)."""
        got = {"n": np.int64(b - a), "logits": self.logits[a:b], "counts": self.counts[a:b]}
        for name in self.TIMED:
            arr = getattr(self, name)
            if arr is not None:
                got[name] = arr[a:b]
        return got

    @classmethod
    def of_chunks(cls, parts: Sequence[Mapping[str, np.ndarray]], timed: bool) -> CellResult:
        """The chunks' arrays end to end; the timed arrays only if ``timed`` (``phase_us`` and
        ``energy_uj`` only if every chunk has them)."""
        def cat(name: str) -> np.ndarray | None:
            if not timed or not all(name in p for p in parts):
                return None
            return np.concatenate([p[name] for p in parts])

        return cls(logits=np.concatenate([p["logits"] for p in parts]),
                   counts=np.concatenate([p["counts"] for p in parts]),
                   time_us=(np.concatenate([p["time_us"] for p in parts]) if timed else None),
                   phase_us=cat("phase_us"), energy_uj=cat("energy_uj"))


#: A compiled cell scan, by model name, frame shape, predictor spec and whether it is timed.
StepKey = tuple[str, tuple[int, ...], str, bool]


class CellRunner:
    """Computes and keeps the SE-CNN cells of :class:`~experiments.cellinputs.CellInputs`' pairs
    (see module docstring).

    Args:
      inputs: the models, streams and frames, and the cache directory they name.
      timer: replays events into times (``None``: no timing).
      stats: counts ``chunks_computed`` and ``chunks_loaded`` (shared with the reference runner).
      progress: show tqdm progress bars.
      steps: the compiled scans (another runner's, to share them).
    """

    #: How many prefix cells' final predictor states :meth:`__call__` keeps in memory.
    PREFIX_STATES = 6

    def __init__(self, inputs: CellInputs, *, timer: Timer | None,
                 stats: MutableMapping[str, int], progress: bool = True,
                 steps: dict[StepKey, Callable[..., Any]] | None = None) -> None:
        self.inputs = inputs
        self.timer = timer
        self.stats = stats
        self.progress = progress
        self.steps: dict[StepKey, Callable[..., Any]] = {} if steps is None else steps
        self._memory: dict[CellKey, CellResult] = {}
        #: The predictor state after the last chunk of the most recent cells run over the first
        #: frames of a stream only (the tuner's calibration runs), newest last: a longer run of
        #: the same cell (its held-out evaluation) resumes from it instead of recomputing the
        #: first chunks (the files keep no state of a finished cell). In memory only, at most
        #: :attr:`PREFIX_STATES` of them (each as large as the network's inputs).
        self._prefix_states: dict[CellKey, tuple[int, Any]] = {}

    def cell_dir(self, key: CellKey) -> Path | None:
        """The cache directory of cell ``key`` (``None`` without a cache directory)."""
        return self.inputs.cell_dir(key.model, key.stream,
                                    *key.dir_parts(str(getattr(self.timer, "key", "timed"))))

    def __call__(self, model: str, stream: str, predictor: str, tau: Tau = 0.0, *,
                 n_frames: int | None = None, timed: bool = True) -> CellResult:
        """SE-CNN over the first ``n_frames`` frames of ``stream`` (default: all).

        Args:
          predictor: a spec for :func:`secnn_jax.predictors.from_spec`.
          tau: a float for every layer or ``{layer_name: float}`` (missing layers: 0).
          timed: replay the events with the runner's timer (if it has one).
        """
        inputs = self.inputs
        frames = inputs.frames(model, stream)
        total = frames.shape[0] if n_frames is None else min(int(n_frames), frames.shape[0])
        if total < 1:
            raise CellError(f"n_frames must be >= 1, got {n_frames}")
        layers = inputs.layers(model, stream)
        # The one conversion of a tau to the values the program runs (StreamProgram.taus: Python
        # floats, weakly typed under jit), so a cell compares exactly as run_stream and the
        # jitted step do, in the layer's dtype; and the one conversion to the cell's key.
        taus = tau_map(layers, tau)
        key = CellKey.of(layers, model, stream, predictor, tau,
                         timed=timed and self.timer is not None)
        cached = self._memory.get(key)
        if cached is not None and cached.n_frames >= total:
            return cached.head(total)
        chunks = inputs.chunks(total)
        if not key.timed and self.timer is not None:  # an untimed cell may reuse a timed one
            twin = self._memory.get(key.timed_twin())
            if twin is not None and twin.n_frames >= total:
                return twin.head(total).untimed()
            dt = self.cell_dir(key.timed_twin())
            if inputs.cache.has_chunks(dt, len(chunks)):
                got = [load_chunk(inputs.cache, dt, k, b - a, self.stats)
                       for k, (a, b) in enumerate(chunks)]
                if all(g is not None for g in got):
                    return CellResult.of_chunks(got, timed=False)
        d = self.cell_dir(key)
        # A shorter run of this cell in memory gives its whole chunks (the same computation).
        have = 0 if cached is None else cached.n_frames
        parts: list[dict[str, np.ndarray] | None] = [
            cached.chunk(a, b) if b <= have else load_chunk(inputs.cache, d, k, b - a, self.stats)
            for k, (a, b) in enumerate(chunks)]
        if any(p is None for p in parts):
            state = self._compute(key, taus, d, chunks, parts,
                                  resume=self._prefix_states.pop(key, None))
            if total < frames.shape[0] and total % inputs.chunk_size == 0:
                self._prefix_states[key] = (len(chunks) - 1, state)
                while len(self._prefix_states) > self.PREFIX_STATES:
                    del self._prefix_states[next(iter(self._prefix_states))]
        res = CellResult.of_chunks(parts, timed=key.timed)
        self._memory[key] = res
        return res

    def _compute(self, key: CellKey, taus: dict[str, float], d: Path | None,
                 chunks: list[tuple[int, int]], parts: list[dict[str, np.ndarray] | None],
                 resume: tuple[int, Any] | None = None) -> Any:
        """Computes the missing ``parts`` of cell ``key`` and returns the predictor state after
        its last chunk. ``resume``: ``(k, state after chunk k)`` kept in memory from a shorter
        run of the cell, used when chunk ``k + 1`` is the first missing one."""
        inputs = self.inputs
        model, stream, predictor, timed = key.model, key.stream, key.predictor, key.timed
        h = inputs.model(model)
        layers = inputs.layers(model, stream)
        frames = inputs.frames(model, stream)
        pred = predictors.from_spec(predictor)
        skey = (model, tuple(frames.shape[1:]), predictor, timed)
        if skey not in self.steps:
            # The library's compiled scan, counts reduced inside it; the event maps leave the
            # program only when a timer replays them.
            self.steps[skey] = stream_program(
                h.apply_fn, h.variables, frames[0], pred, layers=layers,
                reducers={"counts": EventCounts(layers)}, keep_events=timed).scan
        scan = self.steps[skey]
        # Resume from the state saved after the last finished chunk before the first missing one.
        first_missing = next(k for k, p in enumerate(parts) if p is None)
        if resume is not None and resume[0] == first_missing - 1:
            state, start = resume[1], first_missing
        else:
            state, start = inputs.cache.load_state(d, first_missing, lambda: pred.init(layers))
        if state is None:
            state = pred.init(layers)
        desc = f"{model}/{stream} {predictor} {_short_tau(taus)}"

        def dispatch(k: int, state: Any) -> Any:
            chunk, valid = pad_chunk(frames[slice(*chunks[k])], inputs.chunk_size)
            return scan(h.variables, state, jnp.asarray(chunk), jnp.asarray(valid), taus)

        with progress_bar(chunks[-1][1] - chunks[start][0], desc, self.progress) as bar:
            pending = dispatch(start, state)
            for k in range(start, len(chunks)):
                a, b = chunks[k]
                t = b - a
                out, state = pending, pending.state
                # The next chunk is dispatched (JAX runs it asynchronously) before this one's
                # outputs are read and replayed: the timer's numpy work overlaps the compiled
                # scan's. The same programs on the same inputs: the same bits.
                pending = dispatch(k + 1, state) if k + 1 < len(chunks) else None
                got = {"n": np.int64(t),
                       "logits": np.asarray(out.logits, np.float32)[:t].reshape(t, -1),
                       "counts": np.asarray(out.reduced["counts"], np.int64)[:t]}
                if timed:
                    ev = out.events.map(lambda v, t=t: np.asarray(v)[:t])
                    # Which variants these events feed comes from the timer (the registry).
                    which = self.timer.variants_for(predictor)
                    timed_out = self.timer(layers, ev, which, ops=inputs.ops(model, stream),
                                           frame_offset=a)
                    if not isinstance(timed_out, Mapping):
                        timed_out = {"time_us": timed_out}
                    for name, arr in timed_out.items():
                        got[name] = np.asarray(arr, np.float64)
                    del ev
                del out
                if parts[k] is not None and not _same(parts[k], got):
                    logging.warning("recomputed chunk %d of %s differs from the cached one", k, d)
                parts[k] = got
                # The state after the last chunk is not written: a finished cell keeps none.
                inputs.cache.save_progress(d, k, got, state if k < len(chunks) - 1 else None)
                self.stats["chunks_computed"] += 1
                bar.update(t)
        inputs.cache.finish(d)  # a finished cell keeps no state (it is only needed mid-run)
        return state


def _same(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    # NaN marks variants a cell does not time: equal where both are NaN.
    return set(a) == set(b) and all(
        np.array_equal(a[k], b[k], equal_nan=np.issubdtype(np.asarray(a[k]).dtype, np.floating))
        for k in a)


def _short_tau(taus: Mapping[str, jax.Array]) -> str:
    vals = sorted({float(v) for v in taus.values()})
    if len(vals) == 1:
        return f"tau={vals[0]:g}"
    return f"tau=[{vals[0]:g}..{vals[-1]:g}]"
