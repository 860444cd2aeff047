"""Accuracy study: what a tolerance tau costs in agreement with the exact model, and what it buys.

* **Sweep.** For every model, stream and global tau, SE-CNN runs over the stream and is compared,
  frame by frame, with the plain forward pass: *top-1 agreement* (same arg-max class), *top-5
  overlap* (shared classes among the two top-5 sets, over 5) and *logit error* (max absolute logit
  difference over the exact logits' max absolute value). With a timer, each tau also gets its
  replayed speedup (the tuner's scheme over its baseline on the first GPU). With ``labels``, top-1
  accuracy against the labels is reported for the exact model and every tau.
* **Threshold tuner** (:func:`tune`). Per-layer thresholds ``tau_l = alpha_l * s_l``, with
  ``s_l`` the mean ``|x|`` of layer ``l``'s input on the calibration frames, chosen to maximise
  the replayed speedup subject to a top-1 agreement floor (default 95%) on the calibration frames
  (the first ``calibration_frames`` of the tuning stream). Stage 1 searches one global ``alpha``
  by doubling/halving; stage 2 doubles ``alpha`` for groups of layers, largest serial-phase work
  first, keeping each change that stays above the floor and gains speed. Every evaluation is one
  SE-CNN run over the calibration frames with ``serial_amend_dynamic`` (tau is traced: one
  compile). The chosen thresholds are then run over the whole stream and every other stream, and
  the agreement is reported on the *held-out* frames (never seen by the tuner).

Library: :func:`sweep`, :func:`tune`, :func:`accuracy`. Command line::

    python -m experiments.accuracy --out_dir=runs/accuracy --config.taus=0,0.1,0.2
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import app, logging

from experiments.cells import CellResult, Workspace
from experiments.config import ConfigError
from experiments.speedup import frame_times
from secnn_jax import events as ev

__all__ = ["CLAIM_AGREEMENT", "accuracy", "agreement", "load_labels", "sweep", "tune"]

#: The paper's claim: SE-CNN keeps over this fraction of the classification accuracy.
CLAIM_AGREEMENT = 0.95


def agreement(logits: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Top-1 agreement, top-5 overlap and logit error of ``logits`` vs ``exact`` ``[T, C]``."""
    logits = np.asarray(logits, np.float64)
    exact = np.asarray(exact, np.float64)
    top1 = float(np.mean(logits.argmax(-1) == exact.argmax(-1)))
    k = min(5, exact.shape[-1])
    a = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    b = np.argsort(-exact, axis=-1, kind="stable")[:, :k]
    overlap = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)]))
    scale = np.maximum(np.abs(exact).max(-1), 1e-30)
    err = np.abs(logits - exact).max(-1) / scale
    return {"top1_agreement": top1, "top5_overlap": overlap,
            "logit_error": float(err.mean()), "logit_error_max": float(err.max())}


