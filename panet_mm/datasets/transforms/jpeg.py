"""JPEG compression at an exact quality with OpenCV, reproducible per image.

Why a new transform: mmagic's ``RandomJPEGCompression`` (used by the JPEG configs for *training*)
draws the quality and the apply-or-not decision from numpy's global random state even when the
quality range is a single value, only handles grey images through ``cv2.imdecode(..., 0)`` (which
turns colour into OpenCV's luma, not the paper's BT.601 Y) and returns grey images as ``(H, W)``.
:class:`JPEGCompression` compresses at an exact quality without touching any global state (a quality
*range* picks one quality per image from a seed derived from the image's name), keeps the image's
shape and channel order, and is the function ``tools/dataset_converters/prepare_testsets.py`` writes the test inputs
with, so prepared files and on-the-fly compression give identical pixels.

The codec is OpenCV's: ``cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, q])`` followed by
``cv2.imdecode`` (libjpeg-turbo in the opencv-python wheels; baseline, standard IJG quantisation
tables scaled by ``q``, no optimisation or progressive mode). Grey images are encoded as
one-component JPEGs (as MATLAB's ``imwrite(Y, f, 'Quality', q)`` of the paper's protocol does);
colour images with OpenCV's defaults (YCbCr, 4:2:0 chroma subsampling).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmagic.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from .color import channel_order_of, check_channel_order
from .seeding import TEST_SEED, image_name, image_seed

Quality = Union[int, Sequence[int]]


def check_quality(quality: Quality, where: str) -> Tuple[int, int]:
    """``(low, high)`` of a quality given as one int or a ``[low, high]`` range, each in 1..100."""
    values = [quality] if isinstance(quality, (int, np.integer)) and not isinstance(quality, bool) else quality
    try:
        low, high = (int(values[0]), int(values[-1])) if len(values) in (1, 2) else (None, None)
        ok = low is not None and all(int(v) == v for v in values) and 1 <= low <= high <= 100
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f'{where}: quality must be an integer in 1..100 or a [low, high] range of them '
                         f'(e.g. 10 or [10, 40]), got {quality!r}')
    return low, high


def jpeg_compress(img: np.ndarray, quality: int, channel_order: str = 'rgb') -> np.ndarray:
    """Compress ``img`` to JPEG at ``quality`` with OpenCV and decode it back.

    Args:
        img: ``uint8`` image, ``(H, W)`` or ``(H, W, 1)`` (grey, one-component JPEG) or
            ``(H, W, 3)`` (colour).
        quality: JPEG quality, an integer in 1..100 (``cv2.IMWRITE_JPEG_QUALITY``).
        channel_order: Order of a colour image's channels, ``'rgb'`` or ``'bgr'``. Default: ``'rgb'``.

    Returns:
        The decoded ``uint8`` image, of the input's shape and channel order.

    Raises:
        ValueError: If the image is not ``uint8`` with 1 or 3 channels, or the quality is invalid.
    """
    low, high = check_quality(quality, 'jpeg_compress')
    if low != high:
        raise ValueError(f'jpeg_compress needs one quality, got the range {quality!r}; pick one first')
    order = check_channel_order(channel_order, 'jpeg_compress')
    if img.dtype != np.uint8:
        raise ValueError(f'jpeg_compress needs a uint8 image (0-255), got dtype {img.dtype}; '
                         'round and clip it to uint8 first')
    grey = img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1)
    if not grey and not (img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f'jpeg_compress expects an (H, W), (H, W, 1) or (H, W, 3) image, got {img.shape}')
    src = img.reshape(img.shape[:2]) if grey else (img[..., ::-1] if order == 'rgb' else img)
    ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(src), [int(cv2.IMWRITE_JPEG_QUALITY), low])
    if not ok:
        raise ValueError(f'OpenCV could not JPEG-encode an image of shape {img.shape}')
    out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if grey:
        return out.reshape(img.shape)
    return np.ascontiguousarray(out[..., ::-1]) if order == 'rgb' else out


def pick_quality(quality: Quality, name: str, seed: int = TEST_SEED) -> int:
    """The quality an image gets: ``quality`` itself, or one drawn from a ``[low, high]`` range by the image's seed.

    Args:
        quality: One quality or a ``[low, high]`` range (inclusive).
        name: The image's name (see :func:`~panet_mm.datasets.transforms.seeding.image_name`).
        seed: Base seed. Default: 0.

    Returns:
        The quality, in ``[low, high]``.
    """
    low, high = check_quality(quality, 'pick_quality')
    if low == high:
        return low
    return low + image_seed(name, seed, 'jpeg') % (high - low + 1)


@TRANSFORMS.register_module()
class JPEGCompression(BaseTransform):
    """JPEG compression at an exact quality with OpenCV (see :func:`jpeg_compress`).

    Deterministic: with one quality no randomness is involved at all; with a ``[low, high]`` range
    each image gets one quality drawn from a seed derived from its name and ``seed``, the same in
    every run, process and loading order. For the paper's JPEG models the input is the grey / Y
    image (see :class:`~panet_mm.datasets.transforms.color.GrayOrY`) compressed as a grey JPEG.

    Args:
        keys (list[str]): Results keys of the images to compress, e.g. ``['img']``.
        quality (int | list[int]): JPEG quality 1..100 (10, 20, 30, 40 in the paper), or an
            inclusive ``[low, high]`` range to draw one quality per image from.
        seed (int): Base seed for quality ranges. Default: 0.
        name_key (str): Results key naming the image, used with quality ranges (mmagic datasets set
            ``'key'``; without it the stem of ``gt_path`` / ``img_path``). Default: ``'key'``.
        channel_order (str, optional): ``'rgb'`` or ``'bgr'`` for colour images. Default: None,
            i.e. ``{key}_channel_order`` from the results, else ``'rgb'``.
    """

    def __init__(self,
                 keys: Sequence[str],
                 quality: Quality,
                 seed: int = TEST_SEED,
                 name_key: str = 'key',
                 channel_order: Optional[str] = None) -> None:
        self.keys: List[str] = [keys] if isinstance(keys, str) else list(keys)
        if not self.keys:
            raise ValueError('JPEGCompression needs at least one key in keys, e.g. keys=["img"]')
        check_quality(quality, 'JPEGCompression')
        self.quality = quality
        self.seed = seed
        self.name_key = name_key
        self.channel_order = None if channel_order is None else check_channel_order(
            channel_order, 'JPEGCompression')

    def transform(self, results: dict) -> dict:
        """Compress ``results[key]`` for every key.

        Args:
            results (dict): Pipeline results holding ``uint8`` images.

        Returns:
            dict: The results with the decoded JPEG images.
        """
        low, high = check_quality(self.quality, 'JPEGCompression')
        quality = low if low == high else pick_quality(self.quality, image_name(results, self.name_key), self.seed)
        for key in self.keys:
            if key not in results:
                raise KeyError(f"JPEGCompression: results have no '{key}'; copy or load it first "
                               f'or fix keys={self.keys}')
            order = channel_order_of(results, key, self.channel_order, 'JPEGCompression')
            results[key] = jpeg_compress(results[key], quality, order)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(keys={self.keys}, quality={self.quality}, seed={self.seed})'


__all__ = ['JPEGCompression', 'check_quality', 'jpeg_compress', 'pick_quality']
