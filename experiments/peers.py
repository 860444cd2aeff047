"""Peers study: SE-CNN beside DeltaCNN- and CBinfer-style change propagation, on the same
events, timing model, launch model and fusion policy.

For every model, stream and global tau, three methods run over the first ``frames`` frames:

* ``secnn_hw`` with the SE-CNN predictor (value prediction, parallel phase + serial amendment);
* ``deltacnn`` and ``cbinfer`` (:data:`secnn_jax.timing.schemes.PEER_DOC`) replayed from the
  :func:`secnn_jax.predictors.accumulated` predictor's events (DeltaCNN's propagation rule:
  truncated changes accumulate until they cross tau), whose outputs are what a DeltaCNN
  computes;
* ``secnn_sw`` and ``secnn_hw`` on the *same* accumulated events: ``secnn_sw`` against
  ``deltacnn`` (both on a stock GPU, layer corrections as kernels) isolates what SE-CNN's
  parallel phase (recomputing ``W * P`` for every predicted input) costs or saves against cached
  outputs; ``secnn_hw`` adds the SM extension.

Each point is the method's replayed speedup over ``dense`` (same launch model) and its
agreement with the exact model on the model's declared metric (:mod:`experiments.metrics`:
top-1 agreement for classifiers, edge/region F1 for HED/CRAFT), under ``agreement``. The
largest tau meeting the agreement floor is chosen on the
first half of the frames and reported on the second half (frames the choice never saw).

Library: :func:`peers`. Command line (prints the table, writes ``results/peers.json`` and
``figures/peers.png`` into ``--out_dir``, with ``config.json``, ``environment.json`` and
``run_info.json``; a killed run resumes from its cached chunks under ``cells/``)::

    python -m experiments.peers --out_dir=runs/peers --config.peer_taus=0,0.02,0.1

Flags (every one validated before any model loads or anything is written):

* ``--out_dir``: output directory (default ``runs/peers``); ``--overwrite``: start over when it
  holds a run made with other flags (otherwise refused);
* ``--models``, ``--streams``, ``--frames``: the models (zoo names or ``pkg.module:factory``),
  stream specs (``bikes``, ``photos``, ``video:PATH``, ``images:PATH``, ...) and frame cap;
* ``--config.peer_taus``: the global thresholds compared (comma-separated, >= 0);
  ``--config.peer_frames``: frames per stream (>= 2: the first half chooses tau, the second
  evaluates it; at most ``--frames``, a cap recorded in ``config.json`` as effective);
  ``--config.agreement_floor``: the floor on the declared metric;
* ``--config.silence``, ``--config.decay``: the SE-CNN predictor's parameters;
* ``--config.gpus`` (the first one is compared), ``--config.launch``, ``--config.fusion``,
  ``--config.precision``, ``--config.schemes``: the timing replay (``deltacnn`` and
  ``cbinfer`` must be among the schemes for their rows);
* ``--config.resolution``, ``--config.model_resolution``, ``--config.model_frames``,
  ``--config.chunk_size``: input sizes, per-model frame caps, frames per cached chunk.

Every ``--config.FIELD`` is described in :data:`experiments.config.FIELDS` (``--help`` lists
the ones this command reads).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app

from experiments import metrics as metrics_lib
from experiments.cells import Workspace
from experiments.paper import COMPARISON_LAUNCH
from experiments.timer import variant

__all__ = ["DELTACNN_PUBLISHED", "METHODS", "main", "peers"]

#: Methods compared: (name, scheme, predictor kind).
METHODS: tuple[tuple[str, str, str], ...] = (
    ("secnn_hw", "secnn_hw", "secnn"), ("deltacnn", "deltacnn", "accumulated"),
    ("cbinfer", "cbinfer", "accumulated"), ("secnn_hw(accumulated)", "secnn_hw", "accumulated"),
    ("secnn_sw(accumulated)", "secnn_sw", "accumulated"))
#: DeltaCNN's published speedup over cuDNN ("up to 7x", CVPR 2022; RTX 3090, fp16/fp32, HD
#: video, networks without batch norm folding issues), for the sanity row.
DELTACNN_PUBLISHED = 7.0


def _times(ws: Workspace, model: str, stream: str, predictor: str, tau: float, n: int,
           key: str, gpu: int) -> np.ndarray | None:
    cell = ws.run(model, stream, predictor, tau, n_frames=n, timed=True)
    if cell.time_us is None or key not in ws.timer.schemes:
        return None
    return cell.time_us[:, gpu, ws.timer.schemes.index(key)]


def _split(best: dict[str, dict[str, Any]], floor: float) -> tuple[Any, Any]:
    """The fastest SE-CNN method and the fastest peer among ``best`` that meet ``floor`` on
    the held-out half (``None`` where none does)."""
    ok = [p for p in best.values() if p["heldout_agreement"] >= floor]
    sec = max((p for p in ok if p["method"].startswith("secnn")),
              key=lambda p: p["heldout_speedup"], default=None)
    peer = max((p for p in ok if not p["method"].startswith("secnn")),
               key=lambda p: p["heldout_speedup"], default=None)
    return sec, peer


def _point_verdict(best: dict[str, dict[str, Any]], floor: float) -> str:
    """"SE-CNN beats the change-based peers": ``holds`` when SE-CNN (any predictor) is the
    fastest method meeting the floor, ``does not hold`` when a peer is, ``not measured`` when
    none meets it."""
    sec, peer = _split(best, floor)
    if sec is None:
        return "does not hold" if peer is not None else "not measured"
    if peer is None:
        return "holds"
    return "holds" if sec["heldout_speedup"] > peer["heldout_speedup"] else "does not hold"


def _verdict(ws: Workspace, model: str, stream: str, secnn_spec: str,
             best: dict[str, dict[str, Any]], floor: float, launch: str, gpu: int,
             memo: dict[tuple[str, float], Any]) -> tuple[dict[str, Any] | None, str]:
    """``(band, verdict)`` of "SE-CNN beats the change-based peers": where both an SE-CNN
    method and a peer meet the floor, the band of the peer's time over SE-CNN's, each method at
    its chosen tau, over the timing model's uncertainty (:func:`secnn_jax.timing.bands` on the
    first ``BAND_FRAMES`` frames of the model's first stream ``stream``, moved to this
    stream's held-out ratio), judged above 1 by the band rule; else the point verdict.
    ``memo`` keeps each (predictor, tau)'s events of the model (one run_stream each)."""
    from experiments.cells import make_predictor  # noqa: PLC0415
    from experiments.speedup import BAND_FRAMES, PROBE_FRAMES, SENSITIVITY_FRAMES  # noqa: PLC0415
    from secnn_jax import run_stream  # noqa: PLC0415
    from secnn_jax.timing import uncertainty  # noqa: PLC0415

    sec, peer = _split(best, floor)
    if sec is None or peer is None:
        return None, _point_verdict(best, floor)
    how = {name: (scheme, secnn_spec if kind == "secnn" else kind)
           for name, scheme, kind in METHODS}
    h = ws.model(model)
    # As many frames as the speedup study's run_stream (its compiled program is reused).
    x = ws.frames(model, stream)[:SENSITIVITY_FRAMES]
    ev = []
    for p in (sec, peer):
        key = (how[p["method"]][1], p["tau"])
        if key not in memo:
            _, e = run_stream(h.apply_fn, h.variables, x, make_predictor(key[0]), tau=key[1])
            memo[key] = e.map(lambda v: np.asarray(v)[:BAND_FRAMES])
        ev.append(memo[key])
    n = min(BAND_FRAMES, len(x))
    r = uncertainty.Ratio(how[sec["method"]][0], (how[peer["method"]][0],))
    b = uncertainty.bands(ws.layers(model, stream), ev[0], ev[1], (r,),
                          ops=ws.ops(model, stream), gpu=ws.timer.gpus[gpu],
                          precision=ws.timer.precision, launch=launch, fusion=ws.timer.fusion,
                          params=ws.timer.params, config=ws.timer.config,
                          probe_frames=min(PROBE_FRAMES, n))[r.name]
    b = b.scaled(sec["heldout_speedup"] / peer["heldout_speedup"])
    return {"secnn": sec["method"], "peer": peer["method"], "stream": stream,
            **b.as_dict()}, b.judge(lambda ratio: "holds" if ratio > 1.0 else "does not hold")


