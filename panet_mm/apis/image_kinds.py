"""The image kinds users hand in (grey, colour, 16-bit, alpha, raw Bayer) turned into what the model takes.

Each conversion is decided once, from what the file holds to what the model takes, and reported with
exactly one note, so that a user learns why the result looks the way it does.
"""
from __future__ import annotations

import copy
import io
from typing import List, Optional, Tuple

import numpy as np

from panet_mm.datasets.image_io import ImageFileError, check_image_file, float_pixels_message, pillow_checks
from panet_mm.datasets.transforms.color import drop_alpha, gray_or_y, is_gray
from panet_mm.datasets.transforms.mosaic import bayer_mosaic, is_bayer_mosaic
from panet_mm.utils.errors import first_line

from .errors import ImageReadError, RestoreError
from .load_settings import LoadSettings

_PATTERNS = ('RGGB', 'BGGR', 'GRBG', 'GBRG')
ALPHA_NOTE = 'alpha channel dropped (transparent pixels keep their stored colour)'


def _stored_kind(data: bytes, path: str) -> Tuple[int, np.dtype, Optional[str]]:
    """Channels (grey + alpha: 2; CMYK: 3, the loader converts it), dtype and Pillow's mode (None where Pillow does
    not know the format) of the encoded image as stored; truncated or corrupt data raise.

    Pillow checks the formats it knows (it notices truncated PNG / JPEG data that OpenCV would decode
    into a partly grey image); OpenCV then decodes, which also covers formats Pillow does not know.
    """
    import cv2
    from PIL import Image, UnidentifiedImageError
    mode = None
    try:  # the declared size was checked against the pixel limit first: Pillow's own guard is off
        with pillow_checks(), Image.open(io.BytesIO(data)) as im:
            im.load()
            mode = im.mode
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
    return channels, native.dtype, mode


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

        Args:
            path (str): Image file.
            max_pixels (int, optional): Images declaring more pixels are refused from their header,
                never decoded. Default: the machine's limit (``default_max_pixels``).
            option (str): How the caller raises that limit, quoted in the refusal.

        Returns:
            tuple[np.ndarray, list[str]]: ``H x W x in_channels`` image and one note per conversion.

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
        channels, dtype, mode = _stored_kind(data, path)
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
        img, notes = self._as_stored(img[..., None] if img.ndim == 2 else img, channels, dtype, path)
        if mode == 'CMYK':
            notes.insert(0, "CMYK image converted by the config's loader (OpenCV; no colour profile applied)")
        if self.load.bayer_pattern is not None:
            img, more = self.to_mosaic(img, raw=channels in (1, 2) or (img.shape[2] == 3 and is_gray(img)))
            notes += more
        img, more = self.adapt_channels(img)
        return img, notes + more

    def _as_stored(self, img: np.ndarray, channels: int, dtype: np.dtype,
                   path: str) -> Tuple[np.ndarray, List[str]]:
        """Undo the loader's own alpha keeping, 16-bit keeping and grey-to-colour copy; note what was lost."""
        notes = []
        img = drop_alpha(img)  # a loader that keeps alpha ('unchanged')
        if channels in (2, 4):
            notes.append(ALPHA_NOTE)
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
            img (np.ndarray): ``H x W`` or ``H x W x C`` in the config's channel order; uint8, uint16
                (0-65535) or float (0-255).

        Returns:
            tuple[np.ndarray, list[str]]: ``H x W x in_channels`` image (uint8 or float32) and notes.

        Raises:
            RestoreError: Unsupported dtype, shape or channel count, or a mosaic of another pattern.
        """
        if img.dtype == np.uint16:
            img = img.astype(np.float32) / 257
        if img.dtype not in (np.uint8, np.float32, np.float64):
            raise RestoreError(f'img has {img.dtype} pixels but restoration takes uint8, uint16 or float images '
                               '(float: values 0-255); convert it first')
        if img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
            raise RestoreError(f'img has shape {img.shape} but restoration takes an H x W or H x W x C image')
        img, notes = self.to_mosaic(img.astype(np.float32) if img.dtype == np.float64 else img)
        img, more = self.adapt_channels(img)
        return img, notes + more

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


__all__ = ['ALPHA_NOTE', 'ImageAdapter']
