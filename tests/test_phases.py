"""SE-CNN phases against the plain forward pass and an independent numpy classification."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cnns import MODELS, linen_model

import secnn_jax as sj
from secnn_jax import events as ev
from secnn_jax import predictors

PREDICTORS = {
    "zero": predictors.zero,
    "last_value": predictors.last_value,
    "secnn": lambda: predictors.secnn(silence=0.5, decay=0.5),
}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def numpy_codes(x: np.ndarray, p: np.ndarray, tau: float) -> np.ndarray:
    """Independent reference classification, written from the contract's table."""
    x, p = np.asarray(x, np.float64), np.asarray(p, np.float64)
    out = np.empty(x.shape, np.uint8)
    zero_pred = p == 0
    out[zero_pred & (np.abs(x) <= tau)] = 0
    out[zero_pred & (np.abs(x) > tau)] = 1
    out[~zero_pred & (np.abs(x - p) <= tau)] = 2
    out[~zero_pred & (np.abs(x - p) > tau)] = 3
    return out


@pytest.mark.parametrize("style", sorted(MODELS))
@pytest.mark.parametrize("pred_name", sorted(PREDICTORS))
def test_tau0_equals_plain_forward_on_video(style, pred_name, frames):
    """Logits and every layer's real input match the unmodified model on real video."""
    apply_fn, params = MODELS[style](jnp.asarray(frames[0]))
    layers = sj.find_layers(apply_fn, params, jnp.asarray(frames[0]))
    step = jax.jit(sj.pipeline(apply_fn, layers, PREDICTORS[pred_name](), tau=0.0))
    capture = jax.jit(sj.layer_inputs(apply_fn, layers))
    state = PREDICTORS[pred_name]().init(layers)
    serial = sj.serial_amend(apply_fn, layers)
    for t in range(frames.shape[0]):
        x = jnp.asarray(frames[t])
        ref_logits = apply_fn(params, x)  # the plain, unmodified forward pass
        _, ref_inputs = capture(params, x)
        preds = PREDICTORS[pred_name]().predict(state)
        state, logits, events = step(params, state, x)
        assert rel_err(logits, ref_logits) <= 1e-5
        _, inputs, _ = serial(params, x, preds, sj.parallel_compute(apply_fn, layers)(params,
                                                                                      preds))
        for layer in layers:
            assert rel_err(inputs[layer.name], ref_inputs[layer.name]) <= 1e-5, layer.name
            assert events[layer.name].dtype == np.uint8
            assert events[layer.name].shape == layer.in_shape


