"""The error classes every panet_mm error derives from.

Why it exists: a caller catches :class:`PanetMMError` to tell panet_mm's refusals (one sentence naming
the file, key or value and the fix) from bugs; and library code names *parameters*, not command-line
flags, so that a message reads right from Python. :class:`ParameterError` keeps the parameter apart
from the sentence, so a CLI can name its own flag instead (:meth:`ParameterError.for_cli`).
"""
from __future__ import annotations

from typing import Mapping, Optional


class PanetMMError(ValueError):
    """A request panet_mm refuses; the message names what is wrong and how to fix it."""


class ParameterError(PanetMMError):
    """A bad value of one named parameter, worded so that a CLI can name its flag instead.

    Args:
        param (str): The Python parameter, e.g. ``'max_pixels'``.
        template (str): The message, with ``{param}`` where the parameter is named.
        flag (str, optional): How the parameter is spelled on the command line when a CLI's
            mapping does not say (e.g. ``'--max-pixels'``). Default: None (the parameter name).

    Example:
        >>> err = ParameterError('max_pixels', 'raise {param} to at least 10')
        >>> str(err)
        'raise max_pixels to at least 10'
        >>> err.for_cli({'max_pixels': '--max-pixels'})
        'raise --max-pixels to at least 10'
    """

    def __init__(self, param: str, template: str, flag: Optional[str] = None) -> None:
        self.param, self.template, self.flag = param, template, flag
        super().__init__(self._render(param))

    def _render(self, name: str) -> str:
        # str.replace, not str.format: the rest of the message may hold braces (paths, dict reprs)
        return self.template.replace('{param}', name)

    def __reduce__(self):  # pickles (worker processes) with its three arguments
        return type(self), (self.param, self.template, self.flag)

    def for_cli(self, flags: Optional[Mapping[str, str]] = None) -> str:
        """The message naming the command-line flag of the parameter.

        Args:
            flags (Mapping[str, str], optional): Parameter name -> flag, e.g.
                ``{'max_pixels': '--max-pixels'}``. Unmapped parameters fall back to ``flag``, then
                to the parameter name.

        Returns:
            str: The message.
        """
        return self._render((flags or {}).get(self.param) or self.flag or self.param)


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when empty), cut to ``limit`` characters.

    Third-party errors (torch, Pillow, OpenCV) span many lines; panet_mm quotes only their first line
    inside its own one-sentence messages. torch's weights-only refusals put the reason after a
    ``WeightsUnpickler error:`` marker, so the text after it is used.
    """
    text = str(err).strip()
    if 'WeightsUnpickler error:' in text:
        text = text.split('WeightsUnpickler error:')[-1].strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]


def cli_message(err: BaseException, flags: Optional[Mapping[str, str]] = None) -> str:
    """``err`` as a CLI should print it: a :class:`ParameterError` names the flag, anything else is ``str(err)``."""
    return err.for_cli(flags) if isinstance(err, ParameterError) else str(err)


__all__ = ['PanetMMError', 'ParameterError', 'cli_message', 'first_line']
