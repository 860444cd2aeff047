"""The frame scheduler's invariants (hypothesis): capacity, work conservation, no kernel faster
than alone, a chain alone is the launch model's chain; and, through ``replay``, the schemes'
monotonicity in the events and the oracle against predictors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secnn_jax import events as ev
from secnn_jax import timing
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import kernels as K
from secnn_jax.timing import probes as PR
from secnn_jax.timing import scheduler as SCH
from secnn_jax.timing.gpus import get_gpu
from secnn_jax.timing.launch import LaunchCosts, chain
from secnn_jax.timing.params import ModelParams, SchemeConfig, load_params
from secnn_jax.timing.sm import bandwidth, dealt_makespan

_FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random_frame(seed: int, frames: int, n_pool: int, n_chain: int, sms: int
                  ) -> tuple[SCH.Chain, SCH.Pool, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 3 * sms, n_pool)
    w = [rng.exponential(500.0, (frames, n)) * (rng.random((frames, n)) < 0.8) for n in sizes]
    d = [np.where(x > 0, rng.uniform(0, 2000, x.shape), 0.0) for x in w]
    occ = rng.integers(1, 9, n_pool).tolist()
    release = np.sort(rng.uniform(0, 3000, n_pool))
    dur = rng.uniform(0, 5000, (frames, n_chain))
    busy = dur * sms * rng.uniform(0, 1, (frames, n_chain))
    bw = rng.uniform(50, 500, frames)
    nbytes = dur * bw[:, None] * rng.uniform(0, 1, (frames, n_chain))
    dep = np.full(n_chain, -1)
    if n_pool:
        # Some items depend on pool kernels, in non-decreasing order (a program's order).
        dep = np.where(rng.random(n_chain) < 0.5,
                       np.sort(rng.integers(0, n_pool, n_chain)), -1)
        last = -1
        for k in range(n_chain):  # dependences never go backwards in program order
            if dep[k] >= 0:
                dep[k] = last = max(last, dep[k])
    ch = SCH.Chain(duration=dur, busy=busy, nbytes=nbytes,
                   gap=rng.uniform(0, 800, n_chain), issue=np.sort(rng.uniform(0, 4000, n_chain)),
                   dep=dep, labels=tuple(f"k{i}" for i in range(n_chain)))
    pool = SCH.Pool(w=w, d=d, occupancy=occ, nbytes=rng.uniform(0, 1e6, (frames, n_pool)),
                    release=release)
    return ch, pool, bw


def _used(t: np.ndarray, s: np.ndarray, e: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Of each chain item's ``amount``, the part used by time ``t`` (uniform over its run)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(e > s, np.clip((t - s) / (e - s), 0.0, 1.0), (t >= e).astype(float))
    return (amount * frac).sum()


@_FAST
@given(seed=st.integers(0, 2**31 - 1), n_pool=st.integers(0, 5), n_chain=st.integers(1, 8),
       sms=st.sampled_from([1, 4, 28, 132]))
def test_property_capacity_never_exceeded(seed: int, n_pool: int, n_chain: int,
                                          sms: int) -> None:
    """At every event time t, the work finished by t (pool kernels done, the chain's part)
    fits in the SM-cycles and the bytes the machine had by t."""
    ch, pool, bw = _random_frame(seed, 3, n_pool, n_chain, sms)
    fs = SCH.schedule(ch, pool, sms, bw, start_at=100.0)
    hold = np.zeros((3, n_pool))
    for li, (w, d, o) in enumerate(zip(pool.w, pool.d, pool.occupancy, strict=True)):
        hold[:, li] = np.maximum(w, d / max(1, o)).sum(-1)
    dur = np.maximum.reduce([ch.duration, ch.busy / sms, ch.nbytes / bw[:, None]])
    for f in range(3):
        np.testing.assert_allclose(fs.end[f] - fs.start[f], dur[f], rtol=1e-9, atol=1e-6)
        for t in np.concatenate([fs.end[f], fs.start[f], fs.pool_done[f]]):
            done = fs.pool_done[f] <= t
            sm_used = hold[f][done].sum() + _used(t, fs.start[f], fs.end[f], ch.busy[f])
            by_used = pool.nbytes[f][done].sum() + _used(t, fs.start[f], fs.end[f], ch.nbytes[f])
            assert sm_used <= sms * t * (1 + 1e-9) + 1e-6
            assert by_used <= bw[f] * t * (1 + 1e-9) + 1e-6
        assert fs.total[f] >= fs.busy[f] / sms * (1 - 1e-12)


@_FAST
@given(seed=st.integers(0, 2**31 - 1), n_pool=st.integers(1, 5), n_chain=st.integers(1, 6),
       sms=st.sampled_from([1, 4, 28, 132]))
def test_property_no_kernel_faster_than_alone(seed: int, n_pool: int, n_chain: int,
                                              sms: int) -> None:
    """Each pool kernel ends no earlier than its release plus its makespan alone; each chain
    item waits for its dependence, its boundary and its issue."""
    ch, pool, bw = _random_frame(seed, 2, n_pool, n_chain, sms)
    fs = SCH.schedule(ch, pool, sms, bw)
    for li in range(n_pool):
        alone = dealt_makespan(pool.w[li], pool.d[li], sms, pool.occupancy[li])
        assert (fs.pool_done[:, li] >= pool.release[li] + alone - 1e-6).all()
    for k in range(n_chain):
        assert (fs.start[:, k] >= ch.issue[k] - 1e-9).all()
        if k:
            assert (fs.start[:, k] >= fs.end[:, k - 1] + ch.gap[k] - 1e-6).all()
        if ch.dep[k] >= 0:
            assert (fs.start[:, k] >= fs.pool_done[:, ch.dep[k]] - 1e-9).all()


@_FAST
@given(w=st.lists(st.floats(1.0, 1e4), min_size=1, max_size=12),
       d=st.lists(st.floats(0.0, 1e4), min_size=12, max_size=12),
       release=st.floats(0.0, 1e3), occ=st.integers(1, 16))
def test_property_lone_ctas_run_at_full_rate(w: list[float], d: list[float], release: float,
                                             occ: int) -> None:
    """Work conservation: one-CTA kernels on an otherwise idle machine (no more than it has
    SMs) each take exactly their CTA's time, ``max(w, d)``, however many slots an SM has."""
    n = len(w)
    pool = SCH.Pool(w=[np.array([[x]]) for x in w], d=[np.array([[y]]) for y in d[:n]],
                    occupancy=[occ] * n, nbytes=np.zeros((1, n)), release=np.full(n, release))
    empty = SCH.Chain(duration=np.zeros((1, 0)), busy=np.zeros((1, 0)), nbytes=np.zeros((1, 0)),
                      gap=np.zeros(0), issue=np.zeros(0), dep=np.zeros(0, np.int64), labels=())
    fs = SCH.schedule(empty, pool, 132, np.array([1e9]))
    np.testing.assert_allclose(fs.pool_done[0], release + np.maximum(w, d[:n]), rtol=1e-12)


@_FAST
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 10),
       model=st.sampled_from(["eager", "graph", "persistent"]),
       gpu=st.sampled_from(["h100", "gtx1080ti"]))
