"""The README's Python snippets run as written: every fenced ``python`` block of README.md is
executed, in order, in one namespace (later blocks use the names earlier ones define), on a
tiny model: ``models.load`` returns the small Linen CNN of ``_cnns`` and ``models.preprocess``
crops a 32 x 32 corner, so the blocks run in seconds on the real ``bikes`` clip."""

from __future__ import annotations

import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from _cnns import linen_model

import models

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def test_readme_python_blocks_run_as_written(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks()
    assert len(blocks) >= 3
    monkeypatch.setattr(models, "load",
                        lambda name, *a, **k: linen_model(jnp.zeros((1, 32, 32, 3))))
    monkeypatch.setattr(models, "preprocess",
                        lambda name, image: np.asarray(image[:32, :32], np.float32) / 255.0)
    monkeypatch.chdir(tmp_path)  # the blocks write traces/runs/bikes, timing.csv, frame0.json
    ns: dict = {"__name__": "readme"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md block {i + 1}", "exec"), ns)
    assert ns["frames"].shape == (4, 1, 32, 32, 3)
    assert ns["logits"].shape == (4, 1, 10)
    layers = ns["layers"]
    assert set(ns["work"]) == {layer.name for layer in layers}
    assert (tmp_path / "traces" / "runs" / "bikes" / "manifest.json").is_file()
    assert (tmp_path / "timing.csv").read_text().count("\n") > 1
    assert ns["r"].meta.get("fires") is not None and ns["ops"]  # timed with the op groups
