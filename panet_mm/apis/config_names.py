"""The shipped config a missing ``configs/<name>.py`` path means, for the refusals of the restore APIs.

Why it exists: the README writes configs as checkout paths (``configs/panet_sr_x2_div2k.py``); from any
other directory, or with an installed wheel, such a path does not exist, and the refusal listed every
model name instead of the one config the user meant.
"""
from __future__ import annotations

from typing import Optional

from panet_mm.registry import shipped_config_hint


def missing_config_message(config: str) -> Optional[str]:
    """One sentence (``{param}`` for the parameter) answering a missing ``configs/<name>.py`` path with the shipped
    config's ``panet_mm::`` name and its model name; None where no shipped config has that file name."""
    hint = shipped_config_hint(config)
    if hint is None:
        return None
    return f"{{param}} file '{config}' does not exist here (a path in a panet_mm checkout); {hint}"


__all__ = ['missing_config_message']
