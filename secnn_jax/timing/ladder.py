"""The attribution ladder: which mechanism buys how much of SE-CNN's speedup.

Seven configurations of one network on one stream and GPU, all under one fusion policy, each
differing from the one before by one mechanism (:data:`LADDER`):

==========================================  =========================================
step                                        the ratio to the step before measures
==========================================  =========================================
``dense/eager``                             (start: eager PyTorch-style host issue)
``dense/graph``                             host launch overhead (CUDA graphs)
``dense/persistent``                        one launch per frame, barriers between kernels
``zero_skip/persistent``                    skipping zero inputs
``secnn_hw/persistent (zero predictor)``    SE-CNN's sequencing and hardware (no prediction)
``secnn_hw/persistent (predictor)``         value prediction
``secnn_hw/persistent (oracle)``            headroom left to value prediction
==========================================  =========================================

The *oracle* predicts every input exactly: its events are derived from the real inputs
(:func:`oracle_events`): a real zero is ZZ, every non-zero input a value hit (VH). The strongest
baseline for the paper's claims is ``dense/persistent`` or ``zero_skip/persistent`` — the same
launch model as ``secnn_hw``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from secnn_jax.events import VH, VM, ZN, ZZ, EventMaps, fires_of
from secnn_jax.timing.names import DEFAULT_FUSION
from secnn_jax.timing.replayer import ReplayResult, replay_launches
from secnn_jax.timing.uncertainty import Band, Range, Ratio, bands
from secnn_jax.timing.validate import check_events, frame_indices


@dataclasses.dataclass(frozen=True)
class LadderStep:
    """One rung: ``scheme`` under ``launch`` on the events of ``events``.

    Attributes:
      key: short identifier (``dense/eager``, ``secnn_hw/persistent:oracle``).
      scheme: scheme name.
      launch: launch model.
      events: ``"zero"`` (the zero predictor's events: exact zero pattern), ``"predictor"`` (the
        chosen predictor's) or ``"oracle"`` (:func:`oracle_events` of the zero predictor's).
      mechanism: what the ratio to the previous step measures.
    """

    key: str
    scheme: str
    launch: str
    events: str
    mechanism: str


#: The ladder, in order (see the module docstring).
LADDER: tuple[LadderStep, ...] = (
    LadderStep("dense/eager", "dense", "eager", "zero", "(baseline: eager host issue)"),
    LadderStep("dense/graph", "dense", "graph", "zero", "host launch overhead"),
    LadderStep("dense/persistent", "dense", "persistent", "zero", "persistent kernel"),
    LadderStep("zero_skip/persistent", "zero_skip", "persistent", "zero", "zero skipping"),
    LadderStep("secnn_hw/persistent:zero", "secnn_hw", "persistent", "zero",
               "SE-CNN sequencing and hardware"),
    LadderStep("secnn_hw/persistent:predictor", "secnn_hw", "persistent", "predictor",
               "value prediction"),
    LadderStep("secnn_hw/persistent:oracle", "secnn_hw", "persistent", "oracle",
               "prediction headroom"),
)


def oracle_events(events: Mapping[str, Any]) -> EventMaps:
    """Events of a perfect predictor: every input that fires is VH, every other ZZ.

    From events that carry their fires maps (:class:`secnn_jax.events.EventMaps`, as
    ``run_stream`` returns them), any predictor's: a firing input is predicted exactly (VH),
    a silent one predicted 0 (ZZ). From codes alone (a plain dict, a version-1 trace), ZN and
    VM become VH and ZZ and VH stay, which is exact only for the zero predictor's events (a
    VM code of another predictor may hide a real zero). The result keeps the fires maps.

    Raises:
      ReplayError: naming the layer, for codes that are not uint8 ``0..3`` or no frames.
    """
    check_events(events)
    fires = fires_of(events)
    if fires is not None:
        return EventMaps({k: np.where(np.asarray(fires[k]), np.uint8(VH), np.uint8(ZZ))
                          for k in events}, {k: np.asarray(fires[k]) for k in events}, "oracle")
    lut = np.array([ZZ, VH, VH, VH], np.uint8)
    assert lut[ZN] == VH and lut[VM] == VH
    return EventMaps({k: lut[np.asarray(v)] for k, v in events.items()}, None, "oracle")


@dataclasses.dataclass(frozen=True)
class Ladder:
    """Per-frame times of every :data:`LADDER` step on every GPU.

    Attributes:
      gpus: GPU keys.
      frames: replayed frame indices.
      fusion: the fusion policy every step used.
      times_us: ``{gpu: {step key: [T] microseconds}}``.
      bands: ``{gpu: {"secnn_over_strongest" | "value_prediction_factor": Band}}`` over the
        timing model's uncertainty box (:mod:`.uncertainty`), when :func:`ladder` was given a
        ``box``; else empty.
    """

    gpus: tuple[str, ...]
    frames: tuple[int, ...]
    fusion: str
    times_us: Mapping[str, Mapping[str, np.ndarray]]
    bands: Mapping[str, Mapping[str, Band]] = dataclasses.field(default_factory=dict)

    def mean_us(self, gpu: str) -> dict[str, float]:
        """Mean frame time of each step on ``gpu``."""
        return {k: float(np.mean(v)) for k, v in self.times_us[gpu].items()}

    def step_ratios(self, gpu: str) -> dict[str, float]:
        """Each step's speedup over the step before it (ratio of mean frame times; the first
        step is 1)."""
        m = self.mean_us(gpu)
        keys = list(m)
        return {k: (m[keys[i - 1]] / m[k] if i else 1.0) for i, k in enumerate(keys)}

    def speedup(self, gpu: str, step: str, over: str) -> float:
        """Mean-time ratio ``over / step``."""
        m = self.mean_us(gpu)
        return m[over] / m[step]

    def value_prediction_factor(self, gpu: str) -> float:
        """The chosen predictor's step: secnn_hw with the predictor over the zero predictor."""
        return self.speedup(gpu, "secnn_hw/persistent:predictor", "secnn_hw/persistent:zero")

    def oracle_factor(self, gpu: str) -> float:
        """The oracle over the zero predictor: the ceiling of value prediction."""
        return self.speedup(gpu, "secnn_hw/persistent:oracle", "secnn_hw/persistent:zero")

    def secnn_over_strongest(self, gpu: str) -> float:
        """``secnn_hw`` with the predictor over the faster of ``dense/persistent`` and
        ``zero_skip/persistent`` (mean times)."""
        m = self.mean_us(gpu)
        return min(m["dense/persistent"], m["zero_skip/persistent"]) / m[
            "secnn_hw/persistent:predictor"]

    def as_dict(self) -> dict[str, Any]:
        """Plain data: per GPU the steps' mean times, step ratios, the two factors, SE-CNN over
        the strongest baseline and, where computed, their bands."""
        out: dict[str, Any] = {"fusion": self.fusion, "frames": list(self.frames),
                               "steps": [dataclasses.asdict(s) for s in LADDER], "gpus": {}}
        for g in self.gpus:
            out["gpus"][g] = {
                "mean_us": self.mean_us(g), "step_ratio": self.step_ratios(g),
                "value_prediction_factor": self.value_prediction_factor(g),
                "oracle_factor": self.oracle_factor(g),
                "secnn_over_strongest": self.secnn_over_strongest(g),
            }
            if g in self.bands:
                out["gpus"][g]["bands"] = {k: b.as_dict() for k, b in self.bands[g].items()}
        return out


