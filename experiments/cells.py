"""The engine shared by the studies: SE-CNN over (model, stream, predictor, tau) *cells*.

A cell is one model run over one stream with one predictor and one threshold (a float for every
layer, or one per layer). :class:`Workspace` computes a cell chunk by chunk
(``chunk_size`` frames per compiled ``lax.scan``) and keeps, per frame, only small summaries:

* ``logits`` ``[T, classes]`` — the SE-CNN output (top-1 agreement, logit error);
* ``counts`` ``[T, L, 4]`` — input neurons per event code (ZZ, ZN, VH, VM) per layer;
* ``time_us`` ``[T, G, S]`` — replayed time per GPU and execution scheme (when a timer is set).

The *reference* of a (model, stream) pair is the plain forward pass: exact logits, and per layer
the number of non-zero input neurons, the sum of ``|x|`` (sparsity, threshold scales) and the
number changed since the previous frame by more than each of
:data:`experiments.config.CHANGE_TAUS`.

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

This module is the facade; the engine lives in three parts that :class:`Workspace` composes:

* :mod:`experiments.cellinputs` — :class:`~experiments.cellinputs.CellInputs`: the models
  (:class:`ModelHandle`, :func:`load_model`), streams, frames, layers, op groups and the content
  fingerprint that keys their cache directory;
* :mod:`experiments.cellreference` — the plain pass (:func:`reference_step`, :class:`RefResult`,
  :class:`~experiments.cellreference.ReferenceRunner`);
* :mod:`experiments.cellrunner` — the SE-CNN cells, keyed by
  :class:`~experiments.cellrunner.CellKey` (:class:`CellResult`,
  :class:`~experiments.cellrunner.CellRunner`, :class:`Timer`, :func:`predictor_spec`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from experiments.cellcache import CellCache
from experiments.cellinputs import CellInputs, ModelHandle, load_model, stream_description
from experiments.cellreference import ReferenceRunner, RefResult, reference_step
from experiments.cellreference import _changed as _changed  # re-exported: tests time it alone
from experiments.cellrunner import CellKey, CellResult, CellRunner, Timer, predictor_spec
from experiments.cellrunner import _same as _same  # re-exported: tests compare chunks with it
from secnn_jax.datasources import Stream
from secnn_jax.layers import Layer
from secnn_jax.phases import Tau

__all__ = [
    "CellKey",
    "CellResult",
    "ModelHandle",
    "RefResult",
    "Timer",
    "Workspace",
    "load_model",
    "predictor_spec",
    "reference_step",
]


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

    Attributes:
      inputs: the :class:`~experiments.cellinputs.CellInputs` (models, streams, frames, layers,
        op groups, cache directories).
      reference_runner: the :class:`~experiments.cellreference.ReferenceRunner`.
      cell_runner: the :class:`~experiments.cellrunner.CellRunner`.
      stats: chunks computed (cache misses) and read from the cache (hits) by both runners:
        the hook that tells how much of a run was new.
    """

    def __init__(self, models: Mapping[str, ModelHandle], streams: Mapping[str, Stream], *,
                 frames: int, chunk_size: int = 8, resize: int | None = None,
                 cache_dir: str | Path | CellCache | None = None, timer: Timer | None = None,
                 progress: bool = True, model_frames: Mapping[str, int] | None = None,
                 model_resize: Mapping[str, int] | None = None) -> None:
        cache = cache_dir if isinstance(cache_dir, CellCache) else CellCache(cache_dir)
        self._assemble(CellInputs(models, streams, frames=frames, chunk_size=chunk_size,
                                  resize=resize, cache=cache, model_frames=model_frames,
                                  model_resize=model_resize),
                       timer=timer, progress=progress)

    def _assemble(self, inputs: CellInputs, *, timer: Timer | None, progress: bool,
                  like: Workspace | None = None) -> None:
        """Composes the runners over ``inputs``; with ``like``, sharing its compiled programs."""
        self.inputs = inputs
        self.progress = progress
        self.stats = {"chunks_computed": 0, "chunks_loaded": 0}
        self.reference_runner = ReferenceRunner(
            inputs, stats=self.stats, progress=progress,
            steps=None if like is None else like.reference_runner.steps)
        self.cell_runner = CellRunner(
            inputs, timer=timer, stats=self.stats, progress=progress,
            steps=None if like is None else like.cell_runner.steps)
        self._with_streams: dict[tuple[Any, ...], Workspace] = {}

    def with_streams(self, streams: Mapping[str, Stream], frames: int) -> Workspace:
        """A workspace over ``streams`` (at most ``frames`` each) with this one's models, timer,
        cell cache, chunking and input sizes, so the cells of a stream that both hold are one
        computation (the cache keys them by content, not by workspace). It shares this one's
        compiled programs and layer lists (keyed by model and frame shape, not by stream), so a
        model is compiled once for both; and the same request (the same frames and streams,
        by name and description) returns the same workspace, so two studies that evaluate on
        the same clips (the accuracy study's transfer, the operating point's) decode their
        frames once and share the cells in memory."""
        key = (int(frames), tuple(
            (name, json.dumps(stream_description(st), sort_keys=True, default=str))
            for name, st in streams.items()))
        if key not in self._with_streams:
            other = Workspace.__new__(Workspace)
            other._assemble(self.inputs.with_streams(streams, frames), timer=self.timer,
                            progress=self.progress, like=self)
            self._with_streams[key] = other
        return self._with_streams[key]

    # -- the parts' attributes, as the studies read them ---------------------------------------

    @property
    def timer(self) -> Timer | None:
        """The timer that replays the cells' events (``None``: no timing)."""
        return self.cell_runner.timer

    @timer.setter
    def timer(self, timer: Timer | None) -> None:
        self.cell_runner.timer = timer

    @property
    def models(self) -> dict[str, ModelHandle]:
        """``{name: ModelHandle}``."""
        return self.inputs.models

    @property
    def streams(self) -> dict[str, Stream]:
        """``{name: Stream}``."""
        return self.inputs.streams

    @property
    def max_frames(self) -> int:
        """The frame cap per stream."""
        return self.inputs.max_frames

    @property
    def chunk_size(self) -> int:
        """Frames per compiled scan and per cached chunk."""
        return self.inputs.chunk_size

    @property
    def resize(self) -> int | None:
        """The input size frames are resized to (``None``: each model's preprocessing's)."""
        return self.inputs.resize

    @property
    def model_frames(self) -> dict[str, int]:
        """``{model: frames}``: the smaller frame caps."""
        return self.inputs.model_frames

    @property
    def model_resize(self) -> dict[str, int]:
        """``{model: size}``: the per-model input sizes."""
        return self.inputs.model_resize

    @property
    def cache(self) -> CellCache:
        """The cell cache."""
        return self.inputs.cache

    @property
    def cache_dir(self) -> Path | None:
        """The cell cache's directory (``None``: in memory only)."""
        return self.inputs.cache.root

    # -- inputs (experiments.cellinputs) -------------------------------------------------------

    def model(self, name: str) -> ModelHandle:
        """The handle of model ``name``."""
        return self.inputs.model(name)

    def frames_for(self, model: str) -> int:
        """The frame cap of ``model``: ``frames``, or its ``model_frames`` entry if smaller."""
        return self.inputs.frames_for(model)

    def resize_for(self, model: str) -> int | None:
        """The input size ``model``'s frames are resized to (``None``: its preprocessing's)."""
        return self.inputs.resize_for(model)

    def frames(self, model: str, stream: str) -> np.ndarray:
        """Preprocessed frames ``[T, 1, H, W, 3]`` of ``stream`` for ``model`` (cached)."""
        return self.inputs.frames(model, stream)

    def n_frames(self, model: str, stream: str) -> int:
        """Frames of ``stream`` in this workspace (after the ``frames`` cap)."""
        return self.inputs.n_frames(model, stream)

    def layers(self, model: str, stream: str) -> tuple[Layer, ...]:
        """``find_layers`` of ``model`` at the frame shape of ``stream``."""
        return self.inputs.layers(model, stream)

    def ops(self, model: str, stream: str) -> tuple[Any, ...]:
        """The op groups between ``model``'s layers at the frame shape of ``stream``
        (:func:`secnn_jax.netops.find_ops`), for the whole-network timing."""
        return self.inputs.ops(model, stream)

    def inputs_fingerprint(self, model: str, stream: str) -> dict[str, Any]:
        """What the cells of ``model`` on ``stream`` are computed from, by content
        (:meth:`experiments.cellinputs.CellInputs.inputs_fingerprint`)."""
        return self.inputs.inputs_fingerprint(model, stream)

    def cell_dir(self, model: str, stream: str, *parts: str) -> Path | None:
        """The cache directory of ``model`` on ``stream`` joined with ``parts``
        (:meth:`experiments.cellinputs.CellInputs.cell_dir`); ``None`` without a cache."""
        return self.inputs.cell_dir(model, stream, *parts)

    def memo(self, model: str, stream: str, name: str, key: Mapping[str, Any],
             compute: Callable[[], Any]) -> Any:
        """``compute()``'s JSON-able result, computed once per content and kept in the cell
        cache (:meth:`experiments.cellinputs.CellInputs.memo`)."""
        return self.inputs.memo(model, stream, name, key, compute)

    # -- the runs ------------------------------------------------------------------------------

    def reference(self, model: str, stream: str) -> RefResult:
        """The plain forward pass over ``stream`` (cached per chunk;
        :class:`experiments.cellreference.ReferenceRunner`)."""
        return self.reference_runner(model, stream)

    def run(self, model: str, stream: str, predictor: str, tau: Tau = 0.0, *,
            n_frames: int | None = None, timed: bool = True) -> CellResult:
        """SE-CNN over the first ``n_frames`` frames of ``stream`` (default: all;
        :class:`experiments.cellrunner.CellRunner`).

        Args:
          predictor: a spec for :func:`secnn_jax.predictors.from_spec`.
          tau: a float for every layer or ``{layer_name: float}`` (missing layers: 0).
          timed: replay the events with the workspace's timer (if it has one).
        """
        return self.cell_runner(model, stream, predictor, tau, n_frames=n_frames, timed=timed)
