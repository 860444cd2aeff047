"""What would make the paper's numbers true: SE-CNN's modelled speedup over synthetic firing and
value-hit rates and over baselines of decreasing strength.

The paper claims average speedups of 7.9x (over zero skipping) to 13.4x (over dense
convolution; :data:`experiments.paper.PAPER`). This study asks under which conditions the same
timing machinery that judges those claims elsewhere (:func:`secnn_jax.timing.replay`: the
scheme registry, SE-CNN's scheduler, the launch models and fusion policies) would produce them:

* **events**: synthesised on the real layer shapes of each model (the zoo network at the
  study's input size, shapes only: :func:`experiments.zoo_networks.network`, the
  :func:`secnn_jax.find_layers` the studies use), one frame per grid point (firing rate,
  hit rate) with :func:`secnn_jax.synthetic.synthesize` — no forward pass;
* **SE-CNN** (``secnn_sw``, ``secnn_hw``) under the headline comparison's launch model and
  fusion policy (``--config.launch``, ``--config.fusion``);
* **baselines** (:func:`baselines`), from the weakest by construction: ``naive`` — a SIMT direct
  convolution that reads every input (the registry's zero-skipping kernel with nothing to
  skip, no split-K, no GEMV, no load balancing) issued eagerly by the host; then the library
  kernels (``dense``: cuDNN/cuBLAS-style) under ``eager``, ``graph`` and ``persistent``
  launch; each without (``none``) and with (``epilogue``) fusion of the ops between layers;
  and ``zero_skip`` at the same firing rate under SE-CNN's own launch and fusion.

The result is the surface of the modelled speedup over (firing rate, hit rate, baseline) per
model and GPU, the region of the grid where the paper's averages come out (its frontier: per
firing rate, the lowest hit rate that reaches them), a figure, a table and a paragraph derived
from the numbers.

Library: :func:`whatif` (a :class:`WhatifResult`), :func:`section` (``report.md`` lines),
:func:`claims` (verdict rows), :func:`figure`. Command line (writes ``results/whatif.json``,
``figures/whatif.png`` and ``report.md`` into ``--out_dir`` with ``config.json``,
``environment.json`` and ``run_info.json``)::

    python -m experiments.whatif --out_dir=runs/whatif --config.whatif_firing=0.02,0.1,0.5

Flags: ``--out_dir``, ``--overwrite``; ``--models`` (zoo names; the input size is
``--config.model_resolution``'s entry, else ``--config.resolution``, else the model's own);
``--config.gpus``, ``--config.precision``, ``--config.launch``, ``--config.fusion`` (SE-CNN's
replay); ``--config.whatif_firing``, ``--config.whatif_hits`` (the grid, rates in ``[0, 1]``),
``--config.whatif_zero_miss``, ``--config.whatif_seed``. No stream is read: ``--streams`` and
``--frames`` are refused.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from absl import app, logging

from experiments import config as config_lib
from experiments.errors import ConfigError
from experiments.paper import PAPER
from experiments.reporting import table as _table
from experiments.reporting import times as _times
from experiments.studyresult import StudyResult, claim_row
from secnn_jax import synthetic
from secnn_jax.timing.names import FUSIONS, LAUNCH_MODELS, SECNN

__all__ = ["CLAIM_RANGE", "NAIVE_CONFIG", "Baseline", "baselines", "check_rates", "claims",
           "WhatifResult", "figure", "from_config", "from_workspace", "frontier", "main",
           "model_size", "paragraph", "region_text", "render", "section", "whatif"]

#: The paper's average claims as a range: (lowest, highest) of :data:`experiments.paper.PAPER`.
CLAIM_RANGE: tuple[float, float] = (min(v[0] for v in PAPER.values()),
                                    max(v[0] for v in PAPER.values()))


#: The scheme knobs of the ``naive`` baseline: the zero-skipping SIMT kernel's tiling with no
#: split-K and no GEMV, and no load balancing (``sw_compaction="none"``: a CTA costs its
#: busiest lane); fed events where every input fires, it reads every input.
NAIVE_CONFIG: dict[str, Any] = {"split_k": [1], "gemv": False, "sw_compaction": "none"}


@dataclasses.dataclass(frozen=True)
class WhatifResult(StudyResult):
    """The what-if study's result (``results/whatif.json``), as :func:`whatif` returns it.

    Attributes:
      firing, hits: the grid's firing and hit rates.
      zero_miss: share of the missed firing inputs predicted zero.
      seed: the synthesis seed.
      precision: arithmetic precision of the replay.
      gpus: the GPU keys.
      secnn: SE-CNN's ``{"launch", "fusion"}``.
      claim_range: the paper's lowest and highest average claim (:data:`CLAIM_RANGE`).
      naive_config: the ``naive`` baseline's scheme knobs (:data:`NAIVE_CONFIG`).
      baselines: the baselines (:class:`Baseline` as dicts), weakest first by construction.
      cells: one per (model, GPU): times, speedups, achieved rates and regions (:func:`whatif`).
      verdicts: the judged rows (:func:`claims`).
    """

    STUDY = "whatif"
    VERSION = 1

    firing: tuple[float, ...]
    hits: tuple[float, ...]
    zero_miss: float
    seed: int
    precision: str
    gpus: tuple[str, ...]
    secnn: dict[str, str]
    claim_range: tuple[float, float]
    naive_config: dict[str, Any]
    baselines: tuple[dict[str, Any], ...]
    cells: tuple[dict[str, Any], ...]
    verdicts: tuple[dict[str, str], ...] = ()

    def payload(self) -> dict[str, Any]:
        """The result's fields as JSON-ready values (lists where the fields hold tuples)."""
        return {f.name: list(v) if isinstance(v, tuple) else v
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """The result from :meth:`payload`'s output."""
        return cls(firing=tuple(float(x) for x in data["firing"]),
                   hits=tuple(float(x) for x in data["hits"]),
                   zero_miss=float(data["zero_miss"]), seed=int(data["seed"]),
                   precision=str(data["precision"]), gpus=tuple(data["gpus"]),
                   secnn=dict(data["secnn"]),
                   claim_range=tuple(float(x) for x in data["claim_range"]),
                   naive_config=dict(data["naive_config"]),
                   baselines=tuple(dict(b) for b in data["baselines"]),
                   cells=tuple(dict(c) for c in data["cells"]),
                   verdicts=tuple(dict(v) for v in data["verdicts"]))


def _naive_config() -> Any:
    from secnn_jax.timing import SchemeConfig  # noqa: PLC0415

    return SchemeConfig(**{**NAIVE_CONFIG, "split_k": tuple(NAIVE_CONFIG["split_k"])})


@dataclasses.dataclass(frozen=True)
class Baseline:
    """One baseline of the study.

    Attributes:
      key: ``kernels/launch/fusion`` (e.g. ``naive/eager/none``).
      scheme: the registry scheme that times it (``naive`` is ``zero_skip`` on all-firing
        events with :data:`NAIVE_CONFIG`).
      launch: launch model.
      fusion: fusion policy.
      events: ``"all"`` (every input fires: the kernel skips nothing) or ``"grid"`` (the grid
        point's events: ``zero_skip`` skips the silent inputs).
      doc: one line.
    """

    key: str
    scheme: str
    launch: str
    fusion: str
    events: str
    doc: str


def baselines(launch: str = "persistent", fusion: str = "epilogue") -> tuple[Baseline, ...]:
    """The baselines, weakest by construction first: ``naive`` under ``eager`` launch, ``dense``
    under each launch model, each without and with fusion, then ``zero_skip`` under SE-CNN's own
    ``launch`` and ``fusion``."""
    out = [Baseline(f"naive/eager/{f}", "zero_skip", "eager", f, "all",
                    "SIMT direct convolution reading every input (no split-K, GEMV or load "
                    "balancing), host-issued kernels") for f in FUSIONS]
    out += [Baseline(f"dense/{ln}/{f}", "dense", ln, f, "all",
                     f"cuDNN/cuBLAS-style kernels, {ln} launch") for ln in LAUNCH_MODELS
            for f in FUSIONS]
    out.append(Baseline(f"zero_skip/{launch}/{fusion}", "zero_skip", launch, fusion, "grid",
                        "zero-skipping SIMT kernels at the grid point's firing rate, "
                        "SE-CNN's own launch and fusion"))
    return tuple(out)


def check_rates(values: Sequence[float], field: str) -> tuple[float, ...]:
    """``values`` sorted and unique, each a rate in ``[0, 1]`` (:class:`ConfigError` naming
    ``field`` otherwise, or when empty)."""
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config.{field}: {v!r} is not a number") from e
        if not 0.0 <= f <= 1.0:
            raise ConfigError(f"config.{field}: {v!r} is not a rate in [0, 1]")
        out.append(f)
    if not out:
        raise ConfigError(f"config.{field}: expected at least one rate")
    return tuple(sorted(set(out)))


def _network(name: str, size: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    from experiments.zoo_networks import network  # noqa: PLC0415

    net = network(name, 1, int(size))
    return net.geoms, net.ops


def model_size(name: str, resolution: int = 0, model_resolution: Mapping[str, int] | None = None
               ) -> int:
    """The input size the studies run ``name`` at: its ``model_resolution`` entry, else
    ``resolution`` (when > 0), else the zoo model's own input size."""
    if model_resolution and name in model_resolution:
        return int(model_resolution[name])
    if resolution:
        return int(resolution)
    import models  # noqa: PLC0415

    if name not in models.available():
        raise ConfigError(f"models: {name!r} is not a zoo model; the what-if study builds the "
                          f"layer shapes of zoo models only ({', '.join(models.available())})")
    return int(models.get_spec(name).input_size)


def frontier(speedup: np.ndarray, firing: Sequence[float], hits: Sequence[float],
             target: float) -> list[float | None]:
    """Per firing rate (rows of ``speedup [F, H]``), the lowest hit rate whose speedup is at
    least ``target``, or ``None`` where no hit rate of the grid reaches it."""
    out: list[float | None] = []
    for i in range(len(firing)):
        ok = [h for j, h in enumerate(hits) if speedup[i][j] >= target]
        out.append(min(ok) if ok else None)
    return out


def _p(x: float) -> str:
    return f"{100 * x:g}%"


def region_text(front: Sequence[float | None], firing: Sequence[float]) -> str:
    """A frontier as text: ``"firing <= 5% with hit >= 80%; firing <= 20% with hit >= 95%"``
    (one step per distinct hit requirement, at the largest firing rate that needs it), or
    ``"nowhere on the grid"``."""
    steps = []
    for i, h in enumerate(front):
        if h is None:
            continue
        nxt = front[i + 1] if i + 1 < len(front) else None
        if nxt is None or nxt != h:
            steps.append(f"firing <= {_p(firing[i])} with hit >= {_p(h)}")
    if not steps:
        return "nowhere on the grid"
    if all(h == front[0] for h in front) and front[0] == 0.0:
        return "everywhere on the grid"
    return "; ".join(steps)


def whatif(models: Mapping[str, int], *, firing: Sequence[float], hits: Sequence[float],
           zero_miss: float = 0.0, gpus: Sequence[str] = ("h100", "gtx1080ti"),
           launch: str = "persistent", fusion: str = "epilogue", precision: str = "fp32",
           seed: int = 0, networks: Mapping[str, tuple[Sequence[Any], Sequence[Any]]] | None
           = None) -> WhatifResult:
    """The what-if surface (module docstring).

    Args:
      models: ``{model name: input size}`` (zoo models: their layer shapes at that size).
      firing, hits: the grid's firing and hit rates (each in ``[0, 1]``).
      zero_miss: share of missed firing inputs predicted zero (:class:`secnn_jax.synthetic.
        Rates`).
      gpus: GPU keys.
      launch, fusion: SE-CNN's launch model and fusion policy (and the ``zero_skip``
        baseline's).
      precision: arithmetic precision of the replay.
      seed: the synthesis seed.
      networks: ``{model: (layers, ops)}`` used instead of the zoo's (a workspace's
        :meth:`~experiments.cells.Workspace.layers` and ``ops``, tests); layers are read as
        :class:`~secnn_jax.geometry.LayerGeom` (NHWC).

    Returns:
      A :class:`WhatifResult` (its ``verdicts``: :func:`claims`, each row with a
      ``verdict``); a cell per (model, GPU) holds ``secnn_us`` ``{variant: [F][H]}``,
      ``baseline_us`` ``{baseline: [F][H]}``, ``speedup`` ``{variant: {baseline: [F][H]}}``,
      the achieved rates and the ``region``
      ``{variant: {baseline: {"low", "high", "best", "best_at"}}}`` (frontiers at the lowest
      and highest average claim, :func:`frontier`).
    """
    from secnn_jax import timing  # noqa: PLC0415

    firing = check_rates(firing, "whatif_firing")
    hits = check_rates(hits, "whatif_hits")
    check_rates([zero_miss], "whatif_zero_miss")
    if launch not in LAUNCH_MODELS:
        raise ConfigError(f"config.launch={launch!r}: one of {', '.join(LAUNCH_MODELS)}")
    if fusion not in FUSIONS:
        raise ConfigError(f"config.fusion={fusion!r}: one of {', '.join(FUSIONS)}")
    bls = baselines(launch, fusion)
    nets = {k: (tuple(_geom(x) for x in v[0]), tuple(v[1])) for k, v in (networks or {}).items()}
    points = [synthetic.Rates(f, h, zero_miss) for f in firing for h in hits]
    shape = (len(firing), len(hits))
    cells = []
    for name, size in models.items():
        layers, ops = nets[name] if name in nets else _network(name, size)
        logging.info("what-if %s at %d: %d layers, %d grid points", name, size, len(layers),
                     len(points))
        draws = synthetic.Synthesizer(layers, seed=seed)
        full = draws.events(synthetic.Rates(1.0, 1.0))
        base: dict[tuple[str, str], float] = {}
        for f in FUSIONS:  # frame-independent baselines: one all-firing frame
            dense = timing.replay_launches(layers, full, launches=LAUNCH_MODELS, gpus=gpus,
                                           schemes=("dense",), precision=precision, fusion=f,
                                           ops=ops)
            naive = timing.replay(layers, full, gpus=gpus, schemes=("zero_skip",),
                                  precision=precision, launch="eager", fusion=f, ops=ops,
                                  config=_naive_config())
            for g in naive.gpus:
                base[(g, f"naive/eager/{f}")] = float(naive.get(g, "zero_skip").total_us[0])
                for ln, r in dense.items():
                    base[(g, f"dense/{ln}/{f}")] = float(r.get(g, "dense").total_us[0])
        del full
        got: list[dict[str, float]] = []
        us: dict[tuple[str, str], list[np.ndarray]] = {}
        for i in range(len(firing)):  # one firing rate's hit rates at a time (memory bound)
            events = draws.events(points[i * len(hits):(i + 1) * len(hits)])
            got += synthetic.achieved(events)
            row = timing.replay(layers, events, gpus=gpus, schemes=("zero_skip", *SECNN),
                                precision=precision, launch=launch, fusion=fusion, ops=ops,
                                batch_frames=len(hits))
            for g in row.gpus:
                for v in row.schemes:
                    us.setdefault((g, v), []).append(row.get(g, v).total_us)
            del events
        for g in row.gpus:
            sec = {v: np.stack(us[(g, v)]) for v in SECNN}
            bus = {b.key: (np.stack(us[(g, "zero_skip")]) if b.events == "grid"
                           else np.full(shape, base[(g, b.key)])) for b in bls}
            # Rounded as stored, so that the regions are those of the stored speedups.
            sp = {v: {k: np.asarray(_r(bus[k] / sec[v])) for k in bus} for v in SECNN}
            region = {v: {k: _region(sp[v][k], firing, hits) for k in bus} for v in SECNN}
            cells.append({
                "model": name, "size": int(size), "gpu": g, "layers": len(layers),
                "inputs": int(sum(int(np.prod(_geom(lyr).in_nhwc)) for lyr in layers)),
                "achieved": [[{k: _r(v) for k, v in got[i * len(hits) + j].items()
                               if k != "zero_miss" or zero_miss > 0}
                              for j in range(len(hits))] for i in range(len(firing))],
                "secnn_us": {v: _r(a) for v, a in sec.items()},
                "baseline_us": {k: _r(a) for k, a in bus.items()},
                "speedup": {v: {k: _r(a) for k, a in d.items()} for v, d in sp.items()},
                "region": region,
            })
    res = WhatifResult(firing=tuple(firing), hits=tuple(hits), zero_miss=float(zero_miss),
                       seed=int(seed), precision=precision, gpus=tuple(gpus),
                       secnn={"launch": launch, "fusion": fusion}, claim_range=CLAIM_RANGE,
                       naive_config=dict(NAIVE_CONFIG),
                       baselines=tuple(dataclasses.asdict(b) for b in bls), cells=tuple(cells))
    return dataclasses.replace(res, verdicts=tuple(claims(res)))


def _geom(layer: Any) -> Any:
    from secnn_jax.geometry import LayerGeom  # noqa: PLC0415

    return layer if isinstance(layer, LayerGeom) else LayerGeom.from_layer(layer)


def _r(a: Any) -> Any:
    """Rounded plain data (floats to 6 significant digits; nested lists)."""
    if isinstance(a, np.ndarray):
        return _r(a.tolist())
    if isinstance(a, list | tuple):
        return [_r(x) for x in a]
    if isinstance(a, float | np.floating):
        x = float(a)
        return x if not math.isfinite(x) or x == 0 else float(f"{x:.6g}")
    return a


def _region(sp: np.ndarray, firing: Sequence[float], hits: Sequence[float]) -> dict[str, Any]:
    lo, hi = CLAIM_RANGE
    i, j = np.unravel_index(int(np.argmax(sp)), sp.shape)
    return {"low": frontier(sp, firing, hits, lo), "high": frontier(sp, firing, hits, hi),
            "best": _r(float(sp[i, j])), "best_at": [float(firing[i]), float(hits[j])]}


# --- judging and text (every sentence from the numbers) -------------------------------------

def _reached(cell: Mapping[str, Any], variant: str, which: str) -> list[tuple[str, float]]:
    """``(baseline, its fastest time where the claim is reached)`` for each baseline against
    which ``variant`` reaches the ``which`` (``low``/``high``) claim somewhere, fastest first."""
    out = []
    for key, reg in cell["region"][variant].items():
        front = reg[which]
        if any(h is not None for h in front):
            us = np.asarray(cell["baseline_us"][key], float)
            sp = np.asarray(cell["speedup"][variant][key], float)
            target = CLAIM_RANGE[0 if which == "low" else 1]
            out.append((key, float(us[sp >= target].min())))
    return sorted(out, key=lambda x: (x[1], x[0]))


def _like_for_like(res: WhatifResult) -> tuple[str, str]:
    s = res.secnn
    return f"dense/{s['launch']}/{s['fusion']}", f"zero_skip/{s['launch']}/{s['fusion']}"


def claims(res: WhatifResult | Mapping[str, Any], variant: str = "secnn_hw"
           ) -> list[dict[str, str]]:
    """Verdict rows, one per model and GPU: do the paper's average speedups (the lowest, 7.9x)
    come out of the timing model anywhere on the what-if grid? ``holds``: against both
    baselines under SE-CNN's own launch and fusion (``dense`` and ``zero_skip``); ``partly``:
    only against weaker baselines; ``does not hold``: against none."""
    res = WhatifResult.of(res)
    lo, hi = CLAIM_RANGE
    same = _like_for_like(res)
    rows = []
    for c in res.cells:
        reached = _reached(c, variant, "low")
        keys = [k for k, _ in reached]
        verdict = ("holds" if all(k in keys for k in same) else
                   "partly" if keys else "does not hold")
        best = {k: c["region"][variant][k]["best"] for k in same}
        if reached:
            k = reached[0][0]
            ours = (f"{variant} reaches {lo:g}x against {k} at the strongest "
                    f"({region_text(c['region'][variant][k]['low'], res.firing)}); ")
        else:
            ours = f"{variant} reaches {lo:g}x against no baseline; "
        ours += "best against " + ", ".join(f"{k}: {_times(v)}" for k, v in best.items())
        rows.append(claim_row(
            "the paper's average speedups come out of the timing model at some firing and hit "
            "rate (what-if)",
            f"the paper's average speedups come out of the timing model at some firing and hit "
            f"rate ({c['model']}, {c['gpu']}; what-if)",
            f"{lo:g}x-{hi:g}x", ours, verdict, model=c["model"], gpu=c["gpu"]))
    return rows


def paragraph(res: WhatifResult | Mapping[str, Any], variant: str = "secnn_hw") -> list[str]:
    """What the paper must have assumed, one sentence per model and GPU and one overall, from
    the results."""
    res = WhatifResult.of(res)
    lo, hi = CLAIM_RANGE
    same = _like_for_like(res)
    out = []
    everywhere: set[str] | None = None
    like = 0
    for c in res.cells:
        reached = _reached(c, variant, "low")
        keys = {k for k, _ in reached}
        everywhere = keys if everywhere is None else everywhere & keys
        like += all(k in keys for k in same)
        head = f"{c['model']} on {c['gpu']}: {variant}"
        if not reached:
            best_k = max(sorted(c["region"][variant]),
                         key=lambda k: c["region"][variant][k]["best"])
            b = c["region"][variant][best_k]
            out.append(f"{head} reaches {lo:g}x against none of the {len(c['region'][variant])}"
                       f" baselines; its best is {_times(b['best'])} over {best_k} (firing "
                       f"{_p(b['best_at'][0])}, hit {_p(b['best_at'][1])}).")
            continue
        k, us = reached[0]
        reg = c["region"][variant][k]
        s = (f"{head} reaches {lo:g}x against {len(reached)} of {len(c['region'][variant])} "
             f"baselines; the strongest of them is {k} ({us:.1f} us), where it needs "
             f"{region_text(reg['low'], res.firing)}")
        high = _reached(c, variant, "high")
        s += (f"; the strongest against which {hi:g}x comes out is {high[0][0]} "
              f"({region_text(c['region'][variant][high[0][0]]['high'], res.firing)})"
              if high else f"; {hi:g}x comes out against none")
        stronger = [x for x in same if x not in keys]
        if stronger:
            s += "; against " + ", ".join(
                f"{x} the best is {_times(c['region'][variant][x]['best'])}" for x in stronger)
        out.append(s + ".")
    n = len(res.cells)
    common = sorted(everywhere or ())
    some = sum(bool(_reached(c, variant, "low")) for c in res.cells)
    tail = (f"against both baselines under SE-CNN's own launch and fusion ({', '.join(same)}) "
            f"they come out in {like} of {n}.")
    if common:
        out.append(f"The paper's averages come out in every one of the {n} model and GPU pairs "
                   f"only against "
                   f"{', '.join(common)}; {tail} So the paper must have assumed a baseline no "
                   f"stronger than these, at the firing and hit rates above.")
    else:
        out.append(f"Against no baseline of the study do the paper's averages come out in "
                   f"every one of the {n} model and GPU pairs (against some baseline in {some} "
                   f"of {n}); {tail} "
                   f"So the paper's numbers need conditions outside this grid: a baseline "
                   f"weaker than any here, or costs other than this timing model's.")
    return out


def section(res: WhatifResult | Mapping[str, Any]) -> list[str]:
    """The study's ``report.md`` section: setup, the table, the figure and the paragraph."""
    res = WhatifResult.of(res)
    lo, hi = CLAIM_RANGE
    s = res.secnn
    out = ["## What would make the paper's numbers true (what-if)", "",
           f"Synthetic event maps on each model's real layer shapes at firing rates "
           f"{', '.join(_p(f) for f in res.firing)} and hit rates "
           f"{', '.join(_p(h) for h in res.hits)} (zero-miss share "
           f"{_p(res.zero_miss)}; silent inputs predicted zero), replayed through the same "
           f"timing model; SE-CNN under {s['launch']} launch and {s['fusion']} fusion. The "
           f"region is where the speedup reaches the paper's lowest average claim "
           f"({lo:g}x; {hi:g}x is its highest).", "",
           "Baselines: " + "; ".join(f"`{b['key']}`: {b['doc']}" for b in res.baselines)
           + ".", ""]
    rows = []
    for c in res.cells:
        order = sorted(c["baseline_us"],
                       key=lambda k: (-float(np.mean(c["baseline_us"][k])), k))
        for k in order:
            us = np.asarray(c["baseline_us"][k], float)
            t = f"{us.min():.1f}" if us.min() == us.max() else f"{us.min():.1f}-{us.max():.1f}"
            row = [c["model"], c["gpu"], f"`{k}`", t]
            for v in SECNN:
                reg = c["region"][v][k]
                row += [f"{_times(reg['best'])}", region_text(reg["low"], res.firing)]
            row.append(region_text(c["region"]["secnn_hw"][k]["high"], res.firing))
            rows.append(row)
    out += [_table(["model", "GPU", "baseline (weakest first)", "baseline us",
                    *[x for v in SECNN for x in (f"{v} best", f"{v} >= {lo:g}x where")],
                    f"secnn_hw >= {hi:g}x where"], rows),
            "", "![what-if](figures/whatif.png)", "", "**What the paper must have assumed.** "
            + " ".join(paragraph(res)), ""]
    return out


def figure(res: WhatifResult | Mapping[str, Any], path: str | Path,
           variant: str = "secnn_hw") -> Path:
    """One panel per model and GPU: ``variant``'s speedup over each baseline against the firing
    rate, a line at the highest hit rate of the grid and a band down to the lowest, with the
    paper's average claims shaded."""
    res = WhatifResult.of(res)
    import matplotlib.ticker  # noqa: PLC0415

    from experiments.figures import fit_titles, plt, save  # noqa: PLC0415

    cells = res.cells
    cols = min(2, len(cells))
    rows = -(-len(cells) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.9 * rows), squeeze=False)
    x = np.asarray(res.firing, float)
    lo, hi = CLAIM_RANGE
    colours = plt.get_cmap("tab10")
    for ax, c in zip(axes.ravel(), cells, strict=False):
        ax.axhspan(lo, hi, color="#cccccc", alpha=0.5, label=f"paper {lo:g}x-{hi:g}x")
        for n, key in enumerate(b["key"] for b in res.baselines):  # construction order
            sp = np.asarray(c["speedup"][variant][key], float)
            col = colours(n % 10)
            ax.plot(x, sp[:, -1], "o-", color=col, ms=3, lw=1.2, label=key)
            ax.fill_between(x, sp[:, 0], sp[:, -1], color=col, alpha=0.12)
        if x.min() > 0:  # a firing rate of 0 has no place on a log axis
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(x, [_p(f) for f in x], minor=False)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("firing rate (share of non-zero inputs)")
        ax.set_ylabel(f"{variant} speedup")
        ax.set_title(f"{c['model']} ({c['size']}), {c['gpu']}: line hit "
                     f"{_p(res.hits[-1])}, band down to hit {_p(res.hits[0])}",
                     fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.ravel()[len(cells):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=7, frameon=False)
    fit_titles(fig)
    fig.tight_layout(rect=(0, 0.1 / rows, 1, 1))
    return save(fig, path)


def render(res: WhatifResult | Mapping[str, Any], command: str = "experiments.whatif") -> str:
    """``report.md`` of the study alone: its claim rows, then its section."""
    rows = claims(res)
    out = ["# SE-CNN what-if report", "", f"Generated by `python -m {command}`. Configuration: "
           "`config.json`; code version and environment: `environment.json`.", "",
           _table(["claim", "paper", "ours", "verdict"],
                  [[r["claim"], r["paper"], r["ours"], f"**{r['verdict']}**"] for r in rows]),
           "", *section(res)]
    return "\n".join(out).rstrip() + "\n"


def from_config(cfg: Any, models: bool = True) -> dict[str, Any]:
    """The :func:`whatif` keyword arguments of a configuration (a
    :class:`~experiments.config.Settings`, or a ConfigDict parsed and checked by
    :func:`~experiments.config.settings`); with ``models``, ``models`` too:
    ``{zoo model: input size}`` (:func:`model_size`)."""
    cfg = config_lib.settings(cfg)
    out: dict[str, Any] = {}
    if models:
        out["models"] = {m: model_size(m, cfg.resolution, dict(cfg.model_resolution))
                         for m in cfg.models}
    return {**out,
            "firing": check_rates(cfg.whatif_firing, "whatif_firing"),
            "hits": check_rates(cfg.whatif_hits, "whatif_hits"),
            "zero_miss": check_rates([cfg.whatif_zero_miss], "whatif_zero_miss")[0],
            "gpus": cfg.gpus, "launch": cfg.launch, "fusion": cfg.fusion,
            "precision": cfg.precision, "seed": cfg.whatif_seed}


def from_workspace(ws: Any, cfg: Any) -> WhatifResult:
    """:func:`whatif` on the models of a workspace (``reproduce``): each model's layers and op
    groups at its first stream's frame shape (:meth:`~experiments.cells.Workspace.layers`,
    ``ops``: any model, zoo or not), the grid and timing options of ``cfg``."""
    stream = next(iter(ws.streams))
    nets = {m: (ws.layers(m, stream), ws.ops(m, stream)) for m in ws.models}
    kw = from_config(cfg, models=False)
    return whatif({m: int(_geom(v[0][0]).h) for m, v in nets.items()}, networks=nets, **kw)


#: The configuration fields the study reads (``--help`` lists them).
FIELDS: tuple[str, ...] = config_lib.COMMAND_FIELDS["whatif"]


def main(argv: Sequence[str]) -> None:
    """``python -m experiments.whatif``: the what-if surface; prints the claim rows and the
    section and writes ``results/whatif.json``, ``figures/whatif.png`` and ``report.md``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli, runs  # noqa: PLC0415

    for flag in ("streams", "frames"):
        if getattr(cli.FLAGS, flag) is not None:
            raise ConfigError(f"--{flag}: the what-if study reads no stream (it synthesises "
                              "its event maps); leave it out")
    cfg = cli.resolve()
    kw = from_config(cfg)  # every value checked before anything is written
    asked = cfg.to_dict()  # what config.json records: the values as asked
    record = {k: asked[k] for k in FIELDS}
    run = runs.RunDir(cli.FLAGS.out_dir, record, overwrite=cli.FLAGS.overwrite)
    res = whatif(**kw)
    run.write_json("results/whatif.json", res.to_json())
    figure(res, run.path("figures", "whatif.png"))
    text = render(res)
    run.write_text("report.md", text)
    run.finish()
    sys.stdout.write(text)


if __name__ == "__main__":
    from experiments import cli as _cli

    _cli.run(main, "runs/whatif", FIELDS)
