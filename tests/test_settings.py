"""The typed settings (:class:`experiments.config.Settings`): every configuration field parsed
and checked once, at the flag boundary (:func:`experiments.config.settings`).

Property: a Settings built from a ConfigDict's comma-separated strings, formatted back
(:meth:`~experiments.config.Settings.to_config`) and parsed again, is the same Settings; the
parsed values agree with references computed here from the generated values (thresholds sorted
and unique, names stripped, per-model values a mapping); a bad value raises ``ConfigError``
naming its field. No model loads: the checks need only the name tables.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import config
from experiments.errors import ConfigError

#: Plain names: no comma, parenthesis, '=' or surrounding whitespace.
NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1,
               max_size=8).filter(lambda n: n != "ilsvrc9")  # ilsvrc9 expands
#: A non-negative, finite threshold as the flag gives it: repr or %g, maybe padded.
TAU = st.floats(min_value=0.0, max_value=1e3, allow_nan=False, allow_infinity=False)
RATE = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def _fmt(x: float, how: int) -> str:
    return (repr(x), f"{x:g}", f" {x!r} ")[how]


def _joined(values: list[float], hows: list[int]) -> tuple[str, tuple[float, ...]]:
    """The flag text of ``values`` and the thresholds it means (sorted, unique), computed from
    the text's own numbers (``%g`` rounds)."""
    parts = [_fmt(v, hows[i % len(hows)]) for i, v in enumerate(values)]
    return ",".join(parts), tuple(sorted({float(p) for p in parts}))


@st.composite
def configs(draw: Any) -> tuple[Any, dict[str, Any]]:
    """A valid ConfigDict with generated list fields, and what each of them must parse to."""
    cfg = config.get_config()
    want: dict[str, Any] = {}
    hows = draw(st.lists(st.integers(0, 2), min_size=1, max_size=3))
    models = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    cfg.models = " , ".join(models) if draw(st.booleans()) else ",".join(models)
    want["models"] = tuple(models)
    streams = draw(st.lists(NAME, min_size=1, max_size=3))
    cfg.streams = ",".join(f" {s}" for s in streams)
    want["streams"] = tuple(streams)
    for field in ("model_frames", "model_resolution"):
        table = draw(st.dictionaries(st.sampled_from(models), st.integers(1, 4096), max_size=3))
        cfg[field] = ",".join(f"{k}={v}" for k, v in table.items())
        want[field] = table
    for field in ("taus", "peer_taus", "prediction_taus"):
        cfg[field], want[field] = _joined(draw(st.lists(TAU, min_size=1, max_size=5)), hows)
    for field in ("whatif_firing", "whatif_hits"):
        cfg[field], want[field] = _joined(draw(st.lists(RATE, min_size=1, max_size=5)), [0])
    transfer = draw(st.lists(NAME, max_size=3))
    cfg.transfer_streams = ",".join(transfer)
    want["transfer_streams"] = tuple(transfer)
    gpus = draw(st.lists(st.sampled_from(["h100", "gtx1080ti"]), min_size=1, max_size=2,
                         unique=True))
    cfg.gpus = ",".join(gpus)
    want["gpus"] = tuple(gpus)
    cfg.frames = draw(st.integers(1, 64))
    cfg.transfer_frames = draw(st.integers(0, 80))
    cfg.peer_frames = draw(st.integers(2, 80))
    cfg.tune_stream = draw(st.sampled_from(["", " bikes ", "photos"]))
    want["tune_stream"] = cfg.tune_stream.strip()
    return cfg, want


@settings(max_examples=25, deadline=None)
@given(configs())
def test_settings_round_trip_through_their_formatted_strings(case: Any) -> None:
    cfg, want = case
    s = config.settings(cfg)
    for field, value in want.items():
        got = getattr(s, field)
        assert (dict(got) if field.startswith("model_") else got) == value, field
    again = config.settings(s.to_config())
    assert again == s
    assert config.settings(s) is s  # parsed once: a Settings passes through
    # The values a run uses: frames caps the transfer evaluation (0: frames) and the peers.
    frames = cfg.frames
    used_transfer = min(cfg.transfer_frames or frames, frames)
    assert s.transfer_frames_used == used_transfer
    assert s.peer_frames_used == min(cfg.peer_frames, frames)
    assert s.effective == {k: frames for k in ("transfer_frames", "peer_frames")
                           if cfg[k] > frames}
    # What config.json records is the ConfigDict as asked, not the parsed values.
    assert s.to_dict() == cfg.to_dict()


