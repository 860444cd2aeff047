"""Neuron-level event traces on disk: versioned, chunked, checksummed, crash-safe, resumable.

A trace is one directory per run; its format is documented in ``traces/README.md`` at the
repository root::

    <run>/header.json                 run description, written first (atomically)
    <run>/chunks/events_000000.bin    2-bit packed, compressed event codes of every layer
    <run>/chunks/summary_000000.npy   per-frame, per-layer, per-sample summary table
    <run>/chunks/chunk_000000.json    the chunk's record: frames, layer offsets, sha256s
    <run>/manifest.json               written last: header + frame count + every chunk record

Every file is written to a temporary name, flushed, fsynced and renamed into place
(:func:`secnn_jax.fileio.atomic_write`), data before records and the manifest last, so a run
killed at any point leaves either a finished chunk or nothing that looks like one; a failed write
(``ENOSPC``, any ``OSError``) removes its temporary file and raises :class:`TraceError` naming the
file. :class:`TraceWriter` opened on an existing partial run verifies the finished chunks and
reports them (:attr:`~TraceWriter.frames_done`) so the caller resumes after the last one; the
same inputs give byte-identical files. :func:`read_trace` checks the manifest's own sha256, its
structure and every file it names; every chunk read is verified against its sha256.

The header may carry the model's non-linear kernels (``ops``: :class:`secnn_jax.netops.NetOp`
records from :func:`secnn_jax.netops.find_ops`), read back as :attr:`Trace.ops`.

Event maps are stored in NHWC order (``Layer.to_nhwc``), codes ZZ=0, ZN=1, VH=2, VM=3, four per
byte (first neuron in the low bits), per layer and chunk, then compressed (``zlib`` by default).

Modules (everything public is re-exported here):

- :mod:`~secnn_jax.traces.codec`: the format constants and file names, :class:`TraceError`,
  packing of event codes (:func:`pack_codes`, :func:`unpack_codes`), the compression codecs,
  sha256 and the manifest checksum (:func:`manifest_checksum`).
- :mod:`~secnn_jax.traces.writer`: :class:`TraceWriter`, :func:`write_trace`,
  :func:`layer_record`, :class:`ChunkRecord` and the per-chunk summary tables.
- :mod:`~secnn_jax.traces.reader`: :class:`Trace`, :func:`read_trace`, :func:`frame_indices`.
- :mod:`~secnn_jax.traces.merge`: :func:`merge_shards` (one trace from a multi-process run's
  shards).

The package imports only core modules of :mod:`secnn_jax` (never :mod:`secnn_jax.timing`).
"""

from __future__ import annotations

from secnn_jax.traces.codec import (
    CHECKSUM_FIELD,
    CODECS,
    FORMAT,
    SUMMARY_COLUMNS,
    VERSION,
    TraceError,
    manifest_checksum,
    pack_codes,
    unpack_codes,
)
from secnn_jax.traces.merge import merge_shards
from secnn_jax.traces.reader import Trace, frame_indices, read_trace
from secnn_jax.traces.writer import ChunkRecord, TraceWriter, layer_record, write_trace

__all__ = ["CHECKSUM_FIELD", "CODECS", "FORMAT", "SUMMARY_COLUMNS", "VERSION", "ChunkRecord",
           "Trace", "TraceError", "TraceWriter", "frame_indices", "layer_record",
           "manifest_checksum", "merge_shards", "pack_codes", "read_trace", "unpack_codes",
           "write_trace"]
