"""Predictor semantics, per-stream independence, jit vs eager, scan vs stepping by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cnns import HalvedPredictor, linen_model, plain_model

import secnn_jax as sj
from secnn_jax import predictors


@pytest.fixture(scope="module")
def model(frames):
    x = jnp.asarray(frames[0])
    apply_fn, params = linen_model(x)
    return apply_fn, params, sj.find_layers(apply_fn, params, x)


def _inputs(apply_fn, params, layers, x):
    return sj.layer_inputs(apply_fn, layers)(params, jnp.asarray(x))[1]


def test_zero_predictor_always_zero(model, frames):
    apply_fn, params, layers = model
    pred = predictors.zero()
    state = pred.update(pred.init(layers), _inputs(apply_fn, params, layers, frames[0]))
    for layer in layers:
        p = pred.predict(state)[layer.name]
        assert p.shape == layer.in_shape and not np.asarray(p).any()


def test_last_value_cold_start_and_repeat(model, frames):
    apply_fn, params, layers = model
    pred = predictors.last_value()
    state = pred.init(layers)
    assert all(not np.asarray(v).any() for v in pred.predict(state).values())  # cold start
    inp = _inputs(apply_fn, params, layers, frames[0])
    state = pred.update(state, inp)
    for name, p in pred.predict(state).items():
        np.testing.assert_array_equal(p, inp[name])


def test_secnn_silence_rule_against_numpy(model, frames):
    apply_fn, params, layers = model
    silence, decay = 0.6, 0.5
    pred = predictors.secnn(silence=silence, decay=decay)
    state = pred.init(layers)
    name = layers[3].name
    rate = np.zeros(layers[3].in_shape)
    last = np.zeros(layers[3].in_shape)
    for t in range(4):
        p = np.asarray(pred.predict(state)[name])
        np.testing.assert_array_equal(p, np.where(rate >= silence, last, 0.0))
        inp = _inputs(apply_fn, params, layers, frames[t])
        state = pred.update(state, inp)
        x = np.asarray(inp[name])
        rate = decay * rate + (1 - decay) * (x != 0)
        last = x
    # a neuron that fired once after silence has rate 0.5 < 0.6: predicted zero
    assert (np.asarray(pred.predict(state)[name]) == 0).sum() > 0


@pytest.mark.parametrize("silence,decay,same", [(0.5, 0.0, True), (0.5, 0.5, True),
                                                 (0.5, 0.75, False)])
def test_secnn_equals_last_value_iff_one_firing_suffices(model, frames, silence, decay, same):
    apply_fn, params, layers = model
    a, b = predictors.secnn(silence=silence, decay=decay), predictors.last_value()
    sa, sb = a.init(layers), b.init(layers)
    differs = False
    for t in range(3):
        inp = _inputs(apply_fn, params, layers, frames[t])
        sa, sb = a.update(sa, inp), b.update(sb, inp)
        for name in sb:
            equal = np.array_equal(a.predict(sa)[name], b.predict(sb)[name])
            assert equal or not same, name
            differs |= not equal
    assert differs != same


def test_predictor_argument_validation():
    with pytest.raises(ValueError, match="silence"):
        predictors.secnn(silence=1.5)
    with pytest.raises(ValueError, match="decay"):
        predictors.secnn(decay=1.0)


def test_mean_predictor_from_calibration(model, frames):
    apply_fn, params, layers = model
    stats = predictors.mean_stats(apply_fn, params, frames[:3], layers)
    want = np.mean([np.asarray(_inputs(apply_fn, params, layers, frames[t])[layers[2].name])
                    for t in range(3)], axis=(0, 1))
    np.testing.assert_allclose(stats[layers[2].name], want, rtol=1e-5, atol=1e-6)
    pred = predictors.mean(stats)
    p = pred.predict(pred.init(layers))[layers[2].name]
    np.testing.assert_allclose(p[1], want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="missing"):
        predictors.mean({k: v for k, v in stats.items() if k != layers[0].name}).init(layers)
    with pytest.raises(ValueError, match="empty"):
        predictors.mean_stats(apply_fn, params, [], layers)


def test_streams_are_independent(model, frames):
    """Stream 1's results do not change when stream 0's frames change."""
    apply_fn, params, _ = model
    other = frames.copy()
    other[:, 0] = frames[::-1, 0]
    la, ea = sj.run_stream(apply_fn, params, frames, predictors.secnn())
    lb, eb = sj.run_stream(apply_fn, params, other, predictors.secnn())
    np.testing.assert_array_equal(la[:, 1], lb[:, 1])
    for name in ea:
        np.testing.assert_array_equal(ea[name][:, 1], eb[name][:, 1])
    assert any((ea[n][:, 0] != eb[n][:, 0]).any() for n in ea)


def test_run_stream_equals_steps_by_hand_and_jit_equals_eager(model, frames):
    apply_fn, params, layers = model
    pred = predictors.secnn()
    logits, events = sj.run_stream(apply_fn, params, frames[:4], pred, tau=0.01)
    assert logits.shape == (4, 2, 10)
    par = sj.parallel_compute(apply_fn, layers)
    ser = sj.serial_amend(apply_fn, layers, tau=0.01)
    state = pred.init(layers)
    for t in range(4):  # eager, phase by phase
        p = pred.predict(state)
        out, inputs, ev_t = ser(params, jnp.asarray(frames[t]), p, par(params, p))
        state = pred.update(state, inputs)
        np.testing.assert_allclose(logits[t], out, rtol=1e-5, atol=1e-5)
        for name in ev_t:
            assert np.mean(np.asarray(events[name][t]) == np.asarray(ev_t[name])) > 0.999


def test_iter_stream_chunks_equal_run_stream(model, frames):
    apply_fn, params, _ = model
    pred = predictors.last_value()
    logits, events = sj.run_stream(apply_fn, params, frames, pred)
    chunks = list(sj.iter_stream(apply_fn, params, (f for f in frames), pred, chunk_size=4))
    assert [c.start for c in chunks] == [0, 4] and [c.n_frames for c in chunks] == [4, 2]
    np.testing.assert_allclose(np.concatenate([c.logits for c in chunks]), logits, rtol=1e-6,
                               atol=1e-6)
    for name in events:
        np.testing.assert_array_equal(np.concatenate([c.events[name] for c in chunks]),
                                      events[name])


def test_bad_frames_are_clear_errors(model, frames):
    apply_fn, params, _ = model
    bad = frames.copy()
    bad[3, 1, 5, 5, 0] = np.nan
    with pytest.raises(ValueError, match="frame 3 contains NaN"):
        sj.run_stream(apply_fn, params, bad, predictors.zero())
    with pytest.raises(ValueError, match="frame 4 contains NaN"):
        list(sj.iter_stream(apply_fn, params, bad[1:], predictors.zero(), chunk_size=2, start=2))
    with pytest.raises(ValueError, match=r"no frames \(T = 0\)"):
        sj.run_stream(apply_fn, params, frames[:0], predictors.zero())
    with pytest.raises(ValueError, match="empty"):
        list(sj.iter_stream(apply_fn, params, iter([]), predictors.zero()))
    with pytest.raises(ValueError, match="dtype"):
        sj.run_stream(apply_fn, params, frames.astype(str), predictors.zero())


def test_mismatched_predictor_state_is_a_clear_error(model, frames):
    apply_fn, params, layers = model
    step = sj.pipeline(apply_fn, layers, predictors.last_value())
    plain_apply, plain_params = plain_model()
    wrong = predictors.last_value().init(sj.find_layers(plain_apply, plain_params,
                                                        jnp.asarray(frames[0])))
    with pytest.raises(ValueError, match="does not match the model's layers"):
        step(params, wrong, jnp.asarray(frames[0]))
    with pytest.raises(TypeError, match="init"):
        sj.pipeline(apply_fn, layers, object())


def test_user_written_predictor(model, frames):
    """Any object with init/predict/update works: here, 'last value, halved'."""
    apply_fn, params, _ = model

    logits, events = sj.run_stream(apply_fn, params, frames[:3], HalvedPredictor())
    ref = jax.vmap(lambda f: apply_fn(params, f))(jnp.asarray(frames[:3]))
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-5)
