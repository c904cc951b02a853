"""Reading a config file with one sentence, not a traceback, for the mistakes made while editing one.

Why it exists: mmengine's ``Config.fromfile`` lets the parser's ``SyntaxError`` (naming the file
``<unknown>``, so a mistake in a ``_base_`` file is not placed) and the config's own exceptions (a
``NameError`` for a misspelt name, a ``ZeroDivisionError``) through as tracebacks into mmengine's
internals. :func:`read_config` names the file, the line and the problem instead. Errors raised
elsewhere (mmengine, the stack) are not the config's: they pass through unchanged. A child config that
sets a variable its ``_base_`` already used (``scale = 3`` over an x2 config) is refused too
(:func:`check_carried_variables`): mmengine gives it no error and the run would do the other task.
"""
from __future__ import annotations

import os.path as osp
import re
import sys
import sysconfig
from types import TracebackType
from typing import Any, Iterator, List, Mapping, Optional, Tuple

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


#: The config file types mmengine reads.
CONFIG_EXTENSIONS = ('.py', '.yml', '.yaml', '.json')

#: The top-level variables naming a config's task level, and the keys that carry them into the model and pipelines.
TASK_VARIABLES = {
    'scale': ('upscale_factor',),
    'sigma': ('gaussian_sigma', 'sigma'),
    'quality': ('quality',),
    'pattern': ('pattern',),
}
#: Every top-level variable a config builds other keys from (the datasets' data_root: that folder or one below it).
CARRIED_VARIABLES = {**TASK_VARIABLES, 'data_root': ('data_root',)}


