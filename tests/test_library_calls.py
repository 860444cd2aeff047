"""The library as users call it: one compiled program across calls, and behaviour no other test
pins (padded chunks leave the predictor state alone, bf16 models with float32 predictions, the
first pan frame).

Compiles and traces are counted, not timed: a Python side effect in ``apply_fn`` counts model
traces, and JAX's monitoring events count jaxpr traces and backend compiles.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cnns import HalvedPredictor, LinenCNN
from conftest import video_frames
from flax import linen as nn

import secnn_jax as sj
from secnn_jax import datasources, predictors

# The module, not the function of the same name that secnn_jax exports.
pl = importlib.import_module("secnn_jax.pipeline")
programs = importlib.import_module("secnn_jax.streaming.programs")

_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_COMPILE = "/jax/core/compile/backend_compile_duration"


class _Counts:
    """Model traces (calls of ``apply_fn``), jit traces and XLA compiles."""

    def __init__(self) -> None:
        self.model = 0
        self.traces = 0
        self.compiles = 0

    def snapshot(self) -> tuple[int, int, int]:
        return self.model, self.traces, self.compiles


@contextlib.contextmanager
def _counting() -> Iterator[_Counts]:
    counts = _Counts()

    def listener(event: str, _secs: float, **_kw: object) -> None:
        if event == _TRACE:
            counts.traces += 1
        elif event == _COMPILE:
            counts.compiles += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture()
def counted_model() -> tuple[object, object, _Counts]:
    """A Linen CNN whose ``apply_fn`` counts its own calls (each one is a trace of the model)."""
    module = LinenCNN()
    params = module.init(jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 3)))
    counts = _Counts()

    def apply_fn(p, x):
        counts.model += 1
        return module.apply(p, x)

    pl.clear_program_cache()
    return apply_fn, params, counts


def _delta(before: tuple[int, int, int], after: tuple[int, int, int]) -> tuple[int, ...]:
    return tuple(a - b for a, b in zip(after, before, strict=True))


def test_second_call_neither_traces_nor_compiles(counted_model):
    apply_fn, params, model_calls = counted_model
    frames = video_frames(4, 32, 2)
    other = video_frames(7, 32, 2)[3:]  # same shape, other real frames
    with _counting() as counts:
        first = sj.run_stream(apply_fn, params, frames, predictors.secnn(silence=0.5))
        assert model_calls.model > 0 and counts.compiles > 0
        before = (model_calls.model, counts.traces, counts.compiles)
        # A fresh Python call, a fresh frames array and a fresh predictor object, as in a loop
        # over clips: nothing is traced or compiled again.
        again = sj.run_stream(apply_fn, params, np.array(other), predictors.secnn(silence=0.5))
        assert _delta(before, (model_calls.model, counts.traces, counts.compiles)) == (0, 0, 0)
        # A new tau value is an argument of the same program.
        tau = sj.run_stream(apply_fn, params, other, predictors.secnn(silence=0.5), tau=0.05)
        assert _delta(before, (model_calls.model, counts.traces, counts.compiles)) == (0, 0, 0)
        per_layer = {"stem": 0.1, "head": 0.02}
        sj.run_stream(apply_fn, params, other, predictors.secnn(silence=0.5), tau=per_layer)
        assert _delta(before, (model_calls.model, counts.traces, counts.compiles)) == (0, 0, 0)
    assert not np.array_equal(first[0], again[0])  # it did run on the other frames
    assert any(not np.array_equal(again[1][k], tau[1][k]) for k in again[1])
    info = sj.program_cache_info()["programs"]
    assert info.hits >= 3 and info.size == 1


def test_new_shapes_and_predictor_configs_compile_anew(counted_model):
    apply_fn, params, model_calls = counted_model
    frames = video_frames(4, 32, 2)
    with _counting() as counts:
        sj.run_stream(apply_fn, params, frames, predictors.secnn())
        before = (model_calls.model, counts.traces, counts.compiles)
        sj.run_stream(apply_fn, params, frames[:, :1], predictors.secnn())  # N = 1
        d = _delta(before, (model_calls.model, counts.traces, counts.compiles))
        assert d[0] > 0 and d[2] > 0  # new layer shapes: the model is traced again
        before = (model_calls.model, counts.traces, counts.compiles)
        sj.run_stream(apply_fn, params, frames[:3], predictors.secnn())  # T = 3: jit recompiles
        d = _delta(before, (model_calls.model, counts.traces, counts.compiles))
        assert d[0] == 0 and d[2] > 0  # ... but the layers are the cached ones
        before = (model_calls.model, counts.traces, counts.compiles)
        sj.run_stream(apply_fn, params, frames, predictors.secnn(silence=0.25))  # new config
        assert _delta(before, (model_calls.model, counts.traces, counts.compiles))[2] > 0


def test_cached_results_equal_the_uncached_path(counted_model):
    """Cache hits give what a freshly built, uncached scan of :func:`pipeline` gives."""
    apply_fn, params, _ = counted_model
    frames = video_frames(5, 32, 2)
    pred = predictors.secnn()
    for tau in (0.0, 0.02, 0.0):  # the third call is a cache hit after a tau change
        logits, events = sj.run_stream(apply_fn, params, frames, predictors.secnn(), tau=tau)
        layers = sj.find_layers(apply_fn, params, jnp.asarray(frames[0]))
        run = sj.scan_program(sj.pipeline(apply_fn, layers, pred, tau))
        ref = run(params, pred.init(layers), jnp.asarray(frames), jnp.ones(5, bool))
        ref_logits, ref_events = ref.logits, ref.events
        np.testing.assert_allclose(logits, ref_logits, rtol=1e-6, atol=1e-6)
        assert set(events) == set(ref_events)
        for name in events:
            np.testing.assert_array_equal(events[name], ref_events[name])


def test_iter_stream_shares_the_cache_and_padding_does_not_recompile(counted_model):
    apply_fn, params, model_calls = counted_model
    frames = video_frames(6, 32, 2)
    with _counting() as counts:
        list(sj.iter_stream(apply_fn, params, frames, predictors.last_value(), chunk_size=4))
        before = (model_calls.model, counts.traces, counts.compiles)
        # A generator this time, a short last chunk again, another tau: all one program.
        gen = (f for f in video_frames(9, 32, 2)[3:])
        chunks = list(sj.iter_stream(apply_fn, params, gen, predictors.last_value(), tau=0.1,
                                     chunk_size=4))
        assert _delta(before, (model_calls.model, counts.traces, counts.compiles)) == (0, 0, 0)
    assert [c.n_frames for c in chunks] == [4, 2]


def test_user_predictors_are_cached_by_identity_or_by_their_key(counted_model):
    apply_fn, params, _ = counted_model
    frames = video_frames(3, 32, 2)

    Halved = HalvedPredictor

    mine = Halved()
    with _counting() as counts:
        sj.run_stream(apply_fn, params, frames, mine)
        n = counts.compiles
        sj.run_stream(apply_fn, params, frames, mine)  # the same object: a cache hit
        assert counts.compiles == n
        sj.run_stream(apply_fn, params, frames, Halved())  # a new object: never assumed equal
        assert counts.compiles > n
        keyed = Halved()
        keyed.config_key = ("halved", 0.5)
        sj.run_stream(apply_fn, params, frames, keyed)
        n = counts.compiles
        twin = Halved()
        twin.config_key = ("halved", 0.5)
        sj.run_stream(apply_fn, params, frames, twin)  # an equal key: the same program
        assert counts.compiles == n


def test_program_cache_is_bounded(counted_model, monkeypatch):
    apply_fn, params, _ = counted_model
    monkeypatch.setattr(programs._PROGRAMS, "maxsize", 2)
    frames = video_frames(2, 32, 2)
    for silence in (0.1, 0.2, 0.3, 0.4):
        sj.run_stream(apply_fn, params, frames, predictors.secnn(silence=silence))
    assert sj.program_cache_info()["programs"].size == 2
    sj.clear_program_cache()
    assert sj.program_cache_info()["programs"].size == 0


def test_unhashable_apply_fn_runs_uncached():
    module = LinenCNN()
    params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))

    class Model:  # __eq__ without __hash__: unhashable
        def __eq__(self, other):
            return self is other

        def __call__(self, p, x):
            return module.apply(p, x)

    frames = video_frames(2, 32, 1)
    before = sj.program_cache_info()["programs"].uncacheable
    logits, _ = sj.run_stream(Model(), params, frames, predictors.zero())
    assert sj.program_cache_info()["programs"].uncacheable == before + 1
    ref = jax.vmap(lambda f: module.apply(params, f))(jnp.asarray(frames))
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Behaviour pinned for issue 14, item 4


def _eager_state(apply_fn, params, frames, pred):
    """The predictor state after stepping through exactly ``frames``, one eager step each."""
    layers = sj.find_layers(apply_fn, params, jnp.asarray(frames[0]))
    step = sj.pipeline(apply_fn, layers, pred)
    state = pred.init(layers)
    for x in frames:
        state, _, _ = step(params, state, jnp.asarray(x))
    return state


def test_padded_frames_of_a_short_last_chunk_leave_the_state_alone():
    """5 frames in chunks of 4: the last chunk holds 1 real frame and 3 padded copies of it.

    The ``secnn`` predictor's firing rates would grow on every padded copy; the state after the
    stream must be the state after exactly the 5 real frames.
    """
    module = LinenCNN()
    params = module.init(jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 3)))
    frames = video_frames(5, 32, 2)
    pred = predictors.secnn(silence=0.5, decay=0.75)
    chunks = list(sj.iter_stream(module.apply, params, frames, pred, chunk_size=4))
    assert [c.n_frames for c in chunks] == [4, 1]
    ref = _eager_state(module.apply, params, frames, pred)
    padded = _eager_state(module.apply, params, np.concatenate([frames, frames[-1:]]), pred)
    got = chunks[-1].state
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(ref)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), got, ref)
    # The check has teeth: one more (padded) frame does change the rates.
    rates = [(np.asarray(got[k]["rate"]), np.asarray(padded[k]["rate"])) for k in got]
    assert any(not np.allclose(a, b) for a, b in rates)


class _BF16CNN(nn.Module):
    """A small CNN computing in bfloat16 with bfloat16 parameters."""

    @nn.compact
    def __call__(self, x):
        kw = {"dtype": jnp.bfloat16, "param_dtype": jnp.bfloat16}
        x = nn.relu(nn.Conv(8, (3, 3), strides=2, name="stem", **kw)(x))
        x = nn.relu(nn.Conv(8, (3, 3), feature_group_count=8, name="dw", **kw)(x))
        x = nn.relu(nn.Conv(16, (1, 1), name="pw", **kw)(x))
        return nn.Dense(10, name="head", **kw)(x.mean((1, 2)))


class _Float32LastValue:
    """Last value kept and predicted in float32, whatever the layers' dtype."""

    def init(self, layers):
        return {lyr.name: jnp.zeros(lyr.in_shape, jnp.float32) for lyr in layers}

    def predict(self, state):
        return dict(state)

    def update(self, state, inputs):
        return {k: inputs[k].astype(jnp.float32) for k in state}


