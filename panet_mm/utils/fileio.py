"""The one atomic file writer: bytes, text, images and checkpoints.

Why it exists: a plain ``open(path, 'wb')`` killed midway (Ctrl-C, a full disk, SIGKILL) leaves a
truncated file that the next run reads as data (``--resume`` picks a half checkpoint, a dataset a half
PNG). :func:`atomic_write` writes to a temporary file in the target's folder, syncs it and renames it
over the target with :func:`os.replace`, so the target is either its old self or complete, and the
temporary file is removed on any failure. The temporary file is named ``.NAME.XXXXXXXX.tmp``
(:data:`TEMP_NAME` recognises it, so that a cleaner can find what an interrupted write left).
"""
from __future__ import annotations

import io
import os
import os.path as osp
import re
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .errors import PanetMMError
from .image_metadata import embed_exif, embed_icc_profile, exif_fits, exif_for_result, profile_fits

PathLike = Union[str, Path]

#: Temporary files of :func:`atomic_write` (``tempfile.mkstemp``: 8 random characters), and those of
#: earlier versions (``.NAME.PID.HEX.tmp``); group 1 is the target's file name.
TEMP_NAME = re.compile(r'\.(.+)\.(?:[A-Za-z0-9_]{8}|\d+\.[0-9a-f]+)\.tmp')


class ImageEncodeError(PanetMMError):
    """OpenCV cannot encode an image in the format its file extension asks for."""


def temp_file_target(name: str) -> Optional[str]:
    """The file name an atomic write was writing when it left the temporary file ``name``, else None."""
    m = TEMP_NAME.fullmatch(osp.basename(name))
    return m.group(1) if m else None


def current_umask() -> int:
    """The process umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def existing_folder(path: PathLike) -> str:
    """``path`` if it is a folder, else its nearest existing parent: where a writer that makes missing folders
    (:func:`atomic_write`) first needs the right to create something. The result may be a file in the way."""
    path = osp.abspath(str(path))
    while not osp.isdir(path) and not osp.exists(path) and osp.dirname(path) != path:
        path = osp.dirname(path)
    return path


def probe_writable(folder: PathLike) -> Optional[str]:
    """Why no file can be created in ``folder`` (the system's reason, e.g. ``'Permission denied'``), else None.

    Why it exists: the tools check their destinations before long work (a conversion, an evaluation, a
    folder of restorations) instead of failing after it; permission bits do not tell (root, ACLs, read-only
    mounts), so a probe file is created and removed.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix='.panet_mm_probe.', suffix='.tmp', dir=str(folder))
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        return err.strerror or str(err)
    return None


def unwritable_file(path: PathLike) -> Optional[str]:
    """Why the file ``path`` cannot be written by :func:`atomic_write` (which makes missing folders), else None:
    checked before long work (an evaluation, a measurement) whose result it holds."""
    if osp.isdir(str(path)):
        return 'it is a folder'
    folder = existing_folder(osp.dirname(osp.abspath(str(path))))
    return probe_writable(folder) if osp.isdir(folder) else f"'{folder}' is a file"


def atomic_write(path: PathLike, data: Union[bytes, str], encoding: Optional[str] = None) -> None:
    """Write ``data`` to ``path`` atomically; its folder is created.

    The file gets the permissions a plain write would give (``0o666`` minus the umask, not
    ``mkstemp``'s ``0o600``).

    Args:
        path (str | Path): The target file.
        data (bytes | str): The whole content; text is encoded with ``encoding``.
        encoding (str, optional): For text. Default: UTF-8.

    Raises:
        OSError: The file cannot be written; its ``filename`` is the target (a full disk fails in
            ``write`` / ``fsync``, which name no file).
    """
    path = str(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode(encoding or 'utf-8') if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as err:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and err.errno is not None and (not err.filename or err.filename == tmp):
            err.filename = path  # (the temporary name, from a refused os.replace, means nothing to the caller; an
            err.filename2 = None  # OSError without errno would print '[Errno None] None' instead of its message)
        raise


def encode_image(img: np.ndarray, ext: str, params: Optional[Sequence[int]] = None, path: str = '',
                 icc_profile: Optional[bytes] = None, exif: Optional[bytes] = None) -> bytes:
    """``cv2.imencode`` for the extension ``ext`` (``'.png'``), refusing what OpenCV cannot encode.

    ``icc_profile`` is embedded where the format and the image's channels can hold it
    (:func:`panet_mm.utils.image_metadata.profile_fits`), ``exif`` (an input's EXIF block) made true for
    this image (:func:`~panet_mm.utils.image_metadata.exif_for_result`: upright, its size, no thumbnail)
    where the format holds it (:func:`~panet_mm.utils.image_metadata.exif_fits`); else each is left out.

    Raises:
        ImageEncodeError: OpenCV has no encoder for ``ext``, or not for this image's shape / dtype.
    """
    import cv2
    try:
        ok, buf = cv2.imencode(ext, img, list(params or []))
    except cv2.error:  # some OpenCV versions raise for an unknown extension instead of returning False
        ok, buf = False, None
    if not ok:
        where = f" for '{path}'" if path else ''
        raise ImageEncodeError(f'OpenCV could not encode an image of shape {tuple(img.shape)} ({img.dtype}) as '
                               f"'{ext}'{where}; save it as .png (lossless, any channel count)")
    data = buf.tobytes()
    if icc_profile and profile_fits(icc_profile, ext, 1 if img.ndim == 2 else int(img.shape[2])):
        data = embed_icc_profile(data, ext, icc_profile)
    if exif and exif_fits(exif, ext):
        data = embed_exif(data, ext, exif_for_result(exif, int(img.shape[1]), int(img.shape[0])))
    return data


def atomic_write_image(path: PathLike, img: np.ndarray, params: Optional[Sequence[int]] = None,
                       icc_profile: Optional[bytes] = None, exif: Optional[bytes] = None) -> None:
    """Encode ``img`` (OpenCV layout: BGR if colour) for ``path``'s extension and write it atomically.

    Args:
        path (str | Path): The target file; its extension selects the format.
        img (np.ndarray): ``H x W`` or ``H x W x C`` image.
        params (sequence[int], optional): ``cv2.imencode`` parameters (PNG compression, JPEG quality).
        icc_profile (bytes, optional): ICC colour profile to embed where the format holds one (PNG, JPEG,
            WebP) and its colour space matches the image's channels. Default: None.
        exif (bytes, optional): An input's EXIF block (camera, dates, GPS position) to carry where the format
            holds one (PNG, JPEG, WebP), with the orientation, size and thumbnail made true. Default: None.

    Raises:
        ImageEncodeError: The extension is not an image format OpenCV writes (nothing is written).
        OSError: The file cannot be written.
    """
    path = str(path)
    atomic_write(path, encode_image(img, osp.splitext(path)[1].lower(), params, path, icc_profile, exif))


def atomic_save_checkpoint(obj: Any, path: PathLike) -> None:
    """``torch.save(obj)`` written atomically (serialised in memory first, then :func:`atomic_write`)."""
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


__all__ = ['TEMP_NAME', 'ImageEncodeError', 'atomic_save_checkpoint', 'atomic_write', 'atomic_write_image',
           'current_umask', 'encode_image', 'existing_folder', 'probe_writable', 'temp_file_target']
