"""Scale-out on JAX's own runtime: streams are the parallel axis.

SE-CNN's batch axis ``N`` holds independent streams (each with its own predictor state), so
scaling out never needs communication between streams:

* **one host, many devices** — :func:`run_stream_sharded` places the ``N`` axis of the frames
  and of the predictor state on a 1-D ``jax.sharding.Mesh`` (axis ``"streams"``) and lets GSPMD
  partition the jitted scan; params are replicated. Results equal a single device's.
* **many hosts** — every process calls :func:`initialize` (a thin wrapper of
  ``jax.distributed.initialize``), takes its own block of streams with :func:`process_streams`,
  runs them locally and writes its own output shard; one step merges the shards
  (:func:`merge_stream_shards` for arrays; ``secnn_jax.traces`` for traces).

See README "Running on many devices and hosts".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from secnn_jax.errors import SecnnError
from secnn_jax.events import EventMaps, fires_of, predictor_of
from secnn_jax.layers import find_layers
from secnn_jax.phases import Tau
from secnn_jax.predictors import PredictorLike
from secnn_jax.streaming.frames import check_frames
from secnn_jax.streaming.scan import scan_program
from secnn_jax.streaming.step import pipeline

AXIS = "streams"


class DistributedError(SecnnError, ValueError):
    """Bad input to the distributed helpers (no devices, streams that do not divide over the
    devices or processes, shards that do not match); the message names the argument."""


def stream_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"streams"`` over ``devices`` (default: this process's devices)."""
    devices = list(devices if devices is not None else jax.local_devices())
    if not devices:
        raise DistributedError("stream_mesh: no devices")
    return Mesh(np.asarray(devices), (AXIS,))


def _state_sharding(mesh: Mesh, n: int, leaf: Any) -> NamedSharding:
    # A leaf is per stream when its leading axis is the stream axis; anything else replicates.
    shape = jnp.shape(leaf)
    if shape and shape[0] == n:
        return NamedSharding(mesh, P(AXIS))
    return NamedSharding(mesh, P())


def run_stream_sharded(apply_fn: Callable, params: Any, frames: Any, predictor: PredictorLike,
                       tau: Tau = 0.0, mesh: Mesh | None = None
                       ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """:func:`secnn_jax.run_stream` with the stream axis sharded over ``mesh``'s devices.

    ``frames`` is ``[T, N, ...]`` with ``N`` divisible by the number of devices. Predictor state
    leaves whose leading axis is ``N`` are sharded with the frames; params are replicated.
    """
    mesh = mesh or stream_mesh()
    frames = check_frames(frames)
    n, n_dev = frames.shape[1], mesh.devices.size
    if n % n_dev:
        raise DistributedError(
            f"run_stream_sharded: {n} streams do not divide over {n_dev} devices; use a "
            "multiple of the device count"
        )
    layers = find_layers(apply_fn, params, jax.ShapeDtypeStruct(frames.shape[1:], frames.dtype))
    step = pipeline(apply_fn, layers, predictor, tau)
    state = predictor.init(layers)
    state = jax.tree_util.tree_map(lambda a: jax.device_put(a, _state_sharding(mesh, n, a)),
                                   state)
    params = jax.device_put(params, NamedSharding(mesh, P()))
    xs = jax.device_put(jnp.asarray(frames), NamedSharding(mesh, P(None, AXIS)))
    valid = jax.device_put(jnp.ones(frames.shape[0], bool), NamedSharding(mesh, P()))
    out = scan_program(step)(params, state, xs, valid)
    return out.logits, out.events


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """Where this process stands in a multi-host run."""

    index: int
    count: int


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> ProcessInfo:
    """Joins a multi-process run through ``jax.distributed.initialize`` (skipped for 1 process).

    With no arguments, JAX reads the cluster from the environment (SLURM, Open MPI, TPU pods,
    or ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``).
    """
    if num_processes is None or num_processes > 1:
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id)
    return ProcessInfo(jax.process_index(), jax.process_count())


def process_streams(n_streams: int, info: ProcessInfo | None = None) -> slice:
    """This process's contiguous block of ``range(n_streams)`` (blocks differ by at most one)."""
    info = info or ProcessInfo(jax.process_index(), jax.process_count())
    if n_streams < info.count:
        raise DistributedError(f"{n_streams} streams cannot feed {info.count} processes")
    base, extra = divmod(n_streams, info.count)
    start = info.index * base + min(info.index, extra)
    return slice(start, start + base + (1 if info.index < extra else 0))


def merge_stream_shards(shards: Sequence[Mapping[str, np.ndarray]], axis: int = 1
                        ) -> dict[str, np.ndarray]:
    """Concatenates per-process results (same keys, shards in process order) along streams.

    Shards that are :class:`secnn_jax.events.EventMaps` with fires maps merge into one (fires
    concatenated the same way); anything else merges into a plain dict.
    """
    if not shards:
        raise DistributedError("merge_stream_shards: no shards")
    keys = set(shards[0])
    for i, s in enumerate(shards):
        if set(s) != keys:
            raise DistributedError(f"shard {i} has keys {sorted(s)}, expected {sorted(keys)}")
    out = {k: np.concatenate([np.asarray(s[k]) for s in shards], axis=axis) for k in keys}
    fires = [fires_of(s) for s in shards]
    if all(f is not None for f in fires):  # event maps keep their fires maps and predictor
        return EventMaps(out, {k: np.concatenate([np.asarray(f[k]) for f in fires], axis=axis)
                               for k in keys}, predictor_of(shards[0]))
    return out
