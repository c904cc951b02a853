"""The offline demo data set: real photographs from scikit-image in mmagic's DIV2K / Set5 layout.

Built by ``tools/dataset_converters/make_demo_data.py`` (its docstring describes the layout and the
marker file). Everything here is deterministic: the same call always writes the same bytes.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import os.path as osp
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Dict, Iterator, List, Sequence, Tuple

import cv2
import numpy as np

from ..utils.errors import PanetMMError, ParameterError
from ..utils.fileio import atomic_write, temp_file_target
from . import prepare


class DemoDataError(PanetMMError):
    """The demo data cannot be made: scikit-image or its photos are missing, or the output folder is unusable."""


class DemoDataParameterError(ParameterError, DemoDataError):
    """An unusable ``out`` folder; names the parameter (``out``, ``overwrite=True``) so a CLI can name its flag."""


MARKER = '.panet_mm_demo'

# Real photographs from skimage/data, in a fixed order: the order gives the DIV2K-style indices
# 0001, 0002, ... Grayscale photos are stored as 3 equal channels. motorcycle_right.png is not
# used: it is the other half of the stereo pair motorcycle_left.png, which is held out.
TRAIN_PHOTOS = (
    'hubble_deep_field.jpg', 'retina.jpg', 'ihc.png', 'camera.png', 'brick.png', 'grass.png', 'gravel.png',
    'moon.png', 'coins.png', 'page.png', 'text.png'
)
VAL_PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png')

TRAIN_MAX_SIDE = 320  # training photos are shrunk to this longer side before cropping
CROP_SIZE = 120  # HR sub-image size; divisible by 12 so that x2, x3, x4 (and x6) LR sizes are integral
STEP = 60
THRESH_SIZE = 0
VAL_MAX_SIDE = 128  # attention is quadratic in pixels: keep validation cheap
VAL_MOD = 12

HR_SUB_DIR = 'DIV2K/DIV2K_train_HR_sub'
LR_SUB_DIR = 'DIV2K/DIV2K_train_LR_bicubic/X{}_sub'
META_FILE = 'DIV2K/meta_info_DIV2K800sub_GT.txt'
VAL_GT_DIR = 'Set5/GTmod12'
VAL_LR_DIR = 'Set5/LRbicx{}'
SUPPORTED_SCALES = tuple(s for s in range(2, VAL_MOD + 1) if CROP_SIZE % s == 0 and VAL_MOD % s == 0)


def skimage_data_dir() -> Tuple[str, str]:
    """Locate skimage/data without importing scikit-image; return (folder, scikit-image version)."""
    spec = importlib.util.find_spec('skimage')
    if spec is None or not spec.submodule_search_locations:
        raise DemoDataError('the demo photos come from the scikit-image package, which is not installed; '
                         'run `pip install scikit-image`.')
    try:
        skimage_version = version('scikit-image')
    except PackageNotFoundError:
        skimage_version = 'unknown'
    data_dir = osp.join(list(spec.submodule_search_locations)[0], 'data')
    missing = [n for n in TRAIN_PHOTOS + VAL_PHOTOS if not osp.isfile(osp.join(data_dir, n))]
    if missing:
        raise DemoDataError(f'scikit-image {skimage_version} at {data_dir} lacks {", ".join(missing)}; '
                         'install the tested version with `pip install scikit-image==0.24.0`.')
    return data_dir, skimage_version


@contextlib.contextmanager
def libpng_warnings_silenced() -> Iterator[None]:
    """Silence stderr at the file-descriptor level.

    Some bundled PNGs carry ICC profiles that make libpng print harmless warnings from C code,
    which Python's warning filters cannot catch. Decoding errors are still detected, since
    ``prepare.imread_color`` raises on failure.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def read_photo(data_dir: str, name: str, max_side: int) -> np.ndarray:
    """Read a bundled photo as BGR and shrink it with INTER_AREA so its longer side is <= max_side."""
    with libpng_warnings_silenced():
        img = prepare.imread_color(osp.join(data_dir, name))
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return img


FILES_HEADER = 'Files made by this tool (a rerun deletes those it no longer makes):'


def marker_text(skimage_version: str, files: Sequence[str] = ()) -> str:
    """Content of the marker file (deterministic: no dates, no absolute paths), listing ``files``."""
    lines = [
        'Made by tools/dataset_converters/make_demo_data.py (panet_mm). Rerunning the tool rewrites this folder; '
        'it is safe to delete.',
        f'Source: real photographs from skimage/data of scikit-image {skimage_version}.',
        'Training photos (DIV2K index = file):',
    ]
    lines += [f'  {i:04d} = {name}' for i, name in enumerate(TRAIN_PHOTOS, 1)]
    lines += ['Held-out validation photos (Set5):'] + [f'  {name}' for name in VAL_PHOTOS]
    lines += [FILES_HEADER] + [f'  {f}' for f in sorted(files)]
    return '\n'.join(lines) + '\n'


