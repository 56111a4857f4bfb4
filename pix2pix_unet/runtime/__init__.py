"""Running a trained generator: devices, precision, test-time augmentation, overlap-tile, and process shards.

Below the tasks and above the models: whatever runs a generator on tensors
(validation, ``predict``, ``evaluate``, ``synthesize``) comes here.
"""

from .backends import backend_flags, freed_memory_kept
from .run import (
    AUTOCAST_DTYPES, TestTimeAugmented, autocast, best_device, dihedral, inference_flags, prepare_generator,
    run_generator, undo_dihedral,
)
from .tiling import plan_tiles, predict_tiled

__all__ = ["AUTOCAST_DTYPES", "TestTimeAugmented", "autocast", "backend_flags", "best_device", "dihedral",
           "freed_memory_kept", "inference_flags", "plan_tiles", "predict_tiled", "prepare_generator",
           "run_generator", "undo_dihedral"]
