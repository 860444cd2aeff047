"""Trace format: round trip, determinism, corruption detection, crash-safe resume, real video."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from secnn_jax import fileio, timing, traces
from secnn_jax.geometry import LayerGeom

REPO = Path(__file__).resolve().parents[1]


def net() -> list[LayerGeom]:
    return [LayerGeom.conv("a", n=2, h=9, cin=3, cout=8, k=3, stride=2),
            LayerGeom.conv("b", n=2, h=5, cin=8, cout=8, k=3, groups=8),
            LayerGeom.dense("fc", n=2, fin=5 * 5 * 8, fout=7)]


def events(frames: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {g.name: rng.choice(4, size=(frames, *g.in_nhwc), p=(0.6, 0.1, 0.2, 0.1)
                               ).astype(np.uint8) for g in net()}


def write(path: Path, ev: dict[str, np.ndarray], **kw) -> Path:
    kw = {"model": "toy", "stream": {"name": "synthetic", "seed": 0}, "predictor": "secnn",
          "tau": 0.0, "chunk_frames": 4, **kw}
    return traces.write_trace(path, net(), ev, **kw)


def files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def test_pack_round_trip() -> None:
    rng = np.random.default_rng(1)
    for n in (0, 1, 3, 4, 5, 1001):
        codes = rng.integers(0, 4, n).astype(np.uint8)
        packed = traces.pack_codes(codes)
        assert len(packed) == -(-n // 4)
        np.testing.assert_array_equal(traces.unpack_codes(packed, n), codes)
    with pytest.raises(ValueError, match="0..3"):
        traces.pack_codes(np.array([0, 4], np.uint8))


@pytest.mark.parametrize("codec", traces.CODECS)
def test_write_read_round_trip(tmp_path: Path, codec: str) -> None:
    ev = events(10)
    write(tmp_path / "t", ev, codec=codec)
    t = traces.read_trace(tmp_path / "t", verify=True)
    assert t.n_frames == 10 and [c.n_frames for c in t.chunks] == [4, 4, 2]
    assert t.layer_names == ("a", "b", "fc")
    for name, a in ev.items():
        np.testing.assert_array_equal(t.events(name), a)
        np.testing.assert_array_equal(t.events(name, frames=[9, 2, 5]), a[[2, 5, 9]])
    m = t.manifest
    assert m["model"] == "toy" and m["tau"] == 0.0 and m["predictor"] == "secnn"
    assert m["stream"] == {"name": "synthetic", "seed": 0} and m["version"] == traces.VERSION
    assert m["layers"][0]["geom"]["sh"] == 2 and "code_version" in m
    assert all(len(c["events"]["sha256"]) == 64 for c in m["chunks"])
    # Summary table: exact counts and phase MACs per frame, layer and sample.
    s = t.summary()
    assert s.shape == (10, 3, 2, 6)
    for li, a in enumerate(ev.values()):
        for c in range(4):
            np.testing.assert_array_equal(s[:, li, :, c], (a == c).reshape(10, 2, -1).sum(-1))
    assert (s[..., 4] >= 0).all() and (s[..., 5] >= 0).all()
    assert 0 < t.bytes_per_neuron_event <= 0.25 + 1e-9 or codec != "none"


def test_same_inputs_give_byte_identical_traces(tmp_path: Path) -> None:
    ev = events(10)
    write(tmp_path / "x", ev)
    write(tmp_path / "y", ev)
    # Appending in other pieces gives the same chunks.
    w = traces.TraceWriter(tmp_path / "z", net(), model="toy",
                           stream={"name": "synthetic", "seed": 0}, predictor="secnn", tau=0.0,
                           chunk_frames=4)
    for a, b in [(0, 3), (3, 6), (6, 10)]:
        w.append({k: v[a:b] for k, v in ev.items()})
    w.close()
    fx = files(tmp_path / "x")
    assert fx == files(tmp_path / "y") == files(tmp_path / "z")
    assert "manifest.json" in fx and "chunks/events_000002.bin" in fx


def test_corrupted_truncated_and_missing_chunks(tmp_path: Path) -> None:
    ev = events(10)
    path = tmp_path / "t"
    write(path, ev)
    ch1 = path / "chunks" / "events_000001.bin"
    good = ch1.read_bytes()
    # Flipped byte: the size matches, the checksum does not.
    ch1.write_bytes(good[:10] + bytes([good[10] ^ 0xFF]) + good[11:])
    t = traces.read_trace(path)
    np.testing.assert_array_equal(t.chunk_events(0)["a"], ev["a"][:4])  # chunk 0 is fine
    with pytest.raises(traces.TraceError, match=r"chunk 1 is corrupted.*events_000001\.bin"):
        t.events("a")
    with pytest.raises(traces.TraceError, match="chunk 1"):
        traces.read_trace(path, verify=True)
    with pytest.raises(traces.TraceError, match="chunk 1"):
        timing.replay(path, schemes=("dense",))
    # Truncated file.
    ch1.write_bytes(good[: len(good) // 2])
    with pytest.raises(traces.TraceError, match=r"chunk 1 is truncated.*events_000001\.bin"):
        traces.read_trace(path)
    # Deleted chunk and deleted summary.
    ch1.unlink()
    with pytest.raises(traces.TraceError, match=r"chunk 1 is missing.*events_000001\.bin"):
        traces.read_trace(path)
    ch1.write_bytes(good)
    (path / "chunks" / "summary_000002.npy").unlink()
    with pytest.raises(traces.TraceError, match=r"chunk 2 is missing.*summary_000002\.npy"):
        traces.read_trace(path)
    # No manifest: an unfinished run.
    (path / "manifest.json").unlink()
    with pytest.raises(traces.TraceError, match="incomplete"):
        traces.read_trace(path)
    with pytest.raises(traces.TraceError, match="not found"):
        traces.read_trace(tmp_path / "nothing")


def test_resume_partial_run_in_process(tmp_path: Path) -> None:
    ev = events(10)
    path = tmp_path / "t"
    w = traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4)
    w.append({k: v[:9] for k, v in ev.items()})  # 2 chunks written, 1 frame buffered
    del w  # "killed": no manifest
    w2 = traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4)
    assert w2.finished_chunks == (0, 1) and w2.frames_done == 8
    w2.append({k: v[8:] for k, v in ev.items()})
    w2.close()
    write(tmp_path / "ref", ev, stream=None, predictor=None)
    assert files(path) == files(tmp_path / "ref")
    # A half-written chunk (data without its record) is rewritten on resume.
    (path / "manifest.json").unlink()
    (path / "chunks" / "chunk_000002.json").unlink()
    (path / "chunks" / "events_000002.bin").write_bytes(b"garbage")
    w3 = traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4)
    assert w3.frames_done == 8
    w3.append({k: v[8:] for k, v in ev.items()})
    w3.close()
    assert files(path) == files(tmp_path / "ref")


def test_resume_with_other_description_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t"
    w = traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4)
    w.append({k: v[:4] for k, v in events(4).items()})
    with pytest.raises(traces.TraceError, match="tau"):
        traces.TraceWriter(path, net(), model="toy", tau=0.5, chunk_frames=4)
    with pytest.raises(traces.TraceError, match="chunk_frames"):
        traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=2)
    w.close()
    with pytest.raises(traces.TraceError, match="already complete"):
        traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4)
    traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4, overwrite=True)


def test_bad_events_are_rejected(tmp_path: Path) -> None:
    w = traces.TraceWriter(tmp_path / "t", net(), chunk_frames=4)
    ev = events(4)
    with pytest.raises(traces.TraceError, match="uint8"):
        w.append({**ev, "a": ev["a"].astype(np.int32)})
    with pytest.raises(traces.TraceError, match="'b'.*do not match"):
        w.append({**ev, "b": ev["b"][..., :3]})
    with pytest.raises(traces.TraceError, match="no events for layer 'fc'"):
        w.append({k: v for k, v in ev.items() if k != "fc"})
    with pytest.raises(traces.TraceError, match="0..3"):
        w.append({**ev, "a": ev["a"] + 4})


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_traces import events, net
    from secnn_jax import traces
    ev = events(12)
    w = traces.TraceWriter(sys.argv[1], net(), model="toy", tau=0.0, chunk_frames=2)
    print("resumed", w.frames_done, flush=True)
    for a in range(w.frames_done, 12, 2):
        w.append({{k: v[a:a + 2] for k, v in ev.items()}})
        time.sleep(float(sys.argv[2]))
    w.close()
""")


