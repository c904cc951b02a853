"""Per-image seeds for reproducible test-time degradations.

mmagic's random degradations (``RandomNoise``, ``RandomJPEGCompression``, ...) draw from numpy's
global random state, so the corrupted input a test image gets depends on the worker count, the
order in which images are loaded and anything else that used the global state before. The
degradations of this package instead derive one seed per image from the image's *name* and a base
seed, with a cryptographic hash: the same test image always gets the same corrupted input, in any
process, with any number of workers and in any order, and ``tools/dataset_converters/prepare_testsets.py`` writes
exactly the inputs that the on-the-fly transforms make.
"""
from __future__ import annotations

import hashlib
import os.path as osp
from typing import Mapping, Sequence

#: Base seed of the test-set degradations (``tools/dataset_converters/prepare_testsets.py`` and the configs' fallback).
TEST_SEED = 0

#: Where :func:`image_name` looks for a file path when the results have no ``key``.
PATH_KEYS = ('gt_path', 'img_path')


def image_seed(name: str, base_seed: int = TEST_SEED, *salt: object) -> int:
    """A 64-bit seed for one image: the first 8 bytes of ``sha256("{base_seed}|{salt...}|{name}")``.

    Args:
        name: The image's name, e.g. ``'kodim01'`` (see :func:`image_name`).
        base_seed: Base seed of the whole test set. Default: :data:`TEST_SEED` (0).
        *salt: Extra values that must change the seed (e.g. the kind of degradation).

    Returns:
        An integer in ``[0, 2**64)``, usable by :func:`numpy.random.default_rng`.

    Raises:
        ValueError: If ``name`` is empty or ``base_seed`` is not an integer.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f'image_seed needs a non-empty image name, got {name!r}')
    if isinstance(base_seed, bool) or not isinstance(base_seed, int):
        raise ValueError(f'image_seed needs an integer base seed, got {base_seed!r}')
    text = '|'.join([str(base_seed), *(str(s) for s in salt), name])
    return int.from_bytes(hashlib.sha256(text.encode('utf-8')).digest()[:8], 'little')


def image_name(results: Mapping, name_key: str = 'key', path_keys: Sequence[str] = PATH_KEYS) -> str:
    """The name an image's seed is derived from: its dataset key, else the stem of its file name.

    mmagic's ``BasicImageDataset`` stores the file name without extension, relative to the image
    folder, as ``results['key']`` (``'kodim01'`` for ``GT/kodim01.png``); that is what
    ``tools/dataset_converters/prepare_testsets.py`` uses for the file it writes, so both give the same seed. Without
    a ``key`` (e.g. a pipeline fed a bare path) the stem of the first ``*_path`` entry is used.

    Args:
        results: The pipeline's results dict.
        name_key: Results key holding the name. Default: ``'key'``.
        path_keys: Results keys holding a file path, tried in order when ``name_key`` is absent.
            Default: ``('gt_path', 'img_path')``.

    Returns:
        The name, with ``/`` as the separator and no extension.

    Raises:
        KeyError: If the results hold neither ``name_key`` nor any of ``path_keys``.
    """
    name = results.get(name_key)
    if name is None:
        for key in path_keys:
            path = results.get(key)
            if isinstance(path, str) and path:
                name = osp.splitext(osp.basename(path))[0]
                break
    if not name:
        raise KeyError(f"the pipeline results hold neither '{name_key}' nor any of {list(path_keys)}, so no "
                       'per-image seed can be derived; load the image from a dataset (which sets '
                       f"'{name_key}') or set name_key to a key that names the image")
    return str(name).replace('\\', '/')


__all__ = ['PATH_KEYS', 'TEST_SEED', 'image_name', 'image_seed']
