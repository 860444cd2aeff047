"""Speedup study: whole-network replayed GPU time per scheme, launch model, model and GPU; the
attribution ladder (which mechanism buys how much); and a sensitivity table over SE-CNN's
assumed physics.

Each frame's event maps are replayed (:mod:`secnn_jax.timing`, via
:class:`experiments.timer.ReplayTimer`) on every configured GPU, every scheme under every launch
model, all under the run's one fusion policy:

* the baselines ``dense`` (cuDNN/cuBLAS-style kernels), ``winograd``, ``fft`` and ``zero_skip``,
  SE-CNN *without value prediction* and the *oracle* are replayed from the zero predictor's
  events at tau = 0 (the exact zero pattern);
* ``secnn_sw`` and ``secnn_hw`` with value prediction from the chosen predictor's events.

**Same assumptions.** A speedup compares two schemes under the *same* launch model
(``COMPARISON_LAUNCH``, ``persistent`` by default: the launch model ``secnn_hw`` was designed
for, and the fair one for ``dense``) and the same fusion policy. ``fast_conv`` is, per frame,
the faster of ``winograd`` and ``fft``; ``strongest`` the fastest of ``dense``, ``fast_conv``
and ``zero_skip``. The paper's three GPU schemes map to ``dense`` (13.4x on average, 22.0x at
most), ``fast_conv`` (10.4x, 18.7x) and ``zero_skip`` (7.9x, 16.4x).

**The ladder** (:data:`secnn_jax.timing.LADDER`): dense/eager -> dense/graph ->
dense/persistent -> zero_skip/persistent -> secnn_hw with the zero predictor -> with the chosen
predictor -> with the oracle; each step's ratio is one mechanism's contribution. The
*value-prediction factor* is the chosen predictor's step, the *oracle factor* the ceiling.

Speedups per (model, stream, GPU): ``mean`` is the ratio of total times over the stream (the
throughput gain), ``max`` the best single frame, ``min`` the worst. Across cells, ``average`` is
the arithmetic mean of the cells' ``mean`` and ``at_most`` the largest ``max``.

**Verdict bands.** Every SE-CNN-versus-baseline ratio of the summary, and each cell's
value-prediction factor, is also computed at the SE-CNN-optimistic and -pessimistic corners of
the timing model's uncertainty box (:mod:`secnn_jax.timing.uncertainty`) on the first
``BAND_FRAMES`` frames of the model's first stream (probes on ``PROBE_FRAMES``); the band's
factors (corner / default on those frames) are applied to the study's own ratio, and a verdict
is ``holds`` or ``does not hold`` only when the default and both corners agree, else
``inconclusive (low-high)``. Every summary row has a ``verdict``: the paper's claim where it
made one, else "SE-CNN is faster" (ratio above 1).

The results are a :class:`SpeedupResult` (``results/speedup.json``) and a
:class:`SensitivityResult` (``results/sensitivity.json``, :func:`sensitivity_result`);
:func:`claims`, :func:`section`, :func:`ladder_section`, :func:`sensitivity_section` and
:func:`notes` render them for the report.

Library: :func:`speedup`, :func:`sensitivity`, :func:`replay_inputs`, :func:`ratio_bands`.
Command line (prints the speedup and ladder tables, writes ``results/speedup.json``,
``figures/speedup.png`` and the study's section of ``report.md``)::

    python -m experiments.speedup --out_dir=runs/speedup --config.gpus=h100,titanx
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from absl import app, logging

from experiments.cells import Workspace
from experiments.paper import (
    COMPARISON_LAUNCH,
    FASTER_ABOVE,
    PAPER,
    SPEEDUP_BASELINES,
    value_prediction_verdict,
)
from experiments.records import RecordResult, from_plain, optional
from experiments.reporting import (
    band_range,
    band_text,
    judge,
    study_output,
    table,
    times,
    us,
)
from experiments.studyresult import claim_row
from experiments.timer import ladder_variant, variant_parts
from secnn_jax.timing.ladder import LADDER
from secnn_jax.timing.names import BASELINES, DERIVED_BASELINES, PEERS, SECNN

__all__ = ["BAND_FRAMES", "BASELINE_SCHEMES", "PROBE_FRAMES", "Ladder", "ReplayInputs",
           "SensitivityCell", "SensitivityResult", "SensitivityRow", "SpeedupCell",
           "SpeedupResult", "SpeedupSummary", "claims", "frame_times", "ladder_section",
           "ladder_times", "notes", "parallel_share", "ratio_bands", "replay_inputs", "section",
           "sensitivity", "sensitivity_result", "sensitivity_section", "speedup", "stream_events",
           "verdict"]

#: Frames (the first ones of a model's first stream) the verdict bands' corners replay, and
#: frames (the last of those) each one-at-a-time probe replays (:func:`secnn_jax.timing.bands`).
BAND_FRAMES = 4
PROBE_FRAMES = 1
#: Frames of the first stream :func:`replay_inputs` runs for the sensitivity table (the bands
#: use the first ``BAND_FRAMES`` of them).
SENSITIVITY_FRAMES = 8
#: Each baseline of :data:`experiments.paper.SPEEDUP_BASELINES`: the schemes it is per frame the
#: fastest of.
BASELINE_SCHEMES: dict[str, tuple[str, ...]] = {
    "dense": ("dense",), "winograd": ("winograd",), "fft": ("fft",),
    "fast_conv": ("winograd", "fft"), "zero_skip": ("zero_skip",),
    "strongest": ("dense", "winograd", "fft", "zero_skip")}
#: Key of the value-prediction factor's band (secnn_hw on the zero predictor's events over
#: secnn_hw on the chosen predictor's).
VALUE_PREDICTION = "value_prediction"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ladder:
    """One cell's attribution ladder: mean microseconds per frame of each step
    (``mean_us``, by :data:`~secnn_jax.timing.LADDER` key), each step's ratio to the step
    before (``step_ratio``), the peers' times beside it (``peers_us``) and, when the three
    secnn_hw steps ran, the value-prediction factor (zero predictor over the chosen one), the
    oracle factor and the factor's band over the timing model's uncertainty."""

    peers_us: Mapping[str, float]
    mean_us: Mapping[str, float]
    step_ratio: Mapping[str, float]
    value_prediction_factor: float | None = optional()
    oracle_factor: float | None = optional()
    value_prediction_band: Mapping[str, Any] | None = optional()


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpeedupCell:
    """One (model, stream, GPU): total and per-frame times per key of :func:`frame_times`,
    per-phase means per SE-CNN scheme, the ladder, ``speedups[variant][baseline]`` (``mean``,
    ``max``, ``min``) under the comparison launch model and ``by_launch`` under each, and the
    energy per frame (``energy_uj[key]``: ``total`` and per component)."""

    model: str
    stream: str
    gpu: str
    frames: int
    energy_uj: Mapping[str, Mapping[str, float]]
    total_us: Mapping[str, float]
    frame_us: Mapping[str, tuple[float, ...]]
    phase_us: Mapping[str, Mapping[str, float]]
    ladder: Ladder
    speedups: Mapping[str, Mapping[str, Mapping[str, float]]]
    by_launch: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpeedupSummary:
    """An SE-CNN variant over a baseline across one model's streams on one GPU: ``average``
    of the cells' means, ``at_most`` their largest max, the paper's figures where it made a
    claim, the ``band`` over the timing model's uncertainty, and the verdict."""

    model: str
    gpu: str
    variant: str
    baseline: str
    average: float
    at_most: float
    cells: int
    paper_average: float | None = optional()
    paper_at_most: float | None = optional()
    claim: str
    band: Mapping[str, Any] | None = optional()
    verdict: str


