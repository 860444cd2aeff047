"""The typed-result envelope and the claim row every study builds its verdict rows with."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from experiments.studyresult import CLAIM_FIELDS, StaleResultError, StudyResult, claim_row


@dataclasses.dataclass(frozen=True)
class _Toy(StudyResult):
    STUDY = "toy"
    VERSION = 3
    values: tuple[float, ...]

    def payload(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    @classmethod
    def from_payload(cls, data):
        return cls(tuple(data["values"]))


def test_round_trip_and_envelope():
    r = _Toy((1.0, 2.5))
    js = r.to_json()
    assert js == {"study": "toy", "version": 3, "values": [1.0, 2.5]}
    assert _Toy.from_json(js) == r


@pytest.mark.parametrize("data, fragment", [
    ({"study": "toy", "version": 2, "values": []}, "layout version 2"),
    ({"study": "other", "version": 3, "values": []}, "'other' result"),
    ({"values": []}, "None result"),
    ([1, 2], "JSON object expected"),
])
def test_stale_or_foreign_results_are_refused_by_name(data, fragment):
    with pytest.raises(StaleResultError, match="results/toy.json") as e:
        _Toy.from_json(data, source="results/toy.json")
    assert fragment in str(e.value)


def test_claim_row_orders_fields_and_drops_absent_places():
    row = claim_row("k", "c", "p", "o", "holds", gpu="h100", model="m")
    assert list(row) == [f for f in CLAIM_FIELDS if f != "stream"]
    assert row["gpu"] == "h100" and "stream" not in row
    with pytest.raises(TypeError, match="ours"):
        claim_row("k", "c", "p", 1.5, "holds")  # type: ignore[arg-type]
