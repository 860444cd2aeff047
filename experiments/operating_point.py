"""Operating-point study: every method tuned to the same accuracy floor, then timed.

The paper claims its speedups "while maintaining over 95% of classification accuracy", that is
at a tolerance; the speedup study judges SE-CNN at tau = 0 and its baselines exact. Here every
method gets its own threshold from the *same* tuner (:func:`experiments.accuracy.tune`, one
:class:`experiments.tuning.TuneMethod`, the same floor on the model's declared metric,
:mod:`experiments.metrics`, on the same calibration frames of the tuning stream), and is judged
on held-out frames: the tuning stream's frames after the calibration frames and every frame of
the other streams.

Methods (:data:`METHODS`; each row names its scheme, predictor and hardware):

* ``dense`` (exact) and ``strongest``: per frame the fastest exact baseline of
  :data:`secnn_jax.timing.names.BASELINES` (dense, winograd, fft, zero_skip at tau = 0), the
  reference every speedup here is over;
* ``zero_skip`` at its own tuned tau: a zero-skipping kernel that also skips ``|x| <= tau``.
  Its numerics are exactly those of SE-CNN with the zero predictor at that tau (a prediction of
  0 amends every ``|x| > tau`` and leaves the rest 0; ``tests/test_operating_point.py`` checks
  the outputs are identical), so the zero predictor's cell at a tau gives both methods'
  accuracy and both timings (one cell, no recomputation);
* SE-CNN with the zero predictor (``secnn_sw(zero)``: stock GPU, ``secnn_hw(zero)``: SM
  extension), with the paper's predictor (``secnn_sw``, ``secnn_hw``) and with ``accumulated``
  (DeltaCNN's propagation rule), each at its own tuned tau;
* ``deltacnn`` and ``cbinfer`` (stock GPU), replayed from the accumulated predictor's events as
  in :mod:`experiments.peers`.

Every method is tuned to maximise its own replayed speedup on the timer's first GPU (the
tuner's objective) subject to the floor; the thresholds are then timed on every GPU. Each row
holds the tuned tau (per layer: its range), the time per frame over the held-out frames (us),
the speedup over the strongest exact baseline on the same frames (its time over the row's) and
the held-out score against the floor (``meets_floor``; a row that misses it says so).

**Claims at the operating point and at tau = 0.** The value-prediction factor (SE-CNN with the
paper's predictor over SE-CNN with the zero predictor, same hardware) and the paper's speedup
claims (:data:`experiments.paper.PAPER`: ``secnn_hw`` over dense, fast_conv, zero_skip) are
judged twice: with every method at its tuned tau (zero_skip included) and with every method
exact (tau = 0), both on the held-out frames, averaged over the streams per model and GPU. Each
gets the verdict band of the timing model's uncertainty
(:func:`secnn_jax.timing.uncertainty.bands` on the first ``BAND_FRAMES`` frames of the tuning
stream, events at the same thresholds, moved to the study's ratio), by the speedup study's rule:
a verdict is ``holds`` / ``partly`` / ``does not hold`` only when the default and both corners
agree, else ``inconclusive (low-high)``.

**Transfer clips.** Each method's tuned thresholds also run over the accuracy study's transfer
clips (``config.transfer_streams``, ``config.transfer_frames`` frames each, every frame held
out; :func:`transfer_workspace`): per clip the same rows (time, speedup over the clip's
strongest exact baseline, score against the floor), and per model and method whether it keeps
the floor on every clip off its tuning clip (``transfer.kept``, one claim row per model).

Every cell goes through :meth:`experiments.cells.Workspace.run` (the content-keyed cell cache),
so what the accuracy, speedup and peers studies computed is reused: on the transfer clips the
accuracy study's SE-CNN cells at the same thresholds (its ``mean`` tuning of ``secnn_hw`` is
this study's ``secnn_hw``) and the exact baselines are read, not recomputed.

Library: :func:`operating_point` (its typed result,
:class:`~experiments.operating_point_report.OperatingPointResult`, and the result's rows live in
:mod:`experiments.operating_point_report` with :func:`section` and :func:`claims`, re-exported
here), :func:`run_from_config`.
Command line (prints the claims and the table, writes ``results/operating_point.json`` and
``report.md``)::

    python -m experiments.operating_point --out_dir=runs/operating_point
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import app, logging

from experiments import metrics as metrics_lib
from experiments.accuracy import CLAIM_AGREEMENT, tune
from experiments.cells import Workspace
from experiments.errors import ConfigError
from experiments.operating_point_report import (
    AT_EXACT,
    AT_OP,
    ClaimAt,
    Kept,
    MethodRow,
    OperatingPointResult,
    Transfer,
    TunedMethod,
    claims,
    section,
)
from experiments.operating_point_report import table as _table
from experiments.paper import COMPARISON_LAUNCH, PAPER, value_prediction_verdict
from experiments.speedup import (
    BAND_FRAMES,
    PROBE_FRAMES,
    SENSITIVITY_FRAMES,
    frame_times,
    stream_events,
)
from experiments.speedup import verdict as paper_verdict
from experiments.timer import variant
from experiments.tuning import TuneMethod, tune_method

__all__ = ["HARDWARE", "METHODS", "ClaimAt", "Kept", "Method", "MethodRow",
           "OperatingPointResult", "Transfer", "TunedMethod", "check_tune_stream", "claims",
           "main", "methods_from_config", "operating_point", "run_from_config", "section",
           "vp_verdict"]

#: Hardware a scheme runs on.
HARDWARE: dict[str, str] = {"secnn_hw": "SM extension"}
STOCK = "stock"


@dataclasses.dataclass(frozen=True)
class Method:
    """One tuned method of the study.

    Attributes:
      name: its row name.
      scheme: the replayed scheme (:data:`secnn_jax.timing.names.SCHEMES`).
      predictor: ``"zero"``, ``"secnn"`` (the paper's, with the run's parameters) or
        ``"accumulated"``.
    """

    name: str
    scheme: str
    predictor: str

    @property
    def hardware(self) -> str:
        """``"SM extension"`` for ``secnn_hw``, else ``"stock"``."""
        return HARDWARE.get(self.scheme, STOCK)


#: The tuned methods, in table order.
METHODS: tuple[Method, ...] = (
    Method("zero_skip", "zero_skip", "zero"),
    Method("secnn_sw(zero)", "secnn_sw", "zero"),
    Method("secnn_hw(zero)", "secnn_hw", "zero"),
    Method("secnn_sw", "secnn_sw", "secnn"),
    Method("secnn_hw", "secnn_hw", "secnn"),
    Method("secnn_sw(accumulated)", "secnn_sw", "accumulated"),
    Method("secnn_hw(accumulated)", "secnn_hw", "accumulated"),
    Method("deltacnn", "deltacnn", "accumulated"),
    Method("cbinfer", "cbinfer", "accumulated"),
)
#: The exact baselines the strongest is per frame the fastest of (at tau = 0).
EXACT_BASELINES: tuple[str, ...] = ("dense", "winograd", "fft", "zero_skip")
#: The paper's baselines and the schemes each is per frame the fastest of.
PAPER_BASELINES: dict[str, tuple[str, ...]] = {
    "dense": ("dense",), "fast_conv": ("winograd", "fft"), "zero_skip": ("zero_skip",)}


def vp_verdict(factor: float) -> str:
    """The verdict on "value prediction is what makes SE-CNN fast": the report's rule
    (:func:`experiments.paper.value_prediction_verdict`), ``not measured`` without a factor."""
    if not np.isfinite(factor):
        return "not measured"
    return value_prediction_verdict(factor)


def _spec(kind: str, secnn_spec: str) -> str:
    return secnn_spec if kind == "secnn" else kind


def _zero_tau(tau: Mapping[str, float]) -> dict[str, float]:
    return {k: 0.0 for k in tau}


def _tau_range(tau: Mapping[str, float]) -> tuple[float, float]:
    vals = [float(v) for v in tau.values()] or [0.0]
    return min(vals), max(vals)


def _column(ws: Workspace, cell: Any, gpu: int, scheme: str, launch: str) -> np.ndarray:
    """The cell's per-frame times of ``scheme`` under ``launch`` on the ``gpu``-th GPU."""
    return np.asarray(cell.time_us[:, gpu, ws.timer.schemes.index(variant(scheme, launch))],
                      np.float64)


