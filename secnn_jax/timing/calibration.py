"""Calibration and validation of the dense kernel model against real kernel measurements.

The measurements (``measurements/h100_cudnn_conv.csv``, shipped in the package) time
single PyTorch/cuDNN convolutions (NCHW, ``cudnn.benchmark``) with CUDA events. The model
predicts each row as

    pred_us = event_overhead_us + cycles / clock_mhz + (kernels - 1) * extra_kernel_us

with ``cycles`` the cheapest ``dense`` candidate (:func:`secnn_jax.timing.schemes.dense_cost`,
``layout="NCHW"``) and ``event_overhead_us`` the GPU's *measured* tiny-kernel time (not fitted).

Fitted: the six :class:`~secnn_jax.timing.schemes.ModelParams` — efficiency per precision
(fraction of the measured matmul ceiling), ``latency_cycles``, ``l2_bandwidth_factor`` and
``extra_kernel_us`` — by Nelder-Mead on a robust (capped) absolute percentage error: each row
contributes ``min(|pred - meas| / meas, ROBUST_CAP)``, so a few anomalous measurements (e.g.
FP16 batch-1 rows whose median is 30-60% above their own minimum) cannot drag the fit; bounds
keep the parameters physical (efficiency <= 1, L2 at least as fast as DRAM). The cap was chosen
among plain MAPE, mean |log ratio|, a Huber loss and caps of 20-40% by the cross-validated
error (caps of 20-30% all give 16-17%; plain MAPE 21%). Validation reports MAPE
per precision and batch, fitted on all rows and cross-validated leave-one-network-out (fit on
ResNet-50, predict VGG-16 and vice versa); whole networks are validated by :mod:`.e2e`.
``python -m experiments.calibrate_timing`` refits and, with ``--write`` only, rewrites the
committed ``params_h100.json`` and ``VALIDATION.md``; with ``--measurements=DIR`` it fits a
user's GPU from ``python -m experiments.measure_gpu`` measurements into a GPU file
(:mod:`.gpufile`).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secnn_jax import fileio
from secnn_jax.errors import SecnnError
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import kernels as K
from secnn_jax.timing import params as P
from secnn_jax.timing.gpus import GPU, PRECISION_ALIASES, canonical_precision, get_gpu

#: Columns a measurement file must have (extra columns are ignored).
REQUIRED_COLUMNS: tuple[str, ...] = ("cin", "cout", "k", "stride", "pad", "groups", "H", "B",
                                     "mode", "us_median")
#: Columns used when present: ``geom`` (the full :class:`LayerGeom` as JSON, for layers the
#: square columns cannot describe: dense layers, non-square kernels, asymmetric padding) and
#: ``layout`` (``NCHW`` or ``NHWC``; default ``NCHW``, PyTorch's) come from
#: ``python -m experiments.measure_gpu``.
OPTIONAL_COLUMNS: tuple[str, ...] = ("net", "name", "Ho", "macs", "us_min", "geom", "layout")

#: Layer classes the validation reports apart (:func:`layer_class`).
LAYER_CLASSES: tuple[str, ...] = ("standard", "depthwise", "grouped", "dense")

VALIDATION_PATH = Path(__file__).with_name("VALIDATION.md")
#: Parameter vector order of the fit.
FIT_NAMES: tuple[str, ...] = ("eff_fp32", "eff_tf32", "eff_fp16", "latency_cycles",
                              "l2_bandwidth_factor", "extra_kernel_us")
#: Per-row cap of the fit's loss (see the module docstring).
ROBUST_CAP = 0.25
_LOWER = np.array([0.05, 0.05, 0.05, 0.0, 1.0, 0.0])
_UPPER = np.array([1.0, 1.0, 1.0, 3000.0, 20.0, 50.0])


class MeasurementError(SecnnError, ValueError):
    """A measurement file is missing a column, has an unreadable value or is not text."""


class CalibrationError(SecnnError, ValueError):
    """A fit that cannot run as asked (no restarts, a CPU dry run as a GPU measurement)."""


def layer_class(g: LayerGeom) -> str:
    """``dense``, ``depthwise``, ``grouped`` or ``standard`` (:data:`LAYER_CLASSES`)."""
    if g.kind == "dense":
        return "dense"
    if g.is_depthwise:
        return "depthwise"
    return "grouped" if g.groups > 1 else "standard"


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One measured kernel (a row of a measurement CSV).

    Attributes:
      net: network name (``""`` if the column is absent).
      name: layer name.
      geom: the layer's geometry (batch included).
      precision: canonical precision.
      us_median: measured median time (microseconds).
      row: the row as read (strings), written back by ``validate_timing``.
      layout: tensor layout of the measured kernel (``NCHW`` or ``NHWC``).
    """

    net: str
    name: str
    geom: LayerGeom
    precision: str
    us_median: float
    row: Mapping[str, str]
    layout: str = "NCHW"

    @property
    def layer_class(self) -> str:
        """:func:`layer_class` of the geometry."""
        return layer_class(self.geom)

    @property
    def batch(self) -> int:
        """Batch size."""
        return self.geom.n