def test_capture_matches_plain_forward(frames):
    x = jnp.asarray(frames[0])
    apply_fn, params = linen_model(x)
    layers = sj.find_layers(apply_fn, params, x)
    logits, inputs = sj.layer_inputs(apply_fn, layers)(params, x)
    np.testing.assert_allclose(logits, apply_fn(params, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inputs["stem"], x)  # the first layer consumes the image


@pytest.mark.parametrize("tau", [0.0, 0.05, 0.3])
def test_event_codes_match_numpy(tau, frames):
    x0, x1 = jnp.asarray(frames[0]), jnp.asarray(frames[1])
    apply_fn, params = linen_model(x0)
    layers = sj.find_layers(apply_fn, params, x0)
    pred = predictors.last_value()
    step = jax.jit(sj.pipeline(apply_fn, layers, pred, tau=tau))
    state, _, _ = step(params, pred.init(layers), x0)
    p = pred.predict(state)
    _, _, events = step(params, state, x1)
    # the real inputs the serial phase saw, from the phases called by hand
    y_pred = sj.parallel_compute(apply_fn, layers)(params, p)
    _, inputs, events_by_hand = sj.serial_amend(apply_fn, layers, tau)(params, x1, p, y_pred)
    for layer in layers:
        want = numpy_codes(inputs[layer.name], p[layer.name], tau)
        np.testing.assert_array_equal(np.asarray(events_by_hand[layer.name]), want,
                                      err_msg=layer.name)
        # jit and no-jit agree except at the tau boundary (float rounding of x)
        agree = np.mean(np.asarray(events[layer.name]) == want)
        assert agree > 0.999, layer.name
    seen = set(np.unique(np.concatenate([np.ravel(e) for e in events.values()])).tolist())
    assert {ev.ZZ, ev.ZN, ev.VM} <= seen
    if tau > 0:
        assert ev.VH in seen


def test_tau_drops_small_deltas_exactly(frames):
    """With tau > 0 the serial result equals W(P + delta*mask) computed independently."""
    x0, x1 = jnp.asarray(frames[0]), jnp.asarray(frames[1])
    apply_fn, params = linen_model(x0)
    layers = sj.find_layers(apply_fn, params, x0)
    first = layers[0]  # the stem sees the real image: check its amended output directly
    pred = {layer.name: jnp.zeros(layer.in_shape) for layer in layers}
    pred[first.name] = x0
    y_pred = sj.parallel_compute(apply_fn, layers)(params, pred)
    tau = 0.1
    _, inputs, events = sj.serial_amend(apply_fn, layers, tau={first.name: tau})(
        params, x1, pred, y_pred)
    kernel = params["params"]["stem"]["kernel"]
    delta = np.asarray(x1 - x0)
    kept = np.where(np.abs(delta) > tau, delta, 0)
    expected_input = np.asarray(x0) + kept
    conv = lambda a: jax.lax.conv_general_dilated(
        a, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(y_pred[first.name] + conv(jnp.asarray(kept)),
                               conv(jnp.asarray(expected_input)), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(events[first.name], numpy_codes(x1, x0, tau))
    # layers missing from the tau dict keep tau = 0
    np.testing.assert_array_equal(events["head"], numpy_codes(inputs["head"], pred["head"], 0))


def test_tau_validation(frames):
    x = jnp.asarray(frames[0])
    apply_fn, params = linen_model(x)
    layers = sj.find_layers(apply_fn, params, x)
    with pytest.raises(ValueError, match="unknown layers"):
        sj.serial_amend(apply_fn, layers, tau={"nope": 0.1})
    with pytest.raises(ValueError, match=">= 0"):
        sj.serial_amend(apply_fn, layers, tau=-1.0)
    with pytest.raises(ValueError, match="finite"):
        sj.pipeline(apply_fn, layers, predictors.zero(), tau=float("nan"))


def _output_sources(fn, *args) -> list[set[int]]:
    """For each output leaf of ``fn(*args)``: the input leaves it depends on (via the jaxpr)."""
    from jax.extend import core as jcore

    closed = jax.make_jaxpr(fn)(*args)

    def walk(jx, in_deps):
        env = dict(zip(jx.invars, in_deps, strict=True))
        for v in jx.constvars:
            env[v] = frozenset()
        read = lambda v: frozenset() if isinstance(v, jcore.Literal) else env[v]
        for eqn in jx.eqns:
            ins = [read(v) for v in eqn.invars]
            subs = [s for s in jcore.jaxprs_in_params(eqn.params)
                    if len(s.invars) == len(eqn.invars)]
            if subs and eqn.primitive.name in ("jit", "pjit", "custom_jvp_call"):
                outs = walk(subs[0], ins)
            else:
                union = frozenset().union(*ins) if ins else frozenset()
                outs = [union] * len(eqn.outvars)
            for v, d in zip(eqn.outvars, outs, strict=True):
                env[v] = d
        return [read(v) for v in jx.outvars]

    n_in = len(closed.jaxpr.invars)
    return [set(d) for d in walk(closed.jaxpr, [frozenset({i}) for i in range(n_in)])]


def test_parallel_phase_has_no_inter_layer_dependence(frames):
    """Proof on the traced program: each y_pred depends on its own prediction and on no other.

    Were any layer's operand computed from another layer's output, that output (and so the
    layer's y_pred) would depend on the other layer's prediction.
    """
    x = jnp.asarray(frames[0])
    apply_fn, params = linen_model(x)
    layers = sj.find_layers(apply_fn, params, x)
    preds = predictors.secnn().predict(predictors.secnn().init(layers))
    par = sj.parallel_compute(apply_fn, layers)
    n_params = len(jax.tree_util.tree_leaves(params))
    names = sorted(preds)  # dict leaves flatten in sorted-key order
    out_names = sorted(par(params, preds))
    assert out_names == sorted(layer.name for layer in layers)
    sources = _output_sources(par, params, preds)
    for name, src in zip(out_names, sources, strict=True):
        pred_sources = {names[i - n_params] for i in src if i >= n_params}
        assert pred_sources == {name}, f"y_pred[{name}] depends on predictions {pred_sources}"

    # The checker can fail: a chained "parallel phase" is caught.
    def chained(params, preds):
        out = par(params, preds)
        out["pw"] = out["pw"] + out["stem"].mean()
        return out

    bad = dict(zip(out_names, _output_sources(chained, params, preds), strict=True))
    assert {names[i - n_params] for i in bad["pw"] if i >= n_params} == {"pw", "stem"}


def test_wrong_input_shape_and_layers_are_clear_errors(frames):
    x = jnp.asarray(frames[0])
    apply_fn, params = linen_model(x)
    layers = sj.find_layers(apply_fn, params, x)
    step = sj.pipeline(apply_fn, layers, predictors.zero())
    state = predictors.zero().init(layers)
    with pytest.raises(ValueError, match="shape"):
        step(params, state, jnp.zeros((2, 16, 16, 3)))
    other_apply, other_params = MODELS["nnx"](x)
    with pytest.raises(ValueError, match="do not match"):
        sj.parallel_compute(other_apply, layers)(other_params,
                                                 predictors.zero().predict(state))
