"""A meter that adds figures to another meter's: the wrappers of :mod:`~pix2pix_unet.metrics.fid`,
:mod:`~pix2pix_unet.metrics.segmenter` and restore's residual meter rank examples by the inner meter's key."""

from __future__ import annotations

from typing import Any


class WrappedMeter:
    """Its ``key`` (what reports rank the worst examples by) and direction are those of ``inner``."""

    inner: Any

    @property
    def key(self) -> str:
        return self.inner.key

    @property
    def higher_is_better(self) -> bool:
        return self.inner.higher_is_better


__all__ = ["WrappedMeter"]
