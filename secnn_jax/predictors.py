"""Value predictors: what each layer's input neurons are guessed to be before they are known.

A predictor is any object with three pure functions (the shape of optax's transformations)::

    init(layers) -> state                  # state is a pytree
    predict(state) -> {layer_name: P}      # P shaped like the layer's input (batch first)
    update(state, inputs) -> state         # inputs: {layer_name: real input of this frame}

The batch axis holds independent streams: every array in a state is per neuron *per stream*, so
streams never see each other's history. The built-ins are :class:`Predictor` instances; any object
with those three attributes (a dataclass, a namedtuple, a module) works with
:func:`secnn_jax.pipeline`.

**Predictors that need the tolerance.** A predictor whose next state depends on which inputs the
serial phase propagated (:func:`accumulated`, DeltaCNN's rule) sets the attribute
``update_needs_tau = True``; the pipeline then calls::

    update(state, inputs, tau) -> state    # tau: {layer_name: scalar}, the serial phase's own

``tau`` holds exactly the values the serial phase compared ``|x - P|`` against on this frame
(traced when the :func:`secnn_jax.pipeline` step is given ``tau``), so the predictor can
recompute the serial phase's mask bit for bit. Without the attribute (or with it ``False``)
``update`` is called with two arguments as before, so existing and user-written predictors run
unchanged (:func:`update_needs_tau` reads the attribute).

Compiled programs are cached across calls (:func:`secnn_jax.run_stream`), keyed among other
things on the predictor's :func:`config_key`: the built-ins carry a ``config_key`` naming what
their ``predict``/``update`` compute (``("secnn", silence, decay)``), so ``secnn(0.5)`` made
afresh for every call still hits the cache. A predictor of your own may set a hashable
``config_key`` attribute the same way; without one it is cached by identity (reuse the object).

**By name.** :func:`from_spec` builds a built-in from a spec string such as ``"zero"`` or
``"secnn(silence=0.5,decay=0.5)"`` (the studies' configurations name predictors this way).

Bad arguments and states that do not fit the model raise :class:`PredictorError` (a
``ValueError``) or :class:`PredictorTypeError` (a ``TypeError``), both
:class:`secnn_jax.SecnnError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from secnn_jax import events
from secnn_jax.layers import Layer
from secnn_jax.phases import layer_inputs
from secnn_jax.prediction_check import PredictorError, PredictorTypeError

State = Any
Predictions = dict[str, jax.Array]


@runtime_checkable
class PredictorLike(Protocol):
    """Structural type of a predictor: anything with ``init``, ``predict`` and ``update``.

    Optional: an attribute ``update_needs_tau = True`` makes the pipeline call
    ``update(state, inputs, tau)`` with ``tau`` the serial phase's ``{layer_name: scalar}``
    (module docstring); without it ``update(state, inputs)`` is called. It is not a member of
    this protocol, so objects without it still pass ``isinstance(obj, PredictorLike)``.
    """

    def init(self, layers: Sequence[Layer]) -> State:
        """The initial state (a pytree) for the model's ``layers``."""
        ...

    def predict(self, state: State) -> Predictions:
        """``{layer_name: prediction}``, each shaped like the layer's input."""
        ...

    def update(self, state: State, inputs: Mapping[str, jax.Array]) -> State:
        """The state after a frame whose real layer inputs were ``inputs``."""
        ...


class Predictor(NamedTuple):
    """A value predictor as three pure functions (see module docstring).

    Attributes:
      init: ``init(layers) -> state``.
      predict: ``predict(state) -> {layer_name: prediction}``.
      update: ``update(state, inputs) -> state``, or ``update(state, inputs, tau) -> state``
        when ``update_needs_tau``.
      config_key: a hashable value that determines ``predict`` and ``update`` completely (two
        predictors with equal keys compute the same); ``None``: the predictor is identified by
        the object itself (see :func:`config_key`).
      update_needs_tau: ``True``: the pipeline passes the serial phase's per-layer tolerance
        ``{layer_name: scalar}`` as ``update``'s third argument (see the module docstring).
    """

    init: Callable[[Sequence[Layer]], State]
    predict: Callable[[State], Predictions]
    update: Callable[..., State]
    config_key: Hashable | None = None
    update_needs_tau: bool = False


