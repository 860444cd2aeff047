"""Peers study: SE-CNN beside DeltaCNN- and CBinfer-style change propagation, on the same
events, timing model, launch model and fusion policy, each machine against itself.

For every model, stream and global tau, the methods of :data:`METHODS` run over the first
``frames`` frames, on two machines (:data:`HARDWARE`), compared like for like:

* **stock GPU**: ``secnn_sw`` (the SE-CNN predictor; compare and amend as kernels) and
  ``secnn_sw(accumulated)`` against ``deltacnn`` and ``cbinfer``
  (:mod:`secnn_jax.timing.schemes`), replayed from the
  :func:`secnn_jax.predictors.accumulated` predictor's events (DeltaCNN's propagation rule:
  truncated changes accumulate until they cross tau), whose outputs are what a DeltaCNN
  computes;
* **extended GPU** (SE-CNN's SM extension): ``secnn_hw`` and ``secnn_hw(accumulated)`` against
  ``deltacnn+ext`` and ``cbinfer+ext``, the peers given the extension where it helps them
  (:func:`secnn_jax.timing.schemes.extended_peer_config`, by SE-CNN's own rules: change
  detection on the comparators, the dependency signal instead of the kernel boundary between a
  detection and its update, hardware compaction where the extension has it, and with
  ``buffer_placement=on_chip`` an on-chip buffer of SE-CNN's capacity for their state;
  :mod:`secnn_jax.timing.schemes`), in the point estimate and in every corner of the
  verdict's band; never slower than the stock peer.

SE-CNN on the accumulated events against DeltaCNN on the same machine isolates what SE-CNN's
parallel phase (recomputing ``W * P`` for every predicted input) costs or saves against cached
outputs. Each point is the method's replayed speedup over ``dense`` (same launch model) and its
agreement with the exact model on the model's declared metric (:mod:`experiments.metrics`:
top-1 agreement for classifiers, edge/region F1 for HED/CRAFT), under ``agreement``. The
largest tau meeting the agreement floor is chosen on the first half of the frames and reported
on the second half (frames the choice never saw); "SE-CNN beats the change-based peers" is
judged per machine among that machine's methods only. Sanity rows put the peers at the
largest tau on the first :data:`SANITY_FRAMES` frames of :data:`SANITY_STREAM` (a static
camera, the clip closest to their published setting) beside their published figures
(:data:`experiments.paper.PUBLISHED_PEERS`).

Library: :func:`peers` (a :class:`PeersResult`), :func:`claims` (the report's verdict rows),
:func:`section` (its ``report.md`` lines). Command line (prints the table, writes
``results/peers.json`` and ``figures/peers.png`` into ``--out_dir``, with ``config.json``,
``environment.json`` and ``run_info.json``; a killed run resumes from its cached chunks under
``cells/``)::

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

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, logging

from experiments import metrics as metrics_lib
from experiments.cells import Workspace
from experiments.paper import COMPARISON_LAUNCH, PUBLISHED_PEERS
from experiments.peersresult import MACHINES, PeerExtension, PeersResult, claims, section
from experiments.timer import variant

__all__ = ["HARDWARE", "MACHINES", "METHODS", "SANITY_FRAMES", "SANITY_STREAM", "PeersResult",
           "claims", "main", "open_sanity_stream", "peers", "section"]

#: The two machines compared, each against itself: a stock GPU and one with SE-CNN's SM
#: extension (:data:`secnn_jax.timing.secnn.SM_EXTENSION`).
HARDWARE: tuple[str, ...] = ("stock", "extended")
#: Methods compared: (name, scheme, predictor kind, hardware). On the extended GPU the peers
#: run under :func:`secnn_jax.timing.schemes.extended_peer_config` (the extension where it
#: helps them).
METHODS: tuple[tuple[str, str, str, str], ...] = (
    ("secnn_sw", "secnn_sw", "secnn", "stock"),
    ("secnn_sw(accumulated)", "secnn_sw", "accumulated", "stock"),
    ("deltacnn", "deltacnn", "accumulated", "stock"),
    ("cbinfer", "cbinfer", "accumulated", "stock"),
    ("secnn_hw", "secnn_hw", "secnn", "extended"),
    ("secnn_hw(accumulated)", "secnn_hw", "accumulated", "extended"),
    ("deltacnn+ext", "deltacnn", "accumulated", "extended"),
    ("cbinfer+ext", "cbinfer", "accumulated", "extended"))
#: The clip closest to the peers' published setting (a static camera), for the sanity rows.
SANITY_STREAM = "carphone_pristine"
#: Frames of :data:`SANITY_STREAM` per sanity row (frame 0 runs dense for every peer and is
#: left out of the speedup; few frames keep the rows' cost small).
SANITY_FRAMES = 4


def _times(ws: Workspace, model: str, stream: str, predictor: str, tau: float, n: int,
           key: str, gpu: int) -> np.ndarray | None:
    cell = ws.run(model, stream, predictor, tau, n_frames=n, timed=True)
    if cell.time_us is None or key not in ws.timer.schemes:
        return None
    return cell.time_us[:, gpu, ws.timer.schemes.index(key)]


def _is_secnn(method: str) -> bool:
    return method.startswith("secnn")


def _split(best: dict[str, dict[str, Any]], floor: float) -> tuple[Any, Any]:
    """The fastest SE-CNN method and the fastest peer among ``best`` that meet ``floor`` on
    the held-out half (``None`` where none does)."""
    ok = [p for p in best.values() if p["heldout_agreement"] >= floor]
    sec = max((p for p in ok if _is_secnn(p["method"])),
              key=lambda p: p["heldout_speedup"], default=None)
    peer = max((p for p in ok if not _is_secnn(p["method"])),
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
             memo: dict[tuple[Any, ...], Any], config: Any, extended: bool
             ) -> tuple[dict[str, Any] | None, str]:
    """``(band, verdict)`` of "SE-CNN beats the change-based peers" among ``best`` (the
    methods of one machine): where both an SE-CNN method and a peer meet the floor, the band of
    the peer's time over SE-CNN's, each method at its chosen tau, over the timing model's
    uncertainty (:func:`_band` on the first ``BAND_FRAMES`` frames of the model's first stream
    ``stream``, moved to this stream's held-out ratio), judged above 1 by the band rule; else
    the point verdict. ``memo`` keeps each (predictor, tau)'s events of the model and each band
    (a band depends on the methods and taus only, not on the stream it is moved to)."""
    sec, peer = _split(best, floor)
    if sec is None or peer is None:
        return None, _point_verdict(best, floor)
    key = ("band", sec["method"], sec["tau"], peer["method"], peer["tau"])
    if key not in memo:
        memo[key] = _stored_band(ws, model, stream, secnn_spec, sec, peer, launch, gpu, memo,
                                 config, extended)
    b = memo[key].scaled(sec["heldout_speedup"] / peer["heldout_speedup"])
    return {"secnn": sec["method"], "peer": peer["method"], "stream": stream,
            **b.as_dict()}, b.judge(lambda ratio: "holds" if ratio > 1.0 else "does not hold")


def _stored_band(ws: Workspace, model: str, stream: str, secnn_spec: str, sec: dict[str, Any],
                 peer: dict[str, Any], launch: str, gpu: int, memo: dict[tuple[Any, ...], Any],
                 config: Any, extended: bool) -> Any:
    """:func:`_band`, memoised in the cell cache (:meth:`experiments.cells.Workspace.memo`)
    by content: the two methods and their taus, the predictor, the machine's configuration,
    the launch model, the timer and the frames (a rerun that changes neither recomputes
    nothing)."""
    from experiments.speedup import BAND_FRAMES, PROBE_FRAMES, SENSITIVITY_FRAMES  # noqa: PLC0415
    from secnn_jax.timing import uncertainty  # noqa: PLC0415

    key = {"study": "peers_band", "secnn": [sec["method"], sec["tau"]],
           "peer": [peer["method"], peer["tau"]], "secnn_spec": secnn_spec, "launch": launch,
           "gpu": ws.timer.gpus[gpu], "config": config.as_dict(), "extended": extended,
           "timer": getattr(ws.timer, "key", None), "frames": SENSITIVITY_FRAMES,
           "band_frames": BAND_FRAMES, "probe_frames": PROBE_FRAMES}
    got = ws.memo(model, stream, "peers_band", key, lambda: dataclasses.asdict(
        _band(ws, model, stream, secnn_spec, sec, peer, launch, gpu, memo, config, extended)))
    return uncertainty.Band(**got)


def _band(ws: Workspace, model: str, stream: str, secnn_spec: str, sec: dict[str, Any],
          peer: dict[str, Any], launch: str, gpu: int, memo: dict[tuple[Any, ...], Any],
          config: Any, extended: bool) -> Any:
    """The band (:func:`secnn_jax.timing.bands`) of the peer's time over SE-CNN's, each method
    at its chosen tau, under ``config``. On the extended machine the extension's compaction is
    one design choice for both sides: the band is the union of the bands at each end of the
    ``hw_compaction`` range, the peers under :func:`extended_peer_config` of each, the other
    ranges varied as for any band (so SE-CNN never gets hardware compaction the peer lacks).
    The extension's other ranges (``buffer_placement``, ``comparators_per_sm``,
    ``hw_dependency_us``) move both sides at once: the peers under ``peer_extension`` read
    them by SE-CNN's rules, so a corner with on-chip buffers gives the peer its own."""
    from experiments.speedup import (  # noqa: PLC0415
        BAND_FRAMES,
        PROBE_FRAMES,
        SENSITIVITY_FRAMES,
        stream_events,
    )
    from secnn_jax.timing import uncertainty  # noqa: PLC0415
    from secnn_jax.timing.schemes import extended_peer_config  # noqa: PLC0415

    how = {name: (scheme, secnn_spec if kind == "secnn" else kind)
           for name, scheme, kind, _ in METHODS}
    # As many frames as the speedup study's events (at tau = 0 SE-CNN's are read, not rerun).
    x = ws.frames(model, stream)[:SENSITIVITY_FRAMES]
    ev = []
    for p in (sec, peer):
        key = (how[p["method"]][1], p["tau"])
        if key not in memo:
            e = stream_events(ws, model, stream, key[0], key[1], SENSITIVITY_FRAMES,
                              store=False)
            memo[key] = e.map(lambda v: np.asarray(v)[:BAND_FRAMES])
        ev.append(memo[key])
    n = min(BAND_FRAMES, len(x))
    r = uncertainty.Ratio(how[sec["method"]][0], (how[peer["method"]][0],))
    box = uncertainty.BOX
    coupled = [q for q in box if q.field == "hw_compaction"] if extended else []
    points = [(config, box)]
    if coupled:
        rest = tuple(q for q in box if q.field != "hw_compaction")
        points = [(extended_peer_config(dataclasses.replace(config, hw_compaction=v)), rest)
                  for v in dict.fromkeys((config.hw_compaction, coupled[0].low,
                                          coupled[0].high))]
    got = [uncertainty.bands(ws.layers(model, stream), ev[0], ev[1], (r,),
                             ops=ws.ops(model, stream), gpu=ws.timer.gpus[gpu],
                             precision=ws.timer.precision, launch=launch,
                             fusion=ws.timer.fusion, params=ws.timer.params, config=cfg,
                             box=bx, probe_frames=min(PROBE_FRAMES, n))[r.name]
           for cfg, bx in points]
    return dataclasses.replace(got[0], low=min(b.low for b in got),
                               high=max(b.high for b in got),
                               replays=sum(b.replays for b in got))


