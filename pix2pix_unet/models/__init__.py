"""Generator and discriminator networks.

``build_generator(config)`` builds the architecture ``config.architecture`` names, and
``Generator.from_pretrained(path)`` loads any export; each architecture module registers its class.
"""

from .generator import GENERATORS, Generator, build_generator, count_parameters, pad_to_multiple, resolve_export_dir
from .encoders import TimmUNet
from .patchgan import Discriminator
from .unet import UNet

__all__ = ["Generator", "GENERATORS", "build_generator", "UNet", "TimmUNet", "Discriminator", "count_parameters",
           "pad_to_multiple", "resolve_export_dir"]