def read_measurements(path: str | Path) -> tuple[list[str], list[Measurement]]:
    """Reads a measurement CSV; returns its column names and rows.

    Raises:
      MeasurementError: a required column is missing (named), or a value cannot be read
        (row number, column and value named).
      FileNotFoundError: ``path`` does not exist.
    """
    columns, rows = read_csv(path, REQUIRED_COLUMNS)
    out = []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        out.append(_parse_row(path, i, row))
    if not out:
        raise MeasurementError(f"{path}: no measurement rows")
    return columns, out


def read_csv(path: str | Path, required: Sequence[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Columns and rows of a measurement CSV; a missing required column, a binary or non-UTF-8
    file, or a missing file raise :class:`MeasurementError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MeasurementError(f"measurements file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise MeasurementError(f"{path}: not a UTF-8 text CSV file ({e.reason} at byte "
                               f"{e.start})") from e
    if "\x00" in text:
        raise MeasurementError(f"{path}: not a text CSV file (contains NUL bytes)")
    reader = csv.DictReader(text.splitlines())
    columns = list(reader.fieldnames or [])
    missing = [c for c in required if c not in columns]
    if missing:
        raise MeasurementError(
            f"{path}: missing required column(s) {', '.join(repr(c) for c in missing)} "
            f"(have: {', '.join(columns)})"
        )
    return columns, [dict(r) for r in reader]


def positive_number(path: Path, line: int, row: Mapping[str, str], col: str) -> float:
    """Column ``col`` of ``row`` as a finite number > 0, else :class:`MeasurementError`."""
    v = row.get(col)
    try:
        f = float(str(v).strip())
    except (TypeError, ValueError) as e:
        raise MeasurementError(f"{path}:{line}: column {col!r} has unreadable value "
                               f"{v!r}") from e
    if not (np.isfinite(f) and f > 0):
        raise MeasurementError(f"{path}:{line}: column {col!r} must be a finite number > 0, "
                               f"got {v!r}")
    return f


def _parse_row(path: Path, line: int, row: Mapping[str, str]) -> Measurement:
    def num(col: str, kind: Callable[[str], Any] = int) -> Any:
        v = row.get(col)
        try:
            return kind(str(v).strip())
        except (TypeError, ValueError) as e:
            raise MeasurementError(f"{path}:{line}: column {col!r} has unreadable value "
                                   f"{v!r}") from e

    mode = str(row.get("mode", "")).strip()
    if mode.lower() not in PRECISION_ALIASES:
        raise MeasurementError(f"{path}:{line}: column 'mode' has unknown precision {mode!r} "
                               f"(known: {', '.join(sorted(PRECISION_ALIASES))})")
    name = str(row.get("name") or f"row{line}")
    layout = str(row.get("layout") or "NCHW").strip().upper()
    if layout not in ("NCHW", "NHWC"):
        raise MeasurementError(f"{path}:{line}: column 'layout' must be NCHW or NHWC, got "
                               f"{row.get('layout')!r}")
    try:
        if str(row.get("geom") or "").strip():
            g = _geom_column(path, line, row, name)
        else:
            g = LayerGeom.conv(name, n=num("B"), h=num("H"), cin=num("cin"), cout=num("cout"),
                               k=num("k"), stride=num("stride"), pad=num("pad"),
                               groups=num("groups"))
    except ValueError as e:
        if isinstance(e, MeasurementError):
            raise
        raise MeasurementError(f"{path}:{line}: invalid layer shape ({e})") from e
    if row.get("Ho") not in (None, "") and num("Ho") != g.ho:
        raise MeasurementError(f"{path}:{line}: column 'Ho' = {row['Ho']} disagrees with the "
                               f"shape (expected {g.ho})")
    us = positive_number(path, line, row, "us_median")
    return Measurement(net=str(row.get("net", "")), name=name, geom=g,
                       precision=canonical_precision(mode), us_median=us, row=dict(row),
                       layout=layout)


def _geom_column(path: Path, line: int, row: Mapping[str, str], name: str) -> LayerGeom:
    """The ``geom`` column (a :class:`LayerGeom` as JSON), checked against the square
    columns it must agree with (``B``, ``cin``, ``cout``, ``groups``)."""
    try:
        d = json.loads(str(row["geom"]))
        g = LayerGeom.from_dict({**d, "name": name})
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise MeasurementError(f"{path}:{line}: column 'geom' is not a layer geometry "
                               f"({e})") from e
    for col, val in (("B", g.n), ("cin", g.cin), ("cout", g.cout), ("groups", g.groups)):
        if str(row.get(col, "")).strip() != str(val):
            raise MeasurementError(f"{path}:{line}: column {col!r} = {row.get(col)!r} "
                                   f"disagrees with column 'geom' ({val})")
    return g


# --- vectorised prediction ------------------------------------------------------------------

class _Table:
    """All candidate kernels of a list of measurements, evaluated at once for a parameter set."""

    def __init__(self, ms: Sequence[Measurement], gpu: GPU, layout: str | None = None) -> None:
        cfgs = {x: P.SchemeConfig(layout=x) for x in ("NCHW", "NHWC")}
        cands = [K.dense_candidates(m.geom, gpu, m.precision, cfgs[(layout or m.layout).upper()])
                 for m in ms]
        self.gpu = gpu
        self.row = np.concatenate([np.full(len(c.n_ctas), i) for i, c in enumerate(cands)])
        self.n = len(ms)
        cat = {f: np.concatenate([getattr(c, f) for c in cands])
               for f in ("split", "macs_cta", "rate_base", "eff_index", "ksteps_per_stage",
                         "n_ctas", "occupancy", "io_bytes", "extra_bytes", "kernels")}
        self.c = K.Candidates(tiles=(), algo="calibration", **cat)

    def predict(self, params: P.ModelParams) -> np.ndarray:
        ev = K.evaluate(self.c, self.gpu, params)
        us = (self.gpu.event_overhead_us + ev["cycles"] / self.gpu.clock_mhz
              + (self.c.kernels - 1) * params.extra_kernel_us)
        best = np.full(self.n, np.inf)
        np.minimum.at(best, self.row, us)
        return best


def predict_us(ms: Sequence[Measurement], gpu: str | GPU = "h100",
               params: P.ModelParams | None = None, layout: str | None = None) -> np.ndarray:
    """Predicted event-timed microseconds of each measurement (see the module docstring);
    ``layout`` overrides every row's own (``None``: each row's ``layout``, default NCHW)."""
    g = get_gpu(gpu)
    return _Table(ms, g, layout).predict(params or P.load_params())


def mape(pred: np.ndarray, meas: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    return float(100.0 * np.mean(np.abs(np.asarray(pred) - meas) / meas))


# --- fitting --------------------------------------------------------------------------------

def params_from_vector(x: np.ndarray, base: P.ModelParams | None = None,
                       provenance: str = "") -> P.ModelParams:
    """:class:`ModelParams` from a fit vector (order :data:`FIT_NAMES`)."""
    base = base or P.ModelParams()
    return dataclasses.replace(
        base, efficiency={"fp32": float(x[0]), "tf32": float(x[1]), "fp16": float(x[2])},
        latency_cycles=float(x[3]), l2_bandwidth_factor=float(x[4]),
        extra_kernel_us=float(x[5]), provenance=provenance or base.provenance)


def vector_from_params(p: P.ModelParams) -> np.ndarray:
    """Inverse of :func:`params_from_vector`."""
    return np.array([p.eff("fp32"), p.eff("tf32"), p.eff("fp16"), p.latency_cycles,
                     p.l2_bandwidth_factor, p.extra_kernel_us], np.float64)


def nelder_mead(f: Callable[[np.ndarray], float], x0: np.ndarray, *, step: float = 0.15,
                max_evals: int = 3000, tol: float = 1e-6) -> tuple[np.ndarray, float]:
    """Deterministic Nelder-Mead minimisation (standard coefficients); returns ``(x, f(x))``."""
    n = x0.size
    simplex = [x0.astype(np.float64)]
    for i in range(n):
        x = x0.astype(np.float64).copy()
        x[i] = x[i] * (1 + step) if x[i] != 0 else step
        simplex.append(x)
    vals = [f(x) for x in simplex]
    evals = n + 1
    while evals < max_evals:
        order = np.argsort(vals, kind="stable")
        simplex = [simplex[i] for i in order]
        vals = [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) <= tol * (abs(vals[0]) + tol):
            break
        centroid = np.mean(simplex[:-1], axis=0)
        xr = centroid + (centroid - simplex[-1])
        fr = f(xr)
        evals += 1
        if vals[0] <= fr < vals[-2]:
            simplex[-1], vals[-1] = xr, fr
            continue
        if fr < vals[0]:
            xe = centroid + 2.0 * (centroid - simplex[-1])
            fe = f(xe)
            evals += 1
            simplex[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
            continue
        xc = centroid + 0.5 * (simplex[-1] - centroid)
        fc = f(xc)
        evals += 1
        if fc < vals[-1]:
            simplex[-1], vals[-1] = xc, fc
            continue
        for i in range(1, n + 1):  # shrink towards the best vertex
            simplex[i] = simplex[0] + 0.5 * (simplex[i] - simplex[0])
            vals[i] = f(simplex[i])
        evals += n
    i = int(np.argmin(vals))
    return simplex[i], float(vals[i])


def fit(ms: Sequence[Measurement], gpu: str | GPU = "h100", *,
        init: P.ModelParams | None = None, mask: np.ndarray | None = None,
        restarts: int = 3, table: _Table | None = None) -> P.ModelParams:
    """Fits the six parameters on ``ms`` (rows where ``mask`` is true), capped-APE loss.

    Raises:
      CalibrationError: ``restarts < 1`` (no fit would run: the starting guess is not a fit).
    """
    _check_restarts(restarts)
    g = get_gpu(gpu)
    tab = table or _Table(ms, g)
    meas = np.array([m.us_median for m in ms])
    sel = np.ones(len(ms), bool) if mask is None else np.asarray(mask, bool)
    base = init or P.ModelParams()

    def objective(x: np.ndarray) -> float:
        if np.any(x < _LOWER) or np.any(x > _UPPER):
            return 1e9
        pred = tab.predict(params_from_vector(x, base))
        ape = np.abs(pred[sel] - meas[sel]) / meas[sel]
        return float(np.minimum(ape, ROBUST_CAP).mean())

    x = np.clip(vector_from_params(base), _LOWER, _UPPER)
    for _ in range(restarts):  # restarts escape Nelder-Mead's premature collapse
        x, _ = nelder_mead(objective, x)
    return params_from_vector(x, base)


def _check_restarts(restarts: int) -> None:
    if not isinstance(restarts, int | np.integer) or restarts < 1:
        raise CalibrationError(f"restarts must be an integer >= 1 (got {restarts!r}): with "
                               "none the fit does not run and the starting guess would be "
                               "reported as fitted")


# --- validation -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ValidationReport:
    """Fitted and cross-validated errors (see :func:`validate`).

    Attributes:
      gpu: GPU key.
      source: the measurement file.
      sha256: its checksum.
      params: parameters fitted on all rows.
      folds: ``{held-out net: parameters fitted on the other nets}``.
      measurements: the rows.
      pred_fit: predictions with ``params``.
      pred_cv: predictions of each row by the fold that did not see its network.
    """

    gpu: str
    source: str
    sha256: str
    params: P.ModelParams
    folds: Mapping[str, P.ModelParams]
    measurements: tuple[Measurement, ...]
    pred_fit: np.ndarray
    pred_cv: np.ndarray

    def _groups(self) -> list[tuple[str, int, np.ndarray]]:
        prec = np.array([m.precision for m in self.measurements])
        batch = np.array([m.batch for m in self.measurements])
        out = []
        for p in ("fp32", "tf32", "fp16"):
            for b in sorted(set(batch.tolist())):
                sel = (prec == p) & (batch == b)
                if sel.any():
                    out.append((p, b, sel))
        return out

    def summary(self) -> dict[str, Any]:
        """Numbers of the report as plain data."""
        meas = np.array([m.us_median for m in self.measurements])
        nets = np.array([m.net for m in self.measurements])
        groups = []
        for p, b, sel in self._groups():
            groups.append({"precision": p, "batch": b, "rows": int(sel.sum()),
                           "mape_fit": mape(self.pred_fit[sel], meas[sel]),
                           "mape_cv": mape(self.pred_cv[sel], meas[sel])})
        e2e = []
        for net in sorted(set(nets.tolist())):
            for p, b, sel0 in self._groups():
                sel = sel0 & (nets == net)
                if sel.any():
                    tot = meas[sel].sum()
                    e2e.append({"net": net, "precision": p, "batch": b,
                                "measured_us": float(tot),
                                "err_fit": float(100 * (self.pred_fit[sel].sum() - tot) / tot),
                                "err_cv": float(100 * (self.pred_cv[sel].sum() - tot) / tot)})
        per_net = {n: {"mape_fit": mape(self.pred_fit[nets == n], meas[nets == n]),
                       "mape_cv": mape(self.pred_cv[nets == n], meas[nets == n])}
                   for n in sorted(set(nets.tolist()))}
        cls = np.array([m.layer_class for m in self.measurements])
        classes = {c: {"rows": int((cls == c).sum()),
                       "mape_fit": mape(self.pred_fit[cls == c], meas[cls == c]),
                       "mape_cv": mape(self.pred_cv[cls == c], meas[cls == c])}
                   for c in LAYER_CLASSES if (cls == c).any()}
        return {"rows": len(meas), "mape_fit": mape(self.pred_fit, meas),
                "mape_cv": mape(self.pred_cv, meas), "groups": groups, "end_to_end": e2e,
                "per_net": per_net, "classes": classes}

    def markdown(self, sections: Sequence[str] = (), *, kernel: str | None = None,
                 open_items: Sequence[str] | None = None, ceilings: str | None = None) -> str:
        """The validation tables as markdown (what ``VALIDATION.md`` holds); ``sections`` are
        further markdown lines inserted before the fitted parameters (the whole-network,
        op-kernel, concurrency and software SE-CNN validation). ``kernel`` describes how a row
        was measured (default: the packaged cuDNN/CUDA-event rows); ``open_items`` replaces the
        packaged H100 calibration's list of open points; ``ceilings`` names the file of the
        fixed (measured, not fitted) figures."""
        s = self.summary()
        kernel = kernel or "one cuDNN convolution timed alone with CUDA events"
        lines = [
            "# Timing model validation (generated)",
            "",
            "Generated by `python -m experiments.calibrate_timing` — do not edit by hand.",
            f"Measurements: `{self.source}` (sha256 `{self.sha256[:16]}…`, {s['rows']} rows, "
            f"GPU `{self.gpu}`). Each row is {kernel}; the model predicts it from the layer "
            "shape (no lookup of measured "
            "values). *fit*: parameters fitted on all rows; *CV*: leave-one-network-out "
            "(each network's rows predicted by parameters fitted on the other network only). "
            f"Fit loss: per-row absolute percentage error capped at {ROBUST_CAP:.0%} (robust "
            "to anomalous rows; chosen by CV among plain MAPE, log and Huber losses and caps "
            "of 20-40%); the tables report plain MAPE.",
            "",
            "## Per-layer MAPE by precision and batch",
            "",
            "| precision | batch | rows | MAPE fit | MAPE CV |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for grp in s["groups"]:
            lines.append(f"| {grp['precision']} | {grp['batch']} | {grp['rows']} | "
                         f"{grp['mape_fit']:.1f}% | {grp['mape_cv']:.1f}% |")
        lines.append(f"| **all** | | {s['rows']} | **{s['mape_fit']:.1f}%** | "
                     f"**{s['mape_cv']:.1f}%** |")
        lines += ["", "Per network (CV: the network held out of the fit):", "",
                  "| network | MAPE fit | MAPE CV |", "| --- | ---: | ---: |"]
        for n, v in s["per_net"].items():
            lines.append(f"| {n} | {v['mape_fit']:.1f}% | {v['mape_cv']:.1f}% |")
        if set(s["classes"]) - {"standard"}:
            lines += ["", "Per layer class (depthwise: one input channel per group; grouped: "
                      "several; dense: matrix products):", "",
                      "| class | rows | MAPE fit | MAPE CV |", "| --- | ---: | ---: | ---: |"]
            for c, v in s["classes"].items():
                lines.append(f"| {c} | {v['rows']} | {v['mape_fit']:.1f}% | "
                             f"{v['mape_cv']:.1f}% |")
        lines += ["", *sections, "## Fitted parameters", "",
                  "| parameter | all rows |" + "".join(
                      f" without {n} |" for n in self.folds),
                  "| --- | ---: |" + " ---: |" * len(self.folds)]
        vecs = [vector_from_params(self.params)] + [vector_from_params(p)
                                                    for p in self.folds.values()]
        for i, name in enumerate(FIT_NAMES):
            lines.append(f"| {name} | " + " | ".join(f"{v[i]:.3f}" for v in vecs) + " |")
        lines += [
            "",
            "Fixed (measured, not fitted): `event_overhead_us` = tiny kernel timed with CUDA "
            "events, matmul ceilings, copy bandwidth, SM count and clock "
            f"(`{ceilings or 'secnn_jax/timing/measurements/h100_ceilings.json'}`).",
            "",
            "## Open",
            "",
        ]
        if open_items is not None:
            lines += [f"- {x}" for x in open_items] + [""]
            return "\n".join(lines)
        lines += [
            "- Depthwise and grouped convolutions: the shared measurements contain none, and "
            "no GPU has been at hand to measure them; the depthwise model (a direct SIMT "
            "kernel, usually memory-bound) is unvalidated. `python -m experiments.measure_gpu` "
            "measures them (with the op kernels and the concurrency probe below) on any GPU, "
            "and `calibrate_timing --measurements=DIR` reports them on lines of their own.",
            "- The zero-skipping and SE-CNN kernels have no hardware counterpart to measure; "
            "they reuse the dense model's calibrated SIMT efficiency and latency. GPGPU-Sim "
            "(section above) runs our CUDA versions of them latency-bound and 6-70x slower "
            "than the model predicts, and finds that lanes skipping zeros save nothing in a "
            "dense-staged SIMT GEMM: a warp steps through the union of its lanes' non-zero "
            "inputs (1.6-2.4x the busiest lane's count on the Lite0/HED cases) and every "
            "skipped step still loads and tests its input. Which of the two is nearer a real "
            "GPU is open until these kernels are timed on one.",
            "- One FP32 efficiency serves all SIMT kernels: cuDNN's batch-16 VGG-16 FP32 "
            "kernels reach a larger fraction of the ceiling than its batch-1 kernels, so the "
            "model over-predicts VGG-16 FP32 at batch 16 (see the whole-network table).",
            "- Several FP16 batch-1 rows have medians far above their own minimum "
            "(`us_min`), i.e. noisy measurements; the robust fit ignores them, the MAPE "
            "tables do not.",
            "- Eager PyTorch pays more per module call than a bare back-to-back launch "
            "(ResNet-50 at batch 1: 4.5 ms eager for ~175 kernels, about 26 us each, against "
            "the measured 9.87 us launch rate), so the `eager` launch model under-predicts "
            "host-bound eager runs; it is the launch cost alone, not Python's dispatch.",
            "- The whole-network op kernels (BatchNorm, activations, pooling, adds) are modelled "
            "as bandwidth-bound kernels from their shapes; none was measured alone.",
            "- Concurrency: how far independent kernels overlap on a real GPU (the premise of "
            "SE-CNN's parallel phase) is unmeasured.",
            "",
        ]
        return "\n".join(lines)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def validate(path: str | Path, gpu: str | GPU = "h100", *, restarts: int = 3,
             init: P.ModelParams | None = None) -> ValidationReport:
    """Fits on all rows and leave-one-network-out; returns the :class:`ValidationReport`.

    Raises:
      CalibrationError: ``restarts < 1``.
      MeasurementError: an unreadable measurement file.
    """
    _check_restarts(restarts)
    path = Path(path)
    g = get_gpu(gpu)
    _, ms = read_measurements(path)
    tab = _Table(ms, g)
    nets = np.array([m.net for m in ms])
    init = init or P.ModelParams()
    digest = _sha256_file(path)
    prov = (f"fitted by secnn_jax.timing.calibration on {path.name} (sha256 {digest[:16]}, "
            f"{len(ms)} rows, gpu {g.key})")
    full = fit(ms, g, init=init, restarts=restarts, table=tab)
    full = dataclasses.replace(full, provenance=prov)
    pred_fit = tab.predict(full)
    pred_cv = np.empty(len(ms))
    folds: dict[str, P.ModelParams] = {}
    uniq = sorted(set(nets.tolist()))
    for net in uniq:
        held = nets == net
        if len(uniq) < 2:
            pred_cv[held] = pred_fit[held]
            continue
        fp = fit(ms, g, init=init, mask=~held, restarts=restarts, table=tab)
        folds[net] = fp
        pred_cv[held] = tab.predict(fp)[held]
    return ValidationReport(gpu=g.key, source=_display_path(path), sha256=digest, params=full,
                            folds=folds, measurements=tuple(ms), pred_fit=pred_fit,
                            pred_cv=pred_cv)


def _display_path(path: Path) -> str:
    parts = path.resolve().parts
    if "secnn_jax" in parts:
        return "/".join(parts[parts.index("secnn_jax"):])
    if "shared" in parts:
        return "/".join(parts[parts.index("shared"):])
    return path.name


#: The H100 measurements the model is calibrated on, shipped inside the package (with their
#: README and provenance) so that every checkout can re-run the calibration and validation.
MEASUREMENTS_DIR = Path(__file__).with_name("measurements")


def default_measurements(name: str = "h100_cudnn_conv.csv") -> Path:
    """A packaged measurement file (:data:`MEASUREMENTS_DIR`)."""
    p = MEASUREMENTS_DIR / name
    if not p.is_file():
        raise MeasurementError(f"packaged measurement file {p} is missing (reinstall the "
                               "package)")
    return p


def write_outputs(report: ValidationReport, params_path: Path = P.PARAMS_PATH,
                  markdown_path: Path = VALIDATION_PATH, e2e: Any = None) -> None:
    """Writes the fitted parameters (with provenance and summary) and the markdown report.

    ``e2e`` (a :class:`secnn_jax.timing.e2e.E2EReport`) adds the fitted ``graph_kernel_us``
    and the whole-network section.
    """
    s = report.summary()
    params = report.params
    if e2e is not None:
        params = dataclasses.replace(params, graph_kernel_us=e2e.graph_kernel_us)
    doc = {"params": params.as_dict(),
           "provenance": {"measurements": report.source, "sha256": report.sha256,
                          "rows": s["rows"], "gpu": report.gpu,
                          "method": f"Nelder-Mead on per-layer APE capped at {ROBUST_CAP}; "
                                    "event_overhead_us, ceilings, bandwidth, SMs and clock "
                                    "fixed from measurements",
                          "generator": "python -m experiments.calibrate_timing"},
           "validation": {"mape_fit": round(s["mape_fit"], 2), "mape_cv": round(s["mape_cv"], 2),
                          "folds": {n: p.as_dict() for n, p in report.folds.items()}}}
    if e2e is not None:
        es = e2e.summary()
        doc["validation"]["e2e"] = {k: (round(v, 2) if isinstance(v, float) else v)
                                    for k, v in es.items()}
    fileio.write_json(params_path, doc, indent=1)
    from secnn_jax.timing import simref  # noqa: PLC0415  (scheduler and kernels: only here)

    sections = [*(e2e.markdown() if e2e is not None else ()), *simref.markdown()]
    fileio.atomic_write(markdown_path, report.markdown(sections))
