"""One error type for bad input (``secnn_jax.SecnnError``), and what a user sees for the bad inputs
of issue 14's findings 6 (the zoo CLIs), 7 (run_stream frames and tau) and 8 (a truncated
checkpoint's restore)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cnns import LinenCNN, plain_model
from _model_helpers import zoo_cache  # noqa: F401
from conftest import video_frames

import models
import secnn_jax as sj
from experiments.errors import CellError, MetricError, UnknownCellError
from models import _cli
from models.preprocessing import ImageError, ImageTypeError
from models.registry import MissingWeightsError
from models.spec import InputSizeError
from secnn_jax.accounting import AccountingError
from secnn_jax.adapters import AdapterError
from secnn_jax.datasources import StreamError
from secnn_jax.distributed import DistributedError
from secnn_jax.layers import LayerError, UnsupportedModelError
from secnn_jax.netops import NetOpError
from secnn_jax.phases import TauError
from secnn_jax.pipeline import FramesError
from secnn_jax.predictors import PredictorError, PredictorTypeError
from secnn_jax.timing.errors import ReplayError, UnknownResultError
from secnn_jax.traces import TraceError
from secnn_jax.traces.codec import UnknownLayerError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("cls,builtin", [
    (StreamError, ValueError), (FramesError, ValueError), (TauError, ValueError),
    (LayerError, ValueError), (UnsupportedModelError, NotImplementedError),
    (PredictorError, ValueError), (PredictorTypeError, TypeError), (AdapterError, TypeError),
    (models.ConversionError, ValueError), (models.UnknownModelError, ValueError),
    (models.TorchReaderError, ValueError), (models.CheckpointError, ValueError),
    (models.MissingCheckpointError, FileNotFoundError),
    (MissingWeightsError, FileNotFoundError), (InputSizeError, ValueError),
    (ImageError, ValueError), (ImageTypeError, TypeError),
    (NetOpError, ValueError), (DistributedError, ValueError), (AccountingError, ValueError),
    (ReplayError, ValueError), (UnknownResultError, KeyError), (MetricError, ValueError),
    (CellError, ValueError), (UnknownCellError, KeyError), (TraceError, ValueError),
    (UnknownLayerError, KeyError),
])
def test_every_bad_input_error_is_a_secnn_error_and_keeps_its_builtin(cls, builtin):
    assert issubclass(cls, sj.SecnnError) and issubclass(cls, builtin)


def test_secnn_error_is_exported_and_the_docstring_points_to_the_readme():
    from secnn_jax.errors import SecnnError

    assert sj.SecnnError is SecnnError and "SecnnError" in sj.__all__
    assert "CONTRACT" not in sj.__doc__ and "README.md" in sj.__doc__
    assert "CONTRACT" not in models.__doc__


def test_bad_inputs_raise_secnn_errors():
    """A sample across modules: each is the user's input, so each is a SecnnError."""
    cases = [
        lambda: models.load("bogus"),
        lambda: models.preprocess("resnet50", np.zeros((8, 8), np.uint8)),
        lambda: models.preprocess("resnet50", np.zeros((8, 8, 3), np.float32)),
        lambda: models.get_spec("alexnet").check_input_size(16),
        lambda: sj.predictors.secnn(silence=2.0),
        lambda: sj.predictors.secnn(decay=float("nan")),
        lambda: sj.nnx_apply(object()),
        lambda: sj.find_layers(lambda p, x: x.sum(), {}, jnp.ones((1, 4))),
        lambda: sj.datasources.open_stream("no-such-stream"),
    ]
    for case in cases:
        with pytest.raises(sj.SecnnError):
            case()


