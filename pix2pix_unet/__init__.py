"""pix2pix-unet: GAN image-to-image translation with a UNet generator and a PatchGAN discriminator."""

from .config import TrainConfig, UNetConfig, load_config
from .models import Discriminator, Generator, UNet
from .version import __version__


def from_pretrained(path: str) -> Generator:
    """Load a trained generator from an export folder, a run folder or a Hugging Face Hub repo (``ORG/NAME`` or
    ``hf://ORG/NAME[@revision]``, fetched with ``snapshot_download``), with no other arguments."""
    return Generator.from_pretrained(path)


__all__ = ["__version__", "Generator", "UNet", "Discriminator", "UNetConfig", "TrainConfig", "load_config", "from_pretrained"]
