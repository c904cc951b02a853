"""Folder jobs: which outputs a restoration writes, that they are safe and fit, and what happened to each.

Inputs are never overwritten and nothing is written outside the output folder, whatever names or
symbolic links the folders hold; every refusal happens before a model is loaded.
"""
from __future__ import annotations

import contextlib
import errno
import os
import os.path as osp
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2

from panet_mm.datasets.image_io import ImageFileError, read_image_header
from panet_mm.utils.errors import first_line
from panet_mm.utils.fileio import existing_folder, probe_writable

from .errors import ImageReadError, RestoreError, RestoreParameterError
from .image_kinds import ALPHA_NOTE, alpha_note, exif_note, keeps_alpha, profile_note

#: File extensions collected from an input folder (case-insensitive).
IMAGE_EXTENSIONS = ('.bmp', '.dib', '.jpeg', '.jpg', '.jpe', '.jp2', '.png', '.webp', '.pbm', '.pgm', '.ppm',
                    '.pnm', '.tif', '.tiff')
#: Output bytes per pixel and channel assumed by :func:`check_output_room`; compressed formats get a
#: conservative guess, so that only a disk that surely cannot hold the results is refused.
_BYTES_PER_SAMPLE = {'.bmp': 1.0, '.dib': 1.0, '.ppm': 1.0, '.pgm': 1.0, '.pnm': 1.0, '.pbm': 1.0, '.jpg': 0.05,
                     '.jpeg': 0.05, '.jpe': 0.05}
_COMPRESSED_BYTES_PER_SAMPLE = 0.25
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


@dataclass
class RestoreJob:
    """One image to restore.

    Attributes:
        src (str): Input file.
        dst (str): Output file.
        root (str): The output folder ``dst`` must stay in (the folder of ``dst`` for a file output).
        error (str, optional): Why it cannot be restored (found while planning); reported, not run.
        named (bool): The user named the output file (its format is chosen by its name, not by ``--ext``).
    """

    src: str
    dst: str
    root: str
    error: Optional[str] = None
    named: bool = False


@dataclass
class RestoreSummary:
    """What :func:`restore_files` did.

    Attributes:
        restored (list[str]): Outputs written.
        failed (list[tuple[str, str]]): ``(input, reason)`` of files skipped because of a problem.
        kept (list[str]): Existing outputs left alone (no ``overwrite``).
        notes (list[tuple[str, str]]): ``(input, note)`` about conversions (e.g. grey to colour); input ``''``
            for a note on the run's settings (e.g. fp16 on CPU), given once.
        stopped (str, optional): Why the run stopped early (a full or read-only output disk).
    """

    restored: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)
    notes: List[Tuple[str, str]] = field(default_factory=list)
    stopped: Optional[str] = None


def _inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it (both normalised the same way)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _normalise_ext(ext: Optional[str]) -> Optional[str]:
    if ext is None:
        return None
    ext = ext if ext.startswith('.') else f'.{ext}'
    if not re.fullmatch(r'\.[A-Za-z0-9]{1,10}', ext) or not cv2.haveImageWriter(f'x{ext}'):
        raise RestoreParameterError('ext', f"{{param}} '{ext}' is not an image format OpenCV can write; use png, "
                                    'jpg, bmp, tif or webp')
    return ext


#: Camera raw files: OpenCV reads at most the small preview some of them embed (a DNG's first TIFF page).
CAMERA_RAW_EXTENSIONS = ('.dng', '.cr2', '.cr3', '.crw', '.nef', '.nrw', '.arw', '.srf', '.sr2', '.orf', '.rw2',
                         '.raf', '.pef', '.srw', '.x3f', '.3fr', '.erf', '.kdc', '.mrw', '.raw', '.rwl', '.iiq')
#: Other image formats people keep photos in, which OpenCV reads in some builds only (GIF and AVIF from 4.13,
#: Radiance HDR always, HEIC, JPEG XL and PSD never): a folder's such files are restored where OpenCV reads
#: them and reported where not, never passed over in silence.
OTHER_IMAGE_EXTENSIONS = ('.heic', '.heif', '.avif', '.jxl', '.gif', '.psd', '.ico', '.exr', '.hdr', '.pic')