def test_sigkill_mid_run_then_resume_is_byte_identical(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(REPO / "tests")))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "0.5"], env=env,
                            stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (killed / "chunks" / "chunk_000001.json").exists():
        assert proc.poll() is None and time.time() < deadline, "writer did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "manifest.json").exists()
    out = subprocess.run([sys.executable, str(script), str(killed), "0"], env=env,
                         capture_output=True, text=True, check=True).stdout
    done = int(out.split()[1])
    assert 4 <= done < 12  # resumed after the last finished chunk
    ref = tmp_path / "ref"  # an uninterrupted run of the same writer, in this process
    ev = events(12)
    w = traces.TraceWriter(ref, net(), model="toy", tau=0.0, chunk_frames=2)
    w.append(ev)
    w.close()
    assert files(killed) == files(ref)


def test_replay_from_disk_equals_in_memory(tmp_path: Path) -> None:
    ev = events(6)
    write(tmp_path / "t", ev)
    params = timing.ModelParams()
    a = timing.replay(tmp_path / "t", params=params, frames=[1, 4])
    b = timing.replay(net(), ev, params=params, frames=[1, 4])
    assert a.frames == b.frames == (1, 4)
    for key, ra in a.results.items():
        np.testing.assert_array_equal(ra.total_cycles, b.results[key].total_cycles)
    assert a.meta["model"] == "toy"


