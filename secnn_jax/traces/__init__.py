"""Neuron-level event traces on disk: versioned, chunked, checksummed, crash-safe, resumable.

A trace is one directory per run (format documented in ``traces/README.md``)::

    <run>/header.json                 run description, written first (atomically)
    <run>/chunks/events_000000.bin    2-bit packed, compressed event codes of every layer
    <run>/chunks/summary_000000.npy   per-frame, per-layer, per-sample summary table
    <run>/chunks/chunk_000000.json    the chunk's record: frames, layer offsets, sha256s
    <run>/manifest.json               written last: header + frame count + every chunk record

Every file is written to a temporary name, flushed, fsynced and renamed into place
(``os.replace``), data before records and the manifest last, so a run killed at any point leaves
either a finished chunk or nothing that looks like one; a failed write (``ENOSPC``, any
``OSError``) removes its temporary file and raises :class:`TraceError` naming the file.
:class:`TraceWriter` opened on an existing partial run verifies the finished chunks and reports
them (:attr:`~TraceWriter.frames_done`) so the caller resumes after the last one; the same
inputs give byte-identical files.
:func:`read_trace` checks the manifest's own sha256 (``checksum``: of its canonical JSON without
that field), its structure (``n_frames`` equal to the chunks' frames, contiguous chunk frame
ranges, per-layer code counts), and that every file named by it exists with its recorded size;
every chunk read is verified against its sha256; failures raise :class:`TraceError` naming the
file and the chunk or field. A manifest from before the checksum is read with a warning.

The header may carry the model's non-linear kernels (``ops``: :class:`secnn_jax.netops.NetOp`
records from :func:`secnn_jax.netops.find_ops`), read back as :attr:`Trace.ops`.

Event maps are stored in NHWC order (``Layer.to_nhwc``), codes ZZ=0, ZN=1, VH=2, VM=3, four per
byte (first neuron in the low bits), per layer and chunk, then compressed (``zlib`` by default).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import lzma
import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from secnn_jax import fileio, workmaps
from secnn_jax.errors import SecnnError
from secnn_jax.geometry import LayerGeom, events_to_nhwc
from secnn_jax.netops import NetOp

#: Trace format identifier and version (bump on any incompatible change).
FORMAT = "secnn_jax.trace"
VERSION = 1
#: Columns of the summary table's last axis.
SUMMARY_COLUMNS: tuple[str, ...] = ("ZZ", "ZN", "VH", "VM", "parallel_macs", "serial_macs")
CODECS: tuple[str, ...] = ("zlib", "lzma", "none")

_HEADER = "header.json"
_MANIFEST = "manifest.json"
_CHUNKS = "chunks"
#: Manifest field holding the sha256 of the manifest's canonical JSON without this field.
CHECKSUM_FIELD = "checksum"
#: Op fields that count elements of the traced batch (a merge of stream shards scales them).
_BATCH_FIELDS = ("reads", "writes", "flops", "extra_reads")


class TraceError(SecnnError, ValueError):
    """A trace is incomplete, corrupted, or does not match what the writer was opened with.

    Also raised, naming the file, when the trace cannot be written (disk full, any OS error).
    """


# --- packing --------------------------------------------------------------------------------

def pack_codes(codes: np.ndarray) -> bytes:
    """Packs uint8 codes (0..3) four per byte, first code in the low bits (C order)."""
    flat = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1)
    if flat.size and int(flat.max()) > 3:
        raise ValueError(f"event codes must be in 0..3, found {int(flat.max())}")
    pad = (-flat.size) % 4
    if pad:
        flat = np.concatenate([flat, np.zeros(pad, np.uint8)])
    q = flat.reshape(-1, 4)
    return (q[:, 0] | (q[:, 1] << 2) | (q[:, 2] << 4) | (q[:, 3] << 6)).astype(np.uint8).tobytes()


def unpack_codes(data: bytes, n: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: the first ``n`` codes as uint8."""
    b = np.frombuffer(data, np.uint8)
    if b.size * 4 < n:
        raise ValueError(f"packed data holds {b.size * 4} codes, {n} expected")
    out = np.empty((b.size, 4), np.uint8)
    for i in range(4):  # four bit fields per byte
        out[:, i] = (b >> (2 * i)) & 3
    return out.reshape(-1)[:n]


