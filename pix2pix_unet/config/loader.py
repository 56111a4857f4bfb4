"""Configs in and out: YAML files and ``dotted.key=value`` overrides to checked dataclasses, and back."""

from __future__ import annotations

import copy
import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from .base import ConfigError
from .model import UNetConfig
from .presets import GENERATOR_PRESETS, with_task_preset
from .train import TrainConfig

T = TypeVar("T")


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict (enums become their values)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        return value

    return convert(config)


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking every key and type.

    A ``preset`` key inside ``generator`` starts from that preset.
    """
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    base: Any = cls()
    if cls is UNetConfig and "preset" in data:
        name = data.pop("preset")
        if name not in GENERATOR_PRESETS:
            raise ConfigError(f"{where}.preset={name!r} is not one of {sorted(GENERATOR_PRESETS)}")
        base = copy.deepcopy(GENERATOR_PRESETS[name])  # deep: a preset must never share its lists
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}; valid keys here: {sorted(names)}")
        setattr(base, key, _coerce(hints[key], value, path))
    return base


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        return from_dict(tp, value, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, bool):  # YAML 1.1 reads on/off (and yes/no) as booleans
            value = "on" if value else "off"
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(f"{path}={value!r} is not one of {[m.value for m in tp]}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}={value!r} must be true or false")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            return tp(value)
        except ValueError:
            raise ConfigError(f"{path}={value!r} must be of type {tp.__name__}") from None
    if tp in (int, float, str) and not (isinstance(value, tp) and not isinstance(value, bool)):
        raise ConfigError(f"{path}={value!r} must be of type {tp.__name__}")
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` strings (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.subkey=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML file (optional), apply overrides, build and validate a :class:`TrainConfig`."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
    saved = data.pop("version", None) is not None  # written by save_config: a run's own, complete config
    data = apply_overrides(data, overrides or [])
    if not saved:
        data = with_task_preset(data)
    config = from_dict(TrainConfig, data)
    config.validate()
    return config


def save_config(config: Any, path: str | Path, **extra: Any) -> None:
    """Write ``config`` (plus ``extra`` top-level keys such as the version) as YAML."""
    data = {**extra, **to_dict(config)}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