def _exact_times(ws: Workspace, model: str, stream: str, gpu: int,
                 launch: str) -> dict[str, np.ndarray]:
    """Per-frame times of the exact baselines (zero predictor, tau = 0) with ``fast_conv`` and
    ``strongest`` (:func:`experiments.speedup.frame_times`)."""
    base = ws.run(model, stream, "zero", 0.0, timed=True).time_us[:, gpu]
    return frame_times(base, base, ws.timer.schemes, launch)


def _score(metric: str, logits: np.ndarray, ref: np.ndarray) -> float:
    return float(metrics_lib.evaluate(metric, logits, ref)["score"])


def _events(ws: Workspace, model: str, stream: str, spec: str, tau: Mapping[str, float] | float,
            memo: dict[tuple[Any, ...], Any]) -> Any:
    """The events of the first ``BAND_FRAMES`` frames of ``stream`` through ``spec`` at ``tau``
    (:func:`experiments.speedup.stream_events` on as many frames as the speedup study's: at
    tau = 0 they are its events, read from the cell cache, not rerun)."""
    from experiments.cellcache import tau_key  # noqa: PLC0415

    layers = ws.layers(model, stream)
    key = (model, stream, spec, tau_key(layers, tau))
    if key not in memo:
        e = stream_events(ws, model, stream, spec, tau, SENSITIVITY_FRAMES, store=False)
        memo[key] = e.map(lambda v: np.asarray(v)[:BAND_FRAMES])
    return key, memo[key]


