"""Configuration of the studies, as code (``ml_collections.ConfigDict``).

Every field is overridable from the command line: ``--config.frames=8``,
``--config.streams=bikes,pan:astronaut:0.9``. List-valued fields are comma-separated strings
(``--config.taus=0,0.05,0.1``) in the ConfigDict (the flag layer, and what ``config.json``
records); :func:`settings` parses and checks every field once into the typed, frozen
:class:`Settings` the studies read (``s.taus`` is a tuple of floats, ``s.model_frames`` a
mapping).

Defaults are the embedded defaults of ``python -m experiments.reproduce``: EfficientNet-Lite0 on
the bikes clip and the photo sequence, replayed on the H100 and a Pascal-era GTX 1080 Ti, sized to
finish in about 8 minutes on 2 CPU cores.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import ml_collections

from experiments.errors import ConfigError
from experiments.tuning import tune_method
from secnn_jax.predictors import from_spec
from secnn_jax.timing.names import (
    BASELINES,
    DERIVED_BASELINES,
    FUSIONS,
    LAUNCH_MODELS,
    SCHEMES,
    SECNN,
)

#: Baselines the tuner may maximise its speedup over: the replayed baselines and ``fast_conv``
#: (per frame the faster of ``winograd`` and ``fft``;
#: :data:`~secnn_jax.timing.names.DERIVED_BASELINES`).
TUNE_BASELINES: tuple[str, ...] = (*BASELINES, DERIVED_BASELINES[0])

__all__ = [
    "CHANGE_TAUS",
    "COMMAND_FIELDS",
    "COMMON_FIELDS",
    "FIELDS",
    "ConfigError",
    "Field",
    "ILSVRC9",
    "PREDICTORS",
    "Settings",
    "effective",
    "floats",
    "get_config",
    "help_text",
    "model_names",
    "names",
    "peer_frames",
    "read_labels",
    "settings",
    "transfer_frames",
    "validate",
]

#: The nine ILSVRC CNNs of the original study (``--models=ilsvrc9``).
ILSVRC9: tuple[str, ...] = ("alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "inception_v3",
                            "resnet50", "resnet101", "resnet152")

#: Classes of a label (ImageNet's, the zoo classifiers' outputs): 0 .. LABEL_CLASSES - 1.
LABEL_CLASSES = 1000

#: Predictor names the studies know.
PREDICTORS: tuple[str, ...] = ("zero", "last_value", "secnn", "accumulated")


#: Thresholds at which the plain pass counts *changed* input neurons, ``|x_t - x_{t-1}| > tau``
#: (``experiments.cells.RefResult.changed``): 0, then 1, 1.5, 2, 3, 5, 7 per decade from 1e-4
#: to 100, so a threshold a study uses (a global tau, a tuned per-layer one) lies between two
#: of them; ``activated_tau`` must be one of them.
CHANGE_TAUS: tuple[float, ...] = (0.0, *(round(m * 10.0 ** e, 12) for e in range(-4, 2)
                                         for m in (1, 1.5, 2, 3, 5, 7)), 100.0)

STUDIES: tuple[str, ...] = ("sparsity", "prediction", "speedup", "accuracy", "operating_point",
                            "peers", "whatif")


class Field(NamedTuple):
    """One configuration field: its name, default and a one-line meaning (shown by ``--help``)."""

    name: str
    default: Any
    doc: str


#: The one table of configuration fields: defaults and meanings. :func:`get_config` builds the
#: ConfigDict from it and every command's ``--help`` lists the fields it reads from it
#: (:func:`help_text`).
FIELDS: tuple[Field, ...] = (
    Field("models", "efficientnet_lite0,hed_vgg16",
          "comma-separated model names (zoo names or pkg.module:factory), or 'ilsvrc9'"),
    Field("streams", "bikes,photos", "comma-separated stream specs: bikes, photos, "
          "pan:PHOTO[:OVERLAP], zoom:PHOTO[:OVERLAP], video:PATH, images:PATH"),
    Field("frames", 32, "maximum frames per stream of every step (>= 1): a larger "
          "transfer_frames or peer_frames is capped to it, with a warning, and config.json "
          "records the value used under 'effective'"),
    Field("resolution", 0, "0 = each model's own input size; N = frames resized to N x N"),
    Field("model_frames", "hed_vgg16=16",
          "per-model frame caps, name=frames comma-separated (the smaller of this and frames)"),
    Field("model_resolution", "hed_vgg16=128",
          "per-model input sizes, name=size comma-separated (overrides resolution)"),
    Field("chunk_size", 8, "frames per compiled scan and per cached, resumable chunk"),
    Field("predictors", "zero,secnn,secnn(silence=0.75,decay=0.5)",
          "predictors compared in the prediction study (names or full specs)"),
    Field("silence", 0.5, "the secnn predictor's silence parameter, in [0, 1]"),
    Field("decay", 0.5, "the secnn predictor's decay parameter, in [0, 1)"),
    Field("prediction_taus", "0", "thresholds of the prediction study (comma-separated, >= 0)"),
    Field("taus", "0,0.02,0.1", "global thresholds of the accuracy sweep (0 always included)"),
    Field("gpus", "h100,gtx1080ti",
          "GPU configurations of the timing replay, each one timed (the first: the tuner's "
          "objective)"),
    Field("schemes", ",".join(SCHEMES), "execution schemes replayed (comma-separated)"),
    Field("launch", "persistent",
          f"launch model of the headline comparisons: {', '.join(LAUNCH_MODELS)}"),
    Field("fusion", "epilogue", f"fusion policy of every replayed scheme: {', '.join(FUSIONS)}"),
    Field("precision", "fp32", "precision of the replay: fp32, tf32 or fp16"),
    Field("timed_stride", 1, "replay every timed_stride-th chunk only (1 = every frame)"),
    Field("agreement_floor", 0.95, "floor on each model's declared metric (tuner and "
          "held-out verdicts), in [0, 1]"),
    Field("calibration_frames", 16, "frames of tune_stream the tuner may look at (the rest are "
          "held out): a multiple of chunk_size (anything else is refused, naming the nearest "
          "valid value); a model with fewer frames calibrates on fewer, whole chunks, leaving "
          "held-out frames where it can, with a warning, and config.json records the value "
          "used per model under 'effective'"),
    Field("tune_stream", "bikes", "the stream the threshold tuner calibrates on (one of "
          "streams), or '' for no tuning"),
    Field("tune_evals", 4, "maximum tuner evaluations (each one SE-CNN run)"),
    Field("tune_scheme", "secnn_hw", "scheme whose speedup the tuner maximises: "
          f"{' or '.join(SECNN)}"),
    Field("tune_baseline", "dense", f"the tuner's baseline: {', '.join(TUNE_BASELINES)}"),
    Field("tune_methods", "mean,worst_window(windows=4,backoff=0.25)", "tuning methods: "
          "mean, worst_window(windows=4), mean_std(windows=4,k=1); each takes margin=, backoff="),
    Field("transfer_streams", "bigbuckbunny,carphone_pristine",
          "other clips the tuned thresholds are evaluated on ('' = none)"),
    Field("transfer_frames", 24, "frames of each stream in the transfer evaluation "
          "(0 = frames; at most frames)"),
    Field("transfer_window", 8, "frames per held-out window in the transfer evaluation"),
    Field("labels", "", "optional CSV with header stream,frame,label (a stream name, a frame "
          "index, an ImageNet class index 0-999) for the accuracy study's top-1 accuracy; "
          "checked, row by row, before any model loads"),
    Field("op_tune_method", "mean", "tuning method of the operating-point study: every method "
          "is tuned with it to agreement_floor (a tune_methods spec)"),
    Field("op_methods", "all", "methods of the operating-point study, comma-separated ('all': "
          "every one of experiments.operating_point.METHODS; its commands' --help lists them)"),
    Field("peer_taus", "0,0.02,0.1", "global thresholds of the peers study (SE-CNN, DeltaCNN, "
          "CBinfer)"),
    Field("peer_frames", 16, "frames per stream of the peers study (first half chooses tau, "
          "second half evaluates; >= 2; at most frames)"),
    Field("activated_tau", 0.05, "the sparsity study's fixed threshold for 'activated' read as "
          "'changed since the previous frame' (|x_t - x_t-1| > tau; one of "
          "experiments.config.CHANGE_TAUS)"),
    Field("studies", ",".join(STUDIES), "which studies reproduce runs"),
    Field("whatif_firing", "0.02,0.05,0.1,0.2,0.5", "what-if study: firing rates of the grid "
          "(share of non-zero inputs; comma-separated, each in [0, 1])"),
    Field("whatif_hits", "0.5,0.8,0.95,1", "what-if study: value-hit rates of the grid (share "
          "of firing inputs predicted exactly; comma-separated, each in [0, 1])"),
    Field("whatif_zero_miss", 0.0, "what-if study: share of the missed firing inputs predicted "
          "zero (ZN; the rest are value misses, VM), in [0, 1]"),
    Field("whatif_seed", 0, "what-if study: seed of the synthetic event maps"),
)

#: What every study reads through ``cli.setup`` (models, streams, the replay timer).
COMMON_FIELDS: tuple[str, ...] = ("models", "streams", "frames", "resolution", "model_frames",
                                  "model_resolution", "chunk_size", "gpus", "schemes",
                                  "precision", "fusion")


_SECNN = ("silence", "decay")
#: The configuration fields each command reads (``reproduce``: all of them), listed by its
#: ``--help``.
COMMAND_FIELDS: dict[str, tuple[str, ...]] = {
    "sparsity": (*COMMON_FIELDS, "activated_tau"),
    "prediction": (*COMMON_FIELDS, "predictors", *_SECNN, "prediction_taus"),
    "speedup": (*COMMON_FIELDS, "launch", *_SECNN),
    "accuracy": (*COMMON_FIELDS, *_SECNN, "taus", "agreement_floor", "calibration_frames",
                 "tune_stream", "tune_evals", "tune_scheme", "tune_baseline", "tune_methods",
                 "transfer_streams", "transfer_frames", "transfer_window", "labels"),
    "peers": (*COMMON_FIELDS, *_SECNN, "launch", "agreement_floor", "peer_taus", "peer_frames"),
    "operating_point": (*COMMON_FIELDS, *_SECNN, "launch", "agreement_floor",
                        "calibration_frames", "tune_stream", "tune_evals", "tune_baseline",
                        "op_tune_method", "op_methods", "transfer_streams", "transfer_frames"),
    "energy": (*COMMON_FIELDS, *_SECNN, "launch"),
    "whatif": ("models", "resolution", "model_resolution", "gpus", "precision", "launch",
               "fusion", "whatif_firing", "whatif_hits", "whatif_zero_miss", "whatif_seed"),
    "reproduce": tuple(f.name for f in FIELDS),
}

def get_config() -> ml_collections.ConfigDict:
    """The default configuration (``reproduce``'s embedded defaults), built from :data:`FIELDS`.

    The defaults run EfficientNet-Lite0 (224, 32 bikes frames + 8 photos) and HED's VGG-16
    (128 x 128, 16 bikes frames + 8 photos: ~40x Lite0's MACs per pixel) through every study in
    about 8 minutes on 2 CPU cores; ``craft_vgg16_bn`` is one flag away
    (``--models=efficientnet_lite0,craft_vgg16_bn --config.model_resolution=craft_vgg16_bn=128
    --config.model_frames=craft_vgg16_bn=16``). Each field's meaning is in :data:`FIELDS`.
    """
    c = ml_collections.ConfigDict()
    for f in FIELDS:
        c[f.name] = f.default
    return c


def help_text(fields: Sequence[str] | None = None,
              choices: Mapping[str, Sequence[str]] | None = None) -> str:
    """The ``--help`` lines of the ``fields`` a command reads (default: all), from
    :data:`FIELDS`: ``--config.NAME (default: VALUE): meaning``, one per field; a field in
    ``choices`` ends with ``; one of: ...`` (names a layer above this module knows, such as
    ``op_methods``: :data:`experiments.operating_point.METHODS`, given by the command)."""
    table = {f.name: f for f in FIELDS}
    wanted = [f.name for f in FIELDS] if fields is None else list(fields)
    unknown = [n for n in wanted if n not in table]
    if unknown:
        raise ConfigError(f"no such config fields: {unknown}")
    known = dict(choices or {})
    return "\n".join(f"  --config.{n} (default: {table[n].default!r}): {table[n].doc}"
                     + (f"; one of: {', '.join(known[n])}" if n in known else "")
                     for n in wanted)


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


def _nearest_multiple(value: int, step: int) -> str:
    """The multiple(s) of ``step`` (at least ``step``) nearest ``value``: ``"8"`` or, on a tie,
    ``"8 or 16"``."""
    lo = max(step, (value // step) * step)
    hi = lo + step
    if value - lo < hi - value or value <= step:
        return str(lo)
    return str(hi) if hi - value < value - lo else f"{lo} or {hi}"


def effective(cfg: ml_collections.ConfigDict | Settings) -> dict[str, int]:
    """:attr:`Settings.effective` of ``cfg`` (a ConfigDict is parsed and checked first)."""
    return settings(cfg).effective


def transfer_frames(cfg: ml_collections.ConfigDict | Settings) -> int:
    """:attr:`Settings.transfer_frames_used` of ``cfg`` (a ConfigDict is parsed first)."""
    return settings(cfg).transfer_frames_used


def peer_frames(cfg: ml_collections.ConfigDict | Settings) -> int:
    """:attr:`Settings.peer_frames_used` of ``cfg`` (a ConfigDict is parsed first)."""
    return settings(cfg).peer_frames_used


LABEL_COLUMNS = ("stream", "frame", "label")


def read_labels(path: str | os.PathLike[str], *, streams: Collection[str] | None = None
                ) -> dict[tuple[str, int], int]:
    """The rows of a labels file (``--config.labels``): ``{(stream, frame): class}``.

    The file is a CSV with the header ``stream,frame,label`` (in any column order; other
    columns are ignored) and one row per labelled frame: a stream name (one of ``streams``,
    when given), a frame index >= 0 and an ImageNet class index in ``[0, LABEL_CLASSES)``.
    Blank lines are skipped.

    Raises:
      ConfigError: one line naming the file (and the line) for a missing or unreadable file, a
        missing header column, an empty cell, a stream not among ``streams``, a non-integer or
        out-of-range frame or class, or a frame labelled twice.
    """
    where = f"config.labels: {os.fspath(path)}"
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(enumerate(csv.reader(f), start=1))
    except FileNotFoundError as e:
        raise ConfigError(f"{where}: no such file") from e
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{where}: unreadable ({type(e).__name__}: {e})") from e
    rows = [(n, r) for n, r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ConfigError(f"{where}: empty; expected the header {','.join(LABEL_COLUMNS)}")
    line, header = rows[0]
    cols = [c.strip().lower() for c in header]
    missing = [c for c in LABEL_COLUMNS if c not in cols]
    if missing:
        raise ConfigError(f"{where} line {line}: header {','.join(header)!r} lacks "
                          f"{', '.join(missing)}; expected {','.join(LABEL_COLUMNS)}")
    at = {c: cols.index(c) for c in LABEL_COLUMNS}
    out: dict[tuple[str, int], int] = {}
    for line, row in rows[1:]:
        cells = {c: (row[i].strip() if i < len(row) else "") for c, i in at.items()}
        for c, v in cells.items():
            if not v:
                raise ConfigError(f"{where} line {line}: no {c} (expected stream,frame,label)")
        try:
            frame, label = int(cells["frame"]), int(cells["label"])
        except ValueError as e:
            raise ConfigError(f"{where} line {line}: frame {cells['frame']!r} and label "
                              f"{cells['label']!r} must be integers") from e
        if streams is not None and cells["stream"] not in streams:
            raise ConfigError(f"{where} line {line}: stream {cells['stream']!r} is not among "
                              f"this run's streams {sorted(streams)}")
        if frame < 0:
            raise ConfigError(f"{where} line {line}: frame {frame} must be >= 0")
        if not 0 <= label < LABEL_CLASSES:
            raise ConfigError(f"{where} line {line}: label {label} is not a class index in "
                              f"[0, {LABEL_CLASSES})")
        key = (cells["stream"], frame)
        if key in out:
            raise ConfigError(f"{where} line {line}: frame {frame} of stream "
                              f"{cells['stream']!r} is labelled twice")
        out[key] = label
    return out



@dataclasses.dataclass(frozen=True)
class Settings:
    """The configuration parsed and checked once (:func:`settings`): one typed attribute per
    field of :data:`FIELDS`, in its order. The comma-separated ConfigDict fields are tuples
    (names stripped; thresholds and rates sorted, unique), the per-model fields mappings;
    ``models`` has ``ilsvrc9`` expanded, ``transfer_streams`` is ``()`` for none and
    ``tune_stream``/``labels`` are stripped (``''``: none). ``transfer_frames`` and
    ``peer_frames`` are the values asked for; :attr:`transfer_frames_used`,
    :attr:`peer_frames_used` and :attr:`effective` are the values a run uses.

    Studies read these attributes; the ConfigDict stays the flag layer and what ``config.json``
    records (:meth:`to_dict`: the values as asked, not compared by ``==``).
    """

    models: tuple[str, ...]
    streams: tuple[str, ...]
    frames: int
    resolution: int
    model_frames: Mapping[str, int]
    model_resolution: Mapping[str, int]
    chunk_size: int
    predictors: tuple[str, ...]
    silence: float
    decay: float
    prediction_taus: tuple[float, ...]
    taus: tuple[float, ...]
    gpus: tuple[str, ...]
    schemes: tuple[str, ...]
    launch: str
    fusion: str
    precision: str
    timed_stride: int
    agreement_floor: float
    calibration_frames: int
    tune_stream: str
    tune_evals: int
    tune_scheme: str
    tune_baseline: str
    tune_methods: tuple[str, ...]
    transfer_streams: tuple[str, ...]
    transfer_frames: int
    transfer_window: int
    labels: str
    op_tune_method: str
    op_methods: tuple[str, ...]
    peer_taus: tuple[float, ...]
    peer_frames: int
    activated_tau: float
    studies: tuple[str, ...]
    whatif_firing: tuple[float, ...]
    whatif_hits: tuple[float, ...]
    whatif_zero_miss: float
    whatif_seed: int
    asked: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False,
                                                 repr=False)

    @property
    def transfer_frames_used(self) -> int:
        """Frames per stream of the transfer evaluation: ``transfer_frames`` (0: ``frames``),
        at most ``frames``."""
        return min(self.transfer_frames or self.frames, self.frames)

    @property
    def peer_frames_used(self) -> int:
        """Frames per stream of the peers study: ``peer_frames``, at most ``frames``."""
        return min(self.peer_frames, self.frames)

    @property
    def effective(self) -> dict[str, int]:
        """The fields whose value a run uses differs from the one asked for, capped by
        ``frames`` (which caps every step's frames): ``{field: value used}``, empty when every
        request is kept. ``transfer_frames`` (0 = ``frames``) and ``peer_frames`` are capped at
        ``frames``; :func:`experiments.cli.setup` logs a warning for each and records them in
        ``config.json`` under ``"effective"``."""
        out: dict[str, int] = {}
        if self.transfer_frames > self.frames:
            out["transfer_frames"] = self.frames
        if self.peer_frames > self.frames:
            out["peer_frames"] = self.frames
        return out

    def to_dict(self) -> dict[str, Any]:
        """The configuration as asked for (the ConfigDict's ``to_dict()`` this was parsed
        from): what ``config.json`` and the reports record."""
        return dict(self.asked)

    def to_config(self) -> ml_collections.ConfigDict:
        """A ConfigDict whose fields are these parsed values formatted back (lists
        comma-separated, mappings ``name=value``); :func:`settings` of it equals ``self``."""
        c = get_config()
        for f in FIELDS:
            v = getattr(self, f.name)
            if isinstance(v, Mapping):
                v = ",".join(f"{k}={n}" for k, n in v.items())
            elif isinstance(v, tuple):
                v = ",".join(map(str, v))
            c[f.name] = v
        return c


def _number(raw: Mapping[str, Any], field: str, kind: type) -> Any:
    """``raw[field]`` as an ``int`` or ``float`` (:class:`ConfigError` naming the field)."""
    value, what = raw[field], "an integer" if kind is int else "a number"
    if isinstance(value, bool) or (kind is int and isinstance(value, float)
                                   and not value.is_integer()):
        raise ConfigError(f"config.{field}={value!r}: not {what}")
    try:
        return kind(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.{field}={value!r}: not {what}") from e


def settings(cfg: ml_collections.ConfigDict | Mapping[str, Any] | Settings) -> Settings:
    """Parses and checks every field of ``cfg`` once: the one way from the flag layer's
    ConfigDict to the typed :class:`Settings` the studies read (a :class:`Settings` is returned
    as it is).

    Raises:
      ConfigError: one line naming the first bad (or missing) field.
    """
    if isinstance(cfg, Settings):
        return cfg
    raw = cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else dict(cfg)
    missing = [f.name for f in FIELDS if f.name not in raw]
    if missing:
        raise ConfigError(f"config: no fields {', '.join(missing)}")

    def need(cond: bool, field: str, msg: str) -> None:
        if not cond:
            raise ConfigError(f"config.{field}={raw.get(field)!r}: {msg}")

    def num(field: str) -> int:
        return _number(raw, field, int)

    def real(field: str) -> float:
        return _number(raw, field, float)

    models = model_names(raw["models"])
    streams = names(raw["streams"], "streams")
    need(num("frames") >= 1, "frames", "must be >= 1")
    need(num("resolution") >= 0, "resolution", "must be 0 (native) or a positive size")
    per: dict[str, dict[str, int]] = {}
    for field in ("model_frames", "model_resolution"):
        per[field] = per_model(raw[field], field)
        for name in per[field]:
            if name not in models:
                import models as zoo  # noqa: PLC0415  (the zoo only for a per-model value)

                need(name in zoo.available(), field,
                     f"unknown model {name!r}; known: {', '.join(zoo.available())}")
    need(num("chunk_size") >= 1, "chunk_size", "must be >= 1")
    predictors = names(raw["predictors"], "predictors")
    for p in predictors:
        try:
            from_spec(p)
        except ValueError as e:
            need(False, "predictors", f"{e}; a bare 'secnn' takes config.silence/decay")
    need(0.0 <= real("silence") <= 1.0, "silence", "must lie in [0, 1]")
    need(0.0 <= real("decay") < 1.0, "decay", "must lie in [0, 1)")
    taus = {f: floats(raw[f], f) for f in ("prediction_taus", "taus", "peer_taus")}
    need(real("activated_tau") in CHANGE_TAUS, "activated_tau",
         "must be one of the thresholds the plain pass counts changes at "
         "(experiments.config.CHANGE_TAUS: 0, then 1, 1.5, 2, 3, 5, 7 x 10^k, 1e-4 to 100)")
    need(num("peer_frames") >= 2, "peer_frames", "must be >= 2")
    from secnn_jax.timing.gpus import GPUS, get_gpu  # noqa: PLC0415

    gpus = names(raw["gpus"], "gpus")
    for g in gpus:
        try:
            get_gpu(g)
        except ValueError:
            need(False, "gpus", f"unknown GPU {g!r}; known: {', '.join(GPUS)}")
    labels = str(raw["labels"]).strip()
    if labels:
        read_labels(labels)  # the whole file, row by row
    schemes = names(raw["schemes"], "schemes")
    for s in schemes:
        need(s in SCHEMES, "schemes", f"unknown scheme {s!r}; known: {SCHEMES}")
    need(str(raw["launch"]) in LAUNCH_MODELS, "launch", f"one of {', '.join(LAUNCH_MODELS)}")
    need(str(raw["fusion"]) in FUSIONS, "fusion", f"one of {', '.join(FUSIONS)}")
    need(str(raw["precision"]) in ("fp32", "tf32", "fp16"), "precision", "fp32, tf32 or fp16")
    need(num("timed_stride") >= 1, "timed_stride", "must be >= 1")
    need(0.0 <= real("agreement_floor") <= 1.0, "agreement_floor", "must lie in [0, 1]")
    need(num("calibration_frames") >= 1, "calibration_frames", "must be >= 1")
    cs, calib = num("chunk_size"), num("calibration_frames")
    if calib % cs:
        need(False, "calibration_frames",
             f"the tuner calibrates on whole chunks of config.chunk_size={cs} frames; nearest "
             f"valid value: {_nearest_multiple(calib, cs)}")
    need(num("tune_evals") >= 1, "tune_evals", "must be >= 1")
    need(raw["tune_scheme"] in SECNN, "tune_scheme", " or ".join(SECNN))
    need(raw["tune_baseline"] in TUNE_BASELINES, "tune_baseline", ", ".join(TUNE_BASELINES))
    tune_methods = names(raw["tune_methods"], "tune_methods")
    for spec in tune_methods:
        try:
            tune_method(spec)
        except ConfigError as e:
            need(False, "tune_methods", str(e))
    try:
        tune_method(str(raw["op_tune_method"]))
    except ConfigError as e:
        need(False, "op_tune_method", str(e))
    transfer = (names(raw["transfer_streams"], "transfer_streams")
                if str(raw["transfer_streams"]).strip() else ())
    need(num("transfer_frames") >= 0, "transfer_frames", "must be 0 (= frames) or >= 1")
    need(num("transfer_window") >= 1, "transfer_window", "must be >= 1")
    rates = {f: floats(raw[f], f) for f in ("whatif_firing", "whatif_hits")}
    for field, values in rates.items():
        need(max(values) <= 1.0, field, "rates must lie in [0, 1]")
    need(0.0 <= real("whatif_zero_miss") <= 1.0, "whatif_zero_miss", "must lie in [0, 1]")
    studies = names(raw["studies"], "studies")
    for s in studies:
        need(s in STUDIES, "studies", f"unknown study {s!r}; known: {STUDIES}")
    return Settings(
        models=models, streams=streams, frames=num("frames"), resolution=num("resolution"),
        model_frames=per["model_frames"], model_resolution=per["model_resolution"],
        chunk_size=cs, predictors=predictors, silence=real("silence"), decay=real("decay"),
        prediction_taus=taus["prediction_taus"], taus=taus["taus"], gpus=gpus,
        schemes=schemes, launch=str(raw["launch"]), fusion=str(raw["fusion"]),
        precision=str(raw["precision"]), timed_stride=num("timed_stride"),
        agreement_floor=real("agreement_floor"), calibration_frames=calib,
        tune_stream=str(raw["tune_stream"]).strip(), tune_evals=num("tune_evals"),
        tune_scheme=str(raw["tune_scheme"]), tune_baseline=str(raw["tune_baseline"]),
        tune_methods=tune_methods, transfer_streams=transfer,
        transfer_frames=num("transfer_frames"), transfer_window=num("transfer_window"),
        labels=labels, op_tune_method=str(raw["op_tune_method"]),
        op_methods=names(raw["op_methods"], "op_methods"), peer_taus=taus["peer_taus"],
        peer_frames=num("peer_frames"), activated_tau=real("activated_tau"), studies=studies,
        whatif_firing=rates["whatif_firing"], whatif_hits=rates["whatif_hits"],
        whatif_zero_miss=real("whatif_zero_miss"), whatif_seed=num("whatif_seed"),
        asked=raw)


def validate(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Checks every field (:func:`settings`); returns ``cfg`` itself, or raises
    :class:`ConfigError` naming the first bad one."""
    settings(cfg)
    return cfg
