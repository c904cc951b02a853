"""Registered datasets and data-preparation helpers of panet_mm."""
from .checked_image_dataset import CheckedImageDataset

__all__ = ['CheckedImageDataset']