def _extended_workspace(ws: Workspace, config: Any) -> Workspace | None:
    """A workspace sharing ``ws``'s models, streams and cache whose timer replays the peers
    under ``config`` (the extended GPU's peer knobs); ``None`` when ``ws``'s timer is not a
    :class:`experiments.timer.ReplayTimer` (nothing to re-key)."""
    from experiments.timer import ReplayTimer  # noqa: PLC0415
    from secnn_jax.timing.names import PEERS  # noqa: PLC0415

    t = ws.timer
    if not isinstance(t, ReplayTimer):
        return None
    timer = ReplayTimer(t.gpus, PEERS, t.precision, t.launches, t.fusion, config)
    return Workspace(ws.models, ws.streams, frames=ws.max_frames, chunk_size=ws.chunk_size,
                     resize=ws.resize, cache_dir=ws.cache, timer=timer,
                     model_frames=ws.model_frames, model_resize=ws.model_resize,
                     progress=ws.progress)


def _sanity(ws: Workspace, models: Sequence[str], main: str, stream: Any,
            taus: Sequence[float], launch: str, gpu: int) -> list[dict[str, Any]]:
    """DeltaCNN and CBinfer over dense at the largest tau of ``taus`` (> 0) on the frames after
    the first (run dense by every peer; the published figures are steady-state) of the first
    :data:`SANITY_FRAMES` frames of ``stream`` (a :class:`secnn_jax.datasources.Stream`: the
    clip closest to their published setting), each beside its published figure
    (:data:`PUBLISHED_PEERS`). Dense is timed on the ``main`` stream's frames where the layers
    and ops are the same (its time does not depend on the events)."""
    from secnn_jax.datasources import CLIPS  # noqa: PLC0415

    name = stream.info.name
    sws = Workspace(ws.models, {name: stream}, frames=SANITY_FRAMES, chunk_size=ws.chunk_size,
                    resize=ws.resize, cache_dir=ws.cache, timer=ws.timer,
                    model_frames=ws.model_frames, model_resize=ws.model_resize,
                    progress=ws.progress)
    rows = []
    for m in models:
        metric = metrics_lib.model_metric(m)
        primary = metrics_lib.get_metric(metric).primary
        n = min(SANITY_FRAMES, sws.n_frames(m, name))
        shape = sws.frames(m, name).shape
        ref = sws.reference(m, name).logits[:n]
        # dense's time per frame depends on the layers and ops only (a frame-independent
        # scheme): where they are the main stream's, its frames are the ones already timed.
        same = (sws.layers(m, name) == ws.layers(m, main)
                and sws.ops(m, name) == ws.ops(m, main) and ws.n_frames(m, main) >= n)
        dense = _times(ws if same else sws, m, main if same else name, "zero", 0.0, n,
                       variant("dense", launch), gpu)
        for tau in [max(t for t in taus if t > 0)] if any(t > 0 for t in taus) else []:
            for meth, pub in PUBLISHED_PEERS.items():
                t = _times(sws, m, name, "accumulated", tau, n, variant(meth, launch), gpu)
                if t is None or dense is None:
                    continue
                logits = sws.run(m, name, "accumulated", tau, n_frames=n, timed=True).logits
                rows.append({
                    "model": m, "stream": name, "gpu": ws.timer.gpus[gpu], "method": meth,
                    "tau": float(tau), "frames": int(n), "metric": metric,
                    "input": f"{shape[-3]}x{shape[-2]}", "precision": ws.timer.precision,
                    "clip": CLIPS.get(name, stream.info.source),
                    "ours": float(dense[1:].sum() / t[1:].sum()) if n > 1 else float("nan"),
                    "agreement": float(metrics_lib.frame_scores(metric, logits, ref)[primary]
                                       .mean()),
                    "published": {**dataclasses.asdict(pub), "figure": pub.figure}})
    return rows


