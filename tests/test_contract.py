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


def _commands() -> list[str]:
    """The modules of the command lines ``docs/contract.md`` lists (``python -m X``, a
    ``experiments.{a,b}`` group, a backticked ``experiments.X``/``models.X``)."""
    text = CONTRACT.read_text().split("## Command line", 1)[1]
    out: list[str] = []
    pattern = r"(?:python -m |`)((?:experiments|models)\.(?:\{[\w,]+\}|\w+))(?=[`\s])"
    for m in re.finditer(pattern, text):
        head, _, tail = m.group(1).partition(".")
        out += [f"{head}.{t}" for t in tail.strip("{}").split(",")]
    return list(dict.fromkeys(out))


def test_every_listed_command_explains_itself_with_help() -> None:
    """``python -m X --help`` for every listed command: exit 0 and a text that names the
    command's own flags, and for a study its shortcuts and every configuration field it reads
    (with default and meaning, from ``experiments.config.FIELDS``). The commands run in forked
    children of one process that imported JAX once (``tests/_cli_runner.py``); one of them
    also as a plain ``python -m`` subprocess."""
    import json
    import os
    import subprocess
    import sys

    from experiments import config

    commands = _commands()
    assert {"experiments.reproduce", "experiments.peers", "experiments.energy",
            "models.convert", "experiments.measure_gpu"} <= set(commands)
    root = CONTRACT.parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root),
                                                        os.environ.get("PYTHONPATH", "")]),
           "JAX_PLATFORMS": "cpu"}
    lines = json.dumps([[c, "--help"] for c in commands])
    ran = subprocess.run([sys.executable, str(root / "tests" / "_cli_runner.py"), lines],
                         cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    helps = dict(zip(commands, json.loads(ran.stdout), strict=True))
    plain = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--help"], cwd=root,
                           env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and plain.stdout == helps["experiments.reproduce"][1]
    table = {f.name: f for f in config.FIELDS}
    for command in commands:
        code, out, err = helps[command]
        assert code == 0, f"{command}: {err[-2000:]}"
        assert "Traceback" not in err and out.strip(), f"{command}: {err[-2000:]}"
        where = root / command.replace(".", "/")  # a module, or a package (its files)
        source = (where.with_suffix(".py").read_text() if where.with_suffix(".py").is_file()
                  else "\n".join(f.read_text() for f in sorted(where.glob("*.py"))))
        assert source.strip(), command
        for flag in re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source):
            assert f"--{flag}" in out or f"--[no]{flag}" in out, (command, flag)
        study = command.split(".")[1]
        if study in config.COMMAND_FIELDS:
            for flag in ("--out_dir", "--models", "--streams", "--frames", "--[no]overwrite"):
                assert flag in out, (command, flag)
            for name in config.COMMAND_FIELDS[study]:
                line = f"--config.{name} (default: {table[name].default!r}): {table[name].doc}"
                assert line in out, (command, name)


def test_the_test_extras_install_torchvision_at_the_version_the_scripts_name() -> None:
    """``pip install -e .[test]`` brings torchvision (its tests would otherwise skip), at the
    version ``models/scripts/torchvision_import.INSTALL`` names for a ``--no-deps`` install."""
    import tomllib

    from models.scripts.torchvision_import import INSTALL

    project = tomllib.loads((CONTRACT.parents[1] / "pyproject.toml").read_text())["project"]
    test = project["optional-dependencies"]["test"]
    pinned = [d for d in test if d.startswith("torchvision")]
    assert pinned == [INSTALL.split()[-1]], pinned
    torch = [d for d in test if d.startswith("torch==")]
    assert torch == ["torch==2.13.0"]  # the torch torchvision 0.28.0's wheel pins
