"""The image kinds users hand in (grey, colour, 16-bit, alpha, raw Bayer) turned into what the model takes.

Each conversion is decided once, from what the file holds to what the model takes, and reported with
exactly one note, so that a user learns why the result looks the way it does.
"""
from __future__ import annotations

import copy
import io
import os.path as osp
import struct
from typing import Any, List, NamedTuple, Optional, Tuple

import numpy as np

from panet_mm.datasets.image_io import ImageFileError, check_image_file, float_pixels_message, pillow_checks
from panet_mm.datasets.transforms.color import drop_alpha, gray_or_y, is_gray
from panet_mm.datasets.transforms.mosaic import bayer_mosaic, is_bayer_mosaic
from panet_mm.utils.errors import first_line
from panet_mm.utils.image_metadata import (
    EXIF_EXTENSIONS,
    ICC_EXTENSIONS,
    ORIENTATIONS,
    RAW_PROFILE_EXIF,
    apply_orientation,
    exif_block,
    exif_fits,
    exif_for_result,
    is_srgb_profile,
    profile_color_space,
    profile_description,
    profile_fits,
    raw_profile_bytes,
    undo_orientation,
)

from .errors import ImageReadError, RestoreError
from .load_settings import LoadSettings

_PATTERNS = ('RGGB', 'BGGR', 'GRBG', 'GBRG')
ALPHA_NOTE = 'alpha channel kept apart from the model and written back with the result (resized to its size)'
ALPHA_DROPPED_NOTE = 'alpha channel dropped (transparent pixels keep their stored colour)'
#: Result formats OpenCV writes with an alpha channel.
ALPHA_EXTENSIONS = ('.png', '.webp', '.tif', '.tiff')


class StoredImage(NamedTuple):
    """What the file holds, as stored: channels (grey + alpha: 2; CMYK: 3, the loader converts it), dtype,
    Pillow's mode (None where Pillow does not know the format), the EXIF orientation still to apply to the
    stored pixels (1: none), the ICC colour profile, a grey thumbnail of the stored pixels (only where the
    orientation is not 1: it tells whether the loader turned them upright), their height and width, the
    alpha plane (uint8 or uint16, already turned upright; None without alpha), and whether OpenCV decodes
    the colour multiplied by that alpha (TIFFs with unassociated alpha, through libtiff's RGBA reader), and
    how many frames or pages the file holds (animated PNG / WebP / GIF, multi-page TIFF), its EXIF block
    (TIFF-structured; None without one, for TIFF files, whose tags describe their own layout, and where the
    block is damaged), and the file's EXIF orientation whoever applies it (``layout``: Pillow turns a TIFF's
    pixels itself while loading and drops the tag, so ``orientation`` is 1 there; raw Bayer data needs it)."""

    channels: int
    dtype: np.dtype
    mode: Optional[str] = None
    orientation: int = 1
    profile: Optional[bytes] = None
    thumb: Optional[np.ndarray] = None
    size: Tuple[int, int] = (0, 0)
    alpha: Optional[np.ndarray] = None
    premultiplied: bool = False
    frames: int = 1
    exif: Optional[bytes] = None
    exif_damaged: bool = False
    layout: int = 1


class ReadImage(NamedTuple):
    """An image file read for the model: pixels (config's channel order), one note per conversion, the
    colour profile to write into the result (None: none, or one that no longer describes the pixels), the
    alpha plane to write back (None: none; upright), the EXIF block to carry into the result (None: none),
    and the EXIF orientation still to apply to the model's output (1: none; raw Bayer data is demosaiced as
    stored, since its pattern describes the sensor's stored layout, and the result turned upright)."""

    img: np.ndarray
    notes: List[str]
    profile: Optional[bytes] = None
    alpha: Optional[np.ndarray] = None
    exif: Optional[bytes] = None
    orientation: int = 1


