"""The ``panet_mm`` scope, so that ``_base_ = 'panet_mm::panet/<config>.py'`` works like ``mmagic::...``.

panet_mm registers its modules in mmagic's registries (one place to look them up). mmengine resolves a
``pkg::path`` base only for packages in its ``MODULE2PACKAGE`` table, reading ``pkg/.mim/configs/path``,
and marks every ``type`` dict of that base with ``_scope_='pkg'``; building such a dict looks up the
registry of scope ``pkg`` under mmengine's root registries (warning and guessing when there is none).
This module adds both: ``panet_mm`` to ``MODULE2PACKAGE``, and one empty child registry of scope
``panet_mm`` under every mmagic registry (under mmengine's root where mmagic has none). An empty child
finds every name in its parents, so ``panet_mm``-scoped configs build exactly what ``mmagic``-scoped
ones build. mmengine imports this module by name (``<scope>.registry``) when it meets the scope.
Finding the shipped configs by name is :mod:`panet_mm.utils.config_names`.
"""
from __future__ import annotations

from typing import Dict

import mmengine.registry as mmengine_registries
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import Registry

from .utils.config_names import SCOPE, SCOPE_PREFIX


def register_config_package() -> None:
    """Let mmengine's ``Config`` resolve ``panet_mm::`` bases (it refuses packages it does not list)."""
    MODULE2PACKAGE.setdefault(SCOPE, 'panet_mm')


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

__all__ = ['DATASETS', 'HOOKS', 'MODELS', 'SCOPE', 'SCOPE_PREFIX', 'TRANSFORMS', 'register_config_package']
