"""TIFFs as raw converters export them (3-channel 32-bit float, which Pillow does not identify): their size is
read from the header like every other image's (so the pixel limit holds), and their pixels are refused with a
sentence saying why, instead of "not an image file of a known format"."""
import struct

import cv2
import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from panet_mm.datasets.image_io import (
    ImageFileError,
    PixelLimitError,
    check_image_file,
    read_image_header,
    verify_image_file,
)


def float_tiff(path, h=30, w=40):
    img = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    assert cv2.imwrite(str(path), img)
    return path


def plain_float_tiff(path, h=5, w=6, bits=32):
    """An uncompressed RGB TIFF of IEEE floats, little-endian, one strip (how raw converters lay them out; OpenCV
    writes float TIFFs LogLuv-compressed instead). Pillow has no mode for it."""
    pixels = np.linspace(0, 1, h * w * 3, dtype=np.float32 if bits == 32 else np.float64).tobytes()
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, 'bits'), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 'data'), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pixels)), (284, 3, 1, 1),
               (339, 3, 3, 'format')]
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * len(entries) + 4
    extras = struct.pack('<3H', bits, bits, bits) + struct.pack('<3H', 3, 3, 3)
    offsets = {'bits': extra_at, 'format': extra_at + 6, 'data': extra_at + len(extras)}
    ifd = struct.pack('<H', len(entries))
    for tag, kind, count, value in entries:
        value = offsets.get(value, value)
        field = struct.pack('<HH', value, 0) if kind == 3 and count == 1 else struct.pack('<I', value)
        ifd += struct.pack('<HHI', tag, kind, count) + field
    path.write_bytes(b'II*\x00' + struct.pack('<I', ifd_at) + ifd + struct.pack('<I', 0) + extras + pixels)
    return path


def with_declared_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` (a little-endian TIFF) with its first directory's ImageWidth / ImageLength values replaced."""
    out = bytearray(data)
    (ifd,) = struct.unpack('<I', data[4:8])
    (count,) = struct.unpack('<H', data[ifd:ifd + 2])
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag, kind = struct.unpack('<HH', data[at:at + 4])
        if tag in (256, 257):
            value = width if tag == 256 else height
            out[at + 8:at + 12] = struct.pack('<HH', value, 0) if kind == 3 else struct.pack('<I', value)
    return bytes(out)


def test_pillow_does_not_identify_them_but_the_header_is_read(tmp_path):
    path = float_tiff(tmp_path / 'f.tiff')
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)
    assert read_image_header(str(path)) == (40, 30, 'TIFF float32')   # OpenCV writes LogLuv: float32 decoded
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.float32


@pytest.mark.parametrize('bits', [32, 64])
def test_uncompressed_float_rgb_tiff_header(tmp_path, bits):
    path = plain_float_tiff(tmp_path / 'p.tif', bits=bits)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img.shape == (5, 6, 3) and img.dtype == (np.float32 if bits == 32 else np.float64)  # a valid file
    with pytest.raises((UnidentifiedImageError, SyntaxError, OSError)):
        with Image.open(path) as im:
            im.load()
    assert read_image_header(str(path)) == (6, 5, f'TIFF float{bits}')
    with pytest.raises(ImageFileError, match=f'stores {bits}-bit floating-point pixels'):
        check_image_file(str(path))


def test_a_float_tiff_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / 'bomb.tiff'
    path.write_bytes(with_declared_size(float_tiff(tmp_path / 'f.tiff').read_bytes(), 65000, 65000))
    with pytest.raises(PixelLimitError, match='65000x65000'):
        check_image_file(str(path), max_pixels=10**8)


def test_float_pixels_and_damaged_files_are_refused(tmp_path):
    """From the header (the training datasets check headers only: a float TIFF would otherwise be read through
    OpenCV's 8-bit tone curve), and by the full verification."""
    path = float_tiff(tmp_path / 'f.tiff')
    why = r"'.*f\.tiff' stores 32-bit floating-point pixels.*8- or 16-bit PNG"
    with pytest.raises(ImageFileError, match=why):
        check_image_file(str(path))
    with pytest.raises(ImageFileError, match=why):
        verify_image_file(str(path))
    eight_bit = tmp_path / 'u8.tiff'
    assert cv2.imwrite(str(eight_bit), (np.random.default_rng(0).random((6, 7, 3)) * 255).astype(np.uint8))
    assert verify_image_file(str(eight_bit))[:2] == (7, 6)
    cut = tmp_path / 'cut.tiff'
    cut.write_bytes(path.read_bytes()[:20])                 # the directory itself is gone
    with pytest.raises(ImageFileError, match='cut.tiff.*TIFF.*truncated or corrupt'):
        read_image_header(str(cut))
    not_tiff = tmp_path / 'x.tiff'
    not_tiff.write_bytes(b'II*\x00' + b'\xff' * 4)
    with pytest.raises(ImageFileError, match='x.tiff'):
        read_image_header(str(not_tiff))
