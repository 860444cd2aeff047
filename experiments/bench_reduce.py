"""Benchmark: reduce events once, replay many times, on EfficientNet-Lite0 events (issue 22).

Runs Lite0 (random initialisation unless its checkpoint is cached) on a few frames of a smooth
synthetic stream with the zero and the SE-CNN predictor, then times, on the events:

* :meth:`experiments.timer.ReplayTimer.__call__` on 2 GPUs x 3 launch models (one cell chunk,
  all variants each predictor's events feed);
* :func:`secnn_jax.timing.uncertainty.bands` for three ratios on the H100 (the speedup
  study's 4 frames, 1 probe frame);
* :func:`secnn_jax.workmaps.position_counts_all` over every layer.

Timings are printed, never asserted. ``--dump PATH`` pickles every number the runs produced so
two commits' outputs can be compared for equality (``--compare PATH``)::

    python -m experiments.bench_reduce --dump /tmp/before.pkl     # on the old commit
    python -m experiments.bench_reduce --compare /tmp/before.pkl  # on the new one
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
from absl import flags, logging

_FRAMES = flags.DEFINE_integer("frames", 8, "frames of the synthetic stream (a cell chunk)")
_SIZE = flags.DEFINE_integer("size", 224, "input side in pixels (Lite0's own)")
_BAND_FRAMES = flags.DEFINE_integer("band_frames", 4, "frames the bands replay (speedup study: 4)")
_DUMP = flags.DEFINE_string("dump", None, "pickle every result to this path")
_COMPARE = flags.DEFINE_string("compare", None, "compare every result with this pickle")
_BANDS = flags.DEFINE_bool("bands", True, "time uncertainty.bands too")


def _events(frames: int, size: int) -> tuple[Any, Any, Any, Any]:
    """Lite0's layers, ops and the zero and SE-CNN predictors' events on a smooth stream."""
    import jax.numpy as jnp  # noqa: PLC0415

    import models  # noqa: PLC0415
    import secnn_jax as sj  # noqa: PLC0415
    from secnn_jax import netops, predictors  # noqa: PLC0415

    try:
        apply_fn, v = models.load("efficientnet_lite0")
    except models.MissingCheckpointError:
        apply_fn, v = models.load("efficientnet_lite0", pretrained=False)
    rng = np.random.default_rng(0)
    base = rng.random((1, size, size, 3), np.float32)
    x = np.stack([np.roll(base, t, axis=2) + 0.01 * rng.random(base.shape, np.float32)
                  for t in range(frames)])
    x = jnp.asarray(x)
    layers = sj.find_layers(apply_fn, v, x[0])
    ops = netops.find_ops(apply_fn, v, x[0])
    _, z = sj.run_stream(apply_fn, v, x, predictors.zero())
    _, p = sj.run_stream(apply_fn, v, x, predictors.from_spec("secnn"))
    return layers, ops, z.map(np.asarray), p.map(np.asarray)


def _timed(what: str, fn: Any) -> Any:
    """``fn()``, logging its wall time and this process's CPU time (the fairer number on a
    shared machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    logging.info("%-40s %8.2f s wall %8.2f s CPU", what, time.perf_counter() - t0,
                 time.process_time() - c0)
    return out


def main(argv: list[str]) -> None:
    """Runs the benchmark (see the module docstring)."""
    del argv
    from experiments.timer import ReplayTimer  # noqa: PLC0415
    from secnn_jax import workmaps  # noqa: PLC0415
    from secnn_jax.geometry import LayerGeom, events_to_nhwc  # noqa: PLC0415
    from secnn_jax.timing import uncertainty as u  # noqa: PLC0415

    layers, ops, zero, pred = _events(_FRAMES.value, _SIZE.value)
    out: dict[str, Any] = {}
    geoms = [LayerGeom.from_layer(lay) for lay in layers]
    nhwc = {g.name: events_to_nhwc(lay, g, pred[g.name]) for lay, g in zip(layers, geoms,
                                                                            strict=True)}
    fires = {g.name: events_to_nhwc(lay, g, np.asarray(pred.fires[g.name]).astype(np.uint8))
             for lay, g in zip(layers, geoms, strict=True)}
    out["counts"] = _timed("position_counts_all, every layer", lambda: [
        workmaps.position_counts_all(nhwc[g.name], g, fires=fires[g.name]) for g in geoms])
    timer = ReplayTimer(["h100", "gtx1080ti"])
    # Warm-up (imports, caches) on one frame.
    timer(layers, zero.map(lambda v: v[:1]), schemes=timer.variants_for("zero"), ops=ops)
    for name, ev in (("zero", zero), ("secnn", pred)):
        key = f"timer:{name}"
        out[key] = _timed(f"ReplayTimer, {name} events, 2 GPUs", lambda ev=ev, name=name: timer(
            layers, ev, schemes=timer.variants_for(name), ops=ops))
    if _BANDS.value:
        ratios = (u.Ratio("secnn_hw", ("dense", "zero_skip")), u.Ratio("secnn_sw", ("dense",)),
                  u.Ratio("secnn_hw", ("secnn_hw",)))
        nb = _BAND_FRAMES.value
        got = _timed("uncertainty.bands, 3 ratios, h100", lambda: u.bands(
            layers, pred.map(lambda v: v[:nb]), zero.map(lambda v: v[:nb]), ratios, ops=ops,
            launch="persistent", fusion="epilogue", probe_frames=1))
        out["bands"] = {k: b.as_dict() for k, b in got.items()}
    if _DUMP.value:
        Path(_DUMP.value).write_bytes(pickle.dumps(out))
    if _COMPARE.value:
        old = pickle.loads(Path(_COMPARE.value).read_bytes())
        diff = [k for k in old if k in out and not _equal(old[k], out[k])]
        logging.info("compared with %s: %s", _COMPARE.value,
                     f"DIFFERENT: {diff}" if diff else f"identical ({sorted(old)})")


def _equal(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of nested dicts, lists and arrays (NaN equals NaN)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == np.asarray(b).dtype and np.array_equal(a, b, equal_nan=a.dtype.kind
                                                                 == "f")
    return a == b or (a != a and b != b)


if __name__ == "__main__":
    from models._cli import run as _run

    _run(main)
