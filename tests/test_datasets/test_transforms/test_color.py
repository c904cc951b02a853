"""GrayOrY: colour -> MATLAB BT.601 Y (mmcv's rgb2ycbcr), grey stays grey, metadata for mmagic's pre-processor."""
import mmcv
import numpy as np
import pytest
import torch
from mmagic.models.data_preprocessors import DataPreprocessor
from mmagic.registry import TRANSFORMS
from mmagic.structures import DataSample
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

import panet_mm  # noqa: F401
from panet_mm.datasets.transforms import drop_alpha, gray_or_y


def colour(h=9, w=11):
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_colour_becomes_matlab_y():
    rgb = colour()
    y = gray_or_y(rgb)
    assert y.shape == (9, 11, 1) and y.dtype == np.uint8
    assert np.array_equal(y[..., 0], mmcv.rgb2ycbcr(rgb, y_only=True))
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    matlab = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    assert np.abs(y[..., 0] - matlab).max() <= 0.5 + 1e-3
    assert 16 <= y.min() and y.max() <= 235
    assert np.array_equal(gray_or_y(rgb[..., ::-1], 'bgr'), y)


def test_grey_stays_grey():
    g = colour()[..., 0]
    assert np.array_equal(gray_or_y(g)[..., 0], g)
    assert np.array_equal(gray_or_y(g[..., None])[..., 0], g)
    assert np.array_equal(gray_or_y(np.repeat(g[..., None], 3, -1))[..., 0], g)  # grey stored as RGB
    with pytest.raises(ValueError, match=r'got \(9, 11, 2\)'):
        gray_or_y(np.zeros((9, 11, 2), np.uint8))


def test_transform_output_works_with_mmagic_preprocessor():
    init_default_scope('mmagic')
    pipeline = Compose([
        dict(type='GrayOrY', keys=['gt']),
        dict(type='CopyValues', src_keys=['gt', 'gt_channel_order', 'gt_color_type'],
             dst_keys=['img', 'img_channel_order', 'img_color_type']),
        dict(type='PackInputs'),
    ])
    out = pipeline(dict(gt=colour(), gt_channel_order='rgb', gt_color_type='color', key='x'))
    assert out['data_samples'].metainfo['gt_color_type'] == 'grayscale'
    pre = DataPreprocessor(mean=[0.], std=[255.])
    batch = pre(dict(inputs=[out['inputs']], data_samples=[out['data_samples']]), training=False)
    assert batch['inputs'].shape == (1, 1, 9, 11)
    assert isinstance(batch['data_samples'], (list, DataSample))
    assert TRANSFORMS.get('GrayOrY') is not None and torch.is_tensor(batch['inputs'])


def test_drop_alpha_keeps_the_stored_colour():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent: the colour is still what the file stores
    np.testing.assert_array_equal(drop_alpha(rgba), rgba[..., :3])
    grey_alpha = rng.integers(0, 256, (4, 5, 2), dtype=np.uint8)
    assert drop_alpha(grey_alpha).shape == (4, 5, 1)
    for img in (rgba[..., :3], rgba[..., 0], rgba[..., :1]):
        assert drop_alpha(img) is img
    assert gray_or_y(rgba).shape == (4, 5, 1)
    np.testing.assert_array_equal(gray_or_y(rgba), gray_or_y(np.ascontiguousarray(rgba[..., :3])))
