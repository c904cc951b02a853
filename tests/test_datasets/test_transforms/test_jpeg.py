"""JPEGCompression: OpenCV at an exact quality, grey shape kept, no global randomness, seeded quality ranges."""
import cv2
import numpy as np
import pytest
from mmagic.datasets.transforms import RandomJPEGCompression
from mmagic.registry import TRANSFORMS

import panet_mm  # noqa: F401
from panet_mm.datasets.transforms import JPEGCompression, jpeg_compress, pick_quality


def image(h=40, w=56, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random((h, w, c)) * 255).astype(np.uint8), (5, 5), 2).reshape(h, w, c)


@pytest.mark.parametrize('quality', [10, 40, 95])
def test_exact_quality_with_opencv(quality):
    grey = image(c=1)
    ok, buf = cv2.imencode('.jpg', grey[..., 0], [cv2.IMWRITE_JPEG_QUALITY, quality])
    expected = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    out = jpeg_compress(grey, quality)
    assert out.shape == grey.shape and np.array_equal(out[..., 0], expected)
    assert np.array_equal(jpeg_compress(grey[..., 0], quality), expected)  # (H, W) stays (H, W)
    rgb = image()
    ok, buf = cv2.imencode('.jpg', rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert np.array_equal(jpeg_compress(rgb, quality), cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    assert np.array_equal(jpeg_compress(rgb[..., ::-1].copy(), quality, 'bgr'), cv2.imdecode(buf, cv2.IMREAD_COLOR))


def test_lower_quality_more_error():
    grey = image(c=1)
    errors = [np.abs(jpeg_compress(grey, q).astype(float) - grey).mean() for q in (10, 20, 30, 40)]
    assert errors == sorted(errors, reverse=True) and errors[0] > 0


def test_training_transform_matches_test_transform():
    """mmagic's RandomJPEGCompression at [q, q] (training) gives the pixels JPEGCompression (test) gives, also
    for the non-contiguous patches a transpose leaves behind."""
    patch = image(c=1).transpose(1, 0, 2)
    assert not patch.flags['C_CONTIGUOUS']
    train = RandomJPEGCompression(params=dict(quality=[10, 10]), keys=['img'], color_type='grayscale')
    test = TRANSFORMS.build(dict(type='JPEGCompression', keys=['img'], quality=10))
    a = train(dict(img=patch.copy()))['img']
    b = test(dict(img=patch.copy()))['img']
    assert b.shape == patch.shape and np.array_equal(a, b[..., 0])


def test_deterministic_without_global_state():
    t = JPEGCompression(keys=['img'], quality=20)
    state = np.random.get_state()
    a = t(dict(img=image(c=1)))['img']
    after = np.random.get_state()
    assert all(np.array_equal(x, y) for x, y in zip(state[1:2], after[1:2])) and state[2] == after[2]
    np.random.seed(99)
    assert np.array_equal(a, t(dict(img=image(c=1)))['img'])


def test_quality_range_is_seeded_per_image():
    names = [f'img{i}' for i in range(40)]
    qualities = [pick_quality([10, 40], n) for n in names]
    assert all(10 <= q <= 40 for q in qualities) and len(set(qualities)) > 5
    assert qualities == [pick_quality([10, 40], n) for n in names]
    assert list(reversed(qualities)) == [pick_quality([10, 40], n) for n in reversed(names)]
    t = JPEGCompression(keys=['img'], quality=[10, 40])
    out = t(dict(img=image(c=1), key='img3'))['img']
    assert np.array_equal(out, jpeg_compress(image(c=1), qualities[3]))


def test_errors_name_the_value():
    with pytest.raises(ValueError, match=r'quality must be an integer in 1..100.*got 0'):
        JPEGCompression(keys=['img'], quality=0)
    with pytest.raises(ValueError, match=r'got \[40, 10\]'):
        JPEGCompression(keys=['img'], quality=[40, 10])
    with pytest.raises(ValueError, match='needs a uint8 image'):
        jpeg_compress(image().astype(np.float32), 10)