def _bands(ws: Workspace, model: str, stream: str, specs: Sequence[dict[str, Any]],
           launch: str, memo: dict[tuple[Any, ...], Any]) -> dict[str, dict[str, Any]]:
    """``{gpu: {spec key: Band}}`` of every ratio spec (``key``, ``scheme``, ``sec`` =
    (predictor spec, tau), ``baselines``, ``base`` = (predictor spec, tau)): one
    :func:`secnn_jax.timing.uncertainty.bands` call per GPU and distinct pair of events,
    memoised in the cell cache (:meth:`experiments.cells.Workspace.memo`) by content: the
    specs with their taus, the launch model, the timer, the frames."""
    from experiments.cellcache import tau_key  # noqa: PLC0415
    from secnn_jax.timing import uncertainty  # noqa: PLC0415

    layers = ws.layers(model, stream)
    key = {"study": "operating_point_bands", "launch": launch,
           "timer": getattr(ws.timer, "key", None), "band_frames": BAND_FRAMES,
           "probe_frames": PROBE_FRAMES, "frames": SENSITIVITY_FRAMES,
           "specs": [[list(sp["key"]), sp["scheme"], list(sp["baselines"]),
                      [sp["sec"][0], tau_key(layers, sp["sec"][1])],
                      [sp["base"][0], tau_key(layers, sp["base"][1])]] for sp in specs]}
    rows = ws.memo(model, stream, "operating_point_bands", key, lambda: [
        [gpu, list(k), dataclasses.asdict(b)]
        for gpu, per in _compute_bands(ws, model, stream, specs, launch, memo).items()
        for k, b in per.items()])
    out: dict[str, dict[str, Any]] = {gpu: {} for gpu in ws.timer.gpus}
    for gpu, k, b in rows:
        out[gpu][tuple(k)] = uncertainty.Band(**b)
    return out


def _compute_bands(ws: Workspace, model: str, stream: str, specs: Sequence[dict[str, Any]],
                   launch: str, memo: dict[tuple[Any, ...], Any]) -> dict[str, dict[str, Any]]:
    from secnn_jax.timing import uncertainty  # noqa: PLC0415

    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    events: dict[Any, Any] = {}
    for sp in specs:
        ks, es = _events(ws, model, stream, *sp["sec"], memo)
        kb, eb = _events(ws, model, stream, *sp["base"], memo)
        events[ks], events[kb] = es, eb
        groups.setdefault((ks, kb), []).append(sp)
    layers, ops = ws.layers(model, stream), ws.ops(model, stream)
    n = min(int(np.shape(v)[0]) for v in next(iter(events.values())).values())
    out: dict[str, dict[str, Any]] = {}
    for gpu in ws.timer.gpus:
        per: dict[str, Any] = {}
        for (ks, kb), mine in groups.items():
            ratios = {sp["key"]: uncertainty.Ratio(sp["scheme"], sp["baselines"]) for sp in mine}
            got = uncertainty.bands(layers, events[ks], events[kb],
                                    tuple(dict.fromkeys(ratios.values())), ops=ops, gpu=gpu,
                                    precision=ws.timer.precision, launch=launch,
                                    fusion=ws.timer.fusion, params=ws.timer.params,
                                    config=ws.timer.config, probe_frames=min(PROBE_FRAMES, n))
            per.update({k: got[r.name] for k, r in ratios.items()})
        out[gpu] = per
    return out