def peers(ws: Workspace, models: Sequence[str], streams: Sequence[str], secnn_spec: str,
          taus: Sequence[float], *, frames: int = 16, floor: float = 0.95,
          launch: str = COMPARISON_LAUNCH, gpu: int = 0, bands: bool = True,
          sanity_stream: Any = None) -> PeersResult:
    """The like-for-like comparison (see the module docstring).

    Returns a :class:`PeersResult`: a point per (model, stream, method, tau) with
    its ``hardware``, ``speedup`` over dense and ``agreement`` (the declared metric's primary
    score, named by ``metric``); per (model, stream, hardware) — SE-CNN and the peers on the
    same machine only — the fastest method meeting ``floor`` on the held-out half, SE-CNN over
    DeltaCNN on the same events at tau = 0 (``parallel_phase_effect``), and the ``verdict`` on
    "SE-CNN beats the change-based peers" with its ``band`` (SE-CNN's best method over the best
    peer, each at its chosen tau, over the timing model's uncertainty; ``bands=False``: point
    verdicts); buffer bytes per method and model; with ``sanity_stream`` (a
    :class:`secnn_jax.datasources.Stream`), the peers at the largest tau on its first
    :data:`SANITY_FRAMES` frames beside their published figures; ``peer_extension``: whether
    the extended GPU changes the peers' knobs (``changed``), the knobs it changes and what the
    extended peers are given (:func:`_given`).
    """
    from secnn_jax.timing.energy import method_buffer_bytes  # noqa: PLC0415
    from secnn_jax.timing.schemes import extended_peer_config  # noqa: PLC0415

    if ws.timer is None:
        raise ValueError("the peers study needs a timer (timing replay)")
    g = ws.timer.gpus[gpu]
    stock_cfg = getattr(ws.timer, "config", None)
    ext_cfg = extended_peer_config(stock_cfg) if stock_cfg is not None else None
    changed = ext_cfg is not None and ext_cfg != stock_cfg
    # The extended peers replay under their own knobs (peer_extension at least).
    ext_ws = _extended_workspace(ws, ext_cfg) if changed else ws
    on = {"stock": ws, "extended": ext_ws}
    points, verdicts, buffers = [], [], []
    for m in models:
        memo: dict[tuple[Any, ...], Any] = {}  # the model's band events and bands
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
            for name, scheme, kind, hw in METHODS:
                spec = secnn_spec if kind == "secnn" else kind
                mws = ws if _is_secnn(name) else on[hw]
                if mws is None:
                    continue
                for tau in taus:
                    t = _times(mws, m, s, spec, tau, n, variant(scheme, launch), gpu)
                    if t is None or dense is None:
                        continue
                    logits = ws.run(m, s, spec, tau, n_frames=n, timed=True).logits
                    per = metrics_lib.frame_scores(metric, logits, ref)[primary]
                    p = {"model": m, "stream": s, "gpu": g, "method": name, "hardware": hw,
                         "tau": float(tau), "metric": metric,
                         "speedup": float(dense.sum() / t.sum()),
                         "agreement": float(per.mean()),
                         "calib_agreement": float(per[:half].mean()),
                         "heldout_agreement": float(per[half:].mean())
                         if n > half else float("nan"),
                         "heldout_speedup": float(dense[half:].sum() / t[half:].sum())
                         if n > half else float("nan")}
                    points.append(p)
                    by_method.setdefault(name, []).append(p)
            for hw in HARDWARE:
                verdicts.append(_hardware_verdict(
                    ws, m, s, streams[0], hw, by_method, secnn_spec, floor, launch, gpu, memo,
                    ext_cfg if hw == "extended" else stock_cfg, bands, g, metric))
    sanity = (_sanity(ws, models, streams[0], sanity_stream, taus, launch, gpu)
              if sanity_stream is not None else [])
    return PeersResult(
        launch=launch, frames=frames, taus=tuple(float(t) for t in taus), points=tuple(points),
        verdicts=tuple(verdicts), buffers=tuple(buffers), sanity=tuple(sanity),
        peer_extension=PeerExtension(changed=changed, knobs={
            k: [getattr(stock_cfg, k), getattr(ext_cfg, k)]
            for k in (f.name for f in dataclasses.fields(stock_cfg))
            if getattr(stock_cfg, k) != getattr(ext_cfg, k)} if changed else {},
            given=tuple(_given(ws, ext_cfg, launch, gpu)) if ext_cfg is not None else ()))


