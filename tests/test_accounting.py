"""Exact event accounting against brute-force loops on small layers."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import secnn_jax as sj
from secnn_jax import accounting

CONFIGS = [  # (H, W, Cin, Cout, k, stride, padding, dilation, groups)
    (7, 6, 3, 4, 3, (2, 2), ((1, 1), (1, 1)), (1, 1), 1),
    (8, 8, 4, 6, 3, (1, 2), ((0, 2), (1, 0)), (2, 1), 2),
    (6, 6, 4, 4, 3, (1, 1), ((1, 1), (1, 1)), (1, 1), 4),  # depthwise
    (5, 5, 3, 5, 1, (1, 1), ((0, 0), (0, 0)), (1, 1), 1),  # 1x1
    (9, 9, 2, 3, 5, (3, 3), ((2, 1), (0, 2)), (1, 2), 1),
]


def conv_layer(h, w, cin, cout, k, stride, padding, dilation, groups, n=2):
    kernel = jnp.ones((k, k, cin // groups, cout))

    def apply_fn(p, x):
        return lax.conv_general_dilated(x, p["conv"]["kernel"], stride, padding,
                                        rhs_dilation=dilation, feature_group_count=groups,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    (layer,) = sj.find_layers(apply_fn, {"conv": {"kernel": kernel}},
                              jnp.zeros((n, h, w, cin)))
    return layer


def brute_force(h, w, cin, cout, k, stride, padding, dilation, groups, codes):
    """Loops over every output neuron and kernel tap."""
    n = codes.shape[0]
    ho = (h + sum(padding[0]) - dilation[0] * (k - 1) - 1) // stride[0] + 1
    wo = (w + sum(padding[1]) - dilation[1] * (k - 1) - 1) // stride[1] + 1
    fan = np.zeros((h, w, cin), np.int64)
    untouched = np.zeros(n, np.int64)
    cin_g, cout_g = cin // groups, cout // groups
    for oy, ox, co in itertools.product(range(ho), range(wo), range(cout)):
        g = co // cout_g
        clean = np.ones(n, bool)
        for i, j in itertools.product(range(k), range(k)):
            y = oy * stride[0] - padding[0][0] + i * dilation[0]
            x = ox * stride[1] - padding[1][0] + j * dilation[1]
            if 0 <= y < h and 0 <= x < w:
                for c in range(g * cin_g, (g + 1) * cin_g):
                    fan[y, x, c] += 1
                    clean &= (codes[:, y, x, c] & 1) == 0
        untouched += clean
    pred = ((codes >= 2) * fan).reshape(n, -1).sum(-1)
    serial = ((codes & 1) * fan).reshape(n, -1).sum(-1)
    return fan, pred, serial, untouched, (ho, wo)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[f"cfg{i}" for i in range(len(CONFIGS))])
def test_conv_accounting_matches_brute_force(cfg):
    h, w, cin = cfg[:3]
    layer = conv_layer(*cfg)
    rng = np.random.default_rng(0)
    codes = rng.choice(4, size=(3, 2, h, w, cin), p=[0.5, 0.1, 0.3, 0.1]).astype(np.uint8)
    codes[0, 0] = 0  # a frame with no misprediction: everything untouched
    acc = accounting.account_layer(layer, codes)
    for t in range(3):
        fan, pred, serial, untouched, (ho, wo) = brute_force(*cfg, codes[t])
        assert layer.out_shape[1:3] == (ho, wo)
        np.testing.assert_array_equal(accounting.fanout(layer), fan)
        np.testing.assert_array_equal(acc.parallel_macs[t], pred)
        np.testing.assert_array_equal(acc.serial_macs[t], serial)
        np.testing.assert_array_equal(acc.untouched_outputs[t], untouched)
        for c in range(4):
            np.testing.assert_array_equal(acc.counts[t, :, c],
                                          (codes[t] == c).reshape(2, -1).sum(-1))
    assert acc.untouched_outputs[0, 0] == acc.n_outputs
    # all inputs predicted non-zero => the parallel phase does every real (non-padding) MAC
    full = accounting.account_layer(layer, np.full((2, h, w, cin), 2, np.uint8))
    assert (full.parallel_macs == full.dense_macs).all()
    assert full.dense_macs <= layer.macs // 2


def test_dense_and_nchw_accounting():
    def apply_fn(p, x):
        y = lax.conv_general_dilated(jnp.transpose(x, (0, 3, 1, 2)), p["c"]["w"], (2, 1),
                                     ((1, 0), (0, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y.reshape(y.shape[0], -1) @ p["fc"]["w"]

    params = {"c": {"w": jnp.ones((4, 3, 3, 3))}, "fc": {"w": jnp.ones((4 * 2 * 5, 5))}}
    conv, fc = sj.find_layers(apply_fn, params, jnp.zeros((2, 5, 6, 3)))
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, size=(1, *conv.in_shape)).astype(np.uint8)
    nhwc = np.transpose(codes[0], (0, 2, 3, 1))
    fan, pred, serial, untouched, _ = brute_force(5, 6, 3, 4, 3, (2, 1), ((1, 0), (0, 1)),
                                                  (1, 1), 1, nhwc)
    acc = accounting.account_layer(conv, codes)
    np.testing.assert_array_equal(acc.parallel_macs[0], pred)
    np.testing.assert_array_equal(acc.serial_macs[0], serial)
    np.testing.assert_array_equal(acc.untouched_outputs[0], untouched)
    fcodes = rng.integers(0, 4, size=(1, *fc.in_shape)).astype(np.uint8)
    fcodes[0, 1] = 2  # stream 1: nothing mispredicted -> all 5 outputs untouched
    facc = accounting.account_layer(fc, fcodes)
    np.testing.assert_array_equal(facc.parallel_macs[0], (fcodes[0] >= 2).sum(-1) * 5)
    np.testing.assert_array_equal(facc.serial_macs[0], (fcodes[0] & 1).sum(-1) * 5)
    assert facc.untouched_outputs[0, 1] == 5 and facc.untouched_outputs[0, 0] == 0


def test_account_on_a_real_stream(frames):
    from _cnns import linen_model

    apply_fn, params = linen_model(jnp.asarray(frames[0]))
    logits, events = sj.run_stream(apply_fn, params, frames[:3], sj.predictors.secnn())
    layers = sj.find_layers(apply_fn, params, jnp.asarray(frames[0]))
    acc = accounting.account(layers, events)
    for layer in layers:
        a = acc[layer.name]
        assert a.counts.shape == (3, 2, 4) and (a.counts.sum(-1) == layer.n_inputs).all()
        assert (a.parallel_macs[0] == 0).all()  # cold start: everything predicted zero
        assert ((a.serial_macs >= 0) & (a.serial_macs <= a.dense_macs)).all()
    with pytest.raises(accounting.AccountingError, match="no events"):
        accounting.account(layers, {})
    net = accounting.total(acc)
    assert net.layers == tuple(layer.name for layer in layers)
    np.testing.assert_array_equal(net.serial_macs, sum(a.serial_macs for a in acc.values()))
    np.testing.assert_array_equal(net.counts, sum(a.counts for a in acc.values()))
    assert net.dense_macs == sum(layer_acc.dense_macs for layer_acc in acc.values())
    assert net.n_inputs == sum(layer.n_inputs for layer in layers)
    first = acc[layers[0].name]
    r = repr(first)  # one short line: totals, not the arrays
    assert "\n" not in r and len(r) < 200 and "array" not in r
    assert f"T=3, N=2, dense_macs/frame={2 * first.dense_macs}" in r
    assert f"serial_macs={int(first.serial_macs.sum())}" in r
    zz, zn, vh, vm = first.counts.sum((0, 1))
    assert r.endswith(f"ZZ/ZN/VH/VM={zz}/{zn}/{vh}/{vm})")
    assert repr(net).startswith(f"NetworkAccount({len(layers)} layers, T=3, N=2,")
    with pytest.raises(accounting.AccountingError, match="no layer accounts"):
        accounting.total({})
    one_frame = accounting.account_layer(layers[0], events[layers[0].name][:1])
    with pytest.raises(accounting.AccountingError, match="different"):
        accounting.total([first, one_frame])
    del logits
