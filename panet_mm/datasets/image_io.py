"""Reading image files that may be hostile: a pixel limit checked from the header, and full verification.

Why it exists: OpenCV and Pillow decode whatever size a file declares. A small PNG or JPEG can
declare 30000 x 30000 pixels (a decompression bomb) and exhaust the machine's memory while it is
decoded; Pillow's own guard (``DecompressionBombError``) is a fixed 179 MP that callers tend to
catch and hand the file to OpenCV, which decodes it anyway. And OpenCV decodes a truncated JPEG into
an image with a flat grey block, with only a libjpeg warning on stderr.

Every image panet_mm decodes (``tools/restore.py``, the preparation tools, ``CheckedImageDataset``)
goes through this module first:

* :func:`read_image_header` reads the declared size from the header without decoding any pixels:
  PNG's ``IHDR``, JPEG's ``SOF`` segment (parsed here, so that nothing else runs first), other
  formats through Pillow's lazy ``Image.open`` (which reads the header only), TIFFs Pillow does not
  identify (float RGB) from their first directory.
* :func:`check_image_file` refuses a size above the pixel limit (:func:`default_max_pixels`: what
  the machine's memory affords, or ``PANET_MM_MAX_PIXELS``), naming the file, its declared size and
  the parameter that raises the limit (``max_pixels``; CLIs name their flag).
* :func:`verify_image_file` also decodes the whole file with Pillow, which notices truncated or
  corrupt PNG / JPEG data that OpenCV silently fills in.
* :func:`imread_verified` is :func:`verify_image_file` followed by OpenCV's decoding (the pixels the
  project always used), for tools that must never turn a damaged file into data.
"""
from __future__ import annotations

import contextlib
import io
import os
import os.path as osp
import re
import resource
import struct
import warnings
from typing import BinaryIO, Iterator, NamedTuple, Optional, Union

import numpy as np

from panet_mm.utils.errors import PanetMMError, ParameterError, first_line

#: Environment variable that sets the pixel limit (an integer number of pixels) for every reader.
MAX_PIXELS_ENV = 'PANET_MM_MAX_PIXELS'
#: Bytes of memory budgeted per declared pixel: the limit keeps a decoded image and the few float32
#: copies made from it (3 channels x 4 bytes each) within a quarter of the memory.
BYTES_PER_PIXEL_BUDGET = 128
#: The default limit stays between these: OpenCV's own ceiling (2**30, ``OPENCV_IO_MAX_IMAGE_PIXELS``)
#: and 16 MP (any photo a small machine is likely to be handed).
MIN_DEFAULT_PIXELS = 1 << 24
MAX_DEFAULT_PIXELS = 1 << 30

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


class ImageFileError(PanetMMError):
    """An image file is empty, truncated, corrupt or not an image; the message names it."""


class PixelLimitError(ImageFileError, ParameterError):
    """An image declares more pixels than the limit (a possible decompression bomb).

    A :class:`~panet_mm.utils.errors.ParameterError` of ``max_pixels``: a CLI names its flag with
    ``err.for_cli({'max_pixels': '--max-pixels'})``.
    """


class ImageHeader(NamedTuple):
    """What an image file declares before any pixel is decoded.

    Attributes:
        width (int): Declared width in pixels.
        height (int): Declared height in pixels.
        format (str): ``'PNG'``, ``'JPEG'``, Pillow's format name, or ``'TIFF'`` / ``'TIFF float32'`` (and 16 / 64)
            for the TIFFs Pillow does not identify.
    """

    width: int
    height: int
    format: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def memory_bytes() -> int:
    """The memory this process may use: physical memory, lowered by a cgroup or address-space limit."""
    total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    for limit_file in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):
        try:
            with open(limit_file) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft > 0:
        total = min(total, soft)
    return total


