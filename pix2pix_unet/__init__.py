"""pix2pix-unet: GAN image-to-image translation with a UNet generator and a PatchGAN discriminator."""

__version__ = "0.1.0"

from .config import TrainConfig, UNetConfig, load_config  # noqa: E402
from .models import Discriminator, Generator, UNet  # noqa: E402


def from_pretrained(path: str) -> Generator:
    """Load a trained generator from an export folder, a run folder or a Hugging Face Hub repo (``ORG/NAME`` or
    ``hf://ORG/NAME[@revision]``, fetched with ``snapshot_download``), with no other arguments."""
    return Generator.from_pretrained(path)


__all__ = ["__version__", "Generator", "UNet", "Discriminator", "UNetConfig", "TrainConfig", "load_config", "from_pretrained"]
