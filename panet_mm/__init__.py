"""panet_mm: Pyramid Attention Networks (Mei et al. 2020) as an mmagic plugin.

Importing the package registers its modules in mmagic's registries; configs pull it in with
``custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)``.
The torch-only attention maths is in :mod:`panet_mm.ops.pyramid_attention`. Importing it also lets
mmengine resolve ``_base_ = 'panet_mm::panet/<config>.py'`` (:mod:`panet_mm.registry`). The stack's own
import-time deprecation warnings (mmagic, transformers, diffusers) are not shown (:mod:`panet_mm.engine.quiet`).
"""
import warnings

from .utils.compat import add_numpy_aliases

add_numpy_aliases()  # before mmagic is imported: mmagic 1.2.0 uses np.bool8, which numpy 2 removed

with warnings.catch_warnings(record=True) as _early:  # the stack's deprecations, dropped below
    warnings.simplefilter('always')
    from . import datasets, engine, models, registry  # noqa: E402,F401  (registers the modules and the scope)
from .engine.quiet import replay_warnings  # noqa: E402
from .version import __version__  # noqa: E402

replay_warnings(_early)  # every warning but the known third-party deprecations (engine/quiet.py)
del _early

__all__ = ["__version__", "datasets", "engine", "models"]
