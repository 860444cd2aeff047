"""The timing model's own uncertainty: sourced ranges of its physics parameters, and verdict
bands over the box they span.

Every parameter a replay depends on and that is not a fact of the GPU has a range
(:class:`Range`), with its source:

* the **fitted** :class:`~.params.ModelParams` (efficiency per precision, memory latency, L2
  bandwidth factor, extra-kernel time, graph kernel gap) get the spread of their
  leave-one-network-out refits (``validation.folds`` and ``validation.e2e.folds`` of the
  committed ``params_h100.json``, :mod:`.calibration`), as factors on the fitted value so that
  a loaded GPU file's own fit is scaled the same way;
* the **assumed** :class:`~.params.SchemeConfig` knobs get :data:`~.params.PHYSICS`'s published
  or derived ranges (``barrier_us``, ``hw_dependency_us``, ``compaction_bytes_per_miss``,
  ``compare_ops_per_neuron``, ``hw_compaction``) and design-space ranges for SE-CNN's SM
  extension (``comparators_per_sm``, ``buffer_placement``).

Together they span a box (:data:`BOX`). :func:`bands` answers, for SE-CNN-versus-baseline
ratios (:class:`Ratio`: baseline time over SE-CNN time, higher is better for SE-CNN), how far
the box moves each ratio. **Method** (one-at-a-time probing, then the combined corners):

1. the ratio at the given parameters on all frames (the *default*);
2. each range's two ends, one at a time, on the last ``probe_frames`` frames (the first frame of
   a stream is a cold start, everything predicted 0): the end with the higher ratio is
   SE-CNN-optimistic, the other pessimistic (a range that changes no ratio
   stays at its default value in both corners);
3. the *optimistic* corner (every range at its optimistic end) and the *pessimistic* corner on
   all frames; the :class:`Band` is ``[min, max]`` of the default and both corners.

Cost: the events are reduced to counts once (:func:`~.replayer.reduce_events`); then ``2 k``
probe replays on the probe frames (``k`` = ranges in the box, fewer when an end
equals the default) plus at most ``2`` full replays per distinct corner, for every ratio at
once (all ratios share the probe replays; ratios whose corners coincide share those too). When
each parameter's effect on the ratio is monotone and its sign does not depend on the others,
the corners are the box's extreme vertices and the band is the box's range of the ratio
(checked against all ``2^k`` vertices on a small network in ``tests/test_uncertainty.py``). An
effect need not be monotone — both sides of a ratio pay e.g. barriers, and ``max`` of
overlapping phases bends the ratio, so it can peak inside the box; the band therefore always
contains the default. It is an estimate from ``2 k + 3`` points, not a bound.

A verdict survives the uncertainty only when both corners agree: :meth:`Band.verdict`.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpufile import params_for
from secnn_jax.timing.gpus import GPU, canonical_precision, get_gpu
from secnn_jax.timing.names import DEFAULT_FUSION, DEFAULT_LAUNCH, SCHEMES
from secnn_jax.timing.params import (
    DEFAULT_CONFIG,
    PARAMS_PATH,
    PHYSICS,
    PLACEMENTS,
    ModelParams,
    SchemeConfig,
)
from secnn_jax.timing.replayer import reduce_events, replay

__all__ = ["BOX", "Band", "Range", "Ratio", "band", "bands", "fitted_ranges"]

#: What a :class:`Range` sets: a field of :class:`ModelParams` or of :class:`SchemeConfig`.
TARGETS: tuple[str, ...] = ("params", "config")


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclasses.dataclass(frozen=True)
class Range:
    """One parameter's sourced range.

    Attributes:
      field: the :class:`ModelParams` (``target="params"``) or :class:`SchemeConfig`
        (``target="config"``) field.
      low, high: the range's ends (numbers with ``low <= high``, or two values of a
        categorical field; ``None`` where the field allows it).
      source: where the range comes from (paper, datasheet, measurement file, fit spread).
      target: ``"params"`` or ``"config"``.
      key: for ``ModelParams.efficiency``, the precision whose efficiency the range sets.
      relative: ``low`` and ``high`` are factors on the given value (fitted parameters: a
        GPU's own fit is scaled by its leave-one-out spread), not absolute values.

    Raises:
      ReplayError: unknown target or field, a key on another field than ``efficiency``, or
        numeric ends that are not finite with ``low <= high``.
    """

    field: str
    low: Any
    high: Any
    source: str
    target: str = "config"
    key: str | None = None
    relative: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ReplayError(f"Range.target={self.target!r}: one of {TARGETS}")
        cls = ModelParams if self.target == "params" else SchemeConfig
        if self.field not in {f.name for f in dataclasses.fields(cls)} or self.field in (
                "provenance", "layout", "split_k"):
            raise ReplayError(f"Range.field={self.field!r}: not a physics field of "
                              f"{cls.__name__}")
        if (self.key is not None) != (self.field == "efficiency"):
            raise ReplayError(f"Range {self.field!r}: key={self.key!r} (a precision for "
                              "'efficiency' and only for it)")
        if self.key is not None:
            object.__setattr__(self, "key", canonical_precision(self.key))
        if self.relative and not (_is_number(self.low) and _is_number(self.high)):
            raise ReplayError(f"Range {self.name}: relative ends must be numbers")
        if _is_number(self.low) and _is_number(self.high):
            lo, hi = float(self.low), float(self.high)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ReplayError(f"Range {self.name}: ends ({self.low!r}, {self.high!r}) must "
                                  "be finite with low <= high")
            if self.relative and lo <= 0:
                raise ReplayError(f"Range {self.name}: relative ends must be > 0")

    @property
    def name(self) -> str:
        """``field`` or ``efficiency[precision]``."""
        return f"{self.field}[{self.key}]" if self.key else self.field

    def value(self, end: Any, params: ModelParams, config: SchemeConfig) -> Any:
        """The field's value at ``end`` (one of :attr:`low`, :attr:`high`) given the defaults
        ``params`` and ``config`` (relative ends scale the default)."""
        if not self.relative:
            return end
        if self.key is not None:
            return float(params.efficiency[self.key]) * float(end)
        return float(getattr(params if self.target == "params" else config,
                             self.field)) * float(end)

    def current(self, params: ModelParams, config: SchemeConfig) -> Any:
        """The field's value in ``params`` / ``config``."""
        if self.key is not None:
            return float(params.efficiency[self.key])
        return getattr(params if self.target == "params" else config, self.field)

    def apply(self, value: Any, params: ModelParams, config: SchemeConfig
              ) -> tuple[ModelParams, SchemeConfig]:
        """``(params, config)`` with the field set to ``value``."""
        if self.target == "config":
            return params, dataclasses.replace(config, **{self.field: value})
        if self.key is not None:
            eff = dict(params.efficiency)
            eff[self.key] = float(value)
            return dataclasses.replace(params, efficiency=MappingProxyType(eff)), config
        return dataclasses.replace(params, **{self.field: value}), config

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields plus ``name``."""
        return {"name": self.name, **dataclasses.asdict(self)}


def fitted_ranges(path: str | Path = PARAMS_PATH) -> tuple[Range, ...]:
    """Ranges of the fitted :class:`ModelParams`: per field, the factors from the full fit to
    the smallest and largest leave-one-network-out refit in the calibration file ``path``
    (``validation.folds``; ``graph_kernel_us`` from ``validation.e2e.folds``). A field whose
    refits all equal the fit (e.g. ``cta_overhead_cycles`` pinned at 0) gets no range; a file
    without folds gives ``()``.

    Raises:
      ReplayError: the file is not valid JSON.
    """
    p = Path(path)
    if not p.is_file():
        return ()
    try:
        data = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReplayError(f"fitted_ranges: {p} is not valid JSON: {e}") from e
    fit = data.get("params", {})
    val = data.get("validation", {})
    folds = val.get("folds", {})
    name = p.name
    out: list[Range] = []

    def add(field: str, fitted: float, refits: Mapping[str, float], key: str | None = None,
            what: str = "per-layer cuDNN kernels") -> None:
        vals = [float(fitted), *map(float, refits.values())]
        if fitted <= 0 or max(vals) == min(vals):
            return
        held = ", ".join(f"without {k} {float(v):.4g}" for k, v in refits.items())
        src = f"leave-one-network-out refits on the {what} ({name}: fit {fitted:.4g}; {held})"
        if min(vals) <= 0:  # a refit at 0 has no factor on the fit: the values themselves
            out.append(Range(field, min(vals), max(vals), target="params", key=key,
                             source=f"{src}: {min(vals):.4g}-{max(vals):.4g}"))
            return
        lo, hi = min(vals) / fitted, max(vals) / fitted
        out.append(Range(field, lo, hi, target="params", key=key, relative=True,
                         source=f"{src}: x{lo:.3f}-x{hi:.3f} of the fit"))

    e2e_folds = val.get("e2e", {}).get("folds", {})
    for prec, e in fit.get("efficiency", {}).items():
        add("efficiency", e, {k: f["efficiency"][prec] for k, f in folds.items()}, key=prec)
    for field in ("latency_cycles", "l2_bandwidth_factor", "extra_kernel_us",
                  "cta_overhead_cycles"):
        if field in fit:
            add(field, fit[field], {k: f[field] for k, f in folds.items() if field in f})
    if "graph_kernel_us" in fit and e2e_folds:
        add("graph_kernel_us", fit["graph_kernel_us"], e2e_folds,
            what="whole-network CUDA-graph latencies (h100_e2e.csv)")
    return tuple(out)


def _physics_range(field: str) -> Range:
    p = PHYSICS[field]
    lo, hi = p.low, p.high
    if _is_number(lo) and _is_number(hi) and lo > hi:
        lo, hi = hi, lo
    return Range(field, lo, hi, source=p.source)


#: The box: every range a verdict must survive (see the module docstring for the sources).
BOX: tuple[Range, ...] = (
    *fitted_ranges(),
    *(_physics_range(f) for f in PHYSICS),
    Range("comparators_per_sm", 32, None, source=(
        "design space of secnn_hw's comparator array: one 32-wide comparator unit per SM (one "
        "warp's compares per cycle, the width of one SIMT issue) up to one comparator per FP32 "
        "lane (None, the default: 128 on H100; area in secnn_jax.timing.energy.secnn_area)")),
    Range("buffer_placement", "off_chip", "on_chip", source=(
        "design space of SE-CNN's prediction buffers (SchemeConfig.buffer_placement, "
        f"{PLACEMENTS}): always DRAM (off_chip) to dedicated SRAM in the SMs (on_chip, no "
        "memory time, its area costed by the energy study); the default 'cache' lies between")),
)


@dataclasses.dataclass(frozen=True)
class Ratio:
    """An SE-CNN-versus-baseline ratio: per frame the fastest of ``baselines`` (replayed from
    the baseline events) summed over the frames, over ``scheme``'s summed time (replayed from
    the SE-CNN events). Above 1: SE-CNN is faster.

    Raises:
      ReplayError: an unknown scheme, or no baselines.
    """

    scheme: str
    baselines: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "baselines", tuple(self.baselines))
        bad = [s for s in (self.scheme, *self.baselines) if s not in SCHEMES]
        if bad or not self.baselines:
            raise ReplayError(f"Ratio({self.scheme!r}, {self.baselines!r}): schemes must be "
                              f"among {SCHEMES}, with at least one baseline")

    @property
    def name(self) -> str:
        """``scheme/baseline`` or ``scheme/min(a,b)``."""
        b = self.baselines
        return f"{self.scheme}/{b[0] if len(b) == 1 else 'min(' + ','.join(b) + ')'}"


@dataclasses.dataclass(frozen=True)
class Band:
    """A ratio at the default parameters and over the box.

    Attributes:
      default: the ratio at the given parameters.
      low, high: the smallest and largest ratio among the default and the two corners
        (``low <= default <= high``).
      pessimistic, optimistic: ``{range name: value}`` of the corners.
      replays: replay calls the :func:`bands` call that made it needed (its cost, shared by
        every ratio of that call).
    """

    default: float
    low: float
    high: float
    pessimistic: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    optimistic: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    replays: int = 0

    def __post_init__(self) -> None:
        vals = (self.default, self.low, self.high)
        if not all(np.isfinite(v) for v in vals) or not self.low <= self.default <= self.high:
            raise ReplayError(f"Band: need finite low <= default <= high, got {vals}")

    def verdict(self, threshold: float) -> str:
        """``holds`` when both corners reach ``threshold`` (``low >= threshold``), ``does not
        hold`` when neither does (``high < threshold``), else ``inconclusive (low-high)``."""
        return self.judge(lambda r: "holds" if r >= threshold else "does not hold")

    def judge(self, rule: Callable[[float], str]) -> str:
        """``rule``'s verdict when it gives the same one at both ends and at the default; else
        ``inconclusive (low-high)`` (a rule with more than two outcomes, e.g. holds / partly /
        does not hold, is judged the same way)."""
        v = {rule(self.low), rule(self.default), rule(self.high)}
        return v.pop() if len(v) == 1 else f"inconclusive ({self.low:.2f}-{self.high:.2f})"

    def scaled(self, value: float) -> Band:
        """The band moved to a default of ``value`` by the same factors (a ratio measured on
        more frames than the band's)."""
        f = value / self.default
        return dataclasses.replace(self, default=float(value), low=min(value, self.low * f),
                                   high=max(value, self.high * f))

    def __str__(self) -> str:
        return f"{self.default:.2f}x ({self.low:.2f}-{self.high:.2f})"

    def as_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"default": self.default, "low": self.low, "high": self.high,
                "pessimistic": dict(self.pessimistic), "optimistic": dict(self.optimistic),
                "replays": self.replays}


