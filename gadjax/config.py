"""Frozen, validated, JSON-round-trippable settings: the base of every gadjax config.

Fields are declared with ``option(default, choices=..., ge/gt/le/lt=..., score=...)``;
``Config.__post_init__`` checks each value against its type annotation (bool, int,
finite float, str, tuple, a nested config; ``X | None``) and its ``option`` rules, and
``check()`` adds rules between fields.  Errors are ``ConfigError`` (a ``ValueError``)
naming the field, so a bad value fails where the config is built, before any data is
read or any file written.  This module imports nothing from gadjax.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

class ConfigError(ValueError):
    """A bad configuration value; ``field`` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def option(default, *, choices=None, ge=None, gt=None, le=None, lt=None, score: bool = False, doc: str = ""):
    """A config field with its checks: ``choices`` (allowed values) and bounds."""
    meta = {k: v for k, v in dict(choices=choices, ge=ge, gt=gt, le=le, lt=lt).items() if v is not None}
    return dataclasses.field(default=default, metadata={**meta, "score": score, "doc": doc})


def _allowed(hint) -> tuple[tuple, bool]:
    """(the types a hint admits, whether None is allowed)."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    none_ok = type(None) in args
    return tuple(a for a in args if a is not type(None)), none_ok


def _coerce(name: str, value, hint, meta: dict):
    kinds, none_ok = _allowed(hint)
    if value is None:
        if none_ok:
            return None
        raise ConfigError(name, f"{name} must be set, got None")
    base = kinds[0] if kinds else object
    origin = typing.get_origin(base)
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(name, f"{name} must be True or False, got {value!r}")
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(name, f"{name} must be an integer, got {value!r}")
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"{name} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(name, f"{name} must be a finite number, got {value!r}")
    elif base is str:
        if not isinstance(value, str):
            raise ConfigError(name, f"{name} must be a string, got {value!r}")
    elif origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise ConfigError(name, f"{name} must be a tuple, got {value!r}")
        value = tuple(value)
    elif isinstance(base, type) and dataclasses.is_dataclass(base):
        if isinstance(value, dict):
            value = base.from_dict(value)
        if not isinstance(value, base):
            raise ConfigError(name, f"{name} must be a {base.__name__}, got {type(value).__name__}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(name, f"{name} must be one of {', '.join(map(repr, meta['choices']))}; got {value!r}")
    bounds = [("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
              ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b)]
    failed = [f"{sym} {meta[k]:g}" for k, sym, ok in bounds if k in meta and not ok(value, meta[k])]
    if failed:
        rule = " and ".join(f"{sym} {meta[k]:g}" for k, sym, _ in bounds if k in meta)
        kind = "an integer" if base is int else "a number"
        raise ConfigError(name, f"{name} must be {kind} {rule}, got {value!r}")
    return value


# Step counts a run may raise to continue training from its checkpoints.
CONTINUABLE = ("steps", "encoder_steps")


@dataclasses.dataclass(frozen=True)
class Config:
    """Frozen, validated, JSON-round-trippable settings (see the module docstring)."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name], f.metadata))
        self.check()

    def check(self) -> None:
        """Rules between fields; raise ``ConfigError``."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes):
        """A copy with ``changes`` (validated); an unknown name is a ``ConfigError`` that
        lists the fields this config has."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ConfigError(unknown[0], f"{type(self).__name__} has no field {', '.join(map(repr, unknown))}; "
                                          f"its fields: {', '.join(self.field_names())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: (v.to_dict() if isinstance(v := getattr(self, f.name), Config) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict):
        return cls().replace(**values)

    @classmethod
    def training_fields(cls) -> tuple[str, ...]:
        """Fields that shape the trained model (all but score-only ones and ``steps``,
        which may grow to continue a run)."""
        return tuple(f.name for f in dataclasses.fields(cls)
                     if not f.metadata.get("score") and f.name not in CONTINUABLE)


def json_ready(value: Any):
    """Tuples -> lists recursively, for json.dumps of configs."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [json_ready(v) for v in value]
    return value

