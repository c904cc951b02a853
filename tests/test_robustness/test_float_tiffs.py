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
    assert read_image_header(str(path)) == (40, 30, 'TIFF')
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.float32


def test_a_float_tiff_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / 'bomb.tiff'
    path.write_bytes(with_declared_size(float_tiff(tmp_path / 'f.tiff').read_bytes(), 65000, 65000))
    with pytest.raises(PixelLimitError, match='65000x65000'):
        check_image_file(str(path), max_pixels=10**8)


def test_float_pixels_and_damaged_files_are_refused_by_the_verification(tmp_path):
    path = float_tiff(tmp_path / 'f.tiff')
    with pytest.raises(ImageFileError, match=r"'.*f\.tiff' stores 32-bit floating-point pixels.*8- or 16-bit PNG"):
        verify_image_file(str(path))
    cut = tmp_path / 'cut.tiff'
    cut.write_bytes(path.read_bytes()[:20])                 # the directory itself is gone
    with pytest.raises(ImageFileError, match='cut.tiff.*TIFF.*truncated or corrupt'):
        read_image_header(str(cut))
    not_tiff = tmp_path / 'x.tiff'
    not_tiff.write_bytes(b'II*\x00' + b'\xff' * 4)
    with pytest.raises(ImageFileError, match='x.tiff'):
        read_image_header(str(not_tiff))