def test_bf16_model_with_float32_predictions_matches_its_forward_pass():
    module = _BF16CNN()
    frames = video_frames(4, 32, 2)
    params = module.init(jax.random.PRNGKey(1), jnp.zeros((2, 32, 32, 3)))
    layers = sj.find_layers(module.apply, params, jnp.asarray(frames[0]))
    assert {np.dtype(lyr.dtype) for lyr in layers} == {np.dtype(jnp.bfloat16)}
    logits, events = sj.run_stream(module.apply, params, frames, _Float32LastValue(), tau=0.0)
    plain = jax.vmap(lambda f: module.apply(params, f))(jnp.asarray(frames))
    assert logits.shape == plain.shape
    err = np.abs(np.asarray(logits, np.float32) - np.asarray(plain, np.float32)).max()
    scale = np.abs(np.asarray(plain, np.float32)).max()
    assert err <= 2e-2 * scale, (err, scale)  # a few bf16 ulps of the logit scale
    # Frames after the first are predicted from bf16 values held in float32: value hits occur.
    assert any(np.isin(np.asarray(events[k][1:]), [2]).any() for k in events)


def test_first_pan_frame_is_the_window_at_x0():
    import skimage.data

    img = skimage.data.astronaut()
    h, w, _ = img.shape
    side = 128
    frames = list(datasources.pan("astronaut", n_frames=3, overlap=0.75, size=side))
    top = (h - side) // 2
    np.testing.assert_array_equal(frames[0], img[top:top + side, 0:side])
    step = round(0.25 * side)
    np.testing.assert_array_equal(frames[1], img[top:top + side, step:step + side])
    np.testing.assert_array_equal(frames[2], img[top:top + side, 2 * step:2 * step + side])