@dataclasses.dataclass(frozen=True)
class _StreamRows:
    """One stream's rows (every GPU) with what the claims read: per GPU the exact baselines'
    per-frame times (all frames), each method's held-out per-frame times and the strongest
    baseline's wins."""

    rows: list[MethodRow]
    exact: dict[str, dict[str, np.ndarray]]
    times: dict[str, dict[str, np.ndarray]]
    wins: dict[str, dict[str, int]]


def _stream_rows(ws: Workspace, model: str, s: str, held: slice, used: Sequence[Method],
                 by: Mapping[str, Mapping[str, Any]], metric: str, floor: float,
                 launch: str) -> _StreamRows | None:
    """The rows of ``model`` on stream ``s`` of ``ws`` over its ``held`` frames: the exact
    ``dense`` and ``strongest`` first, then every method at its tuned tau (``by``), per GPU;
    ``None`` (with a warning) when no frame is held out."""
    ref = ws.reference(model, s).logits
    if ref[held].shape[0] == 0:
        logging.warning("operating point: %s/%s has no held-out frames", model, s)
        return None
    cells = {m.name: ws.run(model, s, by[m.name]["predictor"], by[m.name]["tau"], timed=True)
             for m in used}
    exact_score = _score(metric, ref[held], ref[held])
    out = _StreamRows([], {}, {}, {})
    for g, gpu in enumerate(ws.timer.gpus):
        ex = _exact_times(ws, model, s, g, launch)
        strong = ex["strongest"][held]
        ref_us = float(strong.mean())
        # Per frame the first baseline (in EXACT_BASELINES order) at the minimum: a fast_conv
        # scheme that falls back to dense ties with it and is not named.
        winners = [b for b in EXACT_BASELINES if b in ex]
        first = np.argmax(np.stack([ex[b][held] == strong for b in winners]), 0)
        wins = {b: int(np.sum(first == i)) for i, b in enumerate(winners)}
        common = {"model": model, "stream": s, "gpu": gpu, "metric": metric,
                  "floor": float(floor), "heldout_frames": int(strong.shape[0])}
        for name in ("dense", "strongest"):
            t_us = float(ex[name][held].mean())
            out.rows.append(MethodRow(**common, method=name, exact=True,
                                      scheme=name if name == "dense" else
                                      "+".join(b for b in winners if wins[b]),
                                      predictor=None, hardware=STOCK, tau_min=0.0,
                                      tau_max=0.0, time_us=t_us, speedup=ref_us / t_us,
                                      score=exact_score, meets_floor=exact_score >= floor))
        times: dict[str, np.ndarray] = {}
        for m in used:
            cell = cells[m.name]
            col = _column(ws, cell, g, m.scheme, launch)[held]
            times[m.name] = col
            t_us = float(col.mean())
            score = _score(metric, cell.logits[held], ref[held])
            t = by[m.name]
            lo, hi = _tau_range(t["tau"])
            out.rows.append(MethodRow(**common, method=m.name, exact=False,
                                      scheme=m.scheme, predictor=t["predictor"],
                                      hardware=m.hardware, tau_min=lo, tau_max=hi,
                                      time_us=t_us, speedup=ref_us / t_us, score=score,
                                      meets_floor=bool(score >= floor)))
        out.exact[gpu], out.times[gpu], out.wins[gpu] = ex, times, wins
    return out


