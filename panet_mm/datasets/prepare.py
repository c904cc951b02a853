"""Building blocks for preparing super-resolution data in mmagic's DIV2K / Set5 layout.

The functions here follow the conventions of mmagic's DIV2K preprocessing:

* HR images are cut into overlapping square sub-images named ``{stem}_s{index:03d}.png``
  (``0001_s001.png``, ``0001_s002.png``, ... in row-major order);
* LR images are made with MATLAB-compatible bicubic down-sampling, for which mmagic's own
  :class:`mmagic.datasets.transforms.MATLABLikeResize` is reused;
* the meta-info file lists one image per line as ``NAME (H,W,C)``, as in mmagic's
  ``meta_info_DIV2K800sub_GT.txt``.

Images are numpy arrays in OpenCV's layout (``H x W`` or ``H x W x C``, BGR, ``uint8``) and are
written losslessly as PNG through OpenCV. Every writer here is atomic: the data goes to a
temporary file in the destination folder that is then renamed over the destination with
:func:`os.replace`, so an interrupted run never leaves a half-written file behind.

This module is used by ``tools/dataset_converters/`` (``make_demo_data.py``, ``prepare_div2k.py``).
"""
from __future__ import annotations

import functools
import multiprocessing
import os.path as osp
import signal
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from panet_mm.utils.errors import cli_message
from panet_mm.utils.fileio import atomic_write, atomic_write_image
from panet_mm.utils.interrupt import Terminated

from .image_io import ImageFileError, imread_verified

#: Shape as recorded in a meta-info file: ``(H, W, C)``.
Shape = Tuple[int, int, int]

__all__ = [
    'mod_crop', 'sub_image_starts', 'sub_image_name', 'crop_sub_images', 'bicubic_downscale',
    'imwrite_atomic', 'meta_info_line', 'parse_meta_info_line', 'write_meta_info',
    'read_meta_info', 'imread_color', 'ImagePool', 'same_folder'
]


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop an image so that its height and width are multiples of ``scale``.

    Rows are removed from the bottom and columns from the right, as in the usual ``GTmod12``
    preparation of SR benchmarks (Set5, Set14, ...).

    Args:
        img: Image of shape ``(H, W)`` or ``(H, W, C)``.
        scale: The modulus, a positive integer (e.g. 12 so that x2, x3 and x4 all divide the size).

    Returns:
        A view of ``img`` of shape ``(H - H % scale, W - W % scale, ...)``.

    Raises:
        ValueError: If ``scale`` is not a positive integer, ``img`` is not 2-D or 3-D, or the image
            is smaller than ``scale`` in either dimension.
    """
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f'scale must be a positive integer, got {scale!r}')
    if img.ndim not in (2, 3):
        raise ValueError(f'expected an image of shape (H, W) or (H, W, C), got shape {img.shape}')
    h, w = img.shape[:2]
    new_h, new_w = h - h % scale, w - w % scale
    if new_h == 0 or new_w == 0:
        raise ValueError(f'image of size {h}x{w} is smaller than the modulus {scale}')
    return img[:new_h, :new_w, ...]


def sub_image_starts(length: int, crop_size: int, step: int, thresh_size: int = 0) -> List[int]:
    """Start offsets of overlapping crops along one axis, following mmagic's DIV2K convention.

    Crops start at ``0, step, 2 * step, ...`` as long as they fit. If the strip left uncovered at
    the end is wider than ``thresh_size`` pixels, one more crop aligned with the end of the axis
    (starting at ``length - crop_size``) is added, so that with ``thresh_size=0`` the crops cover
    the whole axis.

    Args:
        length: Size of the axis in pixels.
        crop_size: Size of a crop in pixels.
        step: Distance between the starts of two consecutive crops.
        thresh_size: Uncovered end strips of at most this many pixels are dropped. Defaults to 0.

    Returns:
        The sorted start offsets.

    Raises:
        ValueError: If ``crop_size`` or ``step`` is not positive, ``thresh_size`` is negative, or
            ``length < crop_size``.
    """
    if crop_size < 1 or step < 1:
        raise ValueError(f'crop_size and step must be positive, got crop_size={crop_size}, step={step}')
    if thresh_size < 0:
        raise ValueError(f'thresh_size must be non-negative, got {thresh_size}')
    if length < crop_size:
        raise ValueError(f'axis of length {length} is shorter than the crop size {crop_size}')
    starts = list(range(0, length - crop_size + 1, step))
    if length - (starts[-1] + crop_size) > thresh_size:
        starts.append(length - crop_size)
    return starts


def sub_image_name(stem: str, index: int, ext: str = '.png') -> str:
    """File name of the ``index``-th (1-based) sub-image of the image ``stem``.

    Args:
        stem: Name of the source image without extension, e.g. ``'0001'``.
        index: 1-based index of the sub-image in row-major order.
        ext: File extension, with the dot. Defaults to ``'.png'``.

    Returns:
        The name, e.g. ``'0001_s001.png'``.
    """
    return f'{stem}_s{index:03d}{ext}'


def crop_sub_images(img: np.ndarray,
                    stem: str,
                    crop_size: int,
                    step: int,
                    thresh_size: int = 0,
                    ext: str = '.png') -> List[Tuple[str, np.ndarray]]:
    """Cut an HR image into overlapping square sub-images, as mmagic's DIV2K preprocessing does.

    Crops are taken row by row (the outer loop runs over the height) at the offsets given by
    :func:`sub_image_starts` and are numbered from 1.

    Args:
        img: Image of shape ``(H, W)`` or ``(H, W, C)``.
        stem: Name of the source image without extension; sub-images are named
            ``{stem}_s{index:03d}{ext}``.
        crop_size: Side of the square sub-images.
        step: Distance between the starts of two neighbouring sub-images.
        thresh_size: See :func:`sub_image_starts`. Defaults to 0.
        ext: File extension of the names, with the dot. Defaults to ``'.png'``.

    Returns:
        ``(name, sub_image)`` pairs; each sub-image is a view into ``img``.

    Raises:
        ValueError: If ``img`` is not 2-D or 3-D, or is smaller than ``crop_size``.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f'expected an image of shape (H, W) or (H, W, C), got shape {img.shape}')
    h, w = img.shape[:2]
    if h < crop_size or w < crop_size:
        raise ValueError(f'image {stem!r} of size {h}x{w} is smaller than the crop size {crop_size}')
    subs = []
    for y in sub_image_starts(h, crop_size, step, thresh_size):
        for x in sub_image_starts(w, crop_size, step, thresh_size):
            subs.append((sub_image_name(stem, len(subs) + 1, ext), img[y:y + crop_size, x:x + crop_size, ...]))
    return subs