class _Identity:
    """Hashes and compares by object identity (and keeps the object alive while cached)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj


def config_key(predictor: Any) -> Hashable:
    """What identifies ``predictor``'s compiled ``predict``/``update`` in a program cache.

    Its ``config_key`` attribute (with its type) when it has a hashable one; otherwise the
    object's identity, so a user-written predictor without a key is reused only as the very
    same object (a new object compiles anew: never a stale program for changed code).
    """
    key = getattr(predictor, "config_key", None)
    if key is not None:
        try:
            hash(key)
        except TypeError:
            pass
        else:
            return (type(predictor).__module__, type(predictor).__qualname__, key)
    return _Identity(predictor)


#: Names of the built-in predictors (their ``config_key``'s first element).
BUILTIN_NAMES: tuple[str, ...] = ("zero", "last_value", "secnn", "accumulated", "mean")


def builtin_name(predictor: Any) -> str | None:
    """The built-in predictor ``predictor`` is (``"zero"``, ``"secnn"``...), else ``None``.

    Read from a :class:`Predictor`'s ``config_key``, which names what its ``predict`` and
    ``update`` compute; any other object is unknown. The pipeline stamps it on the events it
    returns (:attr:`secnn_jax.events.EventMaps.predictor`).
    """
    key = getattr(predictor, "config_key", None) if isinstance(predictor, Predictor) else None
    if isinstance(key, tuple) and key and key[0] in BUILTIN_NAMES:
        return str(key[0])
    return None


def update_needs_tau(predictor: Any) -> bool:
    """Whether the pipeline calls ``predictor.update(state, inputs, tau)`` (else without tau).

    Reads the optional ``update_needs_tau`` attribute; absent means ``False``, so predictors
    written before the attribute existed keep their two-argument ``update``.

    Raises:
      PredictorTypeError: the attribute is set to something other than ``True`` or ``False``
        (a truthy string or array would make the calling convention a guess).
    """
    value = getattr(predictor, "update_needs_tau", False)
    if not isinstance(value, bool | np.bool_):
        raise PredictorTypeError(
            f"predictor {type(predictor).__name__}: update_needs_tau must be True or False, got "
            f"{value!r}"
        )
    return bool(value)


def _zeros(layers: Sequence[Layer]) -> dict[str, jax.Array]:
    return {layer.name: jnp.zeros(layer.in_shape, layer.dtype) for layer in layers}


def zero() -> Predictor:
    """Every neuron is predicted silent (0): SE-CNN's baseline guess.

    State: ``{name: zeros(in_shape)}`` (kept so that ``predict`` knows the shapes).
    """
    return Predictor(
        init=_zeros,
        predict=lambda state: dict(state),
        update=lambda state, inputs: state,
        config_key=("zero",),
    )


def last_value() -> Predictor:
    """Every neuron is predicted to repeat its value on the previous frame (0 on the first).

    State: ``{name: previous real input}``.
    """

    def update(state: State, inputs: Mapping[str, jax.Array]) -> State:
        return {name: inputs[name].astype(prev.dtype) for name, prev in state.items()}

    return Predictor(init=_zeros, predict=lambda state: dict(state), update=update,
                     config_key=("last_value",))


def secnn(silence: float = 0.5, decay: float = 0.75) -> Predictor:
    """The SE-CNN hybrid: silent neurons are predicted 0, active ones their previous value.

    Each neuron keeps a firing rate, a running average of ``x != 0`` over past frames::

        rate_t = decay * rate_{t-1} + (1 - decay) * (x_t != 0)

    A neuron with ``rate < silence`` is predicted 0; any other neuron its previous value. Cold
    start: rates start at 0, so the first frame is predicted all-zero. Whenever
    ``1 - decay >= silence`` one firing frame suffices (its last value is then non-zero exactly
    when it fired), so the predictor equals :func:`last_value`; in particular ``decay=0`` and
    ``(silence=0.5, decay=0.5)``. The default ``decay=0.75`` makes it a real hybrid: a neuron
    must fire on about three consecutive frames (rate 0.25, 0.44, 0.58) before its value is
    trusted, and one that flickers once is predicted silent.

    Args:
      silence: firing-rate threshold in ``[0, 1]`` below which a neuron is predicted silent.
      decay: weight of the past in the running average, in ``[0, 1)``.

    State: ``{name: {"last": previous input, "rate": float32 firing rate}}``.
    """
    try:
        silence, decay = float(silence), float(decay)
    except (TypeError, ValueError) as err:
        raise PredictorError(f"secnn: silence and decay must be numbers, got {silence!r}, "
                             f"{decay!r}") from err
    if not 0.0 <= silence <= 1.0:  # NaN fails this too
        raise PredictorError(f"secnn: silence must lie in [0, 1], got {silence}")
    if not 0.0 <= decay < 1.0:
        raise PredictorError(f"secnn: decay must lie in [0, 1), got {decay}")

    def init(layers: Sequence[Layer]) -> State:
        return {
            layer.name: {
                "last": jnp.zeros(layer.in_shape, layer.dtype),
                "rate": jnp.zeros(layer.in_shape, jnp.float32),
            }
            for layer in layers
        }

    def predict(state: State) -> Predictions:
        return {
            name: jnp.where(s["rate"] >= silence, s["last"], jnp.zeros_like(s["last"]))
            for name, s in state.items()
        }

    def update(state: State, inputs: Mapping[str, jax.Array]) -> State:
        new = {}
        for name, s in state.items():
            x = inputs[name].astype(s["last"].dtype)
            fired = (x != 0).astype(jnp.float32)
            new[name] = {"last": x, "rate": decay * s["rate"] + (1.0 - decay) * fired}
        return new

    return Predictor(init=init, predict=predict, update=update,
                     config_key=("secnn", silence, decay))


def _tau_value(value: Any, what: str) -> Any:
    """``value`` unchanged if traced or a finite number >= 0; :class:`PredictorError` else."""
    if isinstance(value, jax.core.Tracer):
        return value  # checked where it was made concrete (tau_map), or the caller's to check
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise PredictorError(f"accumulated: {what} must be a number, got "
                             f"{type(value).__name__}") from err
    if arr.ndim != 0 or arr.dtype.kind not in "fiu":
        raise PredictorError(f"accumulated: {what} must be one number, got {value!r}")
    if not np.isfinite(arr) or arr < 0:
        raise PredictorError(f"accumulated: {what} must be finite and >= 0, got {value!r}")
    return value


def accumulated() -> Predictor:
    """DeltaCNN's rule: each neuron is predicted the last value that was *propagated*.

    Per neuron the state ``P`` (the prediction) is updated with the serial phase's own mask::

        miss = |x - P| > tau;   P <- where(miss, x, P)

    so a change at or below ``tau`` is truncated but not forgotten: it accumulates against the
    held ``P`` until the total crosses ``tau``, and then the neuron is propagated (DeltaCNN's
    accumulated truncation; with the previous value instead, a neuron drifting by less than
    ``tau`` per frame would never be propagated). ``P`` is therefore what a DeltaCNN's input
    buffer holds after the frame, ``|x - P| <= tau`` holds after every update, and each layer's
    amended output is its linear map of the new ``P``: the error does not grow with the stream.

    Cold start: ``P = 0``, so frame 0 propagates every input with ``|x| > tau`` (at ``tau = 0``
    every non-zero input: DeltaCNN's dense first frame; above it, inputs within ``tau`` of 0 are
    truncated against ``P = 0`` like any other small change).

    At ``tau = 0`` every change propagates, ``P`` is the previous input, and the predictor
    reduces to :func:`last_value` (equal predictions and event codes; the pipeline's output
    equals the plain model's up to float rounding).

    The update needs the tolerance, so the predictor sets ``update_needs_tau``: the pipeline
    calls ``update(state, inputs, tau)`` with the serial phase's ``{layer_name: scalar}``, and
    the mask is computed exactly as :func:`secnn_jax.serial_amend` computes it (same operands,
    dtype and comparison). By hand, ``tau`` may also be one number for every layer.

    State: ``{name: last propagated input}`` (the layer's dtype).

    Raises (from ``update``):
      PredictorError: ``inputs`` or a ``tau`` dict missing a layer of the state, or a concrete
        tau that is not a finite number >= 0.
    """

    def update(state: State, inputs: Mapping[str, jax.Array], tau: Any) -> State:
        missing = sorted(set(state) - set(inputs))
        if missing:
            raise PredictorError(f"accumulated: inputs lack layers {missing[:5]}")
        if isinstance(tau, Mapping):
            absent = sorted(set(state) - set(tau))
            if absent:
                raise PredictorError(f"accumulated: tau lacks layers {absent[:5]}; pass one "
                                     "number or {layer_name: tau} for every layer")
            taus = {name: _tau_value(tau[name], f"tau for layer {name!r}") for name in state}
        else:
            taus = dict.fromkeys(state, _tau_value(tau, "tau"))
        new = {}
        for name, prev in state.items():
            x = jnp.asarray(inputs[name])
            # The serial phase's operands exactly: P cast to x's dtype, |x - P| > tau. Any other
            # form (x cast to P's dtype, >=) could flip a neuron on the edge, and the state would
            # no longer be what was propagated.
            p = prev.astype(x.dtype)
            miss = events.missed(x, p, taus[name])
            new[name] = jnp.where(miss, x, p).astype(prev.dtype)
        return new

    return Predictor(init=_zeros, predict=lambda state: dict(state), update=update,
                     config_key=("accumulated",), update_needs_tau=True)


def mean(stats: Mapping[str, Any]) -> Predictor:
    """Every neuron is predicted its mean over calibration frames (see :func:`mean_stats`).

    Args:
      stats: ``{layer_name: mean}`` with each mean shaped like the layer's input without the
        batch axis (broadcast over streams) or exactly like the input.
    """
    stats = {name: jnp.asarray(v) for name, v in stats.items()}

    def init(layers: Sequence[Layer]) -> State:
        names = {layer.name for layer in layers}
        missing = sorted(names - set(stats))
        extra = sorted(set(stats) - names)
        if missing or extra:
            raise PredictorError(
                f"mean predictor: stats do not match the model's layers "
                f"(missing: {missing[:5]}, unknown: {extra[:5]})"
            )
        state = {}
        for layer in layers:
            m = stats[layer.name]
            per_stream = tuple(layer.in_shape[1:])
            if m.shape not in (per_stream, tuple(layer.in_shape)):
                raise PredictorError(
                    f"mean predictor: stats[{layer.name!r}] has shape {m.shape}, expected "
                    f"{per_stream} or {layer.in_shape}"
                )
            state[layer.name] = jnp.broadcast_to(m.astype(layer.dtype), layer.in_shape)
        return state

    # The stats enter through init only: predict and update are the same for any stats, so
    # every mean predictor shares one compiled program.
    return Predictor(init=init, predict=lambda state: dict(state),
                     update=lambda state, inputs: state, config_key=("mean",))


def mean_stats(apply_fn: Callable, params: Any, frames: Iterable[Any],
               layers: Sequence[Layer] | None = None) -> dict[str, jax.Array]:
    """Per-neuron mean of every layer's real input over calibration frames.

    Args:
      apply_fn: the model function ``(params, x) -> logits``.
      params: its parameters.
      frames: an array ``[T, N, ...]`` or an iterable of batches ``[N, ...]``.
      layers: the model's layers (found from the first frame if omitted).

    Returns:
      ``{name: mean}``, each shaped like the layer's input without the batch axis; the average
      runs over frames and streams. Feed it to :func:`mean`.
    """

    total: dict[str, jax.Array] | None = None
    n = 0
    capture = None
    for frame in frames:
        frame = jnp.asarray(frame)
        if layers is None:
            from secnn_jax.layers import find_layers  # noqa: PLC0415

            layers = find_layers(apply_fn, params, frame)
        if capture is None:
            capture = jax.jit(layer_inputs(apply_fn, layers))
        _, inputs = capture(params, frame)
        sums = {
            layer.name: jnp.sum(inputs[layer.name].astype(jnp.float32), axis=layer.lhs_spec[0])
            for layer in layers
        }
        total = sums if total is None else jax.tree_util.tree_map(jnp.add, total, sums)
        n += frame.shape[0]
    if total is None:
        raise PredictorError("mean_stats: the calibration stream is empty")
    return {name: s / n for name, s in total.items()}


#: The predictors :func:`from_spec` builds, by name (``mean`` needs statistics: not a spec).
SPEC_MAKERS: dict[str, Callable[..., Predictor]] = {
    "zero": zero, "last_value": last_value, "secnn": secnn, "accumulated": accumulated,
}


def from_spec(spec: str) -> Predictor:
    """A built-in predictor from its spec string, as the studies' configurations name them.

    Grammar: ``name`` or ``name(key=number, ...)`` with ``name`` one of :data:`SPEC_MAKERS`
    (``zero``, ``last_value``, ``secnn``, ``accumulated``) and the keywords its constructor's
    (white space around the parts is ignored)::

        from_spec("zero")                          # == zero()
        from_spec("secnn")                         # == secnn(): the constructor's defaults
        from_spec("secnn(silence=0.5,decay=0.5)")  # == secnn(silence=0.5, decay=0.5)
        from_spec("accumulated")                   # == accumulated() (DeltaCNN's rule)

    The result is the constructor's own predictor, so its :attr:`Predictor.config_key` is the
    constructor's and programs compiled for it are shared with directly made ones.

    Raises:
      PredictorError: naming the spec: not ``name(key=number, ...)``, an unknown name, a
        keyword the constructor does not take or given twice, or a value it refuses (out of
        range).
    """
    m = re.fullmatch(r"\s*(\w+)\s*(?:\((.*)\))?\s*", spec) if isinstance(spec, str) else None
    if not m:
        raise PredictorError(f"bad predictor spec {spec!r}")
    name, args = m.group(1), m.group(2) or ""
    kwargs: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in args.split(","))):
        key, _, value = part.partition("=")
        if key.strip() in kwargs:
            raise PredictorError(f"predictor {spec!r}: {key.strip()!r} is given twice")
        try:
            kwargs[key.strip()] = float(value)
        except ValueError as e:
            raise PredictorError(f"predictor {spec!r}: {part!r} is not key=number") from e
    if name not in SPEC_MAKERS:
        raise PredictorError(f"unknown predictor {name!r} in spec {spec!r}; known: "
                             f"{sorted(SPEC_MAKERS)}")
    try:
        return SPEC_MAKERS[name](**kwargs)
    except TypeError as e:  # a keyword the constructor does not take
        raise PredictorError(f"predictor {spec!r}: {e}") from e
    except PredictorError as e:  # a value the constructor refuses
        raise PredictorError(f"predictor {spec!r}: {e}") from e
