"""The original study's published claims, and the comparison vocabulary every study, table and
figure shares (which baselines, which SE-CNN schemes, under which launch model).

It imports nothing from the studies, so :mod:`experiments.speedup`, :mod:`experiments.figures`
and :mod:`experiments.report` can all read it without importing one another.
"""

from __future__ import annotations

import dataclasses

from secnn_jax.timing.names import BASELINES, DERIVED_BASELINES, FRAME_INDEPENDENT

__all__ = ["CLAIM_ACTIVATED", "CNVLUTIN_ZERO_SHARE", "COMPARISON_LAUNCH",
           "FASTER_ABOVE", "MARGINAL_AREA_SHARE", "MARGINAL_ENERGY_RATIO", "PAPER",
           "PUBLISHED_PEERS", "VALUE_PREDICTION_HOLDS", "VALUE_PREDICTION_PARTLY",
           "SPEEDUP_BASELINES", "Published", "above", "value_prediction_verdict"]

#: The baselines of the speedup study's columns, in report order: the replayed ones
#: (:data:`secnn_jax.timing.names.BASELINES`) and those derived from them per frame
#: (:data:`~secnn_jax.timing.names.DERIVED_BASELINES`), each derived one after its sources.
SPEEDUP_BASELINES: tuple[str, ...] = (
    *FRAME_INDEPENDENT, DERIVED_BASELINES[0],
    *(b for b in BASELINES if b not in FRAME_INDEPENDENT), DERIVED_BASELINES[1])
#: The paper's claims: baseline -> (average speedup, maximum speedup).
PAPER: dict[str, tuple[float, float]] = {
    "dense": (13.4, 22.0), "fast_conv": (10.4, 18.7), "zero_skip": (7.9, 16.4)}
#: "SE-CNN is faster": a speedup above this ratio (a ratio below the paper's figure but above
#: it is *partly*).
FASTER_ABOVE = 1.0
#: "Marginal hardware overheads in area and power": SE-CNN's additions take less than this
#: share of the die, ...
MARGINAL_AREA_SHARE = 0.01
#: ... and SE-CNN's energy per frame is at most this multiple of the lower-energy baseline's.
MARGINAL_ENERGY_RATIO = 1.0
#: "Value prediction is what makes SE-CNN fast": *holds* when prediction buys at least this
#: factor over SE-CNN's sequencing without prediction (the zero predictor), ...
VALUE_PREDICTION_HOLDS = 1.5
#: ... *partly* above this factor (below it: within the timing model's noise floor).
VALUE_PREDICTION_PARTLY = 1.05


@dataclasses.dataclass(frozen=True)
class Published:
    """A change-based peer's published speedup, for the peers study's sanity rows.

    Attributes:
      method: the scheme that models it (``deltacnn``, ``cbinfer``).
      low, high: the published speedup (``low == high``: one figure, "up to").
      source: the publication.
      setting: where the figure was measured (GPU, video, precision), as published.
    """

    method: str
    low: float
    high: float
    source: str
    setting: str

    @property
    def figure(self) -> str:
        """The published figure as text (``up to 7x``, ``8.6-9.1x``)."""
        return f"up to {self.high:g}x" if self.low == self.high else \
            f"{self.low:g}-{self.high:g}x"


#: The peers' published speedups over cuDNN, by scheme.
PUBLISHED_PEERS: dict[str, Published] = {p.method: p for p in (
    Published("deltacnn", 7.0, 7.0, "Parger et al., DeltaCNN, CVPR 2022",
              "RTX 3090, fp16/fp32, static-camera HD video, tau > 0"),
    Published("cbinfer", 8.6, 9.1, "Cavigelli et al., CBinfer, 2017",
              "static-camera surveillance video, scene labelling, tau > 0"),
)}


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


def value_prediction_verdict(factor: float) -> str:
    """The verdict on "value prediction is what makes SE-CNN fast" from the factor prediction
    buys (:data:`VALUE_PREDICTION_HOLDS`, :data:`VALUE_PREDICTION_PARTLY`)."""
    return ("holds" if factor >= VALUE_PREDICTION_HOLDS else
            "partly" if factor > VALUE_PREDICTION_PARTLY else "does not hold")