def operating_point(ws: Workspace, models: Sequence[str], streams: Sequence[str],
                    secnn_spec: str, *, tune_stream: str, calibration_frames: int = 16,
                    floor: float = CLAIM_AGREEMENT, evals: int = 4,
                    method: str | TuneMethod = "mean", baseline: str = "dense",
                    launch: str = COMPARISON_LAUNCH,
                    methods: Sequence[Method] = METHODS, bands: bool = True,
                    transfer: Workspace | None = None) -> OperatingPointResult:
    """Every method tuned to ``floor`` by the same tuner, timed and judged on held-out frames
    and on the transfer clips.

    Args:
      secnn_spec: the paper's predictor (``secnn(silence=..,decay=..)``).
      tune_stream: the stream the tuner calibrates on (one of ``streams``).
      calibration_frames, floor, evals, method, baseline: the tuner's
        (:func:`experiments.accuracy.tune`; its objective: each method's own scheme over
        ``baseline`` on the timer's first GPU).
      launch: the launch model every time is read under.
      methods: the tuned methods (:data:`METHODS`; a method whose scheme the timer does not
        replay is left out, with a warning).
      bands: compute the verdict bands (else point verdicts).
      transfer: a workspace over the transfer clips (sharing ``ws``'s models, timer and cell
        cache: :meth:`experiments.cells.Workspace.with_streams`); every one of its streams but
        ``tune_stream`` is held out whole and judged like the held-out streams. ``None``: no
        transfer clips.

    Returns:
      The :class:`~experiments.operating_point_report.OperatingPointResult` (its ``to_json``:
      ``{"study": "operating_point", "version", "floor", "method", "tune_stream", "launch",
      "gpus", "objective_gpu", "secnn", "metrics", "tuned", "rows", "factors", "claims_at",
      "bands", "transfer"}``): ``tuned`` one per model and method (``tau``, ``alpha``,
      calibration ``score``, ``calibration_frames``); ``rows`` per model, stream, GPU and
      method (the exact ``dense`` and ``strongest`` first) with ``time_us`` (mean per held-out
      frame), ``speedup`` (the strongest exact baseline's time over the row's), ``score``
      (held-out, the declared metric's primary score), ``meets_floor``,
      ``tau_min``/``tau_max``, ``heldout_frames``; ``factors`` per model, stream, GPU and
      hardware the value-prediction factor at the operating point and at tau = 0;
      ``claims_at`` per model and GPU the value-prediction factor and the paper's claims
      averaged over the streams at both points, each with ``band`` and ``verdict``;
      ``transfer`` (``None`` without transfer clips): ``streams``, ``rows`` (as ``rows``, per
      model, clip, GPU and method, every frame of the clip held out) and ``kept`` per model
      and method (``floor_met``: the held-out score at or above the floor on every clip;
      ``worst_stream``/``worst_score``: the clip where it is lowest).
    """
    if ws.timer is None:
        raise ConfigError("the operating-point study needs a timer (timing replay)")
    if tune_stream not in streams:
        raise ConfigError(f"tune_stream {tune_stream!r} is not among the streams "
                          f"{list(streams)}")
    meth = tune_method(method)
    have = set(ws.timer.base_schemes)
    used = [m for m in methods if m.scheme in have]
    for m in methods:
        if m.scheme not in have:
            logging.warning("operating point: %s left out: the timer does not replay %s",
                            m.name, m.scheme)
    gpus = tuple(ws.timer.gpus)
    t0, c0 = time.perf_counter(), time.process_time()
    tuned: list[TunedMethod] = []
    rows: list[MethodRow] = []
    factors: list[dict[str, Any]] = []
    claims_at: list[ClaimAt] = []
    transfer_rows: list[MethodRow] = []
    band_out: dict[str, Any] = {}
    for model in models:
        metric = metrics_lib.model_metric(model)
        by: dict[str, dict[str, Any]] = {}
        for m in used:
            t = tune(ws, model, tune_stream, _spec(m.predictor, secnn_spec),
                     calibration_frames=calibration_frames, floor=floor, evals=evals, gpu=0,
                     scheme=m.scheme, baseline=baseline, method=meth, metric=metric)
            by[m.name] = t
            # Its cell on the whole tuning stream now, while the tuner's calibration run of it
            # is fresh: the workspace resumes it after the calibration chunks (in memory).
            ws.run(model, tune_stream, t["predictor"], t["tau"], timed=True)
            lo, hi = _tau_range(t["tau"])
            tuned.append(TunedMethod(
                model=model, method=m.name, scheme=m.scheme, predictor=t["predictor"],
                hardware=m.hardware, tau=t["tau"], alpha=t["alpha"], tau_min=lo, tau_max=hi,
                score=t["agreement"], criterion=t["criterion"],
                calibration_frames=t["calibration_frames"], calibration_speedup=t["speedup"]))
        calib = int(next(iter(by.values()))["calibration_frames"]) if by else 0
        per_stream: dict[tuple[str, str], dict[str, Any]] = {}
        for s in streams:
            held = slice(calib, None) if s == tune_stream else slice(None)
            got = _stream_rows(ws, model, s, held, used, by, metric, floor, launch)
            if got is None:
                continue
            rows += got.rows
            exact_cell = ws.run(model, s, "zero", 0.0, timed=True)
            exact_sec = {k: ws.run(model, s, _spec(k, secnn_spec), 0.0, timed=True)
                         for k in ("secnn",)}
            for g, gpu in enumerate(gpus):
                ex, times = got.exact[gpu], got.times[gpu]
                # tau = 0: the zero predictor's cell times every exact scheme and SE-CNN without
                # prediction; the paper predictor's cell SE-CNN with it.
                exact = {f"{sc}(zero)": _column(ws, exact_cell, g, sc, launch)[held]
                         for sc in ("secnn_sw", "secnn_hw") if sc in have}
                exact |= {sc: _column(ws, exact_sec["secnn"], g, sc, launch)[held]
                          for sc in ("secnn_sw", "secnn_hw") if sc in have}
                for sc in ("secnn_sw", "secnn_hw"):
                    if sc in times and f"{sc}(zero)" in times:
                        factors.append({
                            "model": model, "stream": s, "gpu": gpu, "scheme": sc,
                            "hardware": HARDWARE.get(sc, STOCK),
                            AT_OP: float(times[f"{sc}(zero)"].sum() / times[sc].sum()),
                            AT_EXACT: float(exact[f"{sc}(zero)"].sum() / exact[sc].sum())})
                paper = {}
                if "secnn_hw" in times:
                    for b, schemes in PAPER_BASELINES.items():
                        if not all(x in ex for x in schemes):
                            continue
                        ex_b = np.minimum.reduce([ex[x][held] for x in schemes])
                        paper[b] = {AT_EXACT: float(ex_b.sum() / exact["secnn_hw"].sum())}
                        # At the operating point zero_skip runs at its own tuned tau (no row
                        # when it is not among the methods); dense and fast_conv are exact.
                        op_b = times.get("zero_skip") if b == "zero_skip" else ex_b
                        if op_b is not None:
                            paper[b][AT_OP] = float(op_b.sum() / times["secnn_hw"].sum())
                per_stream[(s, gpu)] = {"paper": paper, "wins": got.wins[gpu]}
        if transfer is not None:
            for s in _clips(transfer, tune_stream):
                got = _stream_rows(transfer, model, s, slice(None), used, by, metric, floor,
                                   launch)
                if got is not None:
                    transfer_rows += got.rows
        # Per model and GPU: averages over the streams, with their bands.
        band_by: dict[str, dict[str, Any]] = {}
        if bands and by:
            band_by = _bands(ws, model, tune_stream, _band_specs(by, secnn_spec, have),
                             launch, {})
            band_out[model] = {gpu: {k: b.as_dict() for k, b in per.items()}
                               for gpu, per in band_by.items()}
        for gpu in gpus:
            mine = [f for f in factors if f["model"] == model and f["gpu"] == gpu]
            for sc in ("secnn_sw", "secnn_hw"):
                fs = [f for f in mine if f["scheme"] == sc]
                for at in (AT_OP, AT_EXACT):
                    if fs:
                        claims_at.append(_judged(
                            {"model": model, "gpu": gpu, "kind": "value_prediction",
                             "scheme": sc, "hardware": HARDWARE.get(sc, STOCK), "at": at},
                            float(np.mean([f[at] for f in fs])), len(fs),
                            band_by.get(gpu, {}).get(("vp", sc, at)), vp_verdict))
            for b in PAPER_BASELINES:
                for at in (AT_OP, AT_EXACT):
                    vals = [v["paper"][b] for (s, g), v in per_stream.items()
                            if g == gpu and at in v["paper"].get(b, {})]
                    if vals:
                        avg, most = PAPER[b]
                        claims_at.append(_judged(
                            {"model": model, "gpu": gpu, "kind": "paper", "scheme": "secnn_hw",
                             "baseline": b, "at": at, "paper_average": avg,
                             "paper_at_most": most},
                            float(np.mean([v[at] for v in vals])), len(vals),
                            band_by.get(gpu, {}).get(("paper", b, at)),
                            lambda r, p=avg: paper_verdict(r, p)))
    logging.info("operating point: %d methods on %d models in %.1f s (%.1f s CPU)",
                 len(used), len(models), time.perf_counter() - t0, time.process_time() - c0)
    return OperatingPointResult(
        floor=float(floor), method=meth.spec, tune_stream=tune_stream, launch=launch,
        gpus=gpus, objective_gpu=gpus[0], secnn=secnn_spec,
        metrics={m: metrics_lib.model_metric(m) for m in models},
        tuned=tuple(tuned), rows=tuple(rows), factors=tuple(factors),
        claims_at=tuple(claims_at),
        bands={"frames": BAND_FRAMES, "probe_frames": PROBE_FRAMES, "stream": tune_stream,
               "by_model": _json_keys(band_out)} if bands else None,
        transfer=None if transfer is None else Transfer(
            streams=tuple(_clips(transfer, tune_stream)), rows=tuple(transfer_rows),
            kept=_kept(transfer_rows, gpus[0] if gpus else None)))


