"""Every path that runs the pipeline sees the same bits (issue 18).

``run_stream``, ``iter_stream``, the cached stream program the studies' cell engine runs (with
its in-jit reducers), the sharded stream and a Python loop over the jitted ``pipeline`` step
must give the same event codes and fires maps, bit for bit, for every built-in predictor, at
tau = 0 and above, on models with in-model division, inference BatchNorm, depthwise convs and
residual adds. The reference is the jitted step loop (what a user writes by hand); the compiled
scan used to lose every value hit behind an in-model division (LLVM contracted the recomputed
``(x - mean) / std`` into the compare's subtraction: ``secnn_jax.events``, ``missed``).
"""

from __future__ import annotations

import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import video_frames

import secnn_jax as sj
from secnn_jax import events as ev
from secnn_jax import predictors

pipeline_mod = sys.modules["secnn_jax.pipeline"]


class DivisionCNN(nn.Module):
    """The issue's reproduction: ``(x - 0.45) / 0.226``, conv, ReLU, mean, dense."""

    @nn.compact
    def __call__(self, x):
        x = (x - 0.45) / 0.226
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


class AffineCNN(nn.Module):
    """Products feeding additions before the first layer (FMA-contractible chains)."""

    @nn.compact
    def __call__(self, x):
        x = (x * 0.7 - 0.3) * 1.37 + 0.11
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


class HardCNN(nn.Module):
    """In-model normalisation by division, inference BatchNorm, depthwise conv, residual add."""

    @nn.compact
    def __call__(self, x):
        x = (x - jnp.array([0.485, 0.456, 0.406])) / jnp.array([0.229, 0.224, 0.225])
        x = nn.Conv(16, (3, 3), strides=2, name="stem")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, name="stem_bn")(x))
        y = nn.Conv(16, (3, 3), feature_group_count=16, name="dw")(x)
        y = nn.relu(nn.BatchNorm(use_running_average=True, name="dw_bn")(y))
        y = nn.Conv(16, (1, 1), name="pw")(y)
        x = nn.relu(x + y)  # residual add
        x = nn.Conv(24, (3, 3), strides=2, name="conv")(x) / 3.0
        return nn.Dense(10, name="head")(nn.relu(x).mean(axis=(1, 2)))


def _init(module: nn.Module, x: np.ndarray, seed: int = 0) -> dict:
    variables = module.init(jax.random.PRNGKey(seed), x)
    rng = np.random.default_rng(seed)
    # Non-trivial BatchNorm statistics, so inference BatchNorm divides by a real sqrt(var + eps).
    stats = jax.tree_util.tree_map(
        lambda a: (rng.uniform(0.5, 2.0, a.shape) if a.ndim else a).astype(np.float32),
        variables.get("batch_stats", {}))
    return {**variables, **({"batch_stats": stats} if stats else {})}


def _loop(apply_fn, params, frames, predictor, tau) -> tuple[np.ndarray, ev.EventMaps]:
    """The reference: a Python loop over ``jax.jit(pipeline(...))``, as a user writes it."""
    layers = sj.find_layers(apply_fn, params, frames[0])
    step = jax.jit(sj.pipeline(apply_fn, layers, predictor, tau))
    state = predictor.init(layers)
    logits, maps = [], []
    for x in frames:
        state, lg, e = step(params, state, x)
        logits.append(np.asarray(lg))
        maps.append(e.map(np.asarray))
    stacked = jax.tree_util.tree_map(lambda *a: np.stack(a), *maps)
    return np.stack(logits), stacked


def _assert_same(got: ev.EventMaps, want: ev.EventMaps, what: str) -> None:
    assert isinstance(got, ev.EventMaps), what
    assert got.predictor == want.predictor, what
    assert list(got) == list(want), what
    for name in want:
        g, w = np.asarray(got[name]), np.asarray(want[name])
        assert g.dtype == np.uint8 and g.shape == w.shape, (what, name)
        if not np.array_equal(g, w):
            diff = int((g != w).sum())
            pytest.fail(f"{what}: layer {name}: {diff} of {w.size} codes differ; counts "
                        f"{ev.count(g).tolist()} vs {ev.count(w).tolist()}")
        np.testing.assert_array_equal(np.asarray(got.fires[name]), np.asarray(want.fires[name]),
                                      err_msg=f"{what}: fires of {name}")


