"""``python -m pix2pix_unet.cli``: the ``pix2pix-unet`` command (what ``accelerate launch -m`` runs)."""

import sys

from . import main

sys.exit(main())
