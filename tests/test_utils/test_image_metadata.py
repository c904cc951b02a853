"""EXIF orientations and data and ICC profiles (panet_mm.utils.image_metadata), checked against Pillow, real
profiles and real cameras' EXIF blocks.

The profiles are Debian's icc-profiles-free (tests/data/icc/README.md) and LittleCMS's built-in sRGB (through
Pillow); the EXIF blocks are a Canon PowerShot S40's (maker notes and a thumbnail), a Xiaomi phone's (orientation
6) and one with a GPS block, from Pillow's test images (tests/data/exif/README.md); the encoded files are
OpenCV's, and Pillow, which reads ICC profiles and EXIF on its own, judges them.
"""
import io
import os.path as osp
import struct

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, ImageOps

from panet_mm.utils import fileio
from panet_mm.utils.image_metadata import (
    JPEG_EXIF_LIMIT,
    apply_orientation,
    embed_exif,
    embed_icc_profile,
    exif_block,
    exif_fits,
    exif_for_result,
    is_srgb_profile,
    profile_color_space,
    profile_description,
    profile_fits,
    raw_profile_bytes,
)

ICC = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'icc')
EXIF = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'exif')


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


def camera_exif(name):
    """The EXIF block of one of the real files in tests/data/exif, as Pillow finds it in the file."""
    with Image.open(osp.join(EXIF, name)) as im:
        return exif_block(im.info['exif'])


def parsed(block):
    exif = Image.Exif()
    exif.load(b'Exif\0\0' + block)
    return exif


CANON, PHONE, GPS = camera_exif('flower.jpg'), camera_exif('empty_gps_ifd.jpg'), camera_exif('exif_gps.jpg')


def test_a_cameras_exif_is_made_true_for_the_result_in_place():
    out = exif_for_result(CANON, 960, 720)
    before, after = parsed(CANON), parsed(out)
    assert before.get_ifd(ExifTags.IFD.IFD1) and not after.get_ifd(ExifTags.IFD.IFD1)   # the input's thumbnail
    sub_before, sub_after = before.get_ifd(0x8769), after.get_ifd(0x8769)
    assert (sub_before[0xA002], sub_before[0xA003]) == (2272, 1704)
    assert (sub_after[0xA002], sub_after[0xA003]) == (960, 720)
    # patched in place: the Canon maker note (450 bytes, offsets into the block) and every other tag unchanged
    assert len(out) == len(CANON) and sub_after[0x927C] == sub_before[0x927C] and len(sub_before[0x927C]) == 450
    assert {k: v for k, v in sub_after.items() if k not in (0xA002, 0xA003)} == {
        k: v for k, v in sub_before.items() if k not in (0xA002, 0xA003)}
    assert dict(after) == dict(before) and after[0x0110] == 'Canon PowerShot S40'
    assert sum(a != b for a, b in zip(out, CANON)) <= 8   # two sizes and the IFD1 link


def test_a_phones_orientation_and_image_size_are_made_true():
    before, after = parsed(PHONE), parsed(exif_for_result(PHONE, 20, 30))
    assert (before[0x0112], before[0x0100], before[0x0101]) == (6, 4000, 3000)
    assert (after[0x0112], after[0x0100], after[0x0101]) == (1, 20, 30)   # the result is stored upright
    assert after.get_ifd(0x8769)[0xA002] == 20 and after[0x0110] == 'Redmi Note 9S'
    # sizes too large for the SHORT a camera stored become LONG
    big = parsed(exif_for_result(PHONE, 70000, 65536))
    assert (big[0x0100], big[0x0101], big.get_ifd(0x8769)[0xA003]) == (70000, 65536, 65536)


def test_the_gps_block_is_carried_as_it_was():
    assert parsed(exif_for_result(GPS, 8, 8)).get_ifd(0x8825) == parsed(GPS).get_ifd(0x8825) != {}


@pytest.mark.parametrize('ext,shape,params', [('.png', (9, 11, 3), []), ('.png', (9, 11), []),
                                              ('.jpg', (16, 24, 3), [cv2.IMWRITE_JPEG_QUALITY, 90]),
                                              ('.webp', (9, 11, 4), []),                               # VP8L
                                              ('.webp', (16, 24, 3), [cv2.IMWRITE_WEBP_QUALITY, 80]),  # VP8
                                              ('.webp', (16, 24, 4), [cv2.IMWRITE_WEBP_QUALITY, 80])])  # VP8X+ALPH
