"""panet_mm: Pyramid Attention Networks (Mei et al. 2020) as an mmagic plugin.

Importing the package registers its modules in mmagic's registries; configs pull it in with
``custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)``.
The torch-only attention maths is in :mod:`panet_mm.ops.pyramid_attention`.
"""
from . import datasets, engine, models  # noqa: F401  (registers the modules)
from .version import __version__

__all__ = ["__version__", "datasets", "engine", "models"]
