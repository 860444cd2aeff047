"""What every study's result shares: the versioned JSON envelope and the claim row.

A study (sparsity, prediction, speedup, accuracy, operating point, peers, energy, what-if) owns
a frozen dataclass deriving from :class:`StudyResult`, with ``STUDY`` (its name: the
``results/<STUDY>.json`` file) and ``VERSION`` (raised whenever the JSON layout changes). Its
module then offers ``claims(result) -> list[dict]`` (verdict rows, each built by
:func:`claim_row`) and ``section(result) -> list[str]`` (its Markdown lines); the report only
concatenates them. A result file of another study or another version is refused by name
(:class:`StaleResultError`): an old layout is never read through fallbacks, it is recomputed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from secnn_jax.errors import SecnnError

__all__ = ["CLAIM_FIELDS", "StaleResultError", "StudyResult", "claim_row"]

#: The columns of a claim row, in order; ``model``, ``stream`` and ``gpu`` are present only
#: where the row has them (what :func:`experiments.report.summary` groups by).
CLAIM_FIELDS = ("key", "model", "stream", "gpu", "claim", "paper", "ours", "verdict")


class StaleResultError(SecnnError, ValueError):
    """A result file written by another study or another version of the result's layout."""


def claim_row(key: str, claim: str, paper: str, ours: str, verdict: str, *,
              model: str | None = None, stream: str | None = None,
              gpu: str | None = None) -> dict[str, str]:
    """One row of the report's claims table.

    ``key`` names the claim judged (the same for every model, stream and GPU, so the summary
    can group rows by it); ``claim`` is the row's full text, ``paper`` the paper's figure,
    ``ours`` our measurement and ``verdict`` its verdict (a verdict band where the timing
    model's uncertainty applies). Every row of every study is built here, so all rows have the
    same keys in the same order.
    """
    where = {"model": model, "stream": stream, "gpu": gpu}
    fields = {"key": key, **{k: v for k, v in where.items() if v is not None},
              "claim": claim, "paper": paper, "ours": ours, "verdict": verdict}
    bad = [k for k, v in fields.items() if not isinstance(v, str)]
    if bad:
        raise TypeError(f"claim_row: {', '.join(bad)} must be str")
    return fields


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """Base of every study's typed result: the versioned JSON envelope.

    A subclass sets ``STUDY`` and ``VERSION`` and implements :meth:`payload` (its fields as
    JSON-ready values) and :meth:`from_payload` (the inverse). :meth:`to_json` adds
    ``{"study": STUDY, "version": VERSION}``; :meth:`from_json` checks both before reading.
    """

    STUDY: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def payload(self) -> dict[str, Any]:
        """The result's fields as JSON-ready values (without the envelope)."""
        raise NotImplementedError

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        """The result from :meth:`payload`'s output."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The result as written to ``results/<STUDY>.json``."""
        body = self.payload()
        clash = {"study", "version"} & set(body)
        if clash:
            raise ValueError(f"{type(self).__name__}.payload: reserved keys {sorted(clash)}")
        return {"study": self.STUDY, "version": self.VERSION, **body}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "") -> Self:
        """The result read back from :meth:`to_json`'s output; ``source`` (a file name) is named
        in the error when the data is another study's or another version's."""
        where = f"{source}: " if source else ""
        if not isinstance(data, Mapping):
            raise StaleResultError(f"{where}not a {cls.STUDY} result (a JSON object expected)")
        study, version = data.get("study"), data.get("version")
        if study != cls.STUDY:
            raise StaleResultError(f"{where}a {study!r} result, not {cls.STUDY!r}")
        if version != cls.VERSION:
            raise StaleResultError(
                f"{where}{cls.STUDY} result of layout version {version!r}; this code reads "
                f"version {cls.VERSION}: rerun the study to recompute it")
        return cls.from_payload({k: v for k, v in data.items()
                                 if k not in ("study", "version")})

    @classmethod
    def of(cls, result: StudyResult | Mapping[str, Any]) -> Self:
        """``result`` itself, or read from its JSON form (:meth:`from_json`). A result of this
        study built by another copy of its module (``python -m`` runs a study as ``__main__``)
        is read through its JSON form."""
        if isinstance(result, cls):
            return result
        return cls.from_json(result.to_json() if isinstance(result, StudyResult) else result)
