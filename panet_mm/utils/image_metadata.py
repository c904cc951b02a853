"""What camera files carry beside their pixels: the EXIF orientation and the ICC colour profile.

Why this exists: OpenCV, which mmagic's loaders and ``cv2.imwrite`` use, turns JPEG, PNG and TIFF
pixels upright by their EXIF orientation but not WebP ones, and writes no colour profile at all. A
restored phone photo then came out sideways (a WebP) or with washed-out colours (a Display P3 JPEG
whose profile was dropped, so viewers took its values as sRGB). Here, with numpy and the standard
library only: the eight EXIF orientations as array operations, and a profile's colour space and name
read from its header and tags, and embedded into PNG (``iCCP``), JPEG (``APP2 ICC_PROFILE``) and WebP
(``VP8X`` + ``ICCP``) bytes as the format specifications lay them out.
"""
from __future__ import annotations

import struct
import zlib
from typing import Optional

import numpy as np

#: EXIF orientation (tag 0x0112) -> what a viewer does to the stored pixels to show them upright.
ORIENTATIONS = {
    2: 'mirrored left-right', 3: 'rotated 180 degrees', 4: 'mirrored top-bottom',
    5: 'mirrored along the main diagonal', 6: 'rotated 90 degrees clockwise',
    7: 'mirrored along the anti-diagonal', 8: 'rotated 90 degrees counter-clockwise',
}
#: Extensions whose files carry an embedded colour profile here.
ICC_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.jpe', '.webp')
_JPEG_ICC_CHUNK = 65519  # 65535 - 2 (length field) - 12 ('ICC_PROFILE\0') - 2 (sequence number, count)


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """The stored ``H x W [x C]`` pixels as a viewer shows them for an EXIF ``orientation`` (1-8).

    Raises:
        ValueError: ``orientation`` is not 1-8.
    """
    if orientation == 1:
        return img
    if orientation not in ORIENTATIONS:
        raise ValueError(f'EXIF orientation must be 1-8, got {orientation}')
    if orientation in (5, 6, 7, 8):
        img = np.swapaxes(img, 0, 1)  # transpose, then mirror as the orientation asks
        flip = {5: None, 6: 1, 7: (0, 1), 8: 0}[orientation]
    else:
        flip = {2: 1, 3: (0, 1), 4: 0}[orientation]
    return np.ascontiguousarray(img if flip is None else np.flip(img, flip))


def profile_color_space(profile: bytes) -> Optional[str]:
    """The data colour space of an ICC profile (``'RGB'``, ``'GRAY'``, ``'CMYK'``...), None if it is no profile."""
    if len(profile) < 132 or profile[36:40] != b'acsp':
        return None
    return profile[16:20].decode('latin-1').strip() or None


def profile_description(profile: bytes) -> Optional[str]:
    """The profile's name (its ``desc`` tag: ICC v2 text or v4 multi-language), None if absent or unreadable."""
    try:
        (count,) = struct.unpack_from('>I', profile, 128)
        for i in range(min(count, 256)):
            sig, offset, size = struct.unpack_from('>4sII', profile, 132 + 12 * i)
            if sig != b'desc':
                continue
            tag = profile[offset:offset + size]
            if tag[:4] == b'desc':  # textDescriptionType: count, then ASCII with its NUL
                (n,) = struct.unpack_from('>I', tag, 8)
                text = tag[12:12 + n].split(b'\0', 1)[0].decode('latin-1')
            elif tag[:4] == b'mluc':  # multiLocalizedUnicodeType: the first record, UTF-16BE
                records, _ = struct.unpack_from('>II', tag, 8)
                if not records:
                    return None
                length, start = struct.unpack_from('>II', tag, 20)
                text = tag[start:start + length].decode('utf-16-be', 'replace')
            else:
                return None
            return text.strip() or None
    except (struct.error, UnicodeDecodeError):
        return None
    return None


def is_srgb_profile(profile: bytes) -> bool:
    """Whether the profile names itself sRGB: dropping it changes nothing, viewers take untagged files as sRGB."""
    return 'srgb' in (profile_description(profile) or '').lower().replace(' ', '')


def profile_fits(profile: Optional[bytes], ext: str, channels: int) -> bool:
    """Whether ``profile`` can be embedded in a ``channels``-channel image (alpha counted) written as ``ext``."""
    space = profile_color_space(profile) if profile else None
    ext = ext.lower()
    if ext == '.webp':  # WebP stores colour only (a grey image as three equal channels)
        return space == 'RGB' and channels in (3, 4)
    return ext in ICC_EXTENSIONS and space == {1: 'GRAY', 2: 'GRAY', 3: 'RGB', 4: 'RGB'}.get(channels)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xFFFFFFFF)