def _orientation(im: Any) -> int:
    """The EXIF orientation (2-8) Pillow leaves to apply after decoding; 1 where there is none or it is invalid."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001  (a damaged EXIF block is no orientation: the pixels are read as stored)
        return 1
    return value if isinstance(value, int) and value in ORIENTATIONS else 1


def _grey_thumb(img: np.ndarray, shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """A small grey float image, zero mean and unit spread (compares pixels across bit depths and decoders)."""
    import cv2
    img = img.astype(np.float32)
    if img.ndim == 3:  # colour channels only (grey + alpha: the grey one)
        img = img[..., :1 if img.shape[2] in (1, 2) else 3].mean(axis=2)
    h, w = img.shape
    if shape is None:
        k = max(h, w) / 64
        shape = (max(1, round(h / k)), max(1, round(w / k))) if k > 1 else (h, w)
    img = cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return (img - img.mean()) / (img.std() + 1e-6)


def _stored_kind(data: bytes, path: str) -> StoredImage:
    """What ``data`` holds as stored (:class:`StoredImage`); truncated or corrupt data raise.

    Pillow checks the formats it knows (it notices truncated PNG / JPEG data that OpenCV would decode
    into a partly grey image); OpenCV then decodes, which also covers formats Pillow does not know.
    """
    import cv2
    from PIL import Image, UnidentifiedImageError
    mode, orientation, profile, thumb, size, tiff_rgba, tiff_la, frames = None, 1, None, None, (0, 0), None, None, 1
    exif, exif_damaged, layout = None, False, 1
    try:  # the declared size was checked against the pixel limit first: Pillow's own guard is off
        with pillow_checks(), Image.open(io.BytesIO(data)) as im:
            layout = _orientation(im)  # (before load: Pillow turns a TIFF's pixels while loading, dropping the tag)
            im.load()
            mode, orientation, profile = im.mode, _orientation(im), im.info.get('icc_profile') or None
            size, frames = (im.height, im.width), int(getattr(im, 'n_frames', 1) or 1)
            if im.format != 'TIFF':  # (after load: an eXIf may follow IDAT)
                exif, exif_damaged = _carried_exif(im.info.get('exif'))
                if exif is None and not exif_damaged and RAW_PROFILE_EXIF in im.info:  # older ImageMagick's PNGs
                    exif, exif_damaged = _carried_exif(raw_profile_bytes(im.info[RAW_PROFILE_EXIF]))
                    exif_damaged = exif is None
            if im.format == 'TIFF' and im.mode == 'RGBA':
                tiff_rgba = np.asarray(im)  # the stored colour, for OpenCV's premultiplied reading below
            elif im.format == 'TIFF' and im.mode == 'LA':
                tiff_la = np.asarray(im)[..., 1]  # OpenCV reads a grey + alpha TIFF as grey, its alpha lost
            if orientation != 1:
                thumb = _grey_thumb(np.asarray(im.convert('RGB') if im.mode in ('P', 'PA', '1', 'CMYK', 'YCbCr')
                                               else im))
    except UnidentifiedImageError:
        pass  # not a Pillow format: OpenCV decides below
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"'{path}' is truncated or corrupt ({first_line(err)}); copy or export "
                             'the image again') from None
    native = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if native is None:
        raise ImageReadError(f"'{path}' is not an image OpenCV can decode; convert it to PNG")
    channels = 1 if native.ndim == 2 else int(native.shape[2])
    if channels == 4 and mode in ('LA', 'La'):
        channels = 2  # grey + alpha, which OpenCV decodes as 4 channels
    elif channels == 4 and mode == 'CMYK':
        channels = 3  # ink channels, not colour + alpha: OpenCV's colour reading converts them to RGB
    stored = StoredImage(channels, native.dtype, mode, orientation, bytes(profile) if profile else None, thumb, size,
                         frames=frames, exif=exif, exif_damaged=exif_damaged,
                         layout=orientation if orientation != 1 else layout)  # (a PNG eXIf after IDAT: after load)
    if native.ndim == 2 and tiff_la is not None and tiff_la.shape == native.shape:
        stored = stored._replace(channels=2, alpha=np.ascontiguousarray(tiff_la))
    if channels in (2, 4) and native.ndim == 3 and native.shape[2] == 4:
        plane = native[..., 3]  # as OpenCV's 'unchanged' reading gives it: turned or not, as for the colour
        turn = _left_as_stored(native[..., :3], stored)
        stored = stored._replace(alpha=np.ascontiguousarray(apply_orientation(plane, orientation) if turn else plane))
        stored = stored._replace(premultiplied=_premultiplied(native, tiff_rgba))
    return stored


def check_float_range(img: np.ndarray) -> None:
    """Refuse float pixels that are not 0-255: NaN / infinite values, values outside, or values in 0-1.

    Why: float images in 0-1 (scikit-image's ``img_as_float``, torchvision) were restored as a nearly black
    image, and NaN inputs reported a broken checkpoint; the model takes OpenCV's 0-255 range.

    Raises:
        RestoreError: Naming the values found and the conversion to make.
    """
    finite = np.isfinite(img)
    if not finite.all():
        raise RestoreError(f'img has {int(img.size - finite.sum())} NaN or infinite values; replace them (e.g. '
                           'np.nan_to_num(img)) before restoring')
    low, high = float(img.min()), float(img.max())
    if low < -0.5 or high > 255.5:
        raise RestoreError(f'img has float values from {low:g} to {high:g} but restoration takes 0-255; rescale or '
                           'clip it (np.clip(img, 0, 255))')
    if 0 < high <= 1:
        raise RestoreError(f'img has float values from {low:g} to {high:g}, i.e. in 0-1, but restoration takes 0-255 '
                           '(as uint8 images); pass img * 255')


def _carried_exif(raw: Optional[bytes]) -> Tuple[Optional[bytes], bool]:
    """A file's EXIF data as the block to carry into its result, and whether it was there but damaged."""
    block = exif_block(raw)
    if block is None:
        return None, bool(raw)
    try:
        exif_for_result(block, 1, 1)  # the walk the result's writing does: a damaged block fails here, not there
    except (ValueError, struct.error):
        return None, True
    return block, False


def _premultiplied(native: np.ndarray, rgba: Optional[np.ndarray]) -> bool:
    """Whether OpenCV's BGRA decoding of a TIFF holds Pillow's RGBA colour multiplied by the alpha."""
    if rgba is None or native.dtype != np.uint8 or native.shape != rgba.shape:
        return False
    stored = rgba[..., 2::-1].astype(np.float32)
    multiplied = np.round(stored * (rgba[..., 3:] / np.float32(255)))
    got = native[..., :3].astype(np.float32)
    return float(np.abs(got - multiplied).max()) <= 1 < float(np.abs(got - stored).max())


def unpremultiply(img: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Colour multiplied by its 8-bit alpha (``H x W x C`` and ``H x W``) divided back, as float 0-255; pixels of
    alpha 0 stay 0 (their colour is gone)."""
    a = alpha.astype(np.float32)[..., None]
    out = np.where(a > 0, img.astype(np.float32) * 255 / np.maximum(a, 1), 0)
    return np.clip(out, 0, 255).astype(np.float32)


def _left_as_stored(img: np.ndarray, stored: StoredImage) -> bool:
    """Whether a decoder gave ``img`` as stored where the file's EXIF orientation asks for it turned.

    That depends on the decoder, the flag and the format (OpenCV 4.11 turns JPEG and PNG pixels with the
    ``color`` / ``grayscale`` flags but not with ``unchanged``, TIFF ones always and WebP ones never), so
    the pixels are compared with the stored ones and with them turned, on small grey thumbnails.
    """
    if stored.orientation == 1 or stored.thumb is None:
        return False
    h0, w0 = stored.size
    scores = {}
    for turned in (False, True):
        ref = apply_orientation(stored.thumb, stored.orientation) if turned else stored.thumb
        full = (w0, h0) if turned and stored.orientation >= 5 else (h0, w0)
        if tuple(img.shape[:2]) == full:  # the decoded shape rules out a candidate of the other shape
            scores[turned] = float(np.abs(_grey_thumb(img, ref.shape) - ref).mean())
    return False in scores and scores[False] < scores.get(True, np.inf)


def _upright(img: np.ndarray, stored: StoredImage) -> Tuple[np.ndarray, List[str]]:
    """The loaded image turned as the file's EXIF orientation asks, where the loader did not do it."""
    if not _left_as_stored(img, stored):
        return img, []
    return apply_orientation(img, stored.orientation), [
        f'turned upright ({ORIENTATIONS[stored.orientation]}) as its EXIF orientation tag ({stored.orientation}) '
        "asks viewers to show it; the config's loader reads this file as stored"]


def attach_alpha(img: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A restored uint8 image (``H x W x 1`` or ``x 3``, OpenCV's order) with an input's alpha plane as a 4th
    channel: the alpha resized to the result (bicubic up, area down), 16-bit alpha reduced to 8 bits, and a
    grey result repeated into 3 channels (OpenCV writes no grey + alpha files).

    Why: an SR model restores colour only, but a transparent logo or sprite must stay transparent.
    """
    import cv2
    h, w = img.shape[:2]
    plane = alpha.astype(np.float32) / (257 if alpha.dtype == np.uint16 else 1)
    if plane.shape != (h, w):
        up = h * w > plane.size
        plane = cv2.resize(plane, (w, h), interpolation=cv2.INTER_CUBIC if up else cv2.INTER_AREA)
    colour = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
    return np.ascontiguousarray(np.dstack([colour, np.clip(np.round(plane), 0, 255).astype(np.uint8)]))


def keeps_alpha(alpha: Optional[np.ndarray], result: str) -> bool:
    """Whether the file ``result`` is written with the input's ``alpha``: there is one and the format holds it."""
    return alpha is not None and osp.splitext(result)[1].lower() in ALPHA_EXTENSIONS


def alpha_note(alpha: Optional[np.ndarray], result: str,
               keep_hint: str = 'a .png result file') -> Optional[str]:
    """Why the input's alpha is not in ``result``: its format holds none (JPEG, BMP, ...); else None."""
    if alpha is None or keeps_alpha(alpha, result):
        return None
    ext = osp.splitext(result)[1].lower()
    return (f"its alpha channel cannot be written into {ext or 'extension-less'} files, so the result is opaque; "
            f'{keep_hint} keeps it')


def profile_note(profile: Optional[bytes], result: str, channels: int,
                 keep_hint: str = 'a .png result file') -> Optional[str]:
    """Why the input's colour profile is not written into ``result``, where leaving it out changes the colours.

    An sRGB profile needs no note: viewers take untagged pixels as sRGB. Any other (Display P3, Adobe
    RGB, a camera's own) is embedded where the result's format and channels hold it
    (:func:`~panet_mm.utils.image_metadata.profile_fits`), else the result looks different in a
    colour-managed viewer, and the user is told.

    Args:
        profile (bytes, optional): The input's ICC profile.
        result (str): The result's file name (its extension is the format).
        channels (int): The result's channels.
        keep_hint (str): How the caller asks for a format that keeps the profile.
    """
    ext = osp.splitext(result)[1].lower()
    if not profile or is_srgb_profile(profile) or profile_fits(profile, ext, channels):
        return None
    name = profile_description(profile) or 'unnamed'
    if ext not in ICC_EXTENSIONS:
        return (f"its colour profile ('{name}') cannot be written into {ext or 'extension-less'} files here, so "
                f'colour-managed viewers show the result as sRGB (its colours shift); {keep_hint} keeps it')
    space = profile_color_space(profile) or 'unknown'
    kind = 'grey' if channels == 1 else f'{channels}-channel'
    return f"its {space} colour profile ('{name}') does not describe the {kind} result, which is written without it"


def exif_note(exif: Optional[bytes], result: str, keep_hint: str = 'a .png result file') -> Optional[str]:
    """Why the input's EXIF data (camera, dates, GPS position) is not written into ``result``; else None."""
    ext = osp.splitext(result)[1].lower()
    if not exif or exif_fits(exif, ext):
        return None
    if ext in EXIF_EXTENSIONS:
        return (f'its EXIF data ({len(exif)} bytes) is larger than a JPEG file holds, so the result has none; '
                f'{keep_hint} keeps it')
    return (f"its EXIF data (camera, dates, GPS position) cannot be written into {ext or 'extension-less'} files "
            f'here, so the result has none; {keep_hint} keeps it')


class ImageAdapter:
    """Reads files as the config loads test inputs and gives images the model's channels.

    Arrays here are in the config's channel order (``load.channel_order``), as its loader gives them.

    Args:
        load (LoadSettings): The config's loading of the input image.
        in_channels (int): Channels the generator takes (3 colour, 1 grey).
        config (str): Config path, for messages.
    """

    def __init__(self, load: LoadSettings, in_channels: int, config: str = '<config>') -> None:
        from mmagic.registry import TRANSFORMS
        self.load = load
        self.in_channels = int(in_channels)
        self.config = config
        self.loader = TRANSFORMS.build(copy.deepcopy(load.transform))

    def read(self, path: str, max_pixels: Optional[int] = None,
             option: str = 'max_pixels=N') -> Tuple[np.ndarray, List[str]]:
        """Load ``path`` as the config loads test inputs, adapted to the model's channels.

        Returns:
            tuple[np.ndarray, list[str]]: :meth:`read_file`'s image and notes.
        """
        found = self.read_file(path, max_pixels, option)
        return found.img, found.notes

    def read_file(self, path: str, max_pixels: Optional[int] = None, option: str = 'max_pixels=N') -> ReadImage:
        """Load ``path`` as the config loads test inputs, upright, adapted to the model's channels.

        Args:
            path (str): Image file.
            max_pixels (int, optional): Images declaring more pixels are refused from their header,
                never decoded. Default: the machine's limit (``default_max_pixels``).
            option (str): How the caller raises that limit, quoted in the refusal.

        Returns:
            ReadImage: The ``H x W x in_channels`` image (turned as its EXIF orientation asks, where the
            loader did not; raw Bayer data as stored, its ``orientation`` left for the output), one note per
            conversion, its ICC colour profile (None for CMYK files,
            whose inks the loader converted without it), its alpha plane and its EXIF block.

        Raises:
            ImageReadError: The file is missing, unreadable, truncated, too large or not an image.
        """
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as err:
            raise ImageReadError(f"'{path}' cannot be read ({err.strerror or err}); check the file and its "
                                 'permissions') from None
        try:  # from the header, before anything decodes it (a decompression bomb is never decoded)
            check_image_file(data, max_pixels, option, name=path)
        except ImageFileError as err:
            raise ImageReadError(str(err)) from None
        stored = _stored_kind(data, path)
        channels, dtype, mode = stored.channels, stored.dtype, stored.mode
        if np.issubdtype(dtype, np.floating):  # (a float TIFF is refused from its header; any other float kind here)
            raise ImageReadError(float_pixels_message(path, np.dtype(dtype).itemsize * 8))
        if dtype not in (np.uint8, np.uint16):  # (OpenCV's colour reading of 32-bit integers fails in cvtColor)
            raise ImageReadError(f"'{path}' stores {np.dtype(dtype).itemsize * 8}-bit "
                                 f"{'signed ' if np.issubdtype(dtype, np.signedinteger) else ''}integer pixels; "
                                 'only 8- and 16-bit images are read: export it as an 8- or 16-bit PNG or TIFF')
        try:
            img = self.loader(dict(img_path=path))['img']
        except Exception as err:  # noqa: BLE001  (any decoder failure is one skipped file)
            raise ImageReadError(f"'{path}' cannot be decoded as the config loads images "
                                 f'({type(err).__name__}: {first_line(err)}); convert it to PNG') from None
        if img is None:
            raise ImageReadError(f"'{path}' cannot be decoded as the config loads images; convert it to PNG")
        img, turned = _upright(img, stored)
        img, notes = self._as_stored(img[..., None] if img.ndim == 2 else img, channels, dtype, path)
        alpha = stored.alpha if stored.alpha is not None and stored.alpha.shape == img.shape[:2] else None
        if stored.premultiplied and alpha is not None and not (img.shape[2] == 1 and self.load.to_y_channel):
            # (the loader's Y has an offset of 16 that a division would scale: that one stays as read)
            img = unpremultiply(img, alpha)
            notes.insert(0, "colour divided by the alpha again: OpenCV's TIFF reader multiplies unassociated alpha "
                            'into it (fully transparent pixels read black)')
        if channels in (2, 4):
            notes.insert(0, ALPHA_NOTE if alpha is not None else ALPHA_DROPPED_NOTE)
        notes = turned + notes
        if stored.frames > 1:
            notes.insert(0, f'the file holds {stored.frames} frames or pages (an animation or a multi-page scan): '
                            'only the first is restored')
        if stored.exif_damaged:
            notes.append('its EXIF data is damaged, so the result has none')
        if mode == 'CMYK':
            notes.insert(0, "CMYK image converted by the config's loader (OpenCV; no colour profile applied)")
        later = 1  # the orientation left for the output
        if self.load.bayer_pattern is not None:
            raw = channels in (1, 2) or (img.shape[2] == 3 and is_gray(img))
            if raw and stored.layout != 1:  # the mosaic's pattern is anchored in the stored layout
                img, later = undo_orientation(img, stored.layout), stored.layout
                notes = [n for n in notes if n not in turned]
            img, more = self.to_mosaic(img, raw=raw)
            notes += more
            if later != 1:
                notes.append(f'demosaiced as stored (the {self.load.bayer_pattern} pattern describes the sensor\'s '
                             f'stored layout), then the result turned upright ({ORIENTATIONS[later]}) as its EXIF '
                             f'orientation tag ({later}) asks viewers to show it')
        img, more = self.adapt_channels(img)
        return ReadImage(img, notes + more, None if mode == 'CMYK' else stored.profile, alpha, stored.exif, later)

    def _as_stored(self, img: np.ndarray, channels: int, dtype: np.dtype,
                   path: str) -> Tuple[np.ndarray, List[str]]:
        """Undo the loader's own alpha keeping, 16-bit keeping and grey-to-colour copy; note what was lost
        (the alpha is noted by the caller)."""
        notes = []
        img = drop_alpha(img)  # a loader that keeps alpha ('unchanged'); the stored alpha is written back
        if img.dtype == np.uint16:  # a loader that keeps 16 bits: 0-65535 to 0-255 exactly, as floats
            img = img.astype(np.float32) / 257
        elif img.dtype not in (np.uint8, np.float32, np.float64):
            raise ImageReadError(f"'{path}' decodes to {img.dtype} pixels; convert it to an 8- or 16-bit PNG")
        if dtype != np.uint8 and img.dtype == np.uint8:
            notes.append(f'{np.dtype(dtype).itemsize * 8}-bit image reduced to 8 bits, as the config loads images')
        if channels in (1, 2) and img.shape[2] == 3:
            img = img[..., :1]  # a grey file that the loader read as 3 equal channels
        elif channels in (3, 4) and img.shape[2] == 1:
            how = 'its Y channel (ITU-R BT.601)' if self.load.to_y_channel else 'grey'
            notes.append(f"colour image converted to {how} by the config's loader ({self.load.source})")
        return img, notes

    def prepare(self, img: np.ndarray) -> Tuple[np.ndarray, List[str]]:
        """An array from Python (not a file) made ready for the model: depth, mosaic and channels.

        Args:
            img (np.ndarray): ``H x W`` or ``H x W x C`` in the config's channel order; uint8 (0-255), uint16
                (0-65535: a 16-bit image; one holding only values up to 255 gets a note, since 8-bit values
                taken as 16-bit come out nearly black) or float (0-255).

        Returns:
            tuple[np.ndarray, list[str]]: ``H x W x in_channels`` image (uint8 or float32) and notes.

        Raises:
            RestoreError: Unsupported dtype, shape or channel count (a channels-first ``C x H x W`` array is
                named with its ``np.transpose``), or a mosaic of another pattern.
        """
        if img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[2] > 4:
            raise RestoreError(f'img has shape {img.shape}, channels first (C x H x W), but restoration takes H x W x '
                               'C images; pass np.transpose(img, (1, 2, 0))')
        from_uint16 = img.dtype == np.uint16
        depth_notes = []
        if from_uint16:
            high = int(img.max()) if img.size else 0
            if high <= 255:  # (a very dark 16-bit photo is legitimate: a note, not a refusal)
                depth_notes.append(f'img is uint16 with values only up to {high}, taken as 16-bit (0-65535), so the '
                                   'result is nearly black; if it holds 8-bit values, pass img.astype(np.uint8)')
            img = img.astype(np.float32) / 257
        if img.dtype not in (np.uint8, np.float32, np.float64):
            raise RestoreError(f'img has {img.dtype} pixels but restoration takes uint8, uint16 or float images '
                               '(float: values 0-255); convert it first')
        if img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
            raise RestoreError(f'img has shape {img.shape} but restoration takes an H x W or H x W x C image')
        if img.dtype in (np.float32, np.float64) and not from_uint16:
            check_float_range(img)
        img, notes = self.to_mosaic(img.astype(np.float32) if img.dtype == np.float64 else img)
        img, more = self.adapt_channels(img)
        return img, depth_notes + notes + more

    def to_mosaic(self, img: np.ndarray, raw: Optional[bool] = None) -> Tuple[np.ndarray, List[str]]:
        """For a demosaicing config: the zero-filled 3-channel mosaic the model takes.

        A 1-channel image (``raw``) is the sensor's colour filter array, the pattern anchored at the
        top-left pixel; a zero-filled mosaic of the pattern passes unchanged; any other colour image is
        mosaicked (a simulation of the sensor). Other configs and channel counts pass unchanged.

        Args:
            img (np.ndarray): ``H x W`` or ``H x W x C`` image in the config's channel order.
            raw (bool, optional): Whether the file had 1 channel (a loader may give 3 equal ones).
                Default: None, i.e. whether ``img`` has 1 channel (2 with alpha).

        Returns:
            tuple[np.ndarray, list[str]]: The image and notes on what was done.

        Raises:
            RestoreError: The image is a zero-filled mosaic of another Bayer pattern.
        """
        pattern, order = self.load.bayer_pattern, self.load.bayer_channel_order
        img = img[..., None] if img.ndim == 2 else img
        c = int(img.shape[2])
        if pattern is None or c not in (1, 2, 3, 4):
            return img, []
        raw = c in (1, 2) if raw is None else raw
        img = drop_alpha(img)
        c = int(img.shape[2])
        where = f'{pattern[:2]} / {pattern[2:]} from the top-left pixel'
        if raw:
            what = '1-channel image' if c == 1 else 'grey image (3 equal channels)'
            return bayer_mosaic(img[..., :1], pattern, order), [
                f'{what} taken as raw {pattern} Bayer data ({where}) and expanded into the zero-filled '
                '3-channel mosaic the model takes']
        if is_bayer_mosaic(img, pattern, order):
            return img, []
        other = next((p for p in _PATTERNS if p != pattern and is_bayer_mosaic(img, p, order)), None)
        if other is not None:
            raise RestoreError(f'the image is a zero-filled {other} mosaic but the model of {self.config} takes '
                               f'{pattern} ({where}); crop it by one row and/or column to shift the pattern, or '
                               'pass a model trained for that pattern')
        return bayer_mosaic(img, pattern, order), [
            f'colour image mosaicked with the {pattern} Bayer pattern first (a simulation of the camera sensor, to '
            'try the model); to demosaic a real raw image, pass its colour filter array as a 1-channel image (e.g. '
            f'an 8-bit PNG / PGM, {where}) or a zero-filled 3-channel {pattern} mosaic']

    def adapt_channels(self, img: np.ndarray) -> Tuple[np.ndarray, List[str]]:
        """Give an image the generator's channel count, as the grey / Y configs' ``GrayOrY`` would.

        Args:
            img (np.ndarray): ``H x W`` or ``H x W x C`` image in the config's channel order.

        Returns:
            tuple[np.ndarray, list[str]]: ``H x W x in_channels`` image and notes on what was converted.

        Raises:
            RestoreError: A channel count that cannot be converted.
        """
        img = img[..., None] if img.ndim == 2 else img
        notes: List[str] = []
        c = int(img.shape[2])
        if c == self.in_channels:
            return img, notes
        if c in (2, 4):
            img = drop_alpha(img)
            c = int(img.shape[2])
            notes.append('alpha channel dropped')
        if c == 1 and self.in_channels == 3:
            img = np.repeat(img, 3, axis=2)
            notes.append('grey image converted to 3 channels for the colour model')
        elif c == 3 and self.in_channels == 1:
            img, note = self._to_one_channel(img)
            notes.append(note)
        elif c != self.in_channels:
            raise RestoreError(f'the image has {c} channels but the model of {self.config} takes {self.in_channels}; '
                               'pass a colour (3-channel) or grey (1-channel) image')
        return np.ascontiguousarray(img), notes

    def _to_one_channel(self, img: np.ndarray) -> Tuple[np.ndarray, str]:
        """Grey stays grey, colour becomes MATLAB's BT.601 Y (mmcv takes float images as 0-1)."""
        if is_gray(img):
            return img[..., :1], 'grey image stored as 3 equal channels taken as 1 channel for the 1-channel model'
        order = self.load.channel_order if self.load.channel_order in ('rgb', 'bgr') else 'rgb'
        y = gray_or_y(img, order) if img.dtype == np.uint8 else gray_or_y(img.astype(np.float32) / 255, order) * 255
        return y, 'colour image converted to its Y channel (ITU-R BT.601) for the 1-channel model'


__all__ = ['ALPHA_DROPPED_NOTE', 'ALPHA_EXTENSIONS', 'ALPHA_NOTE', 'ImageAdapter', 'ReadImage', 'StoredImage',
           'alpha_note', 'attach_alpha', 'check_float_range', 'exif_note', 'keeps_alpha', 'profile_note',
           'unpremultiply']