def _compress(data: bytes, codec: str) -> bytes:
    if codec == "zlib":
        return zlib.compress(data, 6)
    if codec == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_XZ, preset=6)
    if codec == "none":
        return data
    raise ValueError(f"unknown codec {codec!r}; known: {CODECS}")


def _decompress(data: bytes, codec: str) -> bytes:
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "lzma":
        return lzma.decompress(data)
    return data


# --- files ----------------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (:func:`secnn_jax.fileio.atomic_write`: temporary
    file, fsync, ``os.replace``, no temporary left behind on failure); a failed write is a
    :class:`TraceError` naming ``path`` and the OS error."""
    try:
        fileio.atomic_write(path, data)
    except fileio.FileWriteError as e:
        raise TraceError(str(e)) from e.__cause__


def manifest_checksum(manifest: Mapping[str, Any]) -> str:
    """sha256 of ``manifest``'s canonical JSON (keys sorted, compact) without ``checksum``."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _sha256(text.encode())


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1) + "\n").encode()


def _code_version() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version("secnn_jax")
    except Exception:  # noqa: BLE001 (not installed: a source checkout)
        return "unknown"


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if x is None or isinstance(x, bool | int | float | str):
        return x
    return str(x)


def layer_record(layer: Any) -> dict[str, Any]:
    """The manifest's description of one layer (a ``Layer``, :class:`LayerGeom` or dict)."""
    if isinstance(layer, Mapping) and "geom" in layer:
        return _jsonable(dict(layer))
    geom = LayerGeom.from_layer(layer)
    rec: dict[str, Any] = {"name": geom.name, "kind": geom.kind, "geom": geom.as_dict(),
                           "in_nhwc": list(geom.in_nhwc)}
    for f in ("index", "in_shape", "out_shape", "kernel_shape", "strides", "padding",
              "dilation", "groups", "macs"):
        if hasattr(layer, f):
            rec[f] = _jsonable(getattr(layer, f))
    rec.setdefault("macs", geom.macs)
    return rec


def _to_nhwc(layer: Any, geom: LayerGeom, ev: Any) -> np.ndarray:
    try:
        return events_to_nhwc(layer, geom, ev)
    except ValueError as e:
        raise TraceError(str(e)) from e


