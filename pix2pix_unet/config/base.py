"""The error every config check raises, and the one check most sections share."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or impossible."""


def _positive(obj: Any, where: str, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            key = f"{where}.{name}" if where else name
            raise ConfigError(f"{key}={value} must be positive")
