"""Import torchvision beside a torch whose build its C++ ops do not match (scripts and tests).

``pip install --no-deps torchvision==0.28.0`` beside the CPU torch 2.13.0 gives a torchvision
whose compiled ops (``torchvision/_C``) do not load; ``import torchvision`` then fails with
"operator torchvision::nms does not exist", raised where its meta registrations look the op up.
The classification models are pure Python and need none of those ops, so declaring the two
schemas that the import looks up (``torchvision::nms`` and ``torchvision::qnms``) with
``torch.library`` is enough. Where the compiled ops do load, nothing is declared.
"""

from __future__ import annotations

import contextlib
import importlib.util
import types

__all__ = ["INSTALL", "TorchvisionUnavailable", "import_torchvision"]

#: How the development environment installs torchvision (its wheel pins torch==2.13.0).
INSTALL = "pip install --no-deps torchvision==0.28.0"

_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


class TorchvisionUnavailable(ImportError):
    """torchvision is not installed, or cannot be imported even with the schemas declared."""


def _has_op(torch: types.ModuleType, name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def import_torchvision() -> types.ModuleType:
    """``torchvision``, imported; its missing op schemas declared first where needed.

    Raises:
      TorchvisionUnavailable: naming the install command, if torchvision is not installed.
    """
    if importlib.util.find_spec("torchvision") is None:
        raise TorchvisionUnavailable(f"torchvision is not installed ({INSTALL})")
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.submodule_search_locations and not _has_op(torch, "nms"):
        # What torchvision's own import would do first: load its compiled ops, if they load.
        from pathlib import Path

        for library in Path(next(iter(spec.submodule_search_locations))).glob("_C*.so"):
            with contextlib.suppress(OSError, RuntimeError):
                torch.ops.load_library(str(library))
    for name, schema in _SCHEMAS.items():
        if not _has_op(torch, name):
            torch.library.define(f"torchvision::{name}", schema)
    try:
        import torchvision
    except (ImportError, RuntimeError) as err:
        raise TorchvisionUnavailable(f"torchvision does not import: {err}") from err
    return torchvision