def input_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be restored (``'a HEIC image, which ...'``), judged from its extension and OpenCV's
    readers; None if it may be.

    Args:
        path (str): An input file.
    """
    ext = osp.splitext(path)[1].lower()
    if ext in CAMERA_RAW_EXTENSIONS:
        return (f'a camera raw file ({ext[1:].upper()}); develop it into a 16-bit TIFF or PNG with a raw converter '
                'and restore that (OpenCV reads at most the small preview a raw file embeds)')
    if ext in OTHER_IMAGE_EXTENSIONS and not cv2.haveImageReader(path):
        return (f'a {ext[1:].upper()} image, which OpenCV {cv2.__version__} cannot read; convert it to PNG or JPEG '
                'and restore that')
    return None


def _dangling(path: str) -> Optional[str]:
    """Why the symbolic link ``path`` cannot be restored (it leads nowhere), or None if it is no dangling link."""
    if not osp.islink(path) or osp.exists(path):
        return None
    return f"a symbolic link to '{os.readlink(path)}', which does not exist; restore or remove the link"


def _collect(folder: str, recursive: bool, exclude: Optional[str]) -> List[str]:
    """Image files in ``folder`` (also raw and other photo formats and dangling links named as images, for a
    report): each folder's sorted, then its sub-folders' in turn.

    Hidden files and folders (names starting with a dot) are passed over: the ``._photo.jpg`` resource stubs a
    Mac leaves on USB sticks and network shares are no images (each was a failed image, exit status 1), and
    ``.thumbnails`` / ``.git`` folders hold no photos to restore. So is ``exclude`` (the output folder, None when
    it holds the input) and what lies below it, also when reached through a link.

    With ``recursive``, symbolic links to folders are followed like links to files (they were passed over in
    silence), and each real folder is walked once: a link to the input folder or one above it (``loop -> .``)
    is not followed (a loop), nor one to a folder inside the input (its images are restored where they lie),
    nor a second link to a folder already walked (its images would be restored twice).
    """
    top = osp.realpath(folder)
    seen = set()
    found: List[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        seen.add((st.st_dev, st.st_ino))
        keep = []
        # real folders first: a link beside the folder it leads to is the one passed over
        for name in sorted(dirnames, key=lambda d: (osp.islink(osp.join(dirpath, d)), d)) if recursive else []:
            path = osp.join(dirpath, name)
            real = osp.realpath(path)
            if name.startswith('.') or (exclude is not None and _inside(real, exclude)):
                continue
            if osp.islink(path) and (_inside(top, real) or _inside(real, top)):
                continue  # a loop, or a folder the walk reaches (or passes over) where it lies
            try:
                st = os.stat(path)
            except OSError:  # (unreadable: os.walk reports nothing either)
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                keep.append(name)
        dirnames[:] = sorted(keep)
        for name in sorted(n for n in filenames if not n.startswith('.')):
            path = osp.join(dirpath, name)
            ext = osp.splitext(name)[1].lower()
            if (ext in IMAGE_EXTENSIONS or ext in CAMERA_RAW_EXTENSIONS or ext in OTHER_IMAGE_EXTENSIONS) \
                    and (osp.isfile(path) or _dangling(path)):
                found.append(path)
    return found


def _folder_jobs(input_path: str, output_path: str, recursive: bool, suffix: str,
                 ext: Optional[str]) -> List[RestoreJob]:
    if osp.exists(output_path) and not osp.isdir(output_path):
        raise RestoreParameterError('output_path', f"{{param}} '{output_path}' is a file but the input "
                                    f"'{input_path}' is a folder; pass an output folder")
    out_ext = osp.splitext(output_path.rstrip('/' + os.sep))[1].lower()
    if not osp.exists(output_path) and (out_ext in IMAGE_EXTENSIONS or out_ext in UNWRITABLE_IMAGE_EXTENSIONS):
        raise RestoreParameterError('output_path', f"{{param}} '{output_path}' names an image file but the input "
                                    f"'{input_path}' is a folder; pass an output folder (a name without an image "
                                    'extension)')
    in_real, out_real = osp.realpath(input_path), osp.realpath(output_path)
    sources = _collect(input_path, recursive, None if _inside(in_real, out_real) else out_real)
    if not sources:
        raise RestoreParameterError('recursive', f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in "
                                    f"'{input_path}'" + ('' if recursive else '; {param} includes sub-folders'))
    jobs = []
    for src in sources:
        rel_dir = osp.relpath(osp.dirname(src), input_path)
        stem, src_ext = osp.splitext(osp.basename(src))
        jobs.append(RestoreJob(src, osp.normpath(osp.join(output_path, rel_dir, stem + suffix + (ext or src_ext))),
                               output_path, _dangling(src) or input_problem(src)))
    if all(job.error for job in jobs):  # nothing to restore: refused before the model loads
        dangling = [job.src for job in jobs if not osp.exists(job.src)]
        kinds = Counter(osp.splitext(job.src)[1].lower()[1:].upper() for job in jobs if osp.exists(job.src))
        listed = ', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))
        if dangling:
            raise RestoreParameterError('input_path', f"{{param}} '{input_path}' holds no image to restore: "
                                        f"{len(dangling)} symbolic link(s) to files that do not exist ('{dangling[0]}' "
                                        f"-> '{os.readlink(dangling[0])}')" + (f' and {listed} file(s) OpenCV '
                                        f'{cv2.__version__} cannot read' if listed else '')
                                        + '; restore or remove the links')
        raise RestoreParameterError('input_path', f"{{param}} '{input_path}' holds only {listed} file(s), which OpenCV "
                                    f'{cv2.__version__} cannot read; convert them to PNG or JPEG (camera raw files: '
                                    'develop them with a raw converter) and restore those')
    return jobs


#: Image formats users name outputs in that OpenCV does not write: such an output name is refused rather than
#: taken as a folder (``photo_x2.gif`` became a folder holding ``photo.png``).
UNWRITABLE_IMAGE_EXTENSIONS = ('.gif', '.heic', '.heif', '.avif', '.jxl', '.svg', '.ico', '.psd', '.dng', '.raw')


#: An extension like a file type's (``.txt``, ``.json``): letters only. Such a new output name is refused rather than
#: made a folder (``out.txt/photo.png``); ``results.v2`` or ``run.2026`` stay folder names.
_FILE_LIKE_EXTENSION = re.compile(r'\.[a-z]{1,5}')


def _file_job(input_path: str, output_path: str, suffix: str, ext: Optional[str]) -> RestoreJob:
    problem = input_problem(input_path)
    if problem:
        raise RestoreParameterError('input_path', f"{{param}} '{input_path}' is {problem}")
    stem, src_ext = osp.splitext(osp.basename(input_path))
    out_ext = osp.splitext(output_path)[1].lower()
    folder = osp.isdir(output_path) or output_path.endswith(('/', os.sep))
    if out_ext in UNWRITABLE_IMAGE_EXTENSIONS and not folder:
        raise RestoreParameterError('output_path', f"{{param}} '{output_path}' names a {out_ext[1:].upper()} file, a "
                                    'format OpenCV cannot write; name a .png, .jpg, .tif, .webp or .bmp file, or an '
                                    'output folder')
    if not folder and not osp.exists(output_path) and _FILE_LIKE_EXTENSION.fullmatch(out_ext) \
            and out_ext not in IMAGE_EXTENSIONS:
        raise RestoreParameterError('output_path', f"{{param}} '{output_path}' has the extension '{out_ext}', not an "
                                    "image's; name a .png, .jpg, .tif, .webp or .bmp file, or an output folder (an "
                                    "existing one, or the name with a trailing '/')")
    if folder or out_ext not in IMAGE_EXTENSIONS:
        return RestoreJob(input_path, osp.join(output_path, stem + suffix + (ext or src_ext)), output_path)
    if ext is not None and ext.lower() != osp.splitext(output_path)[1].lower():
        raise RestoreParameterError('ext', f"{{param}} '{ext}' contradicts the output file '{output_path}'; drop "
                                    '{param} or rename the output')
    if suffix:
        raise RestoreParameterError('suffix', f"{{param}} applies to outputs named after inputs, but '{output_path}' "
                                    'names the output file; drop {param} or pass an output folder')
    return RestoreJob(input_path, output_path, osp.dirname(output_path) or '.', named=True)


def plan_jobs(input_path: str, output_path: str, recursive: bool = False, suffix: str = '',
              ext: Optional[str] = None) -> List[RestoreJob]:
    """Input files and their outputs, refusing any plan that could touch an input or leave the output folder.

    A folder input gives ``output/<relative folder>/<stem><suffix><ext>`` per image (an output folder
    inside the input is skipped). A file input writes to ``output_path`` itself when it has an image
    extension, otherwise into that folder.

    Args:
        input_path (str): Image file or folder.
        output_path (str): Output file or folder.
        recursive (bool): Also restore images in sub-folders. Default: False.
        suffix (str): Added to each output stem, e.g. ``'_x2'``. Default: ''.
        ext (str, optional): Output format, e.g. ``'png'``. Default: keep the input's.

    Returns:
        list[RestoreJob]: One job per input image, sorted.

    Raises:
        RestoreError: Missing input or images, an output equal to or resolving to an input, an output
            outside ``output_path`` (names, symlinks), colliding outputs, or a bad ``suffix`` / ``ext``.
    """
    if any(sep in suffix for sep in {'/', '\\', os.sep, '\0'}) or suffix in ('.', '..'):
        raise RestoreParameterError('suffix', f"{{param}} '{suffix}' would name a file outside the output folder "
                                    "(it contains a path separator); use a plain suffix such as '_x2'")
    ext = _normalise_ext(ext)
    if not osp.exists(input_path):
        raise RestoreParameterError('input_path', f"{{param}} '{input_path}' does not exist; pass an image file or "
                                    'a folder of images')
    if osp.realpath(input_path) == osp.realpath(output_path):
        raise RestoreParameterError('output_path', f"{{param}} '{output_path}' is the input itself; choose another "
                                    'output, inputs are never overwritten')
    if osp.isdir(input_path):
        jobs = _folder_jobs(input_path, output_path, recursive, suffix, ext)
    else:
        jobs = [_file_job(input_path, output_path, suffix, ext)]
    _check_jobs(jobs)
    return jobs


def folder_in_the_way(dst: str) -> Optional[str]:
    """Why ``dst`` cannot receive its result because a folder (or a link to one) has that name, else None.

    Why: an existing ``dst`` counts as a finished result unless ``overwrite``, so a folder named like the
    result was reported as kept and never restored (and with ``overwrite`` the write failed on it).
    """
    return f"output '{dst}' is a folder; remove or rename it" if osp.isdir(dst) else None


def _check_jobs(jobs: List[RestoreJob]) -> None:
    """Refuse outputs that resolve to an input file, leave their root, or collide; mark unwritable formats and
    outputs a folder stands in the way of (failed jobs, as unreadable inputs are)."""
    input_reals = {osp.realpath(j.src): j.src for j in jobs}
    input_ids = {}
    for job in jobs:
        if osp.exists(job.src):  # (not a dangling link)
            st = os.stat(job.src)
            input_ids[(st.st_dev, st.st_ino)] = job.src
    seen: Dict[str, Tuple[str, str]] = {}
    for job in jobs:
        if job.error:  # reported, never written
            continue
        if not _inside(osp.abspath(job.dst), osp.abspath(job.root)):
            raise RestoreParameterError('output_path', f"output '{job.dst}' for '{job.src}' would be written outside "
                                        f"{{param}} '{job.root}'; rename the input or choose another {{param}}")
        dst_real = osp.realpath(job.dst)
        if not _inside(osp.realpath(osp.dirname(job.dst)), osp.realpath(job.root)):
            raise RestoreParameterError('output_path', f"output '{job.dst}' resolves to '{dst_real}', outside "
                                        f"{{param}} '{job.root}' (a symbolic link leads out of it); remove the link "
                                        'or choose another {param}')
        clash = input_reals.get(dst_real)
        if clash is None and osp.exists(job.dst):
            st = os.stat(job.dst)
            clash = input_ids.get((st.st_dev, st.st_ino))
        if clash is not None:
            raise RestoreParameterError('suffix', f"output '{job.dst}' is the input file '{clash}'; inputs are never "
                                        'overwritten - choose another output or pass {param}')
        if dst_real in seen:
            other_src, other_dst = seen[dst_real]
            if osp.abspath(other_dst) == osp.abspath(job.dst):  # one stem, two extensions, one output format
                raise RestoreParameterError('ext', f"inputs '{other_src}' and '{job.src}' would both be written to "
                                            f"'{job.dst}'; drop {{param}} to keep the input extensions, or rename one "
                                            'of them')
            raise RestoreParameterError('output_path', f"outputs '{other_dst}' (of '{other_src}') and '{job.dst}' "
                                        f"(of '{job.src}') are the same file '{dst_real}' (a symbolic link in "
                                        "{param}); remove the link or choose another {param}")
        seen[dst_real] = (job.src, job.dst)
        job.error = folder_in_the_way(job.dst)
        if not job.error and not cv2.haveImageWriter(job.dst):
            kind = osp.splitext(job.dst)[1] or 'extension-less'
            job.error = (f"OpenCV cannot write '{kind}' files such as '{job.dst}'; choose the output format png "
                         "(ext='png'; on the command line --ext png)")


def config_scale(config: str) -> int:
    """The up-scaling factor of a config's generator (``upscale_factor``, ``upscale`` or ``scale``; else 1)."""
    from mmengine.config import Config
    try:
        generator = Config.fromfile(config, import_custom_modules=False).model.get('generator', {})
    except Exception:  # noqa: BLE001  (loading the model reports config problems properly)
        return 1
    for key in ('upscale_factor', 'upscale', 'scale'):
        if isinstance(generator.get(key), int):
            return int(generator[key])
    return 1


