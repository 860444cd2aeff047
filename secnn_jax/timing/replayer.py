"""Trace replay: event maps -> whole-network cycles per layer, phase and scheme on real GPUs.

:func:`replay` takes a trace directory (:mod:`secnn_jax.traces`), an open
:class:`~secnn_jax.traces.Trace`, or in-memory ``(layers, events)`` (``events[name]`` uint8
``[T, *in_shape]`` as :func:`secnn_jax.run_stream` returns them) with the network's op groups
(``ops``: :func:`secnn_jax.netops.find_ops`, or the trace's own), and folds the scheme registry
(:data:`secnn_jax.timing.schemes.REGISTRY`) over them for every requested GPU and scheme, all
under **one launch model and one fusion policy**. Per layer, the event maps of all frames of a
chunk are reduced once (:mod:`.workmaps`) and shared by every scheme and launch model: no Python
loop over neurons, warps or CTAs.

The result, :class:`ReplayResult`, holds cycles and microseconds per frame, layer, phase and
scheme, SM utilisation, what runs when (:meth:`ReplayResult.to_chrome_trace`) and the speedups of
``secnn_*`` over every baseline, and renders them as a text table, JSON or CSV.
:func:`replay_launches` replays several launch models from one reduction of the events;
:func:`reduce_events` reduces events once (:class:`ReducedEvents`) for any number of replays
(other GPUs, parameters, configurations, launch models), each equal bit for bit to a replay of
the events themselves.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from absl import logging

from secnn_jax import events as ev_mod
from secnn_jax import fileio, traces, workmaps
from secnn_jax.fileio import atomic_write
from secnn_jax.geometry import LayerGeom, events_to_nhwc
from secnn_jax.timing import schemes as S
from secnn_jax.timing.energy import energy_parts, graph_work
from secnn_jax.timing.errors import UnknownResultError
from secnn_jax.timing.gpufile import params_for
from secnn_jax.timing.gpus import GPU, get_gpu
from secnn_jax.timing.launch import LaunchCosts
from secnn_jax.timing.names import (
    BASELINES,
    DEFAULT_FUSION,
    DEFAULT_LAUNCH,
    FUSIONS,
    LAUNCH_MODELS,
    PEERS,
    SCHEMES,
    SECNN,
)
from secnn_jax.timing.opkernels import OpGeom
from secnn_jax.timing.params import DEFAULT_CONFIG, ModelParams, SchemeConfig, load_params
from secnn_jax.timing.validate import ReplayError, check_replay
from secnn_jax.timing.validate import frame_indices as _checked_frame_indices


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
      launch: the launch model.
      fusion: the fusion policy.
      spans: ``{track: (labels, start [T, n], end [T, n])}`` cycles of what runs when: track
        ``stream`` (layer-after-layer kernels in order), ``parallel`` (each layer's parallel
        work, release to done) and ``serial`` (SE-CNN's compares, compactions, amendments and
        op kernels).
      work: ``{key: [T]}`` work counts (:data:`secnn_jax.timing.energy.WORK_KEYS`).
      energy_parts: ``{component: [T]}`` microjoules per frame by component (``compute``,
        ``on_chip``, ``dram``, ``static``; :func:`secnn_jax.timing.energy.energy_parts`).
      span_args: ``{track: {"sms", "ctas", "bytes": [T, n]}}`` per span of ``spans``: the SMs
        it held while it ran, its CTAs with work and the bytes it moved.
      span_work: ``{track: {key: [T, n]}}`` the work each span's kernel executed; ``work`` is
        their sum (:func:`secnn_jax.timing.energy.graph_work`) and what the energy prices.
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
    launch: str = DEFAULT_LAUNCH
    fusion: str = DEFAULT_FUSION
    spans: Mapping[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]] = dataclasses.field(
        default_factory=dict, repr=False)
    work: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
    energy_parts: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
    span_args: Mapping[str, Mapping[str, np.ndarray]] = dataclasses.field(
        default_factory=dict, repr=False)
    span_work: Mapping[str, Mapping[str, np.ndarray]] = dataclasses.field(
        default_factory=dict, repr=False)

    @property
    def energy_uj(self) -> np.ndarray:
        """``[T]`` energy per frame in microjoules (the sum of :attr:`energy_parts`)."""
        return np.sum([np.asarray(v) for v in self.energy_parts.values()], axis=0)

    @property
    def power_w(self) -> np.ndarray:
        """``[T]`` mean power over each frame (energy / time)."""
        return self.energy_uj / np.maximum(self.total_us, 1e-30)

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
      launch: the launch model every scheme was replayed under.
      fusion: the fusion policy every scheme was replayed under.
    """

    layers: tuple[str, ...]
    frames: tuple[int, ...]
    precision: str
    gpus: tuple[str, ...]
    schemes: tuple[str, ...]
    results: Mapping[tuple[str, str], SchemeResult]
    meta: Mapping[str, Any]
    launch: str = DEFAULT_LAUNCH
    fusion: str = DEFAULT_FUSION

    def get(self, gpu: str | GPU, scheme: str) -> SchemeResult:
        """The result of ``scheme`` on ``gpu``."""
        key = gpu.key if isinstance(gpu, GPU) else str(gpu)
        if (key, scheme) not in self.results:
            key = get_gpu(key).key
        if (key, scheme) not in self.results:
            raise UnknownResultError(f"no result for gpu {key!r} and scheme {scheme!r}")
        return self.results[(key, scheme)]

    def speedup(self, gpu: str, scheme: str, baseline: str) -> np.ndarray:
        """``[T]`` per-frame speedup of ``scheme`` over ``baseline`` (time ratio)."""
        return self.get(gpu, baseline).total_cycles / self.get(gpu, scheme).total_cycles

    def speedups(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{gpu: {secnn_scheme: {baseline: mean-time ratio}}}`` over the replayed frames."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for g in self.gpus:
            for s in (x for x in self.schemes if x in SECNN):
                for b in (x for x in self.schemes if x in BASELINES):
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
            srows = [("gpu", "scheme", *[b for b in self.schemes if b in BASELINES])]
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
        return {"format": "secnn_jax.timing.replay/2", "layers": list(self.layers),
                "frames": list(self.frames), "precision": self.precision,
                "launch": self.launch, "fusion": self.fusion,
                "gpus": list(self.gpus), "schemes": list(self.schemes),
                "speedups": self.speedups(), "meta": dict(self.meta), "results": res}

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text (deterministic key order); also written to ``path`` if given."""
        text = fileio.dumps_json(self.as_dict(), indent=1, newline=False)
        if path is not None:
            atomic_write(path, text)
        return text

    def kernel_slices(self, gpu: str | GPU, scheme: str, frame: int = 0
                      ) -> tuple[KernelSlice, ...]:
        """What ran when in one replayed frame of ``scheme`` on ``gpu``, as the scheduler
        placed it (:func:`kernel_slices`): what :meth:`to_chrome_trace` writes and the report's
        schedule figure draws."""
        if not 0 <= frame < len(self.frames):
            raise ReplayError(f"frame {frame} is not among the {len(self.frames)} replayed frames")
        return kernel_slices(self.get(gpu, scheme), frame, self.layers)

    def to_chrome_trace(self, path: str | Path | None = None, frame: int = 0) -> dict[str, Any]:
        """What runs when in one replayed frame, as a Chrome/Perfetto trace (JSON).

        One process per (GPU, scheme); its kernels (each layer-after-layer kernel, each
        layer's parallel work, correction part or op kernel) are complete events (``ph:
        "X"``, microseconds rounded to the nanosecond) laid on as many threads as run at
        once: one track per concurrently running kernel, never two overlapping slices on one
        track. Each slice's ``cat`` is its schedule track (``stream``, ``parallel``,
        ``serial``), its ``args`` hold ``sms`` (the SMs it held while it ran), ``ctas`` (its
        CTAs with work) and ``bytes`` (what it moved), and ``cname`` colours it by kind. Gaps
        are the launch model's costs (issue waits, graph gaps, barriers). The slices are
        :meth:`kernel_slices`. Open the file in https://ui.perfetto.dev or chrome://tracing.
        Written atomically to ``path`` if given.
        """
        if not 0 <= frame < len(self.frames):
            raise ReplayError(f"frame {frame} is not among the {len(self.frames)} replayed frames")
        events: list[dict[str, Any]] = []
        for pid, ((g, s), r) in enumerate(self.results.items()):
            events.append({"ph": "M", "name": "process_name", "pid": pid,
                           "args": {"name": f"{g} {s} ({self.launch}, fusion {self.fusion})"}})
            tracks: set[int] = set()
            for sl in self.kernel_slices(g, s, frame):
                if sl.track not in tracks:
                    tracks.add(sl.track)
                    events.append({"ph": "M", "name": "thread_name", "pid": pid,
                                   "tid": sl.track, "args": {"name": f"kernels {sl.track}"}})
                events.append({"ph": "X", "name": sl.name, "cat": sl.kind, "pid": pid,
                               "tid": sl.track, "ts": sl.start_ns / 1e3,
                               "dur": (sl.end_ns - sl.start_ns) / 1e3, "args": dict(sl.args),
                               "cname": sl.cname})
            events.append({"ph": "i", "name": "frame end", "pid": pid, "tid": 0, "s": "p",
                           "ts": round(float(r.total_us[frame]), 4)})
        doc = {"traceEvents": events, "displayTimeUnit": "ns",
               "otherData": {"frame": int(self.frames[frame]), "launch": self.launch,
                             "fusion": self.fusion, "precision": self.precision}}
        if path is not None:
            atomic_write(path, fileio.dumps_json(doc, indent=None, newline=False))
        return doc

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
            atomic_write(path, text)
        return text


#: Chrome trace colours (its reserved ``cname`` values) by kind of kernel.
_CNAMES = {"parallel": "rail_load", "compare": "yellow", "compaction": "olive",
           "amend": "rail_response", "layer": "thread_state_running", "op": "generic_work"}


def _cname(label: str, track: str, layers: frozenset[str]) -> str:
    """The colour of one slice: the parallel phase, a correction's part, a linear layer's
    kernel (``layers``: the linear layers' names) or an op kernel."""
    if track == "parallel":
        return _CNAMES["parallel"]
    part = label.rsplit(":", 1)[-1] if ":" in label else ""
    if part in _CNAMES:
        return _CNAMES[part]
    return _CNAMES["layer"] if label in layers else _CNAMES["op"]


@dataclasses.dataclass(frozen=True)
class KernelSlice:
    """One kernel of one replayed frame as the scheduler ran it.

    Attributes:
      track: its lane, one per concurrently running kernel: slices on one track never overlap
        (in integer nanoseconds).
      name: the kernel (a layer, a layer's ``:compare``/``:compaction``/``:amend``, a layer's
        parallel work, an op kernel).
      start_ns, end_ns: its start and end in the frame, in nanoseconds (``end_ns >= start_ns``).
      kind: the schedule track it came from (``stream``, ``parallel``, ``serial``).
      args: ``sms`` (the SMs it held while it ran), ``ctas`` (its CTAs with work) and ``bytes``
        (what it moved), rounded to 3 decimals.
      cname: its Chrome trace colour, by kind of kernel.
    """

    track: int
    name: str
    start_ns: int
    end_ns: int
    kind: str
    args: Mapping[str, float]
    cname: str


def kernel_slices(r: SchemeResult, frame: int, layers: Iterable[str]) -> tuple[KernelSlice, ...]:
    """The kernels of frame index ``frame`` of ``r`` (``layers``: the linear layers' names, for
    colours), sorted by start then end, each on the first track free at its start."""
    layer_names = frozenset(layers)
    raw = []
    for kind, (labels, st, en) in r.spans.items():
        args = r.span_args.get(kind, {})
        for i, (lab, a, b) in enumerate(zip(labels, st[frame], en[frame], strict=True)):
            ts = round(float(a) * 1e3 / r.clock_mhz)  # nanoseconds
            te = max(round(float(b) * 1e3 / r.clock_mhz), ts)
            raw.append((ts, te, lab, kind, {k: round(float(v[frame, i]), 3)
                                            for k, v in args.items()}))
    out = []
    lanes: list[int] = []  # end (ns) of the last slice on each track
    for ts, te, lab, kind, extra in sorted(raw, key=lambda x: (x[0], x[1])):
        tid = next((i for i, e in enumerate(lanes) if e <= ts), len(lanes))
        if tid == len(lanes):
            lanes.append(te)
        lanes[tid] = te
        out.append(KernelSlice(track=tid, name=lab, start_ns=ts, end_ns=te, kind=kind,
                               args=MappingProxyType(extra),
                               cname=_cname(lab, kind, layer_names)))
    return tuple(out)


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
    chunks: Iterable[tuple[np.ndarray, Mapping[str, np.ndarray]]]
    meta: Mapping[str, Any]
    ops: tuple[Any, ...] | None = None
    has_fires: bool = False
    predictor: str | None = None


def _in_memory(layers: Sequence[Any], events: Mapping[str, Any], frames: Any,
               batch_frames: int, frame_offset: int = 0) -> _Source:
    geoms = tuple(LayerGeom.from_layer(layer) for layer in layers)
    missing = [g.name for g in geoms if g.name not in events]
    if missing:
        raise ReplayError(f"no events for layers {missing}")
    evs = {g.name: events_to_nhwc(layer, g, events[g.name])
           for layer, g in zip(layers, geoms, strict=True)}
    fires = ev_mod.fires_of(events)
    fire_maps = None if fires is None else {
        g.name: events_to_nhwc(layer, g, np.asarray(fires[g.name]).astype(np.uint8))
        for layer, g in zip(layers, geoms, strict=True)}
    t = {v.shape[0] for v in evs.values()}
    if len(t) != 1:
        raise ReplayError(f"layers have different frame counts: {sorted(t)}")
    idx = _frame_indices(frames, t.pop())
    predictor = ev_mod.predictor_of(events)

    def chunks() -> Iterator[tuple[np.ndarray, Mapping[str, np.ndarray]]]:
        for a in range(0, len(idx), batch_frames):
            sel = idx[a:a + batch_frames]
            yield sel + frame_offset, ev_mod.EventMaps(
                {k: v[sel] for k, v in evs.items()},
                None if fire_maps is None else {k: v[sel] for k, v in fire_maps.items()},
                predictor)

    return _Source(geoms, chunks(), {"source": "in-memory", "predictor": predictor},
                   has_fires=fire_maps is not None, predictor=predictor)


def _frame_indices(frames: Any, n: int) -> np.ndarray:
    return _checked_frame_indices(frames, n)


def _from_trace(trace: Any, frames: Any) -> _Source:
    geoms = tuple(LayerGeom.from_dict(layer["geom"]) for layer in trace.layers)
    idx = _frame_indices(frames, trace.n_frames)
    return _Source(geoms, trace.iter_frames(idx),
                   {"source": str(trace.path), "model": trace.manifest.get("model"),
                    "stream": trace.manifest.get("stream"),
                    "predictor": trace.manifest.get("predictor"),
                    "tau": trace.manifest.get("tau")},
                   ops=getattr(trace, "ops", None), has_fires=trace.has_fires,
                   predictor=ev_mod.predictor_name(trace.manifest.get("predictor")))


def _source(source: Any, events: Any, frames: Any, batch_frames: int,
            frame_offset: int = 0) -> _Source:
    if events is not None:
        return _in_memory(source, events, frames, batch_frames, frame_offset)
    if isinstance(source, str | Path):
        return _from_trace(traces.read_trace(source), frames)
    if isinstance(source, traces.Trace):
        return _from_trace(source, frames)
    if isinstance(source, tuple) and len(source) == 2:
        return _in_memory(source[0], source[1], frames, batch_frames, frame_offset)
    raise ReplayError(
        "replay source must be a trace directory, a traces.Trace, or (layers, events); got "
        f"{type(source).__name__}"
    )


# --- events reduced once ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class ReducedEvents:
    """Events reduced once to what the cost models read, for replaying many times.

    What :func:`reduce_events` returns and :func:`replay` / :func:`replay_launches` accept as
    their source: per layer the per-position counts of the indicators :attr:`which` (as
    :func:`secnn_jax.workmaps.position_counts_all` gives them), and the mispredicted neurons
    per frame and layer. Counts depend only on the events, the layers' geometry and the
    indicators, not on GPUs, parameters, configuration or launch model, so a replay from this
    value equals, bit for bit, a replay of the events it was reduced from. Its arrays are
    read-only; two values are equal only when they are the same object.

    Attributes:
      geoms: the layers.
      frames: ``[T]`` stream indices of the reduced frames.
      counts: per layer ``{indicator: int32 [T, M, G]}``.
      misses: ``float64 [T, L]`` mispredicted neurons per frame and layer; ``None`` when
        reduced for schemes that read none (layer-after-layer baselines only).
      which: the indicators counted (a replay needing another one is refused).
      chunks: frames per chunk as reduced (a replay of every frame keeps them).
      meta: the source's provenance (as :attr:`ReplayResult.meta` reports it).
      ops: the trace's op groups (``None``: none came with the events).
      has_fires: whether the events carried fires maps.
      predictor: the predictor that made the events (``None``: unknown).
    """

    geoms: tuple[LayerGeom, ...]
    frames: np.ndarray
    counts: tuple[Mapping[str, np.ndarray], ...]
    misses: np.ndarray | None
    which: tuple[str, ...]
    chunks: tuple[int, ...]
    meta: Mapping[str, Any]
    ops: tuple[Any, ...] | None = None
    has_fires: bool = False
    predictor: str | None = None

    @property
    def n_frames(self) -> int:
        """Frames reduced."""
        return len(self.frames)

    def _chunk(self, sel: slice | np.ndarray) -> tuple[np.ndarray, list[dict[str, np.ndarray]],
                                                      np.ndarray | None]:
        """Frame ids, counts and misses of the frames ``sel`` (positions in :attr:`frames`)."""
        if isinstance(sel, np.ndarray) and len(sel) and np.array_equal(
                sel, np.arange(sel[0], sel[0] + len(sel))):
            # Consecutive frames as a slice: views of the frozen counts, so the scheme costs'
            # reductions of a chunk are shared by every replay that selects it (a band's
            # probes and corners), not recomputed from a fresh copy each time.
            sel = slice(int(sel[0]), int(sel[0]) + len(sel))
        return (self.frames[sel], [{k: v[sel] for k, v in c.items()} for c in self.counts],
                None if self.misses is None else self.misses[sel])

    def iter_chunks(self, frames: Any = None, batch_frames: int = 16
                    ) -> Iterator[tuple[np.ndarray, list[dict[str, np.ndarray]],
                                        np.ndarray | None]]:
        """``(frame ids, counts, misses)`` per chunk: every frame in the chunks it was reduced
        in (``frames=None``), else the selected frames (a count, a slice or positions, as
        :func:`replay`'s ``frames``) in chunks of ``batch_frames``."""
        if frames is None:
            a = 0
            for n in self.chunks:
                yield self._chunk(slice(a, a + n))
                a += n
            return
        idx = _frame_indices(frames, self.n_frames)
        for a in range(0, len(idx), batch_frames):
            yield self._chunk(idx[a:a + batch_frames])


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The chunks' counts as one array: a lone chunk's own array when it owns its data (the
    timer's one-chunk reductions are not copied), else a concatenation (a new array)."""
    if len(arrays) == 1 and arrays[0].base is None:
        return arrays[0]
    return np.concatenate(arrays, axis=0)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _wants_misses(schemes: Iterable[str]) -> bool:
    """Whether any of ``schemes`` reads the mispredicted neurons per layer."""
    return any(s in SECNN or s in PEERS for s in schemes)


def _reduce_chunk(geoms: Sequence[LayerGeom], evs: Mapping[str, np.ndarray], n: int,
                  which: tuple[str, ...], want_miss: bool, progress: bool
                  ) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """One chunk's per-layer counts and ``[n, L]`` misses (zeros unless ``want_miss``)."""
    it: Iterable[int] = range(len(geoms))
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        it = tqdm(it, desc="replay layers", leave=False)
    counts: list[dict[str, np.ndarray]] = []
    misses = np.zeros((n, len(geoms)))
    fires = ev_mod.fires_of(evs)
    for li in it:  # loop over layers: reduce each layer's events once for all schemes
        codes = evs[geoms[li].name]
        fire = None if fires is None else fires[geoms[li].name]
        counts.append(workmaps.position_counts_all(codes, geoms[li], which, fire)
                      if which else {})
        if want_miss:
            misses[:, li] = workmaps.indicator(codes, "mispredicted").reshape(n, -1).sum(1)
    return counts, misses


def reduce_events(source: Any, events: Mapping[str, Any] | None = None, *,
                  schemes: Sequence[str] | None = None, frames: Any = None,
                  batch_frames: int = 16, progress: bool = False, frame_offset: int = 0
                  ) -> ReducedEvents:
    """Reduces events once to the counts :func:`replay` reads, for ``schemes``.

    Replaying the result (``replay(reduce_events(src, ev, schemes=...), schemes=...)``, any
    GPUs, parameters, configuration, launch model or fusion) gives exactly what replaying
    the events does, without reducing them again: the indicators those schemes need are
    counted (:func:`secnn_jax.timing.schemes.needs`), and the mispredicted neurons where a
    SE-CNN scheme or a peer is among them.

    Args:
      source, events, frames, batch_frames, frame_offset: as for :func:`replay` (chunks of
        ``batch_frames`` in-memory frames are reduced at a time).
      schemes: the schemes the result will be replayed for (default: every scheme).
      progress: show a tqdm bar over layers.

    Returns:
      A :class:`ReducedEvents`.

    Raises:
      ReplayError: naming a bad argument (as :func:`replay`), or no frames selected.
    """
    _, schemes, _ = check_replay(
        source, events, gpus=("h100",), schemes=SCHEMES if schemes is None else schemes,
        precision="fp32", frames=frames, batch_frames=batch_frames, frame_offset=frame_offset)
    if isinstance(source, ReducedEvents):
        raise ReplayError("reduce_events: the source is already reduced")
    src = _source(source, events, frames, batch_frames, int(frame_offset))
    which = S.needs(schemes)
    want_miss = _wants_misses(schemes)
    ids: list[np.ndarray] = []
    parts: list[list[dict[str, np.ndarray]]] = []
    miss: list[np.ndarray] = []
    for fidx, evs in src.chunks:
        n = len(fidx)
        ids.append(np.asarray(fidx))
        counts, misses = _reduce_chunk(src.geoms, evs, n, which, want_miss, progress)
        parts.append(counts)
        miss.append(misses)
    if not ids:
        raise ReplayError("reduce_events: no frames selected")
    counts = []
    for li in range(len(src.geoms)):
        layer = {k: _frozen(_joined([p[li][k] for p in parts])) for k in which}
        for p in parts:  # the chunk's copies are no longer needed
            p[li] = {}
        counts.append(MappingProxyType(layer))
    return ReducedEvents(
        geoms=src.geoms, frames=_frozen(np.concatenate(ids)), counts=tuple(counts),
        misses=_frozen(np.concatenate(miss, axis=0)) if want_miss else None, which=which,
        chunks=tuple(len(i) for i in ids), meta=MappingProxyType(dict(src.meta)), ops=src.ops,
        has_fires=src.has_fires, predictor=src.predictor)


# --- replay ---------------------------------------------------------------------------------

@dataclasses.dataclass
class _Acc:
    """Per-(gpu, scheme) accumulators over chunks of frames."""

    parts: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)
    span_labels: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def add(self, times: S.SchemeTimes) -> None:
        put = self.parts.setdefault
        put("total", []).append(times.total)
        put("layer", []).append(times.layer)
        put("busy", []).append(np.asarray(times.busy))
        for k, v in times.phases.items():
            put("phase:" + k, []).append(np.asarray(v))
        for k, v in times.layer_phases.items():
            put("lp:" + k, []).append(np.asarray(v))
        for k, v in times.work.items():
            put("work:" + k, []).append(np.asarray(v))
        for k, (labels, st, en) in times.spans.items():
            self.span_labels[k] = labels
            put("span0:" + k, []).append(st)
            put("span1:" + k, []).append(en)
        for k, args in times.span_args.items():
            for a, v in args.items():
                put(f"sa:{k}:{a}", []).append(np.asarray(v))
        for k, work in times.span_work.items():
            for a, v in work.items():
                put(f"sw:{k}:{a}", []).append(np.asarray(v))

    def cat(self, k: str) -> np.ndarray:
        return np.concatenate(self.parts[k], axis=0)

    def result(self, gpu: GPU, scheme: str, launch: str, fusion: str, precision: str
               ) -> SchemeResult:
        keys = list(self.parts)
        span_work = self._by_track("sw:")
        # The energy model prices the work the schedule's kernels counted.
        work = (graph_work(span_work) if span_work
                else {k[5:]: self.cat(k) for k in keys if k.startswith("work:")})
        total_us = self.cat("total") / gpu.clock_mhz
        return SchemeResult(
            gpu=gpu.key, scheme=scheme, clock_mhz=gpu.clock_mhz, sms=gpu.sms,
            total_cycles=self.cat("total"), layer_cycles=self.cat("layer"),
            phases={k[6:]: self.cat(k) for k in keys if k.startswith("phase:")},
            layer_phases={k[3:]: self.cat(k) for k in keys if k.startswith("lp:")},
            busy_cycles=self.cat("busy"), launch=launch, fusion=fusion, work=work,
            energy_parts=energy_parts(work, total_us, gpu.key, precision),
            spans={k: (lab, self.cat("span0:" + k), self.cat("span1:" + k))
                   for k, lab in self.span_labels.items()},
            span_args=self._by_track("sa:"), span_work=span_work)

    def _by_track(self, prefix: str) -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, np.ndarray]] = {}
        for key in self.parts:
            if key.startswith(prefix):
                _, track, arg = key.split(":", 2)
                out.setdefault(track, {})[arg] = self.cat(key)
        return out


