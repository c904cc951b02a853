"""The degraded inputs of the benchmark test sets, written once per source image.

``tools/dataset_converters/prepare_testsets.py`` runs these in worker processes; its docstring lists
the folders. Each writer returns the number of files it wrote (existing files are kept unless
``overwrite``), so that a rerun is cheap and reports what changed.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from .image_io import ImageFileError, imread_verified
from .prepare import bicubic_downscale, imwrite_atomic, mod_crop
from .transforms import TEST_SEED, add_gaussian_noise, bayer_mosaic, gray_or_y, image_seed, jpeg_compress

#: GTmod12: every scale in 2, 3, 4 divides the HR size.
SR_MOD = 12
#: The SR ground-truth crops :func:`process_sr` can write: ``'12'`` (``GTmod12`` and ``LRbicx{s}``, mmagic's and
#: BasicSR's layout, one GT for every scale) and ``'scale'`` (``GTmod{s}`` and ``LRbicx{s}_GTmod{s}``: the HR cropped
#: to a multiple of each scale only, as the released test data were, so scores compare with the paper's tables).
SR_CROPS = ('12', 'scale')


@dataclass(frozen=True)
class TestSetOptions:
    """What to write for every image: noise levels, JPEG qualities, Bayer patterns, SR scales."""

    sigmas: Sequence[float] = (10, 30, 50, 70)
    qualities: Sequence[int] = (10, 20, 30, 40)
    patterns: Sequence[str] = ('GRBG', )
    scales: Sequence[int] = (2, 3, 4)
    sr_crops: Sequence[str] = ('12', )
    overwrite: bool = False
    max_pixels: Optional[int] = None


def _write(img: np.ndarray, path: str, overwrite: bool) -> int:
    """Write ``img`` atomically unless ``path`` exists (and not ``overwrite``); return 1 if written."""
    if not overwrite and osp.exists(path):
        return 0
    imwrite_atomic(img, path)
    return 1


def _read(path: str, flags: int, options: TestSetOptions) -> np.ndarray:
    """Read an 8-bit image, verified whole first; a damaged or unsuitable one raises ``ImageFileError``."""
    img = imread_verified(path, flags, options.max_pixels)
    if img.dtype != 'uint8':
        raise ImageFileError(f"'{path}' has {img.dtype} pixels; the test sets need 8-bit images")
    return img


def process_color(job: Tuple[str, str], set_dir: str, options: TestSetOptions) -> int:
    """GT, noisy and mosaic images of one colour test image ``job = (source path, output name)``."""
    src, name = job
    bgr = _read(src, cv2.IMREAD_COLOR, options)
    written = _write(bgr, osp.join(set_dir, 'GT', f'{name}.png'), options.overwrite)
    seed = image_seed(name, TEST_SEED)  # what SeededGaussianNoise derives from the dataset key NAME
    for sigma in options.sigmas:
        noisy = add_gaussian_noise(bgr, sigma, seed, channel_order='bgr')
        written += _write(noisy, osp.join(set_dir, f'noisy_sigma{sigma:g}', f'{name}.png'), options.overwrite)
    for pattern in options.patterns:
        mosaic = bayer_mosaic(bgr, pattern, channel_order='bgr')
        written += _write(mosaic, osp.join(set_dir, f'mosaic_{pattern.lower()}', f'{name}.png'), options.overwrite)
    return written


def process_gray(job: Tuple[str, str], set_dir: str, options: TestSetOptions) -> int:
    """Grey / Y ground truth and JPEG inputs of one image."""
    src, name = job
    gray = gray_or_y(_read(src, cv2.IMREAD_UNCHANGED, options), channel_order='bgr')[..., 0]
    written = _write(gray, osp.join(set_dir, 'GT_gray', f'{name}.png'), options.overwrite)
    for quality in options.qualities:
        written += _write(jpeg_compress(gray, quality), osp.join(set_dir, f'jpeg_q{quality}', f'{name}.png'),
                          options.overwrite)
    return written


def sr_folders(scale: int, crop: str) -> Tuple[str, str]:
    """``(LR folder, GT folder)`` of one scale in the layout of one of :data:`SR_CROPS`."""
    if crop == '12':
        return f'LRbicx{scale}', f'GTmod{SR_MOD}'
    return f'LRbicx{scale}_GTmod{scale}', f'GTmod{scale}'


def process_sr(job: Tuple[str, str], set_dir: str, options: TestSetOptions) -> int:
    """Mod-cropped HR and bicubic LR images of one SR test image, in each layout of ``options.sr_crops``."""
    src, name = job
    img = _read(src, cv2.IMREAD_COLOR, options)
    mods = [SR_MOD if crop == '12' else s for crop in options.sr_crops for s in options.scales]
    if min(img.shape[:2]) < max(mods):
        raise ImageFileError(f"'{src}' is {img.shape[1]}x{img.shape[0]} pixels, smaller than the GTmod{max(mods)} "
                             'crop')
    written = 0
    for crop in options.sr_crops:
        for s in options.scales:
            lr_dir, gt_dir = sr_folders(s, crop)
            gt = mod_crop(img, SR_MOD if crop == '12' else s)
            if crop != '12' or s == options.scales[0]:  # (GTmod12 is one folder for every scale)
                written += _write(gt, osp.join(set_dir, gt_dir, f'{name}.png'), options.overwrite)
            written += _write(bicubic_downscale(gt, s), osp.join(set_dir, lr_dir, f'{name}.png'), options.overwrite)
    return written


#: A file in a prepared set's folder (a dataset's ``data_root``) saying that its preparation did not finish; its
#: text says why. :class:`~panet_mm.datasets.CheckedImageDataset` refuses to evaluate on such a set.
INCOMPLETE_MARK = '.incomplete'


def mark_incomplete(set_dir: str, why: Optional[str], tool: str = '') -> None:
    """Mark ``set_dir`` as not fully prepared (``why``, by ``tool``), or, with ``why=None``, as complete.

    Why: a set whose preparation stopped at a damaged image kept the images made before it, and a later
    ``tools/test.py`` scored that part as if it were the benchmark. The file's second line names the tool that
    wrote it, for whoever finds it in the folder (:func:`read_incomplete`).
    """
    from panet_mm.utils.fileio import atomic_write
    path = osp.join(set_dir, INCOMPLETE_MARK)
    if why is not None:
        by = f'written by {tool}; run it again to finish the folder (files already made are kept)\n' if tool else ''
        atomic_write(path, f'{why}\n{by}')
    elif osp.exists(path):
        os.remove(path)


def read_incomplete(set_dir: str) -> Optional[Tuple[str, str]]:
    """``(why, tool)`` of ``set_dir``'s :data:`INCOMPLETE_MARK` (``tool`` may be ''), or None if it has none."""
    path = osp.join(set_dir, INCOMPLETE_MARK)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = [line.strip() for line in f if line.strip()]
    why = lines[0] if lines else 'unknown reason'
    found = re.match(r'written by (\S+);', lines[1]) if len(lines) > 1 else None
    return why, found.group(1) if found else ''


#: The writer of each task a test set serves: 'color' (denoising, demosaicing), 'gray' (JPEG), 'sr'.
PROCESSORS: Dict[str, Callable[..., int]] = {'color': process_color, 'gray': process_gray, 'sr': process_sr}

__all__ = ['INCOMPLETE_MARK', 'PROCESSORS', 'SR_CROPS', 'SR_MOD', 'TestSetOptions', 'mark_incomplete', 'process_color',
           'process_gray', 'process_sr', 'read_incomplete', 'sr_folders']