def _needed_bytes(jobs: Sequence[RestoreJob], scale: int, overwrite: bool) -> Dict[str, int]:
    """Estimated bytes of the results per nearest existing output folder, from the inputs' headers."""
    needed: Dict[str, int] = {}
    for job in jobs:
        if job.error or (osp.lexists(job.dst) and not overwrite):
            continue
        folder = existing_folder(osp.dirname(job.dst) or '.')
        try:
            header = read_image_header(job.src)
        except (ImageFileError, OSError):
            header = None  # reported when the image is read
        per = _BYTES_PER_SAMPLE.get(osp.splitext(job.dst)[1].lower(), _COMPRESSED_BYTES_PER_SAMPLE)
        size = 0 if header is None else int(header.pixels * scale * scale * 3 * per)
        needed[folder] = needed.get(folder, 0) + size
    return needed


def check_output_room(jobs: Sequence[RestoreJob], scale: int = 1, overwrite: bool = False) -> int:
    """Refuse outputs that cannot be written before any model is loaded: a read-only folder or too little space.

    Each output folder (its nearest existing parent) gets a probe file, created and removed. The space
    needed is estimated from the inputs' headers: output pixels x 3 channels x bytes per sample (1 for
    BMP / PNM, 0.25 for PNG, TIFF and WebP, 0.05 for JPEG).

    Args:
        jobs (sequence[RestoreJob]): From :func:`plan_jobs`.
        scale (int): The model's up-scaling factor. Default: 1.
        overwrite (bool): Existing outputs will be replaced (else they are kept and need no room).

    Returns:
        int: The estimated bytes the results need.

    Raises:
        RestoreError: An output folder is not writable, or has less free space than the estimate.
    """
    import shutil
    needed = _needed_bytes(jobs, scale, overwrite)
    for folder, size in needed.items():
        why = probe_writable(folder) if osp.isdir(folder) else 'a file is in the way'
        if why:
            raise RestoreError(f"output folder '{folder}' cannot be written ({why}); choose a writable output folder")
        free = shutil.disk_usage(folder).free
        if size > free:
            raise RestoreError(f"output folder '{folder}' has {free / 1e6:.0f} MB free but the results need about "
                               f'{size / 1e6:.0f} MB; free some space or choose another output folder')
    return sum(needed.values())


