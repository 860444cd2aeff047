"""Reading traces: :func:`read_trace` opens a run directory as a :class:`Trace`.

Opening checks the manifest's own sha256 (``checksum``: of its canonical JSON without that
field), its structure (``n_frames`` equal to the chunks' frames, contiguous chunk frame ranges,
per-layer code counts), and that every file named by it exists with its recorded size; every
chunk read is verified against its sha256; failures raise
:class:`~secnn_jax.traces.codec.TraceError` naming the file and the chunk or field. A manifest from
before the checksum is read with a warning. Event maps come back as uint8 codes in NHWC order,
as :class:`secnn_jax.events.EventMaps` carrying the fires maps where the trace records them
(format version 2; a version-1 trace is read as lacking them: :attr:`Trace.has_fires`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import lzma
import math
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from secnn_jax import events as events_mod
from secnn_jax.geometry import LayerGeom
from secnn_jax.netops import NetOp
from secnn_jax.traces.codec import (
    CHECKSUM_FIELD,
    CHUNKS_DIR,
    FORMAT,
    HEADER_FILE,
    MANIFEST_FILE,
    VERSION,
    TraceError,
    UnknownLayerError,
    chunk_names,
    decompress,
    manifest_checksum,
    sha256,
    unpack_codes,
    unpack_fires,
)
from secnn_jax.traces.writer import ChunkRecord

__all__ = ["Trace", "frame_indices", "read_trace"]


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
        mp = self.path / MANIFEST_FILE
        if not mp.exists():
            if (self.path / HEADER_FILE).exists():
                done = len(list((self.path / CHUNKS_DIR).glob("chunk_*.json")))
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
        if not self.has_fires:
            logging.info("trace %s (format version %s) records no fires maps: a zero-skipping "
                         "scheme replayed from it depends on its predictor", self.path,
                         self.manifest.get("version"))
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
                ends = [int(rec["offset"]) + int(rec["nbytes"])]
                if self.has_fires:
                    if "fires_offset" not in rec:
                        raise self._fail(f"{field}.layers[{g.name!r}]", "has no fires_offset, "
                                         "but the trace records fires maps")
                    ends.append(int(rec["fires_offset"]) + int(rec["fires_nbytes"]))
                if max(ends) > int(c.events["nbytes"]):
                    raise self._fail(f"{field}.layers[{g.name!r}]", "extends past the end of "
                                     f"{c.events['file']}")
            start += c.n_frames
        if self.n_frames != start:
            raise self._fail("n_frames", f"is {self.n_frames}, but the chunk records hold "
                             f"{start} frames")

    @property
    def has_fires(self) -> bool:
        """Whether the trace records each layer's fires maps (format version 2 written from
        events that carried them); ``False`` for version-1 traces."""
        return bool(self.manifest.get("fires", False))

    @property
    def predictor_name(self) -> str | None:
        """The built-in predictor the manifest's ``predictor`` description names, if any."""
        return events_mod.predictor_name(self.manifest.get("predictor"))

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
        if len(data) != f["nbytes"] or sha256(data) != f["sha256"]:
            raise TraceError(f"trace {self.path}: chunk {c.index} is corrupted ({f['file']}: "
                             "sha256 mismatch)")
        return data

    def _blob(self, c: ChunkRecord, data: bytes, g: LayerGeom, offset: int, nbytes: int
              ) -> bytes:
        try:
            return decompress(data[offset: offset + nbytes], self.manifest["codec"])
        except (zlib.error, lzma.LZMAError) as e:
            raise TraceError(f"trace {self.path}: chunk {c.index} is corrupted "
                             f"({c.events['file']}, layer {g.name!r}: {e})") from e

    def chunk_events(self, k: int, names: Sequence[str] | None = None
                     ) -> events_mod.EventMaps:
        """Event codes of chunk ``k``: ``{name: uint8 [n, N, H, W, C]}`` (NHWC), as an
        :class:`secnn_jax.events.EventMaps` with the fires maps if the trace records them."""
        c = self.chunks[k]
        data = self._read(c, "events")
        out, fires = {}, {}
        for i in (self._index[n] for n in names) if names else range(len(self.layers)):
            rec, g = c.layers[i], self._geoms[i]
            raw = self._blob(c, data, g, int(rec["offset"]), int(rec["nbytes"]))
            codes = unpack_codes(raw, rec["n_codes"]).reshape((c.n_frames, *g.in_nhwc))
            out[g.name] = codes
            if self.has_fires:
                raw = self._blob(c, data, g, int(rec["fires_offset"]), int(rec["fires_nbytes"]))
                try:
                    fires[g.name] = unpack_fires(raw, codes)
                except ValueError as e:
                    raise TraceError(f"trace {self.path}: chunk {c.index} is corrupted "
                                     f"({c.events['file']}, layer {g.name!r}: {e})") from e
        return events_mod.EventMaps(out, fires if self.has_fires else None,
                                    self.predictor_name)

    def fires(self, name: str, frames: Any = None, *, layout: str = "nhwc") -> np.ndarray:
        """Fires map (bool) of layer ``name`` for ``frames`` (default all): ``[T, N, H, W, C]``
        (``layout="layer"``: ``[T, *in_shape]``, as for :meth:`events`).

        Raises:
          TraceError: the trace records no fires maps (format version 1).
        """
        if not self.has_fires:
            raise TraceError(f"trace {self.path} (format version "
                             f"{self.manifest.get('version')}) records no fires maps")
        self._check_layout(name, layout)
        idx = frame_indices(frames, self.n_frames)
        parts = [ev.fires[name] for _, ev in self.iter_frames(idx, names=[name])]
        g = self._geoms[self._index[name]]
        out = np.concatenate(parts) if parts else np.zeros((0, *g.in_nhwc), bool)
        return self._to_layout(name, out, layout)

    def events(self, name: str, frames: Any = None, *, layout: str = "nhwc") -> np.ndarray:
        """Event codes of layer ``name`` for ``frames`` (default all).

        Args:
          layout: ``"nhwc"`` (default): ``[T, N, H, W, C]`` as stored (a dense layer is
            ``[T, N, 1, M, F]``); ``"layer"``: ``[T, *in_shape]``, the layer's own layout, as
            ``run_stream`` returned them (a dense layer's ``(8, 1, 32)`` comes back
            ``(8, 1, 32)``).

        Raises:
          UnknownLayerError: no layer ``name``; TraceError: an unknown ``layout``, or
          ``"layer"`` for a layer written without its layout (from a ``LayerGeom`` or a
          record, or by an older writer).
        """
        self._check_layout(name, layout)
        idx = frame_indices(frames, self.n_frames)
        parts = [ev[name] for _, ev in self.iter_frames(idx, names=[name])]
        g = self._geoms[self._index[name]]
        out = np.concatenate(parts) if parts else np.zeros((0, *g.in_nhwc), np.uint8)
        return self._to_layout(name, out, layout)

    def _check_layout(self, name: str, layout: str) -> None:
        if name not in self._index:
            raise UnknownLayerError(f"no layer {name!r} in trace {self.path}")
        if layout not in ("nhwc", "layer"):
            raise TraceError(f"layout must be 'nhwc' or 'layer', got {layout!r}")
        rec = self.layers[self._index[name]]
        if layout == "layer" and ("in_shape" not in rec or "in_perm" not in rec):
            raise TraceError(f"trace {self.path}: layer {name!r} was written without its own "
                             "layout (in_shape, in_perm); read it with layout='nhwc'")

    def _to_layout(self, name: str, a: np.ndarray, layout: str) -> np.ndarray:
        """``a`` ``[T, N, H, W, C]`` in ``layout`` (the inverse of ``Layer.to_nhwc``)."""
        if layout == "nhwc":
            return a
        rec = self.layers[self._index[name]]
        shape, perm = tuple(rec["in_shape"]), tuple(rec["in_perm"])
        a = a.reshape((a.shape[0], *(shape[p] for p in perm)))
        return np.transpose(a, (0, *(1 + int(i) for i in np.argsort(perm))))

    def iter_frames(self, frames: Any = None, names: Sequence[str] | None = None
                    ) -> Iterator[tuple[np.ndarray, events_mod.EventMaps]]:
        """Yields ``(frame indices, {name: NHWC codes})`` chunk by chunk for ``frames`` (an
        :class:`secnn_jax.events.EventMaps`, with fires maps where recorded)."""
        idx = frame_indices(frames, self.n_frames)
        for k, c in enumerate(self.chunks):
            sel = idx[(idx >= c.frame_start) & (idx < c.frame_start + c.n_frames)]
            if sel.size == 0:
                continue
            ev = self.chunk_events(k, names)
            local = sel - c.frame_start
            yield sel, ev.map(lambda a, local=local: a[local])

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
            name = chunk_names(c.index)[2]
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

