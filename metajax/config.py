"""Frozen, validated configuration dataclasses and the command line generated from them.

Every field is declared with ``option(default, ...)`` stating its allowed range or choices;
``__post_init__`` checks them all and raises a ``ValueError`` naming the field and what is allowed,
before anything compiles or runs.

Example:
  >>> @dataclasses.dataclass(frozen=True)
  ... class Demo(Config):
  ...     lr: float = option(0.1, low=0.0, low_open=True, help="step size")
  >>> Demo(lr=-1.0)
  Traceback (most recent call last):
  ValueError: Demo.lr must be in (0.0, inf), got -1.0
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any, ClassVar, Sequence


def option(default, *, low=None, high=None, low_open=False, choices=None, help=""):
    """A config field with its allowed range (``low``/``high``, inclusive unless open) or choices."""
    meta = {"low": low, "high": high, "low_open": low_open, "choices": choices, "help": help}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _allowed(meta) -> str:
    if meta.get("choices") is not None:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    low = -math.inf if meta.get("low") is None else meta["low"]
    high = math.inf if meta.get("high") is None else meta["high"]
    return f"in {'(' if meta.get('low_open') else '['}{low}, {high}{')' if high == math.inf else ']'}"


def _check(owner: str, f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    name = f"{owner}.{f.name}"
    if meta.get("choices") is not None:
        if value not in meta["choices"]:
            raise ValueError(f"{name} must be {_allowed(meta)}, got {value!r}")
        return
    if isinstance(f.default, str):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        return
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    if isinstance(default, tuple):  # a non-empty tuple of the default's element type
        if not isinstance(value, tuple) or not value:
            raise ValueError(f"{name} must be a non-empty tuple of values {_allowed(meta)}, got {value!r}")
        default = default[0] if default else 0.0
        values = value
    else:
        values = (value,)
    for v in values:
        if isinstance(default, bool) or isinstance(v, bool):
            if not isinstance(v, bool) or not isinstance(default, bool):
                kind = "a bool" if isinstance(default, bool) else f"{_kind(default)} {_allowed(meta)}"
                raise ValueError(f"{name} must be {kind}, got {value!r}")
            continue
        if not isinstance(v, (int, float)) or (isinstance(default, int) and not isinstance(v, int)):
            raise ValueError(f"{name} must be {_kind(default)} {_allowed(meta)}, got {value!r}")
        low, high = meta.get("low"), meta.get("high")
        too_low = low is not None and (v <= low if meta.get("low_open") else v < low)
        if too_low or (high is not None and v > high) or not math.isfinite(v):
            raise ValueError(f"{name} must be {_allowed(meta)}, got {value!r}")


def _kind(default) -> str:
    return "an int" if isinstance(default, int) else "a number"


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: validates every ``option`` field on construction."""

    # fields that do not change what a run computes (evaluation, storage, scheduling): a resumed
    # run is checked against the stored configuration without them
    NOT_IN_RUN_IDENTITY: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.metadata:
                _check(type(self).__name__, f, getattr(self, f.name))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown}; fields: {sorted(names)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fixed)


def add_arguments(parser: argparse.ArgumentParser, config: Config) -> None:
    """Add ``--field-name`` flags for every field of ``config``, defaulting to its values."""
    for f in dataclasses.fields(config):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(config, f.name)
        if isinstance(value, bool):
            allowed = "true or false"
        elif isinstance(value, str) and f.metadata.get("choices") is None:
            allowed = "a non-empty string"
        else:
            allowed = _allowed(f.metadata)
        text = f"{f.metadata.get('help', '')} [{allowed}; default {value!r}]"
        if isinstance(value, bool):
            parser.add_argument(flag, dest=f.name, type=_parse_bool, default=value, help=text)
        elif isinstance(value, tuple):
            kind = type(value[0]) if value else int
            parser.add_argument(flag, dest=f.name, type=kind, nargs="+", default=value, help=text)
        else:
            parser.add_argument(flag, dest=f.name, type=type(value), default=value, help=text)


def from_arguments(config: Config, args: argparse.Namespace) -> Config:
    """The config with every flag of ``args`` that names one of its fields applied (validated)."""
    names = {f.name for f in dataclasses.fields(config)}
    updates = {k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items() if k in names}
    return dataclasses.replace(config, **updates)


def parse_configs(configs: Sequence[Config], argv=None, description="", extra=None):
    """Build a CLI from several configs; returns ``(updated_configs, args)``.

    ``extra(parser)`` may add flags of the experiment itself (e.g. ``--resume``).
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for config in configs:
        add_arguments(parser, config)
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    try:
        updated = [from_arguments(config, args) for config in configs]
    except ValueError as error:
        parser.error(str(error))
    return updated, args


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