@pytest.mark.parametrize('icc', [None, ADOBE])
def test_exif_and_profile_are_read_back_by_pillow_and_pixels_are_unchanged(ext, shape, params, icc):
    pixels = image(shape)
    if len(shape) == 3 and shape[2] == 4:
        pixels[..., 3] = np.maximum(pixels[..., 3], 1)  # no fully transparent pixels (WebP may drop their colour)
    plain = fileio.encode_image(pixels, ext, params)
    tagged = fileio.encode_image(pixels, ext, params, icc_profile=icc, exif=CANON)
    with Image.open(io.BytesIO(tagged)) as im:
        im.load()  # chunk CRCs, segment lengths and RIFF sizes checked by Pillow's decoder
        exif = im.getexif()
        assert im.info.get('icc_profile') == (icc if len(shape) == 3 else None)
        assert exif[0x0110] == 'Canon PowerShot S40' and exif.get_ifd(0x8769)[0xA002] == shape[1]
        assert exif.get_ifd(0x8769)[0x927C] == parsed(CANON).get_ifd(0x8769)[0x927C]
    flag = cv2.IMREAD_UNCHANGED
    decoded = cv2.imdecode(np.frombuffer(tagged, np.uint8), flag)
    assert decoded.shape == pixels.shape   # a WebP's alpha is still there (its VP8X header names it)
    assert np.array_equal(decoded, cv2.imdecode(np.frombuffer(plain, np.uint8), flag))


def test_exif_that_does_not_fit_is_left_out_or_refused():
    pixels, huge = image((6, 6, 3)), CANON + bytes(JPEG_EXIF_LIMIT)
    assert exif_fits(CANON, '.jpg') and exif_fits(huge, '.png') and not exif_fits(huge, '.jpg')
    assert not exif_fits(CANON, '.tif') and not exif_fits(None, '.png')
    assert fileio.encode_image(pixels, '.bmp', exif=CANON) == fileio.encode_image(pixels, '.bmp')
    assert fileio.encode_image(pixels, '.jpg', exif=huge) == fileio.encode_image(pixels, '.jpg')
    with pytest.raises(ValueError, match='does not fit a JPEG segment'):
        embed_exif(fileio.encode_image(pixels, '.jpg'), '.jpg', huge)
    with pytest.raises(ValueError, match="'.tif' files carry no EXIF data"):
        embed_exif(fileio.encode_image(pixels, '.tif'), '.tif', CANON)


@pytest.mark.parametrize('junk', [b'MM\0*\xff\xff\xff\xff', CANON[:40], b'II*\0\x08\0\0\0\xff\xff'])
def test_damaged_exif_blocks_are_refused(junk):
    with pytest.raises(ValueError):
        exif_for_result(junk, 4, 4)


def test_exif_blocks_are_found_with_or_without_their_jpeg_header():
    assert exif_block(b'Exif\0\0' + CANON) == exif_block(CANON) == CANON
    assert exif_block(b'Exif\0\0junk') is None and exif_block(None) is None and exif_block(b'') is None


def test_older_imagemagicks_raw_exif_profile_is_decoded():
    """Older ImageMagick versions kept a PNG's EXIF block as hexadecimal text ('Raw profile type exif'), which
    Pillow hands over undecoded; here the file Pillow's tests read (orientation 3)."""
    with Image.open(osp.join(EXIF, 'exif_imagemagick_orientation.png')) as im:
        text = im.info['Raw profile type exif']
        assert 'exif' not in im.info
    data = raw_profile_bytes(text)
    block = exif_block(data)
    assert data.startswith(b'Exif\0\0') and block is not None
    exif = Image.Exif()
    exif.load(data)
    assert exif[0x0112] == 3
    result = Image.Exif()
    result.load(exif_for_result(block, 20, 10))
    assert result[0x0112] == 1
    for bad in (None, '', '\nexif\n  4\nzz00ff00\n', '\nexif\n  9\n00ff\n', 'exif'):  # not hex, short, no length
        assert raw_profile_bytes(bad) is None
