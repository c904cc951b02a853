"""Registered generators and edit models."""
from .panet import PAEDSRNet, PANet

__all__ = ['PANet', 'PAEDSRNet']
