"""Property tests of the threshold tuner's search (:func:`experiments.accuracy.tune`,
:mod:`experiments.accuracy.tuner`).

The tuner runs on a fake workspace whose "model" is two plain functions of the per-layer
``alpha``: how many calibration frames disagree with the exact model's top-1 class (``fails``)
and the replayed speedup (``speed``). Scores and speedups reach the tuner through the real code
paths (``metrics.frame_scores`` on logits; ``scoring.cell_speedup`` and ``speedup.frame_times`` on
replayed microseconds), and the expected results are computed by hand from the search that
``tune`` documents: one global alpha doubling up from 0.02 (while ``a < 64``) or, when 0.02
fails, halving down (while ``a > 0.001``) to the first that passes; then per-group doublings
that must raise the speedup; then ``backoff``. Feasible: criterion >= ``floor + margin``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from experiments import accuracy
from experiments.accuracy import scoring, tuner
from experiments.errors import ConfigError
from experiments.speedup import COMPARISON_LAUNCH
from secnn_jax import events as ev

#: Stage 1's global alphas: doubling from 0.02 while below 64, halving while above 0.001.
UP = [0.02 * 2.0**k for k in range(13)]      # 0.02 ... 81.92
DOWN = [0.02 / 2.0**k for k in range(1, 6)]  # 0.01 ... 0.000625
BASE_US = 100.0


class FakeWorkspace:
    """Just what ``tune`` reads from a :class:`experiments.cells.Workspace`."""

    def __init__(self, n_layers: int, frames: int, chunk_size: int,
                 fails: Callable[[np.ndarray], int], speed: Callable[[np.ndarray], float],
                 misses: np.ndarray | None = None, scale: np.ndarray | None = None) -> None:
        self.chunk_size = chunk_size
        self.frames = frames
        self.fails, self.speed = fails, speed
        self.timer = SimpleNamespace(schemes=(f"dense@{COMPARISON_LAUNCH}",
                                              f"secnn_hw@{COMPARISON_LAUNCH}"))
        self._layers = tuple(SimpleNamespace(name=f"l{i}", macs=4 * 10, n_inputs=10,
                                             in_shape=(1, 10)) for i in range(n_layers))
        # Each layer's scale (mean |input|) is abs_sum / n_inputs: 1 unless given (tau == alpha).
        self.scale = np.ones(n_layers) if scale is None else np.asarray(scale, np.float64)
        self._ref = SimpleNamespace(n_inputs=np.full(n_layers, 10), logits=self._logits(0),
                                    abs_sum=np.tile(10.0 * self.scale, (frames, 1)))
        self.misses = np.arange(1, n_layers + 1) if misses is None else misses
        self.runs: list[np.ndarray] = []

    def _logits(self, wrong: int, n: int | None = None) -> np.ndarray:
        n = self.frames if n is None else n
        out = np.zeros((n, 2), np.float32)
        out[:, 0] = 1.0
        out[:wrong] = [0.0, 1.0]  # the first `wrong` frames pick the other class
        return out

    def n_frames(self, model: str, stream: str) -> int:
        assert (model, stream) == ("m", "s")
        return self.frames

    def layers(self, model: str, stream: str) -> tuple:
        return self._layers

    def reference(self, model: str, stream: str) -> SimpleNamespace:
        assert (model, stream) == ("m", "s")
        return self._ref

    def run(self, model: str, stream: str, predictor: str, tau, *, n_frames: int,
            timed: bool) -> SimpleNamespace:
        assert (model, stream, timed) == ("m", "s", True)
        time_us = np.full((n_frames, 1, 2), np.nan)
        counts = np.zeros((n_frames, len(self._layers), 4), np.int64)
        if predictor == "zero":
            assert tau == 0.0 and type(tau) is float  # the baseline: the exact zero predictor
            time_us[:, 0, 0] = BASE_US
            return SimpleNamespace(time_us=time_us, counts=counts, logits=self._logits(0, n_frames))
        alpha = np.array([tau[lyr.name] for lyr in self._layers]) / self.scale
        self.runs.append(alpha)
        time_us[:, 0, 1] = BASE_US / self.speed(alpha)
        counts[:, :, ev.ZN] = self.misses
        counts[:, :, ev.VM] = 1
        counts[:, :, ev.VH] = 3
        counts[:, :, ev.ZZ] = 100
        wrong = int(self.fails(alpha))
        assert 0 <= wrong <= n_frames
        return SimpleNamespace(time_us=time_us, counts=counts,
                               logits=self._logits(wrong, n_frames))


def _tune(ws: FakeWorkspace, floor: float, evals: int = 40, calib: int | None = None,
          **kw) -> dict:
    if calib is None:
        calib = ws.frames - ws.chunk_size if ws.frames > ws.chunk_size else ws.frames
    return accuracy.tune(ws, "m", "s", "secnn", calibration_frames=calib, floor=floor,
                         evals=evals, metric="top1", **kw)


def _sum_speed(alpha: np.ndarray) -> float:
    return 1.0 + float(alpha.sum())


def _largest_grid_alpha(limit: float) -> float:
    """The alpha stage 1 settles on when exactly the alphas <= ``limit`` pass."""
    if limit >= UP[0]:
        return max(a for a in UP if a <= limit)
    passing = [a for a in DOWN if a <= limit]
    return max(passing) if passing else 0.0


FLOORS = st.sampled_from([0.5, 0.75, 0.875, 1.0])


# --- the search -----------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(limit=st.floats(1e-4, 80.0), n_layers=st.integers(1, 5), groups=st.integers(1, 4))
def test_tuned_alpha_is_the_largest_global_grid_value_meeting_the_floor(
        limit: float, n_layers: int, groups: int) -> None:
    """Every frame fails once any layer's alpha exceeds ``limit``: the result is the largest
    alpha of stage 1's grid within the limit, on every layer (a group doubling exceeds it)."""
    ws = FakeWorkspace(n_layers, 16, 8, lambda a: 8 * bool(a.max() > limit), _sum_speed)
    r = _tune(ws, floor=1.0, groups=groups)
    want = _largest_grid_alpha(limit)
    assert r["alpha"] == {f"l{i}": want for i in range(n_layers)}
    assert r["tau"] == r["alpha"]  # scale 1
    assert r["agreement"] == r["criterion"] == 1.0
    assert r["speedup"] == pytest.approx(1.0 + n_layers * want)
    assert r["calibration_frames"] == 8  # at most all frames but one chunk


