"""Registered mmagic modules of panet_mm: layers, generators, edit models."""
from .editors import PAEDSRNet, PANet, PANetEditModel
from .editors.mix import WithPyramidAttention, load_plain_weights
from .layers import PyramidAttention, ResBlock
from .losses import CompositeLoss, SSIMLoss

__all__ = ['PANet', 'PAEDSRNet', 'PANetEditModel', 'PyramidAttention', 'ResBlock',
           'WithPyramidAttention', 'load_plain_weights', 'CompositeLoss', 'SSIMLoss']
