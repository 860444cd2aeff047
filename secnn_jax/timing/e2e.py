"""Whole-network validation: the ``dense`` scheme of a whole network against measured latencies.

The measurements (``measurements/h100_e2e.csv``: torchvision VGG-16 and ResNet-50, PyTorch eager
and CUDA-graph replay, NCHW, ``cudnn.benchmark``) time every kernel of a forward pass: the convs
and linear layers and the BatchNorm, activation, pooling and residual kernels between them. The
model predicts a row from the network's shapes alone: its linear layers
(:func:`secnn_jax.find_layers`) and op groups (:func:`secnn_jax.netops.find_ops`), the ``dense``
scheme with fusion ``none`` (eager PyTorch runs one kernel per op, and a graph captures the same
kernels) in NCHW, under the ``eager`` and ``graph`` launch models.

Under ``graph`` a frame is ``submit + sum(kernel times) + (kernels - 1) * graph_kernel_us``:
linear in the one fitted parameter, which :func:`fit_graph_kernel_us` chooses by a grid search
minimising the mean absolute percentage error (cross-validated leave-one-network-out by the
caller). ``eager`` adds nothing fitted: the host issues a kernel every measured back-to-back
launch interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import schemes as S
from secnn_jax.timing.calibration import MeasurementError, mape, positive_number, read_csv
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpus import GPU, PRECISION_ALIASES, canonical_precision, get_gpu
from secnn_jax.timing.launch import LaunchCosts
from secnn_jax.timing.opkernels import OpGeom
from secnn_jax.timing.params import ModelParams, SchemeConfig

#: Columns a whole-network measurement file must have (extra columns are ignored).
E2E_COLUMNS: tuple[str, ...] = ("net", "mode", "B", "size", "eager_us", "graph_us")


@dataclasses.dataclass(frozen=True)
class E2ERow:
    """One measured whole-network latency.

    Attributes:
      net: zoo model name.
      precision: canonical precision.
      batch: batch size.
      size: input height = width.
      eager_us, graph_us: measured latencies (microseconds).
      row: the row as read, written back by ``validate_timing``.
      layout: tensor layout of the measured network (optional ``layout`` column; default
        ``NCHW``, PyTorch's; ``python -m experiments.measure_gpu`` writes ``NHWC``).
    """

    net: str
    precision: str
    batch: int
    size: int
    eager_us: float
    graph_us: float
    row: Mapping[str, str]
    layout: str = "NCHW"

    @property
    def config(self) -> SchemeConfig:
        """The scheme configuration the row is predicted under (its layout)."""
        return SchemeConfig(layout=self.layout)


def read_e2e(path: str | Path, known_nets: Sequence[str] | None = None
             ) -> tuple[list[str], list[E2ERow]]:
    """Reads a whole-network measurement CSV; returns its columns and rows.

    Raises:
      MeasurementError: a missing column, a non-text file, an unknown network (when
        ``known_nets`` is given) or precision, or a value that is not a finite number > 0 —
        each naming the file, line and column.
    """
    path = Path(path)
    columns, rows = read_csv(path, E2E_COLUMNS)
    out = []
    for line, row in enumerate(rows, start=2):
        net = str(row.get("net", "")).strip()
        if known_nets is not None and net not in known_nets:
            raise MeasurementError(f"{path}:{line}: column 'net' names unknown network {net!r} "
                                   f"(zoo models: {', '.join(known_nets)})")
        mode = str(row.get("mode", "")).strip()
        if mode.lower() not in PRECISION_ALIASES:
            raise MeasurementError(f"{path}:{line}: column 'mode' has unknown precision "
                                   f"{mode!r}")
        ints = {}
        for col in ("B", "size"):
            v = positive_number(path, line, row, col)
            if v != int(v):
                raise MeasurementError(f"{path}:{line}: column {col!r} must be an integer, "
                                       f"got {row[col]!r}")
            ints[col] = int(v)
        layout = str(row.get("layout") or "NCHW").strip().upper()
        if layout not in ("NCHW", "NHWC"):
            raise MeasurementError(f"{path}:{line}: column 'layout' must be NCHW or NHWC, got "
                                   f"{row.get('layout')!r}")
        out.append(E2ERow(layout=layout, net=net, precision=canonical_precision(mode),
                          batch=ints["B"], size=ints["size"],
                          eager_us=positive_number(path, line, row, "eager_us"),
                          graph_us=positive_number(path, line, row, "graph_us"), row=row))
    if not out:
        raise MeasurementError(f"{path}: no measurement rows")
    return columns, out


@dataclasses.dataclass(frozen=True)
class Network:
    """A network's shapes as the timing model needs them: linear layers and op groups."""

    geoms: tuple[LayerGeom, ...]
    ops: tuple[OpGeom, ...]


def network_us(net: Network, gpu: str | GPU, precision: str, launch: str, params: ModelParams,
               cfg: SchemeConfig | None = None, fusion: str = "none",
               scheme: str = "dense") -> float:
    """Predicted time of one forward pass of ``net`` under a frame-independent scheme."""
    g = get_gpu(gpu)
    cfg = cfg or SchemeConfig(layout="NCHW")
    ctx = S.Context(geoms=net.geoms, ops=net.ops, gpu=g, precision=canonical_precision(precision),
                    params=params, cfg=cfg, launch=LaunchCosts.of(launch, g, params, cfg),
                    fusion=fusion)
    sch = S.REGISTRY[scheme]
    if sch.needs:
        raise ReplayError(f"scheme {scheme!r} depends on events; use timing.replay")
    t = sch.cost(ctx, sch.plan(ctx), [], np.zeros((1, len(net.geoms))), 1)
    return float(t.total[0]) / g.clock_mhz


def predict_e2e(rows: Sequence[E2ERow], nets: Mapping[tuple[str, int, int], Network],
                params: ModelParams, gpu: str | GPU = "h100") -> tuple[np.ndarray, np.ndarray]:
    """``(pred_eager_us, pred_graph_us)`` of every row (``nets[(net, batch, size)]``)."""
    eager = np.array([network_us(nets[(r.net, r.batch, r.size)], gpu, r.precision, "eager",
                                 params, r.config) for r in rows])
    graph = np.array([network_us(nets[(r.net, r.batch, r.size)], gpu, r.precision, "graph",
                                 params, r.config) for r in rows])
    return eager, graph


def fit_graph_kernel_us(rows: Sequence[E2ERow], nets: Mapping[tuple[str, int, int], Network],
                        params: ModelParams, gpu: str | GPU = "h100",
                        grid: np.ndarray | None = None) -> float:
    """The ``graph_kernel_us`` (0-10 us, 0.01 us steps) minimising the graph MAPE of ``rows``.

    A graph frame is linear in the parameter, so each row is evaluated at 0 and 1 us and the
    grid is searched in closed form.
    """
    grid = np.arange(0.0, 10.0001, 0.01) if grid is None else np.asarray(grid)
    p0 = dataclasses.replace(params, graph_kernel_us=0.0)
    p1 = dataclasses.replace(params, graph_kernel_us=1.0)
    a = np.array([network_us(nets[(r.net, r.batch, r.size)], gpu, r.precision, "graph", p0,
                             r.config) for r in rows])
    b = np.array([network_us(nets[(r.net, r.batch, r.size)], gpu, r.precision, "graph", p1,
                             r.config) for r in rows]) - a
    meas = np.array([r.graph_us for r in rows])
    err = np.abs(a[None, :] + grid[:, None] * b[None, :] - meas) / meas
    return float(grid[int(np.argmin(err.mean(1)))])


@dataclasses.dataclass(frozen=True)
class E2EReport:
    """Whole-network errors, fitted and cross-validated (see :func:`validate_e2e`).

    Attributes:
      rows: the measurements.
      graph_kernel_us: fitted on all rows.
      folds: ``{held-out net: graph_kernel_us fitted without it}``.
      pred_eager, pred_graph: predictions with the fitted parameter.
      pred_graph_cv, pred_eager_cv: each row predicted by the fold that did not see its network
        (per-layer parameters of that fold too, where given).
    """

    rows: tuple[E2ERow, ...]
    graph_kernel_us: float
    folds: Mapping[str, float]
    pred_eager: np.ndarray
    pred_graph: np.ndarray
    pred_eager_cv: np.ndarray
    pred_graph_cv: np.ndarray

    def summary(self) -> dict[str, Any]:
        """MAPEs as plain data."""
        g = np.array([r.graph_us for r in self.rows])
        e = np.array([r.eager_us for r in self.rows])
        return {"graph_kernel_us": self.graph_kernel_us, "folds": dict(self.folds),
                "mape_graph_fit": mape(self.pred_graph, g),
                "mape_eager_fit": mape(self.pred_eager, e),
                "mape_graph_cv": mape(self.pred_graph_cv, g),
                "mape_eager_cv": mape(self.pred_eager_cv, e)}

    def markdown(self) -> list[str]:
        """The whole-network section of ``VALIDATION.md``."""
        s = self.summary()
        lines = [
            "## End to end: whole networks (dense, fusion none, "
            + ", ".join(sorted({r.layout for r in self.rows})) + ")", "",
            "Every kernel of the forward pass: the linear layers and the op groups between them "
            "(BatchNorm, activations, pooling, residual adds) from the zoo network's jaxpr. "
            f"`graph_kernel_us` fitted on all rows: **{self.graph_kernel_us:.2f} us**; "
            "leave-one-network-out: " + (", ".join(f"without {k}: {v:.2f} us"
                                                   for k, v in self.folds.items())
                                         or "none (one network)") + ". "
            "CV predictions use the per-layer parameters fitted without the held-out network "
            "as well. `eager` has no fitted parameter (measured back-to-back launch rate).", "",
            "| network | precision | batch | graph (us) | pred graph | CV | eager (us) | "
            "pred eager | CV |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for i, r in enumerate(self.rows):
            lines.append(
                f"| {r.net} | {r.precision} | {r.batch} | {r.graph_us:.0f} | "
                f"{self.pred_graph[i]:.0f} ({_pct(self.pred_graph[i], r.graph_us)}) | "
                f"{_pct(self.pred_graph_cv[i], r.graph_us)} | {r.eager_us:.0f} | "
                f"{self.pred_eager[i]:.0f} ({_pct(self.pred_eager[i], r.eager_us)}) | "
                f"{_pct(self.pred_eager_cv[i], r.eager_us)} |")
        lines += ["", f"E2E MAPE: graph **{s['mape_graph_fit']:.1f}%** fitted, "
                      f"**{s['mape_graph_cv']:.1f}%** cross-validated; eager "
                      f"{s['mape_eager_fit']:.1f}% fitted, {s['mape_eager_cv']:.1f}% "
                      "cross-validated.", ""]
        return lines


def _pct(pred: float, meas: float) -> str:
    return f"{100.0 * (pred - meas) / meas:+.0f}%"


def validate_e2e(rows: Sequence[E2ERow], nets: Mapping[tuple[str, int, int], Network],
                 params: ModelParams, folds: Mapping[str, ModelParams] | None = None,
                 gpu: str | GPU = "h100") -> E2EReport:
    """Fits ``graph_kernel_us`` on all rows and leave-one-network-out.

    ``folds`` are the per-layer fits without each network (:class:`~.calibration.
    ValidationReport.folds`); a held-out network's CV prediction uses that fold's parameters.
    """
    g_all = fit_graph_kernel_us(rows, nets, params, gpu)
    fitted = dataclasses.replace(params, graph_kernel_us=g_all)
    pe, pg = predict_e2e(rows, nets, fitted, gpu)
    pe_cv, pg_cv = pe.copy(), pg.copy()
    names = sorted({r.net for r in rows})
    fold_g: dict[str, float] = {}
    for held in names if len(names) > 1 else ():
        base = (folds or {}).get(held, params)
        train = [r for r in rows if r.net != held]
        gk = fit_graph_kernel_us(train, nets, base, gpu)
        fold_g[held] = gk
        idx = [i for i, r in enumerate(rows) if r.net == held]
        e, gr = predict_e2e([rows[i] for i in idx], nets,
                            dataclasses.replace(base, graph_kernel_us=gk), gpu)
        pe_cv[idx], pg_cv[idx] = e, gr
    return E2EReport(rows=tuple(rows), graph_kernel_us=g_all, folds=fold_g, pred_eager=pe,
                     pred_graph=pg, pred_eager_cv=pe_cv, pred_graph_cv=pg_cv)
