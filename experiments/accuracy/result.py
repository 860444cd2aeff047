"""The accuracy study's typed result (:class:`AccuracyResult`) and its rows.

Every row is a frozen dataclass whose field names are the keys of ``results/accuracy.json``
(:mod:`experiments.records` writes them and reads them back). Layout version 2 nests what
version 1 flattened or renamed: a row's scores under ``scores`` (``metric``, ``score``,
``score_min``, the metric's named ``fields`` and the output ``error`` as ``mean``/``max``), the
labels' top-1 under ``labels`` (``top1``, ``top1_exact``, ``frames``), the primary score as
``score`` (v1: ``agreement``; it is the declared metric's primary score, not only top-1
agreement), the speed objective as ``target`` with ``gpu_name`` beside it (v1: ``objective``)
and the claim's floor as ``claim_floor`` (v1: ``claim.agreement_above``). ``summary`` is
derived from the rows: written for a reader of the file, never read back.

The study computes plain dicts (:func:`experiments.accuracy.sweep`, ``tune``, ``evaluation``,
``transfer``; scores flat as :func:`experiments.accuracy.scoring.evaluate` returns them); each
row's ``from_study`` maps its dict onto the row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from experiments.accuracy.objective import Objective
from experiments.paper import above
from experiments.records import RecordResult, optional, to_plain

__all__ = ["AccuracyResult", "HeldOut", "LabelScores", "MetricInfo", "OutputError",
           "Scores", "SearchStep", "SpeedTarget", "SweepRow", "Transfer", "TransferStream",
           "TransferWindow", "TunedRow"]


@dataclasses.dataclass(frozen=True)
class OutputError:
    """Max |output difference| / max |exact output| per frame: ``mean`` and ``max``."""

    mean: float | None
    max: float | None


#: The keys of a flat score dict that are not the metric's named fields.
_SCORE_KEYS = ("metric", "score", "score_min", "logit_error", "logit_error_max")


@dataclasses.dataclass(frozen=True)
class Scores:
    """A metric over some frames (:func:`experiments.metrics.summarize`), with the output
    error where it was measured.

    Attributes:
      metric: the metric's name.
      score: its primary score's mean; ``score_min`` its worst frame.
      fields: the metric's named fields (``top1_agreement``, ``edge_mae``, ``edge_on``...).
      error: the output error, or ``None`` where not measured (transfer windows).
    """

    metric: str
    score: float
    score_min: float
    fields: Mapping[str, float]
    error: OutputError | None = optional()

    def field(self, key: str) -> float | None:
        """A named field, the output error (``logit_error``) or ``score``; ``None`` if absent."""
        if key == "score":
            return self.score
        if key in ("logit_error", "logit_error_max") and self.error is not None:
            return self.error.mean if key == "logit_error" else self.error.max
        return self.fields.get(key)

    @classmethod
    def from_study(cls, d: Mapping[str, Any], ignore: Sequence[str] = ()) -> Self:
        """From a flat score dict (:func:`experiments.accuracy.scoring.evaluate`: the metric's
        fields beside ``metric``, ``score``, ``score_min`` and the output error); keys in
        ``ignore`` belong to the enclosing row."""
        skip = set(_SCORE_KEYS) | set(ignore)
        err = (OutputError(d["logit_error"], d["logit_error_max"]) if "logit_error" in d
               else None)
        return cls(metric=d["metric"], score=d["score"], score_min=d["score_min"],
                   fields={k: v for k, v in d.items() if k not in skip}, error=err)


@dataclasses.dataclass(frozen=True)
class LabelScores:
    """Top-1 accuracy against ground-truth labels (the sweep's ``label_top1``,
    ``label_top1_exact`` and ``labelled_frames``)."""

    top1: float
    top1_exact: float
    frames: int


#: The keys of a sweep row that are not its scores.
_SWEEP_KEYS = ("model", "stream", "tau", "frames", "mispredicted", "speedup",
               "speedup_by_gpu", "label_top1", "label_top1_exact", "labelled_frames")


@dataclasses.dataclass(frozen=True)
class SweepRow:
    """SE-CNN at one global tau on one model and stream (:func:`experiments.accuracy.sweep`).

    Attributes:
      speedup: on the objective's GPU; ``speedup_by_gpu`` on every GPU timed.
      labels: top-1 accuracy against labels, where labels were given.
    """

    model: str
    stream: str
    tau: float
    frames: int
    scores: Scores
    mispredicted: float
    speedup: float | None
    speedup_by_gpu: Mapping[str, float | None]
    labels: LabelScores | None = optional()

    @property
    def metric(self) -> str:
        """The metric the row is judged on."""
        return self.scores.metric

    @property
    def score(self) -> float:
        """The metric's primary score."""
        return self.scores.score

    @classmethod
    def from_study(cls, d: Mapping[str, Any]) -> Self:
        """The row from a :func:`experiments.accuracy.sweep` row with ``model`` and
        ``stream`` added."""
        lab = (LabelScores(d["label_top1"], d["label_top1_exact"], d["labelled_frames"])
               if "label_top1" in d else None)
        return cls(model=d["model"], stream=d["stream"], tau=d["tau"], frames=d["frames"],
                   scores=Scores.from_study(d, _SWEEP_KEYS), mispredicted=d["mispredicted"],
                   speedup=d["speedup"], speedup_by_gpu=dict(d["speedup_by_gpu"]),
                   labels=lab)