def _all_paths(apply_fn, params, frames, predictor, tau) -> None:
    """run_stream, iter_stream (chunks of 3, a padded last chunk), the cell engine's program
    (reducers + kept events) and the sharded stream all equal the jitted step loop."""
    _, want = _loop(apply_fn, params, frames, predictor, tau)
    _, got = sj.run_stream(apply_fn, params, frames, predictor, tau)
    _assert_same(got.map(np.asarray), want, "run_stream")
    chunks = list(sj.iter_stream(apply_fn, params, frames, predictor, tau, chunk_size=3))
    joined = jax.tree_util.tree_map(lambda *a: np.concatenate(a),
                                    *[c.events.map(np.asarray) for c in chunks])
    _assert_same(joined, want, "iter_stream")
    layers = sj.find_layers(apply_fn, params, frames[0])
    program = sj.stream_program(apply_fn, params, frames[0], predictor, layers=layers,
                                reducers={"counts": sj.EventCounts(layers)})
    out = program.scan(params, predictor.init(layers), jnp.asarray(frames),
                       jnp.ones(frames.shape[0], bool), program.taus(tau))
    _assert_same(out.events.map(np.asarray), want, "stream_program (cell engine)")
    counts = np.stack([ev.count(np.asarray(want[lyr.name]).reshape(frames.shape[0], -1),
                                axis=-1) for lyr in layers], axis=1)
    np.testing.assert_array_equal(np.asarray(out.reduced["counts"]), counts)


@pytest.fixture(scope="module")
def video() -> np.ndarray:
    """Seven real bikes.mp4 frames, two streams, 32x32, as [0, 1] pixels."""
    return (video_frames(7, 32, 2) + 1.0) / 2.0


@pytest.mark.parametrize("model_cls", [DivisionCNN, AffineCNN])
def test_identical_frames_are_value_hits_behind_in_model_arithmetic(model_cls) -> None:
    """The issue's reproduction: three identical frames, last_value, tau = 0."""
    f = np.random.default_rng(0).random((1, 8, 8, 3), np.float32)
    frames = np.stack([f, f, f])
    model = model_cls()
    params = model.init(jax.random.PRNGKey(0), f)
    _, events = sj.run_stream(model.apply, params, frames, predictors.last_value())
    layer0 = np.asarray(events["Conv_0"])
    n = layer0[0].size
    assert ev.count(layer0[0]).tolist() == [0, n, 0, 0]  # cold start: everything ZN
    for t in (1, 2):  # every neuron fired on the frame before and repeats exactly
        assert ev.count(layer0[t]).tolist() == [0, 0, n, 0], t
    _all_paths(model.apply, params, frames, predictors.last_value(), 0.0)


PREDICTORS = {
    "zero": predictors.zero,
    "last_value": predictors.last_value,
    "secnn": predictors.secnn,
    "secnn(0.5,0.5)": lambda: predictors.secnn(0.5, 0.5),
    "accumulated": predictors.accumulated,
}


@pytest.mark.parametrize("name,tau", [*((n, 0.0) for n in [*PREDICTORS, "mean"]),
                                      ("zero", 0.05), ("secnn", 0.05), ("accumulated", 0.05)])
def test_every_path_gives_the_loops_bits(video: np.ndarray, name: str, tau: float) -> None:
    model = HardCNN()
    params = _init(model, video[0])
    if name == "mean":
        pred = predictors.mean(predictors.mean_stats(model.apply, params, video[:3]))
    else:
        pred = PREDICTORS[name]()
    _all_paths(model.apply, params, video, pred, tau)


