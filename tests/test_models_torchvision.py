"""The zoo's converters against torchvision itself, on real photos.

For each of the eight zoo models torchvision defines (all ILSVRC models but ZFNet), torchvision
builds the architecture with ``weights=None``; every conv/linear weight and bias and every
BatchNorm affine parameter and running statistic is re-randomised with a fixed seed (fresh
BatchNorms hold mean 0 / var 1 / weight 1 / bias 0 and would hide a converter that ignored or
mixed them up); the state dict is written with the real ``torch.save``, converted with
``models.convert`` (torch-free reader, converter, Orbax checkpoint) into a temporary cache and
restored with ``models.load``. Required: logits within 1e-4 of torchvision's eval forward,
relative to the logit scale, and the same top-1, on three scikit-image photos preprocessed by
``models.preprocess`` and resized to a small input (each model near its minimum size, to keep
the file at about two CPU-minutes). GoogLeNet and Inception-v3 run twice: with the auxiliary
heads in the file (``aux_logits=True``, ``transform_input=True``: the zoo's defaults) and
without them (``aux_logits=False``, loaded with ``transform_input=False``).

torchvision is in the ``[test]`` extras (``pip install -e .[test]``); installed without it every
test here skips, naming the command (``pip install --no-deps torchvision==0.28.0``, which also
works beside another torch build; see ``models/scripts/torchvision_import.py``).
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from _model_helpers import MANIFESTS, photos, relative_error

import models
from models import checkpoints
from models.conversion import expected_torch_keys
from secnn_jax.datasources import resize_image

torch = pytest.importorskip("torch")
from models.scripts.torchvision_import import (  # noqa: E402
    TorchvisionUnavailable,
    import_torchvision,
)

try:
    torchvision = import_torchvision()
except TorchvisionUnavailable as err:
    pytest.skip(f"torchvision reference unavailable: {err}", allow_module_level=True)

TOLERANCE = 1e-4
AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")
#: (zoo name, input size, torchvision builder options, zoo load options).
CASES = [
    ("alexnet", 63, {}, {}),
    ("vgg16", 32, {}, {}),
    ("vgg19", 32, {}, {}),
    ("googlenet", 64, {"aux_logits": True, "transform_input": True}, {}),
    ("googlenet", 32, {"aux_logits": False, "transform_input": False},
     {"transform_input": False}),
    ("inception_v3", 75, {"aux_logits": True, "transform_input": True}, {}),
    ("inception_v3", 75, {"aux_logits": False, "transform_input": False},
     {"transform_input": False}),
    ("resnet50", 64, {}, {}),
    ("resnet101", 32, {}, {}),
    ("resnet152", 32, {}, {}),
]
TORCHVISION_MODELS = ("alexnet", "vgg16", "vgg19", "googlenet", "inception_v3", "resnet50",
                      "resnet101", "resnet152")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Single-threaded torch: on two shared cores its thread pool spins far slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(name: str, seed: int, **options) -> torch.nn.Module:
    """torchvision's ``name(weights=None)`` with every float tensor of its state re-randomised."""
    if name in ("googlenet", "inception_v3"):
        options = {"init_weights": True, **options}
    model = getattr(torchvision.models, name)(weights=None, **options)
    generator = torch.Generator().manual_seed(seed)
    touched = set()
    with torch.no_grad():
        for prefix, module in model.named_modules():
            key = f"{prefix}." if prefix else ""
            if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                    * (1.0 / fan_in) ** 0.5)
                touched.add(key + "weight")
                if module.bias is not None:
                    module.bias.copy_(0.01 * torch.randn(module.bias.shape, generator=generator))
                    touched.add(key + "bias")
            elif isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                touched.update(key + leaf for leaf in
                               ("weight", "bias", "running_mean", "running_var"))
    floating = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    assert floating == touched, f"{name}: not re-randomised: {sorted(floating - touched)[:5]}"
    return model.eval()


def _photo_batch(name: str, size: int) -> np.ndarray:
    """The three photos through ``models.preprocess``, resized to ``size`` x ``size``."""
    return np.stack([resize_image(np.asarray(models.preprocess(name, image)), (size, size))
                     for image in photos().values()]).astype(np.float32)


@pytest.mark.parametrize(
    "name,size,builder,load_options", CASES,
    ids=[f"{c[0]}-{'aux' if c[2].get('aux_logits') else 'noaux'}" if c[2] else c[0]
         for c in CASES])
def test_converted_logits_match_torchvision(name, size, builder, load_options, tmp_path):
    model = _build(name, seed=7, **builder)
    state_dict = model.state_dict()
    has_aux = any(key.startswith(AUX_PREFIXES) for key in state_dict)
    assert has_aux == bool(builder.get("aux_logits", False))
    source = tmp_path / f"{name}.pth"
    torch.save(state_dict, source)
    cache = tmp_path / "cache"
    models.convert(name, source, cache_dir=cache)
    apply_fn, variables = models.load(name, cache_dir=cache, **load_options)

    x = _photo_batch(name, size)
    ours = np.asarray(jax.jit(apply_fn)(variables, x))
    with torch.no_grad():
        ref = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert ours.shape == ref.shape == (3, 1000)
    error = relative_error(ours, ref)
    top1 = ours.argmax(-1).tolist()
    print(f"torchvision {name} {size}px aux={has_aux}: max rel err {error:.2e} (max abs "
          f"{np.abs(ours - ref).max():.2e}, logit scale {np.abs(ref).max():.3g}), top-1 ours "
          f"{top1} torchvision {ref.argmax(-1).tolist()}")
    assert error <= TOLERANCE, f"{name}: relative logit error {error:.2e}"
    np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))
    assert checkpoints.read_metadata(name, cache).source_sha256 == checkpoints.sha256_file(source)


@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_manifest_and_converter_keys_are_torchvisions(name):
    """The committed manifest is torchvision's state dict (keys, order, shapes, dtypes), and the
    converter consumes exactly its keys (aux heads included)."""
    with torch.device("meta"):
        builder = {"aux_logits": True, "init_weights": True} if name in (
            "googlenet", "inception_v3") else {}
        state_dict = getattr(torchvision.models, name)(weights=None, **builder).state_dict()
    committed = json.loads((MANIFESTS / f"{name}.json").read_text())
    assert committed["source"] == "torchvision"
    assert [(e["key"], e["shape"], e["dtype"]) for e in committed["keys"]] == [
        (k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state_dict.items()]
    wanted = {k: tuple(v.shape) for k, v in state_dict.items()
              if not k.endswith(".num_batches_tracked")}
    assert expected_torch_keys(models.get_spec(name)) == wanted
