"""What camera files carry beside their pixels: the EXIF orientation and data, and the ICC colour profile.

Why this exists: OpenCV, which mmagic's loaders and ``cv2.imwrite`` use, turns JPEG, PNG and TIFF
pixels upright by their EXIF orientation but not WebP ones, and writes neither a colour profile nor
EXIF data. A restored phone photo then came out sideways (a WebP), with washed-out colours (a Display
P3 JPEG whose profile was dropped, so viewers took its values as sRGB) or without its date, camera and
place (a photo library then sorts it by the day it was restored). Here, with numpy and the standard
library only: the eight EXIF orientations as array operations, a profile's colour space and name read
from its header and tags, an EXIF block made true for the result, and both embedded into PNG
(``iCCP``, ``eXIf``), JPEG (``APP2 ICC_PROFILE``, ``APP1 Exif``) and WebP (``VP8X`` + ``ICCP`` /
``EXIF``) bytes as the format specifications lay them out.
"""
from __future__ import annotations

import struct
import zlib
from typing import List, Optional, Tuple

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


#: EXIF orientation -> how to turn the stored pixels upright: transpose first or not, then the axes to mirror
#: (0: rows, top-bottom; 1: columns, left-right). The one table for arrays and tensors alike.
ORIENTATION_STEPS = {
    1: (False, ()), 2: (False, (1,)), 3: (False, (0, 1)), 4: (False, (0,)),
    5: (True, ()), 6: (True, (1,)), 7: (True, (0, 1)), 8: (True, (0,)),
}


def orientation_steps(orientation: int) -> Tuple[bool, Tuple[int, ...]]:
    """``(transpose, mirror_axes)`` that turn stored pixels upright for an EXIF ``orientation`` (1-8).

    Raises:
        ValueError: ``orientation`` is not 1-8.
    """
    if orientation not in ORIENTATION_STEPS:
        raise ValueError(f'EXIF orientation must be 1-8, got {orientation}')
    return ORIENTATION_STEPS[orientation]


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """The stored ``H x W [x C]`` pixels as a viewer shows them for an EXIF ``orientation`` (1-8).

    Raises:
        ValueError: ``orientation`` is not 1-8.
    """
    transpose, mirror = orientation_steps(orientation)
    if not transpose and not mirror:
        return img
    if transpose:
        img = np.swapaxes(img, 0, 1)
    return np.ascontiguousarray(np.flip(img, mirror) if mirror else img)


def undo_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels back from ``apply_orientation(stored, orientation)``: the turn the other way (6 and 8 swap,
    the mirrors and the half turn undo themselves).

    Why: data whose layout is the sensor's (a raw Bayer mosaic) must be processed as stored, not upright.
    """
    return apply_orientation(img, {6: 8, 8: 6}.get(orientation, orientation))


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


def _webp_chunks(data: bytes) -> List[Tuple[bytes, bytes]]:
    """The RIFF chunks of a WebP stream as ``(fourcc, body)`` pairs (their padding dropped)."""
    if data[:4] != b'RIFF' or data[8:12] != b'WEBP':
        raise ValueError('not a WebP stream')
    chunks, pos, end = [], 12, min(len(data), 8 + struct.unpack_from('<I', data, 4)[0])
    while pos + 8 <= end:
        kind, (size,) = data[pos:pos + 4], struct.unpack_from('<I', data, pos + 4)
        if pos + 8 + size > end:
            raise ValueError(f'a WebP {kind!r} chunk runs past the end of the stream')
        chunks.append((kind, data[pos + 8:pos + 8 + size]))
        pos += 8 + size + size % 2
    return chunks


def _webp_image_info(kind: bytes, body: bytes) -> Tuple[int, int, bool]:
    """Width, height and whether the pixels carry alpha, from a simple WebP's ``VP8 `` or ``VP8L`` chunk."""
    if kind == b'VP8 ':
        w, h = struct.unpack_from('<HH', body, 6)
        return w & 0x3FFF, h & 0x3FFF, False
    if kind == b'VP8L':  # 14 bits width - 1, 14 bits height - 1, then the alpha_is_used bit
        (bits,) = struct.unpack_from('<I', body, 1)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
    raise ValueError(f'unexpected WebP chunk {kind!r}')


