"""Bad input is refused with a SecnnError naming it (issue 23's fault sweep), never accepted
silently or answered with a traceback from deep inside: shards given twice, zoo models below
their minimum size, repeated spec keys, user model factories, replay arguments, bf16 frames."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from secnn_jax import SecnnError, timing, traces
from secnn_jax.geometry import LayerGeom

sys.path.insert(0, str(Path(__file__).resolve().parent))


# --- traces.merge_shards -------------------------------------------------------------------

def _net() -> list[LayerGeom]:
    return [LayerGeom.conv("a", n=2, h=9, cin=3, cout=8, k=3, stride=2),
            LayerGeom.dense("fc", n=2, fin=5 * 5 * 8, fout=7)]


def _events(frames: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {g.name: rng.choice(4, size=(frames, *g.in_nhwc)).astype(np.uint8) for g in _net()}


def _shard(path: Path, seed: int) -> Path:
    traces.write_trace(path, _net(), _events(4, seed), model="toy", stream={"name": "s"},
                       predictor="zero", tau=0.0, chunk_frames=2)
    return path


def test_merge_refuses_a_shard_given_twice(tmp_path: Path) -> None:
    a, b = _shard(tmp_path / "a", 0), _shard(tmp_path / "b", 1)
    with pytest.raises(traces.TraceError, match="given twice"):
        traces.merge_shards([a, a], tmp_path / "m1")
    with pytest.raises(traces.TraceError, match="given twice"):  # the same directory, spelled
        traces.merge_shards([a, b, tmp_path / "b" / ".." / "a"], tmp_path / "m2")
    shutil.copytree(a, tmp_path / "copy")  # a copy holds the same streams again
    with pytest.raises(traces.TraceError, match="copy.*given twice"):
        traces.merge_shards([a, tmp_path / "copy"], tmp_path / "m3")
    assert not (tmp_path / "m1").exists()
    merged = traces.read_trace(traces.merge_shards([a, b], tmp_path / "ok").parent)
    assert merged.geoms[0].n == 4  # distinct shards still merge


# --- models.load: the minimum input size is the library's --------------------------------

@pytest.mark.parametrize("shape", [(1, 16, 16, 3), (1, 31, 40, 3), (1, 40, 31, 3), (1, 1, 1, 3)])
def test_zoo_model_refuses_input_below_its_minimum(shape: tuple[int, ...]) -> None:
    import models

    apply_fn, variables = models.load("hed_vgg16", pretrained=False)
    with pytest.raises(models.InputSizeError) as e:
        jax.eval_shape(apply_fn, variables, jax.ShapeDtypeStruct(shape, jnp.float32))
    assert str(shape) in str(e.value) and "32x32" in str(e.value)
    assert isinstance(e.value, SecnnError)
    out = jax.eval_shape(apply_fn, variables, jax.ShapeDtypeStruct((1, 32, 40, 3), jnp.float32))
    assert out.shape == (1, 32, 40, 1)


def test_checked_apply_keys_programs_like_the_module_apply() -> None:
    import models
    from models.spec import CheckedApply

    spec = models.get_spec("alexnet")
    module = spec.build()
    a, b = CheckedApply(spec, module.apply), CheckedApply(spec, module.apply)
    assert a == b and hash(a) == hash(b)  # the program cache finds the compiled program
    with pytest.raises(models.InputSizeError, match=r"62x62.*63x63"):
        a({}, np.zeros((1, 62, 62, 3), np.float32))


# --- specs with a repeated key -------------------------------------------------------------

@pytest.mark.parametrize("spec", ["secnn(silence=0.5,silence=0.7)",
                                  "secnn(decay=0.5, silence=0.5, decay=0.25)"])
def test_predictor_spec_with_a_repeated_key_is_refused(spec: str) -> None:
    from secnn_jax import predictors

    with pytest.raises(predictors.PredictorError, match="given twice"):
        predictors.from_spec(spec)
    predictors.from_spec("secnn(silence=0.5,decay=0.5)")


def test_tune_method_with_a_repeated_key_is_refused() -> None:
    from experiments.errors import ConfigError
    from experiments.tuning import tune_method

    with pytest.raises(ConfigError, match="'windows' is given twice"):
        tune_method("worst_window(windows=4,windows=1e9)")
    with pytest.raises(ConfigError, match="'margin' is given twice"):
        tune_method("mean(margin=0.01,margin=0.02)")
    assert tune_method("worst_window(windows=4,margin=0.01)").windows == 4


# --- user model factories ------------------------------------------------------------------

def _raises() -> None:
    raise RuntimeError("weights not found at /data/w.npz")


NOT_CALLABLE = 42


def _returns_pair() -> tuple[int, int]:
    return (1, 2)


def _returns_none() -> None:
    return None


def _apply_not_callable() -> tuple[int, dict, object]:
    return (3, {}, lambda image: image)


@pytest.mark.parametrize("attr,message", [
    ("_raises", "the factory raised RuntimeError: weights not found at /data/w.npz"),
    ("NOT_CALLABLE", "int object is not callable"),
    ("_returns_pair", "returned a tuple of length 2, expected a ModelHandle or a tuple"),
    ("_returns_none", "returned a NoneType, expected"),
    ("_apply_not_callable", "apply_fn is a int, not callable"),
])
def test_bad_model_factory_is_a_config_error(attr: str, message: str) -> None:
    from experiments import cells
    from experiments.errors import ConfigError

    name = f"test_input_validation:{attr}"
    with pytest.raises(ConfigError) as e:
        cells.load_model(name)
    assert message in str(e.value) and name in str(e.value)


# --- timing.replay and the public timing functions -----------------------------------------

def _replay_net() -> list[LayerGeom]:
    return [LayerGeom.conv("stem", n=1, h=8, cin=3, cout=8, k=3),
            LayerGeom.dense("fc", n=1, fin=8 * 8 * 8, fout=4)]


def _replay_events(frames: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {g.name: rng.choice(4, size=(frames, *g.in_nhwc)).astype(np.uint8)
            for g in _replay_net()}


EV = _replay_events()


@pytest.mark.parametrize("kw,message", [
    ({"events": {k: v[:0] for k, v in EV.items()}},
     r"events\['stem'\]: no frames \(T = 0\) in events of shape \(0, 1, 8, 8, 3\); expected "
     r"\[T, \.\.\.\] with T >= 1$"),
    ({"events": {k: v.astype(np.int32) for k, v in EV.items()}},
     r"events\['stem'\]: event codes must be uint8.*got int32"),
    ({"events": {k: v.astype(np.float32) for k, v in EV.items()}},
     r"events\['stem'\]: .*got float32"),
    ({"events": {k: np.where(v == 3, 7, v).astype(np.uint8) for k, v in EV.items()}},
     r"events\['stem'\]: event code 7 is not one of"),
    ({"events": {"stem": [[1, 2]], "fc": [[0]]}},
     r"events\['stem'\]: event codes must be uint8 \(ZZ=0, ZN=1, VH=2, VM=3\), got int64"),
    ({"events": [1, 2]}, r"^events: expected a mapping \{layer name: uint8 codes \[T, \.\.\.\]\}, "
                         "got list$"),
    ({"gpus": ["h1000"]}, "^gpus: unknown GPU 'h1000'; known: gtx1080ti, titanx, "),
    ({"gpus": "h1000"}, "gpus: unknown GPU 'h1000'"),
    ({"gpus": ()}, "^gpus: no GPUs requested$"),
    ({"gpus": 3}, "^gpus: expected a GPU name or a sequence of them, got int$"),
    ({"precision": "fp8"}, "precision: unknown precision 'fp8'"),
    ({"frames": [5]}, r"frames=\[5\]: indices outside the 3 replayed frames"),
    ({"frames": [-1]}, r"frames=\[-1\]: indices outside"),
    ({"frames": 0}, "frames=0: expected an integer >= 1"),
    ({"frames": "all"}, "^frames='all': expected None, a count, a slice or a sequence of frame "
                        "indices$"),
    ({"frames": list(range(10))},
     r"^frames=\[0, 1, 2, 3, 4, 5, 6, 7\]: indices outside the 3 replayed frames \[0, 3\)$"),
    ({"frames": [0.5]}, "frame indices must be integers"),
    ({"batch_frames": 0}, "batch_frames=0: expected an integer >= 1"),
    ({"batch_frames": 1.5}, "batch_frames=1.5"),
    ({"frame_offset": -1}, "frame_offset=-1: expected an integer >= 0"),
    ({"schemes": ()}, "schemes: no schemes"),
    ({"schemes": ("dense", "magic")},
     r"^schemes: unknown schemes \['magic'\]; known: dense, winograd, fft, "),
    ({"schemes": 3}, "^schemes: expected a name or a sequence of names, got int$"),
])
def test_replay_refuses_bad_arguments_naming_them(kw: dict, message: str) -> None:
    kw = dict(kw)  # the parametrize dict is shared between runs of the test
    events = kw.pop("events", EV)
    with pytest.raises(timing.ReplayError, match=message) as e:
        timing.replay(_replay_net(), events, ops=(), **kw)
    assert isinstance(e.value, SecnnError) and isinstance(e.value, ValueError)


def test_replay_takes_one_scheme_or_gpu_name_as_one() -> None:
    one = timing.replay(_replay_net(), EV, ops=(), schemes="dense", gpus="h100")
    assert one.schemes == ("dense",) and one.gpus == ("h100",)
    seq = timing.replay(_replay_net(), EV, ops=(), schemes=("dense",), gpus=("h100",))
    np.testing.assert_array_equal(one.get("h100", "dense").total_us,
                                  seq.get("h100", "dense").total_us)


def test_replay_checks_a_layers_events_pair_and_frames_of_a_trace(tmp_path: Path) -> None:
    bad = {k: v.astype(np.int64) for k, v in EV.items()}
    with pytest.raises(timing.ReplayError, match=r"events\['stem'\]"):
        timing.replay((_replay_net(), bad), ops=())
    traces.write_trace(tmp_path / "t", _replay_net(), EV, model="toy", chunk_frames=2)
    with pytest.raises(timing.ReplayError, match=r"frames=\[3\]: indices outside the 3"):
        timing.replay(tmp_path / "t", frames=[3], ops=())


def test_checks_run_before_any_source_is_read() -> None:
    from secnn_jax.timing import validate

    kw = dict(gpus="h100", schemes="dense", precision="fp32", batch_frames=1, frame_offset=0)
    with pytest.raises(timing.ReplayError, match="frames='all'"):  # a trace is never opened
        validate.check_replay("/nonexistent/trace", None, frames="all", **kw)
    assert validate.check_replay("/nonexistent/trace", None, frames=None, **kw) == (
        ("h100",), ("dense",), "fp32")
    with pytest.raises(timing.ReplayError, match="frames='all'"):
        validate.frame_indices("all", 3)
    np.testing.assert_array_equal(validate.frame_indices(slice(1, None), 3), [1, 2])


def test_ladder_and_oracle_events_check_their_events() -> None:
    bad = {k: np.where(v == 3, 4, v).astype(np.uint8) for k, v in EV.items()}
    with pytest.raises(timing.ReplayError, match=r"events\['stem'\]: event code 4"):
        timing.oracle_events(bad)
    with pytest.raises(timing.ReplayError, match=r"predictor_events\['stem'\]"):
        timing.ladder(_replay_net(), EV, bad, ops=())
    with pytest.raises(timing.ReplayError, match="gpus: unknown GPU"):
        timing.ladder(_replay_net(), EV, EV, ops=(), gpus=("voodoo",))


def test_get_gpu_and_precision_raise_replay_errors() -> None:
    with pytest.raises(timing.ReplayError, match="unknown GPU 'h1000'"):
        timing.get_gpu("h1000")
    with pytest.raises(timing.ReplayError, match="unknown precision"):
        timing.canonical_precision("fp8")


# --- frames in bfloat16 and float16 --------------------------------------------------------

@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_frames_are_accepted(dtype: object) -> None:
    from _cnns import plain_model
    from conftest import video_frames

    import secnn_jax as sj
    from secnn_jax.pipeline import FramesError, check_frames

    x = np.asarray(video_frames(3, 32, 1)).astype(dtype)
    assert check_frames(x).dtype == x.dtype
    assert check_frames(jnp.asarray(x)).dtype == x.dtype
    apply_fn, params = plain_model()
    params = jax.tree.map(lambda a: a.astype(dtype), params)
    logits, events = sj.run_stream(apply_fn, params, x, sj.predictors.secnn())
    assert logits.shape[:2] == (3, 1) and all(v.dtype == np.uint8 for v in events.values())
    x[1, 0, 0, 0, 0] = np.nan
    with pytest.raises(FramesError, match="frame 1 contains NaN"):
        check_frames(x)
    with pytest.raises(FramesError, match="expected numeric frames"):
        check_frames(np.zeros((1, 1, 4, 4, 3), bool))