def _tiny_cnn(x: np.ndarray):
    """A small Linen CNN (strided, depthwise, 1x1, dense) with seeded random weights; the
    weights come from numpy so that no XLA compile is spent on ``init``."""
    import jax
    from flax import linen as nn

    class Tiny(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(16, (3, 3), strides=2, name="stem")(x))
            x = nn.relu(nn.Conv(16, (3, 3), feature_group_count=16, name="dw")(x))
            x = nn.relu(nn.Conv(32, (1, 1), name="pw")(x))
            x = nn.relu(nn.Conv(32, (3, 3), strides=2, name="c3")(x))
            return nn.Dense(10, name="head")(x.mean((1, 2)))

    model = Tiny()
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(
        lambda s: (rng.standard_normal(s.shape) * 0.3).astype(np.float32), shapes)
    return model.apply, variables


def test_real_video_trace(tmp_path: Path) -> None:
    """A small Flax CNN on real frames of bikes.mp4: trace, size, accounting, replay."""
    from conftest import video_frames

    import secnn_jax as sj
    from secnn_jax import accounting, predictors

    frames = video_frames(n=8, size=32, streams=2)
    apply_fn, variables = _tiny_cnn(frames[0])
    layers = sj.find_layers(apply_fn, variables, frames[0])
    _, ev = sj.run_stream(apply_fn, variables, frames, predictors.secnn())
    ev = ev.map(np.asarray)
    traces.write_trace(tmp_path / "real", layers, ev, model="tiny_cnn",
                       stream={"clip": "bikes.mp4", "frames": 8, "size": 32},
                       predictor="secnn", tau=0.0, chunk_frames=4)
    t = traces.read_trace(tmp_path / "real", verify=True)
    assert t.bytes_per_neuron_event <= 0.3
    # Events come back in NHWC; the summary's MACs equal the core accounting.
    acc = accounting.account(layers, ev)
    s = t.summary()
    for li, layer in enumerate(layers):
        nhwc = np.asarray(layer.to_nhwc(ev[layer.name]))
        np.testing.assert_array_equal(t.events(layer.name), nhwc)
        np.testing.assert_array_equal(s[:, li, :, 4], acc[layer.name].parallel_macs)
        np.testing.assert_array_equal(s[:, li, :, 5], acc[layer.name].serial_macs)
        np.testing.assert_array_equal(s[:, li, :, :4], acc[layer.name].counts)
    r = timing.replay(tmp_path / "real", gpus=("h100", "gtx1080ti"))
    r2 = timing.replay(layers, ev, gpus=("h100", "gtx1080ti"))
    assert r.to_csv() == r2.to_csv()
    assert (r.get("h100", "secnn_hw").total_cycles > 0).all()


