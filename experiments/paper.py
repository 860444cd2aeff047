"""The original study's published claims, and the comparison vocabulary every study, table and
figure shares (which baselines, which SE-CNN schemes, under which launch model).

It imports nothing from the studies, so :mod:`experiments.speedup`, :mod:`experiments.figures`
and :mod:`experiments.report` can all read it without importing one another.
"""

from __future__ import annotations

from secnn_jax.timing.names import SECNN

__all__ = ["BASELINES", "CLAIM_ACTIVATED", "CNVLUTIN_ZERO_SHARE", "COMPARISON_LAUNCH", "PAPER",
           "VARIANTS", "above"]

#: Baselines SE-CNN is compared with, in report order.
BASELINES: tuple[str, ...] = ("dense", "winograd", "fft", "fast_conv", "zero_skip", "strongest")
#: SE-CNN execution schemes.
VARIANTS: tuple[str, ...] = SECNN
#: The paper's claims: baseline -> (average speedup, maximum speedup).
PAPER: dict[str, tuple[float, float]] = {
    "dense": (13.4, 22.0), "fast_conv": (10.4, 18.7), "zero_skip": (7.9, 16.4)}
#: The paper's claim: fewer than this fraction of neurons are "activated" (read as non-zero,
#: or as changed since the previous frame: :mod:`experiments.sparsity`).
CLAIM_ACTIVATED = 0.10
#: A published ImageNet figure to set beside ours: Cnvlutin (J. Albericio et al., "Cnvlutin:
#: Ineffectual-Neuron-Free Deep Neural Network Computing", ISCA 2016) finds on average 44% of
#: the input neurons of the convolutional layers to be zero (post-ReLU) across its ImageNet
#: networks, i.e. about 56% non-zero.
CNVLUTIN_ZERO_SHARE = 0.44
#: The launch model of the headline comparisons (every scheme under it).
COMPARISON_LAUNCH = "persistent"


def above(score: float | None, floor: float) -> str:
    """The verdict on "keeps more than ``floor`` of the exact model's accuracy" (the accuracy
    study's summary and the report's claims both judge with it)."""
    if score is None or score != score:  # None or NaN
        return "not measured"
    return "holds" if score > floor else "does not hold"