def _given(ws: Workspace, cfg: Any, launch: str, gpu: int) -> list[str]:
    """What the peers on the extended GPU take from SE-CNN's SM extension under ``cfg`` (their
    configuration, :func:`extended_peer_config`'s) on GPU ``gpu`` and ``launch``, one line each
    (the rules: :mod:`secnn_jax.timing.schemes`)."""
    from secnn_jax import timing  # noqa: PLC0415
    from secnn_jax.timing.launch import LaunchCosts  # noqa: PLC0415
    from secnn_jax.timing.secnn import Machine  # noqa: PLC0415

    g = timing.get_gpu(ws.timer.gpus[gpu])
    machine = Machine.of(True, g, cfg)
    params = getattr(ws.timer, "params", None) or timing.ModelParams()
    gap = LaunchCosts.of(launch, g, params, cfg).gap
    out = ["change detection on the hardware comparators (no SIMT compare instructions; its "
           "time stays the pass's memory time)"]
    if machine.dependency_cycles <= gap:
        out.append(f"the dependency signal (`hw_dependency_us` {cfg.hw_dependency_us:g}) "
                   "instead of the kernel boundary between a change detection and its update "
                   "(CBinfer's on every layer, DeltaCNN's on its first: its other delta "
                   "generations are fused into the previous layer's epilogue, no boundary to "
                   "remove), and no boundary before a compaction pass inside the layer")
    else:
        out.append(f"no dependency signal: under `{launch}` the kernel boundary is the shorter "
                   f"wait than `hw_dependency_us` {cfg.hw_dependency_us:g}")
    out.append("hardware compaction (`hw_compaction` hardware)" if cfg.sw_compaction ==
               "hardware" == cfg.hw_compaction else
               f"their own compaction (`sw_compaction` {cfg.sw_compaction}): the extension's "
               f"`hw_compaction` {cfg.hw_compaction} is no faster")
    out.append("an on-chip buffer of SE-CNN's capacity for their stored inputs and, in layer "
               "order while they fit, their output buffers" if machine.buffer_placement ==
               "on_chip" else
               f"no on-chip buffer (`buffer_placement` {cfg.buffer_placement}: SE-CNN has none "
               "either); in the band's `on_chip` corner both get one, of SE-CNN's capacity")
    return out


