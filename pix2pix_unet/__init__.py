"""pix2pix-unet: GAN image-to-image translation with a UNet generator and a PatchGAN discriminator."""

__version__ = "0.1.0"

from .config import TrainConfig, UNetConfig, load_config  # noqa: E402
from .models import Discriminator, UNet  # noqa: E402


def from_pretrained(path: str) -> UNet:
    """Load a trained generator from an export folder or a run folder, with no other arguments."""
    return UNet.from_pretrained(path)


__all__ = ["__version__", "UNet", "Discriminator", "UNetConfig", "TrainConfig", "load_config", "from_pretrained"]
