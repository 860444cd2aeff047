"""Report sections render the same text from a result and from its JSON read back.

``results/*.json`` is written with its keys sorted (:func:`secnn_jax.fileio.dumps_json`), so a
section that ordered its columns by a mapping's key order would render a report from a results
file differently from the in-memory result. The speedup section orders its schemes canonically
(:mod:`secnn_jax.timing.names`: baselines, SE-CNN, derived baselines, peers); these tests
build a small result by hand with its mappings in a scrambled order and compare both
renderings.
"""

from __future__ import annotations

import json

from experiments import speedup
from experiments.paper import SPEEDUP_BASELINES
from secnn_jax.timing.names import BASELINES, DERIVED_BASELINES, PEERS, SECNN

# Scrambled on purpose: neither sorted nor canonical.
_SCHEMES = ("secnn_hw", "zero_skip", "cbinfer", "strongest", "dense", "secnn_sw", "fast_conv",
            "fft", "deltacnn", "winograd")
_BASELINES = ("zero_skip", "strongest", "dense", "fast_conv")


def _cell(model: str, k: int) -> speedup.SpeedupCell:
    total = {s: 100.0 * (i + 1) + k for i, s in enumerate(_SCHEMES)}
    total["secnn_hw@eager"] = 7.0  # a variant under another launch model: no column
    per = {b: {"mean": 2.0 + i, "max": 3.0 + i, "min": 1.0 + i}
           for i, b in enumerate(_BASELINES)}
    return speedup.SpeedupCell(
        model=model, stream="bikes", gpu="h100", frames=4, energy_uj={}, total_us=total,
        frame_us={}, phase_us={s: {"serial": 2.0, "parallel": 1.0, "amend": 0.5,
                                   "compare": 0.25} for s in ("secnn_hw", "secnn_sw")},
        ladder=speedup.Ladder(peers_us={}, mean_us={}, step_ratio={}),
        speedups={"secnn_hw": per, "secnn_sw": dict(reversed(per.items()))}, by_launch={})


def _result() -> speedup.SpeedupResult:
    return speedup.SpeedupResult(
        gpus=("h100",), variants=_SCHEMES, bands=None, launch="graph", fusion="none",
        predictor="secnn", tau=0.0, cells=(_cell("m1", 0), _cell("m2", 1)), summary=(),
        mapping={"zero_skip": "skips zeros", "dense": "dense kernels", "fast_conv": "fastest"})


def _columns(lines: list[str], title: str) -> list[str]:
    """The header cells of the table after the line ``title``."""
    i = lines.index(title)
    return [c.strip() for c in lines[i + 2].strip("|").split("|")]


def test_speedup_section_is_the_same_from_its_json() -> None:
    r = _result()
    back = speedup.SpeedupResult.from_json(json.loads(json.dumps(r.to_json(), sort_keys=True)))
    assert back == r
    assert speedup.section(back) == speedup.section(r)


def test_speedup_section_orders_schemes_canonically() -> None:
    lines = "\n".join(speedup.section(_result())).splitlines()  # a table is one item
    canon = [s for s in (*BASELINES, *SECNN, *DERIVED_BASELINES, *PEERS) if s in _SCHEMES]
    assert _columns(lines, "Mean time per frame (us):") == ["model", "stream", "gpu",
                                                            "frames", *canon]
    # Speedups per cell: per SE-CNN scheme (SECNN order), baselines in the report's order.
    start = lines.index("Speedups per cell:") + 4
    got = [tuple(c.strip() for c in ln.strip("|").split("|")[3:5])
           for ln in lines[start:start + 2 * len(_BASELINES)]]
    want_b = [b for b in SPEEDUP_BASELINES if b in _BASELINES]
    assert got == [(v, b) for v in ("secnn_sw", "secnn_hw") for b in want_b]
    mapping = next(ln for ln in lines if "Mapping of the paper's three GPU schemes" in ln)
    order = [b for b in SPEEDUP_BASELINES if b in _result().mapping]
    assert sorted(order, key=lambda b: mapping.index(f"`{b}` = ")) == order
