"""What differs between the two tested stacks, in one place (README "Stacks").

The pinned stack (torch 2.5.1, numpy 1.26) matches an existing mmagic 1.2 environment; the modern one
(torch 2.14, numpy 2) serves new GPUs and numpy 2. Every branch on a dependency's version lives here, each
shim saying why it exists and when it can go; the rest of panet_mm is one code base for both.

This file imports only the standard library at module level: it runs as a script
(``python panet_mm/utils/compat.py --install-startup-hook``, called by ``STACK=modern
bash tools/setup_env.sh``) and the start-up hook it installs loads it by path when Python starts, before
numpy, torch or panet_mm exist, so it must not import them (nor its own package) at import time.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import site
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple

#: Removed numpy aliases that mmagic 1.2.0 still uses (``np.bool8`` in mmagic/utils/trans_utils.py).
#: Can go when mmagic publishes a release that no longer uses them (1.2.0 is its latest, January 2024).
NUMPY_REMOVED_ALIASES = {'bool8': 'bool_'}

#: Name of the ``.pth`` file that :func:`install_startup_hook` writes into a venv's site-packages.
STARTUP_HOOK_PTH = 'panet_mm_numpy2_compat.pth'


def add_numpy_aliases(np: Optional[ModuleType] = None) -> None:
    """Put back the numpy 1 aliases mmagic 1.2.0 uses, on numpy 2 only (numpy 1 still has them).

    Why: numpy 2 removed ``np.bool8``; mmagic 1.2.0 calls it, so its data pipelines fail on numpy 2.
    Importing panet_mm runs this before mmagic is imported; the start-up hook (:func:`install_startup_hook`)
    runs it for programs that never import panet_mm first (mmagic's own ``tools/train.py``, its demos).
    When it can go: with :data:`NUMPY_REMOVED_ALIASES`.

    Args:
        np (ModuleType, optional): The numpy module; imported when not given.
    """
    if np is None:
        import numpy as np
    if int(np.__version__.split('.')[0]) < 2:
        return  # numpy 1 has them (deprecated); touching them would only warn
    for alias, target in NUMPY_REMOVED_ALIASES.items():
        if alias not in vars(np):
            setattr(np, alias, getattr(np, target))


class _NumpyAliasFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that calls :func:`add_numpy_aliases` right after numpy's own import finishes.

    Why: the hook runs when Python starts; importing numpy there would slow every start-up (pip's too),
    so it waits for the program's own ``import numpy``.
    """

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != 'numpy':
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]  # one shot: numpy is imported once
        spec = importlib.util.find_spec('numpy')
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_alias(module: ModuleType) -> None:
            exec_module(module)
            add_numpy_aliases(module)

        spec.loader.exec_module = exec_then_alias  # type: ignore[method-assign]  # this spec's loader only
        return spec


def install_numpy_import_hook() -> None:
    """Add the numpy aliases now if numpy is imported, else as soon as it is (idempotent)."""
    if 'numpy' in sys.modules:
        add_numpy_aliases(sys.modules['numpy'])
    elif not any(type(f).__name__ == _NumpyAliasFinder.__name__ for f in sys.meta_path):
        sys.meta_path.insert(0, _NumpyAliasFinder())


def install_startup_hook(site_packages: Optional[Path] = None) -> Path:
    """Write a ``.pth`` file that runs :func:`install_numpy_import_hook` whenever this Python starts.

    Why a ``.pth`` file: it is the one place Python itself runs code at start-up in a given environment
    (``sitecustomize`` can exist only once and may be taken); patching mmagic's installed files instead
    would be undone by any reinstall and break pip's record of them. The line loads this file by path, so
    starting Python does not import panet_mm, torch or numpy; if this file has moved, the line does
    nothing. It can go when :data:`NUMPY_REMOVED_ALIASES` can.

    Args:
        site_packages (Path, optional): Where to write it; the running Python's site-packages by default.

    Returns:
        Path: The ``.pth`` file written.
    """
    target = Path(site_packages) if site_packages else Path(site.getsitepackages()[0])
    source = str(Path(__file__).resolve())
    # .pth lines that start with "import" are executed; the whole hook must fit on that one line.
    line = (f'import importlib.util as u, os; p = {source!r}; s = os.path.isfile(p) and '
            'u.spec_from_file_location("_panet_mm_startup_compat", p); m = s and u.module_from_spec(s); '
            's and (s.loader.exec_module(m), m.install_numpy_import_hook())')
    pth = target / STARTUP_HOOK_PTH
    tmp = pth.with_suffix('.tmp')
    tmp.write_text('# numpy 2 aliases for mmagic 1.2.0, written by panet_mm/utils/compat.py\n' + line + '\n')
    tmp.replace(pth)
    return pth


