"""SE-CNN's frame schedule: the parallel phase on all SMs at once, then the serial chain.

**Parallel phase.** Every layer's CTAs (the cheaper of the dense kernel and the zero-skipping
kernel over its *predicted* non-zero inputs) are list-scheduled in layer order onto the SMs'
concurrent-kernel slots (``slots`` = the smallest occupancy of the layers' kernels, each slot
running at ``1/slots`` of the SM's throughput), each layer released when its kernel is issued
(:func:`release_times`). Layer ``l``'s parallel work is done at ``P_l``; memory is shared, so
``P_l >= bytes of layers <= l / bandwidth``.

**Serial phase.** A chain of items in program order: each layer's *correction* (compare, the
optional compaction, the amendment of mispredicted inputs over their exact fan-out) and the
non-linear op kernels between the layers. A correction of layer ``l`` starts after the previous
item and its boundary (the launch model's gap, or ``secnn_hw``'s hardware dependency latency)
and not before ``P_l``.

**No double booking.** Corrections and op kernels run on the same SMs and memory as the
parallel work still in flight. The model does not let both use the same SM-cycles or bytes:
when item ``k`` (the correction of layer ``l`` or an item after it) ends, all parallel work of
layers ``<= l`` and all serial work up to ``k`` has been done, so
``end_k >= (W_par(<= l) + W_ser(<= k)) / SMs`` and ``end_k >= (B_par(<= l) + B_ser(<= k)) /
bandwidth`` (SM-cycles ``W``, bytes ``B``), and the frame takes at least all work over all SMs
and all bytes over the bandwidth. Every term is a maximum of quantities that grow with work,
bytes and latencies, so the schedule is monotone in each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from secnn_jax.timing.gpus import GPU
from secnn_jax.timing.params import ModelParams
from secnn_jax.timing.sm import bandwidth, list_schedule_released


@dataclasses.dataclass(frozen=True)
class SerialChain:
    """The serial phase's items in program order (cycles; ``[T, K]`` or ``[K]``).

    Attributes:
      duration: ``[T, K]`` execution of each item (inner kernel boundaries included).
      busy: ``[T, K]`` SM-cycles of work of each item.
      nbytes: ``[T, K]`` bytes each item moves.
      gap: ``[K]`` boundary cost before each item.
      issue: ``[K]`` earliest start of each item (host issue under ``eager``; else 0).
      layer: ``[K]`` the layer an item corrects, ``-1`` for op kernels and passes.
      labels: ``[K]`` item names.
    """

    duration: np.ndarray
    busy: np.ndarray
    nbytes: np.ndarray
    gap: np.ndarray
    issue: np.ndarray
    layer: np.ndarray
    labels: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SecnnFrame:
    """Schedule of one SE-CNN scheme over a batch of frames (cycles).

    Attributes:
      total: ``[T]`` frame time.
      parallel_release: ``[L]`` when each layer's parallel kernel may start.
      parallel_done: ``[T, L]`` completion of each layer's parallel work (``P_l``).
      start, end: ``[T, K]`` each serial item's start and end.
      busy: ``[T]`` SM-cycles of work.
    """

    total: np.ndarray
    parallel_release: np.ndarray
    parallel_done: np.ndarray
    start: np.ndarray
    end: np.ndarray
    busy: np.ndarray


def schedule(par_w: Sequence[np.ndarray], par_d: Sequence[np.ndarray], par_occ: Sequence[int],
             par_bytes: np.ndarray, release: np.ndarray, serial: SerialChain, gpu: GPU,
             params: ModelParams, start_at: float = 0.0) -> SecnnFrame:
    """Schedules both phases (see the module docstring).

    Args:
      par_w, par_d: per layer, ``[T, n_ctas_l]`` parallel-phase CTA work and latency floors.
      par_occ: per layer, the parallel kernel's occupancy.
      par_bytes: ``[T, L]`` bytes each layer's parallel kernel moves.
      release: ``[L]`` release time of each layer's parallel kernel.
      serial: the serial chain.
      start_at: start of the serial chain's first item (the frame's submission).
    """
    n_layers = len(par_w)
    frames = serial.duration.shape[0]
    slots = max(1, min(par_occ)) if len(par_occ) else 1
    sizes = [w.shape[1] for w in par_w]
    layer_of = np.repeat(np.arange(n_layers), sizes)
    rel = release[layer_of]
    parallel_done = np.empty((frames, n_layers))
    par_busy = np.zeros((frames, n_layers))
    for t in range(frames):  # loop over frames; each frame's CTAs are scheduled per wave
        w = np.concatenate([a[t] for a in par_w]) if sizes else np.zeros(0)
        d = np.concatenate([a[t] for a in par_d]) if sizes else np.zeros(0)
        fin = list_schedule_released(np.maximum(slots * w, d), rel, gpu.sms * slots)
        done = np.full(n_layers, -np.inf)
        np.maximum.at(done, layer_of, fin)
        parallel_done[t] = np.maximum(done, release)
        np.add.at(par_busy[t], layer_of, w)
    bw = bandwidth(gpu, np.sum(par_bytes, axis=1, keepdims=True) + np.sum(serial.nbytes, axis=1,
                                                                          keepdims=True), params)
    cum_pb = np.cumsum(par_bytes, axis=1)
    cum_pw = np.cumsum(par_busy, axis=1)
    parallel_done = np.maximum(parallel_done, cum_pb / bw)
    n_items = serial.duration.shape[1]
    start = np.empty((frames, n_items))
    end = np.empty((frames, n_items))
    prev = np.full(frames, float(start_at))
    ser_w = np.zeros(frames)
    ser_b = np.zeros(frames)
    last_layer = -1
    for k in range(n_items):  # the serial phase: a chain over items
        lyr = int(serial.layer[k])
        # The first item starts with the frame (its submission), later ones after a boundary.
        s = np.maximum(prev + (serial.gap[k] if k else 0.0), serial.issue[k])
        if lyr >= 0:
            s = np.maximum(s, parallel_done[:, lyr])
            last_layer = max(last_layer, lyr)
        e = s + serial.duration[:, k]
        ser_w = ser_w + serial.busy[:, k]
        ser_b = ser_b + serial.nbytes[:, k]
        if last_layer >= 0:
            pw, pb = cum_pw[:, last_layer], cum_pb[:, last_layer]
        else:
            pw = pb = np.zeros(frames)
        e = np.maximum(e, np.maximum((pw + ser_w) / gpu.sms, (pb + ser_b) / bw[:, 0]))
        start[:, k], end[:, k] = s, e
        prev = e
    busy = par_busy.sum(1) + ser_w
    total = np.maximum.reduce([prev, parallel_done.max(axis=1) if n_layers else prev,
                               busy / gpu.sms, (par_bytes.sum(1) + ser_b) / bw[:, 0]])
    return SecnnFrame(total=total, parallel_release=np.asarray(release, np.float64),
                      parallel_done=parallel_done, start=start, end=end, busy=busy)