# --- ops, manifest integrity, write failures ----------------------------------------------------

def _ops() -> list:
    from secnn_jax.netops import NetOp

    return [NetOp(name="op000:bn:affine", kind="affine", after=0, reads=100, param_reads=24,
                  writes=100, flops=300, epilogue_of=0, extra_reads=0,
                  primitives=("sub", "mul", "add")),
            NetOp(name="op001:activation", kind="activation", after=0, reads=100,
                  param_reads=0, writes=100, flops=100, epilogue_of=0, extra_reads=0,
                  primitives=("max",))]


def test_trace_error_is_a_secnn_error_and_a_value_error() -> None:
    from secnn_jax.errors import SecnnError

    assert issubclass(traces.TraceError, SecnnError)
    assert issubclass(traces.TraceError, ValueError)


def test_ops_are_stored_and_read_back(tmp_path: Path) -> None:
    ev = events(6)
    ops = _ops()
    write(tmp_path / "with", ev, ops=ops)
    t = traces.read_trace(tmp_path / "with", verify=True)
    assert t.ops == tuple(ops)
    assert t.manifest["ops"] == [op.as_dict() for op in ops]
    # Dicts are accepted and stored the same way.
    write(tmp_path / "dicts", ev, ops=[op.as_dict() for op in ops])
    assert files(tmp_path / "dicts") == files(tmp_path / "with")
    # Without ops: no key at all (the header is what it always was), and None.
    write(tmp_path / "without", ev)
    t0 = traces.read_trace(tmp_path / "without")
    assert t0.ops is None and "ops" not in t0.manifest
    with pytest.raises(traces.TraceError, match=r"ops\[1\]"):
        write(tmp_path / "bad", ev, ops=[ops[0].as_dict(), {"name": "x"}])
    # Resuming with other ops is a different run.
    w = traces.TraceWriter(tmp_path / "part", net(), chunk_frames=4, ops=ops)
    w.append({k: v[:4] for k, v in ev.items()})
    with pytest.raises(traces.TraceError, match="ops"):
        traces.TraceWriter(tmp_path / "part", net(), chunk_frames=4, ops=ops[:1])


def test_ops_from_find_ops_round_trip(tmp_path: Path) -> None:
    import jax

    from secnn_jax import netops

    x = jax.ShapeDtypeStruct((2, 32, 32, 3), np.float32)
    apply_fn, variables = _tiny_cnn(np.zeros(x.shape, np.float32))
    ops = netops.find_ops(apply_fn, variables, x)
    assert [op.kind for op in ops] == ["affine", "activation"] * 4 + ["reduce", "affine"]
    write(tmp_path / "t", events(4), ops=ops)
    assert traces.read_trace(tmp_path / "t").ops == ops