def _carried_values(node: Any, keys: Tuple[str, ...], path: str, found: List[Tuple[str, Any]]) -> None:
    """Collect ``(path, value)`` of every key in ``keys`` below ``node`` (lists flattened)."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f'{path}.{key}' if path else str(key)
            if key in keys and not isinstance(value, (dict, list, tuple)):
                found.append((where, value))
            elif key in keys and isinstance(value, (list, tuple)):
                found.extend((where, v) for v in value if not isinstance(v, (dict, list, tuple)))
            else:
                _carried_values(value, keys, where, found)
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            _carried_values(item, keys, f'{path}[{i}]', found)


def check_carried_variables(cfg: Mapping[str, Any], path: str) -> None:
    """Refuse a top-level ``scale`` / ``sigma`` / ``quality`` / ``pattern`` that the model and pipelines do not use.

    Why it exists: mmengine evaluates a ``_base_`` file before its child, so ``scale = 3`` in a child of an x2
    config changes that variable only; the model, the data prefixes and the metrics stay x2 and the run
    trains or evaluates the other task without a word.

    Args:
        cfg (Mapping): The loaded config.
        path (str): Its file, for the message.

    Raises:
        ConfigFileError: The variable's value is not among the values the keys carrying it hold.
    """
    for name, keys in CARRIED_VARIABLES.items():
        value = cfg.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        found: List[Tuple[str, Any]] = []
        for key, node in cfg.items():
            if key != name:
                _carried_values(node, keys, key, found)
        if name == 'data_root':
            _check_data_root(cfg, str(value), found, path)
            continue
        if found and all(v != value for _, v in found):
            where, used = found[0]
            if not _assigns(path, name):  # the child changed only the key (upscale_factor=3): the base's scale stayed
                raise ConfigFileError(
                    f"config '{path}' builds {where} = {used!r}, but the {name} of its _base_ ({name} = {value!r}) "
                    f"still sets its data folders, pipelines and metrics: add {name} = {used!r} to this file and set "
                    f'the keys that use it here too (a _base_ file is evaluated before its child), or start from the '
                    f'shipped config for {name} {used!r}')
            raise ConfigFileError(
                f"config '{path}' sets {name} = {value!r}, but what it builds uses {used!r} ({where}): a _base_ file "
                f'is evaluated before its child, so a new {name} does not reach the dicts built from it there; '
                f'start from the shipped config for {name} {value!r}, or set those keys in this file too')


def _string_leaves(node: Any) -> Iterator[str]:
    """Every string in a config value (dicts and lists walked)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _string_leaves(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _string_leaves(value)


def _check_data_root(cfg: Mapping[str, Any], value: str, found: List[Tuple[str, Any]], path: str) -> None:
    """A ``data_root`` the config file itself sets, while no path in the config lies in or below it, is refused.

    Only where the file assigns it (a child that points its datasets elsewhere and leaves the variable alone is
    fine), and any string of the config counts (``data_prefix``, ``ann_file``, ``~`` expanded), so that only a
    variable nothing uses is refused.
    """
    def norm(text: str) -> str:
        return osp.normpath(osp.expanduser(text))

    root = norm(value)
    if not found or not _assigns(path, 'data_root'):
        return
    for text in (t for key, node in cfg.items() if key != 'data_root' for t in _string_leaves(node)):
        if norm(text) == root or norm(text).startswith(root.rstrip('/') + '/'):
            return
    where, used = found[0]
    raise ConfigFileError(
        f"config '{path}' sets data_root = {value!r}, but its datasets read {used!r} ({where}): a _base_ file is "
        'evaluated before its child, so a new data_root does not reach the dataset paths built from it there; set '
        "each dataset's data_root in this file (e.g. train_dataloader = dict(dataset=dict(data_root=...))) or with "
        '--cfg-options')


def _assigns(path: str, name: str) -> bool:
    """Whether the config file ``path`` itself (not a base) assigns the top-level variable ``name``."""
    import ast
    try:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return True  # unknown: the message for a value set here
    return any(isinstance(t, ast.Name) and t.id == name for node in tree.body if isinstance(node, ast.Assign)
               for t in node.targets) or any(isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                                             and node.target.id == name for node in tree.body)


def _merge_problem(message: str, path: str) -> Optional[str]:
    """One sentence for mmengine's "X=... in child config cannot inherit from base" (a dict over a list or a
    value of the base), with the way to build on the base's value; None for other messages."""
    m = re.search(r"(\w+) is a dict in the child config but is of type <class '(\w+)'> in base config", message)
    if not m:
        return None
    key, kind = m.groups()
    text = f"config '{path}' gives {key} a dict, but its base makes it a {kind}"
    if kind == 'list':
        return (f'{text} (the shipped configs hold one loader / evaluator per test set); build the list from the '
                f"base's: {key} = [dict(item, ...) for item in _base_.{key}], or put _delete_=True in the dict to "
                'replace the whole list')
    return f'{text}; put _delete_=True in the dict to replace it'


def read_config(path: str, **kwargs: Any) -> Any:
    """``mmengine.config.Config.fromfile(path, **kwargs)``, refusing a broken config file in one sentence.

    Args:
        path (str): The config file.
        **kwargs: Further arguments of ``Config.fromfile`` (``import_custom_modules``, ...).

    Returns:
        Config: The config.

    Raises:
        ConfigFileError: The file or one of its bases is not valid Python (the file, line and the parser's
            reason), or its code stops with an error (the file, line, exception and message), or it sets a
            variable its bases' dicts do not use (:func:`check_carried_variables`).
        FileNotFoundError: The file or a base file does not exist (as mmengine raises it).
    """
    from mmengine.config import Config
    if osp.splitext(path)[1].lower() not in CONFIG_EXTENSIONS and osp.isfile(path):  # mmengine: OSError traceback
        kinds = ', '.join(CONFIG_EXTENSIONS)
        if path.lower().endswith(('.pth', '.pt', '.ckpt', '.bin', '.safetensors')):
            raise ConfigFileError(f"config '{path}' is a checkpoint, not a config file ({kinds}); pass the config "
                                  'first, e.g. configs/demo/panet_sr_x2_demo.py')
        raise ConfigFileError(f"config '{path}' is not a config file ({kinds}); pass one, e.g. "
                              'configs/demo/panet_sr_x2_demo.py')
    try:
        cfg = Config.fromfile(path, **kwargs)
    except FileNotFoundError:
        raise
    except SyntaxError as err:
        msg = err.msg.split(' (<unknown>')[0] if err.msg else str(err)
        line = f' at line {err.lineno}' if err.lineno else ''
        raise ConfigFileError(f'{_named(_parsed_file(err.__traceback__), path)} is not valid Python: {msg}{line}; '
                              'fix that line') from None
    except Exception as err:  # noqa: BLE001  (only the config's own code is reported; the rest is re-raised)
        merge = _merge_problem(str(err), path) if isinstance(err, TypeError) else None
        if merge is not None:
            raise ConfigFileError(merge) from None
        duplicate = re.search(r'Duplicate key is not allowed among bases\. Duplicate keys: (\{.*\})', str(err))
        if isinstance(err, KeyError) and duplicate:
            raise ConfigFileError(
                f"config '{path}' has two _base_ files that both set {duplicate.group(1)}, which mmengine refuses "
                '(it merges a child into its base, not two bases); keep one of those bases and set what you need of '
                'the other in this file') from None
        if type(err).__name__ == 'ConfigParsingError' and '`_base_ = "_base_"`' in str(err):
            raise ConfigFileError(
                f"config '{path}' has an import statement, which makes mmengine read it as a lazy-import config, "
                "but it inherits with _base_ = ...; drop the import (write __import__('os').environ[...] in the "
                'expression instead) or write the whole file in the lazy-import style (with read_base(): ...)') \
                from None
        frame = _config_frame(sys.exc_info()[2])
        if frame is None:
            raise
        text = str(err).strip().splitlines()[0] if str(err).strip() else ''
        raise ConfigFileError(f'{_named(frame[0], path)} stopped at line {frame[1]} with {type(err).__name__}'
                              f"{': ' + text if text else ''}; fix that line") from None
    check_carried_variables(cfg, path)
    return cfg


__all__ = ['CARRIED_VARIABLES', 'ConfigFileError', 'check_carried_variables', 'read_config']
