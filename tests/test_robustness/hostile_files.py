"""Hostile image files for the robustness tests, made from real encoder output (OpenCV's PNG / JPEG)."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def photo(h: int = 36, w: int = 48, seed: int = 0) -> np.ndarray:
    """A small smooth BGR image with some texture (deterministic)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 100 / (h + w)], axis=-1)
    return np.clip(base + cv2.GaussianBlur(rng.random((h, w, 3)) * 120, (5, 5), 1.2), 0, 255).astype(np.uint8)


def encode(img: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """OpenCV's PNG of a small image with the IHDR rewritten (valid CRC) to declare ``width x height``."""
    data = encode(photo(8, 8)[..., 0], '.png')
    assert data[12:16] == b'IHDR'
    ihdr = struct.pack('>II', width, height) + data[24:29]
    return data[:8] + _chunk(b'IHDR', ihdr) + data[33:]


def png_bomb(width: int, height: int) -> bytes:
    """A complete, valid 8-bit grey PNG of ``width x height`` black pixels: a tiny file, a huge image."""
    comp = zlib.compressobj(9)
    row = b'\x00' * (width + 1)  # filter byte + pixels
    parts, left = [], height
    block = row * max(1, (1 << 22) // len(row))
    rows_per_block = len(block) // len(row)
    while left:
        n = min(left, rows_per_block)
        parts.append(comp.compress(block if n == rows_per_block else row * n))
        left -= n
    parts.append(comp.flush())
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', ihdr) + _chunk(b'IDAT', b''.join(parts)) + _chunk(b'IEND', b'')


def jpeg_declaring(width: int, height: int, exif_bytes: int = 60000) -> bytes:
    """OpenCV's JPEG of a small image with a large APP1 (EXIF-like) segment first and the SOF rewritten."""
    data = bytearray(encode(photo(16, 16), '.jpg', cv2.IMWRITE_JPEG_QUALITY, 90))
    sof = data.find(b'\xff\xc0')
    assert sof > 0
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    app1 = b'\xff\xe1' + struct.pack('>H', exif_bytes + 2) + b'Exif\x00\x00' + b'\x00' * (exif_bytes - 6)
    return bytes(data[:2] + app1 + data[2:])
