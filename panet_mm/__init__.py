"""panet_mm: Pyramid Attention Networks (Mei et al. 2020) as an mmagic plugin.

Importing the package registers its modules in mmagic's registries; configs pull it in with
``custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)``.
The torch-only attention maths is in :mod:`panet_mm.ops.pyramid_attention`. Importing it also lets
mmengine resolve ``_base_ = 'panet_mm::panet/<config>.py'`` (:mod:`panet_mm.registry`).
"""
from .utils.compat import add_numpy_aliases

add_numpy_aliases()  # before mmagic is imported: mmagic 1.2.0 uses np.bool8, which numpy 2 removed

from . import datasets, engine, models, registry  # noqa: E402,F401  (registers the modules and the scope)
from .version import __version__  # noqa: E402

__all__ = ["__version__", "datasets", "engine", "models"]
