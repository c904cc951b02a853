"""High-level APIs of panet_mm: restoring a user's own images with a trained model.

:class:`PANetInferencer` / :class:`RestorationInferencer` restore one image (mmagic's inferencer
stages); :func:`plan_jobs`, :func:`check_output_room` and :func:`restore_files` run them over folders.
"""
from panet_mm.utils.fileio import atomic_write_image as write_image_atomic

from .errors import CheckpointRefusedError, ImageReadError, RestoreError, RestoreParameterError
from .image_kinds import exif_note, profile_note
from .inferencers import PANetInferencer, RestorationInferencer, registered_models, resolve_config
from .jobs import (
    IMAGE_EXTENSIONS,
    RestoreJob,
    RestoreSummary,
    check_output_room,
    config_scale,
    plan_jobs,
    restore_files,
)
from .load_settings import LoadSettings, find_load_settings
from .model_loading import load_state_dict_safely, match_state_dict

#: Earlier names of :class:`RestorationInferencer` (``build_restorer(config, checkpoint, ...)``).
Restorer = build_restorer = RestorationInferencer

__all__ = [
    'CheckpointRefusedError', 'IMAGE_EXTENSIONS', 'ImageReadError', 'LoadSettings', 'PANetInferencer',
    'RestorationInferencer', 'RestoreError', 'RestoreJob', 'RestoreParameterError', 'RestoreSummary', 'Restorer',
    'build_restorer', 'check_output_room', 'config_scale', 'exif_note', 'find_load_settings', 'load_state_dict_safely',
    'match_state_dict', 'plan_jobs', 'profile_note', 'registered_models', 'resolve_config', 'restore_files',
    'write_image_atomic'
]
