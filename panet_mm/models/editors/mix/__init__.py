"""Pyramid attention inserted into other mmagic generators (``WithPyramidAttention``)."""
from .with_pyramid_attention import InsertionSite, WithPyramidAttention, load_plain_weights

__all__ = ['InsertionSite', 'WithPyramidAttention', 'load_plain_weights']
