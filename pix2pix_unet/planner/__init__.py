"""The planner: a dataset's fingerprint (:mod:`.fingerprint`) and the training settings derived from it by
readable rules (:mod:`.rules`). ``pix2pix-unet plan --data DIR --task T`` prints both."""

from .fingerprint import Fingerprint, fingerprint
from .rules import Decision, overrides, plan, to_json

__all__ = ["Decision", "Fingerprint", "fingerprint", "overrides", "plan", "to_json"]
