"""Prediction study: per layer, the rate of each event code, per predictor and threshold.

For every model, stream, predictor and tau, SE-CNN runs over the stream
(:meth:`experiments.cells.Workspace.run`) and counts, per layer and frame, the input neurons of
each event code (:mod:`secnn_jax.events`): ZZ (predicted 0, stays 0: free), ZN (zero
misprediction), VH (value hit: parallel phase only), VM (value miss). The *misprediction rate*
ZN + VM is the fraction of input neurons the serial phase must amend; *predicted non-zero*
VH + VM the fraction the parallel phase computes.

The result is a :class:`PredictionResult` (``results/prediction.json``); :func:`section` and
:func:`notes` render it for the report.

Library: :func:`prediction`. Command line::

    python -m experiments.prediction --out_dir=runs/prediction --config.predictors=zero,secnn
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from absl import app, logging

from experiments.cells import Workspace
from experiments.records import RecordResult
from experiments.reporting import pct, table
from secnn_jax import events as ev

__all__ = ["PAPER_PREDICTOR", "LayerCodes", "PredictionCell", "PredictionResult",
           "PredictionSummary", "code_rates", "notes", "prediction", "section", "summary_rows"]

#: How the paper's predictor's spec begins (``secnn(silence=0.5,decay=...)``): the notes read
#: its value hits and misses.
PAPER_PREDICTOR = "secnn(silence=0.5,"


@dataclasses.dataclass(frozen=True)
class LayerCodes:
    """One layer's event-code rates (ZZ, ZN, VH, VM; they sum to 1)."""

    name: str
    rates: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class PredictionCell:
    """One (model, stream, predictor, tau): the event-code rates over all layers and frames
    (``overall``: ZZ, ZN, VH, VM, weighted by neurons), the mispredicted (ZN + VM) and predicted
    non-zero (VH + VM) shares, and per layer rates."""

    model: str
    stream: str
    predictor: str
    tau: float
    frames: int
    overall: tuple[float, ...]
    mispredicted: float
    predicted_nonzero: float
    layers: tuple[LayerCodes, ...]


@dataclasses.dataclass(frozen=True)
class PredictionSummary:
    """A predictor's mispredicted share beside the zero predictor's at the same tau
    (``zero_mispredicted``, ``None`` without a zero-predictor cell), and the verdict."""

    model: str
    stream: str
    predictor: str
    tau: float
    mispredicted: float
    zero_mispredicted: float | None
    claim: str
    verdict: str


@dataclasses.dataclass(frozen=True)
class PredictionResult(RecordResult):
    """The prediction study's result (``results/prediction.json``): the event codes' names,
    one cell per (model, stream, predictor, tau) and the summary rows (:func:`summary_rows`)."""

    STUDY: ClassVar[str] = "prediction"
    VERSION: ClassVar[int] = 1

    codes: tuple[str, ...]
    cells: tuple[PredictionCell, ...]
    summary: tuple[PredictionSummary, ...]


def code_rates(counts: np.ndarray, n_inputs: np.ndarray) -> dict[str, Any]:
    """Event-code rates from ``counts [T, L, 4]`` and ``n_inputs [L]``.

    Returns ``per_layer`` ``[L, 4]`` rates (each row sums to 1) and ``overall`` ``[4]`` rates
    weighted by neurons, plus ``mispredicted`` (ZN + VM) and ``predicted_nonzero`` (VH + VM).
    """
    t = counts.shape[0]
    per_layer = counts.sum(0) / (n_inputs[:, None].astype(np.float64) * t)
    overall = counts.sum((0, 1)) / (float(n_inputs.sum()) * t)
    return {
        "per_layer": per_layer,
        "overall": overall,
        "mispredicted": float(overall[ev.ZN] + overall[ev.VM]),
        "predicted_nonzero": float(overall[ev.VH] + overall[ev.VM]),
    }


def prediction(ws: Workspace, models: Sequence[str], streams: Sequence[str],
               predictors: Sequence[str], taus: Sequence[float]) -> PredictionResult:
    """Event-code rates per layer for every model, stream, predictor spec and tau.

    Returns:
      The :class:`PredictionResult`: a :class:`PredictionCell` per (model, stream, predictor,
      tau) with ``frames``, ``overall`` (rates of ZZ, ZN, VH, VM), ``mispredicted``,
      ``predicted_nonzero`` and ``layers`` (per layer ``name`` and ``rates``), and the
      summary rows (:func:`summary_rows`).
    """
    cells = []
    for m in models:
        for s in streams:
            layers = ws.layers(m, s)
            n_inputs = np.array([lyr.n_inputs for lyr in layers], np.int64)
            for p in predictors:
                for tau in taus:
                    res = ws.run(m, s, p, float(tau), timed=False)
                    r = code_rates(res.counts, n_inputs)
                    logging.info("prediction %s/%s %s tau=%g: %.1f%% mispredicted, %.1f%% "
                                 "predicted non-zero", m, s, p, tau, 100 * r["mispredicted"],
                                 100 * r["predicted_nonzero"])
                    cells.append(PredictionCell(
                        model=m, stream=s, predictor=p, tau=float(tau),
                        frames=int(res.counts.shape[0]),
                        overall=tuple(r["overall"].tolist()),
                        mispredicted=r["mispredicted"],
                        predicted_nonzero=r["predicted_nonzero"],
                        layers=tuple(LayerCodes(lyr.name, tuple(r["per_layer"][i].tolist()))
                                     for i, lyr in enumerate(layers)),
                    ))
    return PredictionResult(codes=tuple(ev.NAMES), cells=tuple(cells),
                            summary=tuple(summary_rows(cells)))