def _clips(transfer: Workspace, tune_stream: str) -> list[str]:
    """The transfer clips: every stream of the transfer workspace but the tuning stream (its
    held-out frames are judged with the other streams)."""
    return [s for s in transfer.streams if s != tune_stream]


def _kept(rows: Sequence[MethodRow], gpu: str | None) -> tuple[Kept, ...]:
    """Per model and tuned method: does it keep the floor on every transfer clip (the scores
    do not depend on the GPU: read on the first), and where is it lowest."""
    out = []
    mine = [r for r in rows if r.gpu == gpu and not r.exact]
    for key in dict.fromkeys((r.model, r.method) for r in mine):
        per = [r for r in mine if (r.model, r.method) == key]
        worst = min(per, key=lambda r: r.score)
        out.append(Kept(model=key[0], method=key[1], floor=worst.floor, streams=len(per),
                        floor_met=all(r.meets_floor for r in per),
                        worst_stream=worst.stream, worst_score=worst.score))
    return tuple(out)


def _json_keys(band_out: Mapping[str, Any]) -> dict[str, Any]:
    """Band dicts with their tuple keys as ``"kind:name:at"`` strings (JSON)."""
    return {m: {g: {":".join(k): v for k, v in per.items()} for g, per in by_gpu.items()}
            for m, by_gpu in band_out.items()}


