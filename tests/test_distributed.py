"""Scale-out: sharding streams over 4 host devices, and two jax.distributed processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from _cnns import linen_model
from conftest import video_frames

import secnn_jax as sj
from secnn_jax import distributed, traces

HERE = Path(__file__).parent


def test_process_streams_partitions_exactly():
    for n in (4, 5, 7):
        for count in (1, 2, 3):
            slices = [distributed.process_streams(n, distributed.ProcessInfo(i, count))
                      for i in range(count)]
            covered = np.concatenate([np.arange(n)[s] for s in slices])
            np.testing.assert_array_equal(covered, np.arange(n))
    with pytest.raises(ValueError, match="cannot feed"):
        distributed.process_streams(1, distributed.ProcessInfo(0, 2))


def test_sharded_over_four_devices_equals_one_device():
    """Runs in a subprocess: the host device count is fixed when XLA starts."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(HERE)!r})
        import jax, jax.numpy as jnp, numpy as np
        from _cnns import linen_model
        from conftest import video_frames
        import secnn_jax as sj
        from secnn_jax import distributed, traces
        assert len(jax.devices()) == 4, jax.devices()
        frames = video_frames(4, 32, 4)
        apply_fn, params = linen_model(jnp.asarray(frames[0]))
        l1, e1 = sj.run_stream(apply_fn, params, frames, sj.predictors.secnn(), tau=0.01)
        mesh = distributed.stream_mesh()
        l4, e4 = distributed.run_stream_sharded(apply_fn, params, frames,
                                                sj.predictors.secnn(), tau=0.01, mesh=mesh)
        assert len(l4.sharding.device_set) == 4, l4.sharding
        np.testing.assert_allclose(np.asarray(l4), np.asarray(l1), rtol=1e-5, atol=1e-5)
        for k in e1:
            agree = np.mean(np.asarray(e4[k]) == np.asarray(e1[k]))
            assert agree > 0.999, (k, agree)
        try:
            distributed.run_stream_sharded(apply_fn, params, frames[:, :3],
                                           sj.predictors.zero(), mesh=mesh)
        except ValueError as e:
            assert "do not divide" in str(e)
        else:
            raise AssertionError("3 streams over 4 devices must fail")
        print("SHARDED_OK")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=600)
    assert "SHARDED_OK" in r.stdout, r.stdout + r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    outs = [tmp_path / f"shard{i}.npz" for i in range(2)]
    shard_dirs = [tmp_path / f"trace{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, str(HERE / "_dist_worker.py"), address, "2",
                               str(i), str(outs[i]), str(shard_dirs[i])], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    merged = distributed.merge_stream_shards([dict(np.load(o)) for o in outs])
    frames = video_frames(4, 32, 4)
    apply_fn, params = linen_model(jnp.asarray(frames[0]))
    logits, events = sj.run_stream(apply_fn, params, frames, sj.predictors.secnn())
    np.testing.assert_allclose(merged["logits"], logits, rtol=1e-5, atol=1e-5)
    for k, v in events.items():
        np.testing.assert_array_equal(merged[f"ev_{k.replace('/', '.')}"], v)
    # the per-process trace shards merge into the trace one process writes
    traces.merge_shards(shard_dirs, tmp_path / "merged")
    layers = sj.find_layers(apply_fn, params, jnp.asarray(frames[0]))
    traces.write_trace(tmp_path / "single", layers, events, model="linen_cnn",
                       predictor="secnn", chunk_frames=3)
    m, s = traces.read_trace(tmp_path / "merged", verify=True), traces.read_trace(tmp_path /
                                                                                 "single")
    assert m.n_frames == s.n_frames == 4 and m.layer_names == s.layer_names
    assert [g.n for g in m.geoms] == [4] * len(layers)
    for name in s.layer_names:
        np.testing.assert_array_equal(m.events(name), s.events(name))
    np.testing.assert_array_equal(m.summary(), s.summary())
    assert len(m.manifest["meta"]["shards"]) == 2
    with pytest.raises(traces.TraceError, match="frames"):
        traces.write_trace(tmp_path / "short", layers, {k: v[:2] for k, v in events.items()},
                           chunk_frames=3)
        traces.merge_shards([tmp_path / "short", shard_dirs[1]], tmp_path / "bad")