def test_sharded_stream_gives_the_loops_bits(video: np.ndarray) -> None:
    from secnn_jax import distributed

    model = HardCNN()
    params = _init(model, video[0])
    _, want = _loop(model.apply, params, video, predictors.secnn(), 0.0)
    _, got = distributed.run_stream_sharded(model.apply, params, video, predictors.secnn())
    _assert_same(got.map(np.asarray), want, "run_stream_sharded")


def test_fires_are_the_real_inputs_beyond_tau(video: np.ndarray) -> None:
    """fires == |x| > tau of the layer's real input, whatever the predictor.

    The first layer's real input is the plain forward pass's for every predictor and tau; the
    zero predictor at tau = 0 reproduces the plain pass at every layer (its parallel phase adds
    exact zeros). Deeper layers at tau > 0 see inputs the dropped deltas changed, so there the
    fires maps are checked against the zero predictor's own codes (ZN exactly where it fires).
    """
    model = HardCNN()
    params = _init(model, video[0])
    layers = sj.find_layers(model.apply, params, video[0])
    plain = jax.jit(sj.layer_inputs(model.apply, layers))
    inputs = {lyr.name: np.stack([np.asarray(plain(params, x)[1][lyr.name]) for x in video])
              for lyr in layers}
    first = layers[0].name
    for tau in (0.0, 0.05):
        _, e = sj.run_stream(model.apply, params, video, predictors.zero(), tau)
        for lyr in layers:
            np.testing.assert_array_equal(np.asarray(e[lyr.name]) == ev.ZN,
                                          np.asarray(e.fires[lyr.name]))
            if tau == 0.0 or lyr.name == first:
                np.testing.assert_array_equal(np.asarray(e.fires[lyr.name]),
                                              np.abs(inputs[lyr.name]) > tau)
        for spec in PREDICTORS:
            _, e = sj.run_stream(model.apply, params, video, PREDICTORS[spec](), tau)
            np.testing.assert_array_equal(np.asarray(e.fires[first]),
                                          np.abs(inputs[first]) > tau, err_msg=spec)


def test_missed_is_abs_delta_beyond_tau_on_exact_values() -> None:
    """missed() equals |x - P| > tau wherever the subtraction is exact, and x != P at tau 0."""
    rng = np.random.default_rng(1)
    x = rng.integers(-64, 64, 4096).astype(np.float32) / 8  # differences exact in float32
    p = rng.integers(-64, 64, 4096).astype(np.float32) / 8
    for tau in (0.0, 0.125, 0.5, 3.0):
        np.testing.assert_array_equal(np.asarray(ev.missed(jnp.asarray(x), jnp.asarray(p), tau)),
                                      np.abs(x - p) > tau)
    np.testing.assert_array_equal(np.asarray(ev.missed(x, p, 0.0)), x != p)


@pytest.mark.parametrize("spec,tau", [("last_value", 0.0), ("accumulated", 0.05)])
def test_cell_engine_counts_equal_the_loops(spec: str, tau: float) -> None:
    """The studies' cell engine (experiments.cells: chunks of 3, a padded last chunk, tau as the
    program takes it) counts exactly the loop's codes on a model with an in-model division."""
    from experiments import cells
    from secnn_jax import datasources

    stream = datasources.pan("astronaut", n_frames=7, overlap=0.9, size=32)
    model = HardCNN()
    prep = lambda img: np.asarray(img, np.float32) / 255.0
    ws = cells.Workspace({"hard": cells.ModelHandle("hard", model.apply, None, prep)},
                         {"pan": stream}, frames=7, chunk_size=3, progress=False)
    frames = ws.frames("hard", "pan")
    params = _init(model, frames[0])
    ws.models["hard"] = cells.ModelHandle("hard", model.apply, params, prep)
    res = ws.run("hard", "pan", spec, tau)
    _, want = _loop(model.apply, params, frames, predictors.from_spec(spec), tau)
    layers = sj.find_layers(model.apply, params, frames[0])
    counts = np.stack([ev.count(np.asarray(want[lyr.name]).reshape(7, -1), axis=-1)
                       for lyr in layers], axis=1)
    np.testing.assert_array_equal(res.counts, counts)
