"""Running a trained generator: devices, precision, test-time augmentation, overlap-tile, and process shards.

Below the tasks and above the models: whatever runs a generator on tensors
(validation, ``predict``, ``evaluate``, ``synthesize``) comes here.
"""

from .run import (
    AUTOCAST_DTYPES, TestTimeAugmented, autocast, best_device, dihedral, prepare_generator, run_generator,
    undo_dihedral,
)
from .tiling import plan_tiles, predict_tiled

__all__ = ["AUTOCAST_DTYPES", "TestTimeAugmented", "autocast", "best_device", "dihedral", "plan_tiles",
           "predict_tiled", "prepare_generator", "run_generator", "undo_dihedral"]
