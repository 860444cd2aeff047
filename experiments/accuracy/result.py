"""The accuracy study's typed result (:class:`AccuracyResult`) and its rows.

Every row is a frozen dataclass with ``to_json`` / ``from_json``; the JSON keeps the layout the
study has always written (``results/accuracy.json``), so its values are unchanged. Where the JSON
key says less than the field, the field is renamed and the key kept for this layout version:
``score`` is written as ``agreement`` (the primary score of the model's declared metric, not
only top-1 agreement), the speed target as ``objective``, the claim's floor as
``claim.agreement_above``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from experiments.accuracy.objective import Objective
from experiments.paper import above
from experiments.studyresult import StudyResult

__all__ = ["AccuracyResult", "HeldOut", "LabelScores", "MetricInfo", "OutputError",
           "Scores", "SearchStep", "SpeedTarget", "SweepRow", "Transfer", "TransferStream",
           "TransferWindow", "TunedRow"]


@dataclasses.dataclass(frozen=True)
class OutputError:
    """Max |output difference| / max |exact output| per frame: ``mean`` and ``max``."""

    mean: float | None
    max: float | None


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
    error: OutputError | None = None

    def field(self, key: str) -> float | None:
        """A named field, the output error (``logit_error``) or ``score``; ``None`` if absent."""
        if key == "score":
            return self.score
        if key in ("logit_error", "logit_error_max") and self.error is not None:
            return self.error.mean if key == "logit_error" else self.error.max
        return self.fields.get(key)

    def to_json(self) -> dict[str, Any]:
        """The JSON keys of :func:`experiments.metrics.summarize` (plus the output error)."""
        out: dict[str, Any] = {"metric": self.metric, **self.fields, "score": self.score,
                               "score_min": self.score_min}
        if self.error is not None:
            out["logit_error"] = self.error.mean
            out["logit_error_max"] = self.error.max
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any], ignore: Sequence[str] = ()) -> Self:
        """From :meth:`to_json`'s keys; keys in ``ignore`` belong to the enclosing row."""
        skip = set(_SCORE_KEYS) | set(ignore)
        err = (OutputError(d["logit_error"], d["logit_error_max"]) if "logit_error" in d
               else None)
        return cls(metric=d["metric"], score=d["score"], score_min=d["score_min"],
                   fields={k: v for k, v in d.items() if k not in skip}, error=err)


@dataclasses.dataclass(frozen=True)
class LabelScores:
    """Top-1 accuracy against ground-truth labels (JSON ``label_top1``, ``label_top1_exact``,
    ``labelled_frames``)."""

    top1: float
    top1_exact: float
    frames: int


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
    labels: LabelScores | None = None

    @property
    def metric(self) -> str:
        """The metric the row is judged on."""
        return self.scores.metric

    @property
    def score(self) -> float:
        """The metric's primary score."""
        return self.scores.score

    def to_json(self) -> dict[str, Any]:
        """The row as ``results/accuracy.json`` holds it."""
        out = {"model": self.model, "stream": self.stream, "tau": self.tau,
               "frames": self.frames, **self.scores.to_json(),
               "mispredicted": self.mispredicted, "speedup": self.speedup,
               "speedup_by_gpu": dict(self.speedup_by_gpu)}
        if self.labels is not None:
            out.update(label_top1=self.labels.top1, label_top1_exact=self.labels.top1_exact,
                       labelled_frames=self.labels.frames)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        """The row from :meth:`to_json`'s output."""
        lab = (LabelScores(d["label_top1"], d["label_top1_exact"], d["labelled_frames"])
               if "label_top1" in d else None)
        return cls(model=d["model"], stream=d["stream"], tau=d["tau"], frames=d["frames"],
                   scores=Scores.from_json(d, _SWEEP_KEYS), mispredicted=d["mispredicted"],
                   speedup=d["speedup"], speedup_by_gpu=dict(d["speedup_by_gpu"]),
                   labels=lab)