def _band_specs(by: Mapping[str, Mapping[str, Any]], secnn_spec: str,
                have: set[str]) -> list[dict[str, Any]]:
    """The ratios judged with a band, each with the events of both sides (predictor spec and
    tau): at the operating point every method at its tuned tau, at tau = 0 every method
    exact."""
    out: list[dict[str, Any]] = []

    def tau(name: str, at: str) -> Any:
        t = by[name]["tau"]
        return t if at == AT_OP else _zero_tau(t)

    for at in (AT_OP, AT_EXACT):
        for sc in ("secnn_sw", "secnn_hw"):
            if sc in by and f"{sc}(zero)" in by:
                out.append({"key": ("vp", sc, at), "scheme": sc, "baselines": (sc,),
                            "sec": (secnn_spec, tau(sc, at)),
                            "base": ("zero", tau(f"{sc}(zero)", at))})
        if "secnn_hw" not in by:
            continue
        # The frame-independent baselines read no events: they share zero_skip's.
        base = (tau("zero_skip", at) if "zero_skip" in by
                else _zero_tau(by["secnn_hw"]["tau"]))
        for b, schemes in PAPER_BASELINES.items():
            if not set(schemes) <= have or (b == "zero_skip" and at == AT_OP
                                             and "zero_skip" not in by):
                continue
            out.append({"key": ("paper", b, at), "scheme": "secnn_hw", "baselines": schemes,
                        "sec": (secnn_spec, tau("secnn_hw", at)), "base": ("zero", base)})
    return out


def _judged(row: Mapping[str, Any], value: float, cells: int, band: Any,
            rule: Any) -> ClaimAt:
    """The claim of ``row`` (its :class:`ClaimAt` fields but the measured ones) with
    ``value``, ``cells``, the band moved to ``value`` and the verdict."""
    if band is not None and np.isfinite(value):
        b = band.scaled(value)
        return ClaimAt(**row, value=value, cells=cells, band=b.as_dict(), verdict=b.judge(rule))
    return ClaimAt(**row, value=value, cells=cells, verdict=rule(value))


# ---------------------------------------------------------------------------------------------
# Command line


