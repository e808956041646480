"""The config machinery: every field validated at construction with a message naming
it, routing with replace, --lr semantics, JSON round trips, and every registered
detector's config following the conventions."""
import dataclasses
import json
import math

import pytest

from gadjax.models import DETECTORS
from gadjax.models.config import ConfigError, DetectorConfig, option
from gadjax.models.ganomaly import GANomalyConfig


@dataclasses.dataclass(frozen=True)
class _Two(DetectorConfig):
    learning_rate: float = option(1e-3, gt=0)
    d_learning_rate: float | None = option(0.1, gt=0)
    lam: float = option(0.5, ge=0, le=1, score=True)
    mode: str = option("a", choices=("a", "b"))
    flag: bool = option(False)


@pytest.mark.parametrize("changes, words", [
    ({"steps": 0}, "steps must be an integer >= 1, got 0"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"steps": True}, "steps must be an integer"),
    ({"learning_rate": math.nan}, "learning_rate must be a finite number"),
    ({"learning_rate": -1.0}, "learning_rate must be a number > 0"),
    ({"lam": "abc"}, "lam must be a number, got 'abc'"),
    ({"lam": 1.5}, "lam must be a number >= 0 and <= 1, got 1.5"),
    ({"mode": "c"}, "mode must be one of 'a', 'b'"),
    ({"flag": 1}, "flag must be True or False"),
    ({"threshold_percentile": 150}, "threshold_percentile must be a number >= 0 and <= 100"),
    ({"net": "lstm"}, "net must be one of"),
    ({"nope": 1}, "has no field 'nope'; its fields: steps"),
])
def test_bad_values_fail_at_construction_naming_the_field(changes, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
        _Two().replace(**changes)
    assert err.value.field == next(iter(changes))


def test_values_are_normalised_and_configs_round_trip_through_json():
    cfg = _Two(steps=10.0, learning_rate=1)
    assert cfg.steps == 10 and isinstance(cfg.steps, int) and isinstance(cfg.learning_rate, float)
    again = _Two.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and hash(again) == hash(cfg)  # hashable: a static jit argument


def test_lr_sets_every_optimiser_and_part_rates_follow_it():
    cfg = _Two()
    assert cfg.rate(None, 9.0) == 1e-3 and cfg.rate("d", 9.0) == 0.1  # paper defaults
    everything = cfg.with_learning_rate(3e-4)
    assert everything.rate(None, 9.0) == everything.rate("d", 9.0) == 3e-4
    assert everything.replace(d_learning_rate=0.5).rate("d", 9.0) == 0.5  # an explicit part rate wins


def test_score_only_fields_and_steps_are_not_part_of_the_trained_model():
    fields = _Two.training_fields()
    assert "lam" not in fields and "threshold_percentile" not in fields and "steps" not in fields
    assert {"learning_rate", "d_learning_rate", "mode", "width", "seed", "batch_size"} <= set(fields)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_config_follows_the_conventions(name):
    cls = DETECTORS[name]
    cfg = cls.config_class()
    assert cls.name == name
    for common in ("steps", "batch_size", "seed", "learning_rate", "width", "threshold_percentile"):
        assert hasattr(cfg, common), (name, common)
    assert cls.config_class.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError):
        cfg.replace(steps=-1)
    with pytest.raises(ValueError):
        cfg.replace(no_such_setting=1)
    # Keyword fields build the same detector as a config.
    assert cls(steps=7).config == cls(cfg.replace(steps=7)).config


def test_detector_takes_fields_as_keywords_and_checks_its_run_options():
    from gadjax.models import GANomaly
    assert GANomaly(w_con=10).config == GANomalyConfig(w_con=10.0)
    with pytest.raises(ValueError, match="log_every"):
        GANomaly(log_every=0)
    with pytest.raises(TypeError, match="GANomalyConfig"):
        GANomaly(_Two())