def test_issue22_library_bad_inputs_raise_secnn_errors(tmp_path: Path) -> None:
    """Issue 22: find_ops, distributed, metrics, the cell engine, replay results and traces
    raise SecnnError subclasses (which keep their built-in error) naming the bad input."""
    from experiments import cells, metrics
    from secnn_jax import distributed, netops, timing, traces

    apply_fn, params = plain_model()
    x = jnp.zeros((1, 16, 16, 3))
    layers = sj.find_layers(apply_fn, params, x)
    events = {layer.name: np.zeros((1, *layer.in_shape), np.uint8) for layer in layers}
    result = timing.replay((layers, events), gpus="h100", schemes="dense")
    traces.write_trace(tmp_path / "t", layers, events)
    trace = traces.read_trace(tmp_path / "t")
    ws = cells.Workspace({}, {}, frames=1, chunk_size=1)
    cases = [
        (lambda: timing.replay((layers, events), gpus=["rtx4090"]), ReplayError, "rtx4090"),
        (lambda: result.get("h100", "winograd"), UnknownResultError, "winograd"),
        (lambda: netops.find_ops(apply_fn, params, "not an array", layers), NetOpError,
         "x must be an array"),
        (lambda: distributed.stream_mesh([]), DistributedError, "no devices"),
        (lambda: distributed.merge_stream_shards([]), DistributedError, "no shards"),
        (lambda: metrics.frame_scores("top1", np.zeros(3), np.zeros(3)), MetricError,
         "shape"),
        (lambda: cells.Workspace({}, {}, frames=0), CellError, "frames must be >= 1"),
        (lambda: ws.model("nosuch"), UnknownCellError, "nosuch"),
        (lambda: trace.events("nosuch"), UnknownLayerError, "nosuch"),
        (lambda: traces.write_trace(tmp_path / "u", layers, events, codec="nosuch"),
         TraceError, "nosuch"),
    ]
    for case, cls, words in cases:
        with pytest.raises(cls, match=words) as info:
            case()
        assert isinstance(info.value, sj.SecnnError)


# ---------------------------------------------------------------------------------------------
# Finding 7: run_stream's frames and tau


@pytest.fixture(scope="module")
def linen() -> tuple[object, object, np.ndarray]:
    module = LinenCNN()
    frames = video_frames(3, 32, 2)
    return module.apply, module.init(jax.random.PRNGKey(0), jnp.asarray(frames[0])), frames


def test_frames_without_the_stream_axis_are_named(linen):
    apply_fn, params, frames = linen
    no_n = frames[:, 0]  # [T, H, W, C]: Flax runs each frame unbatched
    with pytest.raises(FramesError, match=r"frames of shape \(3, 32, 32, 3\) have no stream "
                                          r"axis N.*frames\[:, None\]"):
        sj.run_stream(apply_fn, params, no_n, sj.predictors.zero())
    with pytest.raises(FramesError, match="no stream axis N"):
        list(sj.iter_stream(apply_fn, params, iter(no_n), sj.predictors.zero()))


def test_frames_without_the_stream_axis_for_a_model_that_fails_on_them():
    """A plain-JAX model (NCHW inside): a 3-D frame fails in it; the error names the axis."""
    apply_fn, params = plain_model()
    frames = video_frames(2, 16, 1)
    sj.run_stream(apply_fn, params, frames, sj.predictors.zero())  # the right shape runs
    with pytest.raises(FramesError, match=r"no stream axis N") as err:
        sj.run_stream(apply_fn, params, frames[:, 0], sj.predictors.zero())
    assert err.value.__cause__ is not None  # the model's own error stays attached


def test_a_model_error_is_not_mistaken_for_a_missing_axis():
    def broken(params, x):
        raise RuntimeError("a bug in the model")

    with pytest.raises(RuntimeError, match="a bug in the model"):
        sj.run_stream(broken, {}, np.ones((2, 1, 8, 8, 3), np.float32), sj.predictors.zero())


@pytest.mark.parametrize("shape,message", [
    ((3, 2, 1, 32, 32, 3), r"expected \[T, N, H, W, C\].*got a 6-D array of shape "
                           r"\(3, 2, 1, 32, 32, 3\)"),
    ((3, 0, 32, 32, 3), r"no streams \(N = 0\) in shape \(3, 0, 32, 32, 3\)"),
    ((0, 2, 32, 32, 3), r"no frames \(T = 0\) in shape \(0, 2, 32, 32, 3\)"),
    ((3, 2), r"got a 2-D array"),
    ((3, 2, 0, 32, 3), r"has an empty axis"),
])
def test_frames_of_the_wrong_shape_are_named(linen, shape, message):
    apply_fn, params, _ = linen
    with pytest.raises(FramesError, match=message):
        sj.run_stream(apply_fn, params, np.zeros(shape, np.float32), sj.predictors.zero())


