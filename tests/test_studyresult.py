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


def test_of_takes_a_result_or_its_json_form():
    r = _Toy((1.0, 2.5))
    assert _Toy.of(r) is r
    assert _Toy.of(r.to_json()) == r

    @dataclasses.dataclass(frozen=True)
    class _OtherCopy(StudyResult):  # the same study's class from another copy of its module
        STUDY = "toy"
        VERSION = 3
        values: tuple[float, ...]

        def payload(self) -> dict[str, Any]:
            return {"values": list(self.values)}

    got = _Toy.of(_OtherCopy((3.0,)))
    assert type(got) is _Toy and got == _Toy((3.0,))
