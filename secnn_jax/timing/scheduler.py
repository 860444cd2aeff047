"""One work-conserving scheduler for a frame's kernels: a chain of dependent kernels with
priority, and independent kernels that share what the chain leaves of the machine.

A frame is two kinds of kernels (cycles; every array has a leading frame axis ``T``, and the
schedule is computed for all frames at once — loops run over kernels, never over frames):

* **The chain** (:class:`Chain`): kernels in program order, each starting after the previous
  one's end plus its boundary (``gap``: the launch model's graph-node gap or persistent barrier,
  or a hardware dependency latency), not before the host issued it (``issue``, eager) and, where
  it depends on independent kernel ``l`` (``dep``), not before that kernel is done. A chain
  kernel runs at the rate it has alone (its ``duration``), holding ``busy / duration`` of the
  SMs and ``nbytes / duration`` of the bandwidth: it has priority (it is the frame's critical
  path; CUDA stream priorities, or SE-CNN's hardware sequencer).
* **Independent kernels** (:class:`Pool`, SE-CNN's parallel phase): released at ``release``,
  served in index order from what the chain leaves of the machine, modelled as fluid
  resources: the SMs (a CTA of work ``w`` and latency floor ``d`` in a kernel of occupancy
  ``o`` holds ``max(w, d / o)`` SM-cycles: its work, or its share of an SM's slots while it
  waits) and the bandwidth (its bytes). Kernel ``l`` is done at the latest of

  - ``release_l + alone_l``: no kernel runs faster than alone (its CTAs dealt to all SMs in
    rounds of its occupancy, :func:`~.sm.dealt_makespan`: work-conserving, so a lone CTA runs
    at its full rate);
  - the time at which the SM-cycles left by the chain since ``max(release_l, previous
    kernel's point)`` cover its SM-cycles (a fluid first-come-first-served server whose
    capacity is the SMs minus the chain's use), and the same for its bytes over the bandwidth.

At no instant do the chain and the independent kernels use more SM-cycles or bytes than the
machine has (the chain's rates are at most the machine's; the independent kernels take only
what is left), and the frame lasts at least all its SM-cycles over the SMs and all its bytes
over the bandwidth. With no independent kernels the schedule is the chain: its kernels plus
their boundaries and issue waits (:func:`~.launch.chain`'s times).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from secnn_jax.timing.sm import dealt_makespan

__all__ = ["Chain", "FrameSchedule", "Pool", "schedule"]


@dataclasses.dataclass(frozen=True)
class Chain:
    """Dependent kernels in program order (``[T, K]`` or ``[K]`` cycles).

    Attributes:
      duration: ``[T, K]`` each kernel's time alone (inner kernel boundaries included).
      busy: ``[T, K]`` SM-cycles of work.
      nbytes: ``[T, K]`` bytes moved.
      gap: ``[K]`` boundary before each kernel (the first kernel's is not paid: it starts with
        the frame).
      issue: ``[K]`` earliest start (the host's issue under eager; else 0).
      dep: ``[K]`` the independent kernel each waits for, ``-1`` for none.
      labels: ``[K]`` kernel names.
    """

    duration: np.ndarray
    busy: np.ndarray
    nbytes: np.ndarray
    gap: np.ndarray
    issue: np.ndarray
    dep: np.ndarray
    labels: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Pool:
    """Independent kernels (SE-CNN's parallel phase), served in index order.

    Attributes:
      w, d: per kernel, ``[T, n_ctas]`` CTA work (SM-cycles) and latency floors.
      occupancy: per kernel, resident CTAs per SM.
      nbytes: ``[T, L]`` bytes each kernel moves.
      release: ``[L]`` or ``[T, L]`` when each kernel may start.
      alone: ``[L]`` or ``[T, L]`` each kernel's own time alone where it is more than its
        CTAs' rounds and bytes (an operation of several kernels: a split-K reduction, layout
        transposes); ``None``: the rounds and bytes.
    """

    w: Sequence[np.ndarray]
    d: Sequence[np.ndarray]
    occupancy: Sequence[int]
    nbytes: np.ndarray
    release: np.ndarray
    alone: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of kernels."""
        return len(self.w)


@dataclasses.dataclass(frozen=True)
class FrameSchedule:
    """What runs when over a batch of frames (cycles).

    Attributes:
      total: ``[T]`` frame time.
      start, end: ``[T, K]`` each chain kernel's start and end.
      pool_done: ``[T, L]`` each independent kernel's completion.
      pool_alone: ``[T, L]`` each independent kernel's time alone.
      busy: ``[T]`` SM-cycles of work of the whole frame.
    """

    total: np.ndarray
    start: np.ndarray
    end: np.ndarray
    pool_done: np.ndarray
    pool_alone: np.ndarray
    busy: np.ndarray


def schedule(chain: Chain, pool: Pool | None, sms: int, bandwidth: np.ndarray,
             start_at: float = 0.0) -> FrameSchedule:
    """Schedules one frame's chain and independent kernels (see the module docstring).

    An event-driven fluid simulation, vectorised over frames: each step advances every frame
    to its next event (a release, a completion, a chain kernel's start or end); in between,
    rates are constant.

    Args:
      chain: the dependent kernels.
      pool: the independent kernels (``None``: none).
      sms: SM count (SM-cycles per cycle).
      bandwidth: ``[T]`` bytes per cycle.
      start_at: the first chain kernel's earliest start (the frame's submission).
    """
    dur = np.atleast_2d(np.asarray(chain.duration, np.float64))
    frames, n_items = dur.shape
    busy = np.broadcast_to(np.asarray(chain.busy, np.float64), dur.shape)
    nbytes = np.broadcast_to(np.asarray(chain.nbytes, np.float64), dur.shape)
    bw = np.broadcast_to(np.asarray(bandwidth, np.float64), (frames,)).astype(np.float64)
    # A chain kernel never uses more than the whole machine.
    dur = np.maximum.reduce([dur, busy / sms, nbytes / bw[:, None]])
    with np.errstate(divide="ignore", invalid="ignore"):
        c_sm = np.where(dur > 0, busy / dur, 0.0)
        c_bw = np.where(dur > 0, nbytes / dur, 0.0)
    gap = np.asarray(chain.gap, np.float64)
    issue = np.asarray(chain.issue, np.float64)
    dep = np.asarray(chain.dep, np.int64)
    n_pool = pool.size if pool is not None else 0
    rel = np.zeros((frames, n_pool))
    alone = np.zeros((frames, n_pool))
    hold = np.zeros((frames, n_pool))
    pbytes = np.zeros((frames, n_pool))
    pool_busy = np.zeros(frames)
    if pool is not None and n_pool:
        rel = np.broadcast_to(np.asarray(pool.release, np.float64), (frames, n_pool))
        for li in range(n_pool):  # loop over kernels
            w = np.asarray(pool.w[li], np.float64)
            d = np.asarray(pool.d[li], np.float64)
            occ = max(1, int(pool.occupancy[li]))
            alone[:, li] = dealt_makespan(w, d, sms, occ) if w.shape[-1] else 0.0
            hold[:, li] = np.maximum(w, d / occ).sum(-1) if w.shape[-1] else 0.0
            pool_busy += w.sum(-1) if w.shape[-1] else 0.0
        pbytes = np.broadcast_to(np.asarray(pool.nbytes, np.float64), (frames, n_pool)).copy()
        # Alone, a kernel also takes at least its bytes over the bandwidth.
        alone = np.maximum(alone, pbytes / bw[:, None])
        if pool.alone is not None:
            alone = np.maximum(alone, np.asarray(pool.alone, np.float64))
    rows = np.arange(frames)
    t = np.minimum(float(start_at), rel.min(axis=1, initial=float(start_at)))
    progress = np.zeros((frames, n_pool))
    done = np.where(alone <= 0, rel, np.inf)  # a kernel with nothing to do: at its release
    k = np.zeros(frames, np.int64)  # next chain kernel
    running = np.zeros(frames, bool)
    cur_end = np.zeros(frames)
    prev_end = np.full(frames, float(start_at))
    start = np.full((frames, n_items), np.nan)
    end = np.full((frames, n_items), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        cap = np.where(alone > 0, 1.0 / alone, np.inf)  # progress per cycle alone
        demand_sm = hold * np.minimum(cap, 1e300)  # SM-cycles per cycle at that rate
        demand_bw = pbytes * np.minimum(cap, 1e300)
        inv_hold = np.where(hold > 0, 1.0 / hold, np.inf)
        inv_bytes = np.where(pbytes > 0, 1.0 / pbytes, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(8 * (n_items + n_pool) + 16):  # loop over events (bounded)
            if not n_pool or np.isfinite(done).all():
                break  # the rest of the chain shares the machine with nobody
            # Chain kernels whose dependences are met start now.
            kk = np.minimum(k, max(n_items - 1, 0))
            if n_items:
                waiting = ~running & (k < n_items)
                ready = np.maximum(prev_end + np.where(k > 0, gap[kk], 0.0), issue[kk])
                dk = dep[kk]
                dep_done = np.where(dk >= 0, done[rows, np.maximum(dk, 0)] if n_pool else np.inf,
                                    -np.inf)
                ready = np.maximum(ready, dep_done)
                go = waiting & (ready <= t)
                start[rows[go], k[go]] = t[go]
                cur_end = np.where(go, t + dur[rows, kk], cur_end)
                running = running | go
                next_chain = np.where(running, cur_end, np.where(waiting, ready, np.inf))
                sm_c = np.where(running, c_sm[rows, kk], 0.0)
                bw_c = np.where(running, c_bw[rows, kk], 0.0)
            else:
                next_chain = np.full(frames, np.inf)
                sm_c = bw_c = np.zeros(frames)
            # Independent kernels: released and not done, served in index order, each at most at
            # its rate alone, from what the chain and earlier kernels leave.
            if n_pool:
                active = (rel <= t[:, None]) & ~np.isfinite(done)
                want_sm = np.where(active, demand_sm, 0.0)
                want_bw = np.where(active, demand_bw, 0.0)
                # What earlier kernels leave (never below 0); a kernel that needs none of a
                # resource is not limited by it (inf * 0 -> nan, which minimum ignores: fmin).
                left_sm = np.maximum((sms - sm_c)[:, None] + want_sm - np.cumsum(want_sm, 1), 0.0)
                left_bw = np.maximum((bw - bw_c)[:, None] + want_bw - np.cumsum(want_bw, 1), 0.0)
                rate = np.where(active, np.fmin(np.fmin(cap, left_sm * inv_hold),
                                                left_bw * inv_bytes), 0.0)
                to_done = np.where(rate > 0, (1.0 - progress) / rate, np.inf)
                to_release = np.where(rel > t[:, None], rel - t[:, None],
                                      np.inf)
                dt_pool = np.minimum(to_done.min(1), to_release.min(1))
            else:
                dt_pool = np.full(frames, np.inf)
            dt = np.minimum(next_chain - t, dt_pool)
            finished = ~np.isfinite(dt)
            if finished.all():
                break
            dt = np.where(finished, 0.0, np.maximum(dt, 0.0))
            t = t + dt
            if n_pool:
                progress = np.where(active, progress + rate * dt[:, None], progress)
                newly = active & ((progress >= 1.0 - 1e-12)
                                  | (to_done <= dt[:, None] * (1 + 1e-12)))
                done = np.where(newly, t[:, None], done)
            if n_items:
                fin = running & (cur_end <= t * (1 + 1e-15))
                end[rows[fin], k[fin]] = cur_end[fin]
                prev_end = np.where(fin, cur_end, prev_end)
                t = np.where(fin, np.maximum(t, cur_end), t)
                k = k + fin
                running = running & ~fin
        else:  # pragma: no cover - the loop is bounded by the number of events
            raise AssertionError("scheduler did not converge")
    # Every independent kernel is done: the rest of each frame's chain is a plain chain.
    for j in range(int(k.min(initial=n_items)), n_items):  # loop over chain kernels
        todo = k <= j
        ready = np.maximum(prev_end + (gap[j] if j else 0.0), issue[j])
        if dep[j] >= 0:
            ready = np.maximum(ready, done[:, dep[j]])
        cur = running & (k == j)
        s_j = np.where(cur, start[:, j], ready)
        e_j = np.where(cur, cur_end, s_j + dur[:, j])
        start[:, j] = np.where(todo, s_j, start[:, j])
        end[:, j] = np.where(todo, e_j, end[:, j])
        prev_end = np.where(todo, e_j, prev_end)
    last = prev_end if n_items else np.full(frames, float(start_at))
    all_busy = pool_busy + busy.sum(1)
    all_bytes = pbytes.sum(1) + nbytes.sum(1)
    total = np.maximum.reduce([last, done.max(1) if n_pool else last, all_busy / sms,
                               all_bytes / bw])
    return FrameSchedule(total=total, start=start, end=end, pool_done=done, pool_alone=alone,
                         busy=all_busy)
