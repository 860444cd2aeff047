"""The reference of a (model, stream) pair: the plain forward pass, chunk by chunk, cached.

:func:`reference_step` is the compiled pass over a chunk: exact logits and, per layer, the input
neurons that are non-zero, negative, the sum of ``|x|`` and the number changed since the previous
frame by more than each of :data:`experiments.config.CHANGE_TAUS`. :class:`ReferenceRunner` runs it
over a stream of :class:`experiments.cellinputs.CellInputs` and keeps each chunk in the cell cache
(``<inputs dir>/reference``) and the whole :class:`RefResult` in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.cellinputs import CellInputs, load_chunk, progress_bar
from experiments.config import CHANGE_TAUS
from secnn_jax.layers import Layer
from secnn_jax.pipeline import pad_chunk

__all__ = ["RefResult", "ReferenceRunner", "reference_step"]


def reference_step(apply_fn: Callable, layers: Sequence[Layer],
                   change_taus: Sequence[float] = CHANGE_TAUS) -> Callable[..., Any]:
    """Jitted ``f(params, prev, frames) -> (logits, nonzero, negative, abs_sum, changed)``: the
    plain pass over ``frames`` ``[t, ...]``, ``prev`` ``[...]`` the frame before the first.

    ``nonzero``/``negative`` count each layer's input neurons ``!= 0`` / ``< 0`` per frame
    ``[t, L]``; ``abs_sum`` is the sum of ``|x|`` per layer and frame; ``changed`` ``[t, L, K]``
    counts the input neurons with ``|x - x_prev| > change_taus[k]`` (``x_prev``: the same neuron
    on the frame before; ``prev`` is that frame for the first).
    """
    from secnn_jax import layer_inputs  # noqa: PLC0415

    layers = tuple(layers)
    fwd = layer_inputs(apply_fn, layers)

    @jax.jit
    def run(params: Any, prev: jax.Array, frames: jax.Array) -> Any:
        def body(before: Any, x: jax.Array) -> Any:
            logits, inputs = fwd(params, x)
            nz = jnp.stack([jnp.sum(inputs[lyr.name] != 0, dtype=jnp.int32) for lyr in layers])
            neg = jnp.stack([jnp.sum(inputs[lyr.name] < 0, dtype=jnp.int32) for lyr in layers])
            ab = jnp.stack([jnp.sum(jnp.abs(inputs[lyr.name]).astype(jnp.float32))
                            for lyr in layers])
            ch = jnp.stack([_changed(inputs[lyr.name], before[lyr.name], change_taus)
                            for lyr in layers])
            return inputs, (logits, nz, neg, ab, ch)

        # One scan over [prev, *frames] (one copy of the network in the program, not two); the
        # first step's outputs are prev's and are dropped.
        init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                            jax.eval_shape(fwd, params, prev)[1])
        _, out = jax.lax.scan(body, init, jnp.concatenate([prev[None], frames]))
        return jax.tree.map(lambda a: a[1:], out)

    return run


def _changed(x: jax.Array, before: jax.Array, taus: Sequence[float]) -> jax.Array:
    """``[K]`` int32: elements with ``|x - before| > taus[k]`` (compared in ``x``'s dtype,
    ``taus`` ascending).

    Each element's count of thresholds it exceeds (one fused elementwise pass), a histogram of
    those (a scatter-add), summed from the top: on a CPU about 2x cheaper than K counts in a
    loop and 10x cheaper than one reduction over ``[N, K]``."""
    d = jnp.abs(x - before).reshape(-1)
    g = jnp.asarray(taus, x.dtype)
    above = sum((d > g[k]).astype(jnp.int32) for k in range(g.shape[0]))
    hist = jnp.zeros(g.shape[0] + 1, jnp.int32).at[above].add(1, mode="promise_in_bounds")
    return jnp.cumsum(hist[::-1])[::-1][1:]


@dataclasses.dataclass(frozen=True)
class RefResult:
    """The plain forward pass over a stream.

    Attributes:
      logits: ``[T, classes]`` float32 exact logits.
      nonzero: ``[T, L]`` input neurons ``!= 0`` per layer and frame.
      negative: ``[T, L]`` input neurons ``< 0`` (0 everywhere: a rectified, post-ReLU input).
      abs_sum: ``[T, L]`` float64 sum of ``|x|`` over each layer's input neurons.
      n_inputs: ``[L]`` input neurons per layer per frame.
      changed: ``[T, L, K]`` input neurons with ``|x_t - x_{t-1}| > change_taus[k]``; frame 0
        has no previous frame and its row is 0 (leave it out of any share).
      change_taus: ``[K]`` the thresholds of ``changed`` (:data:`CHANGE_TAUS`).
    """

    logits: np.ndarray
    nonzero: np.ndarray
    negative: np.ndarray
    abs_sum: np.ndarray
    n_inputs: np.ndarray
    changed: np.ndarray
    change_taus: np.ndarray


#: A compiled reference pass, by model name and frame shape.
StepKey = tuple[str, tuple[int, ...]]


class ReferenceRunner:
    """Runs the plain pass of :class:`~experiments.cellinputs.CellInputs`' (model, stream)
    pairs (see module docstring).

    Args:
      inputs: the models, streams and frames, and the cache directory they name.
      stats: counts ``chunks_computed`` and ``chunks_loaded`` (shared with the cell runner).
      progress: show tqdm progress bars.
      steps: the compiled passes by model and frame shape (another runner's, to share them).
    """

    def __init__(self, inputs: CellInputs, *, stats: MutableMapping[str, int],
                 progress: bool = True,
                 steps: dict[StepKey, Callable[..., Any]] | None = None) -> None:
        self.inputs = inputs
        self.stats = stats
        self.progress = progress
        self.steps: dict[StepKey, Callable[..., Any]] = {} if steps is None else steps
        self._memory: dict[tuple[str, str], RefResult] = {}

    def __call__(self, model: str, stream: str) -> RefResult:
        """The plain forward pass over ``stream`` (cached per chunk)."""
        key = (model, stream)
        if key in self._memory:
            return self._memory[key]
        inputs = self.inputs
        frames = inputs.frames(model, stream)
        layers = inputs.layers(model, stream)
        h = inputs.model(model)
        d = inputs.cell_dir(model, stream, "reference")
        parts = []
        computed = self.stats["chunks_computed"]
        chunks = inputs.chunks(frames.shape[0])
        with progress_bar(frames.shape[0], f"{model}/{stream} reference", self.progress) as bar:
            for k, (a, b) in enumerate(chunks):
                got = load_chunk(inputs.cache, d, k, b - a, self.stats)
                if got is not None and "changed" not in got:  # stored before change counts
                    got = None
                if got is None:
                    skey = (model, tuple(frames.shape[1:]))
                    if skey not in self.steps:
                        self.steps[skey] = reference_step(h.apply_fn, layers)
                    chunk, _ = pad_chunk(frames[a:b], inputs.chunk_size)
                    # The frame before the chunk (frame 0 for the first: no change counted).
                    logits, nz, neg, ab, ch = self.steps[skey](
                        h.variables, jnp.asarray(frames[max(a - 1, 0)]), jnp.asarray(chunk))
                    t = b - a
                    got = {"n": np.int64(t),
                           "logits": np.asarray(logits, np.float32)[:t].reshape(t, -1),
                           "nonzero": np.asarray(nz, np.int64)[:t],
                           "negative": np.asarray(neg, np.int64)[:t],
                           "abs_sum": np.asarray(ab, np.float64)[:t],
                           "changed": np.asarray(ch, np.int64)[:t]}
                    inputs.cache.save_chunk(d, k, got)
                    self.stats["chunks_computed"] += 1
                parts.append(got)
                bar.update(b - a)
        if self.stats["chunks_computed"] > computed:
            inputs.cache.evict()
        res = RefResult(
            logits=np.concatenate([p["logits"] for p in parts]),
            nonzero=np.concatenate([p["nonzero"] for p in parts]),
            negative=np.concatenate([p["negative"] for p in parts]),
            abs_sum=np.concatenate([p["abs_sum"] for p in parts]),
            n_inputs=np.array([lyr.n_inputs for lyr in layers], np.int64),
            changed=np.concatenate([p["changed"] for p in parts]),
            change_taus=np.array(CHANGE_TAUS, np.float64),
        )
        self._memory[key] = res
        return res