@functools.cache
def _matlab_like_resize(out_h: int, out_w: int):
    """Return mmagic's MATLAB-like bicubic resize transform for one output size (imported lazily)."""
    from mmagic.datasets.transforms import MATLABLikeResize

    return MATLABLikeResize(keys=['img'], output_shape=(out_h, out_w))


def bicubic_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Down-sample an image by an integer factor with MATLAB-compatible bicubic interpolation.

    This is MATLAB's ``imresize(img, 1 / scale, 'bicubic')`` (antialiased cubic kernel), the
    degradation used for the ``*_LR_bicubic`` folders of DIV2K and the ``LRbicx*`` folders of the
    SR benchmarks. The resampling itself is mmagic's
    :class:`~mmagic.datasets.transforms.MATLABLikeResize`; this wrapper fixes the output size to
    exactly ``(H / scale, W / scale)`` and, for ``uint8`` input, rounds and clips the result back
    to ``uint8`` like MATLAB does (mmagic's transform returns unclipped floats).

    Args:
        img: Image of shape ``(H, W)`` or ``(H, W, C)`` whose height and width are multiples of
            ``scale`` (use :func:`mod_crop` first).
        scale: Integer down-sampling factor, at least 1.

    Returns:
        The LR image, of shape ``(H // scale, W // scale)`` or ``(H // scale, W // scale, C)`` and of
        the dtype of ``img`` (``uint8`` in, ``uint8`` out; other dtypes come back as ``float64``).

    Raises:
        ValueError: If ``scale`` is not a positive integer, or the image size is not a multiple of
            ``scale``.
    """
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f'scale must be a positive integer, got {scale!r}')
    if img.ndim not in (2, 3):
        raise ValueError(f'expected an image of shape (H, W) or (H, W, C), got shape {img.shape}')
    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f'image size {h}x{w} is not a multiple of the scale {scale}; mod_crop it first')
    if scale == 1:
        return img.copy()
    # An explicit output shape avoids ceil(h * (1 / scale)) rounding up for sizes like 3 * k.
    out = _matlab_like_resize(h // scale, w // scale)({'img': img})['img']
    if img.ndim == 2:
        out = out[..., 0]
    if img.dtype == np.uint8:
        out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def imwrite_atomic(img: np.ndarray, path: str, png_compression: int = 3) -> None:
    """Encode an image with OpenCV and write it atomically (:func:`panet_mm.utils.fileio.atomic_write_image`).

    Args:
        img (np.ndarray): Image in OpenCV's layout (BGR for colour images).
        path (str): Destination file (its folder is created); its extension selects the format. PNG is lossless.
        png_compression (int): zlib level 0-9 for PNG files (ignored for other formats); the level changes
            the file size, never the pixels. Default: 3 (OpenCV's).

    Raises:
        ImageEncodeError: (a ``ValueError``) If OpenCV cannot encode the image in the requested format.
    """
    ext = osp.splitext(path)[1].lower()
    atomic_write_image(path, img, [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)] if ext == '.png' else None)


def _shape3(shape: Sequence[int]) -> Shape:
    """Normalise an image shape to ``(H, W, C)`` (grayscale images have ``C = 1``)."""
    if len(shape) == 2:
        return int(shape[0]), int(shape[1]), 1
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    raise ValueError(f'expected an image shape (H, W) or (H, W, C), got {tuple(shape)}')


def meta_info_line(name: str, shape: Sequence[int]) -> str:
    """One line of an mmagic meta-info file, without the newline.

    Args:
        name: Image file name relative to the image folder, e.g. ``'0001_s001.png'``. It must not
            contain whitespace (mmagic takes everything before the first space as the name).
        shape: The image shape, ``(H, W)`` or ``(H, W, C)``.

    Returns:
        The line, e.g. ``'0001_s001.png (480,480,3)'``.

    Raises:
        ValueError: If ``name`` is empty or contains whitespace, or ``shape`` is not 2-D or 3-D.
    """
    if not name or any(c.isspace() for c in name):
        raise ValueError(f'meta-info names must be non-empty and contain no whitespace, got {name!r}')
    h, w, c = _shape3(shape)
    return f'{name} ({h},{w},{c})'


def parse_meta_info_line(line: str) -> Tuple[str, Shape]:
    """Parse one line written by :func:`meta_info_line`.

    Args:
        line: A line such as ``'0001_s001.png (480,480,3)'``; surrounding whitespace is ignored.

    Returns:
        The name and the ``(H, W, C)`` shape.

    Raises:
        ValueError: If the line does not have the ``NAME (H,W,C)`` form.
    """
    parts = line.strip().split(' ', 1)
    if len(parts) != 2 or not (parts[1].startswith('(') and parts[1].endswith(')')):
        raise ValueError(f'not a meta-info line of the form "NAME (H,W,C)": {line!r}')
    try:
        dims = tuple(int(v) for v in parts[1][1:-1].split(','))
    except ValueError:
        raise ValueError(f'not a meta-info line of the form "NAME (H,W,C)": {line!r}') from None
    if len(dims) != 3:
        raise ValueError(f'not a meta-info line of the form "NAME (H,W,C)": {line!r}')
    return parts[0], dims  # type: ignore[return-value]


def write_meta_info(path: str, entries: Iterable[Tuple[str, Sequence[int]]], sort: bool = True) -> int:
    """Write an mmagic meta-info file (``NAME (H,W,C)`` per line) atomically.

    Args:
        path: Destination file, e.g. ``data/DIV2K/meta_info_DIV2K800sub_GT.txt``. Its folder is
            created if needed.
        entries: ``(name, shape)`` pairs; names are relative to the image folder the dataset
            config points at.
        sort: Sort the lines by name, as mmagic's own meta-info files are. Defaults to True.

    Returns:
        The number of lines written.
    """
    lines = [meta_info_line(name, shape) for name, shape in entries]
    if sort:
        lines.sort()
    atomic_write(path, ''.join(f'{line}\n' for line in lines))
    return len(lines)


def read_meta_info(path: str) -> List[Tuple[str, Shape]]:
    """Read a meta-info file written by :func:`write_meta_info` (blank lines are skipped).

    Args:
        path: The meta-info file.

    Returns:
        ``(name, (H, W, C))`` pairs in file order.
    """
    with open(path, encoding='utf-8') as f:
        return [parse_meta_info_line(line) for line in f if line.strip()]


def imread_color(path: str, max_pixels: Optional[int] = None, option: Optional[str] = None) -> np.ndarray:
    """Read an image as 3-channel BGR ``uint8`` with OpenCV (grayscale images are replicated).

    The file is checked first (:func:`panet_mm.datasets.image_io.imread_verified`): its declared size
    against the pixel limit, then every pixel decoded once, so a decompression bomb is refused before
    decoding and a truncated or corrupt file never becomes data.

    Args:
        path: Image file.
        max_pixels: The pixel limit. Defaults to
            :func:`~panet_mm.datasets.image_io.default_max_pixels`.
        option: See :func:`~panet_mm.datasets.image_io.check_image_file`. Defaults to None (the refusal
            names ``max_pixels``; a CLI renames it with ``err.for_cli``).

    Returns:
        The image, of shape ``(H, W, 3)``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ImageFileError: (a ``ValueError``) If the file is empty, truncated, corrupt or not an image.
        PixelLimitError: If it declares more than ``max_pixels`` pixels.
    """
    return imread_verified(path, cv2.IMREAD_COLOR, max_pixels, option)


def same_folder(a: str, b: str) -> bool:
    """Whether two paths name the same folder (through symbolic links, bind mounts or ``..``)."""
    if osp.realpath(a) == osp.realpath(b):
        return True
    try:
        return osp.samefile(a, b)
    except OSError:
        return False


_stop_event: Any = None


def _init_worker(event: Any) -> None:
    """Ctrl-C reaches the whole process group: the parent alone reports it and stops the pool (each worker printed
    a traceback); SIGTERM ends a worker at once, as the pool's own terminate expects (not the tools' handler that
    a forked worker inherits)."""
    global _stop_event
    _stop_event = event
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _Guarded:
    """``func(item)`` in a worker: skipped once the batch is stopped, a damaged image returned, not raised."""

    def __init__(self, func: Callable[[Any], Any], flags: Optional[Mapping[str, str]] = None) -> None:
        self.func, self.flags = func, dict(flags or {})

    def __call__(self, item: Any) -> Tuple[str, Any]:
        if _stop_event is not None and _stop_event.is_set():
            return 'skipped', None
        try:
            return 'ok', self.func(item)
        except ImageFileError as err:
            return 'bad', cli_message(err, self.flags)


class ImagePool:
    """Worker processes for preparing images, stopping a batch at its first damaged image.

    Why it exists: ``Pool.imap`` hands every item to the workers at once, so an error raised for one
    image leaves the others running (and a traceback). Here a worker reports a damaged image
    (:class:`~panet_mm.datasets.image_io.ImageFileError`) as a result; unless ``skip_bad``, the batch
    then stops: images not started yet are skipped, those in progress finish. Nothing derived from
    the damaged image is written, provided ``func`` reads its inputs before writing anything.

    Args:
        workers (int): Number of worker processes.
        flags (Mapping[str, str], optional): The CLI's flag for each library parameter, used in the
            messages of damaged images (e.g. ``{'max_pixels': '--max-pixels'}``). Default: None.
    """

    def __init__(self, workers: int, flags: Optional[Mapping[str, str]] = None) -> None:
        self.flags = flags
        self.stop = multiprocessing.Event()
        self.pool = multiprocessing.Pool(max(1, workers), initializer=_init_worker, initargs=(self.stop, ))

    def run(self, func: Callable[[Any], Any], items: Sequence[Any], skip_bad: bool = False,
            desc: str = '') -> Tuple[List[Any], List[str]]:
        """Apply ``func`` to every item (in order) in the workers.

        Args:
            func (callable): Picklable function of one item; raises ``ImageFileError`` for a damaged input.
            items (sequence): The items.
            skip_bad (bool): Keep going after a damaged image. Default: False (stop the batch).
            desc (str): Progress-bar label.

        Returns:
            tuple[list, list[str]]: Results of the items that ran, and the messages of damaged images.
        """
        from tqdm import tqdm
        self.stop.clear()
        results, bad = [], []
        guarded = _Guarded(func, self.flags)
        for status, value in tqdm(self.pool.imap(guarded, items), total=len(items), desc=desc, unit='img'):
            if status == 'ok':
                results.append(value)
            elif status == 'bad':
                bad.append(value)
                if not skip_bad:
                    self.stop.set()
        return results, bad

    def __enter__(self) -> ImagePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        """Close the pool; at Ctrl-C let the images in progress finish (the others are skipped): the pool's
        ``terminate`` killed workers in the middle of a write, whose temporary files no rerun removed."""
        if exc[0] is None:
            self.pool.close()
        elif issubclass(exc[0], KeyboardInterrupt) and not issubclass(exc[0], Terminated):
            # (SIGTERM reaches the workers too and kills them mid-task: a join would wait for their results forever)
            self.stop.set()
            self.pool.close()
            try:
                self.pool.join()
                return
            except KeyboardInterrupt:  # a second Ctrl-C: stop at once
                self.pool.terminate()
        else:
            self.pool.terminate()
        self.pool.join()
