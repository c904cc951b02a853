"""EXIF orientations and ICC profiles (panet_mm.utils.image_metadata), checked against Pillow and real profiles.

The profiles are Debian's icc-profiles-free (tests/data/icc/README.md) and LittleCMS's built-in sRGB (through
Pillow); the encoded files are OpenCV's, and Pillow, which reads ICC profiles and EXIF on its own, judges them.
"""
import io
import os.path as osp
import struct

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from panet_mm.utils import fileio
from panet_mm.utils.image_metadata import (
    apply_orientation,
    embed_icc_profile,
    is_srgb_profile,
    profile_color_space,
    profile_description,
    profile_fits,
)

ICC = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'icc')


def profile(name):
    with open(osp.join(ICC, name), 'rb') as f:
        return f.read()


ADOBE, SRGB, GRAY = (profile(n) for n in ('compatibleWithAdobeRGB1998.icc', 'sRGB.icc', 'Gray.icc'))
LCMS_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()  # ICC v4: an 'mluc' name


def image(shape, seed=0):
    return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_orientations_turn_pixels_as_pillow_does(orientation):
    pixels = image((5, 7, 3))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, 'PNG', exif=exif.tobytes())
    with Image.open(buf) as im:
        want = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(apply_orientation(pixels, orientation), want)
    assert np.array_equal(apply_orientation(pixels[..., 0], orientation), want[..., 0])  # H x W too


def test_orientation_out_of_range_is_refused():
    with pytest.raises(ValueError, match='1-8, got 9'):
        apply_orientation(image((2, 2)), 9)


def test_real_profiles_spaces_and_names():
    assert [profile_color_space(p) for p in (ADOBE, SRGB, GRAY, LCMS_SRGB)] == ['RGB', 'RGB', 'GRAY', 'RGB']
    assert [profile_description(p) for p in (ADOBE, SRGB, GRAY, LCMS_SRGB)] == [
        'Compatible with Adobe RGB (1998)', 'sRGB', 'Gray', 'sRGB built-in']
    assert [is_srgb_profile(p) for p in (ADOBE, SRGB, GRAY, LCMS_SRGB)] == [False, True, False, True]


@pytest.mark.parametrize('junk', [b'', b'\0' * 200, ADOBE[:100], ADOBE[:128] + struct.pack('>I', 5) + b'\xff' * 20])
def test_damaged_profiles_have_no_space_or_name(junk):
    assert profile_description(junk) is None
    if len(junk) < 132:
        assert profile_color_space(junk) is None


def test_profile_fits_the_format_and_the_channels():
    assert profile_fits(ADOBE, '.png', 3) and profile_fits(ADOBE, '.JPG', 3) and profile_fits(ADOBE, '.webp', 3)
    assert profile_fits(GRAY, '.png', 1) and profile_fits(GRAY, '.jpeg', 1)
    assert not profile_fits(GRAY, '.webp', 1)    # WebP stores colour: a grey profile cannot describe it
    assert not profile_fits(ADOBE, '.png', 1) and not profile_fits(GRAY, '.png', 3)
    assert not profile_fits(ADOBE, '.tif', 3) and not profile_fits(ADOBE, '.bmp', 3)
    assert not profile_fits(None, '.png', 3) and not profile_fits(b'junk', '.png', 3)


CASES = [('.png', ADOBE, (9, 11, 3), []), ('.png', GRAY, (9, 11), []),
         ('.jpg', ADOBE, (16, 24, 3), [cv2.IMWRITE_JPEG_QUALITY, 90]), ('.jpeg', GRAY, (16, 24), []),
         ('.webp', LCMS_SRGB, (9, 11, 3), [cv2.IMWRITE_WEBP_QUALITY, 101]),    # lossless (VP8L)
         ('.webp', ADOBE, (16, 24, 3), [cv2.IMWRITE_WEBP_QUALITY, 80])]       # lossy (VP8)


@pytest.mark.parametrize('ext,icc,shape,params', CASES)
def test_embedded_profiles_are_read_back_by_pillow_and_pixels_are_unchanged(ext, icc, shape, params):
    pixels = image(shape)
    plain = fileio.encode_image(pixels, ext, params)
    tagged = fileio.encode_image(pixels, ext, params, icc_profile=icc)
    assert tagged != plain
    with Image.open(io.BytesIO(tagged)) as im:
        im.load()  # chunk CRCs, segment lengths and RIFF sizes checked by Pillow's decoder
        assert im.info.get('icc_profile') == icc and im.size == (shape[1], shape[0])
    flag = cv2.IMREAD_UNCHANGED
    decoded = cv2.imdecode(np.frombuffer(tagged, np.uint8), flag)
    assert np.array_equal(decoded, cv2.imdecode(np.frombuffer(plain, np.uint8), flag))


def test_a_large_profile_spans_several_jpeg_segments():
    big = bytearray(ADOBE + bytes(range(256)) * 600)  # 154 KB: three APP2 segments
    big[:4] = struct.pack('>I', len(big))
    data = embed_icc_profile(fileio.encode_image(image((8, 8, 3)), '.jpg'), '.jpg', bytes(big))
    assert data.count(b'ICC_PROFILE\0') == 3
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.info['icc_profile'] == bytes(big)


def test_profiles_not_fitting_are_left_out():
    pixels = image((6, 6, 3))
    assert fileio.encode_image(pixels, '.png', icc_profile=GRAY) == fileio.encode_image(pixels, '.png')
    assert fileio.encode_image(pixels, '.bmp', icc_profile=ADOBE) == fileio.encode_image(pixels, '.bmp')
    with pytest.raises(ValueError, match="'.tif' files carry no colour profile"):
        embed_icc_profile(fileio.encode_image(pixels, '.tif'), '.tif', ADOBE)
    with pytest.raises(ValueError, match='not a PNG stream'):
        embed_icc_profile(b'GIF89a', '.png', ADOBE)
