"""The ``panet_mm`` scope, so that ``_base_ = 'panet_mm::panet/<config>.py'`` works like ``mmagic::...``.

panet_mm registers its modules in mmagic's registries (one place to look them up). mmengine resolves a
``pkg::path`` base only for packages in its ``MODULE2PACKAGE`` table, reading ``pkg/.mim/configs/path``,
and marks every ``type`` dict of that base with ``_scope_='pkg'``; building such a dict looks up the
registry of scope ``pkg`` under mmengine's root registries (warning and guessing when there is none).
This module adds both: ``panet_mm`` to ``MODULE2PACKAGE``, and one empty child registry of scope
``panet_mm`` under every mmagic registry (under mmengine's root where mmagic has none). An empty child
finds every name in its parents, so ``panet_mm``-scoped configs build exactly what ``mmagic``-scoped
ones build. mmengine imports this module by name (``<scope>.registry``) when it meets the scope.
"""
from __future__ import annotations

import os.path as osp
from typing import Dict, List, Optional

import mmengine.registry as mmengine_registries
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import Registry

SCOPE = 'panet_mm'


def register_config_package() -> None:
    """Let mmengine's ``Config`` resolve ``panet_mm::`` bases (it refuses packages it does not list)."""
    MODULE2PACKAGE.setdefault(SCOPE, 'panet_mm')


#: How a config shipped with panet_mm is named in ``_base_`` and on the tools' command lines.
SCOPE_PREFIX = SCOPE + '::'


def config_roots() -> List[str]:
    """Folders holding panet_mm's configs: the installed copy (``.mim``), then a checkout's ``configs/``."""
    package = osp.dirname(osp.abspath(__file__))
    candidates = [osp.join(package, '.mim', 'configs'), osp.join(osp.dirname(package), 'configs')]
    return [folder for folder in candidates if osp.isdir(folder)]


def registered_models() -> Dict[str, str]:
    """Model names of ``configs/panet/metafile.yml`` and their config files."""
    import yaml
    for root in config_roots():
        metafile = osp.join(root, 'panet', 'metafile.yml')
        if osp.isfile(metafile):
            with open(metafile, encoding='utf-8') as f:
                models = (yaml.safe_load(f) or {}).get('Models') or []
            return {m['Name']: osp.join(root, str(m['Config']).split('configs/', 1)[-1]) for m in models
                    if isinstance(m, dict) and 'Name' in m and 'Config' in m}
    return {}


def _under(root: str, relative: str) -> str:
    """``root/relative`` if it stays inside ``root`` (a name must not reach files elsewhere), else ''."""
    path = osp.normpath(osp.join(root, relative))
    return path if path.startswith(osp.normpath(root) + osp.sep) else ''


def find_config(config: str) -> Optional[str]:
    """The config file of a path, a ``panet_mm::panet/<name>.py`` name or a registered model name; else None.

    Why it exists: a wheel user has no ``configs/`` folder; the tools and the inferencers take the names
    of the configs the wheel carries (``configs/panet/README.md``) as well as paths.
    """
    if osp.isfile(config):
        return config
    if config.startswith(SCOPE_PREFIX):
        for root in config_roots():
            path = _under(root, config[len(SCOPE_PREFIX):])
            if path and osp.isfile(path):
                return path
        return None
    path = registered_models().get(config, '')
    return path if osp.isfile(path) else None


def shipped_config(config: str) -> Optional[str]:
    """The ``panet_mm::`` name of the shipped config whose file name ``config`` (a missing ``.py`` path) ends in;
    ``panet/<name>.py`` first (the model card's), then the path after its last ``configs/``; else None.

    Args:
        config (str): A config path that does not exist, e.g. ``'configs/panet_sr_x2_div2k.py'``.
    """
    norm = str(config).replace('\\', '/')
    if not norm.endswith('.py') or norm.startswith(SCOPE_PREFIX):
        return None
    base = osp.basename(norm)
    candidates = [f'panet/{base}'] + ([norm.rsplit('configs/', 1)[1]] if 'configs/' in norm else []) + [base]
    for root in config_roots():
        top = osp.normpath(root)
        for relative in candidates:
            path = osp.normpath(osp.join(top, relative))
            if path.startswith(top + osp.sep) and osp.isfile(path):  # (a name never reaches files elsewhere)
                return SCOPE_PREFIX + relative
    return None


def shipped_config_hint(config: str) -> Optional[str]:
    """``pass the config panet_mm ships, 'panet_mm::panet/<name>.py' or its model name '<name>'`` for a missing
    ``configs/<name>.py`` path whose file name a shipped config has; else None."""
    shipped = shipped_config(config)
    if shipped is None:
        return None
    base = osp.basename(str(config).replace('\\', '/'))
    names = sorted(name for name, path in registered_models().items() if osp.basename(path) == base)
    also = f" or its model name '{names[0]}'" if names else ''
    return f"pass the config panet_mm ships, '{shipped}'{also}"


def _accepted_configs() -> str:
    """What a tool takes as a config, for the sentences below."""
    names = ', '.join(sorted(registered_models())) or 'the names in configs/panet/metafile.yml'
    return f"pass a config path, '{SCOPE_PREFIX}panet/<name>.py' or one of {names}"


def unknown_config(config: str) -> str:
    """The end of a sentence naming what is accepted in place of ``config``, which :func:`find_config` did not find."""
    return f'neither a config file nor a registered model; {_accepted_configs()}'


def config_not_found(config: str) -> str:
    """One sentence for a ``config`` that :func:`find_config` did not find, the same in every tool: a missing
    file (a path ending in ``.py``) or an unknown name, with what is accepted instead."""
    if config.endswith('.py') and not config.startswith(SCOPE_PREFIX):
        hint = shipped_config_hint(config)  # the README's checkout path, from elsewhere or an installed wheel
        if hint:
            return f"config file '{config}' not found here (a path in a panet_mm checkout); {hint}"
        return f"config file '{config}' not found; {_accepted_configs()}"
    return f"config '{config}' is {unknown_config(config)}"


def _scope_children() -> Dict[str, Registry]:
    """One ``panet_mm`` child per mmengine root registry, below mmagic's child where mmagic has one."""
    import mmagic.registry  # noqa: F401  (mmagic's children must exist before ours are attached below them)

    children = {}
    for name, root in vars(mmengine_registries).items():
        if not isinstance(root, Registry) or root.parent is not None:
            continue
        parent = root.children.get('mmagic', root)
        existing = parent.children.get(SCOPE)
        # A parent's lookup does not import the parent's own modules: the child imports them for it.
        children[name] = existing if existing is not None else Registry(
            root.name, parent=parent, scope=SCOPE, locations=['panet_mm', *parent._locations])  # no public accessor
    return children


register_config_package()
_CHILDREN = _scope_children()
MODELS = _CHILDREN['MODELS']
DATASETS = _CHILDREN['DATASETS']
TRANSFORMS = _CHILDREN['TRANSFORMS']
HOOKS = _CHILDREN['HOOKS']

__all__ = ['DATASETS', 'HOOKS', 'MODELS', 'SCOPE', 'SCOPE_PREFIX', 'TRANSFORMS', 'config_not_found', 'config_roots',
           'find_config', 'register_config_package', 'registered_models', 'shipped_config', 'shipped_config_hint',
           'unknown_config']
