"""What ``python -m experiments.measure_gpu`` measures, as testable functions.

Everything runs through JAX on one device (the local GPU; XLA:CPU with tiny shapes under
``dry_run``): each kernel is a jitted function of device arrays, compiled and warmed up, then
called ``repeats`` times, each call timed on the wall clock until ``block_until_ready`` returns
(dispatch, kernel and synchronisation: the analogue of a kernel timed alone between two CUDA
events; the tiny kernel of the ceilings is timed the same way and is the GPU entry's
``event_overhead_us``). Median and minimum are recorded. Sections (files in ``out``; columns in
``secnn_jax/timing/measurements/README.md``):

* ``conv`` (``conv.csv``): every distinct conv/dense layer shape of the networks at each batch,
  per precision (``fp32_strict``: float32 at highest matmul precision; ``tf32``: float32 at
  TensorFloat-32; ``fp16``: float16), standard, depthwise and grouped alike (NHWC, HWIO).
* ``ops`` (``ops.csv``): one kernel per distinct op group of the networks (:func:`op_kernel`:
  the group's element counts, bytes and arithmetic, its kind's computation), fp32 and fp16.
* ``concurrency`` (``concurrency.csv``): ``n`` identical convolutions in one jitted program,
  independent or chained, for several ``n`` and shapes, batch 1.
* ``e2e`` (``e2e.csv``): whole networks (random weights): ``graph_us`` the jitted forward pass,
  ``eager_us`` the same apply without jit (op by op).
* ``secnn_sw`` (``secnn_sw.csv``): for a few real layer shapes per network at batch 1 and each
  density, the compare, the compaction (``jnp.nonzero`` with a static size) and the gather-based
  sparse amendment (scatter-add of ``W[tap, c, :] * delta`` per mispredicted input), and the
  layer's dense kernel.
* ``ceilings`` (``ceilings.json``): copy bandwidth, matmul throughput per precision, the tiny
  kernel and the back-to-back launch rate, with the device description.

Rows are measured round robin over the sections (a run stopped by ``time_budget_s`` has some
of each). Resumable per row: every row is appended (flushed and fsynced) as soon as it is
measured, a torn last line is dropped on restart, and a restarted run skips the rows whose key
is already in the file, so a killed run resumes where it stopped. ``device.json`` records the
device and whether the run is a GPU measurement; a restart on another device or mode is refused.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import io
import itertools
import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax import lax

from secnn_jax import fileio
from secnn_jax.errors import SecnnError
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing.opkernels import OpGeom

__all__ = ["COLUMNS", "KEYS", "MODES", "SECTIONS", "MeasureConfig", "MeasureError", "RowLog",
           "measure", "op_kernel", "time_call"]

#: Sections in the order they run.
SECTIONS: tuple[str, ...] = ("ceilings", "conv", "ops", "concurrency", "secnn_sw", "e2e")
#: Precision modes (the ``mode`` column).
MODES: tuple[str, ...] = ("fp32_strict", "tf32", "fp16")
#: Op kinds measured (``matmul`` and ``other`` are not elementwise kernels).
OP_KINDS: tuple[str, ...] = ("affine", "activation", "binary", "pool", "reduce", "concat", "pad",
                             "copy")

_COMMON = ("platform",)
#: Columns of each CSV.
COLUMNS: Mapping[str, tuple[str, ...]] = {
    "conv": ("net", "name", "cin", "cout", "k", "stride", "pad", "groups", "H", "Ho", "B",
             "mode", "macs", "us_median", "us_min", "kind", "class", "layout", "geom",
             "repeats", *_COMMON),
    "ops": ("net", "name", "kind", "B", "mode", "reads", "param_reads", "writes", "flops",
            "shape", "layout", "us_median", "us_min", "repeats", *_COMMON),
    "concurrency": ("name", "cin", "cout", "k", "H", "B", "mode", "n", "arrangement", "layout",
                    "us_median", "us_min", "repeats", *_COMMON),
    "secnn_sw": ("net", "name", "geom", "B", "mode", "density", "n_inputs", "nnz", "layout",
                 "compare_us", "compact_us", "amend_us", "dense_us", "repeats", *_COMMON),
    "e2e": ("net", "mode", "B", "size", "eager_us", "graph_us", "eager_min_us", "graph_min_us",
            "layout", "repeats", *_COMMON),
}
#: Key columns of each CSV: a row with the same key is not measured again.
KEYS: Mapping[str, tuple[str, ...]] = {
    "conv": ("B", "mode", "geom"),
    "ops": ("kind", "B", "mode", "reads", "param_reads", "writes", "flops"),
    "concurrency": ("name", "B", "mode", "n", "arrangement"),
    "secnn_sw": ("net", "name", "B", "mode", "density"),
    "e2e": ("net", "mode", "B", "size"),
}


class MeasureError(SecnnError, ValueError):
    """A measurement run that cannot start or resume as asked (the message says why)."""


@dataclasses.dataclass(frozen=True)
class MeasureConfig:
    """What to measure (see the module docstring; ``python -m experiments.measure_gpu --help``).

    Attributes:
      out: output directory.
      nets: zoo model names whose layers, ops and whole networks are measured.
      sizes: per network, the input height = width (default: the model's native size).
      batches: batch sizes of the conv, ops and e2e sections.
      modes: precision modes.
      sections: sections to run (:data:`SECTIONS`).
      repeats: timed calls per kernel.
      warmup: untimed calls after compilation.
      dry_run: XLA:CPU with tiny shapes; the output is marked as not a GPU measurement.
      densities: event densities of the software SE-CNN probe.
      sw_layers: layers per network of the software SE-CNN probe.
      concurrency_n: numbers of convolutions of the concurrency probe.
      limit: only the first this many rows of each section (0: all), resumed ones included.
      time_budget_s: stop starting new rows after this many seconds (0: no limit); a rerun
        resumes.
      seed: random inputs' seed.
    """

    out: Path
    nets: tuple[str, ...]
    sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)
    batches: tuple[int, ...] = (1, 16)
    modes: tuple[str, ...] = MODES
    sections: tuple[str, ...] = SECTIONS
    repeats: int = 20
    warmup: int = 3
    dry_run: bool = False
    densities: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6)
    sw_layers: int = 4
    concurrency_n: tuple[int, ...] = (1, 2, 4, 8, 16)
    limit: int = 0
    time_budget_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [s for s in self.sections if s not in SECTIONS]
        if bad or not self.sections:
            raise MeasureError(f"unknown or no sections {bad}; known: {', '.join(SECTIONS)}")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise MeasureError(f"unknown or no modes {bad}; known: {', '.join(MODES)}")
        if not self.nets and set(self.sections) & {"conv", "ops", "secnn_sw", "e2e"}:
            raise MeasureError("no networks to measure")
        if not self.batches or min(self.batches) < 1:
            raise MeasureError(f"batches must be >= 1, got {self.batches}")
        if self.repeats < 1 or self.warmup < 0:
            raise MeasureError("repeats must be >= 1 and warmup >= 0")
        if not self.densities or not all(0 < d <= 1 for d in self.densities):
            raise MeasureError(f"densities must be in (0, 1], got {self.densities}")
        if self.sw_layers < 1 or not self.concurrency_n or min(self.concurrency_n) < 1:
            raise MeasureError("sw_layers and every concurrency n must be >= 1")
        if self.limit < 0 or self.time_budget_s < 0:
            raise MeasureError("limit and time_budget_s must be >= 0")


# --- resumable CSV --------------------------------------------------------------------------

class RowLog:
    """A CSV appended one row at a time (flushed, fsynced), resumable by key.

    Opening an existing file keeps its complete rows and drops a torn last line (a run killed
    while writing); a file with another header is refused.
    """

    def __init__(self, path: Path, columns: Sequence[str], keys: Sequence[str]) -> None:
        self.path, self.columns, self.keys = Path(path), tuple(columns), tuple(keys)
        self.rows: list[dict[str, str]] = []
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8")
            lines = text.split("\n")
            complete = lines[:-1]  # the part after the last newline is torn (or empty)
            if not complete or next(csv.reader([complete[0]])) != list(self.columns):
                raise MeasureError(f"{self.path} has another header than {self.columns}; "
                                   "move it away or choose another --out")
            for line in complete[1:]:
                vals = next(csv.reader([line]), [])
                if len(vals) == len(self.columns):
                    self.rows.append(dict(zip(self.columns, vals, strict=True)))
            if lines[-1] or len(self.rows) != len(complete) - 1:
                logging.warning("%s: dropping a torn or malformed row left by an interrupted "
                                "run", self.path)
                self._rewrite()
        else:
            self._rewrite()
        self.done = {self.key(r) for r in self.rows}

    def _rewrite(self) -> None:
        fileio.atomic_write(self.path, _csv_text([self.columns] + [
            [r[c] for c in self.columns] for r in self.rows]))

    def key(self, row: Mapping[str, Any]) -> tuple[str, ...]:
        """The key of ``row`` (values as written)."""
        return tuple(_fmt(row[k]) for k in self.keys)

    def append(self, row: Mapping[str, Any]) -> None:
        """Writes ``row`` (every column) at the end of the file, durably."""
        vals = [_fmt(row[c]) for c in self.columns]
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(_csv_text([vals]))
            f.flush()
            os.fsync(f.fileno())
        rec = dict(zip(self.columns, vals, strict=True))
        self.rows.append(rec)
        self.done.add(self.key(rec))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.6g}"
    return str(v)


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


# --- timing ---------------------------------------------------------------------------------

def time_call(fn: Callable[..., Any], args: Sequence[Any], *, warmup: int, repeats: int,
              clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """``(median_us, min_us)`` of ``repeats`` calls of ``fn(*args)``, each timed until its
    result is ready, after one compiling call and ``warmup`` untimed calls."""
    jax.block_until_ready(fn(*args))
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(repeats):
        t0 = clock()
        jax.block_until_ready(fn(*args))
        ts.append((clock() - t0) * 1e6)
    return float(np.median(ts)), float(np.min(ts))


@contextlib.contextmanager
def _mode(mode: str) -> Iterator[Any]:
    """The matmul precision context and the dtype of ``mode``."""
    prec = {"fp32_strict": "float32", "tf32": "tensorfloat32", "fp16": "default"}[mode]
    with jax.default_matmul_precision(prec):
        yield jnp.float16 if mode == "fp16" else jnp.float32


def _normal(key: int, shape: Sequence[int], dtype: Any, scale: float = 1.0) -> jax.Array:
    return (scale * jax.random.normal(jax.random.PRNGKey(key), tuple(shape), jnp.float32)
            ).astype(dtype)


# --- kernels ----------------------------------------------------------------------------------

def layer_op(g: LayerGeom) -> tuple[Callable[..., Any], tuple[tuple[int, ...], ...]]:
    """``(fn, (x_shape, w_shape))``: the linear layer ``g`` (NHWC, HWIO), not jitted."""
    if g.kind == "dense":
        return (lambda x, w: x @ w), ((g.n * g.h * g.w, g.cin), (g.cin, g.cout))

    def conv(x: jax.Array, w: jax.Array) -> jax.Array:
        return lax.conv_general_dilated(x, w, (g.sh, g.sw), g.pad, rhs_dilation=(g.dh, g.dw),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=g.groups)

    return conv, ((g.n, g.h, g.w, g.cin), (g.kh, g.kw, g.cin_g, g.cout))


def layer_fn(g: LayerGeom) -> tuple[Callable[..., Any], tuple[tuple[int, ...], ...]]:
    """:func:`layer_op`, jitted."""
    fn, shapes = layer_op(g)
    return jax.jit(fn), shapes


def _split(e: int, parts: int) -> int:
    """The largest divisor of ``e`` that is at most ``parts`` (>= 1)."""
    for d in range(min(parts, e), 0, -1):
        if e % d == 0:
            return d
    return 1


def op_kernel(op: OpGeom, geoms: Sequence[LayerGeom], dtype: Any
              ) -> tuple[Callable[..., Any], list[tuple[int, ...]], str] | None:
    """A jitted kernel with ``op``'s element counts, bytes and arithmetic and its kind's
    computation: ``(fn, argument shapes, description)``, or ``None`` for a kind that is not an
    elementwise kernel (``matmul``, ``other``).

    affine: ``x * a + b`` with per-channel vectors (the group's parameter reads); activation:
    ReLU (<= 1 op per element), clip (<= 2) or swish; binary: ``x + y`` (or ``x * gate`` with a
    broadcast gate); pool: max pooling over the preceding layer's output map with the window
    and stride the counts imply; reduce: a mean over rows; concat: two halves joined; pad: zero
    padding; copy: a transpose (or a slice when it writes fewer elements than it reads).
    """
    e = max(int(op.writes), 1)
    r = max(int(op.reads), 1)
    k = op.kind
    if k == "affine":
        c = next((p for p in (op.param_reads // 3, op.param_reads // 2, op.param_reads)
                  if p > 0 and e % p == 0), 1)
        return (jax.jit(lambda x, a, b: x * a + b), [(e // c, c), (c,), (c,)],
                f"x[{e // c},{c}]*a+b")
    if k == "activation":
        per = op.flops / e
        if per <= 1:
            return jax.jit(lambda x: jnp.maximum(x, 0)), [(e,)], "relu"
        if per <= 2:
            return jax.jit(lambda x: jnp.clip(x, 0, 6)), [(e,)], "relu6"
        return jax.jit(lambda x: x * jax.nn.sigmoid(x)), [(e,)], "swish"
    if k == "binary":
        other = r - e
        if other >= e:
            return jax.jit(lambda x, y: x + y), [(e,), (e,)], "x+y"
        c = _split(e, max(other, 1)) if other > 0 else 1
        return (jax.jit(lambda x, gte: x * gte), [(e // c, c), (c,)],
                f"x[{e // c},{c}]*gate")
    if k == "pool":
        prev = geoms[op.after] if 0 <= op.after < len(geoms) else None
        window = max(1, round(op.flops / e))
        kk = max(1, round(math.sqrt(window)))
        if prev is not None and prev.n_outputs == r and prev.cout and e % (prev.n * prev.cout) == 0:
            hw = e // (prev.n * prev.cout)
            side = max(1, round(math.sqrt(hw)))
            s = max(1, round(prev.ho / side))
            shape = (prev.n, prev.ho, prev.wo, prev.cout)
            fn = jax.jit(lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, kk, kk, 1),
                                                     (1, s, s, 1), "SAME"))
            return fn, [shape], f"maxpool{kk}x{kk}/s{s} on {'x'.join(map(str, shape))}"
        s = max(1, r // e)
        fn = jax.jit(lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (window,), (s,), "SAME"))
        return fn, [(r,)], f"maxpool1d{window}/s{s}"
    if k == "reduce":
        if r % e == 0:
            return jax.jit(lambda x: x.mean(axis=1)), [(e, r // e)], f"mean[{e},{r // e}]"
        return jax.jit(lambda x: x.mean(keepdims=True)), [(r,)], "mean"
    if k == "concat":
        a = r // 2
        return (jax.jit(lambda x, y: jnp.concatenate([x, y])), [(a,), (r - a,)], "concat")
    if k == "pad":
        extra = max(e - r, 0)
        return jax.jit(lambda x: jnp.pad(x, (0, extra))), [(r,)], f"pad+{extra}"
    if k == "copy":
        if e < r:
            return jax.jit(lambda x: x[:e] * 1), [(r,)], f"slice{e}"
        a = _split(r, int(math.sqrt(r)))
        return jax.jit(lambda x: x.T), [(a, r // a)], f"transpose[{a},{r // a}]"
    return None


def sw_fns(g: LayerGeom, nnz: int) -> dict[str, Callable[..., Any]]:
    """The software SE-CNN pieces for layer ``g`` with ``nnz`` mispredicted inputs (jitted):
    ``compare(x, p) -> (mask, delta)``, ``compact(mask, delta) -> (idx, vals)`` and
    ``amend(y, w, idx, vals) -> y`` (the scatter-add of each mispredicted input's
    contribution ``w[tap, c, :] * delta`` to the outputs it reaches)."""

    def compare(x: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
        d = x - p
        m = jnp.abs(d) > 0
        return m, jnp.where(m, d, 0)

    def compact(m: jax.Array, d: jax.Array) -> tuple[jax.Array, jax.Array]:
        idx = jnp.nonzero(m.ravel(), size=nnz, fill_value=0)[0]
        return idx, d.ravel()[idx]

    if g.kind == "dense":
        def amend(y: jax.Array, w: jax.Array, idx: jax.Array, vals: jax.Array) -> jax.Array:
            row, c = idx // g.cin, idx % g.cin
            return y.at[row].add(vals[:, None] * w[c], mode="drop")
    else:
        def amend(y: jax.Array, w: jax.Array, idx: jax.Array, vals: jax.Array) -> jax.Array:
            c = idx % g.cin
            rest = idx // g.cin
            col, rest = rest % g.w, rest // g.w
            row, n = rest % g.h, rest // g.h
            for i in range(g.kh):  # unrolled over the filter taps
                for j in range(g.kw):
                    oh = row + g.pad[0][0] - i * g.dh
                    ow = col + g.pad[1][0] - j * g.dw
                    ok = (oh % g.sh == 0) & (ow % g.sw == 0)
                    oh = jnp.where(ok, oh // g.sh, g.ho)  # out of range: dropped
                    ow = jnp.where(ok, ow // g.sw, g.wo)
                    y = y.at[n, oh, ow].add(vals[:, None] * w[i, j, c], mode="drop")
            return y

    return {"compare": jax.jit(compare), "compact": jax.jit(compact), "amend": jax.jit(amend)}


# --- device --------------------------------------------------------------------------------

def device_info(device: Any) -> dict[str, Any]:
    """What is known of ``device``: name, platform, SMs, and (``nvidia-smi``) driver, clocks."""
    info: dict[str, Any] = {"name": str(getattr(device, "device_kind", device)),
                            "platform": str(device.platform),
                            "sms": getattr(device, "core_count", None),
                            "jax": jax.__version__,
                            "xla_flags": os.environ.get("XLA_FLAGS", "")}
    if device.platform == "gpu" and shutil.which("nvidia-smi"):
        q = "name,driver_version,clocks.max.sm,clocks.sm,memory.total"
        try:
            out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,"
                                  "nounits", f"--id={getattr(device, 'local_hardware_id', 0)}"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
            vals = [v.strip() for v in out.strip().splitlines()[0].split(",")]
            info.update({"nvidia_smi_name": vals[0], "driver": vals[1],
                         "max_sm_clock_mhz": float(vals[2]), "sm_clock_mhz_now": float(vals[3]),
                         "memory_mib": float(vals[4])})
        except (OSError, subprocess.SubprocessError, IndexError, ValueError) as e:
            logging.warning("nvidia-smi gave no clock/driver: %s", e)
    return info


# --- the run ----------------------------------------------------------------------------------

@dataclasses.dataclass
class _Task:
    section: str
    key_row: dict[str, Any]
    run: Callable[[], dict[str, Any]]


@dataclasses.dataclass
class _Run:
    cfg: MeasureConfig
    device: Any
    platform: str
    tiny: bool

    def t(self, fn: Callable[..., Any], args: Sequence[Any],
          repeats: int | None = None) -> tuple[float, float]:
        return time_call(fn, args, warmup=self.cfg.warmup,
                         repeats=repeats or self.cfg.repeats)


def _size(cfg: MeasureConfig, name: str, tiny: bool) -> int:
    import models  # noqa: PLC0415

    spec = models.get_spec(name)
    if name in cfg.sizes:
        spec.check_input_size(cfg.sizes[name])
        return int(cfg.sizes[name])
    return spec.min_size if tiny else spec.input_size


def _networks(cfg: MeasureConfig, tiny: bool) -> dict[tuple[str, int], Any]:
    from experiments.zoo_networks import network  # noqa: PLC0415

    return {(n, b): network(n, b, _size(cfg, n, tiny)) for n in cfg.nets for b in cfg.batches}


def _geom_json(g: LayerGeom) -> str:
    d = g.as_dict()
    d.pop("name")
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def _conv_tasks(r: _Run, nets: Mapping[tuple[str, int], Any]) -> Iterator[_Task]:
    seen: set[tuple[str, str]] = set()
    for (net, b), nw in nets.items():
        for g in nw.geoms:
            gj = _geom_json(g)
            for mode in r.cfg.modes:
                if (gj, mode) in seen:
                    continue
                seen.add((gj, mode))
                row = {"net": net, "name": g.name, "cin": g.cin, "cout": g.cout, "k": g.kh,
                       "stride": g.sh, "pad": g.pad[0][0], "groups": g.groups, "H": g.h,
                       "Ho": g.ho, "B": b, "mode": mode, "macs": g.macs, "kind": g.kind,
                       "class": _class(g), "layout": "NHWC", "geom": gj,
                       "repeats": r.cfg.repeats, "platform": r.platform}

                def run(g: LayerGeom = g, mode: str = mode) -> dict[str, Any]:
                    with _mode(mode) as dt:
                        fn, (xs, ws) = layer_fn(g)
                        med, mn = r.t(fn, [_normal(1, xs, dt), _normal(2, ws, dt, 0.05)])
                    return {"us_median": med, "us_min": mn}

                yield _Task("conv", row, run)


def _class(g: LayerGeom) -> str:
    from secnn_jax.timing.calibration import layer_class  # noqa: PLC0415

    return layer_class(g)


def _op_modes(modes: Sequence[str]) -> list[str]:
    # Elementwise kernels do not use tensor cores: tf32 is fp32 for them.
    return [m for m in ("fp32_strict", "fp16") if m in modes or (m == "fp32_strict"
                                                                 and "tf32" in modes)]


def _ops_tasks(r: _Run, nets: Mapping[tuple[str, int], Any]) -> Iterator[_Task]:
    seen: set[tuple[Any, ...]] = set()
    for (net, b), nw in nets.items():
        for op in nw.ops:
            if op.kind not in OP_KINDS:
                continue
            for mode in _op_modes(r.cfg.modes):
                sig = (op.kind, b, mode, op.reads, op.param_reads, op.writes, op.flops)
                if sig in seen:
                    continue
                seen.add(sig)
                spec = op_kernel(op, nw.geoms, jnp.float32)
                if spec is None:
                    continue
                row = {"net": net, "name": op.name, "kind": op.kind, "B": b, "mode": mode,
                       "reads": op.reads, "param_reads": op.param_reads, "writes": op.writes,
                       "flops": op.flops, "shape": spec[2], "layout": "NHWC",
                       "repeats": r.cfg.repeats, "platform": r.platform}

                def run(op: OpGeom = op, mode: str = mode, geoms: Any = nw.geoms
                        ) -> dict[str, Any]:
                    with _mode(mode) as dt:
                        fn, shapes, _ = op_kernel(op, geoms, dt)  # type: ignore[misc]
                        args = [_normal(i + 1, s, dt) for i, s in enumerate(shapes)]
                        med, mn = r.t(fn, args)
                    return {"us_median": med, "us_min": mn}

                yield _Task("ops", row, run)


#: Concurrency probe shapes ``(channels, k, H)`` (full size, and under ``dry_run``).
CONCURRENCY_SHAPES: tuple[tuple[int, int, int], ...] = ((64, 3, 56), (128, 3, 28), (256, 1, 14),
                                                        (512, 3, 7))
_TINY_CONCURRENCY: tuple[tuple[int, int, int], ...] = ((8, 3, 8), (16, 1, 4))


def _concurrency_tasks(r: _Run) -> Iterator[_Task]:
    shapes = _TINY_CONCURRENCY if r.tiny else CONCURRENCY_SHAPES
    for c, k, h in shapes:
        g = LayerGeom.conv(f"c{c}k{k}h{h}", n=1, h=h, cin=c, cout=c, k=k)
        for mode in r.cfg.modes:
            for n in r.cfg.concurrency_n:
                for arr in ("independent", "chained"):
                    row = {"name": g.name, "cin": c, "cout": c, "k": k, "H": h, "B": 1,
                           "mode": mode, "n": n, "arrangement": arr, "layout": "NHWC",
                           "repeats": r.cfg.repeats, "platform": r.platform}

                    def run(g: LayerGeom = g, n: int = n, arr: str = arr, mode: str = mode
                            ) -> dict[str, Any]:
                        conv, (xs, ws) = layer_op(g)

                        def indep(xs_: Any, ws_: Any) -> Any:
                            return [conv(x, w) for x, w in zip(xs_, ws_, strict=True)]

                        def chain(x: Any, ws_: Any) -> Any:
                            for w in ws_:
                                x = conv(x, w)
                            return x

                        with _mode(mode) as dt:
                            wl = [_normal(10 + i, ws, dt, 0.05) for i in range(n)]
                            if arr == "independent":
                                xl = [_normal(100 + i, xs, dt) for i in range(n)]
                                med, mn = r.t(jax.jit(indep), [xl, wl])
                            else:
                                med, mn = r.t(jax.jit(chain), [_normal(100, xs, dt), wl])
                        return {"us_median": med, "us_min": mn}

                    yield _Task("concurrency", row, run)


#: Bytes the software SE-CNN probe's scatter updates may take (larger cases are skipped).
SW_MAX_UPDATE_BYTES = 512 * 2**20


def _sw_tasks(r: _Run, nets: Mapping[tuple[str, int], Any]) -> Iterator[_Task]:
    mode = next(m for m in MODES if m in r.cfg.modes)
    for (net, b), nw in nets.items():
        if b != min(r.cfg.batches):
            continue
        cands = [g for g in nw.geoms if g.groups == 1]
        if not cands:
            continue
        pick = sorted({round(i) for i in np.linspace(0, len(cands) - 1, r.cfg.sw_layers)})
        for g in (cands[i] for i in pick):
            for dens in r.cfg.densities:
                nnz = max(1, int(round(dens * g.n_inputs)))
                if nnz * g.kh * g.kw * g.cout * 4 > SW_MAX_UPDATE_BYTES:
                    logging.warning("secnn_sw probe: skipping %s/%s at density %g (the scatter "
                                    "updates would exceed %d MiB)", net, g.name, dens,
                                    SW_MAX_UPDATE_BYTES >> 20)
                    continue
                row = {"net": net, "name": g.name, "geom": _geom_json(g), "B": g.n,
                       "mode": mode, "density": dens, "n_inputs": g.n_inputs, "nnz": nnz,
                       "layout": "NHWC", "repeats": r.cfg.repeats, "platform": r.platform}

                def run(g: LayerGeom = g, nnz: int = nnz) -> dict[str, Any]:
                    fns = sw_fns(g, nnz)
                    dense, (xs, ws) = layer_fn(g)
                    rng = np.random.default_rng(r.cfg.seed)
                    with _mode(mode) as dt:
                        x = _normal(1, xs, dt)
                        hit = np.zeros(int(np.prod(xs)), np.float32)
                        hit[rng.choice(hit.size, nnz, replace=False)] = 1.0
                        p = x - jnp.asarray(hit.reshape(xs), dt)
                        w = _normal(2, ws, dt, 0.05)
                        y = dense(x, w)
                        m, d = fns["compare"](x, p)
                        idx, vals = fns["compact"](m, d)
                        out = {"compare_us": r.t(fns["compare"], [x, p])[0],
                               "compact_us": r.t(fns["compact"], [m, d])[0],
                               "amend_us": r.t(fns["amend"], [y, w, idx, vals])[0],
                               "dense_us": r.t(dense, [x, w])[0]}
                    return out

                yield _Task("secnn_sw", row, run)


def _e2e_tasks(r: _Run) -> Iterator[_Task]:
    import models  # noqa: PLC0415

    for net in r.cfg.nets:
        size = _size(r.cfg, net, r.tiny)
        for b in r.cfg.batches:
            for mode in r.cfg.modes:
                row = {"net": net, "mode": mode, "B": b, "size": size, "layout": "NHWC",
                       "repeats": r.cfg.repeats, "platform": r.platform}

                def run(net: str = net, b: int = b, mode: str = mode, size: int = size
                        ) -> dict[str, Any]:
                    apply_fn, variables = models.load(net, pretrained=False, seed=r.cfg.seed)
                    with _mode(mode) as dt:
                        v = jax.tree.map(lambda a: jnp.asarray(a, dt)
                                         if jnp.issubdtype(a.dtype, jnp.floating) else a,
                                         variables)
                        x = _normal(3, (b, size, size, 3), dt)
                        g_med, g_min = r.t(jax.jit(apply_fn), [v, x])
                        e_med, e_min = r.t(apply_fn, [v, x], repeats=min(r.cfg.repeats, 3))
                    return {"graph_us": g_med, "graph_min_us": g_min, "eager_us": e_med,
                            "eager_min_us": e_min}

                yield _Task("e2e", row, run)


def _ceilings(r: _Run) -> dict[str, Any]:
    """Copy bandwidth, matmul throughput, tiny kernel and launch rate (see the README)."""
    tiny = r.tiny
    n_copy = (1 << 20) if tiny else (1 << 28)  # float32 elements: 4 MiB or 1 GiB
    x = _normal(0, (n_copy,), jnp.float32)
    med, _ = r.t(jax.jit(lambda a: a * 1.5), [x])
    out: dict[str, Any] = {"copy_elements": n_copy,
                           "copy_bandwidth_TBps_read_plus_write": round(
                               2 * 4 * n_copy / (med * 1e-6) / 1e12, 4)}
    del x
    size = 256 if tiny else 8192
    out["matmul_size"] = size
    for mode, key in (("fp32_strict", "matmul_fp32_TFLOPs"), ("tf32", "matmul_tf32_TFLOPs"),
                      ("fp16", "matmul_fp16_TFLOPs")):
        with _mode(mode) as dt:
            a, b = _normal(4, (size, size), dt), _normal(5, (size, size), dt)
            med, _ = r.t(jax.jit(lambda p, q: p @ q), [a, b], repeats=min(r.cfg.repeats, 10))
        out[key] = round(2 * size ** 3 / (med * 1e-6) / 1e12, 3)
    one = jnp.ones((1,), jnp.float32)
    add = jax.jit(lambda a: a + 1)
    med, mn = r.t(add, [one], repeats=max(r.cfg.repeats, 50))
    out["tiny_kernel_us"] = round(med, 3)
    out["tiny_kernel_min_us"] = round(mn, 3)
    k = 200 if tiny else 2000
    y = add(one)
    jax.block_until_ready(y)
    t0 = time.perf_counter()
    for _ in range(k):  # back to back: async dispatch, one wait at the end
        y = add(y)
    jax.block_until_ready(y)
    out["back_to_back_launch_us_per_kernel"] = round((time.perf_counter() - t0) * 1e6 / k, 3)
    out["launches"] = k
    return out


def measure(cfg: MeasureConfig, progress: bool = True) -> dict[str, int]:
    """Runs (or resumes) the measurements of ``cfg``; returns new rows per section.

    Raises:
      MeasureError: no accelerator without ``dry_run``, or ``cfg.out`` holds a run on another
        device or mode, or a CSV there has another header.
    """
    if cfg.dry_run:
        device = jax.devices("cpu")[0]
    else:
        device = jax.devices()[0]
        if device.platform == "cpu":
            raise MeasureError("no GPU found (JAX sees only the CPU); run with --dry_run for "
                               "a tiny CPU run of the same code path")
    platform = "cpu-dry-run" if cfg.dry_run else str(device.platform)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    info = device_info(device)
    ident = {"device": info["name"], "platform": platform, "gpu_measurement": not cfg.dry_run,
             "dry_run": cfg.dry_run}
    dev_path = out / "device.json"
    if dev_path.is_file():
        try:
            old = json.loads(dev_path.read_text())
        except json.JSONDecodeError as e:
            raise MeasureError(f"{dev_path} is not valid JSON ({e}); move it away") from e
        prev = {k: old.get(k) for k in ident}
        if prev != ident:
            raise MeasureError(f"{out} holds measurements of {prev}, not {ident}; use another "
                               "--out")
    else:
        fileio.write_json(dev_path, {**ident, "info": info,
                                     "started": datetime.datetime.now(datetime.UTC).isoformat(
                                         timespec="seconds")})
    r = _Run(cfg, device, platform, tiny=cfg.dry_run)
    added = {s: 0 for s in cfg.sections}
    t_start = time.monotonic()
    with jax.default_device(device):
        if "ceilings" in cfg.sections and not (out / "ceilings.json").is_file():
            ceil = _ceilings(r)
            fileio.write_json(out / "ceilings.json", {
                **ceil, "device": {"name": info["name"], "sms": info.get("sms"), "l2": None},
                "driver": info.get("driver"), "max_sm_clock_mhz": info.get("max_sm_clock_mhz"),
                "jax": info["jax"], "platform": platform, "gpu_measurement": not cfg.dry_run,
                "dry_run": cfg.dry_run, "timing": "wall clock to block_until_ready"})
            added["ceilings"] = 1
        needs_nets = set(cfg.sections) & {"conv", "ops", "secnn_sw"}
        nets = _networks(cfg, r.tiny) if needs_nets else {}
        gens = {"conv": lambda: _conv_tasks(r, nets), "ops": lambda: _ops_tasks(r, nets),
                "concurrency": lambda: _concurrency_tasks(r),
                "secnn_sw": lambda: _sw_tasks(r, nets), "e2e": lambda: _e2e_tasks(r)}
        logs = {s: RowLog(out / f"{s}.csv", COLUMNS[s], KEYS[s]) for s in gens
                if s in cfg.sections}
        per_section = []
        for s, log in logs.items():
            tasks = list(gens[s]())
            tasks = tasks[:cfg.limit] if cfg.limit else tasks  # the same rows on a resume
            per_section.append([t for t in tasks if log.key(t.key_row) not in log.done])
        # Round robin over the sections: a run stopped by its time budget has some of each.
        todo = [t for group in itertools.zip_longest(*per_section) for t in group
                if t is not None]
        bar = None
        if progress:
            from tqdm import tqdm  # noqa: PLC0415

            bar = tqdm(total=len(todo), desc="measure", unit="row")
        for task in todo:
            if cfg.time_budget_s and time.monotonic() - t_start > cfg.time_budget_s:
                logging.warning("time budget of %.0f s spent: %d rows left; rerun the same "
                                "command to resume", cfg.time_budget_s,
                                len(todo) - sum(added[s] for s in logs))
                break
            if bar is not None:
                bar.set_postfix_str(f"{task.section}")
            vals = task.run()
            logs[task.section].append({**task.key_row, **vals})
            added[task.section] += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    return added
