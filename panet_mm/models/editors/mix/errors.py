"""What ``WithPyramidAttention`` refuses: an insertion it cannot build, weights that are not the plain generator's."""
from panet_mm.utils.errors import PanetMMError


class InsertionError(PanetMMError):
    """An ``insert`` / ``attention_cfg`` / ``probe_shape`` the generator cannot take; names the position and the fix."""


class PlainWeightsError(PanetMMError):
    """A checkpoint that is not the plain generator's (keys, shapes or prefix); names the keys and the fix."""


__all__ = ['InsertionError', 'PlainWeightsError']
