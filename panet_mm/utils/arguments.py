"""Constructor arguments annotated as numbers, refused when a config wrote them as strings (``channels='8'``).

Why it exists: torch's layers fail far from the config on such a value ("not all arguments converted during
string formatting" inside ``nn.Conv2d``), naming nothing. The ground floor, so that the registered modules
(:mod:`panet_mm.models`) check their own arguments and the tools' config checks
(:mod:`panet_mm.engine.config_checks`) use the same words.
"""
from __future__ import annotations

import functools
import inspect
import re
import typing
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import PanetMMError


class ConfigArgumentError(PanetMMError):
    """A config (or a constructor call) gives a registered class an argument of the wrong kind (a quoted number, a
    misspelt optimizer type)."""


def _takes_only_numbers(annotation: Any) -> Optional[str]:
    """'int' or 'float' when an ``__init__`` annotation admits numbers (and None) only, else None; a tensor is
    admitted too (an optimizer's ``lr: float | Tensor``: a config cannot write one)."""
    import torch
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    numbers = [a for a in args if a is not torch.Tensor]
    if numbers and all(a in (int, float) for a in numbers):
        return 'int' if numbers == [int] else 'float'
    return None


def _number_arguments(classes: List[Any]) -> Dict[str, Tuple[str, bool]]:
    """``{argument: (kind, takes_none)}`` for the ``__init__`` arguments of ``classes`` annotated as numbers only.

    Every ``__init__`` along each class's MRO counts, the subclass's first: mmengine's ``MultiStepLR`` passes
    ``gamma`` on to the annotated ``__init__`` of its base through ``**kwargs``. ``takes_none``: the annotation
    admits None or the default is None (``x: int = None``).
    """
    found: Dict[str, Tuple[str, bool]] = {}
    for cls in classes:
        for klass in getattr(cls, '__mro__', ()):
            init = vars(klass).get('__init__')
            if init is None:
                continue
            try:
                hints, params = typing.get_type_hints(init), inspect.signature(init).parameters
            except Exception:  # annotations naming what the module did not import: not checkable
                continue
            for key, annotation in hints.items():
                kind = _takes_only_numbers(annotation)
                if kind and key in params and key not in found:
                    takes_none = type(None) in typing.get_args(annotation) or params[key].default is None
                    found[key] = (kind, takes_none)
    return found


def _not_a_number(arguments: Dict[str, Tuple[str, bool]], key: str, value: Any) -> Optional[str]:
    """What is wrong with ``value`` for ``key`` and its fix (``a string where it takes an int; write ...``), or None
    when ``key`` is not a number argument or ``value`` fits it."""
    if key not in arguments or not (isinstance(value, str) or value is None and not arguments[key][1]):
        return None
    kind = 'an int' if arguments[key][0] == 'int' else 'a number'
    if value is None:
        return f'no value where it takes {kind}; give {key} a number'
    if re.fullmatch(r'\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*', value):
        return f'a string where it takes {kind}; write {key}={value.strip()} without quotes'
    return f'a string where it takes {kind}; give {key} a number'


@functools.cache
def _class_numbers(cls: type) -> Dict[str, Tuple[str, bool]]:
    """:func:`_number_arguments` of one class, read once: constructors check their arguments at every build."""
    return _number_arguments([cls])


def check_init_arguments(cls: type, arguments: Mapping[str, Any]) -> None:
    """Refuse a string or None for an argument of ``cls`` annotated as a number, naming it.

    Why it exists: for a constructor's first lines (``MODELS.build(dict(type='PyramidAttention', channels='8'))``
    failed with "not all arguments converted during string formatting", naming nothing); the words are those of
    :func:`check_argument_types`.

    Args:
        cls (type): The class being built.
        arguments (Mapping[str, Any]): Its arguments by name (``locals()`` of its ``__init__`` will do).

    Raises:
        ConfigArgumentError: The first such argument.
    """
    numbers = _class_numbers(cls)
    for key, value in arguments.items():
        problem = _not_a_number(numbers, key, value)
        if problem:
            raise ConfigArgumentError(f'{cls.__name__} got {key}={value!r}, {problem}')


__all__ = ['ConfigArgumentError', 'check_init_arguments']