def _rebuild_webp(data: bytes, profile: Optional[bytes] = None, exif: Optional[bytes] = None) -> bytes:
    """A still WebP (simple or extended) rewritten in the extended layout with ``profile`` and ``exif`` added.

    The ``VP8X`` header's flags must name every optional chunk, alpha included: a reader that finds a
    ``VP8X`` without the alpha flag decodes a lossless image with alpha as opaque (OpenCV did).
    """
    chunks = _webp_chunks(data)
    found = dict(chunks)
    if b'ANIM' in found:
        raise ValueError('an animated WebP stream is not rewritten')
    image = [(k, b) for k, b in chunks if k in (b'ALPH', b'VP8 ', b'VP8L')]
    if not image or image[-1][0] == b'ALPH':
        raise ValueError('a WebP stream without an image chunk')
    width, height, alpha = _webp_image_info(*image[-1])
    alpha = alpha or image[0][0] == b'ALPH' or bool(found.get(b'VP8X', b'\0')[0] & 0x10)
    profile, exif, xmp = profile or found.get(b'ICCP'), exif or found.get(b'EXIF'), found.get(b'XMP ')
    flags = (0x20 if profile else 0) | (0x10 if alpha else 0) | (0x08 if exif else 0) | (0x04 if xmp else 0)
    vp8x = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, 'little') + (height - 1).to_bytes(3, 'little')

    def chunk(k: bytes, b: bytes) -> bytes:
        return k + struct.pack('<I', len(b)) + b + (b'\0' if len(b) % 2 else b'')

    parts = [(b'VP8X', vp8x)] + ([(b'ICCP', profile)] if profile else []) + image  # the specification's order
    parts += ([(b'EXIF', exif)] if exif else []) + ([(b'XMP ', xmp)] if xmp else [])
    payload = b'WEBP' + b''.join(chunk(k, b) for k, b in parts)
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
        return _rebuild_webp(data, profile=profile)
    raise ValueError(f"'{ext}' files carry no colour profile here; write {', '.join(ICC_EXTENSIONS)}")


# ---- EXIF data (camera, lens, dates, GPS): carried from a photo into its result -----------------------------

_EXIF_HEADER = b'Exif\0\0'
#: Largest EXIF block a JPEG ``APP1`` segment holds (65535 - length field - ``Exif\0\0``).
JPEG_EXIF_LIMIT = 65535 - 2 - len(_EXIF_HEADER)
#: Extensions whose files carry EXIF data here.
EXIF_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.jpe', '.webp')


def exif_block(raw: Optional[bytes]) -> Optional[bytes]:
    """The TIFF-structured EXIF block of a file's EXIF data (JPEG's and Pillow's lead with ``Exif\0\0``,
    WebP's and PNG's ``eXIf`` do not), None where ``raw`` is none."""
    if not raw:
        return None
    block = raw[len(_EXIF_HEADER):] if raw.startswith(_EXIF_HEADER) else raw
    return bytes(block) if block[:4] in (b'II*\0', b'MM\0*') else None


#: The PNG text chunk in which older ImageMagick versions kept EXIF data (before PNG had an ``eXIf`` chunk).
RAW_PROFILE_EXIF = 'Raw profile type exif'


def raw_profile_bytes(text: Optional[str]) -> Optional[bytes]:
    """The bytes of an ImageMagick "raw profile" PNG text chunk (:data:`RAW_PROFILE_EXIF`), None if malformed.

    Why it exists: photos converted to PNG by older ImageMagick keep the camera's EXIF data as text, a line
    with the profile's name, one with its length, then hexadecimal digits; Pillow hands it over undecoded.
    """
    if not text:
        return None
    lines = text.strip('\n').split('\n')
    if len(lines) < 3 or not lines[1].strip().isdigit():
        return None
    try:
        data = bytes.fromhex(''.join(lines[2:]))
    except ValueError:
        return None
    return data if len(data) == int(lines[1]) else None


def _ifd_entries(block: bytearray, order: str, offset: int) -> Tuple[List[int], int]:
    """Positions of an IFD's 12-byte entries and of its next-IFD link."""
    if offset < 8 or offset + 2 > len(block):
        raise ValueError(f'an IFD offset {offset} outside the EXIF block')
    (count,) = struct.unpack_from(order + 'H', block, offset)
    link = offset + 2 + 12 * count
    if link + 4 > len(block):
        raise ValueError('an IFD runs past the end of the EXIF block')
    return [offset + 2 + 12 * i for i in range(count)], link


def _set_count_one(block: bytearray, order: str, entry: int, value: int) -> None:
    """An inline SHORT / LONG entry of count 1 set to ``value`` (a SHORT too small for it becomes a LONG)."""
    kind, count = struct.unpack_from(order + 'HI', block, entry + 2)
    if count != 1 or kind not in (3, 4):
        return  # not the layout the specification gives the tag: left as it is
    if kind == 3 and value > 0xFFFF:
        kind = 4
    struct.pack_into(order + 'HI', block, entry + 2, kind, 1)
    struct.pack_into(order + ('HH' if kind == 3 else 'I'), block, entry + 8, *((value, 0) if kind == 3 else (value,)))


