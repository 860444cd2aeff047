"""The timing model against the measurements beyond single convolutions: op kernels timed alone,
the concurrency probe and the software SE-CNN probe.

The files are those ``python -m experiments.measure_gpu`` writes (columns in
``secnn_jax/timing/measurements/README.md``); nothing here is fitted — each row is predicted
with the parameters fitted on the convolutions, so these are validation figures:

* **op kernels** (``ops.csv``): one kernel per op group (BatchNorm, activation, residual add,
  pooling, ...) with the element counts, bytes and arithmetic of a real network's op group;
  predicted as :func:`~secnn_jax.timing.kernels.elementwise_cost` (what every scheme costs them
  with) plus the GPU's measured tiny-kernel time (each row is timed alone).
* **concurrency** (``concurrency.csv``): ``n`` identical convolutions in one compiled program,
  independent (no data dependence: what SE-CNN's parallel phase needs to overlap) or chained;
  both timed by the one scheduler (:mod:`.scheduler`) under the ``graph`` launch model, as
  every scheme's graph is: the independent copies as a pool of kernels released at once
  (SE-CNN's parallel phase: they share the SMs' slots and the bandwidth, none faster than
  alone), the chained ones as a chain separated by the graph gap (``graph_kernel_us``).
* **software SE-CNN** (``secnn_sw.csv``): per real layer shape and event density, the compare
  of real against predicted inputs, the stream compaction of the mispredicted ones and the
  gather-based sparse amendment; predicted by replaying the ``secnn_sw`` scheme (software
  compaction) on that one layer with events of that density.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import kernels as K
from secnn_jax.timing import scheduler as SCH
from secnn_jax.timing.calibration import MeasurementError, mape, positive_number, read_csv
from secnn_jax.timing.gpus import (
    ELEMENT_BYTES,
    GPU,
    PRECISION_ALIASES,
    canonical_precision,
    get_gpu,
)
from secnn_jax.timing.launch import LaunchCosts
from secnn_jax.timing.opkernels import OpGeom, op_bytes
from secnn_jax.timing.params import ModelParams, SchemeConfig
from secnn_jax.timing.sm import bandwidth

__all__ = ["CONCURRENCY_COLUMNS", "OPS_COLUMNS", "SW_COLUMNS", "ProbeRow", "concurrency_us",
           "concurrency_markdown", "op_us", "ops_markdown", "read_probe", "secnn_sw_us",
           "sw_markdown"]

#: Required columns of ``ops.csv``.
OPS_COLUMNS: tuple[str, ...] = ("net", "name", "kind", "B", "mode", "reads", "param_reads",
                                "writes", "flops", "us_median")
#: Required columns of ``concurrency.csv``.
CONCURRENCY_COLUMNS: tuple[str, ...] = ("name", "cin", "cout", "k", "H", "B", "mode", "n",
                                        "arrangement", "us_median")
#: Required columns of ``secnn_sw.csv``.
SW_COLUMNS: tuple[str, ...] = ("net", "name", "geom", "B", "mode", "density", "nnz",
                               "compare_us", "compact_us", "amend_us", "dense_us")
_KIND = {"ops": OPS_COLUMNS, "concurrency": CONCURRENCY_COLUMNS, "secnn_sw": SW_COLUMNS}
_TIMES = {"ops": ("us_median",), "concurrency": ("us_median",),
          "secnn_sw": ("compare_us", "compact_us", "amend_us", "dense_us")}


@dataclasses.dataclass(frozen=True)
class ProbeRow:
    """One row of a probe file, checked.

    Attributes:
      precision: canonical precision of ``mode``.
      times: the row's measured microseconds by column (each finite and > 0).
      row: the row as read (strings).
    """

    precision: str
    times: Mapping[str, float]
    row: Mapping[str, str]

    def integer(self, col: str) -> int:
        """Column ``col`` as an integer."""
        return int(self.row[col])


def read_probe(path: str | Path, kind: str) -> list[ProbeRow]:
    """Reads a probe file of ``kind`` (``ops``, ``concurrency`` or ``secnn_sw``).

    Raises:
      MeasurementError: a missing column, a bad precision, a time that is not a finite number
        > 0, an integer column that is not one, or no rows — naming the file and line.
    """
    if kind not in _KIND:
        raise MeasurementError(f"unknown probe kind {kind!r}; known: {', '.join(_KIND)}")
    path = Path(path)
    _, rows = read_csv(path, _KIND[kind])
    out = []
    for line, row in enumerate(rows, start=2):
        mode = str(row.get("mode", "")).strip()
        if mode.lower() not in PRECISION_ALIASES:
            raise MeasurementError(f"{path}:{line}: column 'mode' has unknown precision {mode!r}")
        for col in _KIND[kind]:
            if col in ("B", "n", "cin", "cout", "k", "H", "reads", "writes", "nnz"):
                v = str(row.get(col, "")).strip()
                if not v.isdigit() or (int(v) < 1 and col not in ("reads", "writes", "nnz")):
                    raise MeasurementError(f"{path}:{line}: column {col!r} must be a positive "
                                           f"integer, got {row.get(col)!r}")
        times = {c: positive_number(path, line, row, c) for c in _TIMES[kind]}
        if kind == "secnn_sw":
            _sw_geom(path, line, row)
            d = positive_number(path, line, row, "density")
            if d > 1:
                raise MeasurementError(f"{path}:{line}: column 'density' must be <= 1")
        out.append(ProbeRow(precision=canonical_precision(mode), times=times, row=dict(row)))
    if not out:
        raise MeasurementError(f"{path}: no measurement rows")
    return out


def _sw_geom(path: Path, line: int, row: Mapping[str, str]) -> LayerGeom:
    try:
        return LayerGeom.from_dict({**json.loads(row["geom"]), "name": row.get("name", "layer")})
    except (json.JSONDecodeError, TypeError, ValueError, KeyError) as e:
        raise MeasurementError(f"{path}:{line}: column 'geom' is not a layer geometry "
                               f"({e})") from e


# --- predictions ------------------------------------------------------------------------------

def op_geom(r: ProbeRow) -> OpGeom:
    """The op group a row of ``ops.csv`` measured."""
    return OpGeom(name=r.row["name"], kind=r.row["kind"], after=-1, reads=r.integer("reads"),
                  param_reads=int(r.row.get("param_reads") or 0), writes=r.integer("writes"),
                  flops=int(r.row.get("flops") or 0))


def op_us(rows: Sequence[ProbeRow], gpu: str | GPU, params: ModelParams) -> np.ndarray:
    """Predicted microseconds of each op-kernel row (timed alone: plus the tiny-kernel time)."""
    g = get_gpu(gpu)
    out = []
    for r in rows:
        o = op_geom(r)
        kc = K.elementwise_cost(o.writes or o.reads, op_bytes(o, r.precision), o.flops, g,
                                r.precision, params)
        out.append(g.event_overhead_us + g.us(kc.cycles))
    return np.array(out)


def _conc_geom(r: ProbeRow) -> LayerGeom:
    return LayerGeom.conv(r.row["name"], n=r.integer("B"), h=r.integer("H"), cin=r.integer("cin"),
                          cout=r.integer("cout"), k=r.integer("k"))


def concurrency_us(geom: LayerGeom, n: int, precision: str, gpu: str | GPU,
                   params: ModelParams, layout: str = "NHWC") -> tuple[float, float]:
    """``(independent_us, chained_us)`` the model predicts for ``n`` copies of ``geom``'s
    convolution in one program timed alone (see the module docstring).

    Both arrangements are timed by the one scheduler (:func:`.scheduler.schedule`) under the
    ``graph`` launch model (one compiled program), as every scheme's graph is: the independent
    copies are a :class:`~.scheduler.Pool` of ``n`` kernels released together (SE-CNN's
    parallel phase), each never faster than alone; the chained copies a
    :class:`~.scheduler.Chain` separated by the launch model's graph gap. So the probe
    validates the scheduler's overlap of independent kernels.
    """
    g = get_gpu(gpu)
    cfg = SchemeConfig(layout=layout)
    kc = K.dense_cost(geom, g, precision, params, cfg)
    lc = LaunchCosts.of("graph", g, params, cfg)
    nbytes = float(ELEMENT_BYTES[canonical_precision(precision)] * (
        geom.n_inputs + geom.weights + geom.n_outputs))
    bw = bandwidth(g, n * nbytes, params)[None]  # the n kernels share the memory
    w, d = K.dense_grid(kc, 1)
    indep = SCH.schedule(
        SCH.Chain(duration=np.zeros((1, 0)), busy=np.zeros((1, 0)), nbytes=np.zeros((1, 0)),
                  gap=np.zeros(0), issue=np.zeros(0), dep=np.zeros(0, np.int64), labels=()),
        SCH.Pool(w=[w] * n, d=[d] * n, occupancy=[kc.occupancy] * n,
                 nbytes=np.full((1, n), nbytes), release=np.zeros(n),
                 alone=np.full(n, kc.cycles)),
        g.sms, bw)
    chained = SCH.schedule(
        SCH.Chain(duration=np.full((1, n), kc.cycles), busy=np.full((1, n), kc.busy_cycles),
                  nbytes=np.full((1, n), nbytes), gap=np.full(n, lc.gap), issue=np.zeros(n),
                  dep=np.full(n, -1, np.int64), labels=(geom.name,) * n),
        None, g.sms, bw)
    extra = (kc.kernels - 1) * params.extra_kernel_us
    return (g.event_overhead_us + g.us(float(indep.total[0])) + extra,
            g.event_overhead_us + g.us(float(chained.total[0])) + n * extra)


def secnn_sw_us(geom: LayerGeom, density: float, precision: str, gpu: str | GPU,
                params: ModelParams, seed: int = 0) -> dict[str, float]:
    """The ``secnn_sw`` model's ``compare``, ``compact`` and ``amend`` microseconds (kernel
    time, no launch) for one layer whose inputs are mispredicted at ``density``."""
    from secnn_jax.timing.replayer import replay  # noqa: PLC0415  (replay imports this layer)

    g = get_gpu(gpu)
    rng = np.random.default_rng(seed)
    codes = np.where(rng.random((1, *geom.in_nhwc)) < density, 3, 2).astype(np.uint8)
    res = replay([geom], {geom.name: codes}, gpus=[g], schemes=["secnn_sw"],
                 precision=precision, ops=(), params=params,
                 config=SchemeConfig(sw_compaction="software", layout="NHWC"))
    lp = res.get(g, "secnn_sw").layer_phases
    return {"compare": g.us(float(lp["compare"][0, 0])),
            "compact": g.us(float(lp["compaction"][0, 0])),
            "amend": g.us(float(lp["amend"][0, 0]))}


# --- markdown sections --------------------------------------------------------------------

def _pct(pred: float, meas: float) -> str:
    return f"{100.0 * (pred - meas) / meas:+.0f}%"


def ops_markdown(rows: Sequence[ProbeRow], gpu: str | GPU, params: ModelParams
                 ) -> tuple[list[str], dict[str, Any]]:
    """The op-kernel section of ``VALIDATION.md`` and its numbers (MAPE per kind)."""
    pred = op_us(rows, gpu, params)
    meas = np.array([r.times["us_median"] for r in rows])
    kinds = np.array([r.row["kind"] for r in rows])
    lines = ["## Op kernels timed alone (not fitted)", "",
             "Each row is one kernel with the element counts, bytes and arithmetic of a real "
             "network's op group, predicted as the bandwidth-bound kernel every scheme costs "
             "it with, plus the tiny-kernel time.", "",
             "| kind | rows | MAPE | mean measured (us) | mean predicted (us) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    by: dict[str, Any] = {}
    for k in sorted(set(kinds.tolist())):
        sel = kinds == k
        by[k] = {"rows": int(sel.sum()), "mape": mape(pred[sel], meas[sel])}
        lines.append(f"| {k} | {int(sel.sum())} | {by[k]['mape']:.1f}% | "
                     f"{meas[sel].mean():.1f} | {pred[sel].mean():.1f} |")
    total = mape(pred, meas)
    lines += [f"| **all** | {len(rows)} | **{total:.1f}%** | | |", ""]
    return lines, {"mape": total, "kinds": by}


def concurrency_markdown(rows: Sequence[ProbeRow], gpu: str | GPU, params: ModelParams
                         ) -> tuple[list[str], dict[str, Any]]:
    """The concurrency section: measured and modelled overlap (chained / independent time)."""
    groups: dict[tuple[str, str, int, int], dict[str, ProbeRow]] = {}
    for r in rows:
        key = (r.row["name"], r.precision, r.integer("B"), r.integer("n"))
        groups.setdefault(key, {})[r.row["arrangement"]] = r
    lines = ["## Concurrency: n independent convolutions vs the same n chained", "",
             "One compiled program of n identical convolutions, independent (what SE-CNN's "
             "parallel phase overlaps) or chained. *overlap* = chained / independent time "
             "(1: none; n: perfect). Model: SE-CNN's parallel-phase schedule vs a chain with "
             "the graph gap.", "",
             "| shape | precision | B | n | chained (us) | independent (us) | overlap | "
             "model chained | model independent | model overlap |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    out: list[dict[str, Any]] = []
    for (name, prec, b, n), arr in sorted(groups.items()):
        if not {"chained", "independent"} <= set(arr):
            continue
        r = arr["independent"]
        mi, mc = r.times["us_median"], arr["chained"].times["us_median"]
        pi, pc = concurrency_us(_conc_geom(r), n, prec, gpu, params)
        out.append({"shape": name, "precision": prec, "batch": b, "n": n,
                    "overlap": mc / mi, "model_overlap": pc / pi})
        lines.append(f"| {name} | {prec} | {b} | {n} | {mc:.1f} | {mi:.1f} | {mc / mi:.2f}x | "
                     f"{pc:.1f} | {pi:.1f} | {pc / pi:.2f}x |")
    lines.append("")
    return lines, {"probes": out}


def sw_markdown(rows: Sequence[ProbeRow], gpu: str | GPU, params: ModelParams
                ) -> tuple[list[str], dict[str, Any]]:
    """The software SE-CNN section: compare, compaction and amendment, measured vs the
    ``secnn_sw`` model, per layer and density (kernel times: the tiny-kernel time, which every
    timed-alone measurement includes, is subtracted from the measurements)."""
    g = get_gpu(gpu)
    lines = ["## Software SE-CNN pieces on a stock GPU", "",
             "Per real layer shape and density of mispredicted inputs: the compare of real "
             "against predicted inputs, the stream compaction of the mispredicted ones, the "
             "gather-based sparse amendment `y += W[:, idx] @ delta[idx]`, and the layer's "
             "dense kernel for reference; measured kernel time (tiny-kernel time subtracted) "
             "vs the `secnn_sw` model (software compaction).", "",
             "| layer | precision | density | compare (us) | model | compaction (us) | model | "
             "amend (us) | model | dense (us) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    meas: dict[str, list[float]] = {"compare": [], "compact": [], "amend": []}
    pred: dict[str, list[float]] = {"compare": [], "compact": [], "amend": []}
    for r in rows:
        geom = _sw_geom(Path("secnn_sw.csv"), 0, r.row)
        model = secnn_sw_us(geom, float(r.row["density"]), r.precision, g, params)
        m = {p: max(r.times[f"{p}_us"] - g.event_overhead_us, 0.01) for p in model}
        for p in model:
            meas[p].append(m[p])
            pred[p].append(model[p])
        dense = max(r.times["dense_us"] - g.event_overhead_us, 0.01)
        lines.append(f"| {r.row['net']}/{r.row['name']} | {r.precision} | "
                     f"{float(r.row['density']):.0%} | {m['compare']:.1f} | "
                     f"{model['compare']:.1f} | {m['compact']:.1f} | {model['compact']:.1f} | "
                     f"{m['amend']:.1f} | {model['amend']:.1f} | {dense:.1f} |")
    summary = {p: mape(np.array(pred[p]), np.array(meas[p])) for p in meas}
    lines += ["", "MAPE of the model: " + ", ".join(f"{p} {v:.0f}%" for p, v in summary.items())
              + ".", ""]
    return lines, {"mape": summary}