# --- writer ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ChunkRecord:
    """One finished chunk (as in ``chunks/chunk_NNNNNN.json`` and the manifest).

    Attributes:
      index: chunk number.
      frame_start: first frame.
      n_frames: frames in the chunk.
      events: ``{"file", "sha256", "nbytes"}`` of the event data.
      summary: ``{"file", "sha256", "nbytes"}`` of the summary table.
      layers: per layer ``{"offset", "nbytes", "n_codes"}`` inside the event file.
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


def _chunk_names(k: int) -> tuple[str, str, str]:
    return (f"{_CHUNKS}/events_{k:06d}.bin", f"{_CHUNKS}/summary_{k:06d}.npy",
            f"{_CHUNKS}/chunk_{k:06d}.json")


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
                 ops: Sequence[NetOp | Mapping[str, Any]] | None = None) -> None:
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

        Raises:
          TraceError: ``path`` holds a complete trace (and not ``overwrite``), or a partial
            run whose header differs (names the differing fields), or a damaged chunk.
        """
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; known: {CODECS}")
        self.path = Path(path)
        self._layers = list(layers)
        self._geoms = [LayerGeom.from_layer(x) for x in self._layers]
        names = [g.name for g in self._geoms]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        self.header: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "code_version": _code_version(),
            "model": str(model), "stream": _jsonable(stream), "predictor": _jsonable(predictor),
            "tau": _jsonable(tau), "chunk_frames": int(chunk_frames), "codec": codec,
            "events_layout": "NHWC", "summary_columns": list(SUMMARY_COLUMNS),
            "layers": [layer_record(x) for x in self._layers], "meta": _jsonable(meta or {}),
        }
        if ops is not None:
            self.header["ops"] = _op_records(ops)
        self.chunks: list[ChunkRecord] = []
        self._buffer: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self._buffered = 0
        self._closed = False
        if (self.path / _MANIFEST).exists():
            if not overwrite:
                raise TraceError(f"trace {self.path} is already complete (manifest.json exists);"
                                 " pass overwrite=True to replace it")
            _remove_run(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / _CHUNKS).mkdir(exist_ok=True)
        hp = self.path / _HEADER
        if hp.exists():
            self._resume(json.loads(hp.read_text()))
        else:
            atomic_write(hp, _json_bytes(self.header))

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
            ev, sm, rec = _chunk_names(k)
            rp = self.path / rec
            if not rp.exists():
                break
            r = ChunkRecord.from_dict(json.loads(rp.read_text()))
            ok = all((self.path / f["file"]).exists()
                     and _sha256((self.path / f["file"]).read_bytes()) == f["sha256"]
                     for f in (r.events, r.summary))
            if not ok or r.index != k or r.frame_start != self.frames_done:
                break  # a damaged trailing chunk is rewritten
            self.chunks.append(r)
            k += 1
        logging.info("trace %s: resuming after %d finished chunk(s) (%d frames)", self.path,
                     len(self.chunks), self.frames_done)
        # Drop whatever follows the last good chunk (it will be rewritten identically).
        for p in sorted((self.path / _CHUNKS).glob("*")):
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
        ts = set()
        for layer, g in zip(self._layers, self._geoms, strict=True):
            if g.name not in events:
                raise TraceError(f"append: no events for layer {g.name!r}")
            ev = _to_nhwc(layer, g, events[g.name])
            if ev.size and int(ev.max()) > 3:
                raise TraceError(f"layer {g.name!r}: event codes must be 0..3")
            self._buffer[g.name].append(ev)
            ts.add(ev.shape[0])
        if len(ts) != 1:
            raise TraceError(f"append: layers have different frame counts {sorted(ts)}")
        return ts.pop()

    def _flush(self, n: int) -> None:
        if self.chunks and self.chunks[-1].n_frames < self.header["chunk_frames"]:
            raise TraceError(f"trace {self.path}: cannot append after a final short chunk")
        part: dict[str, np.ndarray] = {}
        for name, bufs in self._buffer.items():
            allf = np.concatenate(bufs, axis=0) if len(bufs) > 1 else bufs[0]
            part[name] = allf[:n]
            self._buffer[name] = [allf[n:]] if allf.shape[0] > n else []
        self._buffered -= n
        self._write_chunk(part)

    def _write_chunk(self, part: Mapping[str, np.ndarray]) -> ChunkRecord:
        k = len(self.chunks)
        ev_name, sm_name, rec_name = _chunk_names(k)
        blobs, layers, summaries = [], [], []
        offset = 0
        for g in self._geoms:
            codes = part[g.name]
            blob = _compress(pack_codes(codes), self.header["codec"])
            blobs.append(blob)
            layers.append({"offset": offset, "nbytes": len(blob), "n_codes": int(codes.size)})
            offset += len(blob)
            summaries.append(_summary(codes, g))
        n = next(iter(part.values())).shape[0]
        data = b"".join(blobs)
        table = np.stack(summaries, axis=1)  # [T, L, N, 6]
        buf = io.BytesIO()
        np.save(buf, table.astype("<i8"), allow_pickle=False)
        sdata = buf.getvalue()
        rec = ChunkRecord(index=k, frame_start=self.frames_done, n_frames=int(n),
                          events={"file": ev_name, "sha256": _sha256(data), "nbytes": len(data)},
                          summary={"file": sm_name, "sha256": _sha256(sdata),
                                   "nbytes": len(sdata)},
                          layers=tuple(layers))
        atomic_write(self.path / ev_name, data)
        atomic_write(self.path / sm_name, sdata)
        atomic_write(self.path / rec_name, _json_bytes(rec.as_dict()))  # the chunk is done
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
        manifest = {**self.header, "n_frames": self.frames_done,
                    "chunks": [c.as_dict() for c in self.chunks],
                    "stats": {"neuron_events": neurons, "event_bytes": nbytes,
                              "bytes_per_neuron_event": nbytes / neurons if neurons else 0.0}}
        # Round-trip through JSON first so the checksum covers exactly what readers parse.
        manifest = json.loads(_json_bytes(manifest))
        manifest[CHECKSUM_FIELD] = manifest_checksum(manifest)
        atomic_write(self.path / _MANIFEST, _json_bytes(manifest))
        self._closed = True
        return self.path / _MANIFEST

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


