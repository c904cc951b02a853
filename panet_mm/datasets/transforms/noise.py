"""Additive white Gaussian noise with a per-image seed, for reproducible denoising test inputs.

Why a new transform: mmagic's ``RandomNoise`` (used by the denoising configs for *training*, where
fresh noise every time is what we want) draws from numpy's unseeded global random state, so the
noisy test input of an image changes with the worker count, the loading order and the run. The
paper evaluated on noisy images generated once with a fixed seed and stored as 8-bit images;
:class:`SeededGaussianNoise` makes that reproducible: every image gets noise from its own
generator seeded by its name (:func:`~panet_mm.datasets.transforms.seeding.image_seed`), and the
result is rounded and clipped to 8 bits like a stored image. ``tools/dataset_converters/prepare_testsets.py`` writes
the test sets' noisy inputs with the same function, so reading those files and adding the noise on
the fly give identical pixels.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
from mmagic.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from .color import channel_order_of, check_channel_order
from .seeding import TEST_SEED, image_name, image_seed


def check_sigma(sigma: float, where: str) -> float:
    """Return ``sigma`` as a float after checking it is on the 0-255 scale."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) or not sigma >= 0:
        raise ValueError(f'{where}: sigma must be a non-negative number on the 0-255 scale (e.g. 30), got {sigma!r}')
    if 0 < sigma < 1:
        raise ValueError(f'{where}: sigma={sigma} looks like the 0-1 scale; give it on the 0-255 scale '
                         f'(e.g. {sigma * 255:.0f})')
    return float(sigma)


def add_gaussian_noise(img: np.ndarray, sigma: float, seed: int, channel_order: str = 'rgb',
                       quantize: bool = True) -> np.ndarray:
    """Add white Gaussian noise of standard deviation ``sigma`` (0-255 scale) drawn from ``seed``.

    The noise is ``sigma * z`` where ``z`` is ``numpy.random.default_rng(seed).standard_normal``
    of the image's shape (``float64``), with the channel axis in **RGB** order whatever
    ``channel_order`` says (a BGR image gets the same noise on the same colours), so for one seed
    the noise fields of different sigmas are scaled copies of each other. The channels get
    independent noise (colour AWGN); grey images get one field.

    Args:
        img: ``(H, W)`` or ``(H, W, C)`` image with values in ``[0, 255]`` (any numeric dtype).
        sigma: Standard deviation on the 0-255 scale, e.g. 30.
        seed: Seed of the noise, e.g. from :func:`~panet_mm.datasets.transforms.seeding.image_seed`.
        channel_order: ``'rgb'`` or ``'bgr'``, the order of a 3-channel image. Default: ``'rgb'``.
        quantize: Round to the nearest integer and clip to ``[0, 255]``, returning ``uint8`` as an
            8-bit stored noisy image. If False, return the ``float32`` sum clipped to ``[0, 255]``.
            Default: True.

    Returns:
        The noisy image, of the input's shape.
    """
    sigma = check_sigma(sigma, 'add_gaussian_noise')
    order = check_channel_order(channel_order, 'add_gaussian_noise')
    flip = order == 'bgr' and img.ndim == 3 and img.shape[2] == 3
    base = img[..., ::-1] if flip else img
    noise = np.random.default_rng(seed).standard_normal(base.shape)
    noisy = np.clip(base.astype(np.float64) + sigma * noise, 0, 255)
    if flip:
        noisy = noisy[..., ::-1]
    if quantize:
        return np.ascontiguousarray(np.round(noisy).astype(np.uint8))
    return np.ascontiguousarray(noisy.astype(np.float32))


@TRANSFORMS.register_module()
class SeededGaussianNoise(BaseTransform):
    """Colour AWGN with a seed derived from each image's name (reproducible test inputs).

    For training use mmagic's ``RandomNoise`` (fresh noise each time); this transform is for
    validation and testing when the noisy inputs were not written by ``tools/dataset_converters/prepare_testsets.py``:
    it produces exactly the pixels that tool writes (same :func:`add_gaussian_noise`, same seed
    from the image's name and ``seed``), whatever the number of workers or the order of images.

    Args:
        keys (list[str]): Results keys of the images to corrupt, e.g. ``['img']``.
        sigma (float): Noise standard deviation on the 0-255 scale (10, 30, 50, 70 in the paper).
        seed (int): Base seed; the per-image seed is ``image_seed(name, seed)``. Default: 0, the
            base seed ``tools/dataset_converters/prepare_testsets.py`` uses.
        name_key (str): Results key naming the image (mmagic datasets set ``'key'``, the file name
            without extension); without it the stem of ``gt_path`` / ``img_path`` is used.
            Default: ``'key'``.
        channel_order (str, optional): ``'rgb'`` or ``'bgr'``. Default: None, i.e.
            ``{key}_channel_order`` from the results, else ``'rgb'``.
        quantize (bool): Round and clip to ``uint8`` like a stored 8-bit image. Default: True.
    """

    def __init__(self,
                 keys: Sequence[str],
                 sigma: float,
                 seed: int = TEST_SEED,
                 name_key: str = 'key',
                 channel_order: Optional[str] = None,
                 quantize: bool = True) -> None:
        self.keys: List[str] = [keys] if isinstance(keys, str) else list(keys)
        if not self.keys:
            raise ValueError('SeededGaussianNoise needs at least one key in keys, e.g. keys=["img"]')
        self.sigma = check_sigma(sigma, 'SeededGaussianNoise')
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f'SeededGaussianNoise: seed must be an integer, got {seed!r}')
        self.seed = seed
        self.name_key = name_key
        self.channel_order = None if channel_order is None else check_channel_order(
            channel_order, 'SeededGaussianNoise')
        self.quantize = quantize

    def transform(self, results: dict) -> dict:
        """Corrupt ``results[key]`` for every key.

        Args:
            results (dict): Pipeline results holding the images and the image's name.

        Returns:
            dict: The results with noisy images.
        """
        seed = image_seed(image_name(results, self.name_key), self.seed)
        for i, key in enumerate(self.keys):
            if key not in results:
                raise KeyError(f"SeededGaussianNoise: results have no '{key}'; copy or load it first "
                               f'or fix keys={self.keys}')
            order = channel_order_of(results, key, self.channel_order, 'SeededGaussianNoise')
            # several keys of one image get different (but still reproducible) noise
            results[key] = add_gaussian_noise(results[key], self.sigma, seed + i if i else seed, order,
                                              self.quantize)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(keys={self.keys}, sigma={self.sigma}, seed={self.seed}, '
                f'name_key={self.name_key!r}, quantize={self.quantize})')


__all__ = ['SeededGaussianNoise', 'add_gaussian_noise', 'check_sigma']