def _embed_png(data: bytes, profile: bytes) -> bytes:
    """An ``iCCP`` chunk right after ``IHDR`` (the specification puts it before ``PLTE`` and ``IDAT``)."""
    if data[:8] != b'\x89PNG\r\n\x1a\n' or data[12:16] != b'IHDR':
        raise ValueError('not a PNG stream')
    end = 8 + 12 + struct.unpack_from('>I', data, 8)[0]
    chunk = _png_chunk(b'iCCP', b'ICC Profile\0\0' + zlib.compress(profile, 9))
    return data[:end] + chunk + data[end:]


def _embed_jpeg(data: bytes, profile: bytes) -> bytes:
    """``APP2 ICC_PROFILE`` segments (numbered, at most 255) after the ``SOI`` and ``APP0`` / ``APP1`` segments."""
    if data[:2] != b'\xff\xd8':
        raise ValueError('not a JPEG stream')
    parts = [profile[i:i + _JPEG_ICC_CHUNK] for i in range(0, len(profile), _JPEG_ICC_CHUNK)]
    if len(parts) > 255:
        raise ValueError('the profile is too large for a JPEG file')
    pos = 2
    while data[pos:pos + 2] in (b'\xff\xe0', b'\xff\xe1'):  # JFIF / EXIF stay first, as readers expect
        pos += 2 + struct.unpack_from('>H', data, pos + 2)[0]
    segments = b''.join(b'\xff\xe2' + struct.pack('>H', 2 + 14 + len(p)) + b'ICC_PROFILE\0' + bytes([i + 1, len(parts)])
                        + p for i, p in enumerate(parts))
    return data[:pos] + segments + data[pos:]


def _webp_size(kind: bytes, body: bytes) -> tuple:
    """Width and height of a simple WebP's image chunk (lossy ``VP8 `` or lossless ``VP8L``)."""
    if kind == b'VP8 ':
        w, h = struct.unpack_from('<HH', body, 6)
        return w & 0x3FFF, h & 0x3FFF
    if kind == b'VP8L':
        (bits,) = struct.unpack_from('<I', body, 1)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise ValueError(f'unexpected WebP chunk {kind!r}')


def _embed_webp(data: bytes, profile: bytes) -> bytes:
    """A simple WebP (one ``VP8 `` / ``VP8L`` chunk) rewritten as the extended format with an ``ICCP`` chunk."""
    if data[:4] != b'RIFF' or data[8:12] != b'WEBP':
        raise ValueError('not a WebP stream')
    kind, (size,) = data[12:16], struct.unpack_from('<I', data, 16)
    if kind == b'VP8X':
        raise ValueError('an extended WebP stream is not rewritten')
    body = data[20:20 + size]
    width, height = _webp_size(kind, body)
    vp8x = bytes([0x20, 0, 0, 0]) + (width - 1).to_bytes(3, 'little') + (height - 1).to_bytes(3, 'little')

    def chunk(k: bytes, b: bytes) -> bytes:
        return k + struct.pack('<I', len(b)) + b + (b'\0' if len(b) % 2 else b'')

    payload = b'WEBP' + chunk(b'VP8X', vp8x) + chunk(b'ICCP', profile) + data[12:]
    return b'RIFF' + struct.pack('<I', len(payload)) + payload


def embed_icc_profile(data: bytes, ext: str, profile: bytes) -> bytes:
    """``data``, an encoded ``ext`` image (``'.png'``, ``'.jpg'``, ``'.webp'``), with ``profile`` embedded.

    Raises:
        ValueError: ``ext`` carries no profile here, or ``data`` is not laid out as ``ext`` says.
    """
    ext = ext.lower()
    if ext == '.png':
        return _embed_png(data, profile)
    if ext in ('.jpg', '.jpeg', '.jpe'):
        return _embed_jpeg(data, profile)
    if ext == '.webp':
        return _embed_webp(data, profile)
    raise ValueError(f"'{ext}' files carry no colour profile here; write {', '.join(ICC_EXTENSIONS)}")


__all__ = ['ICC_EXTENSIONS', 'ORIENTATIONS', 'apply_orientation', 'embed_icc_profile', 'is_srgb_profile',
           'profile_color_space', 'profile_description', 'profile_fits']