def run_from_config(ws: Workspace, cfg: Any) -> OperatingPointResult:
    """:func:`operating_point` with every argument taken from a config
    (:mod:`experiments.config`): ``tune_stream``, ``calibration_frames``,
    ``agreement_floor``, ``tune_evals``, ``tune_baseline``, ``op_tune_method``,
    ``op_methods``, ``launch``, ``silence``/``decay``, and the transfer clips
    (``transfer_streams``, ``transfer_frames``: :func:`transfer_workspace`). ``cfg``:
    :class:`experiments.config.Settings`, or a ConfigDict parsed and checked by
    :func:`experiments.config.settings`.

    Raises:
      ConfigError: ``cfg.tune_stream`` is empty or not one of the workspace's streams.
    """
    from experiments import config as config_lib  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = config_lib.settings(cfg)
    tune_stream = cfg.tune_stream
    check_tune_stream(tune_stream, ws.streams)
    return operating_point(
        ws, list(ws.models), list(ws.streams), predictor_spec("secnn", cfg.silence, cfg.decay),
        tune_stream=tune_stream, calibration_frames=cfg.calibration_frames,
        floor=cfg.agreement_floor, evals=cfg.tune_evals,
        method=cfg.op_tune_method, baseline=cfg.tune_baseline,
        launch=cfg.launch, methods=methods_from_config(cfg.op_methods),
        transfer=transfer_workspace(ws, cfg, tune_stream))


def transfer_workspace(ws: Workspace, cfg: Any, tune_stream: str) -> Workspace | None:
    """The accuracy study's transfer workspace (:meth:`experiments.cells.Workspace.with_streams`
    over :func:`experiments.accuracy.transfer_streams_from_config`: the tuning stream and
    ``cfg.transfer_streams``, ``cfg.transfer_frames`` frames each), so the frames and the cells
    both studies run (SE-CNN at the same thresholds, the exact baselines) are shared; ``None``
    when there is no clip but the tuning stream."""
    from experiments import config as config_lib  # noqa: PLC0415
    from experiments.accuracy import transfer_streams_from_config  # noqa: PLC0415

    cfg = config_lib.settings(cfg)
    streams = transfer_streams_from_config(cfg, tune_stream, ws.streams)
    if not [s for s in streams if s != tune_stream]:
        return None
    return ws.with_streams(streams, cfg.transfer_frames_used)


def methods_from_config(wanted: Sequence[str]) -> tuple[Method, ...]:
    """The :data:`METHODS` named by ``config.op_methods`` (its parsed names,
    :attr:`experiments.config.Settings.op_methods`; ``all``: every one), in table order
    (:class:`ConfigError` naming an unknown one and the known ones)."""
    wanted, value = tuple(wanted), ",".join(wanted)
    if wanted == ("all",):
        return METHODS
    known = {m.name: m for m in METHODS}
    bad = [w for w in wanted if w not in known]
    if bad:
        raise ConfigError(f"config.op_methods={value!r}: unknown method {bad[0]!r}; known: "
                          f"all, {', '.join(known)}")
    return tuple(m for m in METHODS if m.name in wanted)


def check_tune_stream(tune_stream: str, streams: Sequence[str] | Mapping[str, Any]) -> None:
    """Refuses an empty tuning stream or one that is not among ``streams``
    (:class:`ConfigError` naming ``config.tune_stream``)."""
    if not tune_stream or tune_stream not in streams:
        raise ConfigError(f"config.tune_stream={tune_stream!r}: the operating-point study "
                          f"tunes every method on one of the streams {sorted(streams)}")


def main(argv: Sequence[str]) -> None:
    """``python -m experiments.operating_point``: runs the study, prints its claims and table,
    and writes ``results/operating_point.json`` and ``report.md`` into ``--out_dir``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli  # noqa: PLC0415
    from secnn_jax import datasources  # noqa: PLC0415

    cfg = cli.resolve()
    methods_from_config(cfg.op_methods)
    # Refused before anything is written: the tuning stream must be one of the streams.
    names = [datasources.open_stream(s, max_frames=1).info.name for s in cfg.streams]
    check_tune_stream(cfg.tune_stream, names)
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite,
                   studies=("operating_point",))
    res = run_from_config(st.ws, cfg)
    st.run.write_json("results/operating_point.json", res.to_json())
    rows = claims(res)
    printed = _table(["claim", "paper", "ours", "verdict"],
                     [[r["claim"], r["paper"], r["ours"], r["verdict"]] for r in rows])
    printed += [""] + section(res)
    text = "\n".join(["# SE-CNN operating point", "",
                      "Generated by `python -m experiments.operating_point`. Configuration: "
                      "`config.json`.", ""] + printed).rstrip() + "\n"
    st.run.write_text("report.md", text)
    st.run.finish(**st.ws.stats)
    sys.stdout.write("\n".join(printed).rstrip() + "\n")


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/operating_point", _FIELDS["operating_point"],
             choices={"op_methods": ("all", *(m.name for m in METHODS))})
