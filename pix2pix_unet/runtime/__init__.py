"""Running a trained generator: devices, precision, test-time augmentation, overlap-tile, volume windows, and
process shards.

Below the tasks and above the models: whatever runs a generator on tensors
(validation, ``predict``, ``evaluate``, ``synthesize``) comes here.
"""

from .backends import backend_flags, freed_memory_kept
from .run import (
    AUTOCAST_DTYPES, TestTimeAugmented, autocast, best_device, dihedral, inference_flags, prepare_generator,
    ReducedOutput, VoxelReduction, run_generator, run_one_volume, undo_dihedral,
)
from .tiling import plan_tiles, predict_tiled
from .volume_window import (
    Blend, VolumeStatistics, Window, estimate_window_bytes, percentile_normalizer, plan_windows, predict_volume,
    receptive_halo, volume_statistics, window_for_budget,
)

__all__ = ["AUTOCAST_DTYPES", "Blend", "TestTimeAugmented", "VolumeStatistics", "Window", "autocast", "backend_flags",
           "best_device", "dihedral", "estimate_window_bytes", "freed_memory_kept", "inference_flags",
           "percentile_normalizer", "plan_tiles", "plan_windows", "predict_tiled", "predict_volume",
           "prepare_generator", "receptive_halo", "ReducedOutput", "run_generator", "run_one_volume",
           "undo_dihedral", "VoxelReduction", "volume_statistics",
           "window_for_budget"]