@dataclasses.dataclass(frozen=True)
class SearchStep:
    """One evaluation of the tuner's search (``score``: the primary score, which the tuner's
    history calls ``agreement``)."""

    step: int
    note: str
    score: float
    criterion: float
    speedup: float | None
    feasible: bool
    alpha_min: float
    alpha_max: float

    @classmethod
    def from_study(cls, d: Mapping[str, Any]) -> Self:
        """The step from an entry of the tuner's ``history``."""
        return cls(**{k: v for k, v in d.items() if k != "agreement"}, score=d["agreement"])


@dataclasses.dataclass(frozen=True)
class SpeedTarget:
    """What the tuner maximises: ``scheme`` over ``baseline`` on the timer's ``gpu``-th GPU
    (the tuner's ``objective``)."""

    gpu: int
    scheme: str
    baseline: str


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The tuned thresholds on one workspace stream (:func:`experiments.accuracy.evaluation`).

    Attributes:
      calibration: the metric on the calibration frames (tuning stream only).
      heldout: the metric on the held-out frames (``None`` when there are none); ``speedup``
        and ``mispredicted`` are over them.
    """

    stream: str
    frames: int
    heldout_frames: int
    calibration: Scores | None = optional()
    heldout: Scores | None = optional()
    speedup: float | None = optional()
    mispredicted: float | None = optional()

    @classmethod
    def from_study(cls, d: Mapping[str, Any]) -> Self:
        """The entry from one of :func:`experiments.accuracy.evaluation`'s."""
        return cls(stream=d["stream"], frames=d["frames"], heldout_frames=d["heldout_frames"],
                   calibration=(Scores.from_study(d["calibration"]) if "calibration" in d
                                else None),
                   heldout=Scores.from_study(d["heldout"]) if "heldout" in d else None,
                   speedup=d.get("speedup"), mispredicted=d.get("mispredicted"))


#: The keys of a transfer window that are not its scores.
_WINDOW_KEYS = ("model", "method", "stream", "start", "end", "frames", "speedup",
                "mispredicted")


@dataclasses.dataclass(frozen=True)
class TransferWindow:
    """The tuned thresholds on frames ``start:end`` of one transfer stream."""

    model: str
    method: str
    stream: str
    start: int
    end: int
    frames: int
    scores: Scores
    speedup: float | None
    mispredicted: float

    @property
    def score(self) -> float:
        """The metric's primary score over the window."""
        return self.scores.score

    @classmethod
    def from_study(cls, d: Mapping[str, Any]) -> Self:
        """The window from an entry of :func:`experiments.accuracy.transfer`'s ``rows``."""
        return cls(**{k: d[k] for k in _WINDOW_KEYS},
                   scores=Scores.from_study(d, _WINDOW_KEYS))


