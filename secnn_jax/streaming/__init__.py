"""How SE-CNN runs over frames, one module per concern (:mod:`secnn_jax.pipeline` re-exports).

* :mod:`~secnn_jax.streaming.step` — :func:`~secnn_jax.streaming.step.pipeline`, the one
  SE-CNN step ``step(params, state, x, tau)``; a fixed ``tau`` is a ``functools.partial``.
* :mod:`~secnn_jax.streaming.scan` — :func:`~secnn_jax.streaming.scan.scan_program`, the one
  compiled scan of a step over a chunk of frames, with in-jit reducers
  (:class:`~secnn_jax.streaming.scan.EventCounts`).
* :mod:`~secnn_jax.streaming.frames` — checking frames, cutting a stream into chunks and
  padding a short last chunk (:class:`~secnn_jax.streaming.frames.FramesError`).
* :mod:`~secnn_jax.streaming.programs` — the compiled program of a model, predictor and frame
  shape (:func:`~secnn_jax.streaming.programs.stream_program`), cached across calls.
* :mod:`~secnn_jax.streaming.streams` — :func:`~secnn_jax.streaming.streams.run_stream` and
  :func:`~secnn_jax.streaming.streams.iter_stream`, which run that program.

Each module imports only those listed before it (``frames`` needs none of them).
"""
