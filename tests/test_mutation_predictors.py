"""Unit tests of every built-in predictor against plain numpy references, written where mutation
testing (``mutmut`` on ``secnn_jax/predictors.py``, docs/mutation.md) showed the pipeline tests
left a planted change alive: boundaries of the secnn and accumulated rules, dtype handling, the
argument checks and their messages, ``config_key``/``builtin_name``, ``mean``'s shape rules and
``mean_stats``' average over frames and streams. No model is compiled except one tiny dense
layer for ``mean_stats``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from secnn_jax import predictors as pr
from secnn_jax.layers import Layer
from secnn_jax.prediction_check import PredictorError, PredictorTypeError


def _layer(name: str, in_shape: tuple[int, ...], dtype=jnp.float32) -> Layer:
    return Layer(name=name, kind="dense", index=0, in_shape=in_shape, out_shape=(in_shape[0], 1),
                 kernel_shape=(in_shape[-1], 1), strides=(), padding=(), dilation=(), groups=1,
                 macs=int(np.prod(in_shape)), dtype=dtype, lhs_spec=(0, 1))


LAYERS = [_layer("a", (2, 3)), _layer("b", (2, 2, 2), jnp.float16)]


def _frames(rng: np.random.Generator, t: int) -> list[dict[str, np.ndarray]]:
    """``t`` frames of inputs with many exact zeros (so the firing rules matter)."""
    out = []
    for _ in range(t):
        frame = {}
        for lyr in LAYERS:
            x = rng.normal(size=lyr.in_shape) * (rng.random(lyr.in_shape) < 0.6)
            frame[lyr.name] = x.astype(np.float32)
        out.append(frame)
    return out


# --- zero, last_value, config keys ------------------------------------------------------------

def test_zero_predicts_zeros_of_each_layers_shape_and_dtype_and_never_changes() -> None:
    p = pr.zero()
    state = p.init(LAYERS)
    for lyr in LAYERS:
        assert state[lyr.name].shape == lyr.in_shape and state[lyr.name].dtype == lyr.dtype
        np.testing.assert_array_equal(state[lyr.name], np.zeros(lyr.in_shape))
    after = p.update(state, {lyr.name: jnp.ones(lyr.in_shape) for lyr in LAYERS})
    pred = p.predict(after)
    assert set(pred) == {"a", "b"}
    for lyr in LAYERS:
        np.testing.assert_array_equal(pred[lyr.name], np.zeros(lyr.in_shape))
    assert p.config_key == ("zero",) and not p.update_needs_tau
    assert pr.builtin_name(p) == "zero"


def test_last_value_predicts_the_previous_input_in_the_layers_dtype() -> None:
    p = pr.last_value()
    state = p.init(LAYERS)
    frames = _frames(np.random.default_rng(0), 3)
    for frame in frames:
        state = p.update(state, frame)
        pred = p.predict(state)
        for lyr in LAYERS:
            assert pred[lyr.name].dtype == lyr.dtype
            np.testing.assert_array_equal(pred[lyr.name], frame[lyr.name].astype(lyr.dtype))
    assert p.config_key == ("last_value",) and pr.builtin_name(p) == "last_value"


def test_config_key_names_the_type_and_key_or_falls_back_to_identity() -> None:
    p = pr.secnn(0.5, 0.5)
    assert pr.config_key(p) == ("secnn_jax.predictors", "Predictor", ("secnn", 0.5, 0.5))
    assert pr.config_key(pr.secnn(0.5, 0.5)) == pr.config_key(p)
    assert pr.config_key(pr.secnn(0.5, 0.25)) != pr.config_key(p)

    class Unhashable:
        config_key = ["not", "hashable"]

    class NoKey:
        pass

    for obj in (Unhashable(), NoKey()):
        key = pr.config_key(obj)
        assert key == pr.config_key(obj) and hash(key) == hash(pr.config_key(obj))
        assert key != pr.config_key(type(obj)())  # another object: another key
        assert key != obj
    assert {pr.config_key(n) for n in (NoKey(), NoKey())}.__len__() == 2


def test_builtin_name_reads_only_a_predictors_builtin_key() -> None:
    assert [pr.builtin_name(pr.from_spec(n)) for n in pr.SPEC_MAKERS] == list(pr.SPEC_MAKERS)
    assert pr.builtin_name(pr.mean({})) == "mean"
    noop = pr.zero()
    assert pr.builtin_name(noop._replace(config_key=("mine",))) is None
    assert pr.builtin_name(noop._replace(config_key=())) is None
    assert pr.builtin_name(noop._replace(config_key="zero")) is None  # not a tuple
    assert pr.builtin_name(noop._replace(config_key=None)) is None

    class Lookalike:  # not a Predictor: unknown even with a built-in's key
        config_key = ("zero",)

    assert pr.builtin_name(Lookalike()) is None


def test_update_needs_tau_reads_a_boolean_attribute_only() -> None:
    class Obj:
        pass

    o = Obj()
    assert pr.update_needs_tau(o) is False
    for value, expected in ((True, True), (False, False), (np.bool_(True), True)):
        o.update_needs_tau = value
        assert pr.update_needs_tau(o) is expected
    o.update_needs_tau = "yes"
    with pytest.raises(PredictorTypeError,
                       match=r"predictor Obj: update_needs_tau must be True or False, got 'yes'"):
        pr.update_needs_tau(o)
    assert pr.update_needs_tau(pr.accumulated()) is True


# --- secnn -------------------------------------------------------------------------------------

def _secnn_reference(frames, silence: float, decay: float) -> list[dict[str, np.ndarray]]:
    """Predictions before each frame, from the documented rule, in float64 numpy."""
    last = {lyr.name: np.zeros(lyr.in_shape) for lyr in LAYERS}
    rate = {lyr.name: np.zeros(lyr.in_shape) for lyr in LAYERS}
    preds = []
    for frame in frames:
        preds.append({n: np.where(rate[n] >= silence, last[n], 0.0) for n in last})
        for lyr in LAYERS:
            x = frame[lyr.name].astype(lyr.dtype).astype(np.float64)
            rate[lyr.name] = decay * rate[lyr.name] + (1 - decay) * (x != 0)
            last[lyr.name] = x
    return preds


@pytest.mark.parametrize("silence,decay", [(0.5, 0.75), (0.3, 0.6), (0.0, 0.0), (1.0, 0.9)])
def test_secnn_matches_the_documented_rule(silence: float, decay: float) -> None:
    frames = _frames(np.random.default_rng(1), 6)
    p = pr.secnn(silence, decay)
    state = p.init(LAYERS)
    for lyr in LAYERS:
        assert state[lyr.name]["last"].dtype == lyr.dtype
        assert state[lyr.name]["rate"].dtype == jnp.float32
    for frame, want in zip(frames, _secnn_reference(frames, silence, decay), strict=True):
        got = p.predict(state)
        for lyr in LAYERS:
            assert got[lyr.name].dtype == lyr.dtype
            np.testing.assert_array_equal(np.asarray(got[lyr.name], np.float64),
                                          want[lyr.name].astype(lyr.dtype))
        state = p.update(state, frame)


def test_secnn_trusts_a_rate_exactly_at_the_silence_threshold() -> None:
    # decay 0.5: one firing frame gives rate exactly 0.5 (binary fractions: no rounding).
    p = pr.secnn(silence=0.5, decay=0.5)
    lyr = _layer("x", (1, 2))
    state = p.update(p.init([lyr]), {"x": jnp.array([[3.0, 0.0]])})
    np.testing.assert_array_equal(state["x"]["rate"], [[0.5, 0.0]])
    np.testing.assert_array_equal(p.predict(state)["x"], [[3.0, 0.0]])
    # one more frame without firing: rate 0.25 < 0.5, predicted silent although last is 0 anyway
    state = p.update(state, {"x": jnp.array([[0.0, 2.0]])})
    np.testing.assert_array_equal(state["x"]["rate"], [[0.25, 0.5]])
    np.testing.assert_array_equal(p.predict(state)["x"], [[0.0, 2.0]])


@pytest.mark.parametrize("silence,decay", [(0.0, 0.0), (1.0, 0.5), (0.5, 0.999)])
def test_secnn_accepts_the_ends_of_its_ranges(silence: float, decay: float) -> None:
    assert pr.secnn(silence, decay).config_key == ("secnn", silence, decay)


@pytest.mark.parametrize("kwargs,message", [
    ({"silence": -0.01}, r"^secnn: silence must lie in \[0, 1\], got -0.01$"),
    ({"silence": 1.01}, r"^secnn: silence must lie in \[0, 1\], got 1.01$"),
    ({"silence": float("nan")}, r"^secnn: silence must lie in \[0, 1\], got nan$"),
    ({"decay": 1.0}, r"^secnn: decay must lie in \[0, 1\), got 1.0$"),
    ({"decay": -0.5}, r"^secnn: decay must lie in \[0, 1\), got -0.5$"),
    ({"silence": "half"}, r"^secnn: silence and decay must be numbers, got 'half', 0.75$"),
    ({"decay": None}, r"^secnn: silence and decay must be numbers, got 0.5, None$"),
])
def test_secnn_refuses_arguments_out_of_range(kwargs: dict, message: str) -> None:
    with pytest.raises(PredictorError, match=message):
        pr.secnn(**kwargs)


def test_secnn_rates_stay_float32_with_64_bit_types_enabled() -> None:
    p = pr.secnn(0.5, 0.5)
    with jax.enable_x64(True):
        state = p.update(p.init(LAYERS), _frames(np.random.default_rng(5), 1)[0])
        assert {n: s["rate"].dtype for n, s in state.items()} == {"a": jnp.float32,
                                                                   "b": jnp.float32}


def test_secnn_key_holds_floats_so_equal_values_share_programs() -> None:
    key = pr.secnn(1, 0).config_key
    assert key == ("secnn", 1.0, 0.0) and all(type(v) is float for v in key[1:])


# --- accumulated -------------------------------------------------------------------------------

@pytest.mark.parametrize("tau", [0.0, 0.3, 1.0])
def test_accumulated_matches_the_documented_rule(tau: float) -> None:
    frames = _frames(np.random.default_rng(2), 6)
    p = pr.accumulated()
    state = p.init(LAYERS)
    ref = {lyr.name: np.zeros(lyr.in_shape, lyr.dtype) for lyr in LAYERS}
    for frame in frames:
        for lyr in LAYERS:
            np.testing.assert_array_equal(p.predict(state)[lyr.name], ref[lyr.name])
        state = p.update(state, frame, tau)
        for lyr in LAYERS:
            x = frame[lyr.name]
            prev = ref[lyr.name].astype(x.dtype)
            ref[lyr.name] = np.where(np.abs(x - prev) > tau, x, prev).astype(lyr.dtype)
            assert state[lyr.name].dtype == lyr.dtype
    assert p.update_needs_tau and p.config_key == ("accumulated",)


def test_accumulated_keeps_a_change_exactly_at_tau_and_takes_per_layer_taus() -> None:
    p = pr.accumulated()
    lyrs = [_layer("u", (1, 3)), _layer("v", (1, 3))]
    state = p.init(lyrs)
    x = {"u": jnp.array([[0.5, -0.5, 0.75]]), "v": jnp.array([[0.5, -0.5, 0.75]])}
    new = p.update(state, x, {"u": 0.5, "v": 0.25})
    np.testing.assert_array_equal(new["u"], [[0.0, 0.0, 0.75]])  # |x - 0| = tau: kept at 0
    np.testing.assert_array_equal(new["v"], [[0.5, -0.5, 0.75]])
    # integer and numpy scalars are numbers too
    np.testing.assert_array_equal(p.update(state, x, np.int32(0))["u"], x["u"])
    np.testing.assert_array_equal(p.update(state, x, np.float32(1.0))["u"], [[0.0, 0.0, 0.0]])


def test_accumulated_compares_in_the_inputs_dtype() -> None:
    """float16 inputs: |x - P| > tau in float16, as the serial phase computes it; tau = 0.9999
    rounds to 1.0 there, so a change of exactly 1.0 is not propagated (it would be in float32)."""
    p = pr.accumulated()
    lyr = _layer("h", (1, 3), jnp.float16)
    x = np.array([[1.0, 2.0, -0.5]], np.float16)
    got = p.update(p.init([lyr]), {"h": jnp.asarray(x)}, 0.9999)
    tau16 = np.float16(0.9999)
    want = np.where((x > tau16) | (x < -tau16), x, np.float16(0))
    assert tau16 == 1.0 and got["h"].dtype == jnp.float16
    np.testing.assert_array_equal(got["h"], want)
    np.testing.assert_array_equal(want, [[0.0, 2.0, 0.0]])


def test_accumulated_takes_a_traced_tau() -> None:
    p = pr.accumulated()
    lyr = _layer("u", (1, 3))
    x = {"u": jnp.array([[0.5, -0.5, 0.75]])}
    got = jax.jit(lambda s, t: p.update(s, x, t))(p.init([lyr]), jnp.float32(0.5))
    np.testing.assert_array_equal(got["u"], [[0.0, 0.0, 0.75]])


@pytest.mark.parametrize("tau,message", [
    (-0.5, r"^accumulated: tau must be finite and >= 0, got -0.5$"),
    (float("inf"), r"^accumulated: tau must be finite and >= 0, got inf$"),
    (float("nan"), r"^accumulated: tau must be finite and >= 0, got nan$"),
    ([0.1, 0.2], r"^accumulated: tau must be one number, got \[0.1, 0.2\]$"),
    (True, r"^accumulated: tau must be one number, got True$"),
    ("0.5", r"^accumulated: tau must be one number, got '0.5'$"),
    (object(), r"^accumulated: tau must be one number, got <object"),
    ({**dict.fromkeys("abcdefg", 0.1), "u": -1.0},
     r"^accumulated: tau for layer 'u' must be finite and >= 0, got -1.0$"),
    ({"w": 0.1}, r"^accumulated: tau lacks layers \['a', 'b', 'c', 'd', 'e'\]; pass one number "
                 r"or \{layer_name: tau\} for every layer$"),  # the first five of eight
])
def test_accumulated_refuses_bad_taus_naming_them(tau, message: str) -> None:
    p = pr.accumulated()
    layers = [_layer(n, (1, 3)) for n in "abcdefgu"]
    state = p.init(layers)
    with pytest.raises(PredictorError, match=message):
        p.update(state, {n: jnp.zeros((1, 3)) for n in "abcdefgu"}, tau)


def test_accumulated_refuses_a_tau_that_is_not_an_array_at_all() -> None:
    class Weird:
        def __array__(self, *a, **k):
            raise TypeError("no")

    p = pr.accumulated()
    state = p.init([_layer("u", (1, 3))])
    with pytest.raises(PredictorError, match=r"^accumulated: tau must be a number, got Weird$"):
        p.update(state, {"u": jnp.zeros((1, 3))}, Weird())


def test_accumulated_refuses_inputs_missing_a_layer() -> None:
    p = pr.accumulated()
    state = p.init([_layer(n, (1, 2)) for n in "pqrstuvw"])  # six missing: the first five named
    with pytest.raises(PredictorError,
                       match=r"^accumulated: inputs lack layers \['q', 'r', 's', 't', 'u'\]$"):
        p.update(state, {"p": jnp.zeros((1, 2)), "w": jnp.zeros((1, 2))}, 0.0)


# --- mean ---------------------------------------------------------------------------------------

def test_mean_broadcasts_per_stream_stats_and_casts_to_the_layers_dtype() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3,))            # per stream: broadcast over the batch of 2
    b = rng.normal(size=(2, 2, 2))       # exactly the input's shape
    p = pr.mean({"a": a, "b": b})
    state = p.init(LAYERS)
    np.testing.assert_array_equal(state["a"], np.broadcast_to(a.astype(np.float32), (2, 3)))
    np.testing.assert_array_equal(state["b"], b.astype(np.float16))
    assert state["b"].dtype == jnp.float16
    after = p.update(state, {"a": jnp.ones((2, 3)), "b": jnp.ones((2, 2, 2))})
    for name in ("a", "b"):
        np.testing.assert_array_equal(p.predict(after)[name], state[name])
    assert p.config_key == ("mean",)


def test_mean_refuses_stats_that_do_not_fit_the_layers() -> None:
    names = "abcdefg"
    lyrs = [_layer(n, (2, 3)) for n in names]
    with pytest.raises(PredictorError, match=(
            r"^mean predictor: stats do not match the model's layers \(missing: "
            r"\['b', 'c', 'd', 'e', 'f'\], unknown: \['x', 'y'\]\)$")):
        pr.mean({"a": np.zeros(3), "x": np.zeros(3), "y": np.zeros(3)}).init(lyrs)
    with pytest.raises(PredictorError, match=r"missing: \[\], unknown: \['t', 'u', 'v', 'w', "
                                             r"'x'\]\)$"):
        pr.mean({n: np.zeros(3) for n in names + "tuvwxyz"}).init(lyrs)
    with pytest.raises(PredictorError, match=(
            r"^mean predictor: stats\['a'\] has shape \(2,\), expected \(3,\) or \(2, 3\)$")):
        pr.mean({"a": np.zeros(2)}).init(lyrs[:1])


def test_mean_stats_averages_over_frames_and_streams() -> None:
    w = jnp.arange(6.0).reshape(3, 2)

    def apply_fn(params, x):
        return jnp.dot(x, params)

    rng = np.random.default_rng(4)
    frames = rng.normal(size=(4, 2, 3)).astype(np.float32)  # T=4 frames of N=2 streams
    (name,) = got = pr.mean_stats(apply_fn, w, frames)
    np.testing.assert_allclose(got[name], frames.reshape(8, 3).mean(0), rtol=1e-6, atol=1e-6)
    # an iterable of batches, with the layers given: the same average
    from secnn_jax.layers import find_layers

    layers = find_layers(apply_fn, w, frames[0])
    again = pr.mean_stats(apply_fn, w, iter(list(frames)), layers)
    np.testing.assert_allclose(again[name], got[name], rtol=1e-6, atol=1e-6)
    with pytest.raises(PredictorError, match=r"^mean_stats: the calibration stream is empty$"):
        pr.mean_stats(apply_fn, w, [], layers)


# --- from_spec -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,key", [
    ("zero", ("zero",)),
    ("  last_value  ", ("last_value",)),
    ("secnn", ("secnn", 0.5, 0.75)),
    ("secnn()", ("secnn", 0.5, 0.75)),
    (" secnn ( silence = 0.25 , decay=0.5 ) ", ("secnn", 0.25, 0.5)),
    ("secnn(decay=0.5,)", ("secnn", 0.5, 0.5)),
    ("accumulated", ("accumulated",)),
])
def test_from_spec_builds_the_constructors_predictor(spec: str, key: tuple) -> None:
    p = pr.from_spec(spec)
    assert p.config_key == key
    assert p.update_needs_tau == (key[0] == "accumulated")


@pytest.mark.parametrize("spec,message", [
    ("", r"^bad predictor spec ''$"),
    ("se cnn", r"^bad predictor spec 'se cnn'$"),
    (3, r"^bad predictor spec 3$"),
    ("mean", r"^unknown predictor 'mean' in spec 'mean'; known: \['accumulated', "
             r"'last_value', 'secnn', 'zero'\]$"),
    ("secnn(silence=0.5,silence=0.7)",
     r"^predictor 'secnn\(silence=0.5,silence=0.7\)': 'silence' is given twice$"),
    ("secnn(silence=half)", r"^predictor 'secnn\(silence=half\)': 'silence=half' is not "
                            r"key=number$"),
    ("secnn(silence)", r"^predictor 'secnn\(silence\)': 'silence' is not key=number$"),
    ("secnn(silence=0.5=1)", r"^predictor 'secnn\(silence=0.5=1\)': 'silence=0.5=1' is not "
                             r"key=number$"),
    ("secnn(speed=1)", r"^predictor 'secnn\(speed=1\)': .*unexpected keyword argument 'speed'"),
    ("zero(silence=1)", r"^predictor 'zero\(silence=1\)': .*unexpected keyword"),
    ("secnn(decay=1)", r"^predictor 'secnn\(decay=1\)': secnn: decay must lie in \[0, 1\), "
                       r"got 1.0$"),
])
def test_from_spec_refuses_bad_specs_naming_them(spec, message: str) -> None:
    with pytest.raises(PredictorError, match=message):
        pr.from_spec(spec)
