"""Mutation tests of :mod:`secnn_jax.timing.scheduler` (issue 23 item 4): small frames whose
schedules are computed by hand from the module docstring's rules (a chain alone, a pool alone,
the chain's priority over the pool on the SMs and on the bandwidth, the pool's index order, a
chain kernel waiting for a pool kernel, issue and start times), and hypothesis properties
(frames independent of each other, monotone in the work, the docstring's bounds)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secnn_jax.timing import scheduler as SCH
from secnn_jax.timing.sm import dealt_makespan

_FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _chain(dur, busy=None, nbytes=None, gap=None, issue=None, dep=None) -> SCH.Chain:
    dur = np.atleast_2d(np.asarray(dur, np.float64))
    k = dur.shape[1]
    z = np.zeros_like(dur)
    return SCH.Chain(duration=dur, busy=z if busy is None else np.atleast_2d(busy),
                     nbytes=z if nbytes is None else np.atleast_2d(nbytes),
                     gap=np.zeros(k) if gap is None else np.asarray(gap, np.float64),
                     issue=np.zeros(k) if issue is None else np.asarray(issue, np.float64),
                     dep=np.full(k, -1) if dep is None else np.asarray(dep),
                     labels=tuple(f"k{i}" for i in range(k)))


_EMPTY = _chain(np.zeros((1, 0)))


def _pool(ws, release, ds=None, occ=None, nbytes=None, alone=None) -> SCH.Pool:
    ws = [np.atleast_2d(np.asarray(w, np.float64)) for w in ws]
    ds = [np.zeros_like(w) for w in ws] if ds is None else [np.atleast_2d(d) for d in ds]
    n = len(ws)
    return SCH.Pool(w=ws, d=ds, occupancy=[1] * n if occ is None else occ,
                    nbytes=np.zeros((1, n)) if nbytes is None else np.atleast_2d(nbytes),
                    release=np.asarray(release, np.float64), alone=alone)


def _close(a, b) -> None:
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=1e-9, atol=1e-9)


def test_a_chain_alone_by_hand() -> None:
    """Each kernel after the previous one's end plus its gap (the first one's gap unpaid), not
    before its issue; a kernel's time is at least its busy SM-cycles over the SMs and its bytes
    over the bandwidth; the frame ends with the last kernel."""
    ch = _chain([[10.0, 5.0, 7.0]], busy=[[0.0, 4 * 20.0, 0.0]], nbytes=[[0.0, 0.0, 30 * 2.0]],
                gap=[100.0, 3.0, 4.0], issue=[0.0, 0.0, 50.0])
    fs = SCH.schedule(ch, None, 4, np.array([2.0]), start_at=6.0)
    # k0: 6..16; k1: 16+3=19, 20 long (80 SM-cycles on 4 SMs) -> 39; k2: max(39+4, 50)=50, 30
    # long (60 bytes at 2 per cycle) -> 80.
    _close(fs.start, [[6.0, 19.0, 50.0]])
    _close(fs.end, [[16.0, 39.0, 80.0]])
    _close(fs.total, [80.0])
    _close(fs.busy, [80.0])
    assert fs.pool_done.shape == (1, 0) and fs.pool_alone.shape == (1, 0)
    # The same with an empty pool.
    fs2 = SCH.schedule(ch, _pool([], np.zeros(0)), 4, np.array([2.0]), start_at=6.0)
    _close(fs2.end, fs.end)
    _close(fs2.total, fs.total)


def test_an_empty_frame_takes_no_time_after_its_start() -> None:
    fs = SCH.schedule(_EMPTY, None, 4, np.array([1.0]), start_at=7.0)
    _close(fs.total, [7.0])


def test_a_pool_alone_by_hand() -> None:
    """A kernel alone ends at its release plus its dealt makespan, or its bytes over the
    bandwidth, or its own time alone where that is longer; a kernel with no work ends at its
    release."""
    w = [[[100.0, 60.0, 30.0]], [[50.0] * 8], [[10.0]], np.zeros((1, 0)), [[20.0]]]
    pool = _pool(w, release=[5.0, 200.0, 300.0, 9.0, 400.0], occ=[1, 2, 1, 1, 1],
                 nbytes=[[0.0, 0.0, 400.0, 0.0, 0.0]],
                 alone=np.array([0.0, 0.0, 0.0, 0.0, 70.0]))
    fs = SCH.schedule(_EMPTY, pool, 8, np.array([10.0]))
    # 0: 3 CTAs on 8 SMs, one round: 100. 1: 8 CTAs, one per SM: 50. 2: 400 bytes / 10 = 40.
    # 3: nothing to do. 4: its own time alone, 70. Released far apart, none waits for another.
    _close(fs.pool_alone, [[100.0, 50.0, 40.0, 0.0, 70.0]])
    _close(fs.pool_done, [[105.0, 250.0, 340.0, 9.0, 470.0]])
    _close(fs.total, [470.0])


def test_the_chain_has_priority_on_the_sms() -> None:
    """4 SMs; a chain kernel of 100 cycles holds 2 of them; a pool kernel of 8 CTAs x 100
    cycles (alone: 2 rounds, 200 cycles, 4 SMs) gets the other 2 while the chain runs (a
    quarter done at 100), then the whole machine: 150 more cycles, done at 250."""
    ch = _chain([[100.0]], busy=[[200.0]])
    pool = _pool([[[100.0] * 8]], release=[0.0])
    fs = SCH.schedule(ch, pool, 4, np.array([1e9]))
    _close(fs.start, [[0.0]])
    _close(fs.end, [[100.0]])
    _close(fs.pool_alone, [[200.0]])
    _close(fs.pool_done, [[250.0]])
    _close(fs.total, [250.0])
    _close(fs.busy, [1000.0])


def test_the_chain_has_priority_on_the_bandwidth() -> None:
    """Bandwidth 10 bytes/cycle; the chain kernel moves 600 bytes over 100 cycles (6 per
    cycle); the pool kernel's 2,000 bytes take 200 cycles alone: 4 per cycle while the chain
    runs (400 bytes by 100), then 10 per cycle: 160 more cycles."""
    ch = _chain([[100.0]], nbytes=[[600.0]])
    pool = _pool([[[1.0]]], release=[0.0], nbytes=[[2000.0]])
    fs = SCH.schedule(ch, pool, 132, np.array([10.0]))
    _close(fs.pool_alone, [[200.0]])
    _close(fs.pool_done, [[260.0]])
    _close(fs.total, [260.0])


def test_pool_kernels_are_served_in_index_order() -> None:
    """Two kernels each filling the 4 SMs for 100 cycles, released together: the first ends at
    100, the second waits for it and ends at 200 (the frame's SM-cycles over the SMs)."""
    pool = _pool([[[100.0] * 4], [[100.0] * 4]], release=[0.0, 0.0])
    fs = SCH.schedule(_EMPTY, pool, 4, np.array([1e9]))
    _close(fs.pool_done, [[100.0, 200.0]])
    _close(fs.total, [200.0])
    # A small kernel after a large one gets what the large one leaves: 4 SMs, kernel 0 of 2
    # CTAs (2 SMs for 100 cycles) leaves 2 SMs to kernel 1 (4 CTAs x 50: alone 50 on 4 SMs,
    # 100 at half the machine).
    pool = _pool([[[100.0] * 2], [[50.0] * 4]], release=[0.0, 0.0])
    fs = SCH.schedule(_EMPTY, pool, 4, np.array([1e9]))
    _close(fs.pool_done, [[100.0, 100.0]])
    # Released later, kernel 1 starts at its release with what kernel 0 leaves.
    pool = _pool([[[100.0] * 2], [[50.0] * 4]], release=[0.0, 20.0])
    fs = SCH.schedule(_EMPTY, pool, 4, np.array([1e9]))
    _close(fs.pool_done, [[100.0, 110.0]])  # 0.8 done by 100, then 4 SMs


def test_a_chain_kernel_waits_for_its_pool_kernel_and_its_gap() -> None:
    """k0 (50 cycles) then k1, which corrects pool kernel 0 (alone 300 on an idle machine, no
    SMs taken by the chain): k1 starts at 300, not at 50 + gap; k2 follows k1 with its gap."""
    ch = _chain([[50.0, 10.0, 20.0]], gap=[0.0, 5.0, 7.0], dep=[-1, 0, -1])
    pool = _pool([[[300.0]], [[40.0]]], release=[0.0, 0.0])
    fs = SCH.schedule(ch, pool, 8, np.array([1e9]))
    _close(fs.pool_done, [[300.0, 40.0]])
    _close(fs.start, [[0.0, 300.0, 317.0]])
    _close(fs.end, [[50.0, 310.0, 337.0]])
    _close(fs.total, [337.0])
    # Depending on kernel 1 (done at 40): k1 at 50 + 5.
    ch = _chain([[50.0, 10.0, 20.0]], gap=[0.0, 5.0, 7.0], dep=[-1, 1, -1])
    fs = SCH.schedule(ch, pool, 8, np.array([1e9]))
    _close(fs.start, [[0.0, 55.0, 72.0]])
    _close(fs.total, [300.0])  # the pool's kernel 0 ends last


def test_issue_and_start_at_with_a_pool() -> None:
    """The chain starts at ``start_at`` (its first kernel not before its issue), a pool
    released earlier starts at its release; a chain kernel issued late waits for it."""
    ch = _chain([[10.0, 10.0]], issue=[25.0, 200.0], gap=[99.0, 1.0])
    pool = _pool([[[60.0]]], release=[0.0])
    fs = SCH.schedule(ch, pool, 2, np.array([1e9]), start_at=20.0)
    _close(fs.pool_done, [[60.0]])
    _close(fs.start, [[25.0, 200.0]])
    _close(fs.end, [[35.0, 210.0]])
    _close(fs.total, [210.0])
    # The chain's first kernel at start_at when issued earlier; the pool released after it.
    ch = _chain([[10.0, 10.0]], issue=[0.0, 0.0], gap=[99.0, 1.0])
    pool = _pool([[[60.0]]], release=[100.0])
    fs = SCH.schedule(ch, pool, 2, np.array([1e9]), start_at=20.0)
    _close(fs.start, [[20.0, 31.0]])
    _close(fs.pool_done, [[160.0]])
    _close(fs.total, [160.0])


def test_latency_floors_hold_sm_slots() -> None:
    """A CTA of work 10 and latency floor 100 in a kernel of occupancy 2 holds 50 SM-cycles
    (its share of an SM's two slots while it waits): on 1 SM beside a chain kernel that holds
    half of it for 400 cycles, two such CTAs (alone: one round, 100 cycles; 100 SM-cycles)
    progress at 0.5 / 100 per cycle and end at 200."""
    ch = _chain([[400.0]], busy=[[200.0]])
    pool = _pool([[[10.0, 10.0]]], release=[0.0], ds=[np.array([[100.0, 100.0]])], occ=[2])
    fs = SCH.schedule(ch, pool, 1, np.array([1e9]))
    _close(fs.pool_alone, [[100.0]])
    _close(fs.pool_done, [[200.0]])
    _close(fs.total, [400.0])
    _close(fs.busy, [220.0])


def test_frame_totals_are_floored_by_the_machine() -> None:
    """The frame lasts at least all its SM-cycles over the SMs and its bytes over the
    bandwidth (here the pool's own time alone is given shorter than its bytes need)."""
    pool = _pool([[[10.0]]], release=[0.0], nbytes=[[1000.0]])
    fs = SCH.schedule(_EMPTY, pool, 4, np.array([5.0]))
    _close(fs.pool_alone, [[200.0]])
    _close(fs.total, [200.0])


def _random(seed: int, frames: int):
    rng = np.random.default_rng(seed)
    n_pool, n_chain, sms = int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 9))
    w = [rng.uniform(0, 300, (frames, int(rng.integers(1, 12)))) for _ in range(n_pool)]
    d = [rng.uniform(0, 600, x.shape) for x in w]
    bw = rng.uniform(5, 50, frames)
    dur = rng.uniform(1, 400, (frames, n_chain))
    dep = np.where(rng.random(n_chain) < 0.5, np.sort(rng.integers(0, n_pool, n_chain)), -1)
    dep = np.maximum.accumulate(dep)
    ch = SCH.Chain(duration=dur, busy=dur * sms * rng.uniform(0, 1, dur.shape),
                   nbytes=dur * bw[:, None] * rng.uniform(0, 1, dur.shape),
                   gap=rng.uniform(0, 50, n_chain), issue=np.sort(rng.uniform(0, 300, n_chain)),
                   dep=dep, labels=tuple(map(str, range(n_chain))))
    pool = SCH.Pool(w=w, d=d, occupancy=rng.integers(1, 4, n_pool).tolist(),
                    nbytes=rng.uniform(0, 5000, (frames, n_pool)),
                    release=rng.uniform(0, 300, (frames, n_pool)))
    return ch, pool, sms, bw


