"""Exactness over long streams: amendment error must not accumulate over 1,000 frames."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _cnns import linen_model
from conftest import video_frames

import secnn_jax as sj


def test_thousand_frames_stay_exact():
    clip = video_frames(250, 24, 1)  # the whole bikes clip, 24x24
    # forward, backward, forward, backward: 1,000 real frames with real motion
    frames = np.concatenate([clip, clip[::-1], clip, clip[::-1]])
    assert frames.shape[0] == 1000
    apply_fn, params = linen_model(jnp.asarray(frames[0]))
    plain = jax.jit(jax.vmap(lambda x: apply_fn(params, x)))
    worst = 0.0
    n = 0
    for chunk in sj.iter_stream(apply_fn, params, frames, sj.predictors.secnn(), chunk_size=100):
        ref = np.asarray(plain(jnp.asarray(frames[chunk.start:chunk.start + chunk.n_frames])),
                         np.float64)
        got = np.asarray(chunk.logits, np.float64)
        err = np.abs(got - ref).max(axis=(1, 2)) / np.abs(ref).max(axis=(1, 2))
        worst = max(worst, float(err.max()))
        n += chunk.n_frames
        # the late frames are no worse than the early ones: nothing accumulates
        assert err.max() <= 1e-4, (chunk.start, err.max())
    assert n == 1000
    print(f"worst per-frame relative logit error over 1000 frames: {worst:.2e}")