def exif_for_result(block: bytes, width: int, height: int) -> bytes:
    """A photo's EXIF block made true for its restored result: orientation 1 (the result is stored upright),
    the result's pixel dimensions, and no thumbnail (the second IFD, a preview of the input, is unlinked).

    Why patched in place and not rebuilt (as Pillow's ``Exif.tobytes`` would): camera maker notes hold
    offsets into the block, which a rebuilt block breaks; here every other byte stays where it was.

    Raises:
        ValueError: ``block`` is not a well-formed EXIF block.
    """
    data = bytearray(block)
    order = {b'II*\0': '<', b'MM\0*': '>'}.get(bytes(data[:4]))
    if order is None or len(data) < 8:
        raise ValueError('the EXIF block has no TIFF header')
    entries, link = _ifd_entries(data, order, struct.unpack_from(order + 'I', data, 4)[0])
    struct.pack_into(order + 'I', data, link, 0)  # no IFD1: the input's thumbnail
    sizes = {0x0112: 1, 0x0100: width, 0x0101: height, 0xA002: width, 0xA003: height}
    for entry in list(entries):
        (tag,) = struct.unpack_from(order + 'H', data, entry)
        if tag == 0x8769:  # the Exif IFD, which holds the pixel dimensions
            entries += _ifd_entries(data, order, struct.unpack_from(order + 'I', data, entry + 8)[0])[0]
    for entry in entries:
        (tag,) = struct.unpack_from(order + 'H', data, entry)
        if tag in sizes:
            _set_count_one(data, order, entry, sizes[tag])
    return bytes(data)


def embed_exif(data: bytes, ext: str, block: bytes) -> bytes:
    """``data``, an encoded ``ext`` image, with the EXIF ``block`` embedded: PNG ``eXIf`` (before the pixels),
    JPEG ``APP1`` (after ``JFIF``), WebP ``EXIF`` (the extended layout).

    Raises:
        ValueError: ``ext`` carries no EXIF here, the block is too large for a JPEG, or ``data`` is not ``ext``.
    """
    ext = ext.lower()
    if ext == '.png':
        if data[:8] != b'\x89PNG\r\n\x1a\n' or data[12:16] != b'IHDR':
            raise ValueError('not a PNG stream')
        end = 8 + 12 + struct.unpack_from('>I', data, 8)[0]
        return data[:end] + _png_chunk(b'eXIf', block) + data[end:]
    if ext in ('.jpg', '.jpeg', '.jpe'):
        if data[:2] != b'\xff\xd8':
            raise ValueError('not a JPEG stream')
        if len(block) > JPEG_EXIF_LIMIT:
            raise ValueError(f'an EXIF block of {len(block)} bytes does not fit a JPEG segment ({JPEG_EXIF_LIMIT})')
        pos = 2 + (2 + struct.unpack_from('>H', data, 4)[0] if data[2:4] == b'\xff\xe0' else 0)
        return data[:pos] + b'\xff\xe1' + struct.pack('>H', 2 + len(_EXIF_HEADER) + len(block)) + _EXIF_HEADER \
            + block + data[pos:]
    if ext == '.webp':
        return _rebuild_webp(data, exif=block)
    raise ValueError(f"'{ext}' files carry no EXIF data here; write {', '.join(EXIF_EXTENSIONS)}")


def exif_fits(block: Optional[bytes], ext: str) -> bool:
    """Whether the EXIF ``block`` can be embedded in an ``ext`` file."""
    ext = ext.lower()
    return bool(block) and ext in EXIF_EXTENSIONS and not (ext in ('.jpg', '.jpeg', '.jpe')
                                                          and len(block) > JPEG_EXIF_LIMIT)


__all__ = ['EXIF_EXTENSIONS', 'ICC_EXTENSIONS', 'JPEG_EXIF_LIMIT', 'ORIENTATIONS', 'ORIENTATION_STEPS',
           'RAW_PROFILE_EXIF', 'apply_orientation', 'embed_exif', 'embed_icc_profile', 'exif_block', 'exif_fits',
           'exif_for_result', 'is_srgb_profile', 'orientation_steps', 'profile_color_space', 'profile_description',
           'profile_fits', 'raw_profile_bytes', 'undo_orientation']
