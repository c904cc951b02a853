"""Moved: restoration lives in :mod:`panet_mm.apis` (inferencers, jobs, restore_cli).

Only the name two analysis tools still import is left here, until they import
:func:`panet_mm.utils.checkpoint.first_conv_in_channels` directly.
"""
from panet_mm.utils.checkpoint import first_conv_in_channels as _first_conv_in_channels

__all__ = ['_first_conv_in_channels']
