"""The errors of panet_mm.apis: each message names the file / key / value and the fix."""
from __future__ import annotations

from panet_mm.utils.errors import PanetMMError, ParameterError


class RestoreError(PanetMMError):
    """A restoration request is refused (a ``ValueError``: a bad argument, file or checkpoint)."""


class CheckpointRefusedError(RestoreError):
    """A checkpoint is unreadable, not weights-only loadable, does not match the model, or is not finite."""


class ImageReadError(RestoreError):
    """One input image cannot be read; folder jobs report it and go on with the next."""


class RestoreParameterError(ParameterError, RestoreError):
    """A bad value of one named parameter: Python callers read its name, a CLI its flag (``for_cli``)."""


__all__ = ['CheckpointRefusedError', 'ImageReadError', 'RestoreError', 'RestoreParameterError']
