"""Edge cases of the launch models and the tuning methods that mutation testing (``mutmut``,
``[tool.mutmut]`` in pyproject.toml) showed no test exercised: every launch model's costs, the
persistent kernel's occupancy, integer inputs to ``chain``, and the tuning methods' boundaries
(windows, k, backoff, short calibration runs, ``mean`` with windows)."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.errors import ConfigError
from experiments.tuning import TuneMethod, tune_method
from secnn_jax.timing import params as P
from secnn_jax.timing.gpus import H100
from secnn_jax.timing.launch import LaunchCosts, chain, persistent_occupancy

PARAMS = P.ModelParams(efficiency={"fp32": 0.5, "tf32": 0.8, "fp16": 0.8}, latency_cycles=600.0,
                       l2_bandwidth_factor=1.0, extra_kernel_us=5.0)
CFG = P.SchemeConfig()


# --- launch models ---------------------------------------------------------------------------

def test_every_launch_model_names_itself_and_only_eager_issues_from_the_host() -> None:
    costs = {m: LaunchCosts.of(m, H100, PARAMS, CFG) for m in ("eager", "graph", "persistent")}
    assert {m: c.model for m, c in costs.items()} == {m: m for m in costs}
    submit = H100.cycles(CFG.launch(H100))
    assert all(c.submit == submit for c in costs.values())
    assert costs["eager"].issue == submit
    assert costs["graph"].issue == 0.0 and costs["persistent"].issue == 0.0
    assert costs["persistent"].gap == H100.cycles(CFG.barrier_us)
    assert costs["graph"].gap == costs["eager"].gap == H100.cycles(CFG.graph_gap(PARAMS))
    with pytest.raises(P.TimingConfigError, match="unknown launch model 'warp'; known:"):
        LaunchCosts.of("warp", H100, PARAMS, CFG)


@pytest.mark.parametrize("occupancies,expected", [
    ([4, 2, 3], 2),   # the most demanding phase fixes the whole kernel
    ([0, 3, 5], 3),   # phases without kernels (0) do not count
    ([1, 4], 1),
    ([0], 1), ([], 1),  # nothing to run: one CTA per SM
])
def test_persistent_occupancy_is_the_smallest_positive_one(occupancies: list[int],
                                                           expected: int) -> None:
    assert persistent_occupancy(occupancies) == expected


def test_chain_keeps_fractional_cycles_for_integer_inputs() -> None:
    lc = LaunchCosts("graph", submit=10.0, gap=0.5, issue=0.0)
    start, end = chain(np.array([[3, 4]]), [1, 2], lc)
    assert start.dtype == np.float64
    np.testing.assert_array_equal(start, [[10.0, 13.5]])
    np.testing.assert_array_equal(end, [[13.0, 18.0]])  # 13.5 + 4 + one inner boundary 0.5
    with pytest.raises(ValueError, match=r"kernels \(3,\) do not match items \(2,\)"):
        chain(np.array([[3.0, 4.0]]), [1, 1, 1], lc)


# --- tuning methods --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    ({"kind": "median"}, "unknown; known: mean, worst_window, mean_std"),
    ({"windows": 0}, "windows must be an integer >= 1"),
    ({"windows": 2.5}, "windows must be an integer >= 1"),
    ({"backoff": 1.5}, "backoff must lie in"),
    ({"backoff": 0.0}, "backoff must lie in"),
    ({"kind": "mean_std", "windows": 2, "k": -0.5}, "k must be finite"),
])
def test_tune_method_bounds(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TuneMethod(**kwargs)


def test_tune_method_k_may_be_zero_or_fractional() -> None:
    per = np.array([1.0, 0.5, 1.0, 0.5])
    assert TuneMethod("mean_std", windows=2, k=0.0).criterion(per) == pytest.approx(0.75)
    assert TuneMethod("mean_std", windows=4, k=0.5).criterion(per) == pytest.approx(
        0.75 - 0.5 * np.std([1.0, 0.5, 1.0, 0.5], ddof=1))
    assert TuneMethod(backoff=1.0).backoff == 1.0


def test_criterion_of_a_single_calibration_window() -> None:
    # Fewer calibration frames than windows: one window, no spread to subtract (not NaN).
    assert tune_method("mean_std(windows=2,k=1)").criterion([0.7]) == pytest.approx(0.7)
    assert tune_method("worst_window(windows=3)").criterion([0.7]) == pytest.approx(0.7)


def test_mean_ignores_windows_and_computes_in_float64() -> None:
    per = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    assert tune_method("mean(windows=3)").criterion(per) == pytest.approx(per.mean())
    assert tune_method("mean").windows == 1
    third = np.array([1, 0, 0], np.float16)
    assert tune_method("mean").criterion(third) == pytest.approx(1 / 3, abs=1e-9)
    np.testing.assert_allclose(tune_method("worst_window(windows=2)").window_scores(
        np.tile(third, 2)), [1 / 3, 1 / 3], rtol=0, atol=1e-9)


def test_tune_method_spec_parsing_messages_and_types() -> None:
    with pytest.raises(ConfigError, match="bad tune method spec"):
        tune_method("worst window")
    with pytest.raises(ConfigError, match="'margin=0.1=2' is not key=number"):
        tune_method("mean(margin=0.1=2)")
    with pytest.raises(ConfigError, match="known: windows, margin, k, backoff"):
        tune_method("mean(alpha=1)")
    m = tune_method("worst_window(windows=4)")
    assert type(m.windows) is int and m.windows == 4
    assert type(tune_method("mean_std").windows) is int
