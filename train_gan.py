"""Train a pix2pix model: ``python train_gan.py`` (built-in data) or ``accelerate launch train_gan.py ...``.

Options: ``python train_gan.py --help``. Same as ``pix2pix-unet train``.
"""

import sys

from pix2pix_unet.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
