"""One way to run a stream (issue 20, item 3): every entry point is the same step and scan.

``pipeline`` builds one step that takes ``tau``; a fixed ``tau`` is a ``functools.partial`` of
it, and ``scan_program`` is the one scan over frames. So the jitted step loop at a fixed tau, the
same loop passing ``tau``, ``scan_program`` of the fixed-tau step, ``run_stream`` (the cached
program: ``scan_program`` of the step, tau passed) and ``iter_stream`` (a padded last chunk
included) must agree exactly: logits, event codes, fires maps and the predictor state after the
last frame, bit for bit. The reference is the Python loop over the jitted fixed-tau step, as a
user writes it by hand; ``tests/test_stream_bits.py`` covers every predictor and
``stream_program`` with reducers.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import video_frames

import secnn_jax as sj
from secnn_jax import events as ev
from secnn_jax import predictors
from secnn_jax.phases import tau_map


class TinyCNN(nn.Module):
    """In-model division, a strided conv, a depthwise conv, a residual add and a dense head."""

    @nn.compact
    def __call__(self, x):
        x = (x - 0.1) / 0.6
        x = nn.relu(nn.Conv(8, (3, 3), strides=2, name="conv")(x))
        y = nn.Conv(8, (3, 3), feature_group_count=8, name="dw")(x)
        x = nn.relu(x + y)
        return nn.Dense(10, name="head")(x.mean(axis=(1, 2)))


@pytest.fixture(scope="module")
def setup():
    frames = video_frames(5, 16, 2)
    model = TinyCNN()
    params = model.init(jax.random.PRNGKey(0), frames[0])
    layers = sj.find_layers(model.apply, params, frames[0])
    return model.apply, params, frames, layers


def _host(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def _assert_equal(got, want, what: str) -> None:
    """Two ``(logits, events, state)`` triples agree bit for bit."""
    g_logits, g_events, g_state = got
    w_logits, w_events, w_state = want
    np.testing.assert_array_equal(np.asarray(g_logits), w_logits, err_msg=f"{what}: logits")
    assert g_events.predictor == w_events.predictor, what
    assert list(g_events) == list(w_events), what
    for name in w_events:
        np.testing.assert_array_equal(np.asarray(g_events[name]), w_events[name],
                                      err_msg=f"{what}: codes of {name}")
        np.testing.assert_array_equal(np.asarray(g_events.fires[name]), w_events.fires[name],
                                      err_msg=f"{what}: fires of {name}")
    g_leaves, g_def = jax.tree_util.tree_flatten(g_state)
    w_leaves, w_def = jax.tree_util.tree_flatten(w_state)
    assert g_def == w_def, what
    for g, w in zip(g_leaves, w_leaves, strict=True):
        np.testing.assert_array_equal(np.asarray(g), w, err_msg=f"{what}: state")


def _loop(step, params, state, frames, **kwargs):
    """A Python loop over the jitted ``step``: stacked logits and events, the last state."""
    jitted = jax.jit(step)
    logits, maps = [], []
    for x in frames:
        state, lg, e = jitted(params, state, x, **kwargs)
        logits.append(np.asarray(lg))
        maps.append(e.map(np.asarray))
    events = jax.tree_util.tree_map(lambda *a: np.stack(a), *maps)
    return np.stack(logits), events, _host(state)


PREDICTORS = {"secnn": predictors.secnn, "accumulated": predictors.accumulated}


@pytest.mark.parametrize("name,tau", [("secnn", 0.05),
                                      ("accumulated", {"conv": 0.1, "head": 0.02})])
def test_every_entry_point_is_the_same_step_and_scan(setup, name, tau) -> None:
    apply_fn, params, frames, layers = setup
    pred = PREDICTORS[name]()
    taus = tau_map(layers, tau)
    init = pred.init(layers)

    fixed = sj.pipeline(apply_fn, layers, pred, tau)
    assert isinstance(fixed, functools.partial) and fixed.keywords == {"tau": taus}
    want = _loop(fixed, params, init, frames)
    # The step of another (default) tau, given this one: the same function, the same bits.
    free = sj.pipeline(apply_fn, layers, pred)
    _assert_equal(_loop(free, params, init, frames, tau=taus), want, "step loop, tau passed")

    # The scan of the fixed-tau step (tau=None): what run_stream runs is its tau passed.
    out = sj.scan_program(fixed)(params, init, jnp.asarray(frames),
                                 jnp.ones(frames.shape[0], bool))
    _assert_equal((out.logits, out.events, out.state), want, "scan_program, fixed tau")

    logits, events = sj.run_stream(apply_fn, params, frames, pred, tau)
    _assert_equal((logits, events, want[2]), want, "run_stream")

    chunks = list(sj.iter_stream(apply_fn, params, frames, pred, tau, chunk_size=2))
    assert [c.n_frames for c in chunks] == [2, 2, 1]  # the last chunk padded to 2
    joined = jax.tree_util.tree_map(lambda *a: np.concatenate(a),
                                    *[c.events.map(np.asarray) for c in chunks])
    _assert_equal((np.concatenate([np.asarray(c.logits) for c in chunks]), joined,
                   chunks[-1].state), want, "iter_stream")


def test_serial_amend_at_a_fixed_tau_is_the_function_given_tau(setup) -> None:
    """``serial_amend(..., tau)`` is ``functools.partial`` of the one serial phase."""
    apply_fn, params, frames, layers = setup
    pred = predictors.last_value()
    state = jax.jit(sj.pipeline(apply_fn, layers, pred))(params, pred.init(layers),
                                                         frames[0])[0]
    p = pred.predict(state)
    y_pred = sj.parallel_compute(apply_fn, layers)(params, p)
    tau = {"conv": 0.05, "dw": 0.01}
    fixed = jax.jit(sj.serial_amend(apply_fn, layers, tau))(params, frames[1], p, y_pred)
    given = jax.jit(sj.serial_amend(apply_fn, layers))(params, frames[1], p, y_pred,
                                                       tau=tau_map(layers, tau))
    for a, b in zip(jax.tree_util.tree_leaves(fixed), jax.tree_util.tree_leaves(given),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The tolerance took effect (numpy, from the real inputs): a prediction off by at most
    # tau, but off, is a value hit.
    x, pc = np.asarray(fixed[1]["conv"]), np.asarray(p["conv"])
    within = (x != pc) & (np.abs(x - pc) <= 0.05) & (pc != 0)
    assert within.any()
    assert (np.asarray(fixed[2]["conv"])[within] == ev.VH).all()