@pytest.mark.parametrize("tau,message", [
    (np.array([0.01, 0.02]), r"tau must be one number, got an array of shape \(2,\); for one "
                             r"tau per layer pass a dict"),
    (float("nan"), r"tau must be finite and >= 0, got nan"),
    (-0.1, r"tau must be finite and >= 0, got -0.1"),
    ({"stem": -1.0}, r"tau for layer 'stem' must be finite and >= 0, got -1.0"),
    ({"nope": 0.1}, r"tau names unknown layers \['nope'\]"),
    ("0.1", r"tau must be a number"),
])
def test_bad_tau_is_named(linen, tau, message):
    apply_fn, params, frames = linen
    with pytest.raises(TauError, match=message):
        sj.run_stream(apply_fn, params, frames, sj.predictors.zero(), tau=tau)


def test_a_zero_dimensional_array_is_a_valid_tau(linen):
    apply_fn, params, frames = linen
    a, _ = sj.run_stream(apply_fn, params, frames, sj.predictors.zero(), tau=np.float32(0.0))
    b, _ = sj.run_stream(apply_fn, params, frames, sj.predictors.zero(), tau=0.0)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Finding 6: the zoo command lines


def _cli_run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300, check=False)


def _last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def test_info_with_an_unknown_model_is_one_line_and_status_1():
    out = _cli_run("models.info", "--model=bogus")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert _last_line(out.stderr) == (
        "error: UnknownModelError: unknown model 'bogus'; valid names: "
        + ", ".join(models.available()))


def test_info_below_the_minimum_size_is_one_line_and_status_1():
    out = _cli_run("models.info", "--model=alexnet", "--size=16")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert _last_line(out.stderr) == (
        "error: InputSizeError: alexnet: input size 16 is below the smallest the architecture "
        "takes (63x63; native 224)")


def test_convert_with_an_unreadable_file_is_one_line_and_status_1(tmp_path):
    bad = tmp_path / "resnet50.pth"
    bad.write_bytes(b"not a torch file")
    out = _cli_run("models.convert", "--model=resnet50", f"--torch_weights={bad}",
                   f"--cache_dir={tmp_path / 'cache'}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert _last_line(out.stderr).startswith(f"error: TorchReaderError: {bad}: ")
    assert not (tmp_path / "cache" / "resnet50").exists()


def test_cli_wrapper_keeps_the_traceback_of_anything_else():
    def bug(argv):
        raise RuntimeError("a genuine bug")

    def bad_input(argv):
        raise models.MissingCheckpointError("no checkpoint\n  python -m models.convert ...")

    with pytest.raises(RuntimeError, match="a genuine bug"):
        _cli.one_line_errors(bug)([])
    with pytest.raises(SystemExit) as exit_:
        _cli.one_line_errors(bad_input)([])
    assert exit_.value.code == ("error: MissingCheckpointError: no checkpoint python -m "
                                "models.convert ...")


# ---------------------------------------------------------------------------------------------
# Finding 8: a truncated checkpoint


def test_truncated_checkpoint_error_is_the_last_thing_printed(tmp_path, zoo_cache):  # noqa: F811
    """Orbax reads every array concurrently; the failing restore must let the other reads
    settle before its event loop closes, or their callbacks print "Event loop is closed"."""
    models.load("efficientnet_lite0", cache_dir=zoo_cache)  # converted once per session
    shutil.copytree(zoo_cache / "efficientnet_lite0", tmp_path / "efficientnet_lite0")
    data = sorted((p for p in (tmp_path / "efficientnet_lite0" / "state").rglob("*")
                   if p.is_file() and p.parent.name == "d"), key=lambda p: p.stat().st_size)
    data[-1].write_bytes(data[-1].read_bytes()[:data[-1].stat().st_size // 2])
    code = ("import models\n"
            f"models.load('efficientnet_lite0', cache_dir={str(tmp_path)!r})\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=300, check=False)
    assert out.returncode == 1
    assert "Event loop is closed" not in out.stderr
    assert _last_line(out.stderr).startswith(
        f"models.checkpoints.CheckpointError: {tmp_path / 'efficientnet_lite0' / 'state'}: "
        "corrupt or truncated checkpoint")
