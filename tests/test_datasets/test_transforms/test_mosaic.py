"""BayerMosaic: the four patterns, zero fill, idempotence, raw input, mosaic detection, and the phase after crops /
flips."""
import numpy as np
import pytest
from mmagic.registry import TRANSFORMS
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

import panet_mm  # noqa: F401
from panet_mm.datasets.transforms import BAYER_PATTERNS, BayerMosaic, bayer_mask, bayer_mosaic, is_bayer_mosaic

# colour measured at (0, 0), (0, 1), (1, 0), (1, 1), as RGB channel indices
EXPECTED = {'RGGB': (0, 1, 1, 2), 'BGGR': (2, 1, 1, 0), 'GRBG': (1, 0, 2, 1), 'GBRG': (1, 2, 0, 1)}


def photo(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(1, 256, size=(h, w, 3), dtype=np.uint8)  # no zeros


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_pattern_layout_and_zero_fill(pattern):
    img = photo(7, 9)  # odd sizes: the pattern simply stops at the border
    out = bayer_mosaic(img, pattern)
    assert out.shape == img.shape and out.dtype == np.uint8
    for y in range(7):
        for x in range(9):
            c = EXPECTED[pattern][(y % 2) * 2 + x % 2]
            assert out[y, x, c] == img[y, x, c]
            assert all(out[y, x, k] == 0 for k in range(3) if k != c)
    assert np.array_equal(bayer_mask(7, 9, pattern).sum(-1), np.ones((7, 9)))


def test_default_is_grbg_and_transform_marks_colour():
    img = photo()
    t = TRANSFORMS.build(dict(type='BayerMosaic', keys=['img']))
    assert t.pattern == 'GRBG'
    r = t(dict(img=img.copy(), img_channel_order='rgb', img_color_type='grayscale'))
    assert np.array_equal(r['img'], bayer_mosaic(img, 'GRBG'))
    assert r['img_color_type'] == 'color' and r['img_channel_order'] == 'rgb'


def test_idempotent_raw_input_and_bgr():
    img = photo()
    m = bayer_mosaic(img)
    assert np.array_equal(bayer_mosaic(m), m)  # a prepared mosaic passes through unchanged
    raw = m.sum(-1).astype(np.uint8)  # the one measurement per pixel, as a raw Bayer image
    assert np.array_equal(bayer_mosaic(raw), m)
    assert np.array_equal(bayer_mosaic(raw[..., None]), m)
    assert np.array_equal(bayer_mosaic(np.repeat(raw[..., None], 3, -1)), m)  # grey raw read as colour
    assert np.array_equal(bayer_mosaic(img[..., ::-1], channel_order='bgr')[..., ::-1], m)


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_is_bayer_mosaic(pattern):
    img = photo(7, 9)
    m = bayer_mosaic(img, pattern)
    assert is_bayer_mosaic(m, pattern) and is_bayer_mosaic(m.astype(np.float32), pattern)
    assert is_bayer_mosaic(m[..., ::-1], pattern, channel_order='bgr')
    assert not any(is_bayer_mosaic(m, other) for other in BAYER_PATTERNS if other != pattern)
    assert not is_bayer_mosaic(img, pattern) and not is_bayer_mosaic(m[..., 0], pattern)  # a photo, one channel


def test_phase_after_crop():
    img = photo(12, 14)
    full = bayer_mosaic(img)
    for y, x in [(0, 0), (2, 4), (6, 2)]:  # even offsets: cropping and mosaicking commute
        assert np.array_equal(bayer_mosaic(img[y:y + 6, x:x + 6]), full[y:y + 6, x:x + 6])
    # odd offsets shift the phase: the crop of a GRBG mosaic at column 1 is an RGGB mosaic
    assert np.array_equal(full[0:6, 1:7], bayer_mosaic(img[0:6, 1:7], 'RGGB'))
    assert not np.array_equal(full[0:6, 1:7], bayer_mosaic(img[0:6, 1:7]))
    # flips and transposes change the pattern too, which is why the pipelines mosaic last
    assert np.array_equal(full[:, ::-1], bayer_mosaic(img[:, ::-1], 'RGGB'))  # even width
    assert np.array_equal(full.transpose(1, 0, 2), bayer_mosaic(img.transpose(1, 0, 2), 'GBRG'))


def test_training_pipeline_anchors_pattern_at_patch_origin():
    """Whatever the random crop offset, flips and transpose, the input is the GRBG mosaic of the gt patch."""
    init_default_scope('mmagic')
    cfg = Config.fromfile('configs/panet_demosaic_div2k.py')
    pipeline = Compose(cfg.train_pipeline[1:])  # without the file loading
    img = photo(61, 75, seed=3)
    for seed in range(12):
        np.random.seed(seed)
        out = pipeline(dict(gt=img.copy(), gt_channel_order='rgb', gt_color_type='color', key='x'))
        gt = out['data_samples'].gt_img.numpy().transpose(1, 2, 0)
        inp = out['inputs'].numpy().transpose(1, 2, 0)
        assert gt.shape == (48, 48, 3)
        assert np.array_equal(inp, bayer_mosaic(gt, 'GRBG'))


def test_bad_pattern_is_named():
    with pytest.raises(ValueError, match=r"pattern must be one of .*got 'RGBG'"):
        BayerMosaic(keys=['img'], pattern='RGBG')
    with pytest.raises(ValueError, match=r'\(H, W, 3\) image, got \(4, 4, 2\)'):
        bayer_mosaic(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(KeyError, match="results have no 'img'"):
        BayerMosaic(keys=['img'])(dict(gt=photo()))