def _default_log(message: str) -> None:
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


def _restore_one(inferencer: Any, job: RestoreJob, log: Callable[[str], None], summary: RestoreSummary) -> None:
    """Read, restore and write one job's image (OpenCV channel order from the model to the file)."""
    data = inferencer.preprocess(job.src)
    slow = inferencer.attention_cost_note(*data['size'])
    hint, alpha = inferencer.hints.get('ext', '--ext png'), data.get('alpha')
    if job.named:  # (--ext is refused with a named output file: its name chooses the format)
        hint = f"naming the output {osp.splitext(osp.basename(job.dst))[0]}.png"
    lost_alpha = alpha_note(alpha, job.dst, hint)
    once = getattr(inferencer, 'run_notes', list)()  # (logged once by restore_files, not per image)
    # (an alpha not "written back" when it is then "lost")
    notes = [n for n in data['notes'] if not (lost_alpha and n == ALPHA_NOTE) and n not in once]
    for note in notes + ([slow] if slow else []):
        summary.notes.append((job.src, note))
        log(f"note: '{job.src}': {note}")
    preds = inferencer.forward(data)
    channels = 4 if keeps_alpha(alpha, job.dst) else int(preds.shape[0])
    for lost in (lost_alpha, profile_note(data.get('icc_profile'), job.dst, channels, hint),
                 exif_note(data.get('exif'), job.dst, hint)):
        if lost:
            summary.notes.append((job.src, lost))
            log(f"note: '{job.src}': {lost}")
    os.makedirs(osp.dirname(osp.abspath(job.dst)), exist_ok=True)
    if not _inside(osp.realpath(osp.dirname(job.dst)), osp.realpath(job.root)):
        raise RestoreError(f"the folder of '{job.dst}' now leads outside the output folder '{job.root}' through a "
                           'symbolic link; remove the link')
    # (not the public visualize: plan_jobs and check_output_room checked every destination before the first image,
    # and visualize would probe each again with a temporary file)
    inferencer._visualize(preds, result_out_dir=job.dst, icc_profile=data.get('icc_profile'), alpha=alpha,
                          exif=data.get('exif'))


