"""Writing traces: :class:`TraceWriter` (chunked, atomic, resumable) and :func:`write_trace`.

The header is written first, then per chunk the event data, the summary table (per frame, layer
and sample: the four code counts and the exact parallel/serial MACs) and last the chunk record;
the manifest is written when the writer is closed. Every file goes through
:func:`secnn_jax.fileio.atomic_write` (temporary file, fsync, ``os.replace``); a failed write is a
:class:`~secnn_jax.traces.codec.TraceError` naming the file. Opened on a partial run with the same
description, the writer verifies the finished chunks, drops whatever follows the last good one
and resumes after it; the same inputs give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from secnn_jax import events as events_mod
from secnn_jax import fileio, workmaps
from secnn_jax.geometry import LayerGeom, events_to_nhwc
from secnn_jax.netops import NetOp
from secnn_jax.traces.codec import (
    CHECKSUM_FIELD,
    CHUNKS_DIR,
    CODECS,
    FORMAT,
    HEADER_FILE,
    MANIFEST_FILE,
    SUMMARY_COLUMNS,
    VERSION,
    TraceError,
    chunk_names,
    compress,
    manifest_checksum,
    pack_codes,
    pack_fires,
    sha256,
)

__all__ = ["ChunkRecord", "TraceWriter", "layer_record", "write_trace"]


def _write(path: Path, data: bytes) -> None:
    """:func:`secnn_jax.fileio.atomic_write`, a failure being a :class:`TraceError` naming
    ``path`` and the OS error."""
    try:
        fileio.atomic_write(path, data)
    except fileio.FileWriteError as e:
        raise TraceError(str(e)) from e.__cause__


def _json_file(obj: Any) -> bytes:
    """The bytes of a trace JSON file: keys sorted, one space of indent, a final newline."""
    return fileio.dumps_json(obj, indent=1).encode()


def _code_version() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version("secnn_jax")
    except Exception:
        return "unknown"


def layer_record(layer: Any) -> dict[str, Any]:
    """The manifest's description of one layer (a ``Layer``, :class:`LayerGeom` or dict)."""
    if isinstance(layer, Mapping) and "geom" in layer:
        return fileio.to_jsonable(dict(layer))
    geom = LayerGeom.from_layer(layer)
    rec: dict[str, Any] = {"name": geom.name, "kind": geom.kind, "geom": geom.as_dict(),
                           "in_nhwc": list(geom.in_nhwc)}
    for f in ("index", "in_shape", "out_shape", "kernel_shape", "strides", "padding",
              "dilation", "groups", "macs"):
        if hasattr(layer, f):
            rec[f] = fileio.to_jsonable(getattr(layer, f))
    rec.setdefault("macs", geom.macs)
    if hasattr(layer, "in_perm") and "in_shape" in rec:  # the layer's own layout
        rec["in_perm"] = [int(p) for p in layer.in_perm]
    return rec


def _to_nhwc(layer: Any, geom: LayerGeom, ev: Any) -> np.ndarray:
    try:
        return events_to_nhwc(layer, geom, ev)
    except ValueError as e:
        raise TraceError(str(e)) from e


def _summary(codes: np.ndarray, geom: LayerGeom) -> np.ndarray:
    """One layer's summary table ``[T, N, 6]`` int64 (columns :data:`SUMMARY_COLUMNS`): the
    counts of each event code (:func:`secnn_jax.events.count`) and the exact parallel/serial
    MACs per frame and sample, from its NHWC codes ``[T, N, H, W, C]``."""
    flat = codes.reshape(codes.shape[0], codes.shape[1], -1)
    counts = events_mod.count(flat, axis=-1).astype(np.int64, copy=False)
    par, ser = workmaps.phase_macs(codes, geom)
    return np.concatenate([counts, par[..., None], ser[..., None]], axis=-1)


