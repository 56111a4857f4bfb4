"""Generator and discriminator networks.

``build_generator(config)`` builds the architecture ``config.architecture`` names, and
``Generator.from_pretrained(path)`` loads any export; each architecture module registers its class.
"""

from .generator import GENERATORS, Generator, build_generator, count_parameters, pad_to_multiple, resolve_export_dir
from .encoders import TimmUNet
from .multihead import GeneratorOutputs, MultiHeadGenerator
from .patchgan import Discriminator
from .spade import SPADEGenerator
from .unet import UNet
from .unet3p import UNet3Plus
from .unetpp import UNetPlusPlus

__all__ = ["Generator", "GENERATORS", "build_generator", "UNet", "UNetPlusPlus", "UNet3Plus", "TimmUNet",
           "SPADEGenerator", "MultiHeadGenerator", "GeneratorOutputs", "Discriminator", "count_parameters",
           "pad_to_multiple", "resolve_export_dir"]