def test_property_a_chain_alone_is_its_kernels_plus_launches(seed: int, n: int, model: str,
                                                             gpu: str) -> None:
    """With no independent kernels the scheduler times a chain as the launch model does: each
    kernel after the previous one plus one boundary, not before the host issued it."""
    rng = np.random.default_rng(seed)
    g = get_gpu(gpu)
    lc = LaunchCosts.of(model, g, ModelParams(), SchemeConfig())
    ex = rng.uniform(0, 1e4, (3, n))
    start, end = chain(ex, [1] * n, lc)
    issue = lc.submit + np.arange(n) * lc.issue
    ch = SCH.Chain(duration=ex, busy=np.zeros_like(ex), nbytes=np.zeros_like(ex),
                   gap=np.full(n, lc.gap), issue=issue, dep=np.full(n, -1),
                   labels=tuple(map(str, range(n))))
    fs = SCH.schedule(ch, None, g.sms, np.full(3, g.dram_bytes_per_clk), start_at=lc.submit)
    np.testing.assert_allclose(fs.start, start, rtol=1e-12)
    np.testing.assert_allclose(fs.end, end, rtol=1e-12)
    np.testing.assert_allclose(fs.total, end[:, -1], rtol=1e-12)


_NETS = (
    (timing.LayerGeom.conv("a", n=1, h=8, cin=8, cout=16, k=3),
     timing.LayerGeom.conv("b", n=1, h=8, cin=16, cout=16, k=1)),
    (timing.LayerGeom.conv("a", n=1, h=6, cin=4, cout=8, k=3, stride=2),
     timing.LayerGeom.conv("b", n=1, h=3, cin=8, cout=8, k=3, groups=8),
     timing.LayerGeom.dense("fc", n=1, fin=3 * 3 * 8, fout=10)),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), net=st.sampled_from(range(len(_NETS))),
       flip=st.floats(0.05, 1.0), gpu=st.sampled_from(["h100", "gtx1080ti"]),
       launch=st.sampled_from(["eager", "graph", "persistent"]),
       compaction=st.sampled_from(["none", "software", "auto"]))