def load_labels(path: str | Path) -> dict[tuple[str, int], int]:
    """Labels from a CSV with header ``stream,frame,label`` (ImageNet class indices)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ConfigError(f"labels file {str(path)!r} cannot be read: {e}") from e
    out = {}
    for i, r in enumerate(rows):
        try:
            out[(r["stream"].strip(), int(r["frame"]))] = int(r["label"])
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"labels file {str(path)!r} row {i + 2}: expected columns "
                             f"stream,frame,label with integer frame and label: {r}") from e
    return out


def _cell_speedup(ws: Workspace, model: str, stream: str, cell: CellResult, gpu: int,
                  scheme: str, baseline: str, frames: slice = slice(None)) -> float | None:
    if cell.time_us is None or ws.timer is None:
        return None
    schemes = tuple(ws.timer.schemes)
    n = cell.time_us.shape[0]
    base = ws.run(model, stream, "zero", 0.0, n_frames=n, timed=True).time_us
    ft = frame_times(base[:, gpu], cell.time_us[:, gpu], schemes)
    if scheme not in ft or baseline not in ft:
        return None
    return float(ft[baseline][frames].sum() / ft[scheme][frames].sum())


def sweep(ws: Workspace, model: str, stream: str, predictor: str, taus: Sequence[float], *,
          gpu: int = 0, scheme: str = "secnn_hw", baseline: str = "dense",
          labels: Mapping[tuple[str, int], int] | None = None) -> list[dict[str, Any]]:
    """Agreement (and speedup, with a timer) of SE-CNN at each global tau over one stream."""
    ref = ws.reference(model, stream)
    rows = []
    labelled = sorted(f for (s, f) in (labels or {}) if s == stream and f < len(ref.logits))
    for tau in taus:
        cell = ws.run(model, stream, predictor, float(tau), timed=True)
        row: dict[str, Any] = {"tau": float(tau), "frames": int(cell.logits.shape[0]),
                               **agreement(cell.logits, ref.logits),
                               "mispredicted": _mispredicted(cell),
                               "speedup": _cell_speedup(ws, model, stream, cell, gpu, scheme,
                                                        baseline)}
        if labelled:
            lab = np.array([labels[(stream, f)] for f in labelled])
            row["label_top1"] = float(np.mean(cell.logits[labelled].argmax(-1) == lab))
            row["label_top1_exact"] = float(np.mean(ref.logits[labelled].argmax(-1) == lab))
            row["labelled_frames"] = len(labelled)
        rows.append(row)
    return rows


def _mispredicted(cell: CellResult) -> float:
    c = cell.counts.sum((0, 1))
    return float((c[ev.ZN] + c[ev.VM]) / c.sum())


def tune(ws: Workspace, model: str, stream: str, predictor: str, *, calibration_frames: int,
         floor: float = CLAIM_AGREEMENT, evals: int = 8, gpu: int = 0,
         scheme: str = "secnn_hw", baseline: str = "dense", groups: int = 4) -> dict[str, Any]:
    """Per-layer thresholds maximising replayed speedup with top-1 agreement >= ``floor``.

    Args:
      calibration_frames: frames the tuner sees (rounded down to a multiple of the workspace's
        chunk size; at least one chunk; at most all frames but one chunk when possible).
      floor: minimum top-1 agreement with the exact model on the calibration frames.
      evals: maximum SE-CNN runs over the calibration frames.
      gpu, scheme, baseline: the objective: speedup of ``scheme`` over ``baseline`` on the
        timer's ``gpu``-th GPU.
      groups: layer groups of stage 2 (by serial-phase work).

    Returns:
      ``tau`` (``{layer: float}``), ``alpha`` and ``scale`` per layer, the calibration
      ``agreement`` and ``speedup``, ``calibration_frames``, and ``history`` (every evaluation).
    """
    if ws.timer is None:
        raise ConfigError("the threshold tuner needs a timer (timing replay)")
    layers = ws.layers(model, stream)
    total = ws.n_frames(model, stream)
    cs = ws.chunk_size
    calib = max(cs, (min(calibration_frames, total) // cs) * cs)
    if calib >= total and total > cs:
        calib = ((total - 1) // cs) * cs
    calib = min(calib, total)
    ref = ws.reference(model, stream)
    n_inputs = ref.n_inputs.astype(np.float64)
    scale = ref.abs_sum[:calib].sum(0) / (n_inputs * calib)
    fan = np.array([lyr.macs / lyr.n_inputs / lyr.in_shape[0] for lyr in layers], np.float64)
    names = [lyr.name for lyr in layers]
    history: list[dict[str, Any]] = []
    cache: dict[tuple[float, ...], dict[str, Any]] = {}

    def evaluate(alpha: np.ndarray, note: str) -> dict[str, Any]:
        key = tuple(float(a) for a in alpha)
        if key in cache:
            return cache[key]
        tau = {n: float(a * s) for n, a, s in zip(names, alpha, scale, strict=True)}
        cell = ws.run(model, stream, predictor, tau, n_frames=calib, timed=True)
        agr = agreement(cell.logits, ref.logits[:calib])["top1_agreement"]
        sp = _cell_speedup(ws, model, stream, cell, gpu, scheme, baseline)
        miss = cell.counts[:, :, ev.ZN].sum(0) + cell.counts[:, :, ev.VM].sum(0)
        out = {"alpha": np.array(alpha, np.float64), "tau": tau, "agreement": agr,
               "speedup": sp, "feasible": agr >= floor, "serial_work": miss * fan}
        cache[key] = out
        history.append({"step": len(history), "note": note, "agreement": agr, "speedup": sp,
                        "feasible": bool(agr >= floor),
                        "alpha_min": float(np.min(alpha)), "alpha_max": float(np.max(alpha))})
        logging.info("tuner %s: agreement %.3f speedup %s (%s)", note, agr,
                     f"{sp:.3f}" if sp is not None else "n/a", "ok" if agr >= floor else "below")
        return out

    L = len(layers)
    best = evaluate(np.zeros(L), "exact (alpha 0)")
    budget = evals - 1
    # Stage 1: one global alpha, doubling up from 0.02 or halving down.
    a = 0.02
    first = evaluate(np.full(L, a), f"global alpha {a:g}") if budget > 0 else None
    budget -= 1 if first is not None else 0
    if first is not None and first["feasible"]:
        best = _better(best, first)
        while budget > 0 and a < 64:
            a *= 2
            r = evaluate(np.full(L, a), f"global alpha {a:g}")
            budget -= 1
            if not r["feasible"]:
                break
            best = _better(best, r)
    elif first is not None:
        while budget > 0 and a > 0.001:
            a /= 2
            r = evaluate(np.full(L, a), f"global alpha {a:g}")
            budget -= 1
            if r["feasible"]:
                best = _better(best, r)
                break
    # Stage 2: double alpha per group of layers, largest serial work first.
    if budget > 0 and float(best["alpha"].max()) > 0:
        order = np.argsort(-best["serial_work"], kind="stable")
        share = np.cumsum(best["serial_work"][order]) / max(best["serial_work"].sum(), 1e-30)
        group_of = np.minimum((share * groups).astype(int), groups - 1)
        frozen: set[int] = set()
        while budget > 0 and len(frozen) < groups:
            for gi in range(groups):
                if budget <= 0:
                    break
                if gi in frozen:
                    continue
                members = order[group_of == gi]
                if members.size == 0:
                    frozen.add(gi)
                    continue
                alpha = best["alpha"].copy()
                alpha[members] *= 2
                r = evaluate(alpha, f"group {gi} ({members.size} layers) x2")
                budget -= 1
                if r["feasible"] and (r["speedup"] or 0) > (best["speedup"] or 0):
                    best = r
                else:
                    frozen.add(gi)
    return {
        "model": model, "stream": stream, "predictor": predictor, "floor": float(floor),
        "calibration_frames": int(calib), "tau": best["tau"],
        "alpha": dict(zip(names, best["alpha"].tolist(), strict=True)),
        "scale": dict(zip(names, scale.tolist(), strict=True)),
        "agreement": best["agreement"], "speedup": best["speedup"], "history": history,
        "objective": {"gpu": gpu, "scheme": scheme, "baseline": baseline},
    }


def _better(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The feasible result with the higher speedup (``b`` on ties)."""
    if not b["feasible"]:
        return a
    return b if (b["speedup"] or 0) >= (a["speedup"] or 0) else a