def _summary(codes: np.ndarray, geom: LayerGeom) -> np.ndarray:
    """``[T, N, 6]`` int64: code counts and the exact parallel/serial MACs per sample."""
    flat = codes.reshape(codes.shape[0], codes.shape[1], -1)
    counts = np.stack([(flat == c).sum(-1, dtype=np.int64) for c in range(4)], axis=-1)
    par, ser = workmaps.phase_macs(codes, geom)
    return np.concatenate([counts, par[..., None], ser[..., None]], axis=-1)


def _remove_run(path: Path) -> None:
    for p in (path / _CHUNKS).glob("*") if (path / _CHUNKS).exists() else ():
        p.unlink()
    for name in (_MANIFEST, _HEADER):
        if (path / name).exists():
            (path / name).unlink()


def write_trace(path: str | Path, layers: Sequence[Any], events: Mapping[str, Any], *,
                ops: Sequence[NetOp | Mapping[str, Any]] | None = None, **kwargs: Any) -> Path:
    """Writes a whole trace from in-memory events; returns the manifest path.

    Resumes a partial run at ``path`` (frames already written are skipped). ``ops`` (the
    model's :func:`secnn_jax.netops.find_ops`) and ``kwargs`` go to :class:`TraceWriter`.
    """
    w = TraceWriter(path, layers, ops=ops, **kwargs)
    done = w.frames_done
    rest = {k: np.asarray(v)[done:] for k, v in events.items()}
    if any(v.shape[0] for v in rest.values()):
        w.append(rest)
    return w.close()


# --- reader ---------------------------------------------------------------------------------

