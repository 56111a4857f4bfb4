"""Configs in and out: YAML files and ``dotted.key=value`` overrides to checked dataclasses, and back."""

from __future__ import annotations

import copy
import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
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
    if data is None:
        data = {}
    if not isinstance(data, Mapping):  # before dict(): it would turn a list of pairs into a mapping
        raise ConfigError(f"{where or 'config'} must be a mapping, got {data!r}")
    data = dict(data)
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
    """``value`` as type ``tp`` (YAML's types to the field's), or a :class:`ConfigError` naming ``path`` and
    the value. Unions try each member in order; list and tuple items are checked one by one."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(typing.get_args(tp), value, path)
    if origin in (list, tuple) or tp in (list, tuple):
        return _coerce_sequence(tp, value, path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        return from_dict(tp, value, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, bool):  # YAML 1.1 reads on/off (and yes/no) as booleans
            value = "on" if value else "off"
        try:
            return tp(value)
        except (ValueError, TypeError):
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


def _coerce_union(members: tuple[Any, ...], value: Any, path: str) -> Any:
    """``value`` as the first member of the union that takes it; ``None`` where the union allows it."""
    if value is None and type(None) in members:
        return None
    members = tuple(m for m in members if m is not type(None))
    errors = []
    for member in members:
        try:
            return _coerce(member, value, path)
        except ConfigError as err:
            errors.append(str(err))
    if len(errors) == 1:  # `X | None`: X's own message
        raise ConfigError(errors[0])
    raise ConfigError(f"{path}={value!r} must be one of {' | '.join(map(_type_name, members))}: "
                      + "; ".join(errors))


def _coerce_sequence(tp: Any, value: Any, path: str) -> Any:
    """A list (or tuple) of ``value``'s items, each coerced to its item type under ``path[i]``."""
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if args and origin is tuple and args[-1] is not Ellipsis:  # tuple[X, Y]: one type per position
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{path}={value!r} must be a list of {len(args)} values "
                              f"({', '.join(map(_type_name, args))})")
        item_types = list(args)
    else:  # list[X], tuple[X, ...]
        item = args[0] if args else Any
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}={value!r} must be a list of {_type_name(item)}")
        item_types = [item] * len(value)
    return origin(_coerce(t, v, f"{path}[{i}]") for i, (t, v) in enumerate(zip(item_types, value)))


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else str(tp).replace("typing.", "")


def _set(data: dict[str, Any], key: str, value: Any, item: str) -> None:
    """Set ``dotted.key`` in the nested dict ``data``; ``item`` names the override in errors."""
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str],
                    values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Apply ``values`` (``dotted.key -> value``, taken as they are), then ``dotted.key=value`` strings
    (values parsed as YAML), to a nested dict.

    ``values`` are for typed sources such as command-line flags: ``{"output_dir": "2024"}`` stays a string,
    where the override ``output_dir=2024`` would be read as a number.
    """
    for key, value in (values or {}).items():
        _set(data, key, value, f"{key}={value!r}")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.subkey=value")
        key, raw = item.split("=", 1)
        _set(data, key, yaml.safe_load(raw), item)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                values: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a YAML file (optional), apply ``values`` then ``overrides`` (see :func:`apply_overrides`), build and
    validate a :class:`TrainConfig`."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if data is None:  # an empty file
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level, got {data!r}")
    saved = data.pop("version", None) is not None  # written by save_config: a run's own, complete config
    if saved:
        _unset_old_best_default(data)
    data = apply_overrides(data, overrides or [], values)
    if not saved:
        data = with_task_preset(data)
    config = from_dict(TrainConfig, data)
    config.validate()
    return config


def _unset_old_best_default(data: dict[str, Any]) -> None:
    """A run saved before ``export`` existed recorded ``best_metric: val/l1, best_mode: min`` for "unset" (then
    the default, which the task replaced with its own): read it as unset, so it still means the task's own.
    Runs saved since record ``export`` and the value they used, which is kept."""
    if "export" not in data and data.get("best_metric") == "val/l1" and data.get("best_mode", "min") == "min":
        data.pop("best_metric")
        data.pop("best_mode", None)


def save_config(config: Any, path: str | Path, **extra: Any) -> None:
    """Write ``config`` (plus ``extra`` top-level keys such as the version) as YAML."""
    data = {**extra, **to_dict(config)}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
