"""The ``accumulated`` predictor (DeltaCNN's rule) and the ``update_needs_tau`` protocol extension.

Semantics against a numpy reference, the state against the serial phase's own mask, a slow drift
propagated once its accumulated change crosses tau, bounded error over 1,000 frames, exactness at
tau = 0, a traced tau that compiles once, and predictors without the new attribute unchanged.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cnns import HalvedPredictor, LinenCNN, linen_model
from flax import linen as nn

import secnn_jax as sj
from secnn_jax import events as ev
from secnn_jax import predictors

pl = importlib.import_module("secnn_jax.pipeline")

# The counters tests/test_library_calls.py counts compiles with: jaxpr traces, backend compiles.
_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_COMPILE = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def _counting() -> Iterator[dict[str, int]]:
    counts = {"traces": 0, "compiles": 0}

    def listener(event: str, _secs: float, **_kw: object) -> None:
        if event == _TRACE:
            counts["traces"] += 1
        elif event == _COMPILE:
            counts["compiles"] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(scope="module")
def model(frames):
    x = jnp.asarray(frames[0])
    apply_fn, params = linen_model(x)
    return apply_fn, params, sj.find_layers(apply_fn, params, x)


def _reference(xs: list[dict[str, np.ndarray]], taus: dict[str, float]
               ) -> list[dict[str, np.ndarray]]:
    """DeltaCNN's rule in numpy: the prediction before each frame, starting from zeros."""
    held = {k: np.zeros_like(v) for k, v in xs[0].items()}
    out = []
    for x in xs:
        out.append({k: v.copy() for k, v in held.items()})
        for k, v in x.items():
            miss = np.abs(v - held[k]) > np.float32(taus[k])
            held[k] = np.where(miss, v, held[k])
    out.append(held)
    return out


@pytest.mark.parametrize("tau", [0.0, 0.125, 0.5, "per_layer"])
def test_update_matches_a_numpy_reference(model, tau):
    """Random drifting inputs on every layer; values on a 1/8 grid make |x - P| == tau occur."""
    _, _, layers = model
    rng = np.random.default_rng(3)
    names = [lyr.name for lyr in layers]
    taus = ({n: [0.0, 0.125, 0.25, 0.5][i % 4] for i, n in enumerate(names)}
            if tau == "per_layer" else dict.fromkeys(names, tau))
    walk = {lyr.name: np.zeros(lyr.in_shape, np.float32) for lyr in layers}
    xs = []
    for _ in range(8):
        walk = {k: v + np.round(rng.normal(0, 0.2, v.shape) * 8) / 8 for k, v in walk.items()}
        xs.append({k: v.astype(np.float32) for k, v in walk.items()})
    want = _reference(xs, taus)
    pred = predictors.accumulated()
    state = pred.init(layers)
    ties = 0
    for t, x in enumerate(xs):
        got = pred.predict(state)
        for k in names:
            np.testing.assert_array_equal(np.asarray(got[k]), want[t][k], err_msg=f"{k} t={t}")
            ties += int((np.abs(x[k] - want[t][k]) == taus[k]).sum())
        state = pred.update(state, {k: jnp.asarray(v) for k, v in x.items()}, taus)
    for k in names:
        np.testing.assert_array_equal(np.asarray(pred.predict(state)[k]), want[-1][k])
    assert ties > 0  # the strict '>' of the rule was exercised


def test_state_is_what_the_serial_phase_propagated(model, frames):
    """Inside one jitted step: the new state takes x exactly where the events say mispredicted."""
    apply_fn, params, layers = model
    pred = predictors.accumulated()
    par = sj.parallel_compute(apply_fn, layers)
    ser = sj.serial_amend(apply_fn, layers)
    step = sj.pipeline(apply_fn, layers, pred)

    @jax.jit
    def by_hand(state, x, taus):
        p = pred.predict(state)
        _, inputs, events = ser(params, x, p, par(params, p), tau=taus)
        return (pred.update(state, inputs, taus), inputs, events,
                step(params, state, x, tau=taus))

    taus = {lyr.name: 0.02 * (1 + lyr.index % 3) for lyr in layers}
    state = pred.init(layers)
    changed = kept = 0
    for t in range(len(frames)):
        new, inputs, events, (step_state, _, step_events) = by_hand(state, frames[t], taus)
        for k in state:
            miss = np.asarray(ev.mispredicted(events[k]))
            want = np.where(miss, np.asarray(inputs[k]), np.asarray(state[k]))
            np.testing.assert_array_equal(np.asarray(new[k]), want, err_msg=f"{k} t={t}")
            np.testing.assert_array_equal(np.asarray(step_state[k]), want)
            np.testing.assert_array_equal(np.asarray(step_events[k]), np.asarray(events[k]))
            changed += int(miss.sum())
            kept += int((~miss).sum())
        state = new
    assert changed > 0 and kept > 0


