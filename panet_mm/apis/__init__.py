"""High-level APIs of panet_mm: restoring a user's own images with a trained model."""
from .restore import (
    CheckpointRefusedError,
    ImageReadError,
    RestoreError,
    RestoreJob,
    Restorer,
    RestoreSummary,
    build_restorer,
    load_state_dict_safely,
    plan_jobs,
    restore_files,
    write_image_atomic,
)

__all__ = [
    'CheckpointRefusedError', 'ImageReadError', 'RestoreError', 'RestoreJob', 'RestoreSummary', 'Restorer',
    'build_restorer', 'load_state_dict_safely', 'plan_jobs', 'restore_files', 'write_image_atomic'
]