def ladder(layers: Sequence[Any], zero_events: Mapping[str, Any],
           predictor_events: Mapping[str, Any], *, ops: Sequence[Any] | None,
           gpus: Sequence[str] = ("h100",), precision: str = "fp32",
           fusion: str = DEFAULT_FUSION, box: Sequence[Range] | None = None,
           probe_frames: int = 2, **replay_kw: Any) -> Ladder:
    """Replays every :data:`LADDER` step.

    Args:
      layers: the network's linear layers (as for :func:`~.replay.replay`).
      zero_events: the zero predictor's events at tau = 0 (the real zero pattern).
      predictor_events: the chosen predictor's events (same frames).
      ops: the network's op groups (:func:`secnn_jax.netops.find_ops`).
      gpus, precision, fusion: as for :func:`~.replay.replay`; one fusion for every step.
      box: ranges of the timing model's uncertainty (:data:`.uncertainty.BOX`): the ladder
        then also holds, per GPU, the bands of ``secnn_over_strongest`` and the
        ``value_prediction_factor`` (:func:`.uncertainty.bands` under ``persistent``, the
        ladder's SE-CNN steps, on ``probe_frames`` probe frames; each band moved to the
        ladder's own ratio). ``None`` (default): no bands, no extra replays.
      replay_kw: further :func:`~.replay.replay` arguments (``params``, ``config``, ``frames``).

    Raises:
      ReplayError: naming the bad argument (``zero_events``, ``predictor_events``, ``gpus``,
        ``precision``, ``frames``...) before any replay.
    """
    check_events(zero_events, "zero_events")
    check_events(predictor_events, "predictor_events")
    kw = dict(gpus=gpus, precision=precision, fusion=fusion, ops=ops, **replay_kw)
    src = {"zero": zero_events, "predictor": predictor_events,
           "oracle": oracle_events(zero_events)}
    runs: dict[tuple[str, str], ReplayResult] = {}
    for ev_key in ("zero", "predictor", "oracle"):
        steps = [s for s in LADDER if s.events == ev_key]
        launches = tuple(dict.fromkeys(s.launch for s in steps))
        schemes = tuple(dict.fromkeys(s.scheme for s in steps))
        for ln, r in replay_launches(tuple(layers), src[ev_key], launches=launches,
                                     schemes=schemes, **kw).items():
            runs[(ev_key, ln)] = r
    first = runs[("zero", "eager")]
    times = {first.get(g, "dense").gpu: {s.key: runs[(s.events, s.launch)].get(g, s.scheme)
                                         .total_us for s in LADDER} for g in gpus}
    out = Ladder(gpus=tuple(times), frames=first.frames, fusion=fusion, times_us=times)
    if box is None:
        return out
    strongest, vp = Ratio("secnn_hw", ("dense", "zero_skip")), Ratio("secnn_hw", ("secnn_hw",))
    idx = frame_indices(replay_kw.get("frames"), int(np.shape(
        next(iter(zero_events.values())))[0]))

    def sel(ev: Mapping[str, Any]) -> Mapping[str, Any]:
        """The replayed frames of ``ev`` (the bands replay every frame they are given)."""
        if isinstance(ev, EventMaps):
            return ev.map(lambda v: np.asarray(v)[idx])
        return {k: np.asarray(v)[idx] for k, v in ev.items()}

    got = {}
    for g in out.gpus:
        b = bands(tuple(layers), sel(predictor_events), sel(zero_events), (strongest, vp),
                  ops=ops, gpu=g, precision=precision, launch="persistent", fusion=fusion,
                  params=replay_kw.get("params"), config=replay_kw.get("config"), box=box,
                  probe_frames=probe_frames)
        got[g] = {"secnn_over_strongest": b[strongest.name].scaled(out.secnn_over_strongest(g)),
                  "value_prediction_factor": b[vp.name].scaled(out.value_prediction_factor(g))}
    return dataclasses.replace(out, bands=got)