def test_property_more_misses_never_faster_and_oracle_fastest(seed, net, flip, gpu, launch,
                                                              compaction) -> None:
    """Turning ZZ into ZN (a zero predicted for a value that is not) never makes any scheme
    faster, and the oracle (every non-zero predicted exactly) is never slower than the
    predictor whose events share its ground truth."""
    layers = _NETS[net]
    rng = np.random.default_rng(seed)
    codes = {g.name: rng.choice(4, size=(2, *g.in_nhwc), p=(0.5, 0.1, 0.3, 0.1)).astype(np.uint8)
             for g in layers}
    more = {k: np.where((v == ev.ZZ) & (rng.random(v.shape) < flip), np.uint8(ev.ZN), v)
            for k, v in codes.items()}
    kw = dict(gpus=(gpu,), schemes=("dense", "zero_skip", "secnn_sw", "secnn_hw"),
              launch=launch, config=SchemeConfig(sw_compaction=compaction))
    base = timing.replay(layers, codes, **kw)
    worse = timing.replay(layers, more, **kw)
    for s in kw["schemes"]:
        assert (worse.get(gpu, s).total_cycles >= base.get(gpu, s).total_cycles - 1e-6).all(), s
    # The oracle of the same ground truth: VM may hide a zero, so truth is ZN or VH (non-zero).
    truth = {k: ((v == ev.ZN) | (v == ev.VH)).astype(np.uint8) for k, v in codes.items()}
    oracle = timing.replay(layers, timing.oracle_events(truth), **kw)
    for s in ("secnn_sw", "secnn_hw"):
        assert (oracle.get(gpu, s).total_cycles
                <= base.get(gpu, s).total_cycles * (1 + 1e-9)).all(), s


def test_a_lone_parallel_cta_runs_as_fast_as_the_same_zero_skip_cta() -> None:
    """Finding 1 of issue 19: one CTA of the parallel phase on an idle machine takes what the
    identical zero-skipping CTA takes layer after layer (not 1/slots of an SM)."""
    layers = (timing.LayerGeom.conv("a", n=1, h=8, cin=64, cout=64, k=1),
              timing.LayerGeom.conv("b", n=1, h=8, cin=64, cout=64, k=1))
    codes = {g.name: np.zeros((1, *g.in_nhwc), np.uint8) for g in layers}
    codes["a"][0, 0, 0, 0, 0] = ev.VH  # one non-zero input, predicted: one CTA with work
    cfg = SchemeConfig(sw_compaction="none", hw_compaction="none", secnn_parallel="sparse")
    params = ModelParams(l2_bandwidth_factor=1.0)
    r = timing.replay(layers, codes, schemes=("zero_skip", "secnn_hw"), launch="persistent",
                      ops=(), params=params, config=cfg)
    zs = r.get("h100", "zero_skip").layer_phases["exec"][0, 0]
    hw = r.get("h100", "secnn_hw")
    lone = hw.layer_phases["parallel_done"][0, 0] - get_gpu("h100").cycles(
        get_gpu("h100").launch_us)
    # Both are the one CTA's time (one main-loop step's latency over its pipeline stages
    # here): the layer's bytes take far less.
    assert 0 < zs <= params.latency_cycles
    assert zs == pytest.approx(lone, rel=1e-9)


@pytest.mark.parametrize(("c", "k", "h", "precision"), [(64, 3, 56, "fp32"), (512, 3, 7, "fp16"),
                                                         (256, 1, 14, "fp32")])