def default_max_pixels() -> int:
    """The pixel limit: ``PANET_MM_MAX_PIXELS`` if set, else a quarter of the memory at 32 bytes a pixel.

    Returns:
        int: The largest number of pixels an image may declare, between 16 MP and 2**30 by default.

    Raises:
        ValueError: If ``PANET_MM_MAX_PIXELS`` is not a positive integer.
    """
    env = os.environ.get(MAX_PIXELS_ENV)
    if env:
        try:
            value = int(float(env))
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f'{MAX_PIXELS_ENV}={env!r} is not a positive number of pixels; unset it or give '
                             f'e.g. {MAX_PIXELS_ENV}=400000000')
        return value
    return int(min(MAX_DEFAULT_PIXELS, max(MIN_DEFAULT_PIXELS, memory_bytes() // BYTES_PER_PIXEL_BUDGET)))


def _png_size(head: bytes) -> Optional[ImageHeader]:
    if head[:8] != b'\x89PNG\r\n\x1a\n':
        return None
    if len(head) < 24 or head[12:16] != b'IHDR':
        raise ImageFileError('it starts like a PNG but has no IHDR header (truncated or corrupt)')
    width, height = struct.unpack('>II', head[16:24])
    return ImageHeader(width, height, 'PNG')


def _tiff_size(f: BinaryIO) -> Optional[ImageHeader]:
    """ImageWidth / ImageLength of a classic TIFF's first directory. Pillow reads TIFF headers itself but does not
    identify every TIFF OpenCV decodes (3-channel 32-bit float ones, as raw converters export), so this reads
    those; the format is ``'TIFF float<bits>'`` where SampleFormat says IEEE floating point or the photometric
    interpretation is LogLuv (OpenCV writes float TIFFs so; they decode to float32). None where the file is not a
    classic TIFF."""
    f.seek(0)
    head = f.read(8)
    if head[:4] not in (b'II*\x00', b'MM\x00*') or len(head) < 8:
        return None
    order = '<' if head[:2] == b'II' else '>'
    f.seek(struct.unpack(order + 'I', head[4:8])[0])
    count = f.read(2)
    if len(count) < 2:
        raise ImageFileError('it starts like a TIFF but its first directory is missing (truncated or corrupt)')
    tags = {}
    for _ in range(struct.unpack(order + 'H', count)[0]):
        entry = f.read(12)
        if len(entry) < 12:
            raise ImageFileError('it starts like a TIFF but its first directory is cut short (truncated or corrupt)')
        tag, kind, n = struct.unpack(order + 'HHI', entry[:8])
        # ImageWidth, ImageLength, BitsPerSample, Photometric, SampleFormat
        if tag in (256, 257, 258, 262, 339) and kind in (3, 4):
            tags[tag] = _tiff_first_value(f, order, kind, n, entry[8:12])
    if 256 not in tags or 257 not in tags:
        raise ImageFileError('it starts like a TIFF but declares no width or height (corrupt)')
    if tags.get(262) in (32844, 32845):  # LogL / LogLuv (OpenCV's float TIFFs): decoded to float32
        return ImageHeader(tags[256], tags[257], 'TIFF float32')
    floating = tags.get(339) == 3 and tags.get(258) in (16, 32, 64)
    return ImageHeader(tags[256], tags[257], f'TIFF float{tags[258]}' if floating else 'TIFF')


def _tiff_first_value(f: BinaryIO, order: str, kind: int, count: int, field: bytes) -> int:
    """The first value of a SHORT (3) or LONG (4) directory entry: in ``field`` when all its values fit there,
    else at the offset ``field`` holds (BitsPerSample and SampleFormat of a 3-channel image)."""
    fmt = order + ('H' if kind == 3 else 'I')
    size = struct.calcsize(fmt)
    if count * size <= 4:
        return struct.unpack(fmt, field[:size])[0]
    here = f.tell()
    f.seek(struct.unpack(order + 'I', field)[0])
    value = f.read(size)
    f.seek(here)
    if len(value) < size:
        raise ImageFileError('it starts like a TIFF but a directory entry points past its end (truncated or corrupt)')
    return struct.unpack(fmt, value)[0]


def _jpeg_size(f: BinaryIO) -> Optional[ImageHeader]:
    """Walk the JPEG segments up to the first SOF, seeking over the others (EXIF, ICC, ...)."""
    f.seek(0)
    if f.read(2) != b'\xff\xd8':
        return None
    while True:
        byte = f.read(1)
        if not byte:
            break
        if byte != b'\xff':
            continue  # not at a marker: corrupt, keep scanning as decoders do
        marker = f.read(1)
        while marker == b'\xff':  # fill bytes
            marker = f.read(1)
        if not marker:
            break
        code = marker[0]
        if code in _JPEG_STANDALONE or code == 0x00:
            continue
        if code in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        raw = f.read(2)
        if len(raw) < 2:
            break
        length = struct.unpack('>H', raw)[0]
        if length < 2:
            break
        if code in _JPEG_SOF:
            body = f.read(5)
            if len(body) < 5:
                break
            height, width = struct.unpack('>HH', body[1:5])
            return ImageHeader(width, height, 'JPEG')
        f.seek(length - 2, io.SEEK_CUR)
    raise ImageFileError('it starts like a JPEG but has no frame header (SOF) before its data (truncated or '
                         'corrupt)')


@contextlib.contextmanager
def pillow_checks() -> Iterator[None]:
    """Pillow without its own pixel guard (the size was checked already), strict about truncation, and quiet
    about damaged EXIF blocks (its 'Corrupt EXIF data' warning; the pixels are what is checked here)."""
    from PIL import Image, ImageFile
    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='(Corrupt EXIF data|Metadata Warning)', category=UserWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _open(source: Union[str, bytes]) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, 'rb')


def read_image_header(source: Union[str, bytes], name: Optional[str] = None) -> ImageHeader:
    """The size an image file declares, read from its header without decoding pixels.

    Args:
        source (str | bytes): The file path, or the file's bytes.
        name (str, optional): The file name for messages. Default: ``source`` if it is a path.

    Returns:
        ImageHeader: Declared width, height and format.

    Raises:
        ImageFileError: The file is empty, its header is truncated or corrupt, or it is not an image
            format Pillow or this module recognises.
        OSError: The file cannot be opened.
    """
    name = name or (source if isinstance(source, str) else '<bytes>')
    with _open(source) as f:
        head = f.read(32)
        if not head:
            raise ImageFileError(f"'{name}' is empty (0 bytes); copy or export the image again")
        try:
            header = _png_size(head) or _jpeg_size(f)
        except ImageFileError as err:
            raise ImageFileError(f"'{name}': {err}; copy or export the image again") from None
        if header is None:
            from PIL import Image, UnidentifiedImageError
            f.seek(0)
            try:
                with pillow_checks(), Image.open(f) as im:  # lazy: reads the header only
                    header = ImageHeader(int(im.width), int(im.height), str(im.format))
            except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
                # Pillow does not identify (or has no mode for) float RGB TIFFs: their directory is read here
                try:
                    header = _tiff_size(f)
                except (ImageFileError, struct.error) as tiff_err:
                    raise ImageFileError(f"'{name}': {tiff_err}; copy or export the image again") from None
                if header is None and isinstance(err, UnidentifiedImageError):
                    raise ImageFileError(f"'{name}' is not an image file of a known format (PNG, JPEG, BMP, TIFF, "
                                         'WebP, PNM, ...), or its header is corrupt; convert it to PNG') from None
                if header is None:
                    raise ImageFileError(f"'{name}' has a truncated or corrupt header ({first_line(err, 200)}); "
                                         'copy or export the image again') from None
    if header.width < 1 or header.height < 1:
        raise ImageFileError(f"'{name}' declares {header.width}x{header.height} pixels (corrupt header); copy or "
                             'export the image again')
    return header


def _megapixels(pixels: int) -> str:
    """``'179 MP'``, ``'0.3 MP'``, or ``'2240 pixels'`` below 0.1 MP (where a whole number of MP reads 0)."""
    if pixels >= 9.5e6:
        return f'{pixels / 1e6:.0f} MP'
    return f'{pixels / 1e6:.1f} MP' if pixels >= 1e5 else f'{pixels} pixels'


def check_image_file(source: Union[str, bytes], max_pixels: Optional[int] = None, option: Optional[str] = None,
                     name: Optional[str] = None, decode: bool = False) -> ImageHeader:
    """Read the header and refuse an image declaring more than ``max_pixels`` pixels.

    Args:
        source (str | bytes): The file path, or the file's bytes.
        max_pixels (int, optional): The limit. Default: :func:`default_max_pixels`.
        option (str, optional): How the caller's user raises the limit, quoted in the refusal as is
            (e.g. a dataset config key). Default: None, i.e. the parameter ``max_pixels``, which a CLI
            renames with :meth:`PixelLimitError.for_cli`.
        name (str, optional): The file name for messages. Default: ``source`` if it is a path.
        decode (bool): Then decode every pixel with Pillow, to find truncated or corrupt data that
            OpenCV would silently fill in. Default: False (the header only).

    Returns:
        ImageHeader: The declared size.

    Raises:
        PixelLimitError: The declared size is above the limit (nothing was decoded).
        ImageFileError: The file is empty, not an image, declares floating-point pixels (a float TIFF), or
            (``decode``) truncated or corrupt.
    """
    name = name or (source if isinstance(source, str) else '<bytes>')
    header = read_image_header(source, name)
    limit = default_max_pixels() if max_pixels is None else int(max_pixels)
    if header.pixels > limit:
        template = (f"'{name}' declares {header.width}x{header.height} pixels ({_megapixels(header.pixels)}), above "
                    f'the limit of {_megapixels(limit)} (a decompression bomb would exhaust the memory); it was not '
                    f'decoded. If the image is genuine, raise the limit to at least {header.pixels} ({{param}})')
        raise PixelLimitError('max_pixels', template.replace('{param}', option) if option else template)
    if header.format.startswith('TIFF float'):
        raise ImageFileError(float_pixels_message(name, int(header.format[len('TIFF float'):])))
    if decode:
        from PIL import Image, UnidentifiedImageError
        try:
            with _open(source) as f, pillow_checks(), Image.open(f) as im:
                im.load()
        except (UnidentifiedImageError, SyntaxError) as err:
            if not header.format.startswith('TIFF'):
                raise ImageFileError(f"'{name}' is truncated or corrupt ({first_line(err, 200)}); copy or export "
                                     'the image again') from None
            _verify_with_opencv(source, name)   # a TIFF Pillow has no mode for (read_image_header): OpenCV decides
        except (OSError, ValueError, EOFError, struct.error, MemoryError) as err:
            # (Pillow's "(55 bytes not processed)" counts its buffer, not what is missing: half a file read so)
            why = re.sub(r'\s*\(\d+ bytes not processed\)', '', first_line(err, 200))
            raise ImageFileError(f"'{name}' is truncated or corrupt ({why}); copy or export the image again") from None
    return header


def float_pixels_message(name: str, bits: int) -> str:
    """The refusal of an image stored as floating-point pixels (OpenCV's 8-bit reading of them applies its own
    tone curve; neither the range nor the curve the image was made with is known)."""
    return (f"'{name}' stores {bits}-bit floating-point pixels, whose range and tone curve the model cannot know; "
            'export it as an 8- or 16-bit PNG or TIFF')


def _verify_with_opencv(source: Union[str, bytes], name: str) -> None:
    import cv2
    with _open(source) as f:
        img = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageFileError(f"'{name}' is truncated or corrupt (OpenCV cannot decode it); copy or export the image "
                             'again')


def verify_image_file(source: Union[str, bytes], max_pixels: Optional[int] = None, option: Optional[str] = None,
                      name: Optional[str] = None) -> ImageHeader:
    """:func:`check_image_file` with ``decode=True``: the limit, then every pixel decoded once."""
    return check_image_file(source, max_pixels, option, name, decode=True)


def imread_verified(path: str, flags: Optional[int] = None, max_pixels: Optional[int] = None,
                    option: Optional[str] = None) -> np.ndarray:
    """Read an image with OpenCV after :func:`verify_image_file` (limit and full verification).

    Args:
        path (str): Image file.
        flags (int, optional): ``cv2.imdecode`` flags. Default: ``cv2.IMREAD_COLOR``.
        max_pixels (int, optional): The pixel limit. Default: :func:`default_max_pixels`.
        option (str, optional): See :func:`check_image_file`.

    Returns:
        np.ndarray: The image as OpenCV decodes it (BGR for colour).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageFileError: The file is too large, empty, truncated, corrupt or not an image.
    """
    import cv2
    if not osp.isfile(path):
        raise FileNotFoundError(f"no such image file: '{path}'")
    verify_image_file(path, max_pixels, option)
    # imdecode, not imread: OpenCV 4.11's imread fails on TIFFs with an EXIF orientation of 5-8 (a turned
    # image; 'original_ptr == real_mat.data'), which imdecode reads, turned, as it does every other file
    img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR if flags is None else flags)
    if img is None:
        raise ImageFileError(f"'{path}' cannot be decoded by OpenCV; convert it to PNG")
    return img


__all__ = ['MAX_PIXELS_ENV', 'ImageFileError', 'ImageHeader', 'PixelLimitError', 'check_image_file',
           'default_max_pixels', 'float_pixels_message', 'imread_verified', 'memory_bytes', 'pillow_checks',
           'read_image_header', 'verify_image_file']
