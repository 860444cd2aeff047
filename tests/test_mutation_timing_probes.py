"""Mutation tests of :mod:`secnn_jax.timing.probes`' software SE-CNN probe (issue 23 item 4):
``secnn_sw_us`` against a replay of the same layer with every input a value miss or every input
a value hit (deterministic densities 1 and 0), and ``sw_markdown``'s rows, measured kernel times
(the tiny-kernel time subtracted, floored at 0.01 us) and MAPE computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from secnn_jax import events as ev
from secnn_jax import timing
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import probes as PR
from secnn_jax.timing.gpus import GPUS
from secnn_jax.timing.params import ModelParams, SchemeConfig

_GEOM = LayerGeom.conv("c", n=1, h=8, cin=8, cout=8, k=3)
_PARAMS = ModelParams()


def _replayed(code: int, precision: str, gpu: str) -> dict[str, float]:
    """The ``secnn_sw`` scheme's kernel times (us) of the one layer, every input ``code``."""
    codes = np.full((1, *_GEOM.in_nhwc), code, np.uint8)
    r = timing.replay([_GEOM], {"c": codes}, gpus=(gpu,), schemes=("secnn_sw",),
                      precision=precision, ops=(), params=_PARAMS,
                      config=SchemeConfig(sw_compaction="software", layout="NHWC"))
    lp = r.get(gpu, "secnn_sw").layer_phases
    clock = GPUS[gpu].clock_mhz
    return {"compare": float(lp["compare"][0, 0]) / clock,
            "compact": float(lp["compaction"][0, 0]) / clock,
            "amend": float(lp["amend"][0, 0]) / clock}


@pytest.mark.parametrize(("precision", "gpu"), [("fp32", "h100"), ("fp16", "gtx1080ti")])
def test_secnn_sw_us_is_the_software_scheme_at_the_density(precision: str, gpu: str) -> None:
    """Density 1: every input a value miss; density 0: every input a value hit (nothing to
    amend); the compare reads every input either way; more misses never cost less."""
    full = PR.secnn_sw_us(_GEOM, 1.0, precision, gpu, _PARAMS)
    assert list(full) == ["compare", "compact", "amend"]
    assert full == pytest.approx(_replayed(ev.VM, precision, gpu), rel=1e-12)
    none = PR.secnn_sw_us(_GEOM, 0.0, precision, GPUS[gpu], _PARAMS)
    assert none == pytest.approx(_replayed(ev.VH, precision, gpu), rel=1e-12)
    assert none["amend"] < full["amend"] and full["amend"] > 0
    assert none["compare"] == pytest.approx(full["compare"], rel=1e-12) and full["compare"] > 0
    half = PR.secnn_sw_us(_GEOM, 0.5, precision, gpu, _PARAMS, seed=3)
    assert none["amend"] <= half["amend"] <= full["amend"]


def _row(density: str, times: tuple[float, float, float, float], name: str = "c"):
    return PR.ProbeRow(
        precision="fp32",
        times={"compare_us": times[0], "compact_us": times[1], "amend_us": times[2],
               "dense_us": times[3]},
        row={"net": "net", "name": name, "geom": json.dumps(_GEOM.as_dict()), "B": "1",
             "mode": "fp32", "density": density, "nnz": "5"})


def test_sw_markdown_rows_and_mape() -> None:
    g = GPUS["h100"]
    o = g.event_overhead_us
    rows = [_row("1", (o + 2.0, o + 3.0, o + 4.0, o + 5.0)),
            _row("0.0", (o, o + 1.0, o + 0.5, o - 1.0), name="d")]
    lines, nums = PR.sw_markdown(rows, "h100", _PARAMS)
    assert lines[0] == "## Software SE-CNN pieces on a stock GPU" and lines[1] == ""
    # one paragraph saying what is compared, then a blank line before the table
    assert lines[2].startswith("Per real layer shape and density of mispredicted inputs: ")
    assert lines[2].endswith("vs the `secnn_sw` model (software compaction).")
    assert lines[3] == ""
    assert lines[4].startswith("| layer | precision | density | compare (us) | model |")
    assert lines[5] == "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    full = PR.secnn_sw_us(_GEOM, 1.0, "fp32", g, _PARAMS)
    none = PR.secnn_sw_us(_GEOM, 0.0, "fp32", g, _PARAMS)
    assert lines[6] == (f"| net/c | fp32 | 100% | 2.0 | {full['compare']:.1f} | 3.0 | "
                        f"{full['compact']:.1f} | 4.0 | {full['amend']:.1f} | 5.0 |")
    # measured times at or below the tiny-kernel time floor at 0.01 us
    assert lines[7] == (f"| net/d | fp32 | 0% | 0.0 | {none['compare']:.1f} | 1.0 | "
                        f"{none['compact']:.1f} | 0.5 | {none['amend']:.1f} | 0.0 |")
    meas = {"compare": [2.0, 0.01], "compact": [3.0, 1.0], "amend": [4.0, 0.5]}
    pred = {p: [full[p], none[p]] for p in meas}
    want = {p: 100 * np.mean([abs(a - b) / b for a, b in zip(pred[p], meas[p], strict=True)])
            for p in meas}
    assert list(nums["mape"]) == ["compare", "compact", "amend"]
    for p in meas:
        assert nums["mape"][p] == pytest.approx(want[p], rel=1e-9)
    assert lines[8:] == ["", "MAPE of the model: " + ", ".join(
        f"{p} {want[p]:.0f}%" for p in meas) + ".", ""]