def test_slow_drift_propagates_once_its_accumulated_change_crosses_tau(model):
    """x = (t + 1) * tau / 3 at the stem (the frame itself): frames 0-2 stay truncated, frame 3
    is propagated, then every fourth frame; the previous value as prediction never propagates.

    tau = 0.75 makes every value exact (multiples of 0.25), so the edge |x - P| == tau (frame 2)
    is the strict comparison, not rounding.
    """
    apply_fn, params, layers = model
    stem = layers[0].name
    tau = 0.75
    t = np.arange(12, dtype=np.float32)
    frames = np.broadcast_to(((t + 1) * tau / 3)[:, None, None, None, None],
                             (12, 2, 32, 32, 3)).astype(np.float32)
    _, events = sj.run_stream(apply_fn, params, frames, predictors.accumulated(),
                              tau={stem: tau})
    codes = np.asarray(events[stem])
    want = [ev.ZZ, ev.ZZ, ev.ZZ, ev.ZN, ev.VH, ev.VH, ev.VH, ev.VM, ev.VH, ev.VH, ev.VH, ev.VM]
    for i, code in enumerate(want):
        assert (codes[i] == code).all(), (i, np.unique(codes[i]))
    _, lv_events = sj.run_stream(apply_fn, params, frames, predictors.last_value(),
                                 tau={stem: tau})
    assert not ev.mispredicted(np.asarray(lv_events[stem])).any()

    # The predictor alone, from a value propagated on frame 0: x = 2 + t * tau / 3.
    pred = predictors.accumulated()
    state = pred.init(layers[:1])
    held = []
    for i in range(9):
        x = jnp.full(layers[0].in_shape, 2.0 + i * tau / 3, jnp.float32)
        state = pred.update(state, {stem: x}, tau)
        held.append(float(state[stem].reshape(-1)[0]))
    assert held == [2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 4.0]


def test_truncated_changes_accumulate_over_1000_frames():
    """A DeltaCNN's buffer (the sum of the propagated deltas x - P) stays within tau of x.

    A random walk with steps mostly below tau: accumulated's propagated deltas telescope to its
    state, so the buffer never strays by more than tau; the previous value's propagated deltas
    lose every truncated step, and the same buffer drifts far away.
    """
    rng = np.random.default_rng(0)
    tau = np.float32(0.1)
    layer = _FakeLayer("a", (64,))
    steps = rng.normal(0.01, 0.04, (1000, 64)).astype(np.float32)  # drift + noise, mostly < tau
    xs = np.cumsum(steps, axis=0, dtype=np.float32)
    gaps = {}
    for name, pred in (("accumulated", predictors.accumulated()),
                       ("last_value", predictors.last_value())):
        state = pred.init([layer])
        buffer = np.zeros(64, np.float32)
        gap = []
        for x in xs:
            p = np.asarray(pred.predict(state)["a"])
            miss = np.abs(x - p) > tau
            buffer = buffer + np.where(miss, x - p, 0.0).astype(np.float32)
            gap.append(np.abs(x - buffer).max())
            inputs = {"a": jnp.asarray(x)}
            state = (pred.update(state, inputs, float(tau)) if predictors.update_needs_tau(pred)
                     else pred.update(state, inputs))
        gaps[name] = np.array(gap)
    assert gaps["accumulated"].max() <= tau * (1 + 1e-5)
    assert gaps["last_value"][-100:].max() > 10 * tau


