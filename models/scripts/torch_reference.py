"""A hand-built PyTorch replica of ZFNet (test/script-only: torch).

ZFNet has no torchvision version: :class:`ZFNet` here follows the paper (Zeiler & Fergus 2014,
Fig. 3) as ``models/alexnet.py`` does, in the AlexNet-like ``features``/``classifier`` layout,
written independently of the Flax definition. It is the source of the committed key/shape
manifest ``models/manifests/zfnet.json`` and the forward-pass reference of ZFNet's round trip
(``torch.save`` -> ``models.convert`` -> ``models.load``) in ``tests/test_models_zoo.py``.

The eight zoo models that torchvision defines are checked against torchvision itself
(``tests/test_models_torchvision.py``); their manifests come from torchvision
(``models/scripts/make_manifests.py``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["build", "NAMES", "ZFNet"]


class ZFNet(nn.Module):
    """ZFNet (Zeiler & Fergus 2014, Fig. 3) in an AlexNet-like layout (see models/alexnet.py)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=7, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.Conv2d(96, 256, kernel_size=5, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, num_classes]`` of an NCHW batch."""
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


NAMES = ("zfnet",)


def build(name: str) -> nn.Module:
    """The replica of ``name`` (only ``"zfnet"``) in eval mode, torch's default random init."""
    if name != "zfnet":
        raise ValueError(f"no torch replica for {name!r}: the torchvision models are checked "
                         "against torchvision itself")
    return ZFNet().eval()
