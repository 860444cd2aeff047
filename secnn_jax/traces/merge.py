"""Merging the trace shards of a multi-process run into one trace (:func:`merge_shards`).

Each process of a distributed run (:func:`secnn_jax.distributed.process_streams`) traces the same
frames of its own block of streams; :func:`merge_shards` concatenates the shards along the
stream axis and writes the result through :class:`~secnn_jax.traces.writer.TraceWriter`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secnn_jax.events import EventMaps
from secnn_jax.traces.codec import MANIFEST_FILE, TraceError, sha256
from secnn_jax.traces.reader import read_trace
from secnn_jax.traces.writer import TraceWriter

__all__ = ["merge_shards"]

#: Op fields that count elements of the traced batch (a merge of stream shards scales them).
_BATCH_FIELDS = ("reads", "writes", "flops", "extra_reads")


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


def _check_distinct(traces: Sequence[Any]) -> None:
    """Refuses a shard given twice: the same directory, or a copy of one (the same manifest
    bytes: the same events of the same frames), which would merge into streams that repeat."""
    seen: dict[Any, Path] = {}
    for t in traces:
        path = Path(t.path)
        for key in (("path", path.resolve()),
                    ("sha", sha256((path / MANIFEST_FILE).read_bytes()))):
            if key in seen:
                raise TraceError(f"merge_shards: shard {str(path)!r} is shard "
                                 f"{str(seen[key])!r} given twice (same "
                                 f"{'directory' if key[0] == 'path' else 'manifest and events'})"
                                 "; each shard must hold its own block of streams")
            seen[key] = path


def merge_shards(shards: Sequence[str | Path], out: str | Path, *, chunk_frames: int | None = None,
                 codec: str | None = None, overwrite: bool = False) -> Path:
    """Merges traces that split one run's streams (one per process) into a single trace.

    Each shard holds the same frames of a disjoint block of streams (``distributed.
    process_streams``); shards are given in process order and concatenated along the stream
    axis. The merged manifest records the shards (path, n streams, sha256 of their manifests).
    Every shard is verified first; mismatched layers, frame counts, run descriptions or ``ops``
    raise :class:`TraceError` naming the shard, as does a shard given twice (the same
    directory or a byte-identical copy). The shards' ``ops`` (identical, each counted for
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
    _check_distinct(traces)
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
         "manifest_sha256": sha256((t.path / MANIFEST_FILE).read_bytes())} for t in traces]}
    writer = TraceWriter(out, layers, model=ref.manifest.get("model", ""),
                         stream=ref.manifest.get("stream"),
                         predictor=ref.manifest.get("predictor"), tau=ref.manifest.get("tau"),
                         chunk_frames=chunk_frames or int(ref.manifest["chunk_frames"]),
                         codec=codec or ref.manifest["codec"], meta=meta, overwrite=overwrite,
                         ops=ops, fires=all(t.has_fires for t in traces))
    done = writer.frames_done
    iters = [t.iter_frames(np.arange(done, ref.n_frames)) for t in traces]
    for parts in zip(*iters, strict=True):
        codes = {name: np.concatenate([ev[name] for _, ev in parts], axis=1)
                 for name in ref.layer_names}
        fires = None if not all(t.has_fires for t in traces) else {
            name: np.concatenate([ev.fires[name] for _, ev in parts], axis=1)
            for name in ref.layer_names}
        writer.append(EventMaps(codes, fires, ref.predictor_name))
    return writer.close()
