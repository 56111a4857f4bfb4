"""The package version, a leaf every layer may read (run records, exports, Hub downloads)."""

__version__ = "0.1.0"