class _FakeLayer:
    """Only what ``init`` reads of a layer: its name, input shape and dtype."""

    def __init__(self, name: str, in_shape: tuple[int, ...]) -> None:
        self.name, self.in_shape, self.dtype = name, in_shape, jnp.float32


class _Small(nn.Module):
    """Three convs and a dense head on 8x8 frames: a 1,000-frame scan in a few CPU-seconds."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3), name="c1")(x))
        x = nn.relu(nn.Conv(8, (3, 3), strides=2, name="c2")(x))
        x = nn.relu(nn.Conv(8, (3, 3), name="c3")(x))
        return nn.Dense(10, name="head")(x.reshape(x.shape[0], -1))


def test_error_stays_bounded_over_a_1000_frame_stream():
    """tau = 0.05, pixels drifting by up to 0.03 per frame (sinusoids of random phase): the max
    logit error over the last 100 frames is not larger than over the first 100 (within noise)."""
    module = _Small()
    params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
    rng = np.random.default_rng(0)
    omega = rng.uniform(0.01, 0.03, (1, 8, 8, 3))
    phase = rng.uniform(0, 2 * np.pi, (1, 8, 8, 3))
    frames = np.sin(omega * np.arange(1000)[:, None, None, None, None] + phase)
    frames = frames.astype(np.float32)
    logits, events = sj.run_stream(module.apply, params, frames, predictors.accumulated(),
                                   tau=0.05)
    plain = jax.vmap(lambda f: module.apply(params, f))(jnp.asarray(frames))
    err = np.abs(np.asarray(logits) - np.asarray(plain)).max(axis=(1, 2))
    first, last = err[:100].max(), err[-100:].max()
    print(f"1000-frame stream, tau=0.05: max error first 100 {first:.4g}, last 100 {last:.4g}, "
          f"logit scale {np.abs(np.asarray(plain)).max():.4g}")
    assert first > 0  # tau truncates something: the check is not vacuous
    assert last <= 2 * first, (first, last)
    assert err[-100:].mean() <= 2 * err[:100].mean()
    # No pixel moves by tau in one frame, yet late in the stream the accumulated changes still
    # cross it: the input layer keeps propagating (the previous value would propagate nothing).
    assert np.abs(np.diff(frames, axis=0)).max() < 0.05
    late = np.asarray(events["c1"][-100:])
    assert ev.mispredicted(late).mean() > 0.1 and (late == ev.VH).mean() > 0.5


def test_tau_zero_is_exact_and_its_events_are_last_values(model, frames):
    apply_fn, params, _ = model
    logits, events = sj.run_stream(apply_fn, params, frames, predictors.accumulated())
    plain = jax.vmap(lambda f: apply_fn(params, f))(jnp.asarray(frames))
    np.testing.assert_allclose(logits, plain, rtol=1e-5, atol=1e-5)
    _, lv_events = sj.run_stream(apply_fn, params, frames, predictors.last_value())
    assert set(events) == set(lv_events)
    for k in events:
        np.testing.assert_array_equal(events[k], lv_events[k])


def test_traced_tau_compiles_once_and_streams_share_the_cache(frames):
    module = LinenCNN()
    params = module.init(jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 3)))
    calls = {"model": 0}

    def apply_fn(p, x):
        calls["model"] += 1
        return module.apply(p, x)

    pl.clear_program_cache()
    layers = sj.find_layers(apply_fn, params, jnp.asarray(frames[0]))
    pred = predictors.accumulated()
    step = jax.jit(sj.pipeline(apply_fn, layers, pred))
    x = jnp.asarray(frames[1])
    with _counting() as counts:
        state = pred.init(layers)
        _, _, ev_a = step(params, state, x, tau=dict.fromkeys(state, 0.0))
        before = (calls["model"], counts["traces"], counts["compiles"])
        assert before[2] > 0
        _, _, ev_b = step(params, state, x, tau=dict.fromkeys(state, 0.5))  # a second tau value
        assert (calls["model"], counts["traces"], counts["compiles"]) == before
        assert any(not np.array_equal(ev_a[k], ev_b[k]) for k in ev_a)

        sj.run_stream(apply_fn, params, frames, predictors.accumulated(), tau=0.01)
        before = (calls["model"], counts["traces"], counts["compiles"])
        # A fresh predictor object and another tau: the config_key finds the same program.
        logits, events = sj.run_stream(apply_fn, params, frames, predictors.accumulated(),
                                       tau=0.05)
        assert (calls["model"], counts["traces"], counts["compiles"]) == before
    chunks = list(sj.iter_stream(apply_fn, params, frames, predictors.accumulated(), tau=0.05,
                                 chunk_size=4))
    np.testing.assert_allclose(np.concatenate([c.logits for c in chunks]), logits, rtol=1e-6,
                               atol=1e-6)
    for k in events:
        np.testing.assert_array_equal(np.concatenate([c.events[k] for c in chunks]), events[k])


# A user predictor written before ``update_needs_tau``: two-argument update, no attribute.
_Halved = HalvedPredictor


def test_predictors_without_the_attribute_run_unchanged(model, frames):
    apply_fn, params, layers = model
    mine = _Halved()
    assert not predictors.update_needs_tau(mine)
    assert isinstance(mine, predictors.PredictorLike)
    assert not any(predictors.update_needs_tau(p) for p in (
        predictors.zero(), predictors.last_value(), predictors.secnn()))
    logits, events = sj.run_stream(apply_fn, params, frames[:4], mine, tau=0.01)
    par = sj.parallel_compute(apply_fn, layers)
    ser = sj.serial_amend(apply_fn, layers, tau=0.01)
    state = mine.init(layers)
    for t in range(4):  # phase by phase, calling update exactly as before the extension
        p = mine.predict(state)
        out, inputs, ev_t = ser(params, jnp.asarray(frames[t]), p, par(params, p))
        state = mine.update(state, inputs)
        np.testing.assert_allclose(logits[t], out, rtol=1e-5, atol=1e-5)
        for k in ev_t:
            assert np.mean(np.asarray(events[k][t]) == np.asarray(ev_t[k])) > 0.999


class _RecordsTau(_Halved):
    """Opts in: keeps the tau it was given next to the last value."""

    update_needs_tau = True

    def init(self, layers):
        return {"last": super().init(layers), "tau": {lyr.name: jnp.float32(-1) for lyr in layers}}

    def predict(self, state):
        return dict(state["last"])

    def update(self, state, inputs, tau):
        return {"last": {k: inputs[k] for k in state["last"]},
                "tau": {k: jnp.asarray(tau[k], jnp.float32) for k in state["tau"]}}


def test_opted_in_predictors_get_the_serial_phases_tau(model, frames):
    apply_fn, params, layers = model
    taus = {lyr.name: 0.01 * lyr.index for lyr in layers}
    chunk = next(sj.iter_stream(apply_fn, params, frames, _RecordsTau(), tau=taus, chunk_size=2))
    got = {k: float(v) for k, v in chunk.state["tau"].items()}
    assert got == pytest.approx(taus)

    bad = _Halved()
    bad.update_needs_tau = "yes"
    with pytest.raises(predictors.PredictorTypeError, match="update_needs_tau"):
        sj.run_stream(apply_fn, params, frames, bad)


def test_bad_update_arguments_are_predictor_errors(model):
    _, _, layers = model
    pred = predictors.accumulated()
    state = pred.init(layers)
    inputs = {k: jnp.ones_like(v) for k, v in state.items()}
    with pytest.raises(predictors.PredictorError, match="tau lacks layers"):
        pred.update(state, inputs, {layers[0].name: 0.1})
    with pytest.raises(predictors.PredictorError, match="finite and >= 0"):
        pred.update(state, inputs, -0.1)
    with pytest.raises(predictors.PredictorError, match="one number"):
        pred.update(state, inputs, np.zeros(3))
    with pytest.raises(predictors.PredictorError, match="inputs lack layers"):
        pred.update(state, {layers[0].name: inputs[layers[0].name]}, 0.1)
    with pytest.raises(TypeError):  # the tau is required, never silently taken as 0
        pred.update(state, inputs)


def test_from_spec_knows_accumulated():
    pred = predictors.from_spec("accumulated")
    assert pred.config_key == ("accumulated",) and predictors.update_needs_tau(pred)
