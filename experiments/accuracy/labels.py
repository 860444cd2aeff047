"""Ground-truth labels for the accuracy study's classifiers: a ``stream,frame,label`` CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from experiments.errors import ConfigError

__all__ = ["load_labels"]


def load_labels(path: str | Path) -> dict[tuple[str, int], int]:
    """Labels from a CSV with header ``stream,frame,label`` (ImageNet class indices)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ConfigError(f"labels file {str(path)!r} cannot be read: {e}") from e
    out = {}
    for i, r in enumerate(rows):
        try:
            out[(r["stream"].strip(), int(r["frame"]))] = int(r["label"])
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"labels file {str(path)!r} row {i + 2}: expected columns "
                             f"stream,frame,label with integer frame and label: {r}") from e
    return out
