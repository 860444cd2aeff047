"""The operating-point study's typed result and its report: :class:`OperatingPointResult`
(what :func:`experiments.operating_point.operating_point` returns and
``results/operating_point.json`` holds), its rows, :func:`claims` (its verdict rows) and
:func:`section` (its ``report.md`` lines).

Kept apart from :mod:`experiments.operating_point` (which runs the tuner, through
:mod:`experiments.accuracy`) so that :mod:`experiments.report` can import them without an
import circle. The rows are frozen dataclasses whose field names are the JSON keys the study has
always written (:mod:`experiments.records` maps them). Numbers are formatted as
:mod:`experiments.report` formats them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from experiments import reporting
from experiments.records import RecordResult, optional
from experiments.reporting import band_text as _band
from experiments.reporting import pct as _pct
from experiments.reporting import times as _times
from experiments.studyresult import claim_row

__all__ = ["AT_EXACT", "AT_OP", "ClaimAt", "Kept", "MethodRow", "OperatingPointResult",
           "Transfer", "TunedMethod", "claims", "section", "table"]

#: Where a claim is judged.
AT_OP, AT_EXACT = "operating point", "tau = 0"


@dataclasses.dataclass(frozen=True)
class TunedMethod:
    """One method's thresholds as the tuner left them (:func:`experiments.accuracy.tune` on the
    calibration frames of the tuning stream).

    Attributes:
      model, method, scheme, predictor, hardware: what was tuned (``predictor``: its spec).
      tau: per layer the tuned threshold; ``alpha`` the tuner's per-layer scale factors;
        ``tau_min``/``tau_max`` the range of ``tau``.
      score: the calibration score (the declared metric's primary score); ``criterion`` what
        the tuner compared with the floor.
      calibration_frames: the frames it looked at; ``calibration_speedup`` its replayed
        speedup there (the tuner's objective).
    """

    model: str
    method: str
    scheme: str
    predictor: str
    hardware: str
    tau: Mapping[str, float]
    alpha: Mapping[str, float]
    tau_min: float
    tau_max: float
    score: float
    criterion: float | None
    calibration_frames: int
    calibration_speedup: float | None


@dataclasses.dataclass(frozen=True)
class MethodRow:
    """One method on one model, stream and GPU, over the held-out frames (a transfer clip's
    rows: every frame of the clip).

    Attributes:
      metric, floor: the declared metric and the floor every method was tuned to.
      heldout_frames: the frames the row is over.
      method: the row name (a :data:`experiments.operating_point.METHODS` name, or the exact
        ``dense`` / ``strongest``); ``exact``: at tau = 0.
      scheme: the replayed scheme (``strongest``: the baselines that won a frame, ``+``-joined);
        ``predictor``: its spec (``None`` for the exact rows); ``hardware``: ``stock`` or
        ``SM extension``.
      tau_min, tau_max: the range of the tuned per-layer thresholds.
      time_us: the mean time per frame; ``speedup``: the strongest exact baseline's over it.
      score: the held-out score; ``meets_floor``: at or above ``floor``.
    """

    model: str
    stream: str
    gpu: str
    metric: str
    floor: float
    heldout_frames: int
    method: str
    exact: bool
    scheme: str
    predictor: str | None
    hardware: str
    tau_min: float
    tau_max: float
    time_us: float
    speedup: float
    score: float
    meets_floor: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClaimAt:
    """A ratio judged per model and GPU, averaged over the streams, at one point (``at``:
    :data:`AT_OP` or :data:`AT_EXACT`).

    Attributes:
      kind: ``"value_prediction"`` (``scheme`` with the paper's predictor over it with the zero
        predictor, on ``hardware``) or ``"paper"`` (``secnn_hw`` over ``baseline``, the paper's
        ``paper_average`` and ``paper_at_most``).
      value: the average ratio over ``cells`` streams.
      band: the timing model's uncertainty moved to ``value``
        (:meth:`secnn_jax.timing.uncertainty.Band.as_dict`), absent without one.
      verdict: by the band rule where there is a band, else the point verdict.
    """

    model: str
    gpu: str
    kind: str
    scheme: str
    hardware: str | None = optional()
    baseline: str | None = optional()
    at: str
    paper_average: float | None = optional()
    paper_at_most: float | None = optional()
    value: float
    cells: int
    band: Mapping[str, Any] | None = optional()
    verdict: str


@dataclasses.dataclass(frozen=True)
class Kept:
    """Per model and tuned method: does it keep the floor on every transfer clip
    (``floor_met``, over ``streams`` clips), and where is its score lowest."""

    model: str
    method: str
    floor: float
    streams: int
    floor_met: bool
    worst_stream: str
    worst_score: float


@dataclasses.dataclass(frozen=True)
class Transfer:
    """The tuned thresholds on the transfer clips: the clips, per model, clip, GPU and method
    a row (every frame held out) and per model and method whether it keeps the floor."""

    streams: tuple[str, ...]
    rows: tuple[MethodRow, ...]
    kept: tuple[Kept, ...]


@dataclasses.dataclass(frozen=True)
class OperatingPointResult(RecordResult):
    """The operating-point study's result (``results/operating_point.json``).

    Attributes:
      floor, method, tune_stream: the tuner's floor, method spec and calibration stream.
      launch: the launch model every time is read under.
      gpus: the GPUs timed; ``objective_gpu`` the one the tuner maximised speedup on.
      secnn: the paper's predictor's spec.
      metrics: per model its declared metric.
      tuned: one per model and method.
      rows: per model, stream, GPU and method (the exact ``dense`` and ``strongest`` first).
      factors: per model, stream, GPU and scheme the value-prediction factor at the operating
        point and at tau = 0 (keyed by :data:`AT_OP` and :data:`AT_EXACT`), with ``hardware``.
      claims_at: per model and GPU the value-prediction factor and the paper's claims at both
        points.
      bands: ``{"frames", "probe_frames", "stream", "by_model"}`` (the verdict bands per model,
        GPU and ``kind:name:at``), ``None`` when not computed.
      transfer: the transfer clips' rows, ``None`` without clips.
    """

    STUDY: ClassVar[str] = "operating_point"
    VERSION: ClassVar[int] = 1

    floor: float
    method: str
    tune_stream: str
    launch: str
    gpus: tuple[str, ...]
    objective_gpu: str
    secnn: str
    metrics: Mapping[str, str]
    tuned: tuple[TunedMethod, ...]
    rows: tuple[MethodRow, ...]
    factors: tuple[Mapping[str, Any], ...]
    claims_at: tuple[ClaimAt, ...]
    bands: Mapping[str, Any] | None
    transfer: Transfer | None



def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines (:func:`experiments.reporting.table`)."""
    return reporting.table(header, rows).split("\n")


def _tau_text(r: MethodRow) -> str:
    if r.tau_max == 0.0:
        return "0 (exact)"
    if r.tau_min == r.tau_max:
        return f"{r.tau_min:.3g}"
    return f"{r.tau_min:.3g}-{r.tau_max:.3g}"


def _tables(rows: Sequence[MethodRow], gpus: Sequence[str], floor: float,
            frames: str) -> list[str]:
    """Per model and stream of ``rows`` one table: every method's tuned tau, score against the
    floor, and per GPU time per frame with its speedup."""
    out: list[str] = []
    for model in dict.fromkeys(r.model for r in rows):
        for s in dict.fromkeys(r.stream for r in rows if r.model == model):
            mine = [r for r in rows if r.model == model and r.stream == s]
            first = [r for r in mine if r.gpu == gpus[0]]
            lines = []
            for r in first:
                cells_ = [r.method, r.scheme, r.predictor or "—", r.hardware, _tau_text(r),
                          f"{_pct(r.score)}" + ("" if r.meets_floor else
                                                " **below the floor**")]
                for g in gpus:
                    o = next(x for x in mine if x.gpu == g and x.method == r.method)
                    cells_.append(f"{o.time_us:.1f} ({_times(o.speedup)})")
                lines.append(cells_)
            out += [f"**{model} / {s}** ({first[0].heldout_frames} {frames}; "
                    f"floor {_pct(floor)} of {first[0].metric})", ""]
            out += table(["method", "scheme", "predictor", "hardware", "tuned tau",
                          "held-out score"] + [f"{g}: us/frame (speedup)" for g in gpus],
                         lines) + [""]
    return out


def section(result: OperatingPointResult) -> list[str]:
    """The study's report section (Markdown lines): per model and stream the headline table
    (every method at the same floor: time per frame and speedup over the strongest exact
    baseline per GPU, held-out score), then the claims at the operating point and at
    tau = 0, then (with transfer clips) the same tables on every clip and whether each method
    keeps the floor on all of them."""
    gpus = result.gpus
    out = ["## The operating point: every method at the same accuracy", "",
           f"Every method is tuned by the same tuner (method `{result.method}`, objective: "
           f"its own replayed speedup on {result.objective_gpu}) to the same floor, "
           f"{_pct(result.floor)} of each model's declared metric on the calibration frames "
           f"of `{result.tune_stream}`, and judged on held-out frames (the tuning stream "
           "after its calibration frames, every frame of the other streams). Times are "
           f"microseconds per held-out frame under `{result.launch}` launch; speedups are "
           "over the strongest exact baseline (per frame the fastest of dense, winograd, fft "
           "and zero_skip at tau = 0) on the same frames. `zero_skip` at tau skips |x| <= tau: "
           "its outputs are SE-CNN's with the zero predictor at that tau, so both read one cell.",
           ""]
    out += _tables(result.rows, gpus, result.floor, "held-out frames")
    if result.claims_at:
        out += ["Value prediction and the paper's claims, at the operating point and at "
                "tau = 0 (averages over the streams' held-out frames; band: the timing "
                "model's uncertainty, verdict by the band rule):", ""]
        lines = []
        for r in result.claims_at:
            what = (f"value prediction ({r.scheme}, {r.hardware})"
                    if r.kind == "value_prediction" else
                    f"secnn_hw over {r.baseline} (paper {_times(r.paper_average)})")
            lines.append([r.model, r.gpu, what, r.at, _times(r.value) + _band(r.band),
                          r.verdict])
        out += table(["model", "GPU", "ratio", "at", "ours", "verdict"], lines) + [""]
    tr = result.transfer
    if tr and tr.rows:
        out += ["### Off the tuning clip: the transfer clips", "",
                "The same thresholds on clips the tuner never saw (every frame held out; "
                "speedups over the strongest exact baseline on the same clip):", ""]
        out += _tables(tr.rows, gpus, result.floor, "frames, all held out")
        lines = []
        for k in tr.kept:
            lines.append([k.model, k.method, "yes" if k.floor_met else "**no**",
                          f"{_pct(k.worst_score)} ({k.worst_stream})"])
        out += table(["model", "method", f"keeps the {_pct(result.floor)} floor on every "
                      "clip", "lowest score (clip)"], lines) + [""]
    return out


def claims(result: OperatingPointResult) -> list[dict[str, str]]:
    """The claim rows (:func:`experiments.studyresult.claim_row`): per model and GPU the
    paper's speedup claims and the value-prediction factor (SE-CNN's SM extension), each at
    the operating point and at tau = 0; with transfer clips, per model whether every tuned
    method keeps the floor on every clip (``holds``: all do, ``partly``: some, ``does not
    hold``: none)."""
    out = []
    floor = _pct(result.floor)
    for r in result.claims_at:
        where = (f"every method tuned to {floor} on the calibration frames, held-out frames"
                 if r.at == AT_OP else "every method exact, held-out frames")
        at = "at the operating point" if r.at == AT_OP else "at tau = 0"
        if r.kind == "paper":
            key = f"SE-CNN faster than {r.baseline} on average {at}"
            out.append(claim_row(
                key, f"{key} ({r.model}, {r.gpu}; {where})",
                f"{_times(r.paper_average)} ({_times(r.paper_at_most)})",
                f"{_times(r.value)}{_band(r.band)} secnn_hw", r.verdict,
                model=r.model, gpu=r.gpu))
        elif r.scheme == "secnn_hw":
            key = f"value prediction is what makes SE-CNN fast, {at}"
            out.append(claim_row(
                key, f"{key} ({r.model}, {r.gpu}; {where})",
                "the speedup comes from predicting inputs",
                f"value prediction buys {_times(r.value)}{_band(r.band)} "
                "over SE-CNN with the zero predictor (secnn_hw)", r.verdict,
                model=r.model, gpu=r.gpu))
    tr = result.transfer
    kept = tr.kept if tr is not None else ()
    for model in dict.fromkeys(k.model for k in kept):
        mine = [k for k in kept if k.model == model]
        ok = [k for k in mine if k.floor_met]
        below = [f"{k.method} {_pct(k.worst_score)} on {k.worst_stream}"
                 for k in mine if not k.floor_met]
        verdict = ("holds" if len(ok) == len(mine) else "partly" if ok else "does not hold")
        key = "every method keeps the accuracy floor off its tuning clip"
        # Scores do not depend on the GPU: one row per model, no GPU named.
        out.append(claim_row(
            key, f"{key} ({model}; thresholds tuned to {floor} on {result.tune_stream}, "
                 f"clips {', '.join(tr.streams)})",
            "over 95% of classification accuracy",
            f"{len(ok)} of {len(mine)} methods keep it"
            + (f"; below: {'; '.join(below)}" if below else ""), verdict, model=model))
    return out
