"""Speedup study: replayed GPU time per scheme, model and GPU; SE-CNN's speedup over baselines.

Each frame's event maps are replayed (:mod:`secnn_jax.timing`, via
:class:`experiments.timer.ReplayTimer`) on every configured GPU and scheme:

* the baselines ``dense`` (cuDNN-style implicit GEMM), ``winograd``, ``fft`` and ``zero_skip``
  are replayed from the *zero predictor's* events at tau = 0, whose codes say exactly which input
  neurons are non-zero (ZN) and which are zero (ZZ) — what ``zero_skip`` skips;
* ``secnn_sw`` (SE-CNN on a stock GPU) and ``secnn_hw`` (with the original design's SM extension)
  from the SE-CNN predictor's events.

``fast_conv`` is, per frame, the faster of ``winograd`` and ``fft`` (the best classic
fast-convolution scheme). The paper's three GPU schemes map to ``dense`` (13.4x on average,
22.0x at most), ``fast_conv`` (10.4x, 18.7x) and ``zero_skip`` (7.9x, 16.4x).

Speedups per (model, stream, GPU): ``mean`` is the ratio of total times over the stream (the
throughput gain), ``max`` the best single frame, ``min`` the worst. Across cells, ``average`` is
the arithmetic mean of the cells' ``mean`` and ``at_most`` the largest ``max``.

Library: :func:`speedup`. Command line::

    python -m experiments.speedup --out_dir=runs/speedup --config.gpus=h100,titanx
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, logging

from experiments.cells import Workspace

__all__ = ["BASELINES", "PAPER", "VARIANTS", "frame_times", "speedup", "verdict"]

#: Baselines SE-CNN is compared with, in report order.
BASELINES: tuple[str, ...] = ("dense", "winograd", "fft", "fast_conv", "zero_skip")
#: SE-CNN execution schemes.
VARIANTS: tuple[str, ...] = ("secnn_sw", "secnn_hw")
#: The paper's claims: baseline -> (average speedup, maximum speedup).
PAPER: dict[str, tuple[float, float]] = {
    "dense": (13.4, 22.0), "fast_conv": (10.4, 18.7), "zero_skip": (7.9, 16.4)}


def frame_times(base_us: np.ndarray, secnn_us: np.ndarray, schemes: Sequence[str]
                ) -> dict[str, np.ndarray]:
    """Per-frame times ``{scheme: [T]}`` of one GPU from the two cells' ``[T, S]`` replays.

    Baseline schemes come from ``base_us`` (zero predictor), SE-CNN schemes from ``secnn_us``;
    ``fast_conv`` is the per-frame minimum of ``winograd`` and ``fft`` where both exist.
    """
    out: dict[str, np.ndarray] = {}
    for j, s in enumerate(schemes):
        out[s] = (secnn_us if s in VARIANTS else base_us)[:, j].astype(np.float64)
    fast = [out[s] for s in ("winograd", "fft") if s in out]
    if fast:
        out["fast_conv"] = np.minimum.reduce(fast)
    return out


def _phases(base: np.ndarray | None, sec: np.ndarray | None, g: int,
            schemes: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean microseconds per frame of each phase, per scheme (phases the timer reported)."""
    from experiments.timer import PHASES  # noqa: PLC0415

    out: dict[str, dict[str, float]] = {}
    for j, s in enumerate(schemes):
        src = sec if s in VARIANTS else base
        if src is None:
            continue
        vals = src[:, g, j, :]
        out[s] = {p: float(vals[:, k].mean()) for k, p in enumerate(PHASES)
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


def speedup(ws: Workspace, models: Sequence[str], streams: Sequence[str], predictor: str,
            tau: float = 0.0) -> dict[str, Any]:
    """Replayed times and speedups for every model, stream and GPU of the workspace's timer.

    Returns:
      ``{"study": "speedup", "gpus", "schemes", "predictor", "tau", "cells": [...],
      "summary": [...]}``. A cell (model, stream, gpu) holds ``frames``, ``total_us`` per scheme,
      ``frame_us`` per scheme (lists over frames), ``phase_us`` (mean microseconds per frame of
      each phase, per scheme) and ``speedups[variant][baseline]`` with ``mean``, ``max``,
      ``min``. ``summary`` rows (gpu, variant, baseline) hold ``average``
      (mean over cells of ``mean``), ``at_most`` (max over cells of ``max``) and, for the
      paper's three baselines, ``paper_average``, ``paper_at_most`` and ``verdict``.
    """
    if ws.timer is None:
        raise ValueError("the speedup study needs a timer (timing replay)")
    gpus, schemes = tuple(ws.timer.gpus), tuple(ws.timer.schemes)
    cells = []
    for m in models:
        for s in streams:
            base_cell = ws.run(m, s, "zero", 0.0, timed=True)
            sec_cell = ws.run(m, s, predictor, tau, timed=True)
            base, sec = base_cell.time_us, sec_cell.time_us
            for g, gpu in enumerate(gpus):
                ft = frame_times(base[:, g], sec[:, g], schemes)
                phases = _phases(base_cell.phase_us, sec_cell.phase_us, g, schemes)
                sp: dict[str, dict[str, dict[str, float]]] = {}
                for v in VARIANTS:
                    if v not in ft:
                        continue
                    sp[v] = {}
                    for b in BASELINES:
                        if b not in ft:
                            continue
                        ratio = ft[b] / ft[v]
                        sp[v][b] = {"mean": float(ft[b].sum() / ft[v].sum()),
                                    "max": float(ratio.max()), "min": float(ratio.min())}
                if "secnn_hw" in sp and "dense" in sp["secnn_hw"]:
                    logging.info("speedup %s/%s on %s: secnn_hw %.2fx over dense", m, s, gpu,
                                 sp["secnn_hw"]["dense"]["mean"])
                cells.append({
                    "model": m, "stream": s, "gpu": gpu, "frames": int(base.shape[0]),
                    "total_us": {k: float(v.sum()) for k, v in ft.items()},
                    "frame_us": {k: v.tolist() for k, v in ft.items()},
                    "phase_us": phases,
                    "speedups": sp,
                })
    summary = []
    for gpu in gpus:
        mine = [c for c in cells if c["gpu"] == gpu]
        for v in VARIANTS:
            for b in BASELINES:
                vals = [c["speedups"][v][b] for c in mine if b in c["speedups"].get(v, {})]
                if not vals:
                    continue
                row: dict[str, Any] = {
                    "gpu": gpu, "variant": v, "baseline": b,
                    "average": float(np.mean([x["mean"] for x in vals])),
                    "at_most": float(max(x["max"] for x in vals)),
                    "cells": len(vals),
                }
                if b in PAPER:
                    row["paper_average"], row["paper_at_most"] = PAPER[b]
                    row["verdict"] = verdict(row["average"], PAPER[b][0])
                summary.append(row)
    return {"study": "speedup", "gpus": list(gpus), "schemes": list(schemes),
            "predictor": predictor, "tau": float(tau), "cells": cells, "summary": summary,
            "mapping": {"dense": "cuDNN-style implicit GEMM",
                        "fast_conv": "per frame the faster of winograd and fft",
                        "zero_skip": "zero-skipping SIMT convolution"}}


def main(argv: Sequence[str]) -> None:
    """Runs the speedup study and writes results/speedup.json and its figure."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli, figures  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite)
    res = speedup(st.ws, list(st.ws.models), list(st.ws.streams),
                  predictor_spec("secnn", cfg.silence, cfg.decay))
    st.run.write_json("results/speedup.json", res)
    figures.speedup_bars(res, st.run.path("figures", "speedup.png"))
    st.run.finish(**st.ws.stats)


if __name__ == "__main__":
    from experiments import cli as _cli

    _cli.define_flags("runs/speedup")
    app.run(_cli.clean_errors(main))