def summary_rows(cells: Sequence[PredictionCell]) -> list[PredictionSummary]:
    """Per (model, stream, predictor, tau) other than the zero predictor: its mispredicted
    share beside the zero predictor's at the same tau, and the verdict on "predicting values
    leaves fewer inputs to amend than predicting zero" (``not measured`` without a zero
    predictor cell to compare with)."""
    zero = {(c.model, c.stream, c.tau): c.mispredicted for c in cells if c.predictor == "zero"}
    rows = []
    for c in cells:
        if c.predictor == "zero":
            continue
        z = zero.get((c.model, c.stream, c.tau))
        rows.append(PredictionSummary(
            model=c.model, stream=c.stream, predictor=c.predictor, tau=c.tau,
            mispredicted=c.mispredicted, zero_mispredicted=z,
            claim="fewer inputs to amend than the zero predictor",
            verdict="not measured" if z is None else
            "holds" if c.mispredicted < z else "does not hold"))
    return rows


def section(result: PredictionResult) -> list[str]:
    """The prediction section: each cell's event-code shares and its verdict against the
    zero predictor at the same tau."""
    out = ["## Prediction: event codes per predictor", "",
           "Share of input neurons per event code over all layers and frames (ZZ: predicted 0 "
           "and 0, free; ZN: zero misprediction; VH: value hit; VM: value miss). "
           "*Mispredicted* = ZN + VM, the serial phase's work. `secnn(silence=0.5,decay=0.5)` is "
           "the paper's predictor (a neuron that fired on the last frame is predicted its last "
           "value, any other 0); a higher `silence` also predicts 0 for neurons that fired only "
           "recently." + _same_codes(result.cells), ""]
    judged = {(r.model, r.stream, r.predictor, r.tau): r.verdict for r in result.summary}
    rows = []
    for c in result.cells:
        o = c.overall
        rows.append([c.model, c.stream, c.predictor, f"{c.tau:g}", c.frames,
                     pct(o[0]), pct(o[1]), pct(o[2]), pct(o[3]), pct(c.mispredicted),
                     judged.get((c.model, c.stream, c.predictor, c.tau), "(reference)")])
    out += ["*Verdict*: does the predictor leave fewer inputs to amend (mispredicted) than the "
            "zero predictor at the same tau?", "",
            table(["model", "stream", "predictor", "tau", "frames", "ZZ", "ZN", "VH", "VM",
                   "mispredicted", "verdict"], rows)]
    out += ["", "![event codes per layer](figures/events.png)", ""]
    return out


def _same_codes(cells: Sequence[PredictionCell]) -> str:
    """A sentence naming the predictors whose event codes are equal in every (model, stream,
    tau) cell both ran in this run (computed, so it holds for this run's configuration)."""
    codes: dict[str, dict[tuple[Any, ...], Any]] = {}
    for c in cells:
        codes.setdefault(c.predictor, {})[(c.model, c.stream, c.tau)] = c.overall
    names = list(codes)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = set(codes[a]) & set(codes[b])
            if shared and all(list(codes[a][k]) == list(codes[b][k]) for k in shared):
                pairs.append(f"`{a}` and `{b}` (in all {len(shared)} cells both ran)")
    return (" In this run these predictors gave exactly the same codes: " + "; ".join(pairs)
            + ".") if pairs else ""


def notes(result: PredictionResult) -> list[str]:
    """The report's "What this means" line on value hits at tau = 0 (the paper's predictor)."""
    vals = [(c.stream, c.overall) for c in result.cells
            if c.predictor.startswith(PAPER_PREDICTOR) and c.tau == 0.0]
    if not vals:
        return []
    return ["At tau = 0 a value hit needs the very same float on two frames: with "
            "the paper's predictor, value hits (VH) / value misses (VM) are "
            + ", ".join(f"{pct(o[2])} / {pct(o[3])} of input neurons on {s}"
                        for s, o in vals) + "."
            + (" Most neurons that keep firing change value, so they are "
               "mispredicted; only a tolerance tau > 0 turns them into hits."
               if all(o[3] > o[2] for _, o in vals) else "")]


def main(argv: Sequence[str]) -> None:
    """Runs the prediction study, prints its table, and writes results/prediction.json, its
    figure and report.md (its section)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import sys  # noqa: PLC0415

    from experiments import cli, figures, reporting  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, timer=None,
                   studies=("prediction",))
    preds = [predictor_spec(p, cfg.silence, cfg.decay) for p in cfg.predictors]
    res = prediction(st.ws, list(st.ws.models), list(st.ws.streams), preds,
                     cfg.prediction_taus)
    st.run.write_json("results/prediction.json", res.to_json())
    figures.event_stacks(res, st.run.path("figures", "events.png"))
    md, printed = reporting.study_output(cfg.to_dict(), [], section(res),
                                         "experiments.prediction")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/prediction", _FIELDS["prediction"])
