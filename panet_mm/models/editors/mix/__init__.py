"""Pyramid attention inserted into other mmagic generators (``WithPyramidAttention``)."""
from .errors import InsertionError, PlainWeightsError
from .with_pyramid_attention import InsertionSite, WithPyramidAttention, load_plain_weights

__all__ = ['InsertionError', 'InsertionSite', 'PlainWeightsError', 'WithPyramidAttention', 'load_plain_weights']