def recorded_files(out: str) -> List[str]:
    """The files the marker of ``out`` lists as made by this tool (none for markers of older versions)."""
    try:
        with open(osp.join(out, MARKER), encoding='utf-8') as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    if FILES_HEADER not in lines:
        return []
    files = [line.strip() for line in lines[lines.index(FILES_HEADER) + 1:] if line.startswith('  ')]
    # only relative paths inside out: a tampered marker cannot name anything else
    return [f for f in files if f and not osp.isabs(f) and '..' not in f.split('/')]


def check_out_dir(out: str, overwrite: bool) -> bool:
    """Refuse a non-empty ``out`` that this module did not make, unless ``overwrite``. Return whether it is ours."""
    if osp.exists(out) and not osp.isdir(out):
        raise DemoDataParameterError('out', f'{{param}} {out} exists and is not a folder.')
    if not osp.isdir(out):
        return False
    if osp.isfile(osp.join(out, MARKER)):
        return True
    if os.listdir(out) and not overwrite:
        raise DemoDataParameterError('overwrite=True', f'{out} is not empty and was not made by this tool (no {MARKER} '
                                     'file in it); choose another output folder, or pass {param} to write into it '
                                     'anyway.')
    return False


def prune_stale(out: str, previous: Sequence[str], current: Sequence[str]) -> int:
    """Delete the files an earlier run recorded that this run does not make, and this tool's temporary files.

    Only what the tool can prove it made is touched: files listed in the marker (``previous``) and
    the atomic writer's temporary files (:func:`panet_mm.utils.fileio.temp_file_target`) of those names or
    of ``current``. Folders left empty by the deletion are removed too.
    """
    out_real = osp.realpath(out)
    stale = sorted(set(previous) - set(current))
    names = set(previous) | set(current)
    folders = {osp.dirname(f) for f in names}
    for folder in folders:
        path = osp.join(out, folder)
        if osp.isdir(path):
            for f in os.listdir(path):
                target = temp_file_target(f)
                if target and osp.join(folder, target) in names:
                    stale.append(osp.join(folder, f))
    removed = 0
    for rel in stale:
        path = osp.join(out, rel)
        if osp.isfile(path) and not osp.islink(path) and osp.realpath(path).startswith(out_real + os.sep):
            os.remove(path)
            removed += 1
    for folder in sorted(folders - {''}, key=len, reverse=True):
        with contextlib.suppress(OSError):  # not empty, or already gone
            os.rmdir(osp.join(out, folder))
    return removed


def make_demo_data(out: str, scales: Sequence[int], overwrite: bool = False) -> Dict[str, object]:
    """Build the demo data set under ``out`` and return a summary of what was written."""
    data_dir, skimage_version = skimage_data_dir()
    ours = check_out_dir(out, overwrite)
    previous = recorded_files(out) if ours else []

    try:
        from tqdm import tqdm
        bar = tqdm(total=len(TRAIN_PHOTOS) + len(VAL_PHOTOS), desc='demo data', unit='photo')
    except ImportError:  # tqdm is an install requirement, but keep going without it
        bar = None

    # Everything is computed first (a few MB), so that the marker lists every file before it is written.
    files: Dict[str, np.ndarray] = {}
    meta: List[Tuple[str, Tuple[int, ...]]] = []
    for index, name in enumerate(TRAIN_PHOTOS, 1):
        img = read_photo(data_dir, name, TRAIN_MAX_SIDE)
        for sub_name, sub in prepare.crop_sub_images(img, f'{index:04d}', CROP_SIZE, STEP, THRESH_SIZE):
            files[f'{HR_SUB_DIR}/{sub_name}'] = sub
            for s in scales:
                files[f'{LR_SUB_DIR.format(s)}/{sub_name}'] = prepare.bicubic_downscale(sub, s)
            meta.append((sub_name, sub.shape))
        if bar is not None:
            bar.update()

    val_sizes: Dict[str, Tuple[int, int]] = {}
    for name in VAL_PHOTOS:
        gt = prepare.mod_crop(read_photo(data_dir, name, VAL_MAX_SIDE), VAL_MOD)
        png = osp.splitext(name)[0] + '.png'
        files[f'{VAL_GT_DIR}/{png}'] = gt
        for s in scales:
            files[f'{VAL_LR_DIR.format(s)}/{png}'] = prepare.bicubic_downscale(gt, s)
        val_sizes[png] = gt.shape[:2]
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()

    current = sorted(files) + [META_FILE]
    os.makedirs(out, exist_ok=True)
    # The marker goes first and lists what an interrupted run may leave, so that a rerun can clean it up.
    marker = osp.join(out, MARKER)
    atomic_write(marker, marker_text(skimage_version, sorted(set(previous) | set(current))).encode())
    for rel, img in files.items():
        prepare.imwrite_atomic(img, osp.join(out, rel))
    removed = prune_stale(out, previous, current)
    atomic_write(marker, marker_text(skimage_version, current).encode('utf-8'))
    # Written last: a complete meta-info file means a complete data set.
    prepare.write_meta_info(osp.join(out, META_FILE), meta)
    return dict(train=len(meta), val=val_sizes, removed=removed, skimage_version=skimage_version)


__all__ = ['DemoDataError', 'DemoDataParameterError', 'SUPPORTED_SCALES', 'check_out_dir', 'make_demo_data',
           'marker_text', 'prune_stale', 'recorded_files', 'skimage_data_dir']