def accuracy(ws: Workspace, models: Sequence[str], streams: Sequence[str], predictor: str,
             taus: Sequence[float], *, tune_stream: str | None = None,
             calibration_frames: int = 16, floor: float = CLAIM_AGREEMENT, evals: int = 8,
             gpu: int = 0, scheme: str = "secnn_hw", baseline: str = "dense",
             labels: Mapping[tuple[str, int], int] | None = None) -> dict[str, Any]:
    """The sweep for every model and stream, then the tuner and its held-out evaluation.

    Returns:
      ``{"study": "accuracy", "sweep": [...], "tuned": [...], "claim": ...}``. ``sweep`` rows
      hold ``model``, ``stream`` and the :func:`sweep` fields. ``tuned`` (one per model, if
      ``tune_stream`` is given and a timer is set) holds the :func:`tune` result plus
      ``evaluation``: per stream, ``agreement`` on the calibration frames (tuning stream only),
      ``heldout`` agreement fields and ``speedup`` over the held-out frames.
    """
    taus = sorted({0.0, *map(float, taus)})
    rows = []
    for m in models:
        for s in streams:
            for r in sweep(ws, m, s, predictor, taus, gpu=gpu, scheme=scheme,
                           baseline=baseline, labels=labels):
                rows.append({"model": m, "stream": s, **r})
    tuned = []
    if tune_stream is not None and ws.timer is not None:
        if tune_stream not in streams:
            raise ConfigError(f"tune_stream {tune_stream!r} is not among the streams {streams}")
        for m in models:
            t = tune(ws, m, tune_stream, predictor, calibration_frames=calibration_frames,
                     floor=floor, evals=evals, gpu=gpu, scheme=scheme, baseline=baseline)
            evaluation = []
            for s in streams:
                ref = ws.reference(m, s)
                cell = ws.run(m, s, predictor, t["tau"], timed=True)
                held = slice(t["calibration_frames"], None) if s == tune_stream else slice(None)
                e: dict[str, Any] = {"stream": s, "frames": int(cell.logits.shape[0]),
                                     "heldout_frames": int(cell.logits[held].shape[0])}
                if s == tune_stream:
                    calib = slice(0, t["calibration_frames"])
                    e["calibration"] = agreement(cell.logits[calib], ref.logits[calib])
                if e["heldout_frames"] > 0:
                    e["heldout"] = agreement(cell.logits[held], ref.logits[held])
                    e["speedup"] = _cell_speedup(ws, m, s, cell, gpu, scheme, baseline, held)
                    e["mispredicted"] = _mispredicted(
                        CellResult(cell.logits[held], cell.counts[held], None))
                evaluation.append(e)
            t["evaluation"] = evaluation
            tuned.append(t)
    return {"study": "accuracy", "predictor": predictor, "sweep": rows, "tuned": tuned,
            "claim": {"agreement_above": CLAIM_AGREEMENT},
            "objective": {"gpu": gpu, "scheme": scheme, "baseline": baseline}}