@dataclasses.dataclass(frozen=True)
class TransferStream:
    """The tuned thresholds over all held-out frames of one transfer stream
    (:func:`experiments.accuracy.transfer`)."""

    stream: str
    calibration_stream: bool
    start: int
    frames: int
    windows: int
    score: float
    worst_window: float
    speedup: float | None
    exact_speedup: float | None
    mispredicted: float
    exact_mispredicted: float
    exact_on: float | None
    floor_met: bool
    windows_met: bool


@dataclasses.dataclass(frozen=True)
class Transfer:
    """One tuned threshold map on later frames and other clips: ``rows`` per window,
    ``streams`` per clip; ``floor_met`` / ``windows_met`` on every clip."""

    model: str
    method: str
    metric: str
    floor: float
    window: int
    rows: tuple[TransferWindow, ...]
    streams: tuple[TransferStream, ...]
    floor_met: bool
    windows_met: bool

    @classmethod
    def from_study(cls, d: Mapping[str, Any]) -> Self:
        """The transfer from :func:`experiments.accuracy.transfer`'s dict."""
        return cls(**{**d, "rows": tuple(TransferWindow.from_study(r) for r in d["rows"]),
                      "streams": tuple(TransferStream(**p) for p in d["streams"])})


@dataclasses.dataclass(frozen=True)
class TunedRow:
    """One model and tuning method: the tuner's result (:func:`experiments.accuracy.tune`),
    its held-out ``evaluation`` and its ``transfer`` (``None`` without transfer streams).

    Attributes:
      metric, floor, margin: the tuner's :class:`~experiments.accuracy.objective.Objective`.
      score: the primary score over the calibration frames (the tuner's ``agreement``);
        ``criterion`` the method's number; ``searched``: score, speedup and criterion before
        the backoff (keyed ``agreement``, ``speedup``, ``criterion``, as the tuner has them).
      target: the speed objective (the tuner's ``objective``).
    """

    model: str
    stream: str
    predictor: str
    metric: str
    floor: float
    margin: float
    method: str
    windows_used: int
    calibration_frames: int
    tau: Mapping[str, float]
    alpha: Mapping[str, float]
    scale: Mapping[str, float]
    score: float
    criterion: float
    window_scores: tuple[float, ...]
    speedup: float | None
    mispredicted: float
    searched: Mapping[str, float | None]
    history: tuple[SearchStep, ...]
    target: SpeedTarget
    evaluation: tuple[HeldOut, ...] = ()
    transfer: Transfer | None = optional()

    @property
    def objective(self) -> Objective:
        """The floor the tuner kept: metric, floor and the method's margin."""
        return Objective(self.metric, self.floor, self.margin)

    @classmethod
    def from_study(cls, d: Mapping[str, Any]) -> Self:
        """The row from :func:`experiments.accuracy.tune`'s dict with ``evaluation`` and
        ``transfer`` added."""
        return cls(model=d["model"], stream=d["stream"], predictor=d["predictor"],
                   metric=d["metric"], floor=d["floor"], margin=d["margin"],
                   method=d["method"], windows_used=d["windows_used"],
                   calibration_frames=d["calibration_frames"], tau=dict(d["tau"]),
                   alpha=dict(d["alpha"]), scale=dict(d["scale"]), score=d["agreement"],
                   criterion=d["criterion"], window_scores=tuple(d["window_scores"]),
                   speedup=d["speedup"], mispredicted=d["mispredicted"],
                   searched=dict(d["searched"]),
                   history=tuple(SearchStep.from_study(h) for h in d["history"]),
                   target=SpeedTarget(**d["objective"]),
                   evaluation=tuple(HeldOut.from_study(e) for e in d.get("evaluation", ())),
                   transfer=Transfer.from_study(d["transfer"]) if "transfer" in d else None)


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """A model's declared metric: ``name``, ``primary`` field and ``label`` (report text)."""

    name: str
    primary: str
    label: str