def _hardware_verdict(ws: Workspace, m: str, s: str, first: str, hw: str,
                      by_method: dict[str, list[dict[str, Any]]], secnn_spec: str, floor: float,
                      launch: str, gpu: int, memo: dict[tuple[Any, ...], Any], config: Any,
                      bands: bool, g: str, metric: str) -> dict[str, Any]:
    """The verdict row of (model ``m``, stream ``s``) on machine ``hw``: its methods only."""
    mine = {name for name, _, _, h in METHODS if h == hw}
    best = {}
    for name, pts in by_method.items():
        ok = [p for p in pts if p["calib_agreement"] >= floor]
        if name in mine and ok:
            best[name] = max(ok, key=lambda p: p["tau"])
    fastest = max((p for p in best.values() if p["heldout_agreement"] >= floor),
                  key=lambda p: p["heldout_speedup"], default=None)
    band, verdict = (_verdict(ws, m, first, secnn_spec, best, floor, launch, gpu, memo, config,
                              hw == "extended")
                     if bands else (None, _point_verdict(best, floor)))
    # SE-CNN over DeltaCNN on the same (accumulated) events at tau = 0, on this machine.
    sec_name = next(n for n, sc, k, h in METHODS if h == hw and k == "accumulated"
                    and _is_secnn(n))
    peer_name = next(n for n, sc, k, h in METHODS if h == hw and sc == "deltacnn")
    d0 = next((p for p in by_method.get(peer_name, []) if p["tau"] == 0.0), None)
    h0 = next((p for p in by_method.get(sec_name, []) if p["tau"] == 0.0), None)
    return {"model": m, "stream": s, "gpu": g, "hardware": hw, "floor": floor, "metric": metric,
            "methods": sorted(mine, key=[x[0] for x in METHODS].index),
            "chosen": {k: {"tau": v["tau"], "heldout_speedup": v["heldout_speedup"],
                           "heldout_agreement": v["heldout_agreement"]}
                       for k, v in best.items()},
            "fastest": fastest["method"] if fastest else None,
            "fastest_speedup": fastest["heldout_speedup"] if fastest else None,
            "parallel_phase_effect": (d0["speedup"] and h0["speedup"] / d0["speedup"])
            if d0 and h0 else None,
            "same_events": [sec_name, peer_name],
            "band": band, "verdict": verdict}


