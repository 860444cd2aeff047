"""The accuracy study end to end: the sweep, the tuner per model and method, its held-out
evaluation and transfer, assembled into an :class:`~experiments.accuracy.result.AccuracyResult`;
and the same from a config (:func:`run_from_config`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from absl import logging

from experiments import metrics as metrics_lib
from experiments.accuracy.heldout import evaluation, transfer, transfer_workspace
from experiments.accuracy.labels import load_labels
from experiments.accuracy.objective import CLAIM_AGREEMENT
from experiments.accuracy.result import AccuracyResult, MetricInfo, SpeedTarget
from experiments.accuracy.sweep import sweep
from experiments.accuracy.tuner import tune
from experiments.cells import Workspace
from experiments.errors import ConfigError
from experiments.tuning import TuneMethod, tune_method

__all__ = ["accuracy", "effective_calibration", "record_effective", "run_from_config",
           "transfer_streams_from_config"]


def accuracy(ws: Workspace, models: Sequence[str], streams: Sequence[str], predictor: str,
             taus: Sequence[float], *, tune_stream: str | None = None,
             calibration_frames: int = 16, floor: float = CLAIM_AGREEMENT, evals: int = 8,
             gpu: int = 0, scheme: str = "secnn_hw", baseline: str = "dense",
             labels: Mapping[tuple[str, int], int] | None = None,
             methods: Sequence[str | TuneMethod] = ("mean",),
             transfer_streams: Mapping[str, Any] | None = None, transfer_frames: int = 0,
             transfer_window: int = 16) -> AccuracyResult:
    """The sweep for every model and stream, then the tuner, its held-out evaluation and
    transfer.

    Args:
      methods: tuning methods (:func:`tune_method` specs); each is tuned and evaluated.
      transfer_streams: ``{name: Stream}`` for :func:`transfer`: the tuning stream (with
        ``transfer_frames`` frames, for the windows after the calibration frames) and other
        clips. ``None``: no transfer evaluation.
      transfer_frames: frames per transfer stream (0: the workspace's frame cap).
      transfer_window: frames per transfer window.

    Returns:
      The result: ``sweep`` rows per model, stream and tau (:func:`sweep`; ``speedup_by_gpu``
      on every GPU of the timer, listed in ``gpus``; ``speedup`` the objective's); ``tuned``
      (one per model and method, if ``tune_stream`` is given and a timer is set): the
      :func:`tune` result with its ``evaluation`` per workspace stream
      (:func:`experiments.accuracy.heldout.evaluation`) and ``transfer`` (with transfer
      streams); ``metrics``: each model's metric.
    """
    taus = sorted({0.0, *map(float, taus)})
    meths = [tune_method(m) for m in methods]
    model_metrics = {m: metrics_lib.model_metric(m) for m in models}
    rows = []
    for m in models:
        for s in streams:
            for r in sweep(ws, m, s, predictor, taus, gpu=gpu, scheme=scheme,
                           baseline=baseline, labels=labels, metric=model_metrics[m]):
                rows.append({"model": m, "stream": s, **r})
    tuned = []
    if tune_stream is not None and ws.timer is not None:
        if tune_stream not in streams:
            raise ConfigError(f"tune_stream {tune_stream!r} is not among the streams {streams}")
        tws = None
        if transfer_streams:
            n = transfer_frames or ws.max_frames
            # The workspace itself when it already holds every transfer stream (no recompile).
            tws = ws if (n <= ws.max_frames and all(s in ws.streams for s in transfer_streams)) \
                else transfer_workspace(ws, transfer_streams, n)
        for m in models:
            for meth in meths:
                t = tune(ws, m, tune_stream, predictor, calibration_frames=calibration_frames,
                         floor=floor, evals=evals, gpu=gpu, scheme=scheme, baseline=baseline,
                         method=meth, metric=model_metrics[m])
                t["evaluation"] = evaluation(ws, m, streams, t, predictor, gpu, scheme,
                                             baseline)
                if tws is not None:
                    t["transfer"] = transfer(tws, m, t, list(transfer_streams),
                                             predictor=predictor, window=transfer_window,
                                             gpu=gpu, scheme=scheme, baseline=baseline)
                tuned.append(t)
    return AccuracyResult.from_study(
        predictor=predictor, sweep=rows, tuned=tuned,
        metrics={m: MetricInfo(k, metrics_lib.get_metric(k).primary,
                               metrics_lib.get_metric(k).label)
                 for m, k in model_metrics.items()},
        methods=[mt.spec for mt in meths], claim_floor=CLAIM_AGREEMENT,
        gpus=list(ws.timer.gpus) if ws.timer is not None else [],
        target=SpeedTarget(gpu, scheme, baseline),
        gpu_name=ws.timer.gpus[gpu] if ws.timer is not None else None)


def effective_calibration(result: AccuracyResult, requested: int) -> dict[str, int]:
    """``{model: calibration frames used}`` for every tuned model whose calibration frames
    differ from ``requested`` (fewer frames than asked, or not a whole number of chunks:
    :func:`tune`); ``{}`` when every model calibrated on what was asked."""
    return {t.model: int(t.calibration_frames) for t in result.tuned
            if int(t.calibration_frames) != int(requested)}


def record_effective(run: Any, cfg: Any, result: AccuracyResult) -> None:
    """Records in ``run``'s ``config.json`` (:meth:`experiments.runs.RunDir.record_effective`)
    the calibration frames each model used where they differ from ``cfg.calibration_frames``
    (``cfg``: :class:`experiments.config.Settings` or a ConfigDict, parsed by
    :func:`experiments.config.settings`)."""
    from experiments import config as config_lib  # noqa: PLC0415

    eff = effective_calibration(result, config_lib.settings(cfg).calibration_frames)
    if eff:
        run.record_effective("calibration_frames", eff)


def transfer_streams_from_config(cfg: Any, tune_stream: str | None,
                                 opened: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{name: Stream}`` of the tuning stream and ``cfg.transfer_streams``, each opened with
    ``cfg.transfer_frames`` frames (0: ``cfg.frames``; at most ``cfg.frames``:
    :attr:`experiments.config.Settings.transfer_frames_used`); ``{}`` when nothing is to
    transfer. ``cfg``: :class:`experiments.config.Settings` or a ConfigDict.

    The tuning stream is reopened by its name; a stream that cannot be (``pan:...`` streams
    are named differently from their spec) is taken from ``opened`` as it is.
    """
    from experiments import config as config_lib  # noqa: PLC0415
    from secnn_jax import datasources  # noqa: PLC0415

    cfg = config_lib.settings(cfg)
    specs = cfg.transfer_streams
    if tune_stream is None or (not specs and not cfg.transfer_frames):
        return {}
    n = cfg.transfer_frames_used
    try:
        out = {tune_stream: datasources.open_stream(tune_stream, max_frames=n)}
    except datasources.StreamError:
        if opened is None or tune_stream not in opened:
            raise
        logging.warning("transfer: stream %r cannot be reopened with %d frames; using its %s",
                        tune_stream, n, "frames in the workspace")
        out = {tune_stream: opened[tune_stream]}
    for spec in specs:
        try:
            s = datasources.open_stream(spec, max_frames=n)
        except datasources.StreamError as e:
            raise ConfigError(f"config.transfer_streams: {e}") from e
        out.setdefault(s.info.name, s)
    return out


def run_from_config(ws: Workspace, cfg: Any) -> AccuracyResult:
    """:func:`accuracy` with every argument taken from a config (:mod:`experiments.config`:
    :class:`~experiments.config.Settings`, or a ConfigDict parsed by
    :func:`~experiments.config.settings`).

    Raises:
      ConfigError: ``cfg.tune_stream`` is not one of the workspace's streams (``''``: no
        tuning), or a transfer stream does not open.
    """
    from experiments import config as config_lib  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = config_lib.settings(cfg)
    streams = list(ws.streams)
    tune_stream = cfg.tune_stream or None  # '' turns threshold tuning off
    if tune_stream is not None and tune_stream not in streams:
        raise ConfigError(f"config.tune_stream={tune_stream!r}: not among the streams "
                          f"{sorted(streams)}; name one of them, or '' for no tuning")
    return accuracy(
        ws, list(ws.models), streams, predictor_spec("secnn", cfg.silence, cfg.decay),
        cfg.taus, tune_stream=tune_stream,
        calibration_frames=cfg.calibration_frames, floor=cfg.agreement_floor,
        evals=cfg.tune_evals, gpu=0, scheme=cfg.tune_scheme, baseline=cfg.tune_baseline,
        labels=load_labels(cfg.labels) if cfg.labels else None,
        methods=cfg.tune_methods,
        transfer_streams=transfer_streams_from_config(cfg, tune_stream, ws.streams),
        transfer_frames=cfg.transfer_frames_used,
        transfer_window=cfg.transfer_window)
