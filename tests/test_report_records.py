"""The JSON codec of the typed study results (:mod:`experiments.records`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from experiments.records import RecordResult, from_plain, optional, to_plain
from experiments.studyresult import StaleResultError


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    rates: tuple[float, ...]
    band: Mapping[str, float] | None = optional()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Table:
    rows: tuple[Row, ...]
    pairs: Mapping[str, tuple[float, float]]
    note: str | None
    extra: Any
    kept: int | None = optional()


def _through_json(x: Any) -> Any:
    return json.loads(json.dumps(to_plain(x)))


def test_round_trip_through_json_text() -> None:
    t = Table(rows=(Row("a", (0.25, 0.75)), Row("b", (), {"low": 1.0, "high": 2.0})),
              pairs={"m": (0.1, 0.2)}, note=None, extra={"ranges": [{"x": 1}]}, kept=3)
    assert from_plain(Table, _through_json(t)) == t


def test_optional_fields_are_left_out_while_none_and_none_fields_are_not() -> None:
    t = Table(rows=(Row("a", (1.0,)),), pairs={}, note=None, extra=[1, 2])
    got = to_plain(t)
    assert got == {"rows": [{"name": "a", "rates": [1.0]}], "pairs": {}, "note": None,
                   "extra": [1, 2]}
    assert list(got) == ["rows", "pairs", "note", "extra"]  # field order is key order
    assert from_plain(Table, got) == t


def test_sequences_read_back_as_tuples() -> None:
    got = from_plain(Table, {"rows": [{"name": "a", "rates": [1, 2]}], "pairs": {"k": [3, 4]},
                             "note": "n", "extra": None})
    assert got.rows[0].rates == (1, 2) and got.pairs["k"] == (3, 4)


def test_only_optional_unions_are_read() -> None:
    with pytest.raises(TypeError, match=r"only X \| None"):
        from_plain(int | str, 1)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match=r"Row: unknown keys \['score'\]"):
        from_plain(Row, {"name": "a", "rates": [], "score": 1.0})


@dataclasses.dataclass(frozen=True)
class Study(RecordResult):
    STUDY: ClassVar[str] = "toy"
    VERSION: ClassVar[int] = 2

    rows: tuple[Row, ...]


def test_a_record_result_is_its_fields_in_the_envelope() -> None:
    r = Study((Row("a", (0.5,)),))
    data = json.loads(json.dumps(r.to_json()))
    assert data == {"study": "toy", "version": 2, "rows": [{"name": "a", "rates": [0.5]}]}
    assert Study.from_json(data) == r
    with pytest.raises(StaleResultError, match=r"toy result of another layout: .*'extra'"):
        Study.from_json({**data, "extra": 1})
    with pytest.raises(StaleResultError, match="toy result of another layout"):
        Study.from_json({"study": "toy", "version": 2})  # a field missing
