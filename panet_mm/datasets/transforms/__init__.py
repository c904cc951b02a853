"""Data transforms of panet_mm, registered in mmagic's ``TRANSFORMS`` (one module per family).

* :mod:`.mosaic` - ``BayerMosaic``: zero-filled 3-channel Bayer mosaic (demosaicing input).
* :mod:`.noise` - ``SeededGaussianNoise``: AWGN seeded per image (reproducible denoising test inputs).
* :mod:`.jpeg` - ``JPEGCompression``: OpenCV JPEG at an exact quality (JPEG artifact reduction input).
* :mod:`.color` - ``GrayOrY``: grey images stay grey, colour images become their BT.601 Y channel.
* :mod:`.seeding` - per-image seeds shared by the transforms and ``tools/dataset_converters/prepare_testsets.py``.

Training degradations reuse mmagic's ``RandomNoise`` / ``RandomJPEGCompression`` (fresh randomness
per sample is what training wants); these transforms exist for what mmagic lacks (the mosaic, the
grey/Y handling) and for reproducible test inputs.
"""
from .color import GrayOrY, drop_alpha, gray_or_y, is_gray
from .jpeg import JPEGCompression, jpeg_compress, pick_quality
from .mosaic import BAYER_PATTERNS, BayerMosaic, bayer_mask, bayer_mosaic, is_bayer_mosaic
from .noise import SeededGaussianNoise, add_gaussian_noise
from .seeding import TEST_SEED, image_name, image_seed

__all__ = [
    'BAYER_PATTERNS', 'BayerMosaic', 'GrayOrY', 'JPEGCompression', 'SeededGaussianNoise', 'TEST_SEED',
    'add_gaussian_noise', 'bayer_mask', 'bayer_mosaic', 'drop_alpha', 'gray_or_y', 'image_name', 'image_seed',
    'is_bayer_mosaic', 'is_gray', 'jpeg_compress', 'pick_quality'
]