def test_merge_shards_carries_ops(tmp_path: Path) -> None:
    ops = _ops()
    for k in range(2):
        write(tmp_path / f"s{k}", events(6, seed=k), ops=ops)
    traces.merge_shards([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")
    merged = traces.read_trace(tmp_path / "m", verify=True)
    assert [g.n for g in merged.geoms] == [4, 4, 4]
    # Two shards of 2 streams each: batch counts double, per-model param reads do not.
    assert [(o.reads, o.writes, o.flops, o.param_reads) for o in merged.ops] == [
        (200, 200, 600, 24), (200, 200, 200, 0)]
    assert [o.name for o in merged.ops] == [o.name for o in ops]
    write(tmp_path / "other", events(6, seed=1), ops=ops[:1])
    with pytest.raises(traces.TraceError, match=r"shard .*other: ops differ"):
        traces.merge_shards([tmp_path / "s0", tmp_path / "other"], tmp_path / "m2")


def _edit_manifest(path: Path, edit, *, reseal: bool) -> None:
    """Edits manifest.json with ``edit(dict)``; ``reseal`` recomputes its checksum (an edit
    that knows the format), otherwise the old checksum stays."""
    import json

    mp = path / "manifest.json"
    m = json.loads(mp.read_text())
    edit(m)
    if reseal:
        m[traces.CHECKSUM_FIELD] = traces.manifest_checksum(m)
    mp.write_text(json.dumps(m, sort_keys=True, indent=1) + "\n")


def test_manifest_checksum_and_structure(tmp_path: Path, monkeypatch) -> None:
    import shutil

    ev = events(10)  # chunks of 4, 4, 2 frames
    good = tmp_path / "good"
    write(good, ev)
    assert len(traces.read_trace(good).manifest[traces.CHECKSUM_FIELD]) == 64

    def fresh(name: str) -> Path:
        p = tmp_path / name
        shutil.copytree(good, p)
        return p

    # A hand edit of n_frames used to give a silently shorter replay.
    p = fresh("edited")
    _edit_manifest(p, lambda m: m.update(n_frames=6), reseal=False)
    with pytest.raises(traces.TraceError, match=r"manifest\.json field checksum: sha256"):
        traces.read_trace(p)
    # Even with a valid checksum the manifest must agree with itself.
    cases = {
        "n_frames": (lambda m: m.update(n_frames=6), r"field n_frames: is 6, but the chunk "
                     r"records hold 10"),
        "start": (lambda m: m["chunks"][1].update(frame_start=5),
                  r"field chunks\[1\]\.frame_start: is 5, expected 4 \(.*contiguous"),
        "chunk_n": (lambda m: m["chunks"][2].update(n_frames=1),
                    r"field chunks\[2\]\.layers\['a'\]\.n_codes"),
        "index": (lambda m: m["chunks"][0].update(index=3), r"chunks\[0\]\.index"),
    }
    for name, (edit, match) in cases.items():
        p = fresh(name)
        _edit_manifest(p, edit, reseal=True)
        with pytest.raises(traces.TraceError, match=match):
            traces.read_trace(p)
    # A missing field is named, not a KeyError.
    p = fresh("nofield")
    _edit_manifest(p, lambda m: m.pop("chunks"), reseal=True)
    with pytest.raises(traces.TraceError, match="chunks"):
        traces.read_trace(p)
    # verify() also compares each chunk record file with the manifest's copy.
    p = fresh("record")
    rec = p / "chunks" / "chunk_000001.json"
    rec.write_text(rec.read_text().replace('"frame_start": 4', '"frame_start": 3'))
    traces.read_trace(p)  # opening reads only the manifest
    with pytest.raises(traces.TraceError, match=r"chunk_000001\.json and manifest.json differ "
                                                r"in field\(s\) frame_start"):
        traces.read_trace(p, verify=True)
    (p / "chunks" / "chunk_000001.json").unlink()
    with pytest.raises(traces.TraceError, match=r"chunk 1 is missing .*chunk_000001\.json"):
        traces.read_trace(p, verify=True)
    # An old manifest without a checksum still reads, with a warning.
    warnings = []
    monkeypatch.setattr(traces.reader.logging, "warning", lambda *a: warnings.append(a[0] % a[1:]))
    p = fresh("old")
    _edit_manifest(p, lambda m: m.pop(traces.CHECKSUM_FIELD), reseal=False)
    t = traces.read_trace(p, verify=True)
    np.testing.assert_array_equal(t.events("b"), ev["b"])
    assert len(warnings) == 1 and "no checksum" in warnings[0] and str(p) in warnings[0]


def test_disk_full_names_the_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    import errno

    ev = events(8)
    path = tmp_path / "t"
    w = traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4)
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(traces.TraceError,
                       match=r"cannot write .*events_000000\.bin: .* \(ENOSPC\)") as err:
        w.append({k: v[:4] for k, v in ev.items()})
    assert isinstance(err.value.__cause__, OSError)
    assert sorted(p.name for p in (path / "chunks").iterdir()) == []  # no hidden .tmp file
    # Any other failure also removes the temporary file and propagates unchanged.
    monkeypatch.setattr(os, "fsync", real_fsync)

    def broken(src, dst) -> None:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        fileio.atomic_write(tmp_path / "x.bin", b"data")
    assert not list(tmp_path.glob(".x.bin*")) and not (tmp_path / "x.bin").exists()
    monkeypatch.undo()
    # The disk has room again: resuming writes the same files as an uninterrupted run.
    w = traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4)
    assert w.frames_done == 0
    w.append(ev)
    w.close()
    traces.write_trace(tmp_path / "ref", net(), ev, model="toy", tau=0.0, chunk_frames=4)
    assert files(path) == files(tmp_path / "ref")


