"""Config checks that name a registered class: a misspelt type or argument, a number written as a string.

Why a module of its own: the tools (``engine/cli.py``) and the Python API (``apis/model_loading.py``) both
explain these before mmengine builds a model, and the API should not import the command-line helpers. All
answers come from mmengine's registries (and the children mmagic and panet_mm add), so a new host model's
arguments are checked without a list kept here.
"""
from __future__ import annotations

import difflib
import inspect
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from mmengine.registry import Registry

from panet_mm.utils.arguments import (  # (re-exported: the tools and tests import them from here)
    ConfigArgumentError,
    _not_a_number,
    _number_arguments,
    check_init_arguments,
)


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
    """Every name registered in the root registry that has a registry named ``registry_name`` among itself and its
    children (the names differ: mmagic's child ``optimizer_wrapper`` of mmengine's ``optim_wrapper``)."""
    trees: Dict[str, List[Registry]] = {}
    for reg in _registries():
        root = reg
        while root.parent is not None:
            root = root.parent
        trees.setdefault(root.name, []).append(reg)
    return sorted({name for tree in trees.values() if any(reg.name == registry_name for reg in tree)
                   for reg in tree for name in reg.module_dict})


def _registered_classes(name: str, registry_name: Optional[str] = None) -> List[Any]:
    """The classes registered as ``name`` in mmengine's root registries (the one named ``registry_name`` only, if
    given) or their children."""
    found: List[Any] = []
    for reg in _registries(registry_name):
        if name in reg.module_dict and reg.module_dict[name] not in found:
            found.append(reg.module_dict[name])
    return found