@settings(max_examples=30, deadline=None)
@given(thresholds=st.lists(st.floats(1e-4, 80.0), min_size=8, max_size=8),
       floors=st.tuples(FLOORS, FLOORS))
def test_a_higher_floor_never_gives_larger_thresholds(thresholds: list[float],
                                                      floors: tuple[float, float]) -> None:
    """Frame i fails once alpha exceeds its own threshold; raising the floor lowers tau."""
    th = np.array(sorted(thresholds))

    def fails(a: np.ndarray) -> int:
        return int((a.max() > th).sum())

    lo, hi = sorted(floors)
    r_lo = _tune(FakeWorkspace(3, 16, 8, fails, _sum_speed), floor=lo)
    r_hi = _tune(FakeWorkspace(3, 16, 8, fails, _sum_speed), floor=hi)
    assert all(r_hi["tau"][k] <= r_lo["tau"][k] for k in r_lo["tau"])
    # and each is the hand-computed stage-1 alpha: frames allowed to fail = floor(8 (1 - floor))
    for r, floor in ((r_lo, lo), (r_hi, hi)):
        allowed = int(np.floor(8 * (1.0 - floor) + 1e-9))
        # alpha fails more than `allowed` frames once it exceeds the (allowed+1)-th threshold
        want = _largest_grid_alpha(th[allowed]) if allowed < 8 else None
        if want is not None and want < UP[-1]:
            assert set(r["alpha"].values()) == {want}
        assert r["criterion"] >= floor


@settings(max_examples=20, deadline=None)
@given(evals=st.integers(1, 14), n_layers=st.integers(1, 4))
def test_a_metric_always_met_doubles_until_the_budget_ends(evals: int, n_layers: int) -> None:
    ws = FakeWorkspace(n_layers, 16, 8, lambda a: 0, _sum_speed)
    r = _tune(ws, floor=1.0, evals=evals)
    want = 0.0 if evals == 1 else UP[evals - 2]  # evaluation 1 is the exact one (alpha 0)
    assert set(r["alpha"].values()) == {want}
    assert len(r["history"]) == evals
    assert [h["alpha_max"] for h in r["history"]] == [0.0] + UP[:evals - 1]