@dataclasses.dataclass(frozen=True)
class SearchStep:
    """One evaluation of the tuner's search (JSON ``agreement`` is :attr:`score`)."""

    step: int
    note: str
    score: float
    criterion: float
    speedup: float | None
    feasible: bool
    alpha_min: float
    alpha_max: float

    def to_json(self) -> dict[str, Any]:
        """The step as the result's ``history`` holds it."""
        d = dataclasses.asdict(self)
        d["agreement"] = d.pop("score")
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        """The step from :meth:`to_json`'s output."""
        return cls(**{k: v for k, v in d.items() if k != "agreement"}, score=d["agreement"])


@dataclasses.dataclass(frozen=True)
class SpeedTarget:
    """What the tuner maximises: ``scheme`` over ``baseline`` on the timer's ``gpu``-th GPU
    (JSON ``objective``)."""

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
    calibration: Scores | None = None
    heldout: Scores | None = None
    speedup: float | None = None
    mispredicted: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as the tuned row's ``evaluation`` holds it."""
        out: dict[str, Any] = {"stream": self.stream, "frames": self.frames,
                               "heldout_frames": self.heldout_frames}
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_json()
        if self.heldout is not None:
            out.update(heldout=self.heldout.to_json(), speedup=self.speedup,
                       mispredicted=self.mispredicted)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        """The entry from :meth:`to_json`'s output."""
        return cls(stream=d["stream"], frames=d["frames"], heldout_frames=d["heldout_frames"],
                   calibration=(Scores.from_json(d["calibration"]) if "calibration" in d
                                else None),
                   heldout=Scores.from_json(d["heldout"]) if "heldout" in d else None,
                   speedup=d.get("speedup"), mispredicted=d.get("mispredicted"))


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

    def to_json(self) -> dict[str, Any]:
        """The window as the transfer's ``rows`` hold it."""
        return {"model": self.model, "method": self.method, "stream": self.stream,
                "start": self.start, "end": self.end, "frames": self.frames,
                **self.scores.to_json(), "speedup": self.speedup,
                "mispredicted": self.mispredicted}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        """The window from :meth:`to_json`'s output."""
        return cls(**{k: d[k] for k in _WINDOW_KEYS}, scores=Scores.from_json(d, _WINDOW_KEYS))


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

    def to_json(self) -> dict[str, Any]:
        """The transfer as the tuned row's ``transfer`` holds it."""
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "rows": [r.to_json() for r in self.rows],
                "streams": [dataclasses.asdict(p) for p in self.streams]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        """The transfer from :meth:`to_json`'s output."""
        return cls(**{**d, "rows": tuple(TransferWindow.from_json(r) for r in d["rows"]),
                      "streams": tuple(TransferStream(**p) for p in d["streams"])})


