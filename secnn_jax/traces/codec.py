"""The trace format's bytes: constants, file names, event-code packing, compression, checksums.

Event codes (ZZ=0, ZN=1, VH=2, VM=3, :mod:`secnn_jax.events`) are packed four per byte, first
code in the low bits (:func:`pack_codes`), then compressed with one of :data:`CODECS`. From
version 2 each layer's fires map follows as one bit per neuron, stored as its difference from
what the codes suggest (:func:`pack_fires`): almost all zeros, so it compresses to little. Every
data file is recorded with its sha256 (:func:`sha256`); the manifest carries the sha256 of its own
canonical JSON without the :data:`CHECKSUM_FIELD` (:func:`manifest_checksum`). The format is
documented in ``traces/README.md`` at the repository root.
"""

from __future__ import annotations

import hashlib
import lzma
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from secnn_jax.errors import SecnnError
from secnn_jax.fileio import dumps_json

__all__ = ["CHECKSUM_FIELD", "CHUNKS_DIR", "CODECS", "FORMAT", "HEADER_FILE", "MANIFEST_FILE",
           "SUMMARY_COLUMNS", "VERSION", "TraceError", "UnknownLayerError", "chunk_names",
           "compress", "decompress", "manifest_checksum", "pack_codes", "pack_fires", "sha256",
           "unpack_codes", "unpack_fires"]

#: Trace format identifier and version (bump on any incompatible change). Version 2 adds the
#: fires maps (``manifest["fires"]``); version-1 traces still read, as lacking them.
FORMAT = "secnn_jax.trace"
VERSION = 2
#: Columns of the summary table's last axis.
SUMMARY_COLUMNS: tuple[str, ...] = ("ZZ", "ZN", "VH", "VM", "parallel_macs", "serial_macs")
#: Compression codecs of the event data (``zlib`` is the default).
CODECS: tuple[str, ...] = ("zlib", "lzma", "none")
#: Manifest field holding the sha256 of the manifest's canonical JSON without this field.
CHECKSUM_FIELD = "checksum"
#: File and directory names inside a run directory.
HEADER_FILE = "header.json"
MANIFEST_FILE = "manifest.json"
CHUNKS_DIR = "chunks"


class TraceError(SecnnError, ValueError):
    """A trace is incomplete, corrupted, or does not match what the writer was opened with.

    Also raised, naming the file, when the trace cannot be written (disk full, any OS error).
    """


class UnknownLayerError(TraceError, KeyError):
    """A layer name the trace does not hold (also a ``KeyError``, as a mapping's lookup)."""


def chunk_names(k: int) -> tuple[str, str, str]:
    """Paths (relative to the run directory) of chunk ``k``'s event data, summary and record."""
    return (f"{CHUNKS_DIR}/events_{k:06d}.bin", f"{CHUNKS_DIR}/summary_{k:06d}.npy",
            f"{CHUNKS_DIR}/chunk_{k:06d}.json")


def pack_codes(codes: np.ndarray) -> bytes:
    """Packs uint8 codes (0..3) four per byte, first code in the low bits (C order)."""
    flat = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1)
    if flat.size and int(flat.max()) > 3:
        raise TraceError(f"event codes must be in 0..3, found {int(flat.max())}")
    pad = (-flat.size) % 4
    if pad:
        flat = np.concatenate([flat, np.zeros(pad, np.uint8)])
    q = flat.reshape(-1, 4)
    return (q[:, 0] | (q[:, 1] << 2) | (q[:, 2] << 4) | (q[:, 3] << 6)).astype(np.uint8).tobytes()


def unpack_codes(data: bytes, n: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: the first ``n`` codes as uint8."""
    b = np.frombuffer(data, np.uint8)
    if b.size * 4 < n:
        raise TraceError(f"packed data holds {b.size * 4} codes, {n} expected")
    out = np.empty((b.size, 4), np.uint8)
    for i in range(4):  # four bit fields per byte
        out[:, i] = (b >> (2 * i)) & 3
    return out.reshape(-1)[:n]


def _fires_guess(codes: np.ndarray) -> np.ndarray:
    # What the codes alone suggest: every neuron not ZZ fires. Wrong only where a VM neuron
    # went silent or a hit lies within tau of zero, so the difference is nearly all zeros.
    return np.asarray(codes, np.uint8) != 0


def pack_fires(fires: np.ndarray, codes: np.ndarray) -> bytes:
    """Packs a fires map (bool, shaped like ``codes``) as its difference from ``codes != ZZ``,
    eight neurons per byte, first neuron in the low bit (C order)."""
    fires = np.asarray(fires).astype(bool, copy=False)
    if fires.shape != np.shape(codes):
        raise TraceError(f"fires map of shape {fires.shape} does not match codes "
                         f"{np.shape(codes)}")
    diff = (fires != _fires_guess(codes)).reshape(-1)
    return np.packbits(diff, bitorder="little").tobytes()


def unpack_fires(data: bytes, codes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_fires`: the fires map (bool) shaped like ``codes``."""
    n = int(np.size(codes))
    b = np.frombuffer(data, np.uint8)
    if b.size * 8 < n:
        raise TraceError(f"packed data holds {b.size * 8} fires bits, {n} expected")
    diff = np.unpackbits(b, count=n, bitorder="little").astype(bool).reshape(np.shape(codes))
    return diff != _fires_guess(codes)


def compress(data: bytes, codec: str) -> bytes:
    """``data`` compressed with ``codec`` (one of :data:`CODECS`; ``none`` returns it as is).

    Raises:
      ValueError: unknown codec.
    """
    if codec == "zlib":
        return zlib.compress(data, 6)
    if codec == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_XZ, preset=6)
    if codec == "none":
        return data
    raise TraceError(f"unknown codec {codec!r}; known: {CODECS}")


def decompress(data: bytes, codec: str) -> bytes:
    """Inverse of :func:`compress` (any codec other than ``zlib``/``lzma`` returns ``data``).

    Raises:
      zlib.error, lzma.LZMAError: corrupted data.
    """
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "lzma":
        return lzma.decompress(data)
    return data


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def manifest_checksum(manifest: Mapping[str, Any]) -> str:
    """sha256 of ``manifest``'s canonical JSON (keys sorted, compact) without ``checksum``."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_FIELD}
    return sha256(dumps_json(body, indent=None, compact=True, newline=False).encode())