def main(argv: Sequence[str]) -> None:
    """Runs the accuracy study and writes results/accuracy.json and its figure."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli, figures  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite)
    res = run_from_config(st.ws, cfg)
    st.run.write_json("results/accuracy.json", res)
    figures.accuracy_curves(res, st.run.path("figures", "accuracy.png"))
    st.run.finish(**st.ws.stats)


def run_from_config(ws: Workspace, cfg: Any) -> dict[str, Any]:
    """:func:`accuracy` with every argument taken from a config (:mod:`experiments.config`)."""
    from experiments import config as config_lib  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    streams = list(ws.streams)
    tune_stream = cfg.tune_stream if cfg.tune_stream in streams else None
    if tune_stream is None:
        logging.warning("tune_stream %r is not among the streams %s: no threshold tuning",
                        cfg.tune_stream, streams)
    return accuracy(
        ws, list(ws.models), streams, predictor_spec("secnn", cfg.silence, cfg.decay),
        config_lib.floats(cfg.taus, "taus"), tune_stream=tune_stream,
        calibration_frames=int(cfg.calibration_frames), floor=float(cfg.agreement_floor),
        evals=int(cfg.tune_evals), gpu=0, scheme=cfg.tune_scheme, baseline=cfg.tune_baseline,
        labels=load_labels(cfg.labels) if cfg.labels else None)


if __name__ == "__main__":
    from experiments import cli as _cli

    _cli.define_flags("runs/accuracy")
    app.run(_cli.clean_errors(main))
