"""Calibrated GPU files: a user's own GPU as a named entry the replayer can use.

A *GPU file* (JSON, format :data:`FORMAT`) holds one :class:`~secnn_jax.timing.gpus.GPU`
configuration (every field with its source) and the :class:`~secnn_jax.timing.params.ModelParams`
fitted on that GPU's measurements, with the provenance and validation of the fit.
``python -m experiments.calibrate_timing --measurements=DIR --gpu=NAME --out=FILE`` writes one
from a directory of ``python -m experiments.measure_gpu`` measurements.

:func:`load_gpu_file` reads a file and *registers* it: afterwards ``get_gpu(NAME)`` returns its
configuration and :func:`params_for` its fitted parameters, so

    timing.load_gpu_file("my_gpu.json")
    timing.replay(trace, gpus=["my_gpu"])

replays on that GPU with its own calibration (``replay``'s ``params=`` still overrides it, for
every GPU of the call). Built-in GPUs keep the shipped H100 calibration
(:func:`~secnn_jax.timing.params.load_params`).

:func:`gpu_from_ceilings` builds the configuration from the measured ceilings (copy bandwidth,
matmul throughput, tiny-kernel time, back-to-back launch rate, SMs, L2, clock) over a built-in
*base* GPU of the same architecture, which supplies the per-SM figures no benchmark measures
(FMA rates, registers, shared memory, occupancy limits).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from secnn_jax import fileio
from secnn_jax.timing.gpus import (
    GPU,
    PRECISIONS,
    get_gpu,
    gpu_key,
    register_gpu,
    unregister_gpu,
)
from secnn_jax.timing.params import ModelParams, TimingConfigError, load_params

__all__ = ["FORMAT", "CalibratedGPU", "gpu_from_ceilings", "load_gpu_file", "params_for",
           "read_gpu_file", "unload_gpu_file", "write_gpu_file"]

#: Format tag of a GPU file.
FORMAT = "secnn_jax.timing.gpu_file/1"

#: Fitted parameters of the GPUs registered by :func:`load_gpu_file`, by key.
_PARAMS: dict[str, ModelParams] = {}

#: Ceilings keys (new name first, then the packaged H100 file's name) per quantity.
_CEILING_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "copy": ("copy_bandwidth_TBps_read_plus_write",),
    "fp32": ("matmul_fp32_TFLOPs", "matmul_8192_fp32_no_tf32_TFLOPs"),
    "tf32": ("matmul_tf32_TFLOPs", "matmul_8192_tf32_TFLOPs"),
    "fp16": ("matmul_fp16_TFLOPs", "matmul_8192_bf16_TFLOPs"),
    "tiny": ("tiny_kernel_us", "tiny_kernel_cuda_event_us"),
    "launch": ("back_to_back_launch_us_per_kernel",),
    "clock": ("max_sm_clock_mhz",),
})


@dataclasses.dataclass(frozen=True)
class CalibratedGPU:
    """One GPU file's contents.

    Attributes:
      gpu: the configuration (its ``key`` is the name replays use).
      params: the timing-model parameters fitted on this GPU.
      meta: provenance and validation (plain data).
      path: the file read, if any.
    """

    gpu: GPU
    params: ModelParams
    meta: Mapping[str, Any]
    path: Path | None = None


def _gpu_from_dict(d: Mapping[str, Any], where: str) -> GPU:
    fields = {f.name: f for f in dataclasses.fields(GPU)}
    missing = [n for n in fields if n not in d and n != "sources"]
    if missing:
        raise TimingConfigError(f"{where}: GPU entry lacks field(s) {', '.join(missing)}")
    kw: dict[str, Any] = {}
    try:
        for name in fields:
            v = d.get(name, {})
            if name in ("key", "name", "arch", "compute_capability"):
                kw[name] = str(v)
            elif name in ("tensor_fma_per_clk",):
                kw[name] = MappingProxyType({str(k): int(x) for k, x in dict(v).items()})
            elif name == "ceiling_frac":
                kw[name] = MappingProxyType({str(k): float(x) for k, x in dict(v).items()})
            elif name == "sources":
                kw[name] = MappingProxyType({str(k): str(x) for k, x in dict(v).items()})
            elif name in ("clock_mhz", "dram_gbps", "launch_us", "event_overhead_us"):
                kw[name] = float(v)
            else:
                kw[name] = int(v)
    except (TypeError, ValueError) as e:
        raise TimingConfigError(f"{where}: GPU entry field {name!r} has a bad value: {e}") from e
    for name in ("sms", "clock_mhz", "fp32_lanes", "dram_gbps", "l2_bytes", "max_threads"):
        if not (math.isfinite(kw[name]) and kw[name] > 0):
            raise TimingConfigError(f"{where}: GPU entry field {name!r} must be > 0, got "
                                    f"{kw[name]!r}")
    if set(kw["ceiling_frac"]) != set(PRECISIONS):
        raise TimingConfigError(f"{where}: GPU entry 'ceiling_frac' must give {PRECISIONS}")
    return GPU(**kw)


def read_gpu_file(path: str | Path) -> CalibratedGPU:
    """Reads a GPU file without registering it.

    Raises:
      TimingConfigError: the file is missing, not JSON, not a GPU file, or an entry has a
        missing or bad field (named).
    """
    p = Path(path)
    if not p.is_file():
        raise TimingConfigError(f"GPU file not found: {p}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TimingConfigError(f"GPU file {p} is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TimingConfigError(f"{p} is not a GPU file (expected format {FORMAT!r}; write "
                                "one with python -m experiments.calibrate_timing "
                                "--measurements=DIR --gpu=NAME --out=FILE)")
    gpu = _gpu_from_dict(doc.get("gpu") or {}, str(p))
    if gpu.key != gpu_key(gpu.key):
        raise TimingConfigError(f"{p}: GPU key {gpu.key!r} is not normalised")
    try:
        params = ModelParams.from_dict(doc["params"])
        _ = [params.eff(x) for x in PRECISIONS]
    except (KeyError, TypeError, ValueError) as e:
        raise TimingConfigError(f"{p}: bad or missing 'params' entry: {e}") from e
    return CalibratedGPU(gpu=gpu, params=params, meta=doc.get("meta") or {}, path=p)


def write_gpu_file(path: str | Path, gpu: GPU, params: ModelParams,
                   meta: Mapping[str, Any] | None = None) -> Path:
    """Writes ``gpu`` and its fitted ``params`` as a GPU file (atomically); returns the path."""
    doc = {"format": FORMAT, "gpu": gpu.as_dict(), "params": params.as_dict(),
           "meta": dict(meta or {})}
    return fileio.write_json(path, doc, indent=1)


def load_gpu_file(path: str | Path) -> CalibratedGPU:
    """Reads a GPU file and registers it: ``get_gpu(key)`` and ``replay(..., gpus=[key])``
    then use its configuration, :func:`params_for` its fitted parameters.

    Raises:
      TimingConfigError: as :func:`read_gpu_file`, or the key names a built-in GPU.
    """
    cal = read_gpu_file(path)
    try:
        register_gpu(cal.gpu)
    except ValueError as e:
        raise TimingConfigError(f"{cal.path}: {e}") from e
    _PARAMS[cal.gpu.key] = cal.params
    return cal


def unload_gpu_file(key: str) -> None:
    """Forgets a GPU registered by :func:`load_gpu_file` (no error if it is not)."""
    unregister_gpu(key)
    _PARAMS.pop(gpu_key(key), None)


def params_for(gpu: str | GPU) -> ModelParams:
    """The timing parameters a replay on ``gpu`` uses by default: a loaded GPU file's own
    fitted parameters, else the shipped calibration (:func:`~.params.load_params`)."""
    key = gpu.key if isinstance(gpu, GPU) else gpu_key(gpu)
    return _PARAMS[key] if key in _PARAMS else load_params()


def _ceiling(ceilings: Mapping[str, Any], what: str) -> float | None:
    for k in _CEILING_KEYS[what]:
        if ceilings.get(k) is not None:
            v = ceilings[k]
            try:
                f = float(v)
            except (TypeError, ValueError) as e:
                raise TimingConfigError(f"ceilings field {k!r} is not a number: {v!r}") from e
            if not (math.isfinite(f) and f > 0):
                raise TimingConfigError(f"ceilings field {k!r} must be a finite number > 0, "
                                        f"got {v!r}")
            return f
    return None


def gpu_from_ceilings(ceilings: Mapping[str, Any], key: str, base: str | GPU,
                      source: str = "measured") -> GPU:
    """A :class:`GPU` named ``key`` from measured ``ceilings`` over a built-in ``base``.

    Measured where present (else the base's value, its source saying so): ``sms`` and
    ``l2_bytes`` (``ceilings["device"]``), ``clock_mhz`` (``max_sm_clock_mhz``), ``dram_gbps``
    (copy bandwidth), ``launch_us`` (back-to-back launch rate), ``event_overhead_us`` (the tiny
    kernel timed alone, as every measured kernel is) and ``ceiling_frac`` (measured matmul
    TFLOP/s over the peak the base's per-SM rates imply at the measured SMs and clock).
    ``source`` names the measurement in every measured field's source.

    Raises:
      TimingConfigError: a ceilings value that is not a finite number > 0, or an unknown key.
    """
    b = get_gpu(base)
    k = gpu_key(key)
    if not k:
        raise TimingConfigError("a calibrated GPU needs a non-empty name")
    dev = ceilings.get("device") or {}
    src = {f: f"from base GPU {b.key!r}: {b.sources.get(f, 'built-in')}"
           for f in (x.name for x in dataclasses.fields(GPU)) if f != "sources"}
    changes: dict[str, Any] = {"key": k, "name": str(dev.get("name") or k)}
    src["name"] = f"{source} (device name)"
    for field, value in (("sms", dev.get("sms")), ("l2_bytes", dev.get("l2"))):
        if value:
            changes[field] = int(value)
            src[field] = f"{source} (device.{'l2' if field == 'l2_bytes' else field})"
    clock = _ceiling(ceilings, "clock")
    if clock:
        changes["clock_mhz"] = clock
        src["clock_mhz"] = f"{source} (max_sm_clock_mhz)"
    copy = _ceiling(ceilings, "copy")
    if copy:
        changes["dram_gbps"] = copy * 1000.0
        src["dram_gbps"] = f"{source} (copy bandwidth, read + write)"
    for field, what in (("launch_us", "launch"), ("event_overhead_us", "tiny")):
        v = _ceiling(ceilings, what)
        if v:
            changes[field] = v
            src[field] = f"{source} ({_CEILING_KEYS[what][0]})"
    sms = changes.get("sms", b.sms)
    clk = changes.get("clock_mhz", b.clock_mhz)
    frac = dict(b.ceiling_frac)
    for p in PRECISIONS:
        tf = _ceiling(ceilings, p)
        if tf:
            peak = 2.0 * b.dense_fma_per_clk(p) * sms * clk * 1e6 / 1e12
            frac[p] = round(tf / peak, 4)
    if any(_ceiling(ceilings, p) for p in PRECISIONS):
        src["ceiling_frac"] = (f"{source} (matmul TFLOP/s over the peak of base {b.key!r}'s "
                               "per-SM rates at the measured SMs and clock)")
    changes["ceiling_frac"] = MappingProxyType(frac)
    changes["sources"] = MappingProxyType(src)
    return dataclasses.replace(b, **changes)
