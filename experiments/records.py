"""Frozen dataclass records to and from JSON-ready values, for the studies' typed results.

A study's result (:class:`experiments.studyresult.StudyResult`) and its rows are frozen
dataclasses whose field names are the keys of ``results/<study>.json``. :func:`to_plain` turns
one into JSON-ready values (a dataclass into a dict in field order, a tuple into a list) and
:func:`from_plain` reads it back, guided by the fields' type hints: ``tuple[X, ...]``,
``Mapping[str, X]``, ``X | None``, nested records, and ``Any`` (kept as read). A field made with
:func:`optional` is left out of the JSON while it is ``None``: the keys a row has only sometimes
(a summary row's ``band``, a cell's ``tuned``) stay absent, as the studies always wrote them.
A key no field names is refused (``ValueError``), so a file of another layout is never read in
part. :class:`RecordResult` is the :class:`~experiments.studyresult.StudyResult` whose payload is
its fields this way (every typed study result derives from it); a payload it cannot read is a
:class:`~experiments.studyresult.StaleResultError`.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Self

from experiments.studyresult import StaleResultError, StudyResult

__all__ = ["RecordResult", "from_plain", "optional", "to_plain"]

_OMIT = "records_omit_none"


def optional(default: Any = None) -> Any:
    """A dataclass field absent from the JSON while it is ``None`` (``default``: None)."""
    return dataclasses.field(default=default, metadata={_OMIT: True})


def to_plain(x: Any) -> Any:
    """``x`` as JSON-ready values: records as dicts (fields in order, an :func:`optional` field
    left out while ``None``), tuples and lists as lists, mappings as dicts."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_plain(getattr(x, f.name)) for f in dataclasses.fields(x)
                if not (f.metadata.get(_OMIT) and getattr(x, f.name) is None)}
    if isinstance(x, (tuple, list)):
        return [to_plain(v) for v in x]
    if isinstance(x, Mapping):
        return {k: to_plain(v) for k, v in x.items()}
    return x


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_plain(tp: Any, data: Any) -> Any:
    """The value of type ``tp`` that :func:`to_plain` wrote as ``data``."""
    if data is None or tp is Any:
        return data
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"from_plain: only X | None unions are read, not {tp}")
        return from_plain(inner[0], data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        fields = [f for f in dataclasses.fields(tp) if f.init]
        unknown = set(data) - {f.name for f in fields}
        if unknown:  # another layout: refused, never read in part
            raise ValueError(f"{tp.__name__}: unknown keys {sorted(unknown)}")
        return tp(**{f.name: from_plain(hints[f.name], data[f.name])
                     for f in fields if f.name in data})
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], v) for v in data)
        return tuple(from_plain(a, v) for a, v in zip(args, data, strict=True))
    if origin in (dict, Mapping):
        return {k: from_plain(args[1], v) for k, v in data.items()}
    return data


@dataclasses.dataclass(frozen=True)
class RecordResult(StudyResult):
    """A study result whose JSON payload is its fields: :func:`to_plain` writes it,
    :func:`from_plain` reads it back (a subclass sets ``STUDY``, ``VERSION`` and its fields)."""

    def payload(self) -> dict[str, Any]:
        """The result's fields as JSON-ready values."""
        return to_plain(self)

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """The result from :meth:`payload`'s output; another layout is a
        :class:`~experiments.studyresult.StaleResultError`."""
        try:
            return from_plain(cls, data)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise StaleResultError(f"{cls.STUDY} result of another layout: {e}") from e
