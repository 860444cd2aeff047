"""Worker for test_distributed: one process of a jax.distributed run over local streams.

Usage: python _dist_worker.py ADDRESS NUM_PROCESSES PROCESS_ID OUT.npz TRACE_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax.numpy as jnp
import numpy as np
from _cnns import linen_model
from conftest import video_frames

import secnn_jax as sj
from secnn_jax import distributed, traces


def main() -> None:
    address, n_proc, pid, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    info = distributed.initialize(address, n_proc, pid)
    assert (info.index, info.count) == (pid, n_proc), info
    frames = video_frames(4, 32, 4)  # 4 streams in all
    mine = frames[:, distributed.process_streams(frames.shape[1], info)]
    apply_fn, params = linen_model(jnp.asarray(mine[0]))
    logits, events = sj.run_stream(apply_fn, params, mine, sj.predictors.secnn())
    layers = sj.find_layers(apply_fn, params, jnp.asarray(mine[0]))
    traces.write_trace(sys.argv[5], layers, events, model="linen_cnn", predictor="secnn",
                       chunk_frames=3)
    np.savez(out, logits=np.asarray(logits), **{f"ev_{k.replace('/', '.')}": np.asarray(v)
                                                for k, v in events.items()})


if __name__ == "__main__":
    main()