def _fits(src: _Source, scheme: str) -> bool:
    """Whether ``scheme`` may be timed from ``src``'s events (see :func:`_check_events_fit`)."""
    want = S.REGISTRY[scheme].events
    return want in ("zero", "own") or src.predictor in (None, want)


def _check_events_fit(src: _Source, schemes: Sequence[str]) -> None:
    """Refuses a scheme that models another predictor's events; warns where fires are unknown.

    A scheme whose registry entry names a predictor (``events="accumulated"``: DeltaCNN and
    CBinfer propagate what changed beyond tau) is timed only from that predictor's events;
    events of unknown origin (a plain dict, a trace with a free-form predictor) pass with a
    warning. Without fires maps (a version-1 trace, a plain dict), a zero-skipping scheme reads
    "non-zero" as "not ZZ", which depends on the predictor: a warning says so.
    """
    for s in schemes:
        want = S.REGISTRY[s].events
        if want in ("zero", "own"):
            continue
        if src.predictor is None:
            logging.log_first_n(logging.WARNING, "replay: scheme %s models the %s predictor's "
                                "events; these events do not say which predictor made them", 4,
                                s, want)
        elif src.predictor != want:
            raise ReplayError(
                f"scheme {s!r} is timed from predictors.{want}()'s events (what it propagates); "
                f"these are predictors.{src.predictor}()'s: run the stream with "
                f"predictors.{want}() for it")
    if not src.has_fires and any("nonzero" in S.REGISTRY[s].needs for s in schemes):
        logging.log_first_n(
            logging.WARNING, "replay: the events carry no fires maps (a version-1 trace or a "
            "plain dict): %s counts every non-ZZ neuron as work, so its time depends on the "
            "predictor; replay events from run_stream, or the zero predictor's", 1,
            ", ".join(s for s in schemes if "nonzero" in S.REGISTRY[s].needs))


