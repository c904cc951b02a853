"""Grey / Y-channel conversion used by the JPEG artifact reduction configs.

Why a new transform: PANet's JPEG models work on one channel, the Y channel of colour images (as
in the paper's protocol: MATLAB's ``rgb2ycbcr``, ITU-R BT.601 with the 16-235 range) and the grey
values of grey images (Classic5). mmagic's ``LoadImageFromFile(to_y_channel=True)`` computes the same
Y for colour images, but (1) it maps grey images to ``16 + 219/255 * v`` instead of keeping ``v``, and
(2) it leaves ``{key}_color_type='color'`` / ``channel_order='rgb'`` in the results, so that mmagic's
``DataPreprocessor`` tries to convert the 1-channel tensor from RGB to BGR at test time and fails.
:class:`GrayOrY` keeps grey images as they are, converts colour ones with mmcv's ``rgb2ycbcr`` /
``bgr2ycbcr`` (the utilities mmagic's loading and metrics use) and marks the result as grayscale.
"""
from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

import mmcv
import numpy as np
from mmagic.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

CHANNEL_ORDERS = ('rgb', 'bgr')


def check_channel_order(channel_order: str, where: str) -> str:
    """Return ``channel_order`` lower-cased, or raise a ValueError naming ``where``."""
    order = str(channel_order).lower()
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"{where}: channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    return order


def channel_order_of(results: Mapping, key: str, channel_order: Optional[str], where: str) -> str:
    """The channel order of ``results[key]``: the given one, else ``{key}_channel_order``, else ``'rgb'``.

    A recorded order other than ``'rgb'`` / ``'bgr'`` (e.g. ``'single'`` for grey images) counts as
    ``'rgb'``: it only matters for 3-channel images.
    """
    if channel_order is None:
        recorded = str(results.get(f'{key}_channel_order') or 'rgb').lower()
        return recorded if recorded in CHANNEL_ORDERS else 'rgb'
    return check_channel_order(channel_order, where)


def drop_alpha(img: np.ndarray) -> np.ndarray:
    """``img`` without its alpha channel: grey + alpha (2 channels) and colour + alpha (4) lose the last one.

    The pixels keep their stored values (transparent ones are not blended with any background); other
    images are returned as they are. Returns a view, not a copy.
    """
    return img[..., :-1] if img.ndim == 3 and img.shape[2] in (2, 4) else img


def is_gray(img: np.ndarray) -> bool:
    """Whether ``img`` is a grey image: 2-D, 1 channel, or 3 equal channels."""
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return True
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return bool(np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2]))
    return False


def gray_or_y(img: np.ndarray, channel_order: str = 'rgb') -> np.ndarray:
    """One-channel version of an image: its grey values if it is grey, else its BT.601 Y channel.

    Grey means 2-D, one channel, or three (four with alpha) channels that are all equal; those
    values are returned unchanged. Otherwise the Y channel is MATLAB's ``rgb2ycbcr`` Y,
    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with ``R, G, B`` in ``[0, 255]``, computed
    by ``mmcv.rgb2ycbcr`` / ``mmcv.bgr2ycbcr`` with ``y_only=True``; for ``uint8`` input it is rounded
    to ``uint8`` like MATLAB's. An alpha channel is dropped.

    Args:
        img: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` image, ``uint8`` (0-255) or
            ``float32`` (0-1, mmcv's convention for float input).
        channel_order: Order of the colour channels, ``'rgb'`` or ``'bgr'``. Default: ``'rgb'``.

    Returns:
        The ``(H, W, 1)`` image, of the input's dtype.

    Raises:
        ValueError: If the image shape is not one of the above or ``channel_order`` is unknown.
    """
    order = check_channel_order(channel_order, 'gray_or_y')
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise ValueError(f'gray_or_y expects an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got {img.shape}')
    if img.ndim == 2:
        return img[..., None].copy()
    if is_gray(img):
        return img[..., :1].copy()
    rgb = drop_alpha(img)
    convert = mmcv.rgb2ycbcr if order == 'rgb' else mmcv.bgr2ycbcr
    return convert(rgb, y_only=True)[..., None]


@TRANSFORMS.register_module()
class GrayOrY(BaseTransform):
    """Turn images into one channel: grey images stay grey, colour images become their BT.601 Y.

    See :func:`gray_or_y` for the exact conversion and the module docstring for why mmagic's
    ``LoadImageFromFile(to_y_channel=True)`` is not used. The results' ``{key}_color_type`` is set
    to ``'grayscale'`` and ``{key}_channel_order`` to ``'single'`` so that mmagic's data
    pre-processor and metrics treat the image as one channel.

    Args:
        keys (list[str]): Results keys of the images to convert, e.g. ``['gt']``.
        channel_order (str, optional): Channel order of colour inputs, ``'rgb'`` or ``'bgr'``.
            Default: None, i.e. ``{key}_channel_order`` as set by ``LoadImageFromFile``, else ``'rgb'``.
    """

    def __init__(self, keys: Sequence[str], channel_order: Optional[str] = None) -> None:
        self.keys: List[str] = [keys] if isinstance(keys, str) else list(keys)
        if not self.keys:
            raise ValueError('GrayOrY needs at least one key in keys, e.g. keys=["gt"]')
        self.channel_order = None if channel_order is None else check_channel_order(channel_order, 'GrayOrY')

    def transform(self, results: dict) -> dict:
        """Convert ``results[key]`` for every key.

        Args:
            results (dict): Pipeline results holding the images.

        Returns:
            dict: The results, with ``(H, W, 1)`` images.
        """
        for key in self.keys:
            if key not in results:
                raise KeyError(f"GrayOrY: results have no '{key}'; load it first or fix keys={self.keys}")
            order = channel_order_of(results, key, self.channel_order, 'GrayOrY')
            results[key] = gray_or_y(results[key], order)
            results[f'{key}_color_type'] = 'grayscale'
            results[f'{key}_channel_order'] = 'single'
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(keys={self.keys}, channel_order={self.channel_order})'


__all__ = ['CHANNEL_ORDERS', 'GrayOrY', 'channel_order_of', 'check_channel_order', 'drop_alpha', 'gray_or_y',
           'is_gray']
