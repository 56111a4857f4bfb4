"""The planner: a dataset's fingerprint (:mod:`.fingerprint`) and the training settings derived from it by
readable rules (:mod:`.rules`). ``pix2pix-unet plan --data DIR --task T`` prints both."""

from .fingerprint import Fingerprint, fingerprint
from .probe import pixels_per_second
from .rules import Decision, overrides, plan, to_json


def measured_speed(cfg, channels: int, explicit: set[str] | frozenset[str]) -> float | None:
    """The generator's training speed here, when the plan sizes the crop or the batch (None when the user set
    both, or when the generator cannot be built from the config alone; the plan then says so)."""
    if {"data.crop_size", "batch_size"} <= set(explicit):
        return None
    try:
        return pixels_per_second(cfg.generator, channels)
    except Exception as err:  # noqa: BLE001 - a speed probe never stops a run; the plan falls back and says why
        print(f"plan: the generator's speed was not measured ({type(err).__name__}: {err}); the crop and batch "
              "are sized for a 2-core CPU", flush=True)
        return None


__all__ = ["Decision", "Fingerprint", "fingerprint", "measured_speed", "overrides", "pixels_per_second", "plan",
           "to_json"]