@dataclasses.dataclass(frozen=True)
class SpeedupResult(RecordResult):
    """The speedup study's result (``results/speedup.json``; :func:`speedup` describes the
    fields)."""

    STUDY: ClassVar[str] = "speedup"
    VERSION: ClassVar[int] = 1

    gpus: tuple[str, ...]
    variants: tuple[str, ...]
    bands: Mapping[str, Any] | None
    launch: str
    fusion: str | None
    predictor: str
    tau: float
    cells: tuple[SpeedupCell, ...]
    summary: tuple[SpeedupSummary, ...]
    mapping: Mapping[str, str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SensitivityRow:
    """The headline ratio with one assumed parameter at one end of its range (``reference``:
    none moved): secnn_hw's and the strongest baseline's mean times per frame, their ratio,
    and secnn_hw's and the lower-energy baseline's energy per frame."""

    parameter: str
    end: str | None = optional()
    value: Any
    unit: str | None = optional()
    secnn_hw_us: float
    strongest_us: float
    ratio: float
    secnn_hw_uj: float
    baseline_uj: float


@dataclasses.dataclass(frozen=True)
class SensitivityCell:
    """One model's sensitivity table, on the first ``frames`` frames of ``stream``."""

    model: str
    stream: str
    gpu: str
    launch: str
    fusion: str
    frames: int
    rows: tuple[SensitivityRow, ...]


@dataclasses.dataclass(frozen=True)
class SensitivityResult(RecordResult):
    """The sensitivity tables (``results/sensitivity.json``), one cell per model."""

    STUDY: ClassVar[str] = "sensitivity"
    VERSION: ClassVar[int] = 1

    cells: tuple[SensitivityCell, ...]


def sensitivity_result(cells: Sequence[Mapping[str, Any]]) -> SensitivityResult:
    """The :class:`SensitivityResult` of :func:`sensitivity`'s outputs, one per model (their
    replay inputs left out)."""
    return SensitivityResult(tuple(from_plain(SensitivityCell, {
        k: v for k, v in c.items() if k != "_replay_inputs"}) for c in cells))

def frame_times(base_us: np.ndarray, secnn_us: np.ndarray, variants: Sequence[str],
                launch: str = COMPARISON_LAUNCH) -> dict[str, np.ndarray]:
    """Per-frame times ``{key: [T]}`` of one GPU from the two cells' ``[T, V]`` replays.

    Keys: every variant name (``scheme@launch[:oracle]``; baselines, the zero-predictor SE-CNN
    and the oracle from ``base_us``, the predictor's SE-CNN from ``secnn_us``, the zero
    predictor's SE-CNN as ``scheme@launch:zero``), and the plain scheme names for ``launch``:
    ``dense``..., ``secnn_hw`` (the predictor's), ``fast_conv`` (per frame the faster of
    winograd and fft) and ``strongest`` (the fastest of dense, fast_conv, zero_skip).
    """
    out: dict[str, np.ndarray] = {}
    for j, v in enumerate(variants):
        scheme, _, oracle = variant_parts(v)
        if scheme in SECNN and not oracle:
            out[v] = secnn_us[:, j].astype(np.float64)
            out[v + ":zero"] = base_us[:, j].astype(np.float64)
        else:
            out[v] = base_us[:, j].astype(np.float64)
    for v in list(out):
        scheme, ln, oracle = variant_parts(v)
        if ln == launch and ":" not in v:
            out[scheme] = out[v]
    fast = [out[s] for s in ("winograd", "fft") if s in out]
    if fast:
        out["fast_conv"] = np.minimum.reduce(fast)
    strong = [out[s] for s in ("dense", "fast_conv", "zero_skip") if s in out]
    if strong:
        out["strongest"] = np.minimum.reduce(strong)
    return {k: v for k, v in out.items() if np.isfinite(v).all()}


def ladder_times(ft: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The :data:`~secnn_jax.timing.LADDER` steps' per-frame times from :func:`frame_times`."""
    out = {}
    for s in LADDER:
        key = ladder_variant(s)
        if key in ft:
            out[s.key] = ft[key]
    return out


def _phases(base: np.ndarray | None, sec: np.ndarray | None, g: int,
            variants: Sequence[str], launch: str) -> dict[str, dict[str, float]]:
    """Mean microseconds per frame of each phase, per scheme under ``launch``."""
    from experiments.timer import PHASES  # noqa: PLC0415

    out: dict[str, dict[str, float]] = {}
    for j, v in enumerate(variants):
        scheme, ln, oracle = variant_parts(v)
        if ln != launch or oracle:
            continue
        src = sec if scheme in SECNN else base
        if src is None:
            continue
        vals = src[:, g, j, :]
        out[scheme] = {p: float(vals[:, k].mean()) for k, p in enumerate(PHASES)
                       if np.isfinite(vals[:, k]).all()}
    return out


def verdict(ours: float, paper: float) -> str:
    """``holds`` (ours >= the paper's), ``partly`` (SE-CNN is faster, less than claimed) or
    ``does not hold`` (no speedup)."""
    if not np.isfinite(ours):
        return "not measured"
    if ours >= paper:
        return "holds"
    return "partly" if ours > FASTER_ABOVE else "does not hold"


def faster(ratio: float) -> str:
    """The verdict on "SE-CNN is faster" (no paper claim): ``holds`` above 1."""
    if not np.isfinite(ratio):
        return "not measured"
    return "holds" if ratio > FASTER_ABOVE else "does not hold"


@dataclasses.dataclass
class ReplayInputs:
    """``(layers, {"zero": events, "predictor": events}, ops)`` of the first ``frames`` frames
    of ``stream`` through the zero and the chosen predictor (:func:`secnn_jax.run_stream`), for
    replays at other parameters than the study's (bands, sensitivity, schedule).

    Computed on first use (unpacking, :attr:`value`), so a study whose bands and sensitivity
    rows are already in the cell cache (:meth:`experiments.cells.Workspace.memo`) never reruns
    the stream; ``model``, ``stream``, ``predictor`` and ``frames`` name it in those keys.
    """

    ws: Workspace
    model: str
    stream: str
    predictor: str
    frames: int
    _value: tuple[Any, dict[str, Any], Any] | None = dataclasses.field(default=None, repr=False)

    @property
    def value(self) -> tuple[Any, dict[str, Any], Any]:
        """The layers, the two predictors' events and the ops (computed once; the events from
        :func:`stream_events`, so a rerun reads them instead of running the stream)."""
        if self._value is None:
            ev = {name: stream_events(self.ws, self.model, self.stream, spec, 0.0, self.frames)
                  for name, spec in (("zero", "zero"), ("predictor", self.predictor))}
            self._value = (self.ws.layers(self.model, self.stream), ev,
                           self.ws.ops(self.model, self.stream))
        return self._value

    def stored(self) -> bool:
        """Whether both predictors' events are in the cell cache (a read may still miss:
        then they are recomputed)."""
        return all(self.ws.cache.has_chunks(
            _events_dir(self.ws, self.model, self.stream, spec, 0.0, self.frames), 1)
            for spec in ("zero", self.predictor))

    def __iter__(self) -> Any:
        return iter(self.value)

    def first(self, n: int) -> ReplayInputs:
        """These inputs when already computed or stored in the cell cache (they hold at least
        as many frames), else the inputs of the first ``n`` frames only (cheaper: e.g. a
        one-frame schedule)."""
        if self._value is not None or n >= self.frames or self.stored():
            return self
        return dataclasses.replace(self, frames=n)

    def key(self, **extra: Any) -> dict[str, Any]:
        """What a memoised replay of these inputs depends on beyond the cell directory's
        content key: the predictor, the frames, the timer and ``extra``."""
        timer = getattr(self.ws.timer, "key", None)
        return {"predictor": self.predictor, "frames": self.frames, "timer": timer, **extra}


def replay_inputs(ws: Workspace, model: str, stream: str, predictor: str,
                  frames: int = SENSITIVITY_FRAMES) -> ReplayInputs:
    """The :class:`ReplayInputs` of the first ``frames`` frames of ``stream`` (lazy)."""
    return ReplayInputs(ws, model, stream, predictor, frames)


def _events_dir(ws: Workspace, model: str, stream: str, spec: str, tau: Any,
                frames: int) -> Any:
    # Under the cell cache's content key of the weights, the stream and the code; named by
    # predictor, threshold (tau_key: 0.0 and an all-zero map are one key, as for the cells)
    # and frames.
    from experiments.cellcache import tau_key  # noqa: PLC0415

    n = min(int(frames), ws.n_frames(model, stream))
    return ws.cell_dir(model, stream, "stream_events", spec,
                       tau_key(ws.layers(model, stream), tau), f"frames{n}")


def stream_events(ws: Workspace, model: str, stream: str, spec: str, tau: Any = 0.0,
                  frames: int = SENSITIVITY_FRAMES, *, store: bool = True) -> Any:
    """The events (:class:`secnn_jax.events.EventMaps` of numpy arrays) of the first ``frames``
    frames of ``stream`` through predictor ``spec`` at ``tau`` (:func:`secnn_jax.run_stream`),
    kept in the cell cache: the speedup study's :class:`ReplayInputs`, the operating point's
    and the peers' band events at the same predictor and threshold are one computation, and a
    rerun reads them instead of compiling and running the stream.

    The compiled program sees per-layer thresholds either way (:func:`secnn_jax.phases.
    tau_map`), so ``tau = 0.0`` and a map giving every layer 0 give the same events.
    ``store=False`` reads stored events but does not store new ones (events are large: tens
    of MB per frame set, so only the speedup study's, which a rerun reads, are kept; the fires
    maps are stored bit-packed).
    """
    from secnn_jax import run_stream  # noqa: PLC0415
    from secnn_jax.events import EventMaps  # noqa: PLC0415
    from secnn_jax.predictors import from_spec  # noqa: PLC0415

    x = ws.frames(model, stream)[:frames]
    d = _events_dir(ws, model, stream, spec, tau, frames)
    got = ws.cache.load_chunk(d, 0, len(x))
    if got is not None:
        try:
            names = [str(n) for n in got["names"]]
            fires = ({k: np.unpackbits(got[f"fires.{i}"], count=int(np.prod(
                          got[f"codes.{i}"].shape))).reshape(got[f"codes.{i}"].shape)
                          .astype(bool) for i, k in enumerate(names)}
                     if bool(got["has_fires"]) else None)
            return EventMaps({k: got[f"codes.{i}"] for i, k in enumerate(names)}, fires,
                             str(got["predictor"]) or None)
        except KeyError:  # another layout: recomputed (and stored anew)
            pass
    h = ws.model(model)
    _, e = run_stream(h.apply_fn, h.variables, x, from_spec(spec), tau=tau)
    e = e.map(np.asarray)
    if not store:
        return e
    if e.fires is not None and any(v.dtype != bool or v.shape != e[k].shape
                                   for k, v in e.fires.items()):
        return e  # not the layout the bit-packing reads back: kept in memory only
    arrays: dict[str, np.ndarray] = {
        "n": np.asarray(len(x)), "names": np.asarray(list(e), dtype=str),
        "predictor": np.asarray(e.predictor or "", dtype=str),
        "has_fires": np.asarray(e.fires is not None)}
    for i, layer in enumerate(e):
        arrays[f"codes.{i}"] = e[layer]
        if e.fires is not None:
            arrays[f"fires.{i}"] = np.packbits(e.fires[layer])
    ws.cache.save_chunk(d, 0, arrays)
    return e


def _band_json(band: Any) -> dict[str, Any]:
    return dataclasses.asdict(band)


def ratio_bands(ws: Workspace, inputs: ReplayInputs | tuple[Any, dict[str, Any], Any],
                launch: str = COMPARISON_LAUNCH) -> dict[str, dict[str, Any]]:
    """Per GPU of the workspace's timer, the :class:`secnn_jax.timing.Band` of every SE-CNN
    variant over every baseline of :data:`BASELINE_SCHEMES` the timer replays, and of the
    value-prediction factor: ``{gpu: {variant: {baseline: Band}, "value_prediction": Band}}``
    (one :func:`secnn_jax.timing.bands` call per GPU, on ``inputs`` from
    :func:`replay_inputs`, of which the first ``BAND_FRAMES`` frames)."""

    if isinstance(inputs, ReplayInputs):  # memoised in the cell cache, keyed on content
        key = inputs.key(study="bands", launch=launch, band_frames=BAND_FRAMES,
                         probe_frames=PROBE_FRAMES)
        got = ws.memo(inputs.model, inputs.stream, "bands", key,
                      lambda: _bands_json(_ratio_bands(ws, inputs.value, launch)))
        return _bands_from_json(got)
    return _ratio_bands(ws, inputs, launch)


def _bands_json(bands: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {g: {v: (_band_json(b) if not isinstance(b, dict) else
                    {k: _band_json(x) for k, x in b.items()}) for v, b in per.items()}
            for g, per in bands.items()}


def _bands_from_json(got: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from secnn_jax.timing import uncertainty  # noqa: PLC0415

    return {g: {v: (uncertainty.Band(**b) if v == VALUE_PREDICTION else
                    {k: uncertainty.Band(**x) for k, x in b.items()}) for v, b in per.items()}
            for g, per in got.items()}


def _ratio_bands(ws: Workspace, inputs: tuple[Any, dict[str, Any], Any],
                 launch: str) -> dict[str, dict[str, Any]]:
    from secnn_jax.timing import uncertainty  # noqa: PLC0415

    layers, ev, ops = inputs
    ev = {k: e.map(lambda v: np.asarray(v)[:BAND_FRAMES]) for k, e in ev.items()}
    have = set(ws.timer.base_schemes)
    ratios = {(v, b): uncertainty.Ratio(v, schemes) for v in SECNN if v in have
              for b, schemes in BASELINE_SCHEMES.items() if set(schemes) <= have}
    if "secnn_hw" in have:
        ratios[(VALUE_PREDICTION, "")] = uncertainty.Ratio("secnn_hw", ("secnn_hw",))
    out: dict[str, dict[str, Any]] = {}
    if not ratios:
        return out
    n = min(int(np.shape(v)[0]) for v in ev["zero"].values())
    for gpu in ws.timer.gpus:
        t0 = time.perf_counter()
        got = uncertainty.bands(layers, ev["predictor"], ev["zero"], tuple(ratios.values()),
                                ops=ops, gpu=gpu, precision=ws.timer.precision, launch=launch,
                                fusion=ws.timer.fusion, params=ws.timer.params,
                                config=ws.timer.config, probe_frames=min(PROBE_FRAMES, n))
        per: dict[str, Any] = {}
        for (v, b), r in ratios.items():
            if v == VALUE_PREDICTION:
                per[v] = got[r.name]
            else:
                per.setdefault(v, {})[b] = got[r.name]
        logging.info("bands on %s: %d ratios, %d replays in %.1f s", gpu, len(got),
                     next(iter(got.values())).replays, time.perf_counter() - t0)
        out[gpu] = per
    return out


def _ratios(ft: dict[str, np.ndarray], scheme: str, baseline: str) -> dict[str, float]:
    ratio = ft[baseline] / ft[scheme]
    return {"mean": float(ft[baseline].sum() / ft[scheme].sum()), "max": float(ratio.max()),
            "min": float(ratio.min())}



def _summary_rows(model: str, gpu: str, mine: Sequence[dict[str, Any]],
                  bands: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Average and maximum speedup of every SE-CNN variant over every baseline across one
    model's streams on one GPU, each with a ``claim`` (the paper's average, or "faster"), its
    ``band`` over the timing model's uncertainty (``bands[variant][baseline]`` moved to the
    average) and a ``verdict`` by the band rule."""
    rows = []
    for v in SECNN:
        for b in SPEEDUP_BASELINES:
            vals = [c["speedups"][v][b] for c in mine if b in c["speedups"].get(v, {})]
            if not vals:
                continue
            row: dict[str, Any] = {
                "model": model, "gpu": gpu, "variant": v, "baseline": b,
                "average": float(np.mean([x["mean"] for x in vals])),
                "at_most": float(max(x["max"] for x in vals)),
                "cells": len(vals),
            }
            if b in PAPER:
                row["paper_average"], row["paper_at_most"] = PAPER[b]
                row["claim"] = f"paper average {PAPER[b][0]:g}x"

                def rule(r: float, paper: float = PAPER[b][0]) -> str:
                    return verdict(r, paper)
            else:
                row["claim"] = "SE-CNN is faster (above 1x)"
                rule = faster
            band = (bands or {}).get(v, {}).get(b)
            if band is not None and np.isfinite(row["average"]):
                band = band.scaled(row["average"])
                row["band"] = band.as_dict()
                row["verdict"] = band.judge(rule)
            else:
                row["verdict"] = rule(row["average"])
            rows.append(row)
    return rows

def speedup(ws: Workspace, models: Sequence[str], streams: Sequence[str], predictor: str,
            tau: float = 0.0, launch: str = COMPARISON_LAUNCH, *,
            inputs: dict[str, tuple[Any, dict[str, Any], Any]] | None = None,
            bands: bool = True) -> SpeedupResult:
    """Replayed times, the ladder, speedups and their verdict bands for every model, stream
    and GPU.

    ``inputs``: per model, :func:`replay_inputs` already computed (else computed here, on the
    first stream, when ``bands``); ``bands=False`` skips the bands (point verdicts).

    Returns:
      The :class:`SpeedupResult`: ``gpus``, ``variants``, ``launch``, ``fusion``,
      ``predictor``, ``tau``, ``cells``, ``summary``, ``mapping``. A cell (model, stream,
      gpu) holds ``frames``, ``total_us`` and ``frame_us`` per key of :func:`frame_times`,
      ``phase_us`` (per scheme under ``launch``), ``ladder`` (``mean_us``, ``step_ratio`` per
      step, the ``value_prediction_factor`` and ``oracle_factor``),
      ``speedups[variant][baseline]``
      under ``launch`` and ``by_launch[launch][variant][baseline]`` under every launch model.
      ``energy_uj[key]`` holds the mean microjoules per frame (``total`` and per component) of
      the schemes under ``launch`` and of the ladder's steps.
      ``summary`` rows (model, gpu, variant, baseline: over the model's streams) hold
      ``average``, ``at_most``, ``claim``, ``band`` (``default``, ``low``, ``high``, the
      corners) and ``verdict``; for the paper's three baselines ``paper_average`` and
      ``paper_at_most``. A cell's ``ladder`` holds ``value_prediction_band`` beside its factor.
      ``bands`` records ``frames``, ``probe_frames`` and the box's ``ranges``.
    """
    if ws.timer is None:
        raise ValueError("the speedup study needs a timer (timing replay)")
    gpus, variants = tuple(ws.timer.gpus), tuple(ws.timer.schemes)
    launches = tuple(dict.fromkeys(variant_parts(v)[1] for v in variants))
    cells = []
    band_by: dict[str, dict[str, Any]] = {}
    for m in models:
        if bands:
            if inputs is None or m not in inputs:
                inp = replay_inputs(ws, m, streams[0], predictor)
            else:
                inp = inputs[m]
            band_by[m] = ratio_bands(ws, inp, launch)
        for s in streams:
            base_cell = ws.run(m, s, "zero", 0.0, timed=True)
            sec_cell = ws.run(m, s, predictor, tau, timed=True)
            base, sec = base_cell.time_us, sec_cell.time_us
            # The change-based peers beside the ladder, from the accumulated predictor's events.
            peer_keys = [v for v in variants
                         if variant_parts(v)[0] in PEERS and variant_parts(v)[1] == launch]
            acc_cell = (ws.run(m, s, "accumulated", tau, timed=True) if peer_keys else None)
            for g, gpu in enumerate(gpus):
                ft = frame_times(base[:, g], sec[:, g], variants, launch)
                if acc_cell is not None and acc_cell.time_us is not None:
                    for v in peer_keys:
                        ft[v] = acc_cell.time_us[:, g, variants.index(v)].astype(np.float64)
                        ft[variant_parts(v)[0]] = ft[v]
                lad = ladder_times(ft)
                lmean = {k: float(v.mean()) for k, v in lad.items()}
                keys = list(lmean)
                ladder = {"peers_us": {p: float(ft[p].mean()) for p in PEERS if p in ft},
                          "mean_us": lmean,
                          "step_ratio": {k: (lmean[keys[i - 1]] / lmean[k] if i else 1.0)
                                         for i, k in enumerate(keys)}}
                z, p, o = (lmean.get(f"secnn_hw/persistent:{e}")
                           for e in ("zero", "predictor", "oracle"))
                if z and p and o:
                    ladder["value_prediction_factor"] = z / p
                    ladder["oracle_factor"] = z / o
                    vb = band_by.get(m, {}).get(gpu, {}).get(VALUE_PREDICTION)
                    if vb is not None:
                        ladder["value_prediction_band"] = vb.scaled(z / p).as_dict()
                by_launch: dict[str, Any] = {}
                for ln in launches:
                    fl = frame_times(base[:, g], sec[:, g], variants, ln)
                    by_launch[ln] = {v: {b: _ratios(fl, v, b) for b in SPEEDUP_BASELINES if b in fl}
                                     for v in SECNN if v in fl}
                sp = by_launch.get(launch, {})
                if "secnn_hw" in sp and "strongest" in sp["secnn_hw"]:
                    logging.info("speedup %s/%s on %s (%s): secnn_hw %.2fx over the strongest "
                                 "baseline; value prediction %.2fx", m, s, gpu, launch,
                                 sp["secnn_hw"]["strongest"]["mean"],
                                 ladder.get("value_prediction_factor", float("nan")))
                energy: dict[str, Any] = {}
                if base_cell.energy_uj is not None and sec_cell.energy_uj is not None:
                    from secnn_jax.timing.energy import COMPONENTS  # noqa: PLC0415

                    parts = [frame_times(base_cell.energy_uj[:, g, :, k],
                                         sec_cell.energy_uj[:, g, :, k], variants, launch)
                             for k in range(len(COMPONENTS))]
                    energy = {key: {"total": float(sum(p[key].mean() for p in parts)),
                                    **{c: float(parts[k][key].mean())
                                       for k, c in enumerate(COMPONENTS)}}
                              for key in parts[0] if "@" not in key or key in
                              {ladder_variant(x) for x in LADDER}}
                cells.append({
                    "model": m, "stream": s, "gpu": gpu, "frames": int(base.shape[0]),
                    "energy_uj": energy,
                    "total_us": {k: float(v.sum()) for k, v in ft.items()},
                    "frame_us": {k: v.tolist() for k, v in ft.items()},
                    "phase_us": _phases(base_cell.phase_us, sec_cell.phase_us, g, variants,
                                        launch),
                    "ladder": ladder, "speedups": sp, "by_launch": by_launch,
                })
    summary = []
    for m in dict.fromkeys(c["model"] for c in cells):  # every verdict per model
        for gpu in gpus:
            mine = [c for c in cells if c["gpu"] == gpu and c["model"] == m]
            summary += _summary_rows(m, gpu, mine, band_by.get(m, {}).get(gpu))
    from secnn_jax.timing.uncertainty import BOX  # noqa: PLC0415

    return from_plain(SpeedupResult, {
        "gpus": list(gpus), "variants": list(variants),
        "bands": {"frames": BAND_FRAMES, "probe_frames": PROBE_FRAMES,
                  "stream": streams[0] if streams else None,
                  "ranges": [r.as_dict() for r in BOX]} if bands else None,
        "launch": launch, "fusion": getattr(ws.timer, "fusion", None),
        "predictor": predictor, "tau": float(tau), "cells": cells, "summary": summary,
        "mapping": {"dense": "cuDNN/cuBLAS-style kernels (tiles, split-K, GEMV)",
                    "fast_conv": "per frame the faster of winograd and fft",
                    "zero_skip": "zero-skipping SIMT convolution",
                    "strongest": "per frame the fastest of dense, fast_conv, zero_skip"}})


def sensitivity(ws: Workspace, model: str, stream: str, predictor: str, *,
                frames: int = SENSITIVITY_FRAMES,
                gpu: str = "h100", launch: str = COMPARISON_LAUNCH,
                inputs: ReplayInputs | tuple[Any, dict[str, Any], Any] | None = None
                ) -> dict[str, Any]:
    """The headline ratio as each assumed physics parameter moves over its plausible range.

    Reruns the first ``frames`` frames of ``stream`` through the zero and the chosen predictor
    (:func:`secnn_jax.run_stream`), then replays ``secnn_hw`` (predictor's events) and the
    strongest baseline (zero's events) under ``launch`` with each :data:`secnn_jax.timing.
    PHYSICS` parameter at its low and high end, and with the other fusion policy. Also returns
    the events, layers and ops (for the schedule figure). ``inputs``: :func:`replay_inputs`
    already computed (then ``frames`` is theirs).
    """
    inputs = inputs if inputs is not None else replay_inputs(ws, model, stream, predictor,
                                                             frames)
    if isinstance(inputs, ReplayInputs):  # memoised in the cell cache, keyed on content
        key = inputs.key(study="sensitivity", gpu=gpu, launch=launch)
        res = ws.memo(model, stream, "sensitivity", key,
                      lambda: _sensitivity(ws, model, stream, gpu, launch, inputs.value))
    else:
        res = _sensitivity(ws, model, stream, gpu, launch, inputs)
    return {**res, "_replay_inputs": inputs}


def _sensitivity(ws: Workspace, model: str, stream: str, gpu: str, launch: str,
                 inputs: tuple[Any, dict[str, Any], Any]) -> dict[str, Any]:
    from secnn_jax import timing  # noqa: PLC0415

    layers, ev, ops = inputs
    n_frames = min(int(np.shape(v)[0]) for v in ev["zero"].values())
    base_cfg = ws.timer.config if ws.timer is not None else timing.SchemeConfig()
    fusion = ws.timer.fusion if ws.timer is not None else timing.DEFAULT_FUSION
    prec = ws.timer.precision if ws.timer is not None else "fp32"

    def ratio(cfg: Any, fu: str) -> dict[str, float]:
        kw = dict(gpus=(gpu,), precision=prec, launch=launch, fusion=fu, ops=ops, config=cfg)
        b = timing.replay(layers, ev["zero"], schemes=("dense", "zero_skip"), **kw)
        s = timing.replay(layers, ev["predictor"], schemes=("secnn_hw",), **kw)
        strongest = min(b.get(gpu, "dense").total_us.mean(),
                        b.get(gpu, "zero_skip").total_us.mean())
        low_energy = min(b.get(gpu, "dense").energy_uj.mean(),
                         b.get(gpu, "zero_skip").energy_uj.mean())
        return {"secnn_hw_us": float(s.get(gpu, "secnn_hw").total_us.mean()),
                "strongest_us": float(strongest),
                "ratio": float(strongest / s.get(gpu, "secnn_hw").total_us.mean()),
                "secnn_hw_uj": float(s.get(gpu, "secnn_hw").energy_uj.mean()),
                "baseline_uj": float(low_energy)}

    rows = [{"parameter": "reference", "value": "", **ratio(base_cfg, fusion)}]
    for p in timing.PHYSICS.values():
        for end in ("low", "high"):
            val = getattr(p, end)
            cfg = dataclasses.replace(base_cfg, **{p.field: val})
            rows.append({"parameter": p.field, "end": end, "value": val, "unit": p.unit,
                         **ratio(cfg, fusion)})
    for placement in ("off_chip", "on_chip"):
        cfg = dataclasses.replace(base_cfg, buffer_placement=placement)
        rows.append({"parameter": "buffer_placement", "end": placement, "value": placement,
                     **ratio(cfg, fusion)})
    other = "none" if fusion == "epilogue" else "epilogue"
    rows.append({"parameter": "fusion", "end": "other", "value": other,
                 **ratio(base_cfg, other)})
    return {"model": model, "stream": stream, "gpu": gpu, "launch": launch, "fusion": fusion,
            "frames": n_frames, "rows": rows}


def claims(result: SpeedupResult) -> list[dict[str, str]]:
    """The paper's speedup claims (secnn_hw over each baseline it names, per model and GPU,
    with secnn_sw beside), and per cell "value prediction is what makes SE-CNN fast"."""
    rows = []
    for r in result.summary:
        if r.variant != "secnn_hw" or r.baseline not in PAPER:
            continue
        rows.append(claim_row(
            f"SE-CNN faster than {r.baseline} on average (at most)",
            f"SE-CNN faster than {r.baseline} on average (at most) — {r.model}, {r.gpu}, both "
            f"{result.launch}, fusion {result.fusion}",
            f"{times(r.paper_average)} ({times(r.paper_at_most)})",
            f"{times(r.average)} ({times(r.at_most)}) secnn_hw" + band_text(r.band) + "; "
            + _sw(result, r.model, r.gpu, r.baseline),
            r.verdict, model=r.model, gpu=r.gpu))
    for c in result.cells:
        lad = c.ladder
        if lad.value_prediction_factor is None:
            continue
        vp, of = lad.value_prediction_factor, lad.oracle_factor
        vb = lad.value_prediction_band
        strongest = c.speedups.get("secnn_hw", {}).get("strongest", {}).get("mean")
        rows.append(claim_row(
            "value prediction is what makes SE-CNN fast",
            f"value prediction is what makes SE-CNN fast ({c.model}, {c.stream}, {c.gpu})",
            "the speedup comes from predicting inputs",
            f"value prediction buys {times(vp)}{band_text(vb)} (oracle ceiling {times(of)}) "
            f"over SE-CNN's sequencing without prediction; secnn_hw over the strongest "
            f"baseline {times(strongest)}",
            judge(vb, vp, value_prediction_verdict),
            model=c.model, stream=c.stream, gpu=c.gpu))
    return rows


def _sw(result: SpeedupResult, model: str, gpu: str, baseline: str) -> str:
    """secnn_sw's average (at most) over ``baseline`` for ``model`` on ``gpu``, or ``''``."""
    for r in result.summary:
        if (r.model, r.gpu, r.variant, r.baseline) == (model, gpu, "secnn_sw", baseline):
            return f"{times(r.average)} ({times(r.at_most)}) secnn_sw" + band_text(r.band)
    return ""


def ladder_section(result: SpeedupResult) -> list[str]:
    """The attribution ladder's section: each step's time per frame and its ratio to the step
    before, per cell, with the peers beside it."""
    out = ["## Attribution ladder: which mechanism buys how much", "",
           f"Whole-network replayed time per frame, every step under fusion "
           f"`{result.fusion}`; each step changes one mechanism, and its ratio to the step "
           "before is that mechanism's contribution. SE-CNN's own steps use the zero predictor "
           "(sequencing and hardware, no value prediction), the chosen predictor, and an oracle "
           "that predicts every input exactly (the ceiling of value prediction).", ""]
    header = ["model", "stream", "gpu"] + [s.key for s in LADDER] + [
        f"beside: {p}/{result.launch}" for p in PEERS]
    rows = []
    for c in result.cells:
        lad = c.ladder
        if not lad.mean_us:
            continue
        rows.append([c.model, c.stream, c.gpu] + [
            f"{us(lad.mean_us.get(s.key))} ({times(lad.step_ratio.get(s.key))})"
            for s in LADDER] + [us(lad.peers_us.get(p)) for p in PEERS])
    out += [table(header, rows), "",
            "Mechanisms: " + "; ".join(f"`{s.key}`: {s.mechanism}" for s in LADDER) + ".", "",
            "![ladder](figures/ladder.png)", ""]
    return out


def sensitivity_section(result: SensitivityResult) -> list[str]:
    """The sensitivity section: the headline ratio at each end of every assumed parameter's
    range, per model, with the parameters' sources and each model's schedule figure."""
    from secnn_jax.timing import PHYSICS  # noqa: PLC0415

    out = ["## Sensitivity to SE-CNN's assumed physics", "",
           "The headline ratio (strongest baseline / secnn_hw, same launch model and fusion) as "
           "each assumed parameter moves to the ends of its plausible range (sources below), "
           "on the first frames of the first stream.", ""]
    for c in result.cells:
        rows = [[r.parameter, r.end or "", f"{r.value}{r.unit or ''}", us(r.secnn_hw_us),
                 us(r.strongest_us), times(r.ratio)] for r in c.rows]
        out += [f"{c.model} / {c.stream} on {c.gpu} ({c.launch}, fusion {c.fusion}, "
                f"{c.frames} frames):", "",
                table(["parameter", "end", "value", "secnn_hw (us)", "strongest (us)", "ratio"],
                      rows), ""]
    out += ["Sources: " + " ".join(f"`{p.field}` ({p.default}{p.unit}, range {p.low}-{p.high}): "
                                   f"{p.source}." for p in PHYSICS.values()), ""]
    for c in result.cells:
        out += [f"![schedule of one frame, {c.model}](figures/schedule_{c.model}.png)",
                f"(Chrome/Perfetto trace: `figures/schedule_{c.model}.trace.json`)", ""]
    return out


#: The section's order of scheme keys (columns, phase rows, SE-CNN variants), from
#: :mod:`secnn_jax.timing.names`: the replayed baselines, SE-CNN, the derived baselines, the
#: peers (the order :func:`frame_times` builds them in for the default schemes); baselines
#: alone (a speedup's, the paper's mapping) follow :data:`~experiments.paper.SPEEDUP_BASELINES`.
_COLUMNS = (*BASELINES, *SECNN, *DERIVED_BASELINES, *PEERS)


def _in_order(keys: Iterable[str], order: Sequence[str]) -> list[str]:
    """``keys`` in ``order``'s order, those not in it after, sorted: the same list whatever
    order ``keys`` come in (a result read back from JSON has its mappings' keys sorted)."""
    rank = {k: i for i, k in enumerate(order)}
    return sorted(keys, key=lambda k: (rank.get(k, len(rank)), k))


def section(result: SpeedupResult) -> list[str]:
    """The speedup section: time per frame per scheme, where SE-CNN's time goes, speedups per
    cell and their averages with bands and verdicts."""
    out = ["## Speedup: replayed GPU time", "",
           f"Every scheme under the `{result.launch}` launch model and fusion "
           f"`{result.fusion}` (speedups under the other launch models: "
           "`results/speedup.json`, `by_launch`).",
           f"Predictor `{result.predictor}`, tau = {result.tau:g}. Baselines are replayed from "
           "the zero predictor's events (exact zero pattern), SE-CNN from its own. Mapping of "
           "the paper's three GPU schemes: " + "; ".join(
               f"`{k}` = {result.mapping[k]}"
               for k in _in_order(result.mapping, SPEEDUP_BASELINES))
           + ". *mean* = ratio of total times over the stream, *max* = best single frame.", ""]
    # The schemes under the comparison launch model (every variant: results/speedup.json), in
    # the canonical order: a result read back from its JSON (keys sorted) renders the same.
    schemes = (_in_order([k for k in result.cells[0].total_us if "@" not in k], _COLUMNS)
               if result.cells else [])
    rows = []
    for c in result.cells:
        rows.append([c.model, c.stream, c.gpu, c.frames,
                     *[us(c.total_us[s] / c.frames) for s in schemes]])
    out += ["Mean time per frame (us):", "",
            table(["model", "stream", "gpu", "frames", *schemes], rows), ""]
    rows = []
    for c in result.cells:
        for s in _in_order(c.phase_us, _COLUMNS):
            ph = c.phase_us[s]
            if s in ("secnn_sw", "secnn_hw"):
                rows.append([c.model, c.stream, c.gpu, s, us(ph.get("parallel")),
                             us(ph.get("serial")), us(ph.get("compare")), us(ph.get("amend")),
                             us(c.total_us[s] / c.frames)])
    if rows:
        out += ["Where SE-CNN's time goes (mean us per frame): *parallel* = the parallel phase's "
                "makespan, *serial* = the sum of the per-layer corrections (compare + amend); "
                "the frame time is the critical path through both.", "",
                table(["model", "stream", "gpu", "SE-CNN", "parallel", "serial", "compare",
                       "amend", "frame"], rows), ""]
    rows = []
    for c in result.cells:
        for v in _in_order(c.speedups, _COLUMNS):
            per = c.speedups[v]
            for b in _in_order(per, SPEEDUP_BASELINES):
                x = per[b]
                rows.append([c.model, c.stream, c.gpu, v, b, times(x["mean"]),
                             times(x["max"]), times(x["min"])])
    out += ["Speedups per cell:", "",
            table(["model", "stream", "gpu", "SE-CNN", "baseline", "mean", "max", "min"], rows),
            ""]
    rows = [[r.model, r.gpu, r.variant, r.baseline, times(r.average), band_range(r.band),
             times(r.at_most),
             f"{times(r.paper_average)} ({times(r.paper_at_most)})"
             if r.paper_average is not None else "", r.verdict] for r in result.summary]
    bd = result.bands or {}
    out += ["Averaged over each model's streams. *band*: the average at the SE-CNN-pessimistic "
            "and -optimistic corners of the timing model's uncertainty box (every fitted "
            "parameter over its leave-one-network-out refits, every assumed one over its "
            "sourced range: `secnn_jax/timing/uncertainty.py`), found on the first "
            f"{bd.get('frames', '?')} frames of `{bd.get('stream')}` (probes on "
            f"{bd.get('probe_frames', '?')}); a verdict is *holds* or *does not hold* only "
            "when both corners agree, else *inconclusive (low-high)*. Without a paper claim "
            "the verdict judges \"SE-CNN is faster\" (above 1x).", "",
            table(["model", "gpu", "SE-CNN", "baseline", "average", "band", "at most",
                   "paper", "verdict"], rows), "", "![speedups](figures/speedup.png)", ""]
    return out


#: Two replayed totals closer than this (microseconds) are the same time (a scheme that falls
#: back to another replays the very same kernels).
SAME_TIME_US = 1e-9


def notes(result: SpeedupResult) -> list[str]:
    """The report's "What this means" lines: where the fast-conv schemes fall back to dense,
    whether secnn_sw beats dense on a stock GPU, and frame 0's cold start."""
    if not result.cells:
        return []
    out = []
    same = all(abs(c.total_us.get("fast_conv", np.nan) - c.total_us["dense"]) < SAME_TIME_US
               for c in result.cells if "dense" in c.total_us)
    if same and any("fast_conv" in c.total_us for c in result.cells):
        out.append("No layer of these models is a dense (ungrouped) stride-1 3x3 or larger "
                   "conv, where Winograd/FFT apply, so `winograd`, `fft` and `fast_conv` "
                   "fall back to `dense`: the paper's second scheme gives the same numbers "
                   "as its first here.")
    sw = [r for r in result.summary if r.variant == "secnn_sw" and r.baseline == "dense"]
    if sw and all(r.average < FASTER_ABOVE for r in sw):
        out.append("On a stock GPU (`secnn_sw`) SE-CNN is slower than dense: one kernel "
                   "launch per layer for each phase costs more than the skipped work saves "
                   "on a network of small layers; the speedups need the SM extension "
                   "(`secnn_hw`), as in the paper.")
    out.append("Frame 0 of every stream is a cold start (no history: everything predicted "
               "0); it is included in every average.")
    return out


def parallel_share(result: SpeedupResult | None, scheme: str, gpu: int = 0) -> float | None:
    """Mean over the cells on the ``gpu``-th GPU of (parallel-phase makespan / frame time)
    of ``scheme``; ``None`` without such cells."""
    if result is None or gpu >= len(result.gpus):
        return None
    shares = [c.phase_us[scheme]["parallel"] / (c.total_us[scheme] / c.frames)
              for c in result.cells if c.gpu == result.gpus[gpu]
              and "parallel" in c.phase_us.get(scheme, {})]
    return float(np.mean(shares)) if shares else None


def main(argv: Sequence[str]) -> None:
    """Runs the speedup study, prints its claims and tables, and writes results/speedup.json,
    its figures and report.md (its claims and sections)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import sys  # noqa: PLC0415

    from experiments import cli, figures  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, studies=("speedup",))
    res = speedup(st.ws, list(st.ws.models), list(st.ws.streams),
                  predictor_spec("secnn", cfg.silence, cfg.decay), launch=cfg.launch)
    st.run.write_json("results/speedup.json", res.to_json())
    figures.speedup_bars(res, st.run.path("figures", "speedup.png"))
    figures.ladder_bars(res, st.run.path("figures", "ladder.png"))
    md, printed = study_output(cfg.to_dict(), claims(res), ladder_section(res) + section(res),
                               "experiments.speedup")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/speedup", _FIELDS["speedup"])