def numpy_core_module(name: str) -> ModuleType:
    """``numpy.core.<name>`` on numpy 1, ``numpy._core.<name>`` on numpy 2 (renamed; the old path warns).

    Why: torch's weights-only unpickler needs the very functions that pickles name, e.g.
    ``multiarray._reconstruct``. When it can go: when numpy 1 is no longer supported.

    Args:
        name (str): Submodule of numpy's core, e.g. ``'multiarray'``.

    Returns:
        ModuleType: The imported submodule.
    """
    import numpy as np
    package = 'numpy.core' if int(np.__version__.split('.')[0]) < 2 else 'numpy._core'
    return importlib.import_module(f'{package}.{name}')


@functools.cache
def numpy_pickle_aliases() -> Tuple[Callable[..., Any], ...]:
    """numpy's array and scalar constructors under the module name the *other* numpy major writes.

    Why: a pickle names the functions that rebuild numpy data by module: numpy 1 writes
    ``numpy.core.multiarray.scalar``, numpy 2 ``numpy._core.multiarray.scalar``. torch's weights-only
    unpickler matches allowed globals by ``__module__`` and ``__name__``, so a checkpoint written on one
    stack (mmengine's message hub holds numpy scalars) would be refused on the other. These forwarders
    carry the other name and call the installed function; torch 2.5 has no ``(func, name)`` form of
    ``safe_globals``, so a named forwarder is what works on both stacks. When it can go: with numpy 1.

    Returns:
        tuple: One forwarder per constructor, the same objects on every call.
    """
    import numpy as np
    other = 'numpy._core.multiarray' if int(np.__version__.split('.')[0]) < 2 else 'numpy.core.multiarray'
    installed = numpy_core_module('multiarray')
    aliases = []
    for name in ('_reconstruct', 'scalar'):
        func = getattr(installed, name)

        def forward(*args: Any, _func: Callable[..., Any] = func) -> Any:
            return _func(*args)

        forward.__module__, forward.__name__, forward.__qualname__ = other, name, name
        aliases.append(forward)
    return tuple(aliases)


def torch_load_defaults_to_weights_only() -> bool:
    """Whether a plain ``torch.load(f)`` loads weights-only, as torch >= 2.6 does.

    Why: mmengine 0.10.7 reads checkpoints with a plain ``torch.load``. From torch 2.6 on that refuses the
    ``HistoryBuffer`` objects of mmengine's message hub, so under mmagic's own ``tools/train.py`` a run
    cannot ``--resume`` a checkpoint written without :class:`~panet_mm.engine.WeightsOnlyCheckpointHook`
    (panet_mm's runner, tools and loaders are not affected). When it can go: when mmengine's loader
    passes ``weights_only`` itself, or torch < 2.6 is no longer supported.
    """
    import torch
    major, minor = (int(part) for part in torch.__version__.split('+')[0].split('.')[:2])
    return (major, minor) >= (2, 6)


def _main(argv: Optional[Iterable[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='panet_mm stack compatibility helpers.')
    parser.add_argument('--install-startup-hook', action='store_true',
                        help="write the numpy 2 alias start-up hook into this Python's site-packages")
    parser.add_argument('--site-packages', type=Path, default=None,
                        help='where to write it (default: the running Python\'s site-packages)')
    args = parser.parse_args(None if argv is None else list(argv))
    if not args.install_startup_hook:
        parser.print_help()
        return 0
    print(f'wrote {install_startup_hook(args.site_packages)}')
    return 0


if __name__ == '__main__':
    sys.exit(_main())