@dataclasses.dataclass(frozen=True)
class AccuracyResult(RecordResult):
    """The accuracy study (:func:`experiments.accuracy.accuracy`).

    Attributes:
      predictor: SE-CNN's predictor spec.
      sweep: per model, stream and global tau.
      tuned: per model and tuning method (empty without tuning).
      metrics: per model its declared metric.
      methods: the tuning methods' specs.
      claim_floor: the paper's claim: the primary score above this.
      gpus: every GPU timed; ``target`` the speed objective, on ``gpus[target.gpu]``
        (``gpu_name``; ``None`` without a timer).
    """

    STUDY: ClassVar[str] = "accuracy"
    VERSION: ClassVar[int] = 2

    predictor: str
    sweep: tuple[SweepRow, ...]
    tuned: tuple[TunedRow, ...]
    metrics: Mapping[str, MetricInfo]
    methods: tuple[str, ...]
    claim_floor: float
    gpus: tuple[str, ...]
    target: SpeedTarget
    gpu_name: str | None = None

    def label(self, model: str) -> str:
        """How the report names ``model``'s primary score."""
        return self.metrics[model].label

    def summary(self) -> list[dict[str, Any]]:
        """One row per judged claim, each with a ``verdict``: ``kind`` ``tau0`` (per sweep row
        at tau = 0: the score against the paper's >95%), ``heldout`` (per tuned model, method
        and stream: the held-out score) and ``transfer`` (per tuned model and method: every
        transfer stream at the floor)."""
        floor = self.claim_floor
        rows: list[dict[str, Any]] = [
            {"kind": "tau0", "model": r.model, "stream": r.stream, "score": r.score,
             "floor": floor, "verdict": above(r.score, floor)}
            for r in self.sweep if r.tau == 0.0]
        for t in self.tuned:
            for e in t.evaluation:
                if e.heldout is not None:
                    a = e.heldout.score
                    rows.append({"kind": "heldout", "model": t.model, "method": t.method,
                                 "stream": e.stream, "score": a, "floor": floor,
                                 "verdict": above(a, floor)})
            tr = t.transfer
            if tr and tr.streams:
                rows.append({"kind": "transfer", "model": t.model, "method": t.method,
                             "floor": tr.floor,
                             "verdict": "holds" if tr.floor_met else "does not hold"})
        return rows

    def payload(self) -> dict[str, Any]:
        """The result's fields as JSON-ready values, with the derived ``summary`` beside them
        (for a reader of the file: :meth:`from_payload` drops it)."""
        return {**to_plain(self), "summary": self.summary()}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """The result from :meth:`payload`'s output (``summary`` recomputed, not read); another
        layout is a :class:`~experiments.studyresult.StaleResultError`."""
        return super().from_payload({k: v for k, v in data.items() if k != "summary"})

    @classmethod
    def from_study(cls, *, predictor: str, sweep: Sequence[Mapping[str, Any]],
                   tuned: Sequence[Mapping[str, Any]], metrics: Mapping[str, MetricInfo],
                   methods: Sequence[str], claim_floor: float, gpus: Sequence[str],
                   target: SpeedTarget, gpu_name: str | None) -> Self:
        """The result from the study's sweep rows and tuner dicts
        (:meth:`SweepRow.from_study`, :meth:`TunedRow.from_study`)."""
        return cls(predictor=predictor, sweep=tuple(SweepRow.from_study(r) for r in sweep),
                   tuned=tuple(TunedRow.from_study(t) for t in tuned), metrics=dict(metrics),
                   methods=tuple(methods), claim_floor=claim_floor, gpus=tuple(gpus),
                   target=target, gpu_name=gpu_name)
