"""Configuration of the studies, as code (``ml_collections.ConfigDict``).

Every field is overridable from the command line: ``--config.frames=8``,
``--config.streams=bikes,pan:astronaut:0.9``. List-valued fields are comma-separated strings
(``--config.taus=0,0.05,0.1``), parsed by the helpers below, which also validate them.

Defaults are the embedded defaults of ``python -m experiments.reproduce``: EfficientNet-Lite0 on
the bikes clip and the photo sequence, replayed on the H100 and a Pascal-era GTX 1080 Ti, sized to
finish in at most 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ml_collections

from experiments.errors import ConfigError
from experiments.tuning import tune_method
from secnn_jax.predictors import from_spec
from secnn_jax.timing.names import FUSIONS, LAUNCH_MODELS, SCHEMES

__all__ = [
    "ConfigError",
    "ILSVRC9",
    "PREDICTORS",
    "floats",
    "get_config",
    "model_names",
    "names",
    "validate",
]

#: The nine ILSVRC CNNs of the original study (``--models=ilsvrc9``).
ILSVRC9: tuple[str, ...] = ("alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "inception_v3",
                            "resnet50", "resnet101", "resnet152")

#: Predictor names the studies know.
PREDICTORS: tuple[str, ...] = ("zero", "last_value", "secnn", "accumulated")


STUDIES: tuple[str, ...] = ("sparsity", "prediction", "speedup", "accuracy", "peers")


def get_config() -> ml_collections.ConfigDict:
    """The default configuration (``reproduce``'s embedded defaults).

    The defaults run EfficientNet-Lite0 (224, 32 bikes frames + 8 photos) and HED's VGG-16
    (128 x 128, 16 bikes frames + 8 photos: ~40x Lite0's MACs per pixel) through every study in
    about 10 minutes on 2 CPU cores; ``craft_vgg16_bn`` is one flag away
    (``--models=efficientnet_lite0,craft_vgg16_bn --config.model_resolution=craft_vgg16_bn=128
    --config.model_frames=craft_vgg16_bn=16``).

    Fields:
      models: comma-separated model names, or ``ilsvrc9`` for the nine ILSVRC CNNs.
      streams: comma-separated stream specs (see ``secnn_jax.datasources.open_stream``).
      frames: maximum frames per stream.
      resolution: 0 = the model's own input size; else preprocessed frames are resized to
        ``resolution`` x ``resolution`` (small, fast test configurations).
      model_frames: per-model frame caps, ``name=frames`` comma-separated (a model's cap is the
        smaller of this and ``frames``); for models much costlier per frame than the others.
      model_resolution: per-model input sizes, ``name=size`` comma-separated (overrides
        ``resolution`` for that model; fully convolutional models take any size >= their
        minimum).
      chunk_size: frames per compiled scan and per cached, resumable chunk.
      predictors: predictors compared in the prediction study: names (``secnn`` takes
        ``silence``/``decay`` below) or full specs such as ``secnn(silence=0.75,decay=0.5)``.
      silence, decay: parameters of the ``secnn`` predictor.
      prediction_taus: thresholds of the prediction study.
      taus: global thresholds of the accuracy sweep (0 is always included).
      gpus: GPU configurations of the timing replay (first one: the tuner's objective).
      schemes: execution schemes replayed (each under every launch model).
      launch: the launch model of the headline comparisons (every scheme under it; the ladder
        uses all three).
      fusion: the one fusion policy of every replayed scheme (``none`` or ``epilogue``).
      precision: ``fp32``, ``tf32`` or ``fp16`` for the replay.
      timed_stride: replay every ``timed_stride``-th chunk only (1 = every frame).
      agreement_floor: the tuner's floor on calibration frames, on the primary score of each
        model's declared metric (``experiments.metrics``: top-1 agreement for classifiers,
        edge-map F1 for HED, region-score F1 for CRAFT); also the held-out verdicts' floor.
      calibration_frames: frames of ``tune_stream`` the tuner may look at (the rest are held out);
        rounded down to a multiple of ``chunk_size``.
      tune_stream: stream the threshold tuner calibrates on: the name of one of the streams
        (checked before any work), or '' for no threshold tuning.
      tune_evals: maximum tuner evaluations (each one SE-CNN run over the calibration frames).
      tune_scheme, tune_baseline: the tuner maximises the speedup of ``tune_scheme`` over
        ``tune_baseline`` on ``gpus[0]``.
      tune_methods: tuning methods, each tuned and evaluated (``experiments.tuning.TuneMethod``
        specs): ``mean`` (the score over all calibration frames clears the floor),
        ``worst_window(windows=4)`` (the worst of 4 contiguous calibration windows does),
        ``mean_std(windows=4,k=1)`` (window mean minus k standard deviations does); each takes
        ``margin=`` (criterion >= floor + margin) and ``backoff=`` (chosen alpha times this).
      transfer_streams: other clips the tuned thresholds are evaluated on ('' = none).
      transfer_frames: frames of the tuning stream and of each transfer stream in the transfer
        evaluation (0 = ``frames``); the windows after the calibration frames are held out.
      transfer_window: frames per held-out window in the transfer evaluation.
      labels: optional CSV ``frame,label`` (ImageNet class index) for the accuracy study.
      peer_taus: global thresholds of the peers study (SE-CNN, DeltaCNN, CBinfer).
      peer_frames: frames per stream of the peers study (the first half chooses tau, the
        second half evaluates it).
      studies: which studies ``reproduce`` runs.
    """
    c = ml_collections.ConfigDict()
    c.models = "efficientnet_lite0,hed_vgg16"
    c.streams = "bikes,photos"
    c.frames = 32
    c.resolution = 0
    c.model_frames = "hed_vgg16=16"
    c.model_resolution = "hed_vgg16=128"
    c.chunk_size = 8
    c.predictors = "zero,secnn,secnn(silence=0.75,decay=0.5)"
    c.silence = 0.5
    c.decay = 0.5
    c.prediction_taus = "0"
    c.taus = "0,0.02,0.1"
    c.gpus = "h100,gtx1080ti"
    c.schemes = ",".join(SCHEMES)
    c.launch = "persistent"
    c.fusion = "epilogue"
    c.precision = "fp32"
    c.timed_stride = 1
    c.agreement_floor = 0.95
    c.calibration_frames = 16
    c.tune_stream = "bikes"
    c.tune_evals = 4
    c.tune_scheme = "secnn_hw"
    c.tune_baseline = "dense"
    c.tune_methods = "mean,worst_window(windows=4,backoff=0.25)"
    c.transfer_streams = "bigbuckbunny,carphone_pristine"
    c.transfer_frames = 24
    c.transfer_window = 8
    c.labels = ""
    c.peer_taus = "0,0.02,0.1"
    c.peer_frames = 16
    c.studies = ",".join(STUDIES)
    return c


def _split(value: str) -> list[str]:
    """Splits on commas outside parentheses (``zero,secnn(silence=0.7,decay=0.5)``)."""
    parts, depth, cur = [], 0, []
    for ch in value:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def names(value: str | Sequence[str], field: str = "value") -> tuple[str, ...]:
    """A comma-separated string (or sequence) as a tuple of non-empty, stripped names.

    Commas inside parentheses do not split (predictor specs such as
    ``secnn(silence=0.75,decay=0.5)``).
    """
    parts = _split(value) if isinstance(value, str) else list(value)
    out = tuple(p.strip() for p in parts if str(p).strip())
    if not out:
        raise ConfigError(f"config.{field}: expected at least one name, got {value!r}")
    return out


def floats(value: str | Sequence[float], field: str = "value") -> tuple[float, ...]:
    """A comma-separated string (or sequence) of finite, non-negative floats, sorted, unique."""
    out = []
    for p in names(value, field) if isinstance(value, str) else value:
        try:
            f = float(p)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config.{field}: {p!r} is not a number") from e
        if not math.isfinite(f) or f < 0:
            raise ConfigError(f"config.{field}: {p!r} must be finite and >= 0")
        out.append(f)
    return tuple(sorted(set(out)))


def per_model(value: str, field: str) -> dict[str, int]:
    """``"hed_vgg16=160,craft_vgg16_bn=128"`` as ``{name: int}`` (each value >= 1; a model
    named twice is an error); ``""`` is ``{}``."""
    out: dict[str, int] = {}
    if not str(value).strip():
        return out
    for part in names(value, field):
        name, eq, num = part.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ConfigError(f"config.{field}: {part!r} is not name=integer")
        try:
            n = int(num)
        except ValueError as e:
            raise ConfigError(f"config.{field}: {part!r}: {num.strip()!r} is not an integer") \
                from e
        if n < 1:
            raise ConfigError(f"config.{field}: {part!r} must be >= 1")
        if name in out:
            raise ConfigError(f"config.{field}: {name!r} is given twice")
        out[name] = n
    return out


def model_names(value: str) -> tuple[str, ...]:
    """Model names; ``ilsvrc9`` expands to :data:`ILSVRC9`."""
    out: list[str] = []
    for n in names(value, "models"):
        out += ILSVRC9 if n == "ilsvrc9" else [n]
    return tuple(dict.fromkeys(out))


def validate(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Checks every field; raises :class:`ConfigError` naming the first bad one."""
    def need(cond: bool, field: str, msg: str) -> None:
        if not cond:
            raise ConfigError(f"config.{field}={cfg.get(field)!r}: {msg}")

    model_names(cfg.models)
    names(cfg.streams, "streams")
    need(int(cfg.frames) >= 1, "frames", "must be >= 1")
    need(int(cfg.resolution) >= 0, "resolution", "must be 0 (native) or a positive size")
    listed = set(model_names(cfg.models))
    for field in ("model_frames", "model_resolution"):
        for name in per_model(cfg[field], field):
            if name not in listed:
                import models  # noqa: PLC0415  (the zoo only when a per-model value is set)

                need(name in models.available(), field,
                     f"unknown model {name!r}; known: {', '.join(models.available())}")
    need(int(cfg.chunk_size) >= 1, "chunk_size", "must be >= 1")
    for p in names(cfg.predictors, "predictors"):
        try:
            from_spec(p)
        except ValueError as e:
            need(False, "predictors", f"{e}; a bare 'secnn' takes config.silence/decay")
    need(0.0 <= float(cfg.silence) <= 1.0, "silence", "must lie in [0, 1]")
    need(0.0 <= float(cfg.decay) < 1.0, "decay", "must lie in [0, 1)")
    floats(cfg.prediction_taus, "prediction_taus")
    floats(cfg.taus, "taus")
    floats(cfg.peer_taus, "peer_taus")
    need(int(cfg.peer_frames) >= 2, "peer_frames", "must be >= 2")
    from secnn_jax.timing.gpus import GPUS, get_gpu  # noqa: PLC0415

    for g in names(cfg.gpus, "gpus"):
        try:
            get_gpu(g)
        except ValueError:
            need(False, "gpus", f"unknown GPU {g!r}; known: {', '.join(GPUS)}")
    if str(cfg.labels).strip():
        from pathlib import Path  # noqa: PLC0415

        lp = Path(str(cfg.labels))
        need(lp.is_file(), "labels", "file not found")
        try:
            with open(lp, encoding="utf-8") as f:
                f.readline()
        except (OSError, UnicodeDecodeError) as e:
            need(False, "labels", f"unreadable: {e}")
    for s in names(cfg.schemes, "schemes"):
        need(s in SCHEMES, "schemes", f"unknown scheme {s!r}; known: {SCHEMES}")
    need(str(cfg.launch) in LAUNCH_MODELS, "launch", f"one of {', '.join(LAUNCH_MODELS)}")
    need(str(cfg.fusion) in FUSIONS, "fusion", f"one of {', '.join(FUSIONS)}")
    need(str(cfg.precision) in ("fp32", "tf32", "fp16"), "precision", "fp32, tf32 or fp16")
    need(int(cfg.timed_stride) >= 1, "timed_stride", "must be >= 1")
    need(0.0 <= float(cfg.agreement_floor) <= 1.0, "agreement_floor", "must lie in [0, 1]")
    need(int(cfg.calibration_frames) >= 1, "calibration_frames", "must be >= 1")
    need(int(cfg.tune_evals) >= 1, "tune_evals", "must be >= 1")
    need(cfg.tune_scheme in ("secnn_sw", "secnn_hw"), "tune_scheme", "secnn_sw or secnn_hw")
    need(cfg.tune_baseline in ("dense", "winograd", "fft", "zero_skip", "fast_conv"),
         "tune_baseline", "dense, winograd, fft, fast_conv or zero_skip")
    for spec in names(cfg.tune_methods, "tune_methods"):
        try:
            tune_method(spec)
        except ConfigError as e:
            need(False, "tune_methods", str(e))
    if str(cfg.transfer_streams).strip():
        names(cfg.transfer_streams, "transfer_streams")
    need(int(cfg.transfer_frames) >= 0, "transfer_frames", "must be 0 (= frames) or >= 1")
    need(int(cfg.transfer_window) >= 1, "transfer_window", "must be >= 1")
    for s in names(cfg.studies, "studies"):
        need(s in STUDIES, "studies", f"unknown study {s!r}; known: {STUDIES}")
    return cfg