def _check_reduced(reduced: ReducedEvents, which: Sequence[str], want_miss: bool) -> None:
    """Refuses reduced events that lack what the replayed schemes read."""
    lack = [w for w in which if w not in reduced.which]
    if lack:
        raise ReplayError(f"ReducedEvents counted {list(reduced.which)}; these schemes also "
                          f"need {lack}: reduce_events(..., schemes=) with every scheme replayed")
    if want_miss and reduced.misses is None:
        raise ReplayError("ReducedEvents were reduced without misses, which SE-CNN and the peers "
                          "read: reduce_events(..., schemes=) with every scheme replayed")


def _check_choice(value: str, known: Sequence[str], what: str) -> str:
    if value not in known:
        raise ReplayError(f"unknown {what} {value!r}; known: {', '.join(known)}")
    return value


def replay_launches(source: Any, events: Mapping[str, Any] | None = None, *,
                    launches: Sequence[str] = LAUNCH_MODELS,
                    gpus: Sequence[str | GPU] = ("h100",),
                    schemes: Sequence[str] | None = None,
                    precision: str = "fp32", fusion: str = DEFAULT_FUSION,
                    ops: Sequence[Any] | None = None, frames: Any = None,
                    params: ModelParams | None = None, config: SchemeConfig | None = None,
                    batch_frames: int = 16, progress: bool = False, frame_offset: int = 0
                    ) -> dict[str, ReplayResult]:
    """:func:`replay` under several launch models from one reduction of the events.

    Returns ``{launch: ReplayResult}``; each result is exactly what :func:`replay` with that
    ``launch`` returns (every scheme of one result under one launch model).
    """
    asked = schemes
    # ReplayError naming a bad argument, before work: unknown or no schemes and GPUs, the
    # precision (returned canonical), frames, batch_frames, frame_offset, the events.
    gpus, schemes, prec = check_replay(
        source, events, gpus=gpus, schemes=SCHEMES if schemes is None else schemes,
        precision=precision, frames=frames, batch_frames=batch_frames,
        frame_offset=frame_offset)
    launches = tuple(_check_choice(x, LAUNCH_MODELS, "launch model") for x in launches)
    _check_choice(fusion, FUSIONS, "fusion policy")
    cfg = config or DEFAULT_CONFIG
    gpu_objs = tuple(get_gpu(g) for g in gpus)
    # Each GPU's own calibration (a loaded GPU file's) unless ``params`` is given for all.
    par = {g.key: params or params_for(g) for g in gpu_objs}
    params = params or (par[gpu_objs[0].key] if gpu_objs else load_params())
    reduced = source if isinstance(source, ReducedEvents) else None
    if reduced is not None and (events is not None or frame_offset):
        raise ReplayError("replay of ReducedEvents: events and frame_offset were given when "
                          "the events were reduced")
    src = (_Source(reduced.geoms, (), reduced.meta, ops=reduced.ops,
                   has_fires=reduced.has_fires, predictor=reduced.predictor)
           if reduced is not None else
           _source(source, events, frames, batch_frames, int(frame_offset)))
    if asked is None:  # every scheme these events can feed
        schemes = tuple(s for s in schemes if _fits(src, s))
    _check_events_fit(src, schemes)
    geoms = src.geoms
    op_list = tuple(OpGeom.from_op(o) for o in (ops if ops is not None else src.ops or ()))
    if ops is None and src.ops is None:
        logging.log_first_n(logging.WARNING, "replay: no op groups given (ops=...): only the "
                            "linear layers' kernels are timed", 1)
    ctxs = {(g.key, ln): S.Context(geoms=geoms, ops=op_list, gpu=g, precision=prec,
                                   params=par[g.key], cfg=cfg,
                                   launch=LaunchCosts.of(ln, g, par[g.key], cfg),
                                   fusion=fusion)
            for g in gpu_objs for ln in launches}
    # Plans are frame-independent and pure: schemes with one plan function share it.
    by_fn: dict[tuple[str, str, Any], Any] = {}
    for (gk, ln), ctx in ctxs.items():
        for s in schemes:
            fn = S.REGISTRY[s].plan
            if (gk, ln, fn) not in by_fn:
                by_fn[(gk, ln, fn)] = fn(ctx)
    plans = {(gk, ln, s): by_fn[(gk, ln, S.REGISTRY[s].plan)] for (gk, ln) in ctxs
             for s in schemes}
    which = S.needs(schemes)
    want_miss = _wants_misses(schemes)
    if reduced is not None:
        _check_reduced(reduced, which, want_miss)
        chunks: Iterable[tuple[np.ndarray, Any, Any]] = reduced.iter_chunks(frames, batch_frames)
    else:
        chunks = ((fidx, *_reduce_chunk(geoms, evs, len(fidx), which, want_miss, progress))
                  for fidx, evs in src.chunks)
    acc = {k: _Acc() for k in plans}
    frame_ids: list[np.ndarray] = []
    for fidx, counts, misses in chunks:
        n = len(fidx)
        frame_ids.append(np.asarray(fidx))
        if misses is None or not want_miss:  # zeros where no scheme of the call reads them
            misses = np.zeros((n, len(geoms)))
        for (gk, ln, s), plan in plans.items():
            acc[(gk, ln, s)].add(S.REGISTRY[s].cost(ctxs[(gk, ln)], plan, counts, misses, n,
                                                    frame_ids=np.asarray(fidx)))
        logging.vlog(1, "replayed %d frames x %d layers", n, len(geoms))
    if not frame_ids:
        raise ReplayError("replay: no frames selected")
    fids = tuple(int(i) for i in np.concatenate(frame_ids))
    out: dict[str, ReplayResult] = {}
    for ln in launches:
        results = {(g.key, s): acc[(g.key, ln, s)].result(g, s, ln, fusion, prec)
                   for g in gpu_objs for s in schemes}
        meta = {**src.meta, "fires": src.has_fires,
                "params": params.as_dict(), "config": cfg.as_dict(),
                "ops": len(op_list) if (ops is not None or src.ops is not None) else None}
        out[ln] = ReplayResult(layers=tuple(g.name for g in geoms), frames=fids,
                               precision=prec, gpus=tuple(g.key for g in gpu_objs),
                               schemes=schemes, results=results, meta=meta, launch=ln,
                               fusion=fusion)
    return out