@settings(max_examples=15, deadline=None)
@given(extra=st.integers(1, 8), groups=st.integers(1, 4),
       misses=st.lists(st.integers(1, 9), min_size=4, max_size=4))
def test_a_metric_always_met_then_doubles_groups_while_faster(extra: int, groups: int,
                                                              misses: list[int]) -> None:
    """After stage 1 tops out at 81.92, every group doubling is faster and feasible: each is
    kept, so the result is the last evaluation and each layer's alpha is 81.92 x 2^k."""
    ws = FakeWorkspace(4, 16, 8, lambda a: 0, _sum_speed, misses=np.array(misses))
    r = _tune(ws, floor=1.0, evals=14 + extra, groups=groups)
    hist = r["history"]
    assert [h["alpha_max"] for h in hist[:14]] == [0.0, *UP]
    assert all(h["feasible"] for h in hist)
    assert all(b["speedup"] > a["speedup"] for a, b in zip(hist[13:], hist[14:], strict=False))
    alpha = np.array(list(r["alpha"].values()))
    np.testing.assert_array_equal(alpha, ws.runs[-1])
    assert [(h["alpha_min"], h["alpha_max"]) for h in hist] == [
        (run.min(), run.max()) for run in ws.runs]
    k = np.log2(alpha / UP[-1])
    np.testing.assert_array_equal(k, np.round(k))
    assert k.min() >= 0 and extra <= k.sum() <= 4 * extra  # each doubling: >= 1 layer
    assert len(hist) == 14 + extra  # no group is ever frozen: the budget is spent


@settings(max_examples=20, deadline=None)
@given(evals=st.integers(1, 12), n_layers=st.integers(1, 4))
def test_a_metric_never_met_gives_the_exact_model(evals: int, n_layers: int) -> None:
    ws = FakeWorkspace(n_layers, 16, 8, lambda a: 8 * bool(a.max() > 0), _sum_speed)
    r = _tune(ws, floor=0.5, evals=evals)
    assert r["tau"] == {f"l{i}": 0.0 for i in range(n_layers)}
    assert r["agreement"] == 1.0 and r["speedup"] == 1.0
    tried = [0.0, UP[0], *DOWN][:evals]
    assert [h["alpha_max"] for h in r["history"]] == tried


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.floats(0.0, 3.0), min_size=3, max_size=3),
       limit=st.floats(0.0, 2.0), evals=st.integers(1, 20), groups=st.integers(1, 3))
def test_the_result_meets_the_floor_and_is_the_fastest_feasible_evaluation(
        weights: list[float], limit: float, evals: int, groups: int) -> None:
    """Whatever the metric and speedup: the searched result is feasible (or the exact model),
    it has the best speedup among the feasible evaluations, and there are at most ``evals``."""
    w = np.array(weights)
    ws = FakeWorkspace(3, 16, 8, lambda a: 4 * bool(float(w @ a) > limit),
                       lambda a: 1.0 + float(a @ (w + 0.5)))
    r = _tune(ws, floor=0.75, evals=evals, groups=groups)
    hist = r["history"]
    assert len(hist) == len(ws.runs) <= evals
    assert r["criterion"] >= 0.75 or set(r["alpha"].values()) == {0.0}
    feasible = [h["speedup"] for h in hist if h["feasible"]]
    assert r["speedup"] == max(feasible)
    alpha = np.array(list(r["alpha"].values()))
    assert any(np.array_equal(alpha, run) for run in ws.runs)


def test_a_margin_that_binds_lowers_the_threshold() -> None:
    """8 calibration frames; alpha above 0.03 fails one frame, above 0.1 two, above 0.2 six.
    Floor 0.75 accepts two failures (alpha 0.16, criterion exactly 0.75: feasible at equality);
    a margin of 0.125 needs 0.875, one failure (alpha 0.08, again exactly at the need); a margin
    of 0.2 needs 0.95, no failure (alpha 0.02)."""
    def fails(a: np.ndarray) -> int:
        return int(a.max() > 0.03) + int(a.max() > 0.1) + 4 * int(a.max() > 0.2)

    def run(method: str) -> dict:
        return _tune(FakeWorkspace(2, 16, 8, fails, _sum_speed), floor=0.75, method=method)

    for method, alpha, criterion in (("mean", 0.16, 0.75), ("mean(margin=0.125)", 0.08, 0.875),
                                     ("mean(margin=0.2)", 0.02, 1.0)):
        r = run(method)
        assert set(r["alpha"].values()) == {alpha}, method
        assert r["criterion"] == criterion and r["floor"] == 0.75


