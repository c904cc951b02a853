"""Building blocks: the pyramid attention block and the residual block."""
from .pyramid_attention import PyramidAttention, count_parameters
from .res_block import ResBlock

__all__ = ['PyramidAttention', 'ResBlock', 'count_parameters']
