"""``docs/contract.md`` describes names that exist: every ``- `name(...)`` entry of its Python
sections resolves in the package its section is about, with the parameters it lists."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import secnn_jax

CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "contract.md"
SECTIONS = {"Core (package `secnn_jax`)": "secnn_jax", "Timing (package `secnn_jax.timing`)":
            "secnn_jax.timing", "Models (package `models`)": "models"}


#: Backticked calls that are prose (how a result is used) or a Predictor's fields (the predictor
#: tests check those), not contract entries.
PROSE = {"functools.partial", "apply_fn", "help", "init", "predict", "update"}


def _entries() -> list[tuple[str, str, str]]:
    """``(module, name, params)`` per backticked call; a bullet that opens with a module
    (``- `secnn_jax.traces`: ...``) names the module its calls live in."""
    out, section, module = [], None, None
    for line in CONTRACT.read_text().splitlines():
        if line.startswith("## "):
            section = module = SECTIONS.get(line[3:].strip())
            continue
        if section is None:
            continue
        if line.startswith("- "):
            lead = re.match(r"- `(secnn_jax\.[\w.]+)`:", line)
            module = lead.group(1) if lead else section
        out += [(module, m.group(1), m.group(2))
                for m in re.finditer(r"`([A-Za-z_][\w.]*)\(([^`]*?)\)?(?: ->[^`]*)?`", line)
                if m.group(1) not in PROSE]
    return out


ENTRIES = _entries()


def _resolve(package: str, dotted: str) -> object:
    obj: object = importlib.import_module(package)
    for part in dotted.split("."):
        if part == package.split(".")[-1] and obj is importlib.import_module(package):
            continue  # "models.load" under the models section
        if not hasattr(obj, part):
            obj = importlib.import_module(f"{obj.__name__}.{part}")  # a submodule
        else:
            obj = getattr(obj, part)
    return obj


def test_the_package_docstring_links_the_contract() -> None:
    assert CONTRACT.is_file() and "docs/contract.md" in secnn_jax.__doc__
    assert len(ENTRIES) > 25


@pytest.mark.parametrize(("package", "name", "params"), ENTRIES,
                         ids=[f"{p}:{n}" for p, n, _ in ENTRIES])
def test_contract_entry_exists(package: str, name: str, params: str) -> None:
    obj = _resolve(package, name)
    assert callable(obj), name
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    for arg in re.findall(r"\b([a-z_]\w*)\s*=", params):
        assert arg in sig.parameters, f"{name} has no parameter {arg!r}"