def open_sanity_stream() -> Any:
    """The first :data:`SANITY_FRAMES` frames of :data:`SANITY_STREAM`, or ``None`` (logged)
    when the clip cannot be opened (the sanity rows are then absent, and the report says so)."""
    from secnn_jax import datasources  # noqa: PLC0415

    try:
        return datasources.open_stream(SANITY_STREAM, max_frames=SANITY_FRAMES)
    except datasources.StreamError as e:
        logging.warning("peers: no sanity rows: %s", e)
        return None


def main(argv: Sequence[str]) -> None:
    """``python -m experiments.peers``: runs the peers study, prints its tables and writes
    ``results/peers.json``, ``figures/peers.png`` and ``report.md`` (its claims and section)
    into ``--out_dir``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli, figures, report  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, studies=("peers",))
    res = peers(st.ws, list(st.ws.models), list(st.ws.streams),
                predictor_spec("secnn", cfg.silence, cfg.decay),
                cfg.peer_taus, frames=cfg.peer_frames_used,
                floor=cfg.agreement_floor, launch=cfg.launch,
                sanity_stream=open_sanity_stream())
    st.run.write_json("results/peers.json", res.to_json())
    figures.pareto(res, st.run.path("figures", "peers.png"))
    md, printed = report.study_output({"peers": res.to_json()}, cfg.to_dict(),
                                      "experiments.peers")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/peers", _FIELDS["peers"])
