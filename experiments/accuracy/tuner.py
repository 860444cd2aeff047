"""The threshold tuner: per-layer thresholds maximising replayed speedup above a floor.

Per-layer thresholds are ``tau_l = alpha_l * s_l``, with ``s_l`` the mean ``|x|`` of layer
``l``'s input on the calibration frames. The search (:func:`search`) is pure: it sees only an
``evaluate(alpha, note) -> Evaluation`` and spends an explicit :class:`Budget` of evaluations,
in small stages:

1. :func:`stage_global`: one global ``alpha``, doubling up from 0.02 (while below 64) while
   feasible, or, when 0.02 is not, halving down (while above 0.001) to the first that is;
2. :func:`stage_groups`: layers cut into groups by serial-phase work (the largest layer always
   in group 0), each group's ``alpha`` doubled in turn, a change kept when it stays feasible and
   gains speed, a group frozen at its first refusal;
3. :func:`stage_backoff`: the method's ``backoff`` scales the chosen ``alpha`` (one evaluation
   outside the budget).

:func:`tune` is the workspace-facing wrapper: it builds ``evaluate`` from SE-CNN runs over the
calibration frames (tau traced: one compile), memoises it, records the history and returns the
result as a JSON-ready dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from absl import logging

from experiments import metrics as metrics_lib
from experiments.accuracy.objective import CLAIM_AGREEMENT, Objective
from experiments.accuracy.scoring import cell_speedup, mispredicted
from experiments.cells import Workspace
from experiments.errors import ConfigError
from experiments.tuning import TuneMethod, tune_method
from secnn_jax import events as ev

__all__ = ["Budget", "Evaluation", "Search", "better", "calibration_frames", "search",
           "stage_backoff", "stage_global", "stage_groups", "tune"]

#: Stage 1's first global alpha, and the bounds of its doubling and halving.
ALPHA_START, ALPHA_MAX, ALPHA_MIN = 0.02, 64, 0.001


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluation:
    """One candidate ``alpha`` judged on the calibration frames.

    Attributes:
      alpha: ``[L]`` per-layer alpha.
      tau: ``{layer: alpha * scale}``.
      score: the primary score over all calibration frames.
      criterion: the tuning method's number (compared with the objective's ``need``).
      windows: the method's window scores.
      speedup: the replayed speedup of the objective's scheme (``None`` when not timed).
      feasible: the criterion reaches the objective.
      serial_work: ``[L]`` mispredicted inputs times fan-out (stage 2's grouping).
      mispredicted: the share of inputs mispredicted.
    """

    alpha: np.ndarray
    tau: dict[str, float]
    score: float
    criterion: float
    windows: list[float]
    speedup: float | None
    feasible: bool
    serial_work: np.ndarray
    mispredicted: float


@dataclasses.dataclass(frozen=True)
class Budget:
    """Evaluations the search may still spend (the exact start and the backoff are outside)."""

    left: int

    @property
    def ok(self) -> bool:
        """Whether another evaluation may be spent."""
        return self.left > 0

    def spend(self) -> Budget:
        """The budget after one evaluation."""
        return Budget(self.left - 1)


@dataclasses.dataclass(frozen=True, eq=False)
class Search:
    """The search's outcome: ``best`` (after backoff) and ``searched`` (before it)."""

    best: Evaluation
    searched: Evaluation


Evaluate = Callable[[np.ndarray, str], Evaluation]


def better(a: Any, b: Any) -> Any:
    """The feasible one of ``a``, ``b`` with the higher speedup (``b`` on ties; a missing
    speedup counts as 0); ``a`` when ``b`` is not feasible."""
    if not b.feasible:
        return a
    return b if (b.speedup or 0) >= (a.speedup or 0) else a


def stage_global(evaluate: Evaluate, n_layers: int, best: Evaluation, budget: Budget
                 ) -> tuple[Evaluation, Budget]:
    """Stage 1: one global alpha, doubling up from 0.02 or halving down (module docstring)."""
    a = ALPHA_START
    if not budget.ok:
        return best, budget
    first = evaluate(np.full(n_layers, a), f"global alpha {a:g}")
    budget = budget.spend()
    if first.feasible:
        best = better(best, first)
        while budget.ok and a < ALPHA_MAX:
            a *= 2
            r = evaluate(np.full(n_layers, a), f"global alpha {a:g}")
            budget = budget.spend()
            if not r.feasible:
                break
            best = better(best, r)
    else:
        while budget.ok and a > ALPHA_MIN:
            a /= 2
            r = evaluate(np.full(n_layers, a), f"global alpha {a:g}")
            budget = budget.spend()
            if r.feasible:
                best = better(best, r)
                break
    return best, budget


def layer_groups(serial_work: np.ndarray, groups: int) -> list[np.ndarray]:
    """Layer indices per group, largest serial work first: a layer's group is where its share
    of the work *starts* (the work before it), so the largest layer is always in group 0 (an
    inclusive share put a layer holding >= 1/groups of the work in a later group and left
    group 0 empty)."""
    order = np.argsort(-serial_work, kind="stable")
    sw = serial_work[order]
    start = (np.cumsum(sw) - sw) * groups / max(float(sw.sum()), 1e-30)
    group_of = np.minimum(start.astype(int), groups - 1)
    return [order[group_of == gi] for gi in range(groups)]


def stage_groups(evaluate: Evaluate, best: Evaluation, budget: Budget, groups: int
                 ) -> tuple[Evaluation, Budget]:
    """Stage 2: double alpha per group of layers, largest serial work first (module
    docstring); entered only with budget left and a non-zero alpha."""
    if not (budget.ok and float(best.alpha.max()) > 0):
        return best, budget
    members_of = layer_groups(best.serial_work, groups)
    frozen: set[int] = set()
    while budget.ok and len(frozen) < groups:
        for gi in range(groups):
            if not budget.ok:
                break
            if gi in frozen:
                continue
            members = members_of[gi]
            if members.size == 0:
                frozen.add(gi)
                continue
            alpha = best.alpha.copy()
            alpha[members] *= 2
            r = evaluate(alpha, f"group {gi} ({members.size} layers) x2")
            budget = budget.spend()
            if r.feasible and (r.speedup or 0) > (best.speedup or 0):
                best = r
            else:
                frozen.add(gi)
    return best, budget


def stage_backoff(evaluate: Evaluate, best: Evaluation, backoff: float) -> Evaluation:
    """Stage 3: ``best``'s alpha times ``backoff`` (below 1 and a non-zero alpha only)."""
    if backoff < 1.0 and float(best.alpha.max()) > 0:
        return evaluate(best.alpha * backoff, f"backoff x{backoff:g}")
    return best


def search(evaluate: Evaluate, n_layers: int, *, evals: int, groups: int,
           backoff: float = 1.0) -> Search:
    """The tuner's search over per-layer alpha (module docstring): ``evals`` evaluations in
    all, the exact start (alpha 0) included, plus one for a ``backoff`` below 1."""
    best = evaluate(np.zeros(n_layers), "exact (alpha 0)")
    budget = Budget(evals - 1)
    best, budget = stage_global(evaluate, n_layers, best, budget)
    best, budget = stage_groups(evaluate, best, budget, groups)
    return Search(best=stage_backoff(evaluate, best, backoff), searched=best)


def calibration_frames(ws: Workspace, model: str, stream: str, requested: int) -> int:
    """The calibration frames :func:`tune` uses for ``requested``: whole chunks of the
    workspace, at least one, at most all frames but one chunk when there are more."""
    total = ws.n_frames(model, stream)
    cs = ws.chunk_size
    calib = max(cs, (min(requested, total) // cs) * cs)
    if calib >= total and total > cs:
        calib = ((total - 1) // cs) * cs
    return min(calib, total)


def _effective_method(meth: TuneMethod, calib: int) -> TuneMethod:
    """``meth`` with no more windows than calibration frames (one frame: the mean)."""
    if meth.windows <= calib:
        return meth
    logging.warning("tune method %s: %d windows but only %d calibration frames; using %d",
                    meth.spec, meth.windows, calib, calib)
    return dataclasses.replace(meth, windows=calib) if calib >= 2 else \
        dataclasses.replace(meth, kind="mean", windows=1)


def tune(ws: Workspace, model: str, stream: str, predictor: str, *, calibration_frames: int,
         floor: float = CLAIM_AGREEMENT, evals: int = 8, gpu: int = 0,
         scheme: str = "secnn_hw", baseline: str = "dense", groups: int = 4,
         method: str | TuneMethod = "mean", metric: str | None = None) -> dict[str, Any]:
    """Per-layer thresholds maximising replayed speedup with the metric's score >= ``floor``.

    Args:
      calibration_frames: frames the tuner sees (rounded down to a multiple of the workspace's
        chunk size; at least one chunk; at most all frames but one chunk when possible); a
        change is logged as a warning and returned as ``calibration_frames``
        (:func:`experiments.accuracy.record_effective` writes it to ``config.json``; the
        command line refuses a request that is not a whole number of chunks).
      floor: minimum of the method's criterion (minus its margin) on the calibration frames,
        on the primary score of ``metric``.
      evals: maximum SE-CNN runs over the calibration frames (a ``backoff`` below 1 adds one).
      gpu, scheme, baseline: the objective: speedup of ``scheme`` over ``baseline`` on the
        timer's ``gpu``-th GPU.
      groups: layer groups of stage 2 (by serial-phase work).
      method: a :class:`TuneMethod` or its spec (``mean``: the score over all calibration
        frames).
      metric: the metric (default: the model's declared one).

    Returns:
      ``tau`` (``{layer: float}``), ``alpha`` and ``scale`` per layer, ``metric``, ``method``
      (its spec; ``windows_used``: its windows, fewer when the calibration frames are fewer
      than the windows), the calibration ``agreement`` (the primary score over all
      calibration frames), ``criterion`` (the method's number), ``window_scores``,
      ``speedup``, ``calibration_frames``, and ``history`` (every evaluation).
    """
    if ws.timer is None:
        raise ConfigError("the threshold tuner needs a timer (timing replay)")
    meth = tune_method(method)
    metric = metric or metrics_lib.model_metric(model)
    layers = ws.layers(model, stream)
    calib = _calibration(ws, model, stream, calibration_frames)
    spec = meth.spec
    meth = _effective_method(meth, calib)
    objective = Objective(metric, floor, meth.margin)
    ref = ws.reference(model, stream)
    n_inputs = ref.n_inputs.astype(np.float64)
    scale = ref.abs_sum[:calib].sum(0) / (n_inputs * calib)
    fan = np.array([lyr.macs / lyr.n_inputs / lyr.in_shape[0] for lyr in layers], np.float64)
    names = [lyr.name for lyr in layers]
    history: list[dict[str, Any]] = []
    cache: dict[tuple[float, ...], Evaluation] = {}

    def evaluate(alpha: np.ndarray, note: str) -> Evaluation:
        key = tuple(float(a) for a in alpha)
        if key in cache:
            return cache[key]
        tau = {n: float(a * s) for n, a, s in zip(names, alpha, scale, strict=True)}
        cell = ws.run(model, stream, predictor, tau, n_frames=calib, timed=True)
        per = metrics_lib.frame_scores(metric, cell.logits, ref.logits[:calib])[
            objective.primary]
        score = float(per.mean())
        crit = meth.criterion(per)
        sp = cell_speedup(ws, model, stream, cell, gpu, scheme, baseline)
        miss = cell.counts[:, :, ev.ZN].sum(0) + cell.counts[:, :, ev.VM].sum(0)
        ok = objective.feasible(crit)
        out = Evaluation(alpha=np.array(alpha, np.float64), tau=tau, score=score,
                         criterion=crit, windows=meth.window_scores(per).tolist(),
                         speedup=sp, feasible=ok, serial_work=miss * fan,
                         mispredicted=mispredicted(cell))
        cache[key] = out
        history.append({"step": len(history), "note": note, "agreement": score,
                        "criterion": crit, "speedup": sp, "feasible": ok,
                        "alpha_min": float(np.min(alpha)), "alpha_max": float(np.max(alpha))})
        logging.info("tuner %s %s %s: %s %.3f, criterion %.3f, speedup %s (%s)", model,
                     spec, note, metric, score, crit,
                     f"{sp:.3f}" if sp is not None else "n/a", "ok" if ok else "below")
        return out

    found = search(evaluate, len(layers), evals=evals, groups=groups, backoff=meth.backoff)
    best, searched = found.best, found.searched
    return {
        "model": model, "stream": stream, "predictor": predictor, "floor": float(floor),
        "metric": metric, "method": spec, "windows_used": int(meth.windows),
        "margin": float(meth.margin),
        "calibration_frames": int(calib), "tau": best.tau,
        "alpha": dict(zip(names, best.alpha.tolist(), strict=True)),
        "scale": dict(zip(names, scale.tolist(), strict=True)),
        "agreement": best.score, "criterion": best.criterion,
        "window_scores": best.windows, "speedup": best.speedup,
        "mispredicted": best.mispredicted,
        "searched": {"agreement": searched.score, "speedup": searched.speedup,
                     "criterion": searched.criterion},
        "history": history, "objective": {"gpu": gpu, "scheme": scheme, "baseline": baseline},
    }


def _calibration(ws: Workspace, model: str, stream: str, requested: int) -> int:
    """:func:`calibration_frames`, with a warning when it differs from ``requested``."""
    calib = calibration_frames(ws, model, stream, requested)
    if calib != requested:
        total = ws.n_frames(model, stream)
        logging.warning(
            "calibration_frames=%d: %s calibrates on %d of its %d %s frames (whole chunks of "
            "%d%s); recorded in config.json as effective", requested, model, calib,
            total, stream, ws.chunk_size,
            f", {total - calib} held out" if calib < total else ", none held out")
    return calib