def _failure(err: Exception, job: RestoreJob, left: int) -> Tuple[bool, str]:
    """``(stop, reason)`` for an image that failed with ``err``: a full or read-only disk stops the run (it fails
    every later image too); a protected file to replace (immutable, or owned by another user) in a writable folder,
    and any other error, fails that image only."""
    reason = f'{type(err).__name__}: {first_line(err)}'
    if not isinstance(err, OSError) or err.errno not in _DISK_FULL + _READ_ONLY:
        return False, reason
    if err.errno in _READ_ONLY and osp.lexists(job.dst) and os.access(osp.dirname(osp.abspath(job.dst)), os.W_OK):
        return False, (f"'{job.dst}' cannot be replaced ({err.strerror}): it is protected (immutable, or owned by "
                       'another user); remove the protection or choose another output')
    fix = 'free space on that disk' if err.errno in _DISK_FULL else 'choose a writable output folder'
    rest = f'; stopped before computing the other {left} image(s)' if left else ''
    return True, (f"cannot write '{err.filename or job.dst}' ({err.strerror}){rest}: {fix} and rerun (finished "
                  'results are kept)')


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


@contextlib.contextmanager
def _parts_on(bar: Any, model: Any) -> Iterator[None]:
    """Show on ``bar`` how far the image in progress is (``part 12/48``: tiles, x8 passes), for as long as it runs.

    Why: a whole photograph restored in tiles or with the x8 ensemble took minutes on a CPU while the bar stood
    at the same image without a sign of life.
    """
    if bar.disable or not hasattr(model, 'progress'):
        yield
        return

    def show(done: int, total: int) -> None:
        bar.set_postfix_str(f'part {done}/{total}' if done < total else '', refresh=True)

    model.progress = show
    try:
        yield
    finally:
        model.progress = None