def _n_frames(events: Mapping[str, Any], arg: str) -> int:
    if not isinstance(events, Mapping) or not events:
        raise ReplayError(f"{arg}: a non-empty mapping of layer name -> event codes")
    return int(np.shape(next(iter(events.values())))[0])


def bands(layers: Sequence[Any], secnn_events: Mapping[str, Any],
          baseline_events: Mapping[str, Any] | None, ratios: Sequence[Ratio], *,
          ops: Sequence[Any] | None, gpu: str | GPU = "h100", precision: str = "fp32",
          launch: str = DEFAULT_LAUNCH, fusion: str = DEFAULT_FUSION,
          params: ModelParams | None = None, config: SchemeConfig | None = None,
          box: Sequence[Range] = BOX, probe_frames: int = 2) -> dict[str, Band]:
    """The :class:`Band` of every ratio over ``box`` (method and cost: module docstring).

    Args:
      layers, ops: the network (as for :func:`~.replayer.replay`).
      secnn_events: events the ratios' SE-CNN schemes are replayed from.
      baseline_events: events the baselines are replayed from (``None``: ``secnn_events``).
      ratios: the ratios (:class:`Ratio`).
      gpu, precision, launch, fusion: one GPU and the replay's settings.
      params, config: the default point (``None``: the GPU's calibration, the reference
        configuration).
      box: the ranges (:data:`BOX`); ``()`` gives zero-width bands.
      probe_frames: frames (the last ones) each one-at-a-time probe replays.

    Returns:
      ``{ratio.name: Band}``.

    Raises:
      ReplayError: naming the bad argument (ratios, box, probe_frames, events, gpu...).
    """
    ratios = tuple(ratios)
    if not ratios or not all(isinstance(r, Ratio) for r in ratios):
        raise ReplayError(f"bands: ratios={ratios!r}: one or more Ratio")
    box = tuple(box)
    if not all(isinstance(r, Range) for r in box):
        raise ReplayError("bands: box: a sequence of Range")
    if len({r.name for r in box}) != len(box):
        raise ReplayError("bands: box: a parameter appears twice")
    if isinstance(probe_frames, bool) or not isinstance(probe_frames, numbers.Integral) \
            or probe_frames < 1:
        raise ReplayError(f"bands: probe_frames={probe_frames!r}: an integer >= 1")
    if not isinstance(gpu, (str, GPU)):
        raise ReplayError(f"bands: gpu={gpu!r}: one GPU key or GPU")
    g = get_gpu(gpu)
    base_ev = secnn_events if baseline_events is None else baseline_events
    n = _n_frames(secnn_events, "secnn_events")
    if _n_frames(base_ev, "baseline_events") != n:
        raise ReplayError("bands: secnn_events and baseline_events must have the same frames")
    p0 = params if params is not None else params_for(g)
    c0 = config if config is not None else DEFAULT_CONFIG
    prec = canonical_precision(precision)
    # Efficiency ranges of precisions the replay never reads are left out (SIMT kernels read
    # fp32's; tensor-core kernels the replay's precision's).
    box = tuple(r for r in box if r.key is None or r.key in ("fp32", prec))
    sec_schemes = tuple(dict.fromkeys(r.scheme for r in ratios))
    base_schemes = tuple(dict.fromkeys(b for r in ratios for b in r.baselines))
    calls = [0]
    memo: dict[tuple[Any, ...], dict[str, float]] = {}
    # Every replay below differs only in parameters, configuration and frames: the events are
    # reduced to counts once, for every frame, and each replay selects its frames.
    if base_ev is secnn_events:
        both = tuple(dict.fromkeys(base_schemes + sec_schemes))
        shared = reduce_events(layers, secnn_events, schemes=both)
        reduced = {"s": shared, "b": shared}
    else:
        reduced = {"s": reduce_events(layers, secnn_events, schemes=sec_schemes),
                   "b": reduce_events(layers, base_ev, schemes=base_schemes)}

    def evaluate(point: Mapping[str, Any], frames: tuple[int, ...]) -> dict[str, float]:
        key = (frames, tuple(sorted((k, repr(v)) for k, v in point.items())))
        if key in memo:
            return memo[key]
        p, c = p0, c0
        for r in box:
            if r.name in point:
                p, c = r.apply(point[r.name], p, c)
        kw = dict(gpus=(g,), precision=prec, launch=launch, fusion=fusion, ops=ops,
                  params=p, config=c, frames=list(frames))
        times: dict[tuple[str, str], np.ndarray] = {}
        if base_ev is secnn_events:
            res = replay(reduced["s"], schemes=both, **kw)
            calls[0] += 1
            for s in res.schemes:
                times[("b", s)] = times[("s", s)] = res.get(g.key, s).total_us
        else:
            for tag, schemes in (("s", sec_schemes), ("b", base_schemes)):
                res = replay(reduced[tag], schemes=schemes, **kw)
                calls[0] += 1
                for s in schemes:
                    times[(tag, s)] = res.get(g.key, s).total_us
        out = {}
        for r in ratios:
            base = np.minimum.reduce([np.asarray(times[("b", b)], np.float64)
                                      for b in r.baselines])
            out[r.name] = float(base.sum() / np.asarray(times[("s", r.scheme)]).sum())
        memo[key] = out
        return out

    every = tuple(range(n))
    default = evaluate({}, every)
    probe_n = every[n - min(int(probe_frames), n):]
    probe_default = evaluate({}, probe_n) if box else {}
    # For every ratio, each range's optimistic and pessimistic value.
    corner: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {r.name: ({}, {}) for r in ratios}
    for rng in box:
        cur = rng.current(p0, c0)
        ends = [rng.value(e, p0, c0) for e in (rng.low, rng.high)]
        probes = [probe_default if e == cur else evaluate({rng.name: e}, probe_n)
                  for e in ends]
        for r in ratios:
            lo_r, hi_r = probes[0][r.name], probes[1][r.name]
            if lo_r == hi_r == probe_default[r.name]:
                continue  # no effect on this ratio: stays at its default in both corners
            opt, pes = (ends[1], ends[0]) if hi_r >= lo_r else (ends[0], ends[1])
            corner[r.name][0][rng.name] = opt
            corner[r.name][1][rng.name] = pes
    out = {}
    for r in ratios:
        opt, pes = corner[r.name]
        ro, rp = evaluate(opt, every)[r.name], evaluate(pes, every)[r.name]
        d = default[r.name]
        out[r.name] = Band(default=d, low=min(d, ro, rp), high=max(d, ro, rp),
                           pessimistic=dict(pes), optimistic=dict(opt))
    total = calls[0]
    return {k: dataclasses.replace(b, replays=total) for k, b in out.items()}


def band(layers: Sequence[Any], secnn_events: Mapping[str, Any],
         baseline_events: Mapping[str, Any] | None = None, *, scheme: str = "secnn_hw",
         baselines: Sequence[str] = ("dense", "zero_skip"), **kw: Any) -> Band:
    """The :class:`Band` of one ratio: ``scheme`` over per frame the fastest of
    ``baselines`` (further arguments: :func:`bands`)."""
    r = Ratio(scheme, tuple(baselines))
    return bands(layers, secnn_events, baseline_events, (r,), **kw)[r.name]