@dataclasses.dataclass(frozen=True)
class ChunkRecord:
    """One finished chunk (as in ``chunks/chunk_NNNNNN.json`` and the manifest).

    Attributes:
      index: chunk number.
      frame_start: first frame.
      n_frames: frames in the chunk.
      events: ``{"file", "sha256", "nbytes"}`` of the event data.
      summary: ``{"file", "sha256", "nbytes"}`` of the summary table.
      layers: per layer ``{"offset", "nbytes", "n_codes"}`` inside the event file, and in a
        trace with fires maps ``"fires_offset"``, ``"fires_nbytes"`` of its fires blob.
    """

    index: int
    frame_start: int
    n_frames: int
    events: Mapping[str, Any]
    summary: Mapping[str, Any]
    layers: tuple[Mapping[str, int], ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"index": self.index, "frame_start": self.frame_start,
                "n_frames": self.n_frames, "events": dict(self.events),
                "summary": dict(self.summary), "layers": [dict(x) for x in self.layers]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChunkRecord:
        """Inverse of :meth:`as_dict`."""
        return cls(index=int(d["index"]), frame_start=int(d["frame_start"]),
                   n_frames=int(d["n_frames"]), events=dict(d["events"]),
                   summary=dict(d["summary"]), layers=tuple(dict(x) for x in d["layers"]))


class TraceWriter:
    """Writes a trace chunk by chunk; resumes a partial run (see the module docstring).

    Use as a context manager or call :meth:`close`; an exception inside the ``with`` block
    leaves the finished chunks (and no manifest) for a later resume.

    Attributes:
      path: the run directory.
      header: the run description.
      chunks: finished chunk records (resumed ones first).
    """

    def __init__(self, path: str | Path, layers: Sequence[Any], *, model: str = "",
                 stream: Any = None, predictor: Any = None, tau: Any = 0.0,
                 chunk_frames: int = 16, codec: str = "zlib",
                 meta: Mapping[str, Any] | None = None, overwrite: bool = False,
                 ops: Sequence[NetOp | Mapping[str, Any]] | None = None,
                 fires: bool | None = None) -> None:
        """Opens (or resumes) the run at ``path``.

        Args:
          path: run directory (created if needed).
          layers: the model's layers, in order (``Layer``, :class:`LayerGeom` or dict).
          model, stream, predictor, tau: run description stored in the manifest.
          chunk_frames: frames per chunk.
          codec: ``zlib`` (default), ``lzma`` or ``none``.
          meta: extra JSON-serialisable description (no timestamps if you want determinism).
          overwrite: replace a complete trace at ``path`` instead of failing.
          ops: the model's non-linear kernels (:func:`secnn_jax.netops.find_ops`, as
            :class:`~secnn_jax.netops.NetOp` or their dicts), stored as ``"ops"``; omitted from
            the header when None.
          fires: record each layer's fires map (``True``: every append must carry them, as
            the :class:`secnn_jax.events.EventMaps` of ``run_stream`` do); ``False``: codes
            only; ``None`` (default): decided by the first append (a resumed run by its
            finished chunks). The manifest's ``fires`` says which.

        Raises:
          TraceError: ``path`` holds a complete trace (and not ``overwrite``), or a partial
            run whose header differs (names the differing fields), or a damaged chunk.
        """
        if chunk_frames < 1:
            raise TraceError(f"chunk_frames must be >= 1, got {chunk_frames}")
        if codec not in CODECS:
            raise TraceError(f"unknown codec {codec!r}; known: {CODECS}")
        self.path = Path(path)
        self._layers = list(layers)
        self._geoms = [LayerGeom.from_layer(x) for x in self._layers]
        names = [g.name for g in self._geoms]
        if len(set(names)) != len(names):
            raise TraceError(f"layer names must be unique, got {names}")
        jsonable = fileio.to_jsonable
        self.header: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "code_version": _code_version(),
            "model": str(model), "stream": jsonable(stream), "predictor": jsonable(predictor),
            "tau": jsonable(tau), "chunk_frames": int(chunk_frames), "codec": codec,
            "events_layout": "NHWC", "summary_columns": list(SUMMARY_COLUMNS),
            "layers": [layer_record(x) for x in self._layers], "meta": jsonable(meta or {}),
        }
        if ops is not None:
            self.header["ops"] = _op_records(ops)
        if fires is not None:
            self.header["fires"] = bool(fires)
        self._fires: bool | None = None if fires is None else bool(fires)
        self.chunks: list[ChunkRecord] = []
        self._buffer: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self._fire_buffer: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self._buffered = 0
        self._closed = False
        if (self.path / MANIFEST_FILE).exists():
            if not overwrite:
                raise TraceError(f"trace {self.path} is already complete (manifest.json exists);"
                                 " pass overwrite=True to replace it")
            _remove_run(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / CHUNKS_DIR).mkdir(exist_ok=True)
        hp = self.path / HEADER_FILE
        if hp.exists():
            old = json.loads(hp.read_text())
            if fires is None and "fires" in old:
                self.header["fires"] = old["fires"]
                self._fires = bool(old["fires"])
            self._resume(old)
            if self._fires is None and self.chunks:  # decided by the finished chunks
                self._fires = "fires_offset" in self.chunks[0].layers[0]
        else:
            _write(hp, _json_file(self.header))

    @property
    def records_fires(self) -> bool | None:
        """Whether the trace records fires maps (``None``: not decided yet, no frames)."""
        return self._fires

    # -- resume
    def _resume(self, old: Mapping[str, Any]) -> None:
        diff = sorted(k for k in set(old) | set(self.header)
                      if k != "code_version" and old.get(k) != self.header.get(k))
        if diff:
            raise TraceError(
                f"trace {self.path}: a partial run with a different description exists "
                f"(differs in: {', '.join(diff)}); use another directory or delete it"
            )
        k = 0
        while True:
            _, _, rec = chunk_names(k)
            rp = self.path / rec
            if not rp.exists():
                break
            r = ChunkRecord.from_dict(json.loads(rp.read_text()))
            ok = all((self.path / f["file"]).exists()
                     and sha256((self.path / f["file"]).read_bytes()) == f["sha256"]
                     for f in (r.events, r.summary))
            if not ok or r.index != k or r.frame_start != self.frames_done:
                break  # a damaged trailing chunk is rewritten
            self.chunks.append(r)
            k += 1
        logging.info("trace %s: resuming after %d finished chunk(s) (%d frames)", self.path,
                     len(self.chunks), self.frames_done)
        # Drop whatever follows the last good chunk (it will be rewritten identically).
        for p in sorted((self.path / CHUNKS_DIR).glob("*")):
            stem = p.name.split(".")[0]
            if p.name.startswith(".") or int(stem.rsplit("_", 1)[-1]) >= k:
                p.unlink()

    @property
    def finished_chunks(self) -> tuple[int, ...]:
        """Indices of the finished chunks."""
        return tuple(c.index for c in self.chunks)

    @property
    def frames_done(self) -> int:
        """Frames in finished chunks: resume the stream after this many frames."""
        return sum(c.n_frames for c in self.chunks)

    # -- writing
    def append(self, events: Mapping[str, Any]) -> None:
        """Adds frames (``events[name]`` ``[T, *in_shape]``); writes every full chunk."""
        self._check_open()
        t = self._ingest(events)
        self._buffered += t
        while self._buffered >= self.header["chunk_frames"]:
            self._flush(self.header["chunk_frames"])

    def _ingest(self, events: Mapping[str, Any]) -> int:
        fires = events_mod.fires_of(events)
        if self._fires is None:  # decided by the first frames appended
            self._fires = fires is not None
        if self._fires and fires is None:
            raise TraceError(f"append: trace {self.path} records fires maps, but these events "
                             "carry none (pass the EventMaps run_stream returns, or open the "
                             "writer with fires=False)")
        ts = set()
        for layer, g in zip(self._layers, self._geoms, strict=True):
            if g.name not in events:
                raise TraceError(f"append: no events for layer {g.name!r}")
            ev = _to_nhwc(layer, g, events[g.name])
            if ev.size and int(ev.max()) > 3:
                raise TraceError(f"layer {g.name!r}: event codes must be 0..3")
            self._buffer[g.name].append(ev)
            if self._fires:
                fm = _to_nhwc(layer, g, np.asarray(fires[g.name]).astype(np.uint8))
                if fm.shape != ev.shape:
                    raise TraceError(f"layer {g.name!r}: fires map of shape {fm.shape} does "
                                     f"not match its codes {ev.shape}")
                self._fire_buffer[g.name].append(fm)
            ts.add(ev.shape[0])
        if len(ts) != 1:
            raise TraceError(f"append: layers have different frame counts {sorted(ts)}")
        return ts.pop()

    def _flush(self, n: int) -> None:
        if self.chunks and self.chunks[-1].n_frames < self.header["chunk_frames"]:
            raise TraceError(f"trace {self.path}: cannot append after a final short chunk")
        part: dict[str, np.ndarray] = {}
        fire_part: dict[str, np.ndarray] = {}
        for buffer, out in ((self._buffer, part), (self._fire_buffer, fire_part)):
            for name, bufs in buffer.items():
                if not bufs:
                    continue
                allf = np.concatenate(bufs, axis=0) if len(bufs) > 1 else bufs[0]
                out[name] = allf[:n]
                buffer[name] = [allf[n:]] if allf.shape[0] > n else []
        self._buffered -= n
        self._write_chunk(part, fire_part if self._fires else None)

    def _write_chunk(self, part: Mapping[str, np.ndarray],
                     fires: Mapping[str, np.ndarray] | None) -> ChunkRecord:
        k = len(self.chunks)
        ev_name, sm_name, rec_name = chunk_names(k)
        blobs, layers, summaries = [], [], []
        offset = 0
        for g in self._geoms:
            codes = part[g.name]
            blob = compress(pack_codes(codes), self.header["codec"])
            blobs.append(blob)
            layers.append({"offset": offset, "nbytes": len(blob), "n_codes": int(codes.size)})
            offset += len(blob)
            summaries.append(_summary(codes, g))
        if fires is not None:  # version 2: the fires blobs follow all layers' codes
            for g, rec in zip(self._geoms, layers, strict=True):
                blob = compress(pack_fires(fires[g.name], part[g.name]), self.header["codec"])
                blobs.append(blob)
                rec.update(fires_offset=offset, fires_nbytes=len(blob))
                offset += len(blob)
        n = next(iter(part.values())).shape[0]
        data = b"".join(blobs)
        table = np.stack(summaries, axis=1)  # [T, L, N, 6]
        buf = io.BytesIO()
        np.save(buf, table.astype("<i8"), allow_pickle=False)
        sdata = buf.getvalue()
        rec = ChunkRecord(index=k, frame_start=self.frames_done, n_frames=int(n),
                          events={"file": ev_name, "sha256": sha256(data), "nbytes": len(data)},
                          summary={"file": sm_name, "sha256": sha256(sdata),
                                   "nbytes": len(sdata)},
                          layers=tuple(layers))
        _write(self.path / ev_name, data)
        _write(self.path / sm_name, sdata)
        _write(self.path / rec_name, _json_file(rec.as_dict()))  # the chunk is done
        self.chunks.append(rec)
        return rec

    def close(self) -> Path:
        """Writes any buffered frames as a last (short) chunk, then the manifest.

        Returns:
          The manifest path.
        """
        self._check_open()
        if self._buffered:
            self._flush(self._buffered)
        neurons = sum(layer["n_codes"] for c in self.chunks for layer in c.layers)
        nbytes = sum(c.events["nbytes"] for c in self.chunks)
        manifest = {**self.header, "fires": bool(self._fires), "n_frames": self.frames_done,
                    "chunks": [c.as_dict() for c in self.chunks],
                    "stats": {"neuron_events": neurons, "event_bytes": nbytes,
                              "bytes_per_neuron_event": nbytes / neurons if neurons else 0.0}}
        # Round-trip through JSON first so the checksum covers exactly what readers parse.
        manifest = json.loads(_json_file(manifest))
        manifest[CHECKSUM_FIELD] = manifest_checksum(manifest)
        _write(self.path / MANIFEST_FILE, _json_file(manifest))
        self._closed = True
        return self.path / MANIFEST_FILE

    def _check_open(self) -> None:
        if self._closed:
            raise TraceError(f"trace {self.path} is closed")

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and not self._closed:
            self.close()


