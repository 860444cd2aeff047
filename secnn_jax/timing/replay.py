"""Trace replay: event maps -> cycles per layer, phase and scheme on real GPU configurations.

:func:`replay` takes a trace directory (:mod:`secnn_jax.traces`), an open
:class:`~secnn_jax.traces.Trace`, or in-memory ``(layers, events)`` (``events[name]`` uint8
``[T, *in_shape]`` as :func:`secnn_jax.run_stream` returns them), and evaluates the cost models
of :mod:`secnn_jax.timing.schemes` for every requested GPU and scheme. Per layer, the event maps
of all frames of a chunk are reduced at once (:mod:`.workmaps`): no Python loop over neurons,
warps or CTAs; the loops are over layers, frames (SE-CNN's list scheduling) and waves.

The result, :class:`ReplayResult`, holds cycles and microseconds per frame, layer, phase and
scheme, SM utilisation and the speedups of ``secnn_*`` over every baseline, and renders them as
a text table, JSON or CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from secnn_jax.timing import schemes as S
from secnn_jax.timing import workmaps
from secnn_jax.timing.geometry import LayerGeom, events_to_nhwc
from secnn_jax.timing.gpus import ELEMENT_BYTES, GPU, canonical_precision, get_gpu


@dataclasses.dataclass(frozen=True)
class SchemeResult:
    """Timing of one scheme on one GPU over the replayed frames.

    Attributes:
      gpu: GPU key.
      scheme: scheme name.
      clock_mhz: the GPU's clock (cycles -> microseconds).
      sms: the GPU's SM count.
      total_cycles: ``[T]`` frame time.
      layer_cycles: ``[T, L]`` the frame's critical path spent in each layer (sums to
        ``total_cycles``): for layer-after-layer schemes the layer's kernels plus any wait for
        their launch; for SE-CNN the wait for the layer's parallel work plus its correction.
      phases: ``{phase: [T]}``: ``compute`` and ``launch`` (layer-after-layer);
        ``parallel`` (parallel-phase makespan), ``serial`` (sum of corrections), ``compare``,
        ``amend`` (SE-CNN).
      layer_phases: ``{name: [T, L]}``: ``exec`` (layer-after-layer); ``parallel_done``,
        ``correction``, ``compare``, ``amend``, ``parallel_dense`` (SE-CNN).
      busy_cycles: ``[T]`` SM-cycles of work, for :attr:`sm_utilisation`.
    """

    gpu: str
    scheme: str
    clock_mhz: float
    sms: int
    total_cycles: np.ndarray
    layer_cycles: np.ndarray
    phases: Mapping[str, np.ndarray]
    layer_phases: Mapping[str, np.ndarray]
    busy_cycles: np.ndarray

    @property
    def total_us(self) -> np.ndarray:
        """``[T]`` frame time in microseconds."""
        return self.total_cycles / self.clock_mhz

    @property
    def layer_us(self) -> np.ndarray:
        """``[T, L]`` per-layer critical-path time in microseconds."""
        return self.layer_cycles / self.clock_mhz

    @property
    def sm_utilisation(self) -> np.ndarray:
        """``[T]`` fraction of SM-cycles doing work."""
        return self.busy_cycles / np.maximum(self.sms * self.total_cycles, 1e-30)


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    """All schemes on all GPUs for one replay (see :func:`replay`).

    Attributes:
      layers: layer names in execution order.
      frames: indices of the replayed frames.
      precision: arithmetic precision modelled.
      gpus: GPU keys.
      schemes: scheme names.
      results: ``{(gpu, scheme): SchemeResult}``.
      meta: provenance (source, model, parameters, configuration).
    """

    layers: tuple[str, ...]
    frames: tuple[int, ...]
    precision: str
    gpus: tuple[str, ...]
    schemes: tuple[str, ...]
    results: Mapping[tuple[str, str], SchemeResult]
    meta: Mapping[str, Any]

    def get(self, gpu: str | GPU, scheme: str) -> SchemeResult:
        """The result of ``scheme`` on ``gpu``."""
        key = gpu.key if isinstance(gpu, GPU) else str(gpu)
        if (key, scheme) not in self.results:
            key = get_gpu(key).key
        if (key, scheme) not in self.results:
            raise KeyError(f"no result for gpu {key!r} and scheme {scheme!r}")
        return self.results[(key, scheme)]

    def speedup(self, gpu: str, scheme: str, baseline: str) -> np.ndarray:
        """``[T]`` per-frame speedup of ``scheme`` over ``baseline`` (time ratio)."""
        return self.get(gpu, baseline).total_cycles / self.get(gpu, scheme).total_cycles

    def speedups(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{gpu: {secnn_scheme: {baseline: mean-time ratio}}}`` over the replayed frames."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for g in self.gpus:
            for s in (x for x in self.schemes if x in S.SECNN):
                for b in (x for x in self.schemes if x in S.BASELINES):
                    ratio = (self.get(g, b).total_cycles.mean()
                             / self.get(g, s).total_cycles.mean())
                    out.setdefault(g, {}).setdefault(s, {})[b] = float(ratio)
        return out

    def table(self, per_layer: bool = False) -> str:
        """A fixed-width text table: mean time, phases, SM utilisation, speedups."""
        rows = [("gpu", "scheme", "us/frame", "cycles/frame", "SM util", "phases (us)")]
        for g in self.gpus:
            for s in self.schemes:
                r = self.get(g, s)
                ph = ", ".join(f"{k}={v.mean() / r.clock_mhz:.1f}" for k, v in r.phases.items())
                rows.append((g, s, f"{r.total_us.mean():.1f}", f"{r.total_cycles.mean():.0f}",
                             f"{100 * r.sm_utilisation.mean():.1f}%", ph))
        out = [_fmt(rows)]
        sp = self.speedups()
        if sp:
            srows = [("gpu", "scheme", *[b for b in self.schemes if b in S.BASELINES])]
            for g, by in sp.items():
                for s, vs in by.items():
                    srows.append((g, s, *[f"{v:.2f}x" for v in vs.values()]))
            out.append("speedup (mean frame time of baseline / scheme)\n" + _fmt(srows))
        if per_layer:
            hdr = ("layer", *[f"{g}:{s}" for g in self.gpus for s in self.schemes])
            lrows = [hdr]
            for i, name in enumerate(self.layers):
                lrows.append((name, *[f"{self.get(g, s).layer_us[:, i].mean():.1f}"
                                      for g in self.gpus for s in self.schemes]))
            out.append("per-layer critical-path time (us)\n" + _fmt(lrows))
        return "\n\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form (lists), as written by :meth:`to_json`."""
        res = []
        for (g, s), r in self.results.items():
            res.append({
                "gpu": g, "scheme": s, "clock_mhz": r.clock_mhz, "sms": r.sms,
                "total_us": _r(r.total_us), "total_cycles": _r(r.total_cycles),
                "sm_utilisation": _r(r.sm_utilisation),
                "phases_us": {k: _r(v / r.clock_mhz) for k, v in r.phases.items()},
                "layer_us": _r(r.layer_us),
                "layer_phases_us": {k: _r(v / r.clock_mhz) if k != "parallel_dense" else
                                    _r(v) for k, v in r.layer_phases.items()},
            })
        return {"format": "secnn_jax.timing.replay/1", "layers": list(self.layers),
                "frames": list(self.frames), "precision": self.precision,
                "gpus": list(self.gpus), "schemes": list(self.schemes),
                "speedups": self.speedups(), "meta": dict(self.meta), "results": res}

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text (deterministic key order); also written to ``path`` if given."""
        text = json.dumps(self.as_dict(), sort_keys=True, indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_csv(self, path: str | Path | None = None) -> str:
        """Long-format CSV: ``gpu, scheme, precision, frame, layer_index, layer, quantity,
        cycles, us``; ``layer`` is ``*`` for frame totals and phases."""
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\n")
        wr.writerow(["gpu", "scheme", "precision", "frame", "layer_index", "layer", "quantity",
                     "cycles", "us"])
        for (g, s), r in self.results.items():
            for ti, f in enumerate(self.frames):
                wr.writerow([g, s, self.precision, f, -1, "*", "total",
                             _c(r.total_cycles[ti]), _c(r.total_us[ti])])
                for k, v in r.phases.items():
                    wr.writerow([g, s, self.precision, f, -1, "*", k, _c(v[ti]),
                                 _c(v[ti] / r.clock_mhz)])
                for li, name in enumerate(self.layers):
                    wr.writerow([g, s, self.precision, f, li, name, "layer",
                                 _c(r.layer_cycles[ti, li]), _c(r.layer_us[ti, li])])
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text


def _r(a: np.ndarray) -> Any:
    return np.round(np.asarray(a, np.float64), 4).tolist()


def _c(v: float) -> str:
    return f"{float(v):.4f}"


def _fmt(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


# --- inputs ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Source:
    geoms: tuple[LayerGeom, ...]
    chunks: Iterable[tuple[np.ndarray, dict[str, np.ndarray]]]
    meta: Mapping[str, Any]


def _in_memory(layers: Sequence[Any], events: Mapping[str, Any], frames: Any,
               batch_frames: int) -> _Source:
    geoms = tuple(LayerGeom.from_layer(layer) for layer in layers)
    missing = [g.name for g in geoms if g.name not in events]
    if missing:
        raise KeyError(f"no events for layers {missing}")
    evs = {g.name: events_to_nhwc(layer, g, events[g.name])
           for layer, g in zip(layers, geoms, strict=True)}
    t = {v.shape[0] for v in evs.values()}
    if len(t) != 1:
        raise ValueError(f"layers have different frame counts: {sorted(t)}")
    idx = _frame_indices(frames, t.pop())

    def chunks() -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        for a in range(0, len(idx), batch_frames):
            sel = idx[a:a + batch_frames]
            yield sel, {k: v[sel] for k, v in evs.items()}

    return _Source(geoms, chunks(), {"source": "in-memory"})


def _frame_indices(frames: Any, n: int) -> np.ndarray:
    from secnn_jax.traces import frame_indices  # noqa: PLC0415  (traces imports timing)

    return frame_indices(frames, n)


def _from_trace(trace: Any, frames: Any) -> _Source:
    geoms = tuple(LayerGeom.from_dict(layer["geom"]) for layer in trace.layers)
    idx = _frame_indices(frames, trace.n_frames)
    return _Source(geoms, trace.iter_frames(idx),
                   {"source": str(trace.path), "model": trace.manifest.get("model"),
                    "stream": trace.manifest.get("stream"),
                    "predictor": trace.manifest.get("predictor"),
                    "tau": trace.manifest.get("tau")})


def _source(source: Any, events: Any, frames: Any, batch_frames: int) -> _Source:
    from secnn_jax import traces  # noqa: PLC0415 (traces imports timing.workmaps)

    if events is not None:
        return _in_memory(source, events, frames, batch_frames)
    if isinstance(source, str | Path):
        return _from_trace(traces.read_trace(source), frames)
    if isinstance(source, traces.Trace):
        return _from_trace(source, frames)
    if isinstance(source, tuple) and len(source) == 2:
        return _in_memory(source[0], source[1], frames, batch_frames)
    raise TypeError(
        "replay source must be a trace directory, a traces.Trace, or (layers, events)"
    )


# --- replay ---------------------------------------------------------------------------------

@dataclasses.dataclass
class _Acc:
    """Per-(gpu, scheme) accumulators over chunks of frames."""

    parts: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)

    def add(self, **arrays: np.ndarray) -> None:
        for k, v in arrays.items():
            self.parts.setdefault(k, []).append(np.asarray(v))

    def cat(self, k: str) -> np.ndarray:
        return np.concatenate(self.parts[k], axis=0)


def replay(source: Any, events: Mapping[str, Any] | None = None, *,
           gpus: Sequence[str | GPU] = ("h100",), schemes: Sequence[str] = S.SCHEMES,
           precision: str = "fp32", frames: Any = None,
           params: S.ModelParams | None = None, config: S.SchemeConfig | None = None,
           batch_frames: int = 16, progress: bool = False) -> ReplayResult:
    """Replays event maps through the execution-scheme cost models.

    Args:
      source: a trace directory, a :class:`secnn_jax.traces.Trace`, a ``(layers, events)``
        pair, or the layers (with ``events`` given separately). Layers are
        :class:`secnn_jax.layers.Layer`, :class:`LayerGeom` or their dict forms.
      events: ``{name: uint8 [T, *in_shape]}`` when ``source`` is the layers.
      gpus: GPU keys (:data:`secnn_jax.timing.GPUS`) or :class:`GPU` objects.
      schemes: subset of :data:`SCHEMES`.
      precision: ``fp32``, ``tf32`` or ``fp16``.
      frames: ``None`` (all), a count, a slice, or frame indices.
      params: calibrated model parameters (default: the committed H100 calibration).
      config: scheme knobs (:class:`SchemeConfig`).
      batch_frames: frames reduced at once for in-memory events (memory bound).
      progress: show a tqdm bar over layers.

    Returns:
      A :class:`ReplayResult`.
    """
    schemes = tuple(schemes)
    bad = [s for s in schemes if s not in S.SCHEMES]
    if bad:
        raise ValueError(f"unknown schemes {bad}; known: {S.SCHEMES}")
    prec = canonical_precision(precision)
    params = params or S.load_params()
    cfg = config or S.SchemeConfig()
    gpu_objs = tuple(get_gpu(g) for g in gpus)
    src = _source(source, events, frames, batch_frames)
    geoms = src.geoms
    frame_ids: list[np.ndarray] = []
    acc = {(g.key, s): _Acc() for g in gpu_objs for s in schemes}
    per_gpu = {g.key: _LayerPlans(geoms, g, prec, params, cfg) for g in gpu_objs}
    for fidx, evs in src.chunks:
        frame_ids.append(np.asarray(fidx))
        _replay_chunk(geoms, evs, len(fidx), gpu_objs, schemes, prec, params, cfg, per_gpu, acc,
                      progress)
    if not frame_ids:
        raise ValueError("replay: no frames selected")
    results: dict[tuple[str, str], SchemeResult] = {}
    for g in gpu_objs:
        for s in schemes:
            a = acc[(g.key, s)]
            phase_keys = [k[6:] for k in a.parts if k.startswith("phase:")]
            lp_keys = [k[3:] for k in a.parts if k.startswith("lp:")]
            results[(g.key, s)] = SchemeResult(
                gpu=g.key, scheme=s, clock_mhz=g.clock_mhz, sms=g.sms,
                total_cycles=a.cat("total"), layer_cycles=a.cat("layer"),
                phases={k: a.cat("phase:" + k) for k in phase_keys},
                layer_phases={k: a.cat("lp:" + k) for k in lp_keys},
                busy_cycles=a.cat("busy"))
    meta = {**src.meta, "params": params.as_dict(), "config": dataclasses.asdict(cfg)}
    return ReplayResult(layers=tuple(g.name for g in geoms),
                        frames=tuple(int(i) for i in np.concatenate(frame_ids)),
                        precision=prec, gpus=tuple(g.key for g in gpu_objs), schemes=schemes,
                        results=results, meta=meta)


class _LayerPlans:
    """Frame-independent per-layer costs and tiles for one GPU (computed once per replay)."""

    def __init__(self, geoms: Sequence[LayerGeom], gpu: GPU, prec: str,
                 params: S.ModelParams, cfg: S.SchemeConfig) -> None:
        self.dense = [S.dense_cost(g, gpu, prec, params, cfg) for g in geoms]
        self.winograd = [S.winograd_cost(g, gpu, prec, params, cfg) for g in geoms]
        self.fft = [S.fft_cost(g, gpu, prec, params, cfg) for g in geoms]
        self.tile = [S.sparse_tile(g, gpu, prec, params, cfg) for g in geoms]
        eb = ELEMENT_BYTES[prec]
        self.io_bytes = np.array([eb * (g.n_inputs + g.weights + g.n_outputs) for g in geoms],
                                 np.float64)


def _replay_chunk(geoms: Sequence[LayerGeom], evs: Mapping[str, np.ndarray], frames: int,
                  gpus: Sequence[GPU], schemes: Sequence[str], prec: str,
                  params: S.ModelParams, cfg: S.SchemeConfig,
                  plans: Mapping[str, _LayerPlans], acc: Mapping[tuple[str, str], _Acc],
                  progress: bool) -> None:
    n_layers = len(geoms)
    eb = ELEMENT_BYTES[prec]
    want_zero = "zero_skip" in schemes
    want_secnn = any(s in S.SECNN for s in schemes)
    # Per GPU and layer: zero-skip makespans, SE-CNN parallel grids and corrections.
    zs = {g.key: np.zeros((frames, n_layers)) for g in gpus}
    zs_busy = {g.key: np.zeros(frames) for g in gpus}
    sw_par: dict[str, tuple[list, list, list, np.ndarray, np.ndarray]] = {}
    corr: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for g in gpus:
        if want_secnn:
            sw_par[g.key] = ([], [], [], np.zeros((frames, n_layers)),
                             np.zeros((frames, n_layers)))
        for hw in (False, True):
            corr[(g.key, "hw" if hw else "sw")] = {
                k: np.zeros((frames, n_layers)) for k in ("compare", "amend", "busy")}
    it: Iterable[int] = range(n_layers)
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        it = tqdm(it, desc="replay layers", leave=False)
    for li in it:  # loop over layers
        geom = geoms[li]
        codes = evs[geom.name]
        which = (("nonzero",) if want_zero else ()) + (
            ("predicted", "mispredicted") if want_secnn else ())
        counts = workmaps.position_counts_all(codes, geom, which) if which else {}
        for g in gpus:
            pl = plans[g.key]
            tile = pl.tile[li]
            if want_zero:
                grid = S.sparse_grid(counts["nonzero"], geom, g, prec, params, tile)
                mk = S.dealt_makespan(grid.w, grid.d, g.sms, grid.occupancy)
                mem = S.mem_cycles(g, pl.io_bytes[li], params)
                zs[g.key][:, li] = np.maximum(mk, mem)
                zs_busy[g.key] += grid.w.sum(-1)
            if not want_secnn:
                continue
            ws, ds, occs, pdense, pbytes = sw_par[g.key]
            sp = S.sparse_grid(counts["predicted"], geom, g, prec, params, tile)
            dk = pl.dense[li]
            dw, dd = S.dense_grid(dk, frames)
            sp_t = S.dealt_makespan(sp.w, sp.d, g.sms, sp.occupancy)
            dn_t = np.full(frames, dk.compute_cycles)
            if cfg.secnn_parallel == "sparse":
                use_dense = np.zeros(frames, bool)
            elif cfg.secnn_parallel == "dense":
                use_dense = np.ones(frames, bool)
            else:
                use_dense = dn_t < sp_t
            if use_dense.all():
                ws.append(dw)
                ds.append(dd)
                occs.append(dk.occupancy)
            elif not use_dense.any():
                ws.append(sp.w)
                ds.append(sp.d)
                occs.append(sp.occupancy)
            else:  # mixed choice over frames: pad the smaller grid with empty CTAs
                n = max(dw.shape[1], sp.w.shape[1])
                pw = _padc(sp.w, n), _padc(dw, n)
                pd = _padc(sp.d, n), _padc(dd, n)
                ws.append(np.where(use_dense[:, None], pw[1], pw[0]))
                ds.append(np.where(use_dense[:, None], pd[1], pd[0]))
                occs.append(min(sp.occupancy, dk.occupancy))
            pdense[:, li] = use_dense
            pbytes[:, li] = pl.io_bytes[li]
            n_in = geom.n_inputs
            cmp_mem = S.mem_cycles(g, 2.0 * eb * n_in, params)
            for hw in (False, True):
                am = S.sparse_grid(counts["mispredicted"], geom, g, prec, params, tile,
                                   compact=hw and cfg.hw_compact)
                amend_t = S.dealt_makespan(am.w, am.d, g.sms, am.occupancy)
                touched = (counts["mispredicted"] > 0).mean(axis=(-2, -1))
                am_bytes = (eb * geom.weights * am.active_frac
                            + 2.0 * eb * geom.n_outputs * touched)
                amend_t = np.maximum(amend_t, S.mem_cycles(g, am_bytes, params))
                if hw:
                    cmp_ops = n_in / (g.sms * (cfg.comparators_per_sm or g.fp32_lanes))
                else:
                    cmp_ops = n_in * cfg.compare_ops_per_neuron / (g.sms * g.fp32_lanes)
                c = corr[(g.key, "hw" if hw else "sw")]
                c["compare"][:, li] = np.maximum(cmp_ops, cmp_mem)
                c["amend"][:, li] = amend_t
                c["busy"][:, li] = am.w.sum(-1) + cmp_ops * g.sms
    for g in gpus:
        pl = plans[g.key]
        launch = g.cycles(cfg.launch(g))
        for s in schemes:
            a = acc[(g.key, s)]
            if s in ("dense", "winograd", "fft", "zero_skip"):
                if s == "zero_skip":
                    ex = zs[g.key]
                    kern = [1] * n_layers
                    busy = zs_busy[g.key]
                else:
                    kcs = getattr(pl, s)
                    ex = np.broadcast_to(np.array([k.cycles for k in kcs]), (frames, n_layers))
                    kern = [k.kernels for k in kcs]
                    busy = np.full(frames, sum(k.busy_cycles for k in kcs))
                end = S.chain(ex, kern, launch)
                total = end[:, -1]
                a.add(total=total, layer=np.diff(end, axis=1, prepend=0.0), busy=busy,
                      **{"phase:compute": ex.sum(1), "phase:launch": total - ex.sum(1),
                         "lp:exec": ex})
                continue
            hw = s == "secnn_hw"
            ws, ds, occs, pdense, pbytes = sw_par[g.key]
            c = corr[(g.key, "hw" if hw else "sw")]
            tl = S.secnn_timeline(ws, ds, occs, pbytes, c["compare"], c["amend"], g, params,
                                  launch_cycles=launch, hw=hw,
                                  launches_per_frame=cfg.hw_launches_per_frame,
                                  parallel_kernel=pdense, busy_extra=c["busy"].sum(1))
            layer = np.diff(tl.corr_end, axis=1, prepend=0.0)
            layer[:, -1] += tl.total - tl.corr_end[:, -1]
            a.add(total=tl.total, layer=layer, busy=tl.busy,
                  **{"phase:parallel": tl.parallel_done.max(1),
                     "phase:serial": tl.correction.sum(1), "phase:compare": tl.compare.sum(1),
                     "phase:amend": tl.amend.sum(1), "lp:parallel_done": tl.parallel_done,
                     "lp:correction": tl.correction, "lp:compare": tl.compare,
                     "lp:amend": tl.amend, "lp:parallel_dense": tl.parallel_kernel})
    logging.vlog(1, "replayed %d frames x %d layers", frames, n_layers)


def _padc(a: np.ndarray, n: int) -> np.ndarray:
    return a if a.shape[1] == n else np.pad(a, [(0, 0), (0, n - a.shape[1])])
