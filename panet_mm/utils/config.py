"""Reading a config file with one sentence, not a traceback, for the mistakes made while editing one.

Why it exists: mmengine's ``Config.fromfile`` lets the parser's ``SyntaxError`` (naming the file
``<unknown>``, so a mistake in a ``_base_`` file is not placed) and the config's own exceptions (a
``NameError`` for a misspelt name, a ``ZeroDivisionError``) through as tracebacks into mmengine's
internals. :func:`read_config` names the file, the line and the problem instead. Errors raised
elsewhere (mmengine, the stack) are not the config's: they pass through unchanged.
"""
from __future__ import annotations

import os.path as osp
import sys
import sysconfig
from types import TracebackType
from typing import Any, Optional

from .errors import PanetMMError


class ConfigFileError(PanetMMError):
    """A config file (or one of its ``_base_`` files) is not valid Python, or stops with an error while it runs."""


def _library_paths() -> tuple:
    paths = {sysconfig.get_paths()[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib')}
    return tuple(osp.realpath(p) + osp.sep for p in paths)


def _parsed_file(tb: Optional[TracebackType]) -> Optional[str]:
    """The config file mmengine was parsing when the parser failed: the ``filename`` of its innermost frame."""
    found = None
    while tb is not None:
        frame = tb.tb_frame
        name = frame.f_locals.get('filename')
        if 'mmengine' in frame.f_code.co_filename and isinstance(name, str) and name.endswith('.py'):
            found = name
        tb = tb.tb_next
    return found


#: panet_mm's own code (its shipped configs in ``.mim/configs`` are configs, not code).
_PACKAGE = osp.realpath(osp.dirname(osp.dirname(osp.abspath(__file__)))) + osp.sep
_SHIPPED = _PACKAGE + '.mim' + osp.sep


def _is_config_code(path: str) -> bool:
    real = osp.realpath(path)
    if real.startswith(_PACKAGE):
        return real.startswith(_SHIPPED)
    return path.endswith('.py') and osp.isfile(path) and not real.startswith(_library_paths())


def _config_frame(tb: Optional[TracebackType]) -> Optional[tuple]:
    """``(file, line)`` of the innermost frame that runs a config's own code (a ``.py`` file outside the
    installed libraries, the standard library and panet_mm), None where the error came from them alone."""
    found = None
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename
        if _is_config_code(path):
            found = (path, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _named(where: Optional[str], path: str) -> str:
    """``config 'PATH'`` as the user spelled it, or ``config 'BASE' (a base of 'PATH')``."""
    if where is None or osp.realpath(where) == osp.realpath(path):
        return f"config '{path}'"
    return f"config '{osp.normpath(where)}' (a base of '{path}')"


def read_config(path: str, **kwargs: Any) -> Any:
    """``mmengine.config.Config.fromfile(path, **kwargs)``, refusing a broken config file in one sentence.

    Args:
        path (str): The config file.
        **kwargs: Further arguments of ``Config.fromfile`` (``import_custom_modules``, ...).

    Returns:
        Config: The config.

    Raises:
        ConfigFileError: The file or one of its bases is not valid Python (the file, line and the parser's
            reason), or its code stops with an error (the file, line, exception and message).
        FileNotFoundError: The file or a base file does not exist (as mmengine raises it).
    """
    from mmengine.config import Config
    try:
        return Config.fromfile(path, **kwargs)
    except FileNotFoundError:
        raise
    except SyntaxError as err:
        msg = err.msg.split(' (<unknown>')[0] if err.msg else str(err)
        line = f' at line {err.lineno}' if err.lineno else ''
        raise ConfigFileError(f'{_named(_parsed_file(err.__traceback__), path)} is not valid Python: {msg}{line}; '
                              'fix that line') from None
    except Exception as err:  # noqa: BLE001  (only the config's own code is reported; the rest is re-raised)
        frame = _config_frame(sys.exc_info()[2])
        if frame is None:
            raise
        text = str(err).strip().splitlines()[0] if str(err).strip() else ''
        raise ConfigFileError(f'{_named(frame[0], path)} stopped at line {frame[1]} with {type(err).__name__}'
                              f"{': ' + text if text else ''}; fix that line") from None


__all__ = ['ConfigFileError', 'read_config']