def _op_records(ops: Sequence[NetOp | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``ops`` as validated JSON records (dicts go through :meth:`NetOp.from_dict`)."""
    out = []
    for i, op in enumerate(ops):
        try:
            rec = op if isinstance(op, NetOp) else NetOp.from_dict(op)
        except (ValueError, TypeError, KeyError) as e:
            raise TraceError(f"ops[{i}] is not a NetOp record: {e}") from e
        out.append(rec.as_dict())
    return out


def _remove_run(path: Path) -> None:
    for p in (path / CHUNKS_DIR).glob("*") if (path / CHUNKS_DIR).exists() else ():
        p.unlink()
    for name in (MANIFEST_FILE, HEADER_FILE):
        if (path / name).exists():
            (path / name).unlink()


def write_trace(path: str | Path, layers: Sequence[Any], events: Mapping[str, Any], *,
                ops: Sequence[NetOp | Mapping[str, Any]] | None = None, **kwargs: Any) -> Path:
    """Writes a whole trace from in-memory events; returns the manifest path.

    ``events`` from :func:`secnn_jax.run_stream` (an :class:`secnn_jax.events.EventMaps`)
    write their fires maps too; a plain dict of codes writes none.

    Resumes a partial run at ``path`` (frames already written are skipped). ``ops`` (the
    model's :func:`secnn_jax.netops.find_ops`) and ``kwargs`` go to :class:`TraceWriter`.
    """
    w = TraceWriter(path, layers, ops=ops, **kwargs)
    done = w.frames_done
    if isinstance(events, events_mod.EventMaps):
        rest: Mapping[str, Any] = events.map(lambda v: np.asarray(v)[done:])
    else:
        rest = {k: np.asarray(v)[done:] for k, v in events.items()}
    if any(np.shape(v)[0] for v in rest.values()):
        w.append(rest)
    return w.close()
