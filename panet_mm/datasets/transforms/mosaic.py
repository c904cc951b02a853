"""Bayer colour-filter-array mosaic: the degradation of PANet's demosaicing model.

Why a new transform: mmagic has no Bayer mosaic. PANet's demosaicing model (IRCNN protocol) takes
the *zero-filled 3-channel* mosaic of an RGB image: at every pixel the channel that the colour
filter array measures there keeps its value and the other two are 0.

Phase convention (what ``pattern`` means): the 2x2 pattern is anchored at the top-left pixel
``(0, 0)`` of the array the transform receives, read row by row: ``GRBG`` means G at ``(0, 0)``,
R at ``(0, 1)``, B at ``(1, 0)`` and G at ``(1, 1)``, repeated every 2 pixels. The test inputs are
mosaics of whole images, so the network always sees the pattern anchored at its input's top-left
pixel. Training pipelines therefore crop, flip and transpose the clean ``gt`` patch *first* and
mosaic the copy last: a patch's mosaic is then exactly what the top-left corner of a test mosaic
looks like. (Mosaicking before a geometric transform would change the pattern: an h-flip of an
even-width GRBG mosaic is an RGGB mosaic, a transpose turns GRBG into GBRG, and a crop at an odd
offset shifts the phase. For even offsets, ``mosaic(crop(x)) == crop(mosaic(x))``.) At test time the
whole image is mosaicked from its own origin, so tiling a mosaic at odd offsets would present
another phase to the network: tile demosaicing inputs at even offsets only.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmagic.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from .color import channel_order_of, check_channel_order

#: The four Bayer patterns, each read row by row from the top-left 2x2 block.
BAYER_PATTERNS = ('RGGB', 'BGGR', 'GRBG', 'GBRG')


def check_pattern(pattern: str, where: str) -> str:
    """Return ``pattern`` upper-cased, or raise a ValueError naming ``where``."""
    value = str(pattern).upper()
    if value not in BAYER_PATTERNS:
        raise ValueError(f'{where}: pattern must be one of {list(BAYER_PATTERNS)}, got {pattern!r}')
    return value


def bayer_mask(height: int, width: int, pattern: str = 'GRBG') -> np.ndarray:
    """Boolean ``(H, W, 3)`` mask, in RGB channel order, of the channel measured at each pixel.

    Args:
        height: Image height.
        width: Image width.
        pattern: One of :data:`BAYER_PATTERNS`, anchored at pixel ``(0, 0)``. Default: ``'GRBG'``.

    Returns:
        The mask; exactly one channel is True at every pixel.
    """
    pattern = check_pattern(pattern, 'bayer_mask')
    mask = np.zeros((height, width, 3), dtype=bool)
    for i, colour in enumerate(pattern):
        dy, dx = divmod(i, 2)
        mask[dy::2, dx::2, 'RGB'.index(colour)] = True
    return mask


def bayer_mosaic(img: np.ndarray, pattern: str = 'GRBG', channel_order: str = 'rgb') -> np.ndarray:
    """Zero-filled 3-channel Bayer mosaic of an image.

    A 3-channel image keeps, at every pixel, only the channel the pattern measures there (the
    others become 0); mosaicking a mosaic gives it back unchanged. A 1-channel image is taken as
    raw colour-filter-array data (one measurement per pixel) and spread into the zero-filled
    3-channel layout; a grey image stored with 3 equal channels gives the same result.

    Args:
        img: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` image of any dtype.
        pattern: One of :data:`BAYER_PATTERNS`, anchored at pixel ``(0, 0)`` (see the module
            docstring). Default: ``'GRBG'``.
        channel_order: ``'rgb'`` or ``'bgr'``: the channel order of a 3-channel input and of the
            output. Default: ``'rgb'``.

    Returns:
        The ``(H, W, 3)`` mosaic, of the input's dtype.

    Raises:
        ValueError: If the image shape, the pattern or the channel order is not supported.
    """
    order = check_channel_order(channel_order, 'bayer_mosaic')
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f'bayer_mosaic expects an (H, W), (H, W, 1) or (H, W, 3) image, got {img.shape}')
    mask = bayer_mask(img.shape[0], img.shape[1], pattern)
    if order == 'bgr':
        mask = mask[..., ::-1]
    source = np.broadcast_to(img, mask.shape) if img.shape[2] == 1 else img
    return np.where(mask, source, np.zeros((), dtype=img.dtype)).astype(img.dtype, copy=False)


def is_bayer_mosaic(img: np.ndarray, pattern: str = 'GRBG', channel_order: str = 'rgb') -> bool:
    """Whether ``img`` already is a zero-filled 3-channel mosaic of ``pattern`` (then :func:`bayer_mosaic` keeps it).

    True when every pixel is 0 in the two channels that the pattern does not measure there.

    Args:
        img: Image of any shape and dtype; only ``(H, W, 3)`` images can be mosaics.
        pattern: One of :data:`BAYER_PATTERNS`, anchored at pixel ``(0, 0)``. Default: ``'GRBG'``.
        channel_order: ``'rgb'`` or ``'bgr'``: the channel order of ``img``. Default: ``'rgb'``.

    Returns:
        bool: Whether the image is such a mosaic.
    """
    order = check_channel_order(channel_order, 'is_bayer_mosaic')
    if img.ndim != 3 or img.shape[2] != 3:
        return False
    mask = bayer_mask(img.shape[0], img.shape[1], pattern)
    if order == 'bgr':
        mask = mask[..., ::-1]
    return not np.any(img[~mask])


@TRANSFORMS.register_module()
class BayerMosaic(BaseTransform):
    """Replace images by their zero-filled 3-channel Bayer mosaic (see :func:`bayer_mosaic`).

    The pattern is anchored at the top-left pixel of the array the transform receives; put it after
    every crop, flip and transpose of the pipeline (see the module docstring). Deterministic: no
    random state is used.

    Args:
        keys (list[str]): Results keys of the images to mosaic, e.g. ``['img']``.
        pattern (str): ``'RGGB'``, ``'BGGR'``, ``'GRBG'`` or ``'GBRG'``. Default: ``'GRBG'`` (the
            pattern believed to be the IRCNN / PANet one).
        channel_order (str, optional): ``'rgb'`` or ``'bgr'``. Default: None, i.e.
            ``{key}_channel_order`` from the results, else ``'rgb'``.
    """

    def __init__(self, keys: Sequence[str], pattern: str = 'GRBG', channel_order: Optional[str] = None) -> None:
        self.keys: List[str] = [keys] if isinstance(keys, str) else list(keys)
        if not self.keys:
            raise ValueError('BayerMosaic needs at least one key in keys, e.g. keys=["img"]')
        self.pattern = check_pattern(pattern, 'BayerMosaic')
        self.channel_order = None if channel_order is None else check_channel_order(channel_order, 'BayerMosaic')

    def transform(self, results: dict) -> dict:
        """Mosaic ``results[key]`` for every key.

        Args:
            results (dict): Pipeline results holding the images.

        Returns:
            dict: The results with 3-channel mosaics (marked as colour images).
        """
        for key in self.keys:
            if key not in results:
                raise KeyError(f"BayerMosaic: results have no '{key}'; copy or load it first or fix keys={self.keys}")
            order = channel_order_of(results, key, self.channel_order, 'BayerMosaic')
            results[key] = bayer_mosaic(results[key], self.pattern, order)
            results[f'{key}_color_type'] = 'color'
            results[f'{key}_channel_order'] = order
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(keys={self.keys}, pattern={self.pattern!r})'


def bilinear_demosaic(mosaic: np.ndarray) -> np.ndarray:
    """Bilinear demosaic of a zero-filled 3-channel mosaic (HWC, any Bayer pattern): the baseline to beat.

    Each channel's missing samples are the weighted average of its known neighbours: green with the
    cross kernel, red and blue with the 3x3 bilinear kernel, normalised by the weights of the known
    samples so that borders and every pattern are handled alike.
    """
    img = torch.from_numpy(mosaic.astype(np.float64)).permute(2, 0, 1)[:, None]
    # each channel's sampling lattice: the phases of the 2x2 Bayer block where it has any non-zero sample
    known = torch.zeros_like(img)
    for c in range(3):
        for dy in range(2):
            for dx in range(2):
                if img[c, 0, dy::2, dx::2].any():
                    known[c, 0, dy::2, dx::2] = 1
    cross = torch.tensor([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=torch.float64) / 4
    box = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=torch.float64) / 4
    out = []
    for c in range(3):
        k = (cross if c == 1 else box)[None, None]
        num = F.conv2d(img[c:c + 1], k, padding=1)
        den = F.conv2d(known[c:c + 1], k, padding=1).clamp_min(1e-8)
        out.append(torch.where(known[c:c + 1] > 0, img[c:c + 1], num / den))
    return torch.cat(out, 1)[0].permute(1, 2, 0).numpy()


__all__ = ['BAYER_PATTERNS', 'BayerMosaic', 'bayer_mask', 'bayer_mosaic', 'bilinear_demosaic', 'check_pattern',
           'is_bayer_mosaic']
