"""The inputs of the study cells: models, streams, their frames, layers and op groups, and the
cache directory their content names.

:class:`CellInputs` owns what every cell of a (model, stream) pair is computed from: the models
(:class:`ModelHandle`, :func:`load_model`), the streams, the frame caps and input sizes, the
decoded frames (in memory, once per pair), the layers (:func:`secnn_jax.find_layers`) and op
groups (:func:`secnn_jax.netops.find_ops`) at a stream's frame shape, and the content fingerprint
that keys the pair's directory in the cell cache (:meth:`CellInputs.inputs_fingerprint`,
:meth:`CellInputs.cell_dir`, :meth:`CellInputs.memo`). Nothing here runs the network over a
stream: the plain pass is :mod:`experiments.cellreference`, the SE-CNN cells
:mod:`experiments.cellrunner`; :mod:`experiments.cells` composes the three.

The chunk helpers both runners use (:meth:`CellInputs.chunks`, :func:`load_chunk`,
:func:`progress_bar`) live here too: they read the cache the inputs name and count into one
``stats`` dict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm import tqdm

from experiments.cellcache import CellCache, safe_name, stream_fingerprint, weights_digest
from experiments.errors import CellError, ConfigError, UnknownCellError
from secnn_jax import find_layers
from secnn_jax.datasources import Stream, StreamError, model_frames
from secnn_jax.layers import Layer

__all__ = ["CellInputs", "ModelHandle", "load_chunk", "load_model", "progress_bar",
           "stream_description"]


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


def stream_description(stream: Any) -> Any:
    """A stream's description (its ``info``), what two requests for the same streams compare
    (:meth:`experiments.cells.Workspace.with_streams`)."""
    info = getattr(stream, "info", None)
    return info.as_dict() if hasattr(info, "as_dict") else repr(stream)


#: A model's layers or op groups, by model name and the frame shape they were found at.
ShapeKey = tuple[str, tuple[int, ...]]


class CellInputs:
    """What the cells of a set of models and streams are computed from (see module docstring).

    Args:
      models: ``{name: ModelHandle}``.
      streams: ``{name: Stream}``.
      frames: maximum frames per stream.
      chunk_size: frames per compiled scan and per cached chunk.
      resize: if set, preprocessed frames are resized to ``resize`` x ``resize``.
      cache: the cell cache (:class:`experiments.cellcache.CellCache`; its root ``None``: in
        memory only).
      model_frames: ``{model: frames}``: a smaller frame cap for some models.
      model_resize: ``{model: size}``: a resize for some models (overrides ``resize``).
    """

    def __init__(self, models: Mapping[str, ModelHandle], streams: Mapping[str, Stream], *,
                 frames: int, chunk_size: int, resize: int | None, cache: CellCache,
                 model_frames: Mapping[str, int] | None = None,
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
        self.cache = cache
        self._frames: dict[tuple[str, str], np.ndarray] = {}
        # Keyed by model and frame shape, not by stream: shared with with_streams's inputs.
        self._layers: dict[ShapeKey, tuple[Layer, ...]] = {}
        self._ops: dict[ShapeKey, tuple[Any, ...]] = {}
        self._dirs: dict[tuple[str, str], Path] = {}

    def with_streams(self, streams: Mapping[str, Stream], frames: int) -> CellInputs:
        """These inputs over ``streams`` (at most ``frames`` each): the same models, cache,
        chunking and input sizes, sharing the layer lists and op groups (keyed by model and
        frame shape, so a model's are found once for both)."""
        other = CellInputs(self.models, streams, frames=frames, chunk_size=self.chunk_size,
                           resize=self.resize, cache=self.cache, model_frames=self.model_frames,
                           model_resize=self.model_resize)
        other._layers = self._layers
        other._ops = self._ops
        return other

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
        """Frames of ``stream`` in these inputs (after the ``frames`` cap)."""
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
        key = (model, tuple(x.shape))
        if key not in self._ops:
            h = self.model(model)
            self._ops[key] = netops.find_ops(h.apply_fn, h.variables, jnp.asarray(x),
                                             self.layers(model, stream))
        return self._ops[key]

    def chunks(self, n: int) -> list[tuple[int, int]]:
        """The ``(start, stop)`` frames of each chunk of the first ``n`` frames."""
        return [(s, min(s + self.chunk_size, n)) for s in range(0, n, self.chunk_size)]

    # -- the cache directory these inputs name (the files: experiments.cellcache) -------------

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
        """The cache directory of ``model`` on ``stream`` computed from these inputs (created
        with its ``inputs.json``), joined with ``parts`` (``"reference"``, or the predictor
        spec and the tau key); ``None`` without a cache directory."""
        if self.cache.root is None:
            return None
        key = (model, stream)
        if key not in self._dirs:
            self._dirs[key] = self.cache.inputs_dir(
                model, stream, self.inputs_fingerprint(model, stream))
        return self._dirs[key].joinpath(*(safe_name(p) for p in parts))

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


# ---------------------------------------------------------------------------------------------
# What both runners do with a chunk


def load_chunk(cache: CellCache, d: Path | None, k: int, t: int,
               stats: MutableMapping[str, int]) -> dict[str, np.ndarray] | None:
    """Chunk ``k`` (``t`` frames) of the cell in ``d`` from ``cache``, or ``None`` (a miss);
    a hit counts in ``stats["chunks_loaded"]``."""
    got = cache.load_chunk(d, k, t)
    if got is not None:
        stats["chunks_loaded"] += 1
    return got


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    """A tqdm bar over ``total`` frames (hidden unless ``enabled``), gone when it closes."""
    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False,
                dynamic_ncols=True)
