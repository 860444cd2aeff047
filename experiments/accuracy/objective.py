"""What the accuracy study judges against: the paper's claim and the tuner's objective.

:data:`CLAIM_AGREEMENT` is the paper's ">95% of accuracy" claim. An :class:`Objective` is the
floor the tuner must keep: the metric judged (its primary score), the floor and the tuning
method's safety margin, in one value instead of three loose keys.
"""

from __future__ import annotations

import dataclasses

from experiments import metrics as metrics_lib

__all__ = ["CLAIM_AGREEMENT", "Objective"]

#: The paper's claim: SE-CNN keeps over this fraction of the accuracy (judged on each model's
#: declared metric).
CLAIM_AGREEMENT = 0.95


@dataclasses.dataclass(frozen=True)
class Objective:
    """The floor a tuned threshold map must keep on the calibration frames.

    Attributes:
      metric: the metric judged (:mod:`experiments.metrics`); its primary score is compared.
      floor: the minimum of the tuning method's criterion, in ``[0, 1]``.
      margin: the method's safety margin: the criterion must reach ``floor + margin``.
    """

    metric: str
    floor: float = CLAIM_AGREEMENT
    margin: float = 0.0

    @property
    def primary(self) -> str:
        """The metric's primary field (the per-frame score the criterion is computed from)."""
        return metrics_lib.get_metric(self.metric).primary

    @property
    def need(self) -> float:
        """What the criterion must reach: ``floor + margin``."""
        return self.floor + self.margin

    def feasible(self, criterion: float) -> bool:
        """Whether ``criterion`` reaches :attr:`need`."""
        return bool(criterion >= self.need)
