"""The demo tasks and the trivial baselines their models must beat (``tools/analysis_tools/quick_quality.py``).

A baseline maps the degraded input (HWC, float, as mmagic's metrics see it) and the ground truth's
shape to a restoration that needs no model: bicubic up-sampling for SR, the input itself for denoising
and JPEG artefact reduction, bilinear interpolation for demosaicing.
"""
from typing import Callable, Dict, Sequence, Tuple

import cv2
import numpy as np

from .transforms.mosaic import bilinear_demosaic

#: task -> (its demo config, relative to the repository root, the name of its baseline).
DEMO_TASKS: Dict[str, Tuple[str, str]] = {
    'sr': ('configs/demo/panet_sr_x2_demo.py', 'bicubic up-sampling'),
    'dn': ('configs/demo/panet_dn_sigma30_demo.py', 'noisy input'),
    'car': ('configs/demo/panet_car_q10_demo.py', 'JPEG input'),
    'demosaic': ('configs/demo/panet_demosaic_demo.py', 'bilinear demosaic'),
}


def bicubic_baseline(lr: np.ndarray, gt_shape: Sequence[int]) -> np.ndarray:
    """Bicubic up-sampling of an HWC image to ``gt_shape``."""
    out = cv2.resize(lr.astype(np.float32), (gt_shape[1], gt_shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(gt_shape), 0, 255)


def input_baseline(degraded: np.ndarray, gt_shape: Sequence[int]) -> np.ndarray:
    """The degraded input itself (noisy or JPEG-compressed), as float."""
    return degraded.astype('float64')


def bilinear_baseline(mosaic: np.ndarray, gt_shape: Sequence[int]) -> np.ndarray:
    """Bilinear demosaic of the zero-filled mosaic."""
    return bilinear_demosaic(mosaic)


#: task -> its baseline.
BASELINES: Dict[str, Callable[[np.ndarray, Sequence[int]], np.ndarray]] = {
    'sr': bicubic_baseline,
    'dn': input_baseline,
    'car': input_baseline,
    'demosaic': bilinear_baseline,
}

__all__ = ['BASELINES', 'DEMO_TASKS', 'bicubic_baseline', 'bilinear_baseline', 'input_baseline']
