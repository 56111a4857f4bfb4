"""Errors shared across the package, kept apart so any module can raise them without import cycles."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset folder or file cannot be used; the message names it."""