class Trace:
    """A complete trace opened for reading (see :func:`read_trace`).

    Attributes:
      path: run directory.
      manifest: the parsed manifest.
      layers: layer records (``name``, ``kind``, ``geom``, shapes...).
      chunks: chunk records.
      n_frames: frames in the trace.
    """

    def __init__(self, path: str | Path) -> None:
        """Opens ``path``; checks the manifest (checksum, structure) and that every data file
        exists with its size."""
        self.path = Path(path)
        mp = self.path / _MANIFEST
        if not mp.exists():
            if (self.path / _HEADER).exists():
                done = len(list((self.path / _CHUNKS).glob("chunk_*.json")))
                raise TraceError(f"trace {self.path} is incomplete: no manifest.json ({done} "
                                 "chunk(s) finished); resume the writer to complete it")
            raise TraceError(f"no trace at {self.path}: manifest.json not found")
        try:
            self.manifest = json.loads(mp.read_text())
        except json.JSONDecodeError as e:
            raise TraceError(f"trace {self.path}: manifest.json is corrupted ({e})") from e
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            raise TraceError(f"trace {self.path}: not a {FORMAT} manifest")
        if int(self.manifest.get("version", -1)) > VERSION:
            raise TraceError(f"trace {self.path}: format version {self.manifest['version']} is "
                             f"newer than this reader's ({VERSION})")
        self._check_checksum()
        try:
            self.layers: list[dict[str, Any]] = self.manifest["layers"]
            self.chunks = [ChunkRecord.from_dict(c) for c in self.manifest["chunks"]]
            self.n_frames = int(self.manifest["n_frames"])
            self._geoms = [LayerGeom.from_dict(layer["geom"]) for layer in self.layers]
            self._index = {layer["name"]: i for i, layer in enumerate(self.layers)}
        except (KeyError, TypeError, ValueError) as e:
            raise TraceError(f"trace {self.path}: manifest.json is malformed (field {e})") from e
        self._check_structure()
        for c in self.chunks:
            for f in (c.events, c.summary):
                p = self.path / f["file"]
                if not p.exists():
                    raise TraceError(f"trace {self.path}: chunk {c.index} is missing "
                                     f"({f['file']} not found)")
                size = p.stat().st_size
                if size != f["nbytes"]:
                    raise TraceError(f"trace {self.path}: chunk {c.index} is truncated or "
                                     f"corrupted ({f['file']}: {size} bytes, expected "
                                     f"{f['nbytes']})")

    def _fail(self, field: str, what: str) -> TraceError:
        return TraceError(f"trace {self.path}: manifest.json field {field}: {what}")

    def _check_checksum(self) -> None:
        recorded = self.manifest.get(CHECKSUM_FIELD)
        if recorded is None:
            if getattr(self, "_warned_unsealed", False):
                return  # verify() re-checks; one warning per opened trace is enough
            self._warned_unsealed = True
            logging.warning("trace %s: manifest.json has no %s (written before manifests were "
                            "checksummed); its fields cannot be checked for edits", self.path,
                            CHECKSUM_FIELD)
            return
        actual = manifest_checksum(self.manifest)
        if recorded != actual:
            raise self._fail(CHECKSUM_FIELD, f"sha256 mismatch (recorded {recorded}, computed "
                             f"{actual}): the manifest is corrupted or was edited")

    def _check_structure(self) -> None:
        """The manifest agrees with itself: frame counts, chunk ranges, per-layer code counts."""
        start = 0
        for k, c in enumerate(self.chunks):
            field = f"chunks[{k}]"
            if c.index != k:
                raise self._fail(f"{field}.index", f"is {c.index}, expected {k}")
            if c.frame_start != start:
                raise self._fail(f"{field}.frame_start", f"is {c.frame_start}, expected {start} "
                                 "(chunk frame ranges must be contiguous)")
            if c.n_frames < 1:
                raise self._fail(f"{field}.n_frames", f"is {c.n_frames}, expected >= 1")
            if len(c.layers) != len(self.layers):
                raise self._fail(f"{field}.layers", f"has {len(c.layers)} entries for "
                                 f"{len(self.layers)} layers")
            for rec, g in zip(c.layers, self._geoms, strict=True):
                want = c.n_frames * math.prod(g.in_nhwc)
                if int(rec["n_codes"]) != want:
                    raise self._fail(f"{field}.layers[{g.name!r}].n_codes",
                                     f"is {rec['n_codes']}, but {c.n_frames} frames of "
                                     f"{tuple(g.in_nhwc)} hold {want}")
                if int(rec["offset"]) + int(rec["nbytes"]) > int(c.events["nbytes"]):
                    raise self._fail(f"{field}.layers[{g.name!r}]", "extends past the end of "
                                     f"{c.events['file']}")
            start += c.n_frames
        if self.n_frames != start:
            raise self._fail("n_frames", f"is {self.n_frames}, but the chunk records hold "
                             f"{start} frames")

    @property
    def ops(self) -> tuple[NetOp, ...] | None:
        """The model's non-linear kernels stored by the writer, or None if none were given."""
        records = self.manifest.get("ops")
        if records is None:
            return None
        try:
            return tuple(NetOp.from_dict(r) for r in records)
        except (ValueError, TypeError, KeyError) as e:
            raise self._fail("ops", f"not NetOp records ({e})") from e

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Layer names in execution order."""
        return tuple(layer["name"] for layer in self.layers)

    @property
    def geoms(self) -> tuple[LayerGeom, ...]:
        """Layer geometries in execution order."""
        return tuple(self._geoms)

    def _read(self, c: ChunkRecord, which: str) -> bytes:
        f = c.events if which == "events" else c.summary
        p = self.path / f["file"]
        try:
            data = p.read_bytes()
        except FileNotFoundError as e:
            raise TraceError(f"trace {self.path}: chunk {c.index} is missing "
                             f"({f['file']} not found)") from e
        if len(data) != f["nbytes"] or _sha256(data) != f["sha256"]:
            raise TraceError(f"trace {self.path}: chunk {c.index} is corrupted ({f['file']}: "
                             "sha256 mismatch)")
        return data

    def chunk_events(self, k: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Event codes of chunk ``k``: ``{name: uint8 [n, N, H, W, C]}`` (NHWC)."""
        c = self.chunks[k]
        data = self._read(c, "events")
        out = {}
        for i in (self._index[n] for n in names) if names else range(len(self.layers)):
            rec, g = c.layers[i], self._geoms[i]
            blob = data[rec["offset"]: rec["offset"] + rec["nbytes"]]
            try:
                raw = _decompress(blob, self.manifest["codec"])
            except (zlib.error, lzma.LZMAError) as e:
                raise TraceError(f"trace {self.path}: chunk {c.index} is corrupted "
                                 f"({c.events['file']}, layer {g.name!r}: {e})") from e
            out[g.name] = unpack_codes(raw, rec["n_codes"]).reshape((c.n_frames, *g.in_nhwc))
        return out

    def events(self, name: str, frames: Any = None) -> np.ndarray:
        """Event codes of layer ``name`` for ``frames`` (default all): ``[T, N, H, W, C]``."""
        if name not in self._index:
            raise KeyError(f"no layer {name!r} in trace {self.path}")
        idx = frame_indices(frames, self.n_frames)
        parts = [ev[name] for _, ev in self.iter_frames(idx, names=[name])]
        g = self._geoms[self._index[name]]
        return np.concatenate(parts) if parts else np.zeros((0, *g.in_nhwc), np.uint8)

    def iter_frames(self, frames: Any = None, names: Sequence[str] | None = None
                    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Yields ``(frame indices, {name: NHWC codes})`` chunk by chunk for ``frames``."""
        idx = frame_indices(frames, self.n_frames)
        for k, c in enumerate(self.chunks):
            sel = idx[(idx >= c.frame_start) & (idx < c.frame_start + c.n_frames)]
            if sel.size == 0:
                continue
            ev = self.chunk_events(k, names)
            local = sel - c.frame_start
            yield sel, {n: a[local] for n, a in ev.items()}

    def summary(self) -> np.ndarray:
        """The summary table ``[T, L, N, 6]`` int64 (columns :data:`SUMMARY_COLUMNS`)."""
        parts = []
        for c in self.chunks:
            data = self._read(c, "summary")
            parts.append(np.load(io.BytesIO(data), allow_pickle=False))
        return np.concatenate(parts, axis=0)

    def verify(self) -> None:
        """Checks the manifest and every file of the trace (raises :class:`TraceError`).

        The manifest's checksum and structure (already checked on open, again here), that every
        chunk record file ``chunks/chunk_NNNNNN.json`` matches the manifest's copy, and every
        data file against its sha256.
        """
        self._check_checksum()
        self._check_structure()
        for c in self.chunks:
            name = _chunk_names(c.index)[2]
            try:
                on_disk = ChunkRecord.from_dict(json.loads((self.path / name).read_text()))
            except FileNotFoundError as e:
                raise TraceError(f"trace {self.path}: chunk {c.index} is missing ({name} not "
                                 "found)") from e
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise TraceError(f"trace {self.path}: chunk {c.index} is corrupted ({name}: "
                                 f"{e})") from e
            if on_disk != c:
                fields = [f.name for f in dataclasses.fields(ChunkRecord)
                          if getattr(on_disk, f.name) != getattr(c, f.name)]
                raise TraceError(f"trace {self.path}: chunk {c.index}: {name} and manifest.json "
                                 f"differ in field(s) {', '.join(fields)}")
            self._read(c, "events")
            self._read(c, "summary")

    @property
    def bytes_per_neuron_event(self) -> float:
        """Event data bytes per stored neuron event (code)."""
        return float(self.manifest["stats"]["bytes_per_neuron_event"])


def frame_indices(frames: Any, n: int) -> np.ndarray:
    """Frame selection -> indices: ``None`` (all), an int (the first k), a slice, or indices.

    Raises ``IndexError`` for explicit indices outside ``[0, n)``.
    """
    if frames is None:
        return np.arange(n)
    if isinstance(frames, int):
        return np.arange(min(frames, n))
    if isinstance(frames, slice):
        return np.arange(n)[frames]
    idx = np.asarray(list(frames), np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"frame indices out of range [0, {n})")
    return idx


def read_trace(path: str | Path, verify: bool = False) -> Trace:
    """Opens the trace at ``path`` (and checks every checksum if ``verify``)."""
    t = Trace(path)
    if verify:
        t.verify()
    return t


# --- multi-process shards -------------------------------------------------------------------

def _merged_layer_record(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One layer's record for the union of shards that split the stream (batch) axis."""
    first = dict(records[0])
    n = sum(int(r["geom"]["n"]) for r in records)
    geom = {**first["geom"], "n": n}
    out = {**first, "geom": geom, "in_nhwc": [n, *first["in_nhwc"][1:]]}
    for key in ("in_shape", "out_shape"):
        if key in first:  # batch first in every layout the zoo and core produce
            out[key] = [n, *first[key][1:]]
    if "macs" in first:
        out["macs"] = sum(int(r["macs"]) for r in records)
    return out


def merge_shards(shards: Sequence[str | Path], out: str | Path, *, chunk_frames: int | None = None,
                 codec: str | None = None, overwrite: bool = False) -> Path:
    """Merges traces that split one run's streams (one per process) into a single trace.

    Each shard holds the same frames of a disjoint block of streams (``distributed.
    process_streams``); shards are given in process order and concatenated along the stream
    axis. The merged manifest records the shards (path, n streams, sha256 of their manifests).
    Every shard is verified first; mismatched layers, frame counts, run descriptions or ``ops``
    raise :class:`TraceError` naming the shard. The shards' ``ops`` (identical, each counted for
    one shard's batch) are carried with their batch-proportional counts (``reads``, ``writes``,
    ``flops``, ``extra_reads``) multiplied by the number of shards, so the merged trace records
    what ``find_ops`` gives for the merged batch, as one process writing it would; this needs
    shards of equal size. Written through :class:`TraceWriter`, so the merge is
    itself atomic per chunk and resumable.

    Returns:
      The merged manifest path.
    """
    if not shards:
        raise TraceError("merge_shards: no shards given")
    traces = [read_trace(p, verify=True) for p in shards]
    ref = traces[0]
    for t in traces[1:]:
        if t.layer_names != ref.layer_names:
            raise TraceError(f"shard {t.path}: layers differ from shard {ref.path}")
        if t.n_frames != ref.n_frames:
            raise TraceError(f"shard {t.path}: {t.n_frames} frames, shard {ref.path} has "
                             f"{ref.n_frames}")
        for key in ("model", "stream", "predictor", "tau", "chunk_frames", "ops"):
            if t.manifest.get(key) != ref.manifest.get(key):
                raise TraceError(f"shard {t.path}: {key} differs from shard {ref.path}")
        for a, b in zip(t.geoms, ref.geoms, strict=True):
            if dataclasses.replace(a, n=1) != dataclasses.replace(b, n=1):
                raise TraceError(f"shard {t.path}: layer {a.name!r} geometry differs")
    layers = [_merged_layer_record([t.layers[i] for t in traces])
              for i in range(len(ref.layers))]
    ops = ref.manifest.get("ops")
    if ops is not None:
        for t in traces[1:]:
            if t.geoms[0].n != ref.geoms[0].n:
                raise TraceError(f"shard {t.path}: {t.geoms[0].n} streams, shard {ref.path} has "
                                 f"{ref.geoms[0].n}; ops counted per shard batch merge only "
                                 "from equal shards")
        ops = [{**r, **{f: int(r[f]) * len(traces) for f in _BATCH_FIELDS}} for r in ops]
    meta = {**ref.manifest.get("meta", {}), "shards": [
        {"path": str(t.path), "streams": t.geoms[0].n,
         "manifest_sha256": _sha256((t.path / _MANIFEST).read_bytes())} for t in traces]}
    writer = TraceWriter(out, layers, model=ref.manifest.get("model", ""),
                         stream=ref.manifest.get("stream"),
                         predictor=ref.manifest.get("predictor"), tau=ref.manifest.get("tau"),
                         chunk_frames=chunk_frames or int(ref.manifest["chunk_frames"]),
                         codec=codec or ref.manifest["codec"], meta=meta, overwrite=overwrite,
                         ops=ops)
    done = writer.frames_done
    iters = [t.iter_frames(np.arange(done, ref.n_frames)) for t in traces]
    for parts in zip(*iters, strict=True):
        writer.append({name: np.concatenate([ev[name] for _, ev in parts], axis=1)
                       for name in ref.layer_names})
    return writer.close()