@settings(max_examples=20, deadline=None)
@given(limit=st.floats(0.05, 60.0), backoff=st.sampled_from([0.25, 0.5, 0.75]))
def test_backoff_scales_the_searched_alpha(limit: float, backoff: float) -> None:
    ws = FakeWorkspace(2, 16, 8, lambda a: 8 * bool(a.max() > limit), _sum_speed)
    r = _tune(ws, floor=1.0, method=f"mean(backoff={backoff})")
    want = _largest_grid_alpha(limit)
    assert set(r["alpha"].values()) == {want * backoff}
    assert r["searched"]["speedup"] == pytest.approx(1.0 + 2 * want)
    assert r["speedup"] == pytest.approx(1.0 + 2 * want * backoff)
    last = r["history"][-1]  # the backed-off alpha's run (unless stage 1 already ran it)
    assert last["note"] == f"backoff x{backoff:g}" or want * backoff in UP + DOWN


# --- calibration frames ---------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 200), cs=st.integers(1, 40), requested=st.integers(1, 300))
def test_calibration_frames_are_whole_chunks_leaving_one_out(total: int, cs: int,
                                                            requested: int) -> None:
    ws = FakeWorkspace(1, total, cs, lambda a: 0, _sum_speed)
    got = tuner.calibration_frames(ws, "m", "s", requested)
    assert 1 <= got <= total
    if total <= cs:
        assert got == total  # one (partial) chunk: all of it
        return
    assert got % cs == 0 and got < total  # whole chunks, at least one frame held out
    if requested % cs == 0 and requested < total:
        assert got == requested  # a valid request is kept
    elif requested >= total:  # as large as the stream: every whole chunk but the last
        assert got == (total - 1) // cs * cs
    else:
        assert got == max(cs, requested // cs * cs)


@pytest.mark.parametrize("method,frames,windows", [
    ("worst_window(windows=4)", 2, 2),
    ("mean_std(windows=4,k=1)", 1, 1),  # one frame: the mean
    ("worst_window(windows=4)", 8, 4),
])
def test_more_windows_than_calibration_frames_uses_one_per_frame(method: str, frames: int,
                                                                 windows: int) -> None:
    ws = FakeWorkspace(1, frames, frames, lambda a: 0, _sum_speed)
    r = _tune(ws, floor=1.0, evals=2, method=method)
    assert r["method"] == method and r["windows_used"] == windows
    assert len(r["window_scores"]) == windows


def test_the_tuner_needs_a_timer() -> None:
    ws = FakeWorkspace(1, 8, 4, lambda a: 0, _sum_speed)
    ws.timer = None
    with pytest.raises(ConfigError, match="the threshold tuner needs a timer"):
        _tune(ws, floor=1.0)


def test_better_keeps_the_faster_feasible_result_and_the_newer_on_ties() -> None:
    def r(speedup, feasible: bool = True) -> SimpleNamespace:
        return SimpleNamespace(speedup=speedup, feasible=feasible)

    a, b = r(2.0), r(1.0)
    assert tuner.better(a, b) is a and tuner.better(b, a) is a
    tie = r(2.0)
    assert tuner.better(a, tie) is tie  # b on ties
    assert tuner.better(a, r(5.0, feasible=False)) is a
    none, zero, half = r(None), r(0.0), r(0.5)  # no speedup counts as 0
    assert tuner.better(half, none) is half and tuner.better(none, half) is half
    assert tuner.better(none, zero) is zero and tuner.better(zero, none) is none


def test_cell_speedup_is_none_without_times_or_schemes() -> None:
    ws = FakeWorkspace(2, 16, 8, lambda a: 0, _sum_speed)
    cell = ws.run("m", "s", "secnn", {"l0": 0.5, "l1": 0.5}, n_frames=4, timed=True)
    args = ("m", "s", cell, 0, "secnn_hw", "dense")
    assert scoring.cell_speedup(ws, *args) == pytest.approx(2.0)
    assert scoring.cell_speedup(ws, "m", "s", cell, 0, "secnn_hw", "dense",
                                  slice(0, 2)) == pytest.approx(2.0)
    assert scoring.cell_speedup(ws, "m", "s", cell, 0, "winograd", "dense") is None
    assert scoring.cell_speedup(ws, "m", "s", cell, 0, "secnn_hw", "fft") is None
    untimed = SimpleNamespace(**{**cell.__dict__, "time_us": None})
    assert scoring.cell_speedup(ws, "m", "s", untimed, *args[3:]) is None
    ws.timer = None
    assert scoring.cell_speedup(ws, *args) is None


@settings(max_examples=15, deadline=None)
@given(limit=st.floats(0.01, 60.0), scale=st.lists(st.sampled_from([0.25, 0.5, 2.0, 4.0]),
                                                    min_size=3, max_size=3))
def test_thresholds_are_alpha_times_each_layers_mean_input(limit: float,
                                                           scale: list[float]) -> None:
    ws = FakeWorkspace(3, 16, 8, lambda a: 8 * bool(a.max() > limit), _sum_speed, scale=scale)
    r = _tune(ws, floor=1.0)
    want = _largest_grid_alpha(limit)
    assert r["scale"] == {f"l{i}": s for i, s in enumerate(scale)}
    assert r["alpha"] == {f"l{i}": want for i in range(3)}
    assert r["tau"] == {f"l{i}": want * s for i, s in enumerate(scale)}


def test_a_changed_calibration_request_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    ws = FakeWorkspace(1, 16, 8, lambda a: 0, _sum_speed)
    with caplog.at_level("WARNING"):
        r = _tune(ws, floor=1.0, evals=2, calib=16)
    assert r["calibration_frames"] == 8
    assert caplog.messages == ["calibration_frames=16: m calibrates on 8 of its 16 s frames "
                               "(whole chunks of 8, 8 held out); recorded in config.json as "
                               "effective"]
    caplog.clear()
    ws = FakeWorkspace(1, 6, 8, lambda a: 0, _sum_speed)  # one partial chunk: all of it
    with caplog.at_level("WARNING"):
        r = _tune(ws, floor=1.0, evals=2, calib=7, method="worst_window(windows=8)")
    assert caplog.messages == [
        "calibration_frames=7: m calibrates on 6 of its 6 s frames (whole chunks of 8, none "
        "held out); recorded in config.json as effective",
        "tune method worst_window(windows=8): 8 windows but only 6 calibration frames; using 6"]
    caplog.clear()
    with caplog.at_level("WARNING"):
        _tune(FakeWorkspace(1, 16, 8, lambda a: 0, _sum_speed), floor=1.0, evals=2)
    assert caplog.messages == []


def test_every_evaluation_is_logged_and_noted(caplog: pytest.LogCaptureFixture) -> None:
    ws = FakeWorkspace(4, 16, 8, lambda a: 8 * bool(a.max() > 0.03), _sum_speed,
                       misses=np.ones(4, np.int64))
    with caplog.at_level("INFO"):
        r = _tune(ws, floor=1.0, evals=4, groups=2)
    notes = [h["note"] for h in r["history"]]
    # 4 layers of equal serial work in 2 groups: two and two
    assert notes == ["exact (alpha 0)", "global alpha 0.02", "global alpha 0.04",
                     "group 0 (2 layers) x2"]
    assert caplog.messages == [
        "tuner m mean exact (alpha 0): top1 1.000, criterion 1.000, speedup 1.000 (ok)",
        "tuner m mean global alpha 0.02: top1 1.000, criterion 1.000, speedup 1.080 (ok)",
        "tuner m mean global alpha 0.04: top1 0.000, criterion 0.000, speedup 1.160 (below)",
        "tuner m mean group 0 (2 layers) x2: top1 0.000, criterion 0.000, speedup 1.120 "
        "(below)"]
    caplog.clear()
    ws.timer = SimpleNamespace(schemes=("dense@graph",))  # no SE-CNN scheme timed: no speedup
    with caplog.at_level("INFO"):
        r = _tune(ws, floor=1.0, evals=1)
    assert caplog.messages == ["tuner m mean exact (alpha 0): top1 1.000, criterion 1.000, "
                               "speedup n/a (ok)"]
    assert r["speedup"] is None


def test_without_a_speedup_no_group_doubling_is_kept() -> None:
    """No SE-CNN scheme timed: every speedup is None; stage 1 still climbs (ties go to the
    newer result) but stage 2 keeps a doubling only when it is faster, which it never is."""
    ws = FakeWorkspace(3, 16, 8, lambda a: 0, _sum_speed)
    ws.timer = SimpleNamespace(schemes=("dense@graph",))
    r = _tune(ws, floor=1.0, evals=14 + 3, groups=1)
    assert r["alpha"] == {f"l{i}": UP[-1] for i in range(3)} and r["speedup"] is None
    assert len(r["history"]) == 14 + 1  # the one group's doubling, then frozen


def test_the_result_records_what_was_asked_and_found() -> None:
    ws = FakeWorkspace(2, 16, 8, lambda a: 8 * bool(a.max() > 0.05), _sum_speed,
                       misses=np.array([4, 2]))
    r = accuracy.tune(ws, "m", "s", "secnn(silence=0.5)", calibration_frames=8, floor=0.75,
                      evals=5, metric="top1", method="mean(margin=0.125,backoff=0.5)", gpu=0,
                      scheme="secnn_hw", baseline="dense", groups=2)
    assert {k: r[k] for k in ("model", "stream", "predictor", "floor", "metric", "method",
                              "windows_used", "margin", "calibration_frames")} == {
        "model": "m", "stream": "s", "predictor": "secnn(silence=0.5)", "floor": 0.75,
        "metric": "top1", "method": "mean(margin=0.125,backoff=0.5)", "windows_used": 1,
        "margin": 0.125, "calibration_frames": 8}
    assert r["objective"] == {"gpu": 0, "scheme": "secnn_hw", "baseline": "dense"}
    # searched 0.04 (0.08 fails every frame), then backed off to 0.02
    assert r["searched"] == {"agreement": 1.0, "speedup": pytest.approx(1.08),
                             "criterion": 1.0}
    assert r["alpha"] == {"l0": 0.02, "l1": 0.02} and r["speedup"] == pytest.approx(1.04)
    # mispredicted inputs (ZN + VM) over all inputs, every frame and layer
    assert r["mispredicted"] == pytest.approx((4 + 2 + 2 * 1) / (4 + 2 + 2 * (1 + 3 + 100)))
    assert r["window_scores"] == [1.0] and r["agreement"] == r["criterion"] == 1.0
    assert set(r) == {"model", "stream", "predictor", "floor", "metric", "method",
                      "windows_used", "margin", "calibration_frames", "tau", "alpha", "scale",
                      "agreement", "criterion", "window_scores", "speedup", "mispredicted",
                      "searched", "history", "objective"}


# --- stage 2's layer groups -----------------------------------------------------------------

def _stage2_groups(misses: list[int], groups: int) -> list[tuple[int, list[int]]]:
    """Run the tuner with a metric always met (every doubling is kept) and return stage 2's
    first round: per evaluation, its group number and the layers it doubled."""
    ws = FakeWorkspace(len(misses), 16, 8, lambda a: 0, _sum_speed, misses=np.array(misses))
    r = _tune(ws, floor=1.0, evals=14 + groups, groups=groups)  # >= one round
    out = []
    for h, before, after in zip(r["history"][14:], ws.runs[13:], ws.runs[14:], strict=False):
        gi = int(h["note"].split()[1])
        if out and gi <= out[-1][0]:
            break  # a second round (fewer non-empty groups than ``groups``)
        doubled = np.flatnonzero(after != before).tolist()
        np.testing.assert_array_equal(after[doubled], 2 * before[doubled])
        assert h["note"] == f"group {gi} ({len(doubled)} layers) x2"
        out.append((gi, doubled))
    return out


def _serial_order(misses: list[int]) -> list[int]:
    """Layers by serial work, largest first (ties: the earlier layer), as the tuner sorts
    them: the fake's serial work of layer i is (misses[i] + 1 VM) per frame x fan 4."""
    return sorted(range(len(misses)), key=lambda i: (-(misses[i] + 1), i))


MISSES = st.lists(st.integers(0, 30), min_size=1, max_size=5)


@settings(max_examples=25, deadline=None)
@given(misses=MISSES, groups=st.integers(1, 4))
def test_stage2_groups_partition_the_layers_largest_serial_work_first(
        misses: list[int], groups: int) -> None:
    """Each layer is doubled by exactly one group of the first round; the groups are tried in
    increasing number and cut the largest-first order into contiguous runs."""
    got = _stage2_groups(misses, groups)
    numbers = [gi for gi, _ in got]
    assert numbers == sorted(set(numbers)) and all(0 <= gi < groups for gi in numbers)
    flat = [i for _, members in got for i in members]
    assert sorted(flat) == list(range(len(misses)))  # a partition
    order = _serial_order(misses)
    runs = [sorted(members, key=order.index) for _, members in got]
    assert [i for run in runs for i in run] == order  # contiguous in largest-first order


def _want_groups(misses: list[int], groups: int) -> list[tuple[int, list[int]]]:
    """The grouping stage 2 documents ("largest serial work first", by serial-work share):
    a layer's group is where its share *starts* in the largest-first cumulative sum,
    ``min(floor(groups * work before it / total), groups - 1)``; the largest layer is always
    in group 0."""
    order = _serial_order(misses)
    work = [misses[i] + 1 for i in order]
    total = sum(work)
    by_group: dict[int, list[int]] = {}
    for j, i in enumerate(order):
        gi = min(groups * sum(work[:j]) // total, groups - 1)
        by_group.setdefault(gi, []).append(i)
    return [(gi, sorted(m)) for gi, m in sorted(by_group.items())]


@settings(max_examples=25, deadline=None)
@given(misses=MISSES, groups=st.integers(1, 4))
@example(misses=[26, 2, 2, 2], groups=4)  # l0 has 3/4 of the work: inclusive puts it in 3
@example(misses=[0, 0, 0, 0], groups=2)   # equal work, 2 groups: 2 + 2 (inclusive: 1 + 3)
def test_stage2_groups_follow_the_share_before_each_layer(misses: list[int],
                                                          groups: int) -> None:
    got = _stage2_groups(misses, groups)
    assert got[0][0] == 0 and _serial_order(misses)[0] in got[0][1]
    assert [(gi, sorted(m)) for gi, m in got] == _want_groups(misses, groups)


# --- the pure search (no workspace) ---------------------------------------------------------

def _evaluation(alpha: np.ndarray, feasible: bool, speedup: float) -> tuner.Evaluation:
    return tuner.Evaluation(alpha=np.array(alpha, np.float64), tau={}, score=1.0,
                            criterion=1.0, windows=[1.0], speedup=speedup, feasible=feasible,
                            serial_work=np.arange(len(alpha), 0, -1, dtype=np.float64),
                            mispredicted=0.0)


@settings(max_examples=30, deadline=None)
@given(limit=st.floats(1e-4, 80.0), evals=st.integers(1, 20), groups=st.integers(1, 4),
       backoff=st.sampled_from([1.0, 0.5]))
def test_search_spends_exactly_its_budget_of_evaluations(limit: float, evals: int, groups: int,
                                                         backoff: float) -> None:
    """``search`` calls ``evaluate`` at most ``evals`` times (the exact start included), plus
    one for a backoff below 1, and returns the fastest feasible evaluation it saw (before the
    backoff) -- with no workspace, cache or history involved."""
    calls: list[np.ndarray] = []

    def evaluate(alpha: np.ndarray, note: str) -> tuner.Evaluation:
        calls.append(np.array(alpha))
        return _evaluation(alpha, bool(alpha.max() <= limit), 1.0 + float(alpha.sum()))

    found = tuner.search(evaluate, 3, evals=evals, groups=groups, backoff=backoff)
    searched = found.searched
    backed = backoff < 1.0 and searched.alpha.max() > 0
    assert len(calls) <= evals + backed
    assert searched.feasible and searched.alpha.max() <= limit
    seen = [c for c in calls[:len(calls) - backed] if c.max() <= limit]
    assert searched.speedup == max(1.0 + c.sum() for c in seen)
    if backed:
        np.testing.assert_array_equal(found.best.alpha, searched.alpha * backoff)
    else:
        assert found.best is searched


@given(work=st.lists(st.floats(0.0, 1e6), min_size=1, max_size=12), groups=st.integers(1, 6))
def test_layer_groups_partition_the_layers_largest_first(work: list[float],
                                                         groups: int) -> None:
    sw = np.array(work, np.float64)
    parts = tuner.layer_groups(sw, groups)
    assert len(parts) == groups
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(work)))
    assert int(np.argmax(sw)) in parts[0].tolist()  # the largest layer: always group 0
    # groups hold layers in decreasing work order
    flat = np.concatenate(parts)
    assert all(sw[a] >= sw[b] for a, b in zip(flat, flat[1:], strict=False))