def test_settings_has_one_typed_attribute_per_field() -> None:
    names = [f.name for f in dataclasses.fields(config.Settings) if f.compare]
    assert names == [f.name for f in config.FIELDS]
    s = config.settings(config.get_config())
    assert s.taus == (0.0, 0.02, 0.1) and s.model_frames == {"hed_vgg16": 16}
    assert s.predictors == ("zero", "secnn", "secnn(silence=0.75,decay=0.5)")
    assert s.transfer_streams == ("bigbuckbunny", "carphone_pristine")
    cfg = config.get_config()
    cfg.models = "ilsvrc9,vgg16"
    assert config.settings(cfg).models == config.ILSVRC9  # expanded, each once


@pytest.mark.parametrize("field,value,message", [
    ("taus", "0,x", "config.taus: 'x' is not a number"),
    ("peer_taus", "0,-0.5", "config.peer_taus: '-0.5' must be finite and >= 0"),
    ("prediction_taus", "inf", "config.prediction_taus: 'inf' must be finite"),
    ("streams", " , ", "config.streams: expected at least one name"),
    ("model_frames", "efficientnet_lite0", "config.model_frames: 'efficientnet_lite0' is not "
     "name=integer"),
    ("model_resolution", "efficientnet_lite0=x", "config.model_resolution: "
     "'efficientnet_lite0=x': 'x' is not an integer"),
    ("model_frames", "hed_vgg16=0", "config.model_frames: 'hed_vgg16=0' must be >= 1"),
    ("model_frames", "hed_vgg16=2,hed_vgg16=3", "config.model_frames: 'hed_vgg16' is given "
     "twice"),
    ("gpus", "h100,voodoo2", "config.gpus='h100,voodoo2': unknown GPU 'voodoo2'"),
    ("schemes", "dense,nosuch", "config.schemes='dense,nosuch': unknown scheme 'nosuch'"),
    ("studies", "nosuch", "config.studies='nosuch': unknown study 'nosuch'"),
    ("whatif_hits", "0.5,1.5", "config.whatif_hits='0.5,1.5': rates must lie in [0, 1]"),
    ("tune_methods", "mean,nosuch", "config.tune_methods='mean,nosuch'"),
    ("predictors", "zero,nosuch", "config.predictors='zero,nosuch'"),
    ("calibration_frames", 12, "config.calibration_frames=12: the tuner calibrates on whole "
     "chunks of config.chunk_size=8 frames; nearest valid value: 8 or 16"),
    ("peer_frames", 1, "config.peer_frames=1: must be >= 2"),
    ("activated_tau", 0.04, "config.activated_tau=0.04: must be one of the thresholds"),
])
def test_a_bad_value_is_refused_naming_its_field(field: str, value: Any, message: str) -> None:
    cfg = config.get_config()
    cfg[field] = value
    with pytest.raises(ConfigError) as e:
        config.settings(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


@settings(max_examples=15, deadline=None)
@given(st.lists(TAU, min_size=1, max_size=4), st.floats(max_value=-1e-9, min_value=-1e6),
       st.sampled_from(["taus", "peer_taus", "prediction_taus"]))
def test_a_negative_threshold_anywhere_is_refused(good: list[float], bad: float,
                                                  field: str) -> None:
    cfg = config.get_config()
    at = len(good) // 2
    cfg[field] = ",".join(map(repr, [*good[:at], bad, *good[at:]]))
    with pytest.raises(ConfigError, match=rf"^config\.{field}: {re.escape(repr(repr(bad)))} "
                       "must be finite"):
        config.settings(cfg)


def test_a_missing_or_mistyped_field_is_refused_naming_it() -> None:
    raw = config.get_config().to_dict()
    del raw["taus"]
    with pytest.raises(ConfigError, match="config: no fields taus"):
        config.settings(raw)
    raw = {**config.get_config().to_dict(), "frames": "many"}
    with pytest.raises(ConfigError, match="config.frames='many': not an integer"):
        config.settings(raw)



def test_help_lists_the_choices_a_command_gives() -> None:
    """``op_methods``'s choices come from the study's own table (config.py cannot import it;
    the command passes them to ``cli.run``); without them the help names where they live."""
    from experiments.operating_point import METHODS

    names = ("all", *(m.name for m in METHODS))
    line = config.help_text(["op_methods", "taus"], {"op_methods": names}).splitlines()[0]
    assert line.partition("; one of: ")[2].split(", ") == list(names)
    plain = config.help_text(["op_methods"])
    assert "experiments.operating_point.METHODS" in plain and "; one of:" not in plain
    assert "deltacnn" not in plain  # no hand-written copy of the list