def explain_bad_argument(message: str) -> Optional[str]:
    """Rewrite Python's "X.__init__() got an unexpected keyword argument 'y'" for a registered class ``X`` with its
    close argument names (a misspelt key in a config's ``dict(type='X', ...)``); None for other messages."""
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
    if not params and arg == 'prepare_cmd':  # (BaseDataset's __init__: a shipped dataset dict given another type)
        return (f"the config gives a {cls_name} an argument 'prepare_cmd', which only panet_mm's CheckedImageDataset "
                "takes; keep type='CheckedImageDataset' there, or drop prepare_cmd")
    if not params:
        return None
    close = difflib.get_close_matches(arg, params, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"it takes {', '.join(params)}"
    if arg == 'type':  # e.g. attention_cfg=dict(type=...): that dict holds the arguments of a fixed class
        hint = f"that dict holds {cls_name}'s arguments, not a module to build: remove type ({hint})"
    return f"the config gives {cls_name} an argument '{arg}' that it does not take; {hint}"


#: Arguments of panet_mm's classes that hold another class's arguments as a plain dict (no ``type``): the
#: generators' and the mix wrapper's ``attention_cfg`` and the wrapper's ``insert`` entries (whose other keys are
#: positions) are passed on to ``PyramidAttention``.
_ARGUMENTS_OF = {'attention_cfg': 'PyramidAttention', 'insert': 'PyramidAttention'}


def check_argument_types(node: Any, path: str = 'model', of: Optional[str] = None) -> None:
    """Refuse a number written as a string (``mid_channels='32'``), or None, for a registered class that takes a
    number.

    Why it exists: torch's layers fail far from the config on such a value ("not all arguments converted
    during string formatting" inside ``nn.Conv2d``). Only arguments annotated with numbers are checked, in
    the classes panet_mm and mmagic register; unannotated ones and unknown types are left to the build. The dicts
    of :data:`_ARGUMENTS_OF` (``attention_cfg``, ``insert``) are checked as ``PyramidAttention``'s arguments.

    Args:
        node: A config's ``model`` (dicts and lists of them).
        path (str): Where ``node`` sits, for the message.
        of (str, optional): The class whose arguments ``node`` holds when it names no ``type``.

    Raises:
        ConfigArgumentError: The first such argument, named with its config path and the fix.
    """
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            check_argument_types(item, f'{path}[{i}]', of)
        return
    if not isinstance(node, dict):
        return
    name = node.get('type', of)
    classes = _registered_classes(name.split('.')[-1]) if isinstance(name, str) else []
    if 'type' in node:
        _check_merged_keys(node, name, classes, path)
    _check_numbers(node, name, _number_arguments(classes), path)
    ours = any(getattr(cls, '__module__', '').startswith('panet_mm.') for cls in classes)
    for key, value in node.items():
        check_argument_types(value, f'{path}.{key}', _ARGUMENTS_OF.get(key) if ours else None)


def _accepted_arguments(classes: List[Any]) -> Optional[List[str]]:
    """The keyword arguments the classes' constructors take together; None where one takes any (``**kwargs``), is
    no class, or has no signature to read."""
    names: List[str] = []
    for cls in classes:
        if not inspect.isclass(cls):
            return None
        try:
            parameters = inspect.signature(cls.__init__).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return None
        names += [p.name for p in parameters if p.name != 'self' and p.name not in names]
    return names


def _check_merged_keys(node: Mapping[str, Any], name: Any, classes: List[Any], path: str) -> None:
    """Refuse several keys ``name`` does not take: the mark of a dict that replaced a ``_base_`` dict of another type
    without ``_delete_=True`` (mmengine merged the old dict's keys into it). One such key is left to the build.

    Why: a mix config writing ``generator=dict(type='WithPyramidAttention', ...)`` over mmagic's EDSRNet dict
    stopped with "WithPyramidAttention got an argument 'in_channels'", which did not say where the key came from.
    """
    accepted = _accepted_arguments(classes) if classes else None
    if not accepted:
        return
    unknown = [k for k in node if k not in accepted and k not in ('type', '_scope_')]
    if len(unknown) < 2:  # one key: a misspelling (explain_bad_argument names the close one), or one a builder takes
        return            # out before the class sees it (mmcv's norm_cfg requires_grad, mmagic's ema start_iter)
    raise ConfigArgumentError(
        f"the config gives {name} ({path}) the arguments {unknown}, which it does not take (it takes "
        f"{', '.join(accepted)}); where this dict replaces a _base_ config's dict of another type, mmengine merged "
        f"that dict's keys into it: add _delete_=True to {path} in this config")


def _check_numbers(node: Mapping[str, Any], name: Any, numbers: Dict[str, Tuple[str, bool]], path: str) -> None:
    """Raise :class:`ConfigArgumentError` for the first value of ``node`` that ``numbers`` refuses."""
    for key, value in node.items():
        problem = _not_a_number(numbers, key, value)
        if problem:
            raise ConfigArgumentError(f'the config gives {name} {key}={value!r} ({path}.{key}), {problem}')


def _check_registered(node: Any, path: str, registry_name: str) -> List[Any]:
    """The classes ``node['type']`` names in the registry ``registry_name`` (none for a dict without a type, or a
    class); a name registered nowhere there is refused with the close names."""
    name = node.get('type') if isinstance(node, dict) else None
    if not isinstance(name, str):
        return []
    classes = _registered_classes(name.split('.')[-1], registry_name)
    if not classes:
        raise ConfigArgumentError(_unknown_type(name.split('.')[-1], registry_name, f'{path}.type'))
    return classes


def check_optim_settings(cfg: Mapping[str, Any]) -> None:
    """Refuse a misspelt type or a quoted number in a config's ``optim_wrapper`` (its optimizers) and
    ``param_scheduler``, naming the key path.

    Why it exists: mmengine builds them only when training starts, after the data loaders, and fails far from the
    config: ``type='Adamm'`` with "None is not a callable object", ``lr='1e-4'`` inside torch's ``Adam`` with
    "'<=' not supported between instances of 'float' and 'str'". Arguments are checked as in
    :func:`check_argument_types`.

    Args:
        cfg (Mapping): The config.

    Raises:
        ConfigArgumentError: The first such value, named with its config path and the fix.
    """
    wrapper = cfg.get('optim_wrapper')
    wrappers = []
    if isinstance(wrapper, dict):
        if 'optimizer' in wrapper or 'type' in wrapper:
            wrappers.append((wrapper, 'optim_wrapper'))
        else:  # MultiOptimWrapperConstructor: one wrapper per part of the model
            wrappers += [(value, f'optim_wrapper.{key}') for key, value in wrapper.items()
                         if isinstance(value, dict) and ('optimizer' in value or 'type' in value)]
    schedulers = cfg.get('param_scheduler')
    settings = [(node, path, 'optim_wrapper') for node, path in wrappers]
    settings += [(node.get('optimizer'), f'{path}.optimizer', 'optimizer') for node, path in wrappers]
    if isinstance(schedulers, (list, tuple)):
        settings += [(node, f'param_scheduler[{i}]', 'parameter scheduler') for i, node in enumerate(schedulers)]
    else:
        settings.append((schedulers, 'param_scheduler', 'parameter scheduler'))
    for node, path, registry_name in settings:
        classes = _check_registered(node, path, registry_name)
        if classes:
            _check_numbers(node, node['type'], _number_arguments(classes), path)


#: Top-level keys mmengine's runner reads (``Runner.__init__``'s arguments), and those the tools read.
RUNNER_KEYS = ('model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg', 'val_cfg',
               'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
               'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from', 'resume', 'launcher', 'env_cfg',
               'log_processor', 'log_level', 'visualizer', 'default_scope', 'randomness', 'experiment_name',
               'custom_imports', 'runner_type', 'tensorboard', 'allow_partial_load', 'sr_test_crop')


def misspelt_top_level_keys(cfg: Mapping[str, Any]) -> List[str]:
    """One sentence per top-level key that is not one the runner reads but nearly is (``train_dataloder``).

    Why it exists: mmengine ignores top-level keys it does not know, so a misspelt ``train_dataloder = dict(...)``
    trains with its base's loader without a word. Other unknown keys are a config's own variables (``scale``,
    ``data_root``) and are left alone.
    """
    found = []
    for key in cfg.keys():
        if key in RUNNER_KEYS or str(key).startswith('_'):
            continue
        close = difflib.get_close_matches(str(key), RUNNER_KEYS, n=1, cutoff=0.85)
        if close:
            found.append(f"the config's top-level key '{key}' is not one the runner reads, so it is ignored; did you "
                         f"mean '{close[0]}'?")
    return found


def _unknown_type(name: str, registry: str, where: Optional[str] = None) -> str:
    """One sentence for a type name that the registry ``registry`` (and its tree) does not hold, with close names."""
    close = difflib.get_close_matches(name, _registered_names(registry), n=5, cutoff=0.6)
    hint = f'did you mean {", ".join(close)}?' if close else 'check the spelling and custom_imports'
    named = f"type='{name}'" + (f' ({where})' if where else '')
    return (f"the config names {named}, which is not registered in the '{registry}' registry; {hint} "
            "(panet_mm modules need custom_imports = dict(imports=['panet_mm']))")


def explain_unknown_type(message: str) -> Optional[str]:
    """Rewrite mmengine's "X is not in the scope::name registry" error with close registered names."""
    m = re.search(r"`?'?(\w+)'?`? is not in the (\w+)::(\w[\w ]*?) registry", message)  # 'parameter scheduler'
    if not m:
        return None
    name, _, registry = m.groups()
    return _unknown_type(name, registry)


__all__ = ['ConfigArgumentError', 'check_argument_types', 'check_init_arguments',
           'check_optim_settings', 'explain_bad_argument', 'explain_unknown_type']
