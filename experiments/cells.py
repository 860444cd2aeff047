"""The engine shared by the studies: SE-CNN over (model, stream, predictor, tau) *cells*.

A cell is one model run over one stream with one predictor and one threshold (a float for every
layer, or one per layer). :class:`Workspace` computes a cell chunk by chunk
(``chunk_size`` frames per compiled ``lax.scan``) and keeps, per frame, only small summaries:

* ``logits`` ``[T, classes]`` — the SE-CNN output (top-1 agreement, logit error);
* ``counts`` ``[T, L, 4]`` — input neurons per event code (ZZ, ZN, VH, VM) per layer;
* ``time_us`` ``[T, G, S]`` — replayed time per GPU and execution scheme (when a timer is set).

The *reference* of a (model, stream) pair is the plain forward pass: exact logits, and per layer
the number of non-zero input neurons, the sum of ``|x|`` (sparsity, threshold scales) and the
number changed since the previous frame by more than each of :data:`CHANGE_TAUS`.

With a cache directory, every finished chunk is written atomically with the predictor state after
it (:class:`experiments.cellcache.CellCache`: the files, apart from the computation), so a killed
run restarts after its last finished chunk and produces byte-identical results. The computation
is the library's one compiled scan, :func:`secnn_jax.pipeline.stream_program` (predict, parallel
compute, serial amend, update, with ``tau`` a traced argument, so a sweep over thresholds compiles
once per (model, predictor)), with the event counts reduced inside the scan
(:class:`secnn_jax.pipeline.EventCounts`) and the event maps kept only for a timed cell; a short
last chunk is padded by :func:`secnn_jax.pipeline.pad_chunk`. Predictors are named by spec strings
(:func:`secnn_jax.predictors.from_spec`); which timed variants a predictor's events feed comes from
the timer (:meth:`Timer.variants_for`, the scheme registry).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm import tqdm

from experiments.cellcache import (
    CellCache,
    safe_name,
    stream_fingerprint,
    tau_key,
    weights_digest,
)
from experiments.config import CHANGE_TAUS
from experiments.errors import CellError, ConfigError, UnknownCellError
from secnn_jax import find_layers, predictors
from secnn_jax.datasources import Stream, StreamError, model_frames
from secnn_jax.layers import Layer
from secnn_jax.phases import Tau
from secnn_jax.pipeline import EventCounts, pad_chunk, stream_program

__all__ = [
    "CellResult",
    "ModelHandle",
    "RefResult",
    "Timer",
    "Workspace",
    "load_model",
    "predictor_spec",
]



@dataclasses.dataclass(frozen=True)
class ModelHandle:
    """A model ready to run: the contract's ``(apply_fn, variables)`` plus its preprocessing.

    Attributes:
      name: model name (file names, reports).
      apply_fn: ``apply_fn(variables, x) -> logits``, x float32 NHWC.
      variables: the model's variables.
      preprocess: ``f(uint8 [h, w, 3]) -> float32 [H, W, 3]`` (``models.preprocess``).
    """

    name: str
    apply_fn: Callable[..., Any] = dataclasses.field(repr=False)
    variables: Any = dataclasses.field(repr=False)
    preprocess: Callable[[np.ndarray], Any] = dataclasses.field(repr=False)


def load_model(name: str) -> ModelHandle:
    """A model by name, as a :class:`ModelHandle`.

    ``name`` is a zoo name (``models.load`` with ``models.preprocess`` bound) or
    ``"package.module:factory"``: a user's own CNN, where ``factory()`` returns a
    :class:`ModelHandle` or a tuple ``(apply_fn, variables, preprocess)``; a factory that is
    not callable, raises or returns anything else is a :class:`ConfigError` naming the model.
    """
    if ":" in name:
        import importlib  # noqa: PLC0415

        module, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"model {name!r}: cannot import factory {attr!r} from module "
                             f"{module!r}: {e}") from e
        return _from_factory(name, factory)
    import models  # noqa: PLC0415  (the zoo is only needed for real runs)

    apply_fn, variables = models.load(name)
    return ModelHandle(name, apply_fn, variables,
                       lambda image: np.asarray(models.preprocess(name, image)))


def _from_factory(name: str, factory: Any) -> ModelHandle:
    """The handle a user's ``module:factory`` makes; :class:`ConfigError` naming ``name`` when
    the factory is not callable, raises, or returns something else than a :class:`ModelHandle`
    or ``(apply_fn, variables, preprocess)`` with callable ``apply_fn`` and ``preprocess``."""
    want = "a ModelHandle or a tuple (apply_fn, variables, preprocess)"
    if not callable(factory):
        raise ConfigError(f"model {name!r}: {type(factory).__name__} object is not callable; "
                          f"the factory must be a function returning {want}")
    try:
        out = factory()
    except Exception as e:
        raise ConfigError(f"model {name!r}: the factory raised {type(e).__name__}: {e}") from e
    if isinstance(out, ModelHandle):
        out = dataclasses.replace(out, name=name)
    elif isinstance(out, tuple | list) and len(out) == 3:
        out = ModelHandle(name, *out)
    else:
        got = (f"a {type(out).__name__} of length {len(out)}"
               if isinstance(out, tuple | list) else f"a {type(out).__name__}")
        raise ConfigError(f"model {name!r}: the factory returned {got}, expected {want}")
    for field in ("apply_fn", "preprocess"):
        if not callable(getattr(out, field)):
            raise ConfigError(f"model {name!r}: the factory's {field} is a "
                              f"{type(getattr(out, field)).__name__}, not callable")
    return out


def _factory_source_digest(name: str) -> str | None:
    """The :func:`secnn_jax.fileio.file_digest` of a ``module:factory`` model's source file
    (its code is not in :func:`experiments.runs.code_digest`); ``None`` for a zoo model."""
    if ":" not in name:
        return None
    import importlib.util  # noqa: PLC0415

    from secnn_jax.fileio import file_digest  # noqa: PLC0415

    spec = importlib.util.find_spec(name.partition(":")[0])
    origin = getattr(spec, "origin", None)
    return file_digest(origin) if origin and Path(origin).is_file() else None


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


# ---------------------------------------------------------------------------------------------
# Predictors by name


def predictor_spec(name: str, silence: float = 0.5, decay: float = 0.5) -> str:
    """Canonical spec string of a named predictor (a bare ``secnn`` gets its parameters; a spec
    with parentheses is returned unchanged)."""
    if name.strip() == "secnn":
        return f"secnn(silence={silence:g},decay={decay:g})"
    return name


# ---------------------------------------------------------------------------------------------
# The plain forward pass (the SE-CNN cells run secnn_jax.pipeline.stream_program)




def reference_step(apply_fn: Callable, layers: Sequence[Layer],
                   change_taus: Sequence[float] = CHANGE_TAUS) -> Callable[..., Any]:
    """Jitted ``f(params, prev, frames) -> (logits, nonzero, negative, abs_sum, changed)``: the
    plain pass over ``frames`` ``[t, ...]``, ``prev`` ``[...]`` the frame before the first.

    ``nonzero``/``negative`` count each layer's input neurons ``!= 0`` / ``< 0`` per frame
    ``[t, L]``; ``abs_sum`` is the sum of ``|x|`` per layer and frame; ``changed`` ``[t, L, K]``
    counts the input neurons with ``|x - x_prev| > change_taus[k]`` (``x_prev``: the same neuron
    on the frame before; ``prev`` is that frame for the first).
    """
    from secnn_jax import layer_inputs  # noqa: PLC0415

    layers = tuple(layers)
    fwd = layer_inputs(apply_fn, layers)

    @jax.jit
    def run(params: Any, prev: jax.Array, frames: jax.Array) -> Any:
        def body(before: Any, x: jax.Array) -> Any:
            logits, inputs = fwd(params, x)
            nz = jnp.stack([jnp.sum(inputs[lyr.name] != 0, dtype=jnp.int32) for lyr in layers])
            neg = jnp.stack([jnp.sum(inputs[lyr.name] < 0, dtype=jnp.int32) for lyr in layers])
            ab = jnp.stack([jnp.sum(jnp.abs(inputs[lyr.name]).astype(jnp.float32))
                            for lyr in layers])
            ch = jnp.stack([_changed(inputs[lyr.name], before[lyr.name], change_taus)
                            for lyr in layers])
            return inputs, (logits, nz, neg, ab, ch)

        # One scan over [prev, *frames] (one copy of the network in the program, not two); the
        # first step's outputs are prev's and are dropped.
        init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                            jax.eval_shape(fwd, params, prev)[1])
        _, out = jax.lax.scan(body, init, jnp.concatenate([prev[None], frames]))
        return jax.tree.map(lambda a: a[1:], out)

    return run


def _changed(x: jax.Array, before: jax.Array, taus: Sequence[float]) -> jax.Array:
    """``[K]`` int32: elements with ``|x - before| > taus[k]`` (compared in ``x``'s dtype,
    ``taus`` ascending).

    Each element's count of thresholds it exceeds (one fused elementwise pass), a histogram of
    those (a scatter-add), summed from the top: on a CPU about 2x cheaper than K counts in a
    loop and 10x cheaper than one reduction over ``[N, K]``."""
    d = jnp.abs(x - before).reshape(-1)
    g = jnp.asarray(taus, x.dtype)
    above = sum((d > g[k]).astype(jnp.int32) for k in range(g.shape[0]))
    hist = jnp.zeros(g.shape[0] + 1, jnp.int32).at[above].add(1, mode="promise_in_bounds")
    return jnp.cumsum(hist[::-1])[::-1][1:]


# ---------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True)
class RefResult:
    """The plain forward pass over a stream.

    Attributes:
      logits: ``[T, classes]`` float32 exact logits.
      nonzero: ``[T, L]`` input neurons ``!= 0`` per layer and frame.
      negative: ``[T, L]`` input neurons ``< 0`` (0 everywhere: a rectified, post-ReLU input).
      abs_sum: ``[T, L]`` float64 sum of ``|x|`` over each layer's input neurons.
      n_inputs: ``[L]`` input neurons per layer per frame.
      changed: ``[T, L, K]`` input neurons with ``|x_t - x_{t-1}| > change_taus[k]``; frame 0
        has no previous frame and its row is 0 (leave it out of any share).
      change_taus: ``[K]`` the thresholds of ``changed`` (:data:`CHANGE_TAUS`).
    """

    logits: np.ndarray
    nonzero: np.ndarray
    negative: np.ndarray
    abs_sum: np.ndarray
    n_inputs: np.ndarray
    changed: np.ndarray
    change_taus: np.ndarray


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


# ---------------------------------------------------------------------------------------------
# Workspace


class Workspace:
    """Computes and caches references and cells for a set of models and streams.

    Args:
      models: ``{name: ModelHandle}``.
      streams: ``{name: Stream}``.
      frames: maximum frames per stream.
      chunk_size: frames per compiled scan and per cached chunk.
      resize: if set, preprocessed frames are resized to ``resize`` x ``resize``.
      cache_dir: where finished chunks go (``None``: in memory only, nothing resumable), or a
        :class:`experiments.cellcache.CellCache` (the command lines pass the shared, bounded
        one: a cell any run computed from the same inputs is read, not recomputed).
      timer: replays events into times (``None``: no timing).
      progress: show tqdm progress bars.
      model_frames: ``{model: frames}``: a smaller frame cap for some models.
      model_resize: ``{model: size}``: a resize for some models (overrides ``resize``).
    """

    def __init__(self, models: Mapping[str, ModelHandle], streams: Mapping[str, Stream], *,
                 frames: int, chunk_size: int = 8, resize: int | None = None,
                 cache_dir: str | Path | CellCache | None = None, timer: Timer | None = None,
                 progress: bool = True, model_frames: Mapping[str, int] | None = None,
                 model_resize: Mapping[str, int] | None = None) -> None:
        if frames < 1:
            raise CellError(f"frames must be >= 1, got {frames}")
        if chunk_size < 1:
            raise CellError(f"chunk_size must be >= 1, got {chunk_size}")
        self.models = dict(models)
        self.streams = dict(streams)
        self.max_frames = int(frames)
        self.chunk_size = int(chunk_size)
        self.resize = resize
        # Per-model overrides: a VGG-16 costs ~40x EfficientNet-Lite0 per pixel, so a study can
        # give it fewer frames and a smaller input than the other models.
        self.model_frames = {str(k): int(v) for k, v in (model_frames or {}).items()}
        self.model_resize = {str(k): int(v) for k, v in (model_resize or {}).items()}
        for what, table in (("model_frames", self.model_frames),
                            ("model_resize", self.model_resize)):
            bad = {k: v for k, v in table.items() if v < 1}
            if bad:
                raise CellError(f"{what} must be >= 1, got {bad}")
        self.cache = cache_dir if isinstance(cache_dir, CellCache) else CellCache(cache_dir)
        self.cache_dir = self.cache.root
        self.timer = timer
        self.progress = progress
        self._frames: dict[tuple[str, str], np.ndarray] = {}
        self._layers: dict[tuple[str, tuple[int, ...]], tuple[Layer, ...]] = {}
        self._steps: dict[Any, Callable[..., Any]] = {}
        self._memory: dict[tuple[str, ...], Any] = {}
        #: Chunks computed (cache misses) and read from the cache (hits): the hook that tells
        #: how much of a run was new.
        self.stats = {"chunks_computed": 0, "chunks_loaded": 0}
        #: The predictor state after the last chunk of the most recent cells run over the first
        #: frames of a stream only (the tuner's calibration runs), newest last: a longer run of
        #: the same cell (its held-out evaluation) resumes from it instead of recomputing the
        #: first chunks (the files keep no state of a finished cell). In memory only, at most
        #: :attr:`PREFIX_STATES` of them (each as large as the network's inputs).
        self._prefix_states: dict[tuple[Any, ...], tuple[int, Any]] = {}
        self._last_state: Any = None

    #: How many prefix cells' final predictor states :meth:`run` keeps in memory.
    PREFIX_STATES = 6

    def with_streams(self, streams: Mapping[str, Stream], frames: int) -> Workspace:
        """A workspace over ``streams`` (at most ``frames`` each) with this one's models, timer,
        cell cache, chunking and input sizes, so the cells of a stream that both hold are one
        computation (the cache keys them by content, not by workspace). It shares this one's
        compiled programs and layer lists (keyed by model and frame shape, not by stream), so a
        model is compiled once for both; and the same request (the same frames and streams,
        by name and description) returns the same workspace, so two studies that evaluate on
        the same clips (the accuracy study's transfer, the operating point's) decode their
        frames once and share the cells in memory."""
        key = ("with_streams", int(frames), tuple(
            (name, json.dumps(_stream_info(st), sort_keys=True, default=str))
            for name, st in streams.items()))
        if key in self._memory:
            return self._memory[key]
        other = Workspace(self.models, streams, frames=frames, chunk_size=self.chunk_size,
                          resize=self.resize, cache_dir=self.cache, timer=self.timer,
                          progress=self.progress, model_frames=self.model_frames,
                          model_resize=self.model_resize)
        other._steps = self._steps
        other._layers = self._layers
        other._memory.update({k: v for k, v in self._memory.items() if k[0] == "ops"})
        self._memory[key] = other
        return other

    # -- inputs --------------------------------------------------------------------------------

    def model(self, name: str) -> ModelHandle:
        """The handle of model ``name``."""
        if name not in self.models:
            raise UnknownCellError(
                f"unknown model {name!r}; this workspace has {sorted(self.models)}")
        return self.models[name]

    def frames_for(self, model: str) -> int:
        """The frame cap of ``model``: ``frames``, or its ``model_frames`` entry if smaller."""
        return min(self.max_frames, self.model_frames.get(model, self.max_frames))

    def resize_for(self, model: str) -> int | None:
        """The input size ``model``'s frames are resized to (``None``: its preprocessing's)."""
        return self.model_resize.get(model, self.resize)

    def frames(self, model: str, stream: str) -> np.ndarray:
        """Preprocessed frames ``[T, 1, H, W, 3]`` of ``stream`` for ``model`` (cached)."""
        key = (model, stream)
        if key not in self._frames:
            if stream not in self.streams:
                raise UnknownCellError(f"unknown stream {stream!r}; have {sorted(self.streams)}")
            handle = self.model(model)
            s = self.streams[stream]
            out = list(model_frames(s, handle.preprocess, max_frames=self.frames_for(model),
                                    resize=self.resize_for(model)))
            if not out:
                raise StreamError(f"stream {stream!r} has no frames")
            self._frames[key] = np.stack(out)
            logging.info("stream %s for %s: %d frames of %s", stream, model, len(out),
                         out[0].shape[1:])
        return self._frames[key]

    def n_frames(self, model: str, stream: str) -> int:
        """Frames of ``stream`` in this workspace (after the ``frames`` cap)."""
        return int(self.frames(model, stream).shape[0])

    def layers(self, model: str, stream: str) -> tuple[Layer, ...]:
        """``find_layers`` of ``model`` at the frame shape of ``stream``."""
        x = self.frames(model, stream)[0]
        key = (model, tuple(x.shape))
        if key not in self._layers:
            h = self.model(model)
            self._layers[key] = find_layers(h.apply_fn, h.variables, jnp.asarray(x))
        return self._layers[key]

    def ops(self, model: str, stream: str) -> tuple[Any, ...]:
        """The op groups between ``model``'s layers at the frame shape of ``stream``
        (:func:`secnn_jax.netops.find_ops`), for the whole-network timing."""
        from secnn_jax import netops  # noqa: PLC0415

        x = self.frames(model, stream)[0]
        key = ("ops", model, tuple(x.shape))
        if key not in self._memory:
            h = self.model(model)
            self._memory[key] = netops.find_ops(h.apply_fn, h.variables, jnp.asarray(x),
                                                self.layers(model, stream))
        return self._memory[key]

    # -- caching (the files: experiments.cellcache) -------------------------------------------

    def inputs_fingerprint(self, model: str, stream: str) -> dict[str, Any]:
        """What the cells of ``model`` on ``stream`` are computed from, by content (the key of
        their cache directory: :meth:`experiments.cellcache.CellCache.inputs_dir`)."""
        from experiments.runs import code_digest  # noqa: PLC0415

        h = self.model(model)
        if stream not in self.streams:
            raise UnknownCellError(f"unknown stream {stream!r}; have {sorted(self.streams)}")
        return {"model": model, "weights": weights_digest(h.variables),
                "model_source": _factory_source_digest(model),
                "stream": stream_fingerprint(self.streams[stream].info),
                "resize": self.resize_for(model), "chunk_size": self.chunk_size,
                "code": code_digest()}

    def cell_dir(self, model: str, stream: str, *parts: str) -> Path | None:
        """The cache directory of ``model`` on ``stream`` computed from this workspace's inputs
        (created with its ``inputs.json``), joined with ``parts`` (``"reference"``, or the
        predictor spec and the tau key); ``None`` without a cache directory."""
        if self.cache.root is None:
            return None
        key = ("inputs", model, stream)
        if key not in self._memory:
            self._memory[key] = self.cache.inputs_dir(
                model, stream, self.inputs_fingerprint(model, stream))
        return self._memory[key].joinpath(*(safe_name(p) for p in parts))

    def memo(self, model: str, stream: str, name: str, key: Mapping[str, Any],
             compute: Callable[[], Any]) -> Any:
        """``compute()``'s JSON-able result, computed once per content and kept in the cell cache.

        The file lives in the cache directory of ``model`` on ``stream`` (keyed on the content
        of the weights, the stream and the code, :meth:`cell_dir`) under ``memo/<name>-<hash of
        key>.json``; ``key`` names everything else the result depends on (the caller's
        parameters, the timer's :attr:`~experiments.timer.ReplayTimer.key`). Without a cache
        directory, or when the file is missing or unreadable, ``compute`` runs (and its result
        is stored). A hit marks the file used (the shared cache's eviction is least recently
        used).
        """
        from secnn_jax.fileio import atomic_write  # noqa: PLC0415

        d = self.cell_dir(model, stream, "memo")
        if d is None:
            return compute()
        blob = json.dumps(dict(key), sort_keys=True, default=str)
        path = d / f"{safe_name(name)}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.json"
        try:
            value = json.loads(path.read_text())["value"]
            os.utime(path)
            return value
        except (OSError, ValueError, KeyError):
            pass
        value = compute()
        atomic_write(path, json.dumps({"key": json.loads(blob), "value": value}))
        self.cache.evict()
        return value

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        return [(s, min(s + self.chunk_size, n)) for s in range(0, n, self.chunk_size)]

    def _load_chunk(self, d: Path | None, k: int, t: int) -> dict[str, np.ndarray] | None:
        got = self.cache.load_chunk(d, k, t)
        if got is not None:
            self.stats["chunks_loaded"] += 1
        return got

    def _timer_key(self) -> str:
        return str(getattr(self.timer, "key", "timed"))

    def _bar(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, unit="frame", disable=not self.progress,
                    leave=False, dynamic_ncols=True)

    # -- reference -----------------------------------------------------------------------------

    def reference(self, model: str, stream: str) -> RefResult:
        """The plain forward pass over ``stream`` (cached per chunk)."""
        key = ("ref", model, stream)
        if key in self._memory:
            return self._memory[key]
        frames = self.frames(model, stream)
        layers = self.layers(model, stream)
        h = self.model(model)
        d = self.cell_dir(model, stream, "reference")
        parts = []
        computed = self.stats["chunks_computed"]
        chunks = self._chunks(frames.shape[0])
        with self._bar(frames.shape[0], f"{model}/{stream} reference") as bar:
            for k, (a, b) in enumerate(chunks):
                got = self._load_chunk(d, k, b - a)
                if got is not None and "changed" not in got:  # stored before change counts
                    got = None
                if got is None:
                    skey = ("ref", model, frames.shape[1:])
                    if skey not in self._steps:
                        self._steps[skey] = reference_step(h.apply_fn, layers)
                    chunk, _ = pad_chunk(frames[a:b], self.chunk_size)
                    # The frame before the chunk (frame 0 for the first: no change counted).
                    logits, nz, neg, ab, ch = self._steps[skey](
                        h.variables, jnp.asarray(frames[max(a - 1, 0)]), jnp.asarray(chunk))
                    t = b - a
                    got = {"n": np.int64(t),
                           "logits": np.asarray(logits, np.float32)[:t].reshape(t, -1),
                           "nonzero": np.asarray(nz, np.int64)[:t],
                           "negative": np.asarray(neg, np.int64)[:t],
                           "abs_sum": np.asarray(ab, np.float64)[:t],
                           "changed": np.asarray(ch, np.int64)[:t]}
                    self.cache.save_chunk(d, k, got)
                    self.stats["chunks_computed"] += 1
                parts.append(got)
                bar.update(b - a)
        if self.stats["chunks_computed"] > computed:
            self.cache.evict()
        res = RefResult(
            logits=np.concatenate([p["logits"] for p in parts]),
            nonzero=np.concatenate([p["nonzero"] for p in parts]),
            negative=np.concatenate([p["negative"] for p in parts]),
            abs_sum=np.concatenate([p["abs_sum"] for p in parts]),
            n_inputs=np.array([lyr.n_inputs for lyr in layers], np.int64),
            changed=np.concatenate([p["changed"] for p in parts]),
            change_taus=np.array(CHANGE_TAUS, np.float64),
        )
        self._memory[key] = res
        return res

    # -- SE-CNN cells --------------------------------------------------------------------------

    def run(self, model: str, stream: str, predictor: str, tau: Tau = 0.0, *,
            n_frames: int | None = None, timed: bool = True) -> CellResult:
        """SE-CNN over the first ``n_frames`` frames of ``stream`` (default: all).

        Args:
          predictor: a spec for :func:`secnn_jax.predictors.from_spec`.
          tau: a float for every layer or ``{layer_name: float}`` (missing layers: 0).
          timed: replay the events with the workspace's timer (if it has one).
        """
        frames = self.frames(model, stream)
        total = frames.shape[0] if n_frames is None else min(int(n_frames), frames.shape[0])
        if total < 1:
            raise CellError(f"n_frames must be >= 1, got {n_frames}")
        layers = self.layers(model, stream)
        taus = _tau_values(layers, tau)
        timed = timed and self.timer is not None
        tkey = tau_key(layers, tau)
        mkey = ("cell", model, stream, predictor, tkey, timed)
        cached = self._memory.get(mkey)
        if cached is not None and cached.logits.shape[0] >= total:
            return _slice(cached, total)
        chunks = self._chunks(total)
        if not timed and self.timer is not None:  # an untimed cell may reuse a timed one
            alt = self._memory.get(mkey[:-1] + (True,))
            if alt is not None and alt.logits.shape[0] >= total:
                return CellResult(alt.logits[:total], alt.counts[:total], None)
            dt = self.cell_dir(model, stream, predictor, tkey + "-" + self._timer_key())
            if self.cache.has_chunks(dt, len(chunks)):
                got = [self._load_chunk(dt, k, b - a) for k, (a, b) in enumerate(chunks)]
                if all(g is not None for g in got):
                    return CellResult(np.concatenate([g["logits"] for g in got]),
                                      np.concatenate([g["counts"] for g in got]), None)
        d = self.cell_dir(model, stream, predictor,
                           tkey + ("-" + self._timer_key() if timed else ""))
        # A shorter run of this cell in memory gives its whole chunks (the same computation).
        have = 0 if cached is None else cached.logits.shape[0]
        parts: list[dict[str, np.ndarray] | None] = [
            _chunk_of(cached, a, b) if b <= have else self._load_chunk(d, k, b - a)
            for k, (a, b) in enumerate(chunks)]
        if any(p is None for p in parts):
            self._compute(model, stream, predictor, taus, timed, d, chunks, parts,
                          resume=self._prefix_states.pop(mkey, None))
            if total < frames.shape[0] and total % self.chunk_size == 0:
                self._prefix_states[mkey] = (len(chunks) - 1, self._last_state)
                while len(self._prefix_states) > self.PREFIX_STATES:
                    del self._prefix_states[next(iter(self._prefix_states))]
            self._last_state = None
        res = CellResult(
            logits=np.concatenate([p["logits"] for p in parts]),
            counts=np.concatenate([p["counts"] for p in parts]),
            time_us=np.concatenate([p["time_us"] for p in parts]) if timed else None,
            phase_us=(np.concatenate([p["phase_us"] for p in parts])
                      if timed and all("phase_us" in p for p in parts) else None),
            energy_uj=(np.concatenate([p["energy_uj"] for p in parts])
                       if timed and all("energy_uj" in p for p in parts) else None),
        )
        self._memory[mkey] = res
        return res

    def _compute(self, model: str, stream: str, predictor: str, taus: dict[str, float],
                 timed: bool, d: Path | None, chunks: list[tuple[int, int]],
                 parts: list[dict[str, np.ndarray] | None],
                 resume: tuple[int, Any] | None = None) -> None:
        """Computes the missing ``parts`` of a cell; the predictor state after its last chunk is
        left in ``self._last_state``. ``resume``: ``(k, state after chunk k)`` kept in memory
        from a shorter run of the cell, used when chunk ``k + 1`` is the first missing one."""
        h = self.model(model)
        layers = self.layers(model, stream)
        frames = self.frames(model, stream)
        pred = predictors.from_spec(predictor)
        skey = ("cell", model, frames.shape[1:], predictor, timed)
        if skey not in self._steps:
            # The library's compiled scan, counts reduced inside it; the event maps leave the
            # program only when a timer replays them.
            self._steps[skey] = stream_program(
                h.apply_fn, h.variables, frames[0], pred, layers=layers,
                reducers={"counts": EventCounts(layers)}, keep_events=timed).scan
        scan = self._steps[skey]
        # Resume from the state saved after the last finished chunk before the first missing one.
        first_missing = next(k for k, p in enumerate(parts) if p is None)
        if resume is not None and resume[0] == first_missing - 1:
            state, start = resume[1], first_missing
        else:
            state, start = self.cache.load_state(d, first_missing, lambda: pred.init(layers))
        if state is None:
            state = pred.init(layers)
        desc = f"{model}/{stream} {predictor} {_short_tau(taus)}"
        with self._bar(chunks[-1][1] - chunks[start][0], desc) as bar:
            for k in range(start, len(chunks)):
                a, b = chunks[k]
                t = b - a
                chunk, valid = pad_chunk(frames[a:b], self.chunk_size)
                out = scan(h.variables, state, jnp.asarray(chunk), jnp.asarray(valid), taus)
                state = out.state
                got = {"n": np.int64(t),
                       "logits": np.asarray(out.logits, np.float32)[:t].reshape(t, -1),
                       "counts": np.asarray(out.reduced["counts"], np.int64)[:t]}
                if timed:
                    ev = out.events.map(lambda v, t=t: np.asarray(v)[:t])
                    # Which variants these events feed comes from the timer (the registry).
                    which = self.timer.variants_for(predictor)
                    timed_out = self.timer(layers, ev, which, ops=self.ops(model, stream),
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
                self.cache.save_progress(d, k, got, state if k < len(chunks) - 1 else None)
                self.stats["chunks_computed"] += 1
                bar.update(t)
        self.cache.finish(d)  # a finished cell keeps no state (it is only needed mid-run)
        self._last_state = state


def _same(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    # NaN marks variants a cell does not time: equal where both are NaN.
    return set(a) == set(b) and all(
        np.array_equal(a[k], b[k], equal_nan=np.issubdtype(np.asarray(a[k]).dtype, np.floating))
        for k in a)


def _stream_info(stream: Any) -> Any:
    """A stream's description (its ``info``), what :meth:`Workspace.with_streams` compares."""
    info = getattr(stream, "info", None)
    return info.as_dict() if hasattr(info, "as_dict") else repr(stream)


def _chunk_of(res: CellResult, a: int, b: int) -> dict[str, np.ndarray]:
    """Frames ``a:b`` of a cell in memory as a chunk's arrays (what :meth:`Workspace.run`
    would read from the chunk's file)."""
    got = {"n": np.int64(b - a), "logits": res.logits[a:b], "counts": res.counts[a:b]}
    for name in ("time_us", "phase_us", "energy_uj"):
        arr = getattr(res, name)
        if arr is not None:
            got[name] = arr[a:b]
    return got


def _slice(res: CellResult, n: int) -> CellResult:
    return CellResult(res.logits[:n], res.counts[:n],
                      None if res.time_us is None else res.time_us[:n],
                      None if res.phase_us is None else res.phase_us[:n],
                      None if res.energy_uj is None else res.energy_uj[:n])


def _tau_values(layers: Sequence[Layer], tau: Tau) -> dict[str, float]:
    # The program's own conversion (StreamProgram.taus: Python floats, weakly typed under jit),
    # so a cell compares exactly as run_stream and the jitted step do, in the layer's dtype.
    from secnn_jax.phases import tau_map  # noqa: PLC0415

    return tau_map(layers, tau)


def _short_tau(taus: Mapping[str, jax.Array]) -> str:
    vals = sorted({float(v) for v in taus.values()})
    if len(vals) == 1:
        return f"tau={vals[0]:g}"
    return f"tau=[{vals[0]:g}..{vals[-1]:g}]"

