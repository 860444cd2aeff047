"""The config's choices come from the one vocabulary in ``secnn_jax.timing.names``."""

from __future__ import annotations

import pytest

from experiments import config as config_lib
from experiments.errors import ConfigError
from secnn_jax.timing import names


@pytest.mark.parametrize("baseline", [*names.BASELINES, "fast_conv"])
def test_every_replayed_baseline_and_fast_conv_is_a_tuning_baseline(baseline):
    cfg = config_lib.get_config()
    cfg.tune_baseline = baseline
    config_lib.validate(cfg)


@pytest.mark.parametrize("field, value", [("tune_baseline", "strongest"),
                                          ("tune_baseline", "secnn_hw"),
                                          ("tune_scheme", "dense"),
                                          ("tune_scheme", "deltacnn")])
def test_other_names_are_refused_with_the_choices_listed(field, value):
    cfg = config_lib.get_config()
    setattr(cfg, field, value)
    with pytest.raises(ConfigError, match=field) as e:
        config_lib.validate(cfg)
    choices = config_lib.TUNE_BASELINES if field == "tune_baseline" else names.SECNN
    assert all(c in str(e.value) for c in choices)
    assert "\n" not in str(e.value)


def test_help_lists_the_same_choices():
    text = config_lib.help_text(["tune_scheme", "tune_baseline"])
    assert all(b in text for b in config_lib.TUNE_BASELINES)
    assert all(s in text for s in names.SECNN)
