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

Library: :func:`speedup`, :func:`sensitivity`, :func:`replay_inputs`, :func:`ratio_bands`.
Command line (prints the speedup and ladder tables, writes ``results/speedup.json``,
``figures/speedup.png`` and the study's section of ``report.md``)::

    python -m experiments.speedup --out_dir=runs/speedup --config.gpus=h100,titanx
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, logging

from experiments.cells import Workspace
from experiments.paper import BASELINES, COMPARISON_LAUNCH, PAPER, VARIANTS
from experiments.timer import variant, variant_parts
from secnn_jax.timing.ladder import LADDER
from secnn_jax.timing.names import PEERS, SECNN

__all__ = ["BAND_FRAMES", "BASELINE_SCHEMES", "PROBE_FRAMES", "ReplayInputs", "frame_times",
           "ladder_times", "ratio_bands", "replay_inputs", "sensitivity", "speedup", "verdict"]

#: Frames (the first ones of a model's first stream) the verdict bands' corners replay, and
#: frames (the last of those) each one-at-a-time probe replays (:func:`secnn_jax.timing.bands`).
BAND_FRAMES = 4
PROBE_FRAMES = 1
#: Frames of the first stream :func:`replay_inputs` runs for the sensitivity table (the bands
#: use the first ``BAND_FRAMES`` of them).
SENSITIVITY_FRAMES = 8
#: Each baseline of :data:`experiments.paper.BASELINES`: the schemes it is per frame the
#: fastest of.
BASELINE_SCHEMES: dict[str, tuple[str, ...]] = {
    "dense": ("dense",), "winograd": ("winograd",), "fft": ("fft",),
    "fast_conv": ("winograd", "fft"), "zero_skip": ("zero_skip",),
    "strongest": ("dense", "winograd", "fft", "zero_skip")}
#: Key of the value-prediction factor's band (secnn_hw on the zero predictor's events over
#: secnn_hw on the chosen predictor's).
VALUE_PREDICTION = "value_prediction"

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
        key = variant(s.scheme, s.launch, s.events == "oracle")
        if s.events == "zero" and s.scheme in SECNN:
            key += ":zero"
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
    return "partly" if ours > 1.0 else "does not hold"


def faster(ratio: float) -> str:
    """The verdict on "SE-CNN is faster" (no paper claim): ``holds`` above 1."""
    if not np.isfinite(ratio):
        return "not measured"
    return "holds" if ratio > 1.0 else "does not hold"


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
        """The layers, the two predictors' events and the ops (computed once)."""
        if self._value is None:
            from experiments.cells import make_predictor  # noqa: PLC0415
            from secnn_jax import run_stream  # noqa: PLC0415

            h = self.ws.model(self.model)
            x = self.ws.frames(self.model, self.stream)[:self.frames]
            ev = {}
            for name, spec in (("zero", "zero"), ("predictor", self.predictor)):
                _, e = run_stream(h.apply_fn, h.variables, x, make_predictor(spec))
                ev[name] = e.map(np.asarray)
            self._value = (self.ws.layers(self.model, self.stream), ev,
                           self.ws.ops(self.model, self.stream))
        return self._value

    def __iter__(self) -> Any:
        return iter(self.value)

    def first(self, n: int) -> ReplayInputs:
        """These inputs when already computed (they hold at least as many frames), else the
        inputs of the first ``n`` frames only (cheaper: e.g. a one-frame schedule)."""
        if self._value is not None or n >= self.frames:
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
    ratios = {(v, b): uncertainty.Ratio(v, schemes) for v in VARIANTS if v in have
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
    for v in VARIANTS:
        for b in BASELINES:
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
            bands: bool = True) -> dict[str, Any]:
    """Replayed times, the ladder, speedups and their verdict bands for every model, stream
    and GPU.

    ``inputs``: per model, :func:`replay_inputs` already computed (else computed here, on the
    first stream, when ``bands``); ``bands=False`` skips the bands (point verdicts).

    Returns:
      ``{"study": "speedup", "gpus", "variants", "launch", "fusion", "predictor", "tau",
      "cells": [...], "summary": [...]}``. A cell (model, stream, gpu) holds ``frames``,
      ``total_us`` and ``frame_us`` per key of :func:`frame_times`, ``phase_us`` (per scheme
      under ``launch``), ``ladder`` (``mean_us``, ``step_ratio`` per step, the
      ``value_prediction_factor`` and ``oracle_factor``), ``speedups[variant][baseline]``
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
                    by_launch[ln] = {v: {b: _ratios(fl, v, b) for b in BASELINES if b in fl}
                                     for v in VARIANTS if v in fl}
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
                              {variant(x.scheme, x.launch, x.events == "oracle")
                               + (":zero" if x.events == "zero" and x.scheme in SECNN else "")
                               for x in LADDER}}
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

    return {"study": "speedup", "gpus": list(gpus), "variants": list(variants),
            "bands": {"frames": BAND_FRAMES, "probe_frames": PROBE_FRAMES,
                      "stream": streams[0] if streams else None,
                      "ranges": [r.as_dict() for r in BOX]} if bands else None,
            "launch": launch, "fusion": getattr(ws.timer, "fusion", None),
            "predictor": predictor, "tau": float(tau), "cells": cells, "summary": summary,
            "mapping": {"dense": "cuDNN/cuBLAS-style kernels (tiles, split-K, GEMV)",
                        "fast_conv": "per frame the faster of winograd and fft",
                        "zero_skip": "zero-skipping SIMT convolution",
                        "strongest": "per frame the fastest of dense, fast_conv, zero_skip"}}


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


def main(argv: Sequence[str]) -> None:
    """Runs the speedup study, prints its claims and tables, and writes results/speedup.json,
    its figures and report.md (its claims and sections)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import sys  # noqa: PLC0415

    from experiments import cli, figures, report  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, studies=("speedup",))
    res = speedup(st.ws, list(st.ws.models), list(st.ws.streams),
                  predictor_spec("secnn", cfg.silence, cfg.decay), launch=str(cfg.launch))
    st.run.write_json("results/speedup.json", res)
    figures.speedup_bars(res, st.run.path("figures", "speedup.png"))
    figures.ladder_bars(res, st.run.path("figures", "ladder.png"))
    md, printed = report.study_output({"speedup": res}, cfg.to_dict(), "experiments.speedup")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/speedup", _FIELDS["speedup"])
