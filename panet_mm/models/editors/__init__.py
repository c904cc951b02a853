"""Registered generators and edit models."""
from .panet import PAEDSRNet, PANet, PANetEditModel

__all__ = ['PANet', 'PAEDSRNet', 'PANetEditModel']
