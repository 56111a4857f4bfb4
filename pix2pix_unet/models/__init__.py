"""Generator and discriminator networks."""

from .patchgan import Discriminator
from .unet import UNet, count_parameters, pad_to_multiple, resolve_export_dir

__all__ = ["UNet", "Discriminator", "count_parameters", "pad_to_multiple", "resolve_export_dir"]