def replay(source: Any, events: Mapping[str, Any] | None = None, *,
           gpus: Sequence[str | GPU] = ("h100",), schemes: Sequence[str] | None = None,
           precision: str = "fp32", launch: str = DEFAULT_LAUNCH, fusion: str = DEFAULT_FUSION,
           ops: Sequence[Any] | None = None, frames: Any = None,
           params: ModelParams | None = None, config: SchemeConfig | None = None,
           batch_frames: int = 16, progress: bool = False, frame_offset: int = 0
           ) -> ReplayResult:
    """Replays event maps through the whole-network cost models of every scheme.

    Args:
      source: a trace directory, a :class:`secnn_jax.traces.Trace`, a ``(layers, events)``
        pair, the layers (with ``events`` given separately), or :class:`ReducedEvents`
        (:func:`reduce_events`; ``frames`` then selects among its frames, and a replay of all
        of them keeps the chunks it was reduced in). Layers are
        :class:`secnn_jax.layers.Layer`, :class:`LayerGeom` or their dict forms.
      events: ``{name: uint8 [T, *in_shape]}`` when ``source`` is the layers: what
        :func:`secnn_jax.run_stream` returns (an :class:`secnn_jax.events.EventMaps`, whose
        fires maps make ``zero_skip`` independent of the predictor and whose predictor name
        lets ``deltacnn``/``cbinfer`` refuse another predictor's codes) or a plain dict
        (fires unknown: a warning).
      gpus: GPU keys (:data:`secnn_jax.timing.GPUS`) or :class:`GPU` objects.
      schemes: subset of :data:`~secnn_jax.timing.SCHEMES`; default: every scheme the events
        can feed (``deltacnn`` and ``cbinfer`` only from the accumulated predictor's events or
        events of unknown origin). A scheme asked for explicitly whose registry entry names
        another predictor's events raises :class:`ReplayError`.
      precision: ``fp32``, ``tf32`` or ``fp16``.
      launch: ``eager``, ``graph`` (default) or ``persistent``
        (:data:`~secnn_jax.timing.LAUNCH_MODELS`): how kernels are issued, for every scheme of
        this call.
      fusion: ``none`` (default) or ``epilogue`` (:data:`~secnn_jax.timing.FUSIONS`): which
        non-linear ops run as their own kernels, for every scheme of this call.
      ops: the network's op groups (:func:`secnn_jax.netops.find_ops`); default: the trace's
        own, else none (only the linear layers are timed; a warning is logged).
      frames: ``None`` (all), a count, a slice, or frame indices.
      params: calibrated model parameters for every GPU of the call (default: each GPU's
        own, from a GPU file loaded with :func:`~secnn_jax.timing.load_gpu_file`, else the
        committed H100 calibration).
      config: scheme knobs (:class:`~secnn_jax.timing.SchemeConfig`).
      batch_frames: frames reduced at once for in-memory events (memory bound).
      progress: show a tqdm bar over layers.
      frame_offset: stream index of in-memory ``events``' first frame (a chunk of a longer
        stream): results are labelled with stream frame indices, and a change-based peer runs
        only the stream's frame 0 densely.

    Returns:
      A :class:`ReplayResult`.
    """
    return replay_launches(source, events, launches=(launch,), gpus=gpus, schemes=schemes,
                           precision=precision, fusion=fusion, ops=ops, frames=frames,
                           params=params, config=config, batch_frames=batch_frames,
                           progress=progress, frame_offset=frame_offset)[launch]