@_FAST
@given(seed=st.integers(0, 2**31 - 1))
def test_property_each_frame_is_scheduled_as_if_alone(seed: int) -> None:
    """Vectorised over frames, yet each frame's schedule is the one it gets alone."""
    ch, pool, sms, bw = _random(seed, 3)
    fs = SCH.schedule(ch, pool, sms, bw, start_at=10.0)
    for f in range(3):
        one = SCH.schedule(
            SCH.Chain(ch.duration[f:f + 1], ch.busy[f:f + 1], ch.nbytes[f:f + 1], ch.gap,
                      ch.issue, ch.dep, ch.labels),
            SCH.Pool([w[f:f + 1] for w in pool.w], [d[f:f + 1] for d in pool.d],
                     pool.occupancy, pool.nbytes[f:f + 1], pool.release[f:f + 1]),
            sms, bw[f:f + 1], start_at=10.0)
        for a, b in ((fs.total, one.total), (fs.start, one.start), (fs.end, one.end),
                     (fs.pool_done, one.pool_done), (fs.busy, one.busy)):
            np.testing.assert_allclose(a[f:f + 1], b, rtol=1e-12)


@_FAST
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1.0, 3.0))
def test_property_bounds_and_monotone_in_pool_work(seed: int, scale: float) -> None:
    """Every pool kernel ends no earlier than release + its time alone and no later than the
    frame; the frame is at least the chain's end and its SM-cycles over the SMs; more work in
    the pool never ends the frame earlier."""
    ch, pool, sms, bw = _random(seed, 2)
    fs = SCH.schedule(ch, pool, sms, bw)
    for li in range(pool.size):
        alone = np.maximum(dealt_makespan(pool.w[li], pool.d[li], sms, pool.occupancy[li]),
                           pool.nbytes[:, li] / bw)
        _close(fs.pool_alone[:, li], alone)
        assert (fs.pool_done[:, li] >= pool.release[:, li] + alone - 1e-6).all()
    assert (fs.total >= fs.pool_done.max(1) - 1e-9).all()
    assert (fs.total >= fs.end[:, -1] - 1e-9).all()
    busy = ch.busy.sum(1) + sum(w.sum(1) for w in pool.w)
    _close(fs.busy, busy)
    assert (fs.total >= busy / sms * (1 - 1e-12)).all()
    more = SCH.Pool([w * scale for w in pool.w], pool.d, pool.occupancy, pool.nbytes * scale,
                    pool.release)
    fs2 = SCH.schedule(ch, more, sms, bw)
    assert (fs2.total >= fs.total * (1 - 1e-9)).all()


def test_a_zero_length_chain_kernel_at_time_zero_ends_at_once() -> None:
    """A chain kernel with nothing to do (a zero-length start marker at the frame's start, as
    the simulator cases use) ends where it starts, while the pool runs."""
    ch = _chain([[0.0, 10.0]])
    pool = _pool([[[30.0]]], release=[0.0])
    fs = SCH.schedule(ch, pool, 2, np.array([1e9]))
    _close(fs.start, [[0.0, 0.0]])
    _close(fs.end, [[0.0, 10.0]])
    _close(fs.pool_done, [[30.0]])
    _close(fs.total, [30.0])
