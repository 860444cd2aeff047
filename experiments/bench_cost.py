"""Micro-benchmark of the scheme cost functions (``S.REGISTRY[s].cost``) on Lite0 geometry.

Builds EfficientNet-Lite0's layers and op groups at 224 (shapes only), draws event codes with
blocky spatial structure for one chunk of frames, reduces them to counts once, then times only
the cost calls of every scheme on 2 GPUs x 3 launch models — the part of a replay this module's
work targets — and, for scale, one whole :func:`secnn_jax.timing.replay_launches` of the same
events. Prints times; asserts nothing.
``python -m experiments.bench_cost --frames=16 --repeats=3`` (``--help`` lists the flags).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from absl import app, flags, logging

from experiments.zoo_networks import network
from secnn_jax import workmaps
from secnn_jax.timing import replay_launches
from secnn_jax.timing import schemes as S
from secnn_jax.timing.gpufile import params_for
from secnn_jax.timing.gpus import get_gpu
from secnn_jax.timing.launch import LaunchCosts
from secnn_jax.timing.names import LAUNCH_MODELS, SCHEMES
from secnn_jax.timing.params import DEFAULT_CONFIG

GPUS = ("h100", "gtx1080ti")

_FRAMES = flags.DEFINE_integer("frames", 16, "frames of the synthetic chunk (>= 1)", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed repetitions, each on fresh counts arrays "
                                "(>= 1)", lower_bound=1)


def lite0_events(frames: int, seed: int = 0) -> tuple[tuple, tuple, dict[str, np.ndarray]]:
    """Lite0's geometries, op groups and blocky random event codes ``{name: uint8 [T, ...]}``."""
    nw = network("efficientnet_lite0", 1, 224)
    rng = np.random.default_rng(seed)
    ev = {}
    for g in nw.geoms:
        n, h, w, c = g.in_nhwc
        # Blocks of 4x4 positions share a code draw: changes come in patches, as in video.
        coarse = rng.random((frames, n, -(-h // 4), -(-w // 4), c))
        coarse = coarse.repeat(4, 2).repeat(4, 3)[:, :, :h, :w]
        pred = coarse < 0.5
        miss = rng.random(pred.shape) < np.where(pred, 0.15, 0.05)
        ev[g.name] = pred.astype(np.uint8) << 1 | miss.astype(np.uint8)
    return nw.geoms, nw.ops, ev


def bench(frames: int = 16, repeats: int = 3) -> None:
    """Times the cost calls (and one whole replay) and logs them."""
    geoms, ops, ev = lite0_events(frames)
    which = S.needs(SCHEMES)
    counts = [workmaps.position_counts_all(ev[g.name], g, which, None) for g in geoms]
    misses = np.stack([workmaps.indicator(ev[g.name], "mispredicted").reshape(frames, -1).sum(1)
                       for g in geoms], 1).astype(np.float64)
    fids = np.arange(frames)
    per_scheme = dict.fromkeys(SCHEMES, 0.0)
    plan_t = 0.0
    for _ in range(repeats):
        # Fresh arrays per chunk, as a replay's next chunk has: nothing memoised carries over.
        counts = [{k: v.copy() for k, v in c.items()} for c in counts]
        for gk in GPUS:
            gpu = get_gpu(gk)
            par = params_for(gpu)
            for ln in LAUNCH_MODELS:
                ctx = S.Context(geoms=tuple(geoms), ops=tuple(ops), gpu=gpu, precision="fp32",
                                params=par, cfg=DEFAULT_CONFIG,
                                launch=LaunchCosts.of(ln, gpu, par, DEFAULT_CONFIG),
                                fusion="none")
                plans = {}
                for s in SCHEMES:
                    t0 = time.perf_counter()
                    plans[s] = S.REGISTRY[s].plan(ctx)
                    plan_t += time.perf_counter() - t0
                for s in SCHEMES:
                    t0 = time.perf_counter()
                    S.REGISTRY[s].cost(ctx, plans[s], counts, misses, frames, frame_ids=fids)
                    per_scheme[s] += time.perf_counter() - t0
    for s, t in per_scheme.items():
        logging.info("cost %-10s %7.3f s per chunk (2 GPUs x 3 launches)", s, t / repeats)
    logging.info("cost all        %7.3f s per chunk; plans (uncached) %7.3f s",
                 sum(per_scheme.values()) / repeats, plan_t / repeats)
    t0 = time.perf_counter()
    replay_launches((geoms, ev), ops=ops, gpus=GPUS, batch_frames=frames)
    logging.info("replay_launches %7.3f s (%d frames, 2 GPUs x 3 launches, every scheme)",
                 time.perf_counter() - t0, frames)


def main(argv: Sequence[str]) -> None:
    """``python -m experiments.bench_cost``: :func:`bench` with the flags' frames and repeats."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    bench(_FRAMES.value, _REPEATS.value)


if __name__ == "__main__":
    from models._cli import run as _run  # --help exits 0; a bad flag is one line

    _run(main)
