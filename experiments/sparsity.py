"""Sparsity study: per layer, the fraction of input neurons that are "activated", read two ways.

Tests the paper's claim that fewer than 10% of neurons are activated in trained CNNs, under both
readings of "activated":

* **non-zero** (the neuron *fires*): for every model and stream, the plain forward pass
  (:meth:`experiments.cells.Workspace.reference`) counts, per layer and frame, the input neurons
  ``!= 0``. A layer is *rectified* when none of its inputs was ever negative on the stream (it
  reads a ReLU/ReLU6 output, possibly pooled) and *signed* otherwise (the image, BatchNorm
  outputs, residual sums, which are dense by construction).
* **changed** since the previous frame by more than a threshold: ``|x_t - x_{t-1}| > tau``. The
  same pass counts, per layer and frame, the changed input neurons at every threshold of
  :data:`experiments.config.CHANGE_TAUS` (0, then 1, 1.5, 2, 3, 5, 7 per decade from 1e-4 to
  100). Frame 0 has no previous frame: it is left out of every changed share (the shares are
  over frames 1 .. T-1). Reported at a fixed global tau (``config.activated_tau``, default
  0.05: the accuracy sweep's global-threshold scale, where the issue found top-1 agreement
  still 100% on EfficientNet-Lite0) and, once the accuracy study has tuned per-layer
  thresholds, at each tuned map (:func:`add_tuned`). The sparsity study runs first, so the tuned
  thresholds are not known when the pass runs: a tuned ``tau_l`` between two grid thresholds is
  reported as the exact bracket the grid gives (the share is non-increasing in tau: between the
  share at the grid threshold above ``tau_l`` and the one below), exact when ``tau_l`` is on it.

Beside ours, the published ImageNet figure: Cnvlutin (ISCA 2016) finds 44% of conv-layer inputs
zero on average (:data:`experiments.paper.CNVLUTIN_ZERO_SHARE`).

Library: :func:`sparsity`, :func:`add_tuned`. Command line::

    python -m experiments.sparsity --out_dir=runs/sparsity --config.frames=16
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import app, logging

from experiments.cells import Workspace
from experiments.config import CHANGE_TAUS
from experiments.errors import ConfigError
from experiments.paper import CLAIM_ACTIVATED

__all__ = ["CLAIM_FIRED", "DEFAULT_CHANGE_TAU", "add_tuned", "changed_share", "sparsity",
           "summarise", "tuned_bracket", "verdict"]

#: The paper's claim: fewer than this fraction of neurons fire.
CLAIM_FIRED = CLAIM_ACTIVATED
#: The fixed threshold of the "changed" reading (``config.activated_tau``'s default).
DEFAULT_CHANGE_TAU = 0.05


def verdict(low: float | None, high: float | None = None) -> str:
    """The verdict on "fewer than 10% are activated" for a share, or a bracket ``[low, high]``
    (holds if ``high`` < 10%, does not hold if ``low`` >= 10%, else ``inconclusive (low-high)``,
    the timing bands' word)."""
    high = low if high is None else high
    if low is None or high is None:
        return "not measured"
    if high < CLAIM_FIRED:
        return "holds"
    if low >= CLAIM_FIRED:
        return "does not hold"
    return f"inconclusive ({100 * low:.2f}%-{100 * high:.2f}%)"


def summarise(nonzero: np.ndarray, negative: np.ndarray, n_inputs: np.ndarray) -> dict[str, Any]:
    """Summary numbers of one (model, stream) from ``[T, L]`` counts and ``[L]`` sizes."""
    t = nonzero.shape[0]
    total = n_inputs.astype(np.float64) * t
    rectified = negative.sum(0) == 0
    per_layer = nonzero.sum(0) / total

    def frac(mask: np.ndarray) -> float | None:
        return float(nonzero.sum(0)[mask].sum() / total[mask].sum()) if mask.any() else None

    fired_all = frac(np.ones_like(rectified))
    return {
        "frames": int(t),
        "layers": int(len(n_inputs)),
        "rectified_layers": int(rectified.sum()),
        "fired_all": fired_all,
        "fired_rectified": frac(rectified),
        "fired_signed": frac(~rectified),
        "median_layer_fired": float(np.median(per_layer)),
        "layers_below_claim": int((per_layer < CLAIM_FIRED).sum()),
        "claim_holds": bool(fired_all is not None and fired_all < CLAIM_FIRED),
        "verdict": verdict(fired_all),
    }


def changed_share(changed: np.ndarray, n_inputs: np.ndarray, k: int | np.ndarray,
                  layers: np.ndarray | None = None) -> float | None:
    """The share of input neurons changed by more than threshold ``k`` over frames 1 .. T-1.

    Args:
      changed: ``[T, L, K]`` counts (:attr:`experiments.cells.RefResult.changed`); frame 0 is
        left out (no previous frame).
      n_inputs: ``[L]`` input neurons per layer.
      k: the threshold's index, one for every layer or ``[L]`` (one per layer).
      layers: a boolean ``[L]`` mask of the layers counted (default: all).

    Returns:
      ``None`` with fewer than two frames or no layer counted.
    """
    if changed.shape[0] < 2:
        return None
    mask = np.ones(changed.shape[1], bool) if layers is None else np.asarray(layers, bool)
    if not mask.any():
        return None
    ks = np.broadcast_to(np.asarray(k), (changed.shape[1],))
    per_layer = changed[1:].sum(0)[np.arange(changed.shape[1]), ks]  # [L]
    total = n_inputs.astype(np.float64) * (changed.shape[0] - 1)
    return float(per_layer[mask].sum() / total[mask].sum())


def tuned_bracket(taus: np.ndarray, change_taus: Sequence[float] | np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(k_low, k_high)`` ``[L]``: per layer, the grid indices whose shares bracket the share
    at ``taus`` (a threshold per layer): the grid threshold at or above it (the lower share; -1
    past the grid's end: share 0) and the one at or below it (the higher share)."""
    grid = np.asarray(change_taus, np.float32)
    t = np.asarray(taus, np.float32)
    above = np.searchsorted(grid, t, side="left")  # first grid >= tau
    below = np.searchsorted(grid, t, side="right") - 1  # last grid <= tau
    return np.where(above < len(grid), above, -1), np.maximum(below, 0)


def _bracket_shares(changed: np.ndarray, n_inputs: np.ndarray, taus: np.ndarray,
                    change_taus: np.ndarray) -> tuple[float | None, float | None, np.ndarray]:
    """``(low, high, per_layer [L, 2])`` shares changed at per-layer ``taus``."""
    k_lo, k_hi = tuned_bracket(taus, change_taus)
    padded = np.concatenate([changed, np.zeros_like(changed[..., :1])], axis=-1)  # -1: none
    k_lo = np.where(k_lo < 0, padded.shape[-1] - 1, k_lo)
    low = changed_share(padded, n_inputs, k_lo)
    high = changed_share(padded, n_inputs, k_hi)
    rows = np.array([[changed_share(padded[:, [i]], n_inputs[[i]], k_lo[i]) or 0.0,
                      changed_share(padded[:, [i]], n_inputs[[i]], k_hi[i]) or 0.0]
                     for i in range(changed.shape[1])]) if changed.shape[0] > 1 else \
        np.zeros((changed.shape[1], 2))
    return low, high, rows


def sparsity(ws: Workspace, models: Sequence[str], streams: Sequence[str], *,
             change_tau: float = DEFAULT_CHANGE_TAU) -> dict[str, Any]:
    """Per-layer firing rates and change rates for every model and stream.

    Args:
      change_tau: the fixed threshold of the "changed" reading (one of
        :data:`experiments.config.CHANGE_TAUS`, else :class:`ConfigError`).

    Returns:
      ``{"study": "sparsity", "claim": ..., "change_tau", "change_taus", "cells": [...],
      "summary": [...]}`` (a summary row per cell: ``model``, ``stream``, ``fired_all``,
      ``changed``, ``claim``, ``verdict``, ``changed_verdict``); each cell holds ``model``,
      ``stream``, ``summary`` (:func:`summarise`, plus ``change_frames`` (T - 1), ``changed``
      and ``changed_rectified`` at ``change_tau``, ``changed_zero`` at tau = 0 and
      ``changed_verdict``), ``changed_curve`` (the share changed at every threshold of
      ``change_taus``) and ``layers``: per layer ``name``, ``kind``, ``role``
      (rectified/signed), ``n_inputs``, ``fired`` (fraction of input neurons != 0 over all
      frames), ``fired_min``/``fired_max`` over frames, ``changed`` (at ``change_tau``, frames
      1 .. T-1).
    """
    if float(change_tau) not in CHANGE_TAUS:
        raise ConfigError(f"change_tau={change_tau!r} is not one of the thresholds the plain "
                          f"pass counts changes at (experiments.config.CHANGE_TAUS)")
    k_fixed = CHANGE_TAUS.index(float(change_tau))
    cells = []
    for m in models:
        for s in streams:
            ref = ws.reference(m, s)
            layers = ws.layers(m, s)
            rectified = ref.negative.sum(0) == 0
            per_frame = ref.nonzero / ref.n_inputs[None].astype(np.float64)
            rows = []
            for i, lyr in enumerate(layers):
                rows.append({
                    "name": lyr.name, "kind": lyr.kind,
                    "role": "rectified" if rectified[i] else "signed",
                    "n_inputs": int(ref.n_inputs[i]),
                    "fired": float(ref.nonzero[:, i].sum() / (ref.n_inputs[i] * len(ref.nonzero))),
                    "fired_min": float(per_frame[:, i].min()),
                    "fired_max": float(per_frame[:, i].max()),
                    "changed": changed_share(ref.changed[:, [i]], ref.n_inputs[[i]], k_fixed),
                })
            summary = summarise(ref.nonzero, ref.negative, ref.n_inputs)
            ch = changed_share(ref.changed, ref.n_inputs, k_fixed)
            summary.update({
                "change_frames": int(max(ref.changed.shape[0] - 1, 0)),
                "changed": ch,
                "changed_rectified": changed_share(ref.changed, ref.n_inputs, k_fixed,
                                                   rectified),
                "changed_zero": changed_share(ref.changed, ref.n_inputs, 0),
                "changed_verdict": verdict(ch),
            })
            logging.info("sparsity %s/%s: %.1f%% of input neurons fire (%.1f%% in rectified "
                         "layers); %s change by more than %g", m, s, 100 * summary["fired_all"],
                         100 * (summary["fired_rectified"] or float("nan")),
                         "n/a" if ch is None else f"{100 * ch:.1f}%", change_tau)
            curve = [{"tau": float(t), "changed": changed_share(ref.changed, ref.n_inputs, k)}
                     for k, t in enumerate(CHANGE_TAUS)]
            cells.append({"model": m, "stream": s, "summary": summary, "changed_curve": curve,
                          "layers": rows})
    summary = [{"model": c["model"], "stream": c["stream"], "fired_all": c["summary"]["fired_all"],
                "changed": c["summary"]["changed"],
                "claim": f"fewer than {CLAIM_FIRED:.0%} of input neurons fire",
                "verdict": c["summary"]["verdict"],
                "changed_verdict": c["summary"]["changed_verdict"]} for c in cells]
    return {"study": "sparsity", "claim": {"fired_below": CLAIM_FIRED},
            "change_tau": float(change_tau), "change_taus": [float(t) for t in CHANGE_TAUS],
            "cells": cells, "summary": summary}


def add_tuned(result: dict[str, Any], ws: Workspace, tuned: Sequence[Mapping[str, Any]]
              ) -> dict[str, Any]:
    """Adds the "changed" reading at the accuracy study's tuned thresholds to ``result``.

    ``tuned`` is the accuracy result's ``tuned`` list (``model``, ``method``, ``tau``:
    ``{layer: float}``, missing layers 0). For every cell of a tuned model, per method:
    ``tuned`` rows ``{"method", "changed_low", "changed_high", "exact", "verdict"}`` (the
    bracket the grid gives: :func:`tuned_bracket`; ``exact`` when every layer's threshold is on
    the grid) and, per layer, ``changed_tuned`` ``{method: [low, high]}``. The references come
    from ``ws`` (in memory after :func:`sparsity`). Returns ``result``, updated in place.
    """
    for c in result["cells"]:
        ref = ws.reference(c["model"], c["stream"])
        names = [r["name"] for r in c["layers"]]
        rows = []
        for t in tuned:
            if t["model"] != c["model"]:
                continue
            taus = np.array([float(t["tau"].get(n, 0.0)) for n in names], np.float64)
            low, high, per_layer = _bracket_shares(ref.changed, ref.n_inputs, taus,
                                                   ref.change_taus)
            k_lo, k_hi = tuned_bracket(taus, ref.change_taus)
            method = str(t.get("method", "mean"))
            rows.append({"method": method, "changed_low": low, "changed_high": high,
                         "exact": bool(np.array_equal(k_lo, k_hi)),
                         "tau_min": float(taus.min()), "tau_max": float(taus.max()),
                         "verdict": verdict(low, high)})
            for r, (lo, hi) in zip(c["layers"], per_layer.tolist(), strict=True):
                r.setdefault("changed_tuned", {})[method] = [lo, hi]
        c["tuned"] = rows
    return result


def main(argv: Sequence[str]) -> None:
    """Runs the sparsity study, prints its claims and table, and writes results/sparsity.json,
    its figure and report.md (its claims and section)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import sys  # noqa: PLC0415

    from experiments import cli, figures, report  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, timer=None,
                   studies=("sparsity",))
    res = sparsity(st.ws, list(st.ws.models), list(st.ws.streams),
                   change_tau=float(cfg.activated_tau))
    st.run.write_json("results/sparsity.json", res)
    figures.sparsity_bars(res, st.run.path("figures", "sparsity.png"))
    md, printed = report.study_output({"sparsity": res}, cfg.to_dict(), "experiments.sparsity")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/sparsity", _FIELDS["sparsity"])
