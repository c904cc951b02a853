"""Registered mmagic modules of panet_mm: layers, generators, edit models."""
from .editors import PAEDSRNet, PANet, PANetEditModel
from .layers import PyramidAttention, ResBlock

__all__ = ['PANet', 'PAEDSRNet', 'PANetEditModel', 'PyramidAttention', 'ResBlock']
