"""Config checks that name a registered class: a misspelt type or argument, a number written as a string.

Why a module of its own: the tools (``engine/cli.py``) and the Python API (``apis/model_loading.py``) both
explain these before mmengine builds a model, and the API should not import the command-line helpers. All
answers come from mmengine's registries (and the children mmagic and panet_mm add), so a new host model's
arguments are checked without a list kept here.
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Dict, Iterator, List, Optional

from mmengine.registry import Registry

from panet_mm.utils.errors import PanetMMError


def _registries(root_name: Optional[str] = None) -> Iterator[Registry]:
    """mmengine's root registries (those named ``root_name`` only, if given) and all their children; the
    children are imported from their locations first, so every module they register is listed."""
    import mmengine.registry as root_registries
    for value in vars(root_registries).values():
        if isinstance(value, Registry) and value.parent is None and root_name in (None, value.name):
            stack = [value]
            while stack:
                reg = stack.pop()
                reg.import_from_location()
                yield reg
                stack.extend(reg.children.values())


def _registered_names(registry_name: str) -> List[str]:
    """Every name registered under ``registry_name`` in mmengine's root registry and its children."""
    return sorted({name for reg in _registries(registry_name) for name in reg.module_dict})


def _registered_classes(name: str) -> List[Any]:
    """The classes registered as ``name`` in any of mmengine's root registries or their children."""
    found: List[Any] = []
    for reg in _registries():
        if name in reg.module_dict and reg.module_dict[name] not in found:
            found.append(reg.module_dict[name])
    return found


def explain_bad_argument(message: str) -> Optional[str]:
    """Rewrite Python's "X.__init__() got an unexpected keyword argument 'y'" for a registered class ``X`` with its
    close argument names (a misspelt key in a config's ``dict(type='X', ...)``); None for other messages."""
    import inspect
    m = re.search(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", message)
    if not m:
        return None
    cls_name, arg = m.groups()
    params: List[str] = []
    for cls in _registered_classes(cls_name):
        try:
            params += [p for p in inspect.signature(cls.__init__).parameters
                       if p not in ('self', 'args', 'kwargs') and p not in params]
        except (TypeError, ValueError):
            continue
    if not params:
        return None
    close = difflib.get_close_matches(arg, params, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"it takes {', '.join(params)}"
    if arg == 'type':  # e.g. attention_cfg=dict(type=...): that dict holds the arguments of a fixed class
        hint = f"that dict holds {cls_name}'s arguments, not a module to build: remove type ({hint})"
    return f"the config gives {cls_name} an argument '{arg}' that it does not take; {hint}"


class ConfigArgumentError(PanetMMError):
    """A config gives a registered class an argument of the wrong kind (a quoted number)."""


def _takes_only_numbers(annotation: Any) -> Optional[str]:
    """'int' or 'float' when an ``__init__`` annotation admits numbers (and None) only, else None."""
    import typing
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if all(a in (int, float) for a in args) and bool not in args:
        return 'int' if args == [int] else 'float'
    return None


def check_argument_types(node: Any, path: str = 'model') -> None:
    """Refuse a number written as a string (``mid_channels='32'``) for a registered class that takes a number.

    Why it exists: torch's layers fail far from the config on such a value ("not all arguments converted
    during string formatting" inside ``nn.Conv2d``). Only arguments annotated with numbers are checked, in
    the classes panet_mm and mmagic register; unannotated ones and unknown types are left to the build.

    Args:
        node: A config's ``model`` (dicts and lists of them).
        path (str): Where ``node`` sits, for the message.

    Raises:
        ConfigArgumentError: The first such argument, named with its config path and the fix.
    """
    import typing
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            check_argument_types(item, f'{path}[{i}]')
        return
    if not isinstance(node, dict):
        return
    name = node.get('type')
    hints: Dict[str, Any] = {}
    if isinstance(name, str):
        for cls in _registered_classes(name.split('.')[-1]):
            try:
                hints.update(typing.get_type_hints(cls.__init__))
            except Exception:  # annotations naming what the module did not import: not checkable
                continue
    for key, value in node.items():
        kind = _takes_only_numbers(hints[key]) if key in hints and isinstance(value, str) else None
        if kind:
            fix = (f'write {key}={value.strip()} without quotes' if re.fullmatch(r'\s*[-+]?[\d.eE+-]+\s*', value)
                   else f'give {key} a number')
            raise ConfigArgumentError(f"the config gives {name} {key}={value!r} ({path}.{key}), a string where it "
                                      f'takes {"an int" if kind == "int" else "a number"}; {fix}')
        check_argument_types(value, f'{path}.{key}')


def explain_unknown_type(message: str) -> Optional[str]:
    """Rewrite mmengine's "X is not in the scope::name registry" error with close registered names."""
    m = re.search(r"`?'?(\w+)'?`? is not in the (\w+)::(\w+) registry", message)
    if not m:
        return None
    name, _, registry = m.groups()
    close = difflib.get_close_matches(name, _registered_names(registry), n=5, cutoff=0.6)
    hint = f'did you mean {", ".join(close)}?' if close else 'check the spelling and custom_imports'
    return (f"the config names type='{name}', which is not registered in the '{registry}' registry; {hint} "
            "(panet_mm modules need custom_imports = dict(imports=['panet_mm']))")


__all__ = ['ConfigArgumentError', 'check_argument_types', 'explain_bad_argument', 'explain_unknown_type']