def test_corrupted_finished_chunk_is_not_kept_on_resume(tmp_path: Path) -> None:
    # A finished chunk (data and record) whose data is then corrupted: the resuming writer
    # must verify it and rewrite it, not trust its record.
    ev = events(10)
    path = tmp_path / "t"
    w = traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4)
    w.append({k: v[:9] for k, v in ev.items()})  # chunks 0 and 1 finished
    del w
    blob = path / "chunks" / "events_000001.bin"
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    w2 = traces.TraceWriter(path, net(), model="toy", tau=0.0, chunk_frames=4)
    assert w2.finished_chunks == (0,) and w2.frames_done == 4
    w2.append({k: v[4:] for k, v in ev.items()})
    w2.close()
    write(tmp_path / "ref", ev, stream=None, predictor=None)
    assert files(path) == files(tmp_path / "ref")


def test_events_come_back_in_the_layers_own_layout(tmp_path: Path) -> None:
    """A dense layer's ``(8, 1, 32)`` events come back ``(8, 1, 32)`` with ``layout="layer"``
    (``[T, N, 1, M, F]`` as stored), an NCHW conv's ``[T, N, C, H, W]`` as written; fires too."""
    import jax.numpy as jnp
    from jax import lax

    import secnn_jax as sj

    def apply_fn(p, x):  # an NCHW conv, then a dense layer on [N, 32]
        y = lax.conv_general_dilated(jnp.transpose(x, (0, 3, 1, 2)), p["c"], (1, 1), "SAME",
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y.reshape(y.shape[0], -1)[:, :32] @ p["d"]

    params = {"c": jnp.ones((2, 3, 3, 3)), "d": jnp.ones((32, 4))}
    conv, dense = sj.find_layers(apply_fn, params, jnp.zeros((1, 4, 5, 3)))
    assert conv.in_shape == (1, 3, 4, 5) and dense.in_shape == (1, 32)
    rng = np.random.default_rng(0)
    codes = {layer.name: rng.integers(0, 4, (8, *layer.in_shape)).astype(np.uint8)
             for layer in (conv, dense)}
    fires = {k: rng.integers(0, 2, v.shape).astype(bool) for k, v in codes.items()}
    traces.write_trace(tmp_path / "t", [conv, dense], sj.events.EventMaps(codes, fires))
    t = traces.read_trace(tmp_path / "t")
    assert t.events(dense.name).shape == (8, 1, 1, 1, 32)  # stored NHWC
    for layer in (conv, dense):
        back = t.events(layer.name, layout="layer")
        assert back.shape == (8, *layer.in_shape)
        np.testing.assert_array_equal(back, codes[layer.name])
        np.testing.assert_array_equal(t.fires(layer.name, layout="layer"), fires[layer.name])
        np.testing.assert_array_equal(t.events(layer.name, [2, 5], layout="layer"),
                                      codes[layer.name][[2, 5]])
    with pytest.raises(traces.TraceError, match="layout must be"):
        t.events(dense.name, layout="nchw")
    geom_only = [LayerGeom.from_layer(conv)]  # a LayerGeom does not know the layer's layout
    traces.write_trace(tmp_path / "g", geom_only, {conv.name: conv.to_nhwc(codes[conv.name])})
    with pytest.raises(traces.TraceError, match="without its own layout"):
        traces.read_trace(tmp_path / "g").events(conv.name, layout="layer")
