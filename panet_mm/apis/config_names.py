"""The shipped config a missing ``configs/<name>.py`` path means, for the refusals of the restore APIs.

Why it exists: the README writes configs as checkout paths (``configs/panet_sr_x2_div2k.py``); from any
other directory, or with an installed wheel, such a path does not exist, and the refusal listed every
model name instead of the one config the user meant.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

from panet_mm.registry import SCOPE_PREFIX, config_roots, registered_models


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


def missing_config_message(config: str) -> Optional[str]:
    """One sentence (``{param}`` for the parameter) answering a missing ``configs/<name>.py`` path with the shipped
    config's ``panet_mm::`` name and its model name; None where no shipped config has that file name."""
    shipped = shipped_config(config)
    if shipped is None:
        return None
    base = osp.basename(str(config).replace('\\', '/'))
    names = sorted(name for name, path in registered_models().items() if osp.basename(path) == base)
    also = f" or its model name '{names[0]}'" if names else ''
    return (f"{{param}} file '{config}' does not exist here (a path in a panet_mm checkout); pass the config "
            f"panet_mm ships, '{shipped}'{also}")


__all__ = ['missing_config_message', 'shipped_config']
