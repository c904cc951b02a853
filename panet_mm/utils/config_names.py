"""The configs panet_mm ships, found by name: ``panet_mm::panet/<name>.py``, the model card's names, and the
sentences every tool and API says for a config it cannot find.

Why it exists: a wheel user has no ``configs/`` folder, and the README writes configs as checkout paths
(``configs/panet_sr_x2_div2k.py``), which do not exist from any other directory; the tools and the inferencers
take the names of the configs the package carries as well as paths, and answer a missing checkout path with
the shipped config it means. mmengine resolves ``panet_mm::`` in ``_base_`` (:mod:`panet_mm.registry`) but has
no lookup by model name and no such hint.
"""
from __future__ import annotations

import os.path as osp
from typing import Dict, List, Optional

#: The config scope of panet_mm (``_base_ = 'panet_mm::...'``, the registries' scope).
SCOPE = 'panet_mm'
#: How a config shipped with panet_mm is named in ``_base_`` and on the tools' command lines.
SCOPE_PREFIX = SCOPE + '::'


def config_roots() -> List[str]:
    """Folders holding panet_mm's configs: the installed copy (``.mim``), then a checkout's ``configs/``."""
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
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


def missing_config_message(config: str) -> Optional[str]:
    """One sentence (``{param}`` for the parameter) answering a missing ``configs/<name>.py`` path with the shipped
    config's ``panet_mm::`` name and its model name; None where no shipped config has that file name."""
    hint = shipped_config_hint(config)
    if hint is None:
        return None
    return f"{{param}} file '{config}' does not exist here (a path in a panet_mm checkout); {hint}"


__all__ = ['SCOPE', 'SCOPE_PREFIX', 'config_not_found', 'config_roots', 'find_config', 'missing_config_message',
           'registered_models', 'shipped_config', 'shipped_config_hint', 'unknown_config']