def peers(ws: Workspace, models: Sequence[str], streams: Sequence[str], secnn_spec: str,
          taus: Sequence[float], *, frames: int = 16, floor: float = 0.95,
          launch: str = COMPARISON_LAUNCH, gpu: int = 0, bands: bool = True) -> dict[str, Any]:
    """The three-method comparison (see the module docstring).

    Returns ``{"study": "peers", "points": [...], "verdicts": [...], "buffers": [...],
    "sanity": [...]}``: a point per (model, stream, method, tau) with ``speedup`` over dense
    and ``agreement`` (the declared metric's primary score, named by ``metric``); per
    (model, stream) the fastest method meeting ``floor`` on the
    held-out half, the parallel phase's effect, and the ``verdict`` on "SE-CNN beats the
    change-based peers" with its ``band`` (SE-CNN's best method over the best peer, each at
    its chosen tau, over the timing model's uncertainty; ``bands=False``: point verdicts);
    buffer bytes per method and model.
    """
    from secnn_jax.timing.energy import method_buffer_bytes  # noqa: PLC0415

    if ws.timer is None:
        raise ValueError("the peers study needs a timer (timing replay)")
    g = ws.timer.gpus[gpu]
    points, verdicts, buffers, sanity = [], [], [], []
    for m in models:
        memo: dict[tuple[str, float], Any] = {}  # the model's band events per (predictor, tau)
        metric = metrics_lib.model_metric(m)
        primary = metrics_lib.get_metric(metric).primary
        layers = ws.layers(m, streams[0])
        buffers.append({"model": m, **{meth: method_buffer_bytes(layers, ws.timer.precision,
                                                                 meth)
                                       for meth in ("secnn", "deltacnn", "cbinfer")}})
        for s in streams:
            n = min(frames, ws.n_frames(m, s))
            half = max(1, n // 2)
            ref = ws.reference(m, s).logits[:n]
            dense = _times(ws, m, s, "zero", 0.0, n, variant("dense", launch), gpu)
            by_method: dict[str, list[dict[str, Any]]] = {}
            for name, scheme, kind in METHODS:
                spec = secnn_spec if kind == "secnn" else kind
                for tau in taus:
                    t = _times(ws, m, s, spec, tau, n, variant(scheme, launch), gpu)
                    if t is None or dense is None:
                        continue
                    logits = ws.run(m, s, spec, tau, n_frames=n, timed=True).logits
                    per = metrics_lib.frame_scores(metric, logits, ref)[primary]
                    p = {"model": m, "stream": s, "gpu": g, "method": name, "tau": float(tau),
                         "metric": metric, "speedup": float(dense.sum() / t.sum()),
                         "agreement": float(per.mean()),
                         "calib_agreement": float(per[:half].mean()),
                         "heldout_agreement": float(per[half:].mean())
                         if n > half else float("nan"),
                         "heldout_speedup": float(dense[half:].sum() / t[half:].sum())
                         if n > half else float("nan")}
                    points.append(p)
                    by_method.setdefault(name, []).append(p)
            best = {}
            for name, pts in by_method.items():
                ok = [p for p in pts if p["calib_agreement"] >= floor]
                if ok:
                    best[name] = max(ok, key=lambda p: p["tau"])
            fastest = max((p for p in best.values() if p["heldout_agreement"] >= floor),
                          key=lambda p: p["heldout_speedup"], default=None)
            band, verdict = _verdict(ws, m, streams[0], secnn_spec, best, floor, launch,
                                     gpu, memo) if bands else (None, _point_verdict(best, floor))
            d0 = next((p for p in by_method.get("deltacnn", []) if p["tau"] == 0.0), None)
            h0 = next((p for p in by_method.get("secnn_sw(accumulated)", [])
                       if p["tau"] == 0.0), None)
            verdicts.append({
                "model": m, "stream": s, "gpu": g, "floor": floor, "metric": metric,
                "chosen": {k: {"tau": v["tau"], "heldout_speedup": v["heldout_speedup"],
                               "heldout_agreement": v["heldout_agreement"]}
                           for k, v in best.items()},
                "fastest": fastest["method"] if fastest else None,
                "fastest_speedup": fastest["heldout_speedup"] if fastest else None,
                "parallel_phase_effect": (d0["speedup"] and h0["speedup"] / d0["speedup"])
                if d0 and h0 else None,
                "band": band, "verdict": verdict})
            if d0:
                sanity.append({"model": m, "stream": s, "gpu": g, "ours": d0["speedup"],
                               "published_up_to": DELTACNN_PUBLISHED})
    return {"study": "peers", "launch": launch, "frames": frames, "taus": [float(t) for t in taus],
            "points": points, "verdicts": verdicts, "buffers": buffers, "sanity": sanity}


def main(argv: Sequence[str]) -> None:
    """``python -m experiments.peers``: runs the peers study, prints its tables and writes
    ``results/peers.json``, ``figures/peers.png`` and ``report.md`` (its claims and section)
    into ``--out_dir``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli, figures, report  # noqa: PLC0415
    from experiments import config as config_lib  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, studies=("peers",))
    res = peers(st.ws, list(st.ws.models), list(st.ws.streams),
                predictor_spec("secnn", cfg.silence, cfg.decay),
                config_lib.floats(cfg.peer_taus, "peer_taus"), frames=config_lib.peer_frames(cfg),
                floor=float(cfg.agreement_floor), launch=str(cfg.launch))
    st.run.write_json("results/peers.json", res)
    figures.pareto(res, st.run.path("figures", "peers.png"))
    md, printed = report.study_output({"peers": res}, cfg.to_dict(), "experiments.peers")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/peers", _FIELDS["peers"])