@dataclasses.dataclass(frozen=True)
class TunedRow:
    """One model and tuning method: the tuner's result (:func:`experiments.accuracy.tune`),
    its held-out ``evaluation`` and its ``transfer`` (``None`` without transfer streams).

    Attributes:
      metric, floor, margin: the tuner's :class:`~experiments.accuracy.objective.Objective`.
      score: the primary score over the calibration frames (JSON ``agreement``);
        ``criterion`` the method's number; ``searched``: score, speedup and criterion before
        the backoff (JSON keys ``agreement``, ``speedup``, ``criterion``).
      target: the speed objective (JSON ``objective``).
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
    transfer: Transfer | None = None

    @property
    def objective(self) -> Objective:
        """The floor the tuner kept: metric, floor and the method's margin."""
        return Objective(self.metric, self.floor, self.margin)

    def to_json(self) -> dict[str, Any]:
        """The row as the result's ``tuned`` list holds it."""
        out = {"model": self.model, "stream": self.stream, "predictor": self.predictor,
               "floor": self.floor, "metric": self.metric, "method": self.method,
               "windows_used": self.windows_used, "margin": self.margin,
               "calibration_frames": self.calibration_frames, "tau": dict(self.tau),
               "alpha": dict(self.alpha), "scale": dict(self.scale),
               "agreement": self.score, "criterion": self.criterion,
               "window_scores": list(self.window_scores), "speedup": self.speedup,
               "mispredicted": self.mispredicted, "searched": dict(self.searched),
               "history": [h.to_json() for h in self.history],
               "objective": dataclasses.asdict(self.target),
               "evaluation": [e.to_json() for e in self.evaluation]}
        if self.transfer is not None:
            out["transfer"] = self.transfer.to_json()
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        """The row from :meth:`to_json`'s output (or :func:`experiments.accuracy.tune`'s dict
        with ``evaluation`` and ``transfer`` added)."""
        return cls(model=d["model"], stream=d["stream"], predictor=d["predictor"],
                   metric=d["metric"], floor=d["floor"], margin=d["margin"],
                   method=d["method"], windows_used=d["windows_used"],
                   calibration_frames=d["calibration_frames"], tau=dict(d["tau"]),
                   alpha=dict(d["alpha"]), scale=dict(d["scale"]), score=d["agreement"],
                   criterion=d["criterion"], window_scores=tuple(d["window_scores"]),
                   speedup=d["speedup"], mispredicted=d["mispredicted"],
                   searched=dict(d["searched"]),
                   history=tuple(SearchStep.from_json(h) for h in d["history"]),
                   target=SpeedTarget(**d["objective"]),
                   evaluation=tuple(HeldOut.from_json(e) for e in d.get("evaluation", ())),
                   transfer=Transfer.from_json(d["transfer"]) if "transfer" in d else None)


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """A model's declared metric: ``name``, ``primary`` field and ``label`` (report text)."""

    name: str
    primary: str
    label: str


@dataclasses.dataclass(frozen=True)
class AccuracyResult(StudyResult):
    """The accuracy study (:func:`experiments.accuracy.accuracy`).

    Attributes:
      predictor: SE-CNN's predictor spec.
      sweep: per model, stream and global tau.
      tuned: per model and tuning method (empty without tuning).
      metrics: per model its declared metric.
      methods: the tuning methods' specs.
      claim_floor: the paper's claim (JSON ``claim.agreement_above``).
      gpus: every GPU timed; ``target`` the speed objective, on ``gpus[target.gpu]``
        (JSON ``objective``, with ``gpu_name``).
    """

    STUDY: ClassVar[str] = "accuracy"
    VERSION: ClassVar[int] = 1

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
        """The result's fields as ``results/accuracy.json`` holds them (``summary`` derived)."""
        return {"predictor": self.predictor, "sweep": [r.to_json() for r in self.sweep],
                "tuned": [t.to_json() for t in self.tuned],
                "metrics": {m: dataclasses.asdict(i) for m, i in self.metrics.items()},
                "methods": list(self.methods),
                "claim": {"agreement_above": self.claim_floor}, "gpus": list(self.gpus),
                "objective": {**dataclasses.asdict(self.target), "gpu_name": self.gpu_name},
                "summary": self.summary()}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """The result from :meth:`payload`'s output (``summary`` is recomputed, not read)."""
        obj = dict(data["objective"])
        gpu_name = obj.pop("gpu_name", None)
        return cls(predictor=data["predictor"],
                   sweep=tuple(SweepRow.from_json(r) for r in data["sweep"]),
                   tuned=tuple(TunedRow.from_json(t) for t in data["tuned"]),
                   metrics={m: MetricInfo(**i) for m, i in data["metrics"].items()},
                   methods=tuple(data["methods"]),
                   claim_floor=data["claim"]["agreement_above"], gpus=tuple(data["gpus"]),
                   target=SpeedTarget(**obj), gpu_name=gpu_name)
