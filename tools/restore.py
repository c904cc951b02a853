"""Restore your own images (one file or a folder) with a trained panet_mm model.

    python tools/restore.py --config CONFIG --checkpoint CKPT INPUT OUTPUT [options]

The command line is :mod:`panet_mm.apis.restore_cli` (``--help`` lists the options). It is loaded
from the installed package's folder without importing the package, so that ``--help`` stays instant.
"""
import importlib.util
import os.path as osp
import sys


def load_cli():
    """``panet_mm/apis/restore_cli.py`` as a module of its own (the package import pulls in torch)."""
    found = importlib.util.find_spec('panet_mm')
    if found is None or not found.submodule_search_locations:
        sys.exit('error: panet_mm is not importable; install it (pip install -e .) or run from the repository')
    path = osp.join(list(found.submodule_search_locations)[0], 'apis', 'restore_cli.py')
    spec = importlib.util.spec_from_file_location('panet_mm_restore_cli', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == '__main__':
    sys.exit(load_cli().main())