def test_the_concurrency_probe_is_timed_by_the_scheduler(c: int, k: int, h: int,
                                                         precision: str) -> None:
    """``probes.concurrency_us``: one copy, independent or chained, is the kernel alone (the old
    fixed-share model ran a lone copy at 1/slots of its rate); n independent copies are never
    faster than their SM-cycles and bytes over the machine nor slower than running them one
    after another, and cost no less as n grows; chained copies are the kernels plus graph gaps."""

    params = load_params()
    gpu = get_gpu("h100")
    geom = LayerGeom.conv("c", n=1, h=h, cin=c, cout=c, k=k)
    kc = K.dense_cost(geom, gpu, precision, params, SchemeConfig(layout="NHWC"))
    over = gpu.event_overhead_us + (kc.kernels - 1) * params.extra_kernel_us
    alone = over + kc.cycles / gpu.clock_mhz
    i1, c1 = PR.concurrency_us(geom, 1, precision, gpu, params)
    assert i1 == pytest.approx(alone, rel=1e-12) and c1 == pytest.approx(alone, rel=1e-12)
    hold = kc.n_ctas * max(kc.cta_work, kc.cta_latency / kc.occupancy)
    nbytes = (4 if precision == "fp32" else 2) * (geom.n_inputs + geom.weights + geom.n_outputs)
    prev = i1
    for n in (2, 4, 8):
        ind, ch = PR.concurrency_us(geom, n, precision, gpu, params)
        bw = float(bandwidth(gpu, n * nbytes, params))
        lower = max(kc.cycles, n * hold / gpu.sms, n * nbytes / bw)
        assert ind >= over + lower / gpu.clock_mhz * (1 - 1e-9)
        assert ind <= over + n * kc.cycles / gpu.clock_mhz * (1 + 1e-9)
        assert ind >= prev * (1 - 1e-12)
        gap = gpu.cycles(params.graph_kernel_us)
        assert ch == pytest.approx(gpu.event_overhead_us + n * (kc.kernels - 1)
                                   * params.extra_kernel_us
                                   + (n * kc.cycles + (n - 1) * gap) / gpu.clock_mhz, rel=1e-12)
        prev = ind


def test_the_schedule_figure_draws_exactly_the_chrome_trace(tmp_path, monkeypatch) -> None:
    """The report's schedule figure and the Chrome trace come from one list of kernel slices:
    per scheme, the figure's bars (row, start, width, name) are the trace's slices (track, ts,
    dur, name), and no two slices of a track overlap."""
    from experiments import figures

    layers = _NETS[1]
    rng = np.random.default_rng(3)
    codes = {g.name: rng.choice(4, size=(2, *g.in_nhwc), p=(0.4, 0.2, 0.3, 0.1)).astype(np.uint8)
             for g in layers}
    r = timing.replay(layers, codes, schemes=("dense", "zero_skip", "secnn_sw", "secnn_hw"),
                      ops=(), launch="graph")
    drawn = {}
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.setdefault("fig", fig) and path)
    figures.schedule(r, tmp_path / "s.png", "h100", frame=1)
    doc = r.to_chrome_trace(frame=1)
    procs = {e["pid"]: e["args"]["name"].split(" ")[1] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "process_name"}
    for ax, s in zip(drawn["fig"].axes, r.schemes, strict=True):
        bars = sorted((round(p.get_y() + p.get_height() / 2), round(p.get_x() * 1e3),
                       round(p.get_width() * 1e3), p.get_gid()) for p in ax.patches)
        trace = sorted((e["tid"], round(e["ts"] * 1e3), round(e["dur"] * 1e3), e["name"])
                       for e in doc["traceEvents"] if e["ph"] == "X" and procs[e["pid"]] == s)
        assert bars == trace and len(bars) == len(r.kernel_slices("h100", s, 1)), s
        # every span of the schedule appears once
        assert len(bars) == sum(len(lab) for lab, _, _ in r.get("h100", s).spans.values())
        for tid in {b[0] for b in bars}:
            mine = sorted((b[1], b[1] + b[2]) for b in bars if b[0] == tid)
            assert all(a[1] <= b[0] for a, b in zip(mine, mine[1:], strict=False))
    assert max(sl.track for sl in r.kernel_slices("h100", "secnn_sw", 1)) > 0  # overlaps shown


@pytest.mark.parametrize("launch", ["graph", "persistent"])
def test_shared_plans_change_no_result_bit(launch: str) -> None:
    """A replay computes each plan function once for all schemes that use it (SE-CNN's for
    secnn_sw, secnn_hw and the peers): every scheme's times, work and spans equal, bit for
    bit, those of the scheme replayed alone (its plan computed for it alone)."""
    layers = _NETS[1]
    rng = np.random.default_rng(11)
    codes = {g.name: rng.choice(4, size=(3, *g.in_nhwc), p=(0.4, 0.2, 0.3, 0.1)).astype(np.uint8)
             for g in layers}
    every = timing.replay(layers, codes, ops=(), launch=launch, schemes=timing.SCHEMES)
    for s in timing.SCHEMES:
        a = every.get("h100", s)
        b = timing.replay(layers, codes, ops=(), launch=launch, schemes=(s,)).get("h100", s)
        np.testing.assert_array_equal(a.total_cycles, b.total_cycles)
        np.testing.assert_array_equal(a.layer_cycles, b.layer_cycles)
        for k in a.work:
            np.testing.assert_array_equal(a.work[k], b.work[k])
        for t, (_, s0, s1) in a.spans.items():
            np.testing.assert_array_equal(s0, b.spans[t][1])
            np.testing.assert_array_equal(s1, b.spans[t][2])