def restore_files(inferencer: Any, jobs: Sequence[RestoreJob], overwrite: bool = False,
                  progress: Optional[bool] = None, log: Optional[Callable[[str], None]] = None,
                  summary: Optional[RestoreSummary] = None) -> RestoreSummary:
    """Restore each job's input into its output, one image at a time, with a progress bar.

    Unreadable inputs and per-image errors are reported (one line each through ``log``) and skipped;
    existing outputs are kept unless ``overwrite``; a full or read-only disk stops the run.

    Args:
        inferencer (RestorationInferencer): The model, see :class:`~panet_mm.apis.RestorationInferencer`.
        jobs (sequence[RestoreJob]): From :func:`plan_jobs`.
        overwrite (bool): Replace existing outputs (inputs never). Default: False.
        progress (bool, optional): Show a tqdm bar; None: only on a terminal. Default: None.
        log (callable, optional): Receives each report line. Default: ``tqdm.write`` to stderr.
        summary (RestoreSummary, optional): Filled in as each image finishes, so that a caller still knows what
            was done when the run is interrupted (``KeyboardInterrupt`` is not caught here). Default: a new one.

    Returns:
        RestoreSummary: Outputs written, failures, kept outputs and notes.

    Raises:
        RestoreError: ``inferencer`` is no model, or ``jobs`` are not :func:`plan_jobs`'s (a folder path).
    """
    from tqdm import tqdm
    if not callable(getattr(inferencer, 'preprocess', None)):
        raise RestoreError(f'restore_files takes a model first (RestorationInferencer / PANetInferencer), got '
                           f'{type(inferencer).__name__} {_short(inferencer)}; build one with PANetInferencer(config, '
                           'checkpoint)')
    if isinstance(jobs, (str, os.PathLike)) or not all(isinstance(job, RestoreJob) for job in jobs):
        raise RestoreError(f'restore_files takes the jobs plan_jobs(input_path, output_path) returns, got '
                           f'{type(jobs).__name__} {_short(jobs)}; call plan_jobs first')
    log = log or _default_log
    summary = RestoreSummary() if summary is None else summary
    bar = tqdm(jobs, desc='restoring', unit='img', file=sys.stderr, dynamic_ncols=True,
               disable=None if progress is None else not progress)
    for note in getattr(inferencer, 'run_notes', list)():  # the settings', not an image's: said once
        summary.notes.append(('', note))
        log(f'note: {note}')
    with bar, _parts_on(bar, getattr(inferencer, 'model', None)):  # (closed also when interrupted)
        for i, job in enumerate(bar):
            if job.error:
                summary.failed.append((job.src, job.error))
                log(f"skipped '{job.src}': {job.error}")
                continue
            in_the_way = folder_in_the_way(job.dst)  # (also one made after planning: it is no result to keep)
            if in_the_way:
                summary.failed.append((job.src, in_the_way))
                log(f"skipped '{job.src}': {in_the_way}")
                continue
            if osp.lexists(job.dst) and not overwrite:
                summary.kept.append(job.dst)
                continue
            try:
                _restore_one(inferencer, job, log, summary)
            except ImageReadError as err:
                summary.failed.append((job.src, str(err)))
                log(f'skipped: {err}')
            except (OSError, ValueError, RuntimeError, cv2.error) as err:
                stop, reason = _failure(err, job, len(jobs) - i - 1)
                summary.failed.append((job.src, reason))
                if stop:
                    summary.stopped = reason
                    break
                log(f"skipped '{job.src}': {reason}")
            else:
                summary.restored.append(job.dst)
    return summary


__all__ = ['CAMERA_RAW_EXTENSIONS', 'IMAGE_EXTENSIONS', 'OTHER_IMAGE_EXTENSIONS', 'UNWRITABLE_IMAGE_EXTENSIONS',
           'RestoreJob', 'RestoreSummary', 'check_output_room', 'config_scale', 'folder_in_the_way', 'input_problem',
           'plan_jobs', 'restore_files']
