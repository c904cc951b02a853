"""Registered datasets, transforms and data-preparation helpers of panet_mm."""
from . import transforms  # noqa: F401  (registers the transforms in mmagic's TRANSFORMS)
from .checked_image_dataset import CheckedImageDataset

__all__ = ['CheckedImageDataset', 'transforms']
