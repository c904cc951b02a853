"""mmagic's ``BasicImageDataset`` with a readable error when the data is not there.

Why it exists: ``BasicImageDataset`` fails deep inside mmengine's file backend with a bare
``FileNotFoundError`` when a folder or meta-info file is missing, and silently builds an empty
dataset from an empty folder. Users of the configs get one sentence naming the missing path and
the command that prepares it instead.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
import re
from typing import List, Mapping, Optional

from mmagic.datasets import BasicImageDataset
from mmagic.registry import DATASETS

from panet_mm.utils.errors import PanetMMError

from .check import sample_files
from .image_io import MAX_PIXELS_ENV, ImageFileError, check_image_file, verify_image_file
from .testsets import INCOMPLETE_MARK, read_incomplete

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def runnable_command(cmd: str) -> str:
    """``cmd`` (``python tools/X.py ...``, as the configs write it) as it runs from the current folder.

    Why: ``tools/`` is relative to a checkout's root; a wheel carries the tools in ``panet_mm/.mim/tools``,
    and a checkout's user may run from another folder: the path of the script that exists is given.
    """
    m = re.match(r'(python\S*\s+)(tools/\S+)(.*)$', cmd)
    if not m or osp.isfile(m.group(2)):
        return cmd
    for path in (osp.join(_PACKAGE, '.mim', m.group(2)), osp.join(osp.dirname(_PACKAGE), m.group(2))):
        if osp.isfile(path):
            return m.group(1) + path + m.group(3)
    return cmd


#: mmagic's PairedRandomCrop: "Scale mismatches. GT (120, 120) is not 2x multiplication of LQ (40, 40)."
_SCALE_MISMATCH = re.compile(r'GT \((\d+), (\d+)\) is not (\d+)x multiplication of LQ \((\d+), (\d+)\)')


def command_for_root(cmd: str, data_root: str) -> str:
    """``cmd`` (a config's ``prepare_cmd``) writing where the config reads, ``data_root``, when that is not the
    tool's default folder the command assumes.

    Why: with ``data_root`` pointed elsewhere (``--cfg-options ...data_root=/data/demo/DIV2K``), the hint
    ``make_demo_data.py`` wrote to ``data/demo`` and the run still found nothing.
    """
    if not data_root or '--out' in cmd:
        return cmd
    root, parent = osp.normpath(data_root), osp.dirname(osp.normpath(data_root))
    if 'make_demo_data.py' in cmd and parent != osp.normpath('data/demo'):
        return re.sub(r'(make_demo_data\.py)', rf'\1 --out {parent}', cmd, count=1)
    if 'prepare_testsets.py' in cmd and parent != 'data':
        return re.sub(r'(prepare_testsets\.py)', rf'\1 --out {parent}', cmd, count=1)
    if '--div2k data/DIV2K ' in cmd and root != osp.normpath('data/DIV2K'):
        return cmd.replace('--div2k data/DIV2K ', f'--div2k {root} ', 1)
    return cmd


class DataSampleError(PanetMMError, RuntimeError):
    """Loading or transforming one sample failed; the message names its files."""


@DATASETS.register_module()
class CheckedImageDataset(BasicImageDataset):
    """``BasicImageDataset`` that checks its folders, meta-info file and listed files first.

    A sample that fails in the pipeline (unreadable or truncated image, LR/HR sizes that do not match
    the scale, an image smaller than the patch size) raises :class:`DataSampleError` naming its files
    and, when one of them is damaged, which one. Before a sample is decoded, each of its files'
    declared size is read from the header and checked against the pixel limit, so that a
    decompression bomb in the data is refused instead of exhausting the memory.

    Args:
        prepare_cmd (str): Command that prepares this dataset, quoted in the error message.
            Default: ''.
        max_pixels (int, optional): Pixel limit of one image. Default: None, i.e.
            ``PANET_MM_MAX_PIXELS`` or what the machine's memory affords
            (:func:`~panet_mm.datasets.image_io.default_max_pixels`).
        **kwargs: Arguments of mmagic's ``BasicImageDataset`` (``data_root``, ``data_prefix``,
            ``ann_file``, ``filename_tmpl``, ``pipeline``, ...).
    """

    def __init__(self, prepare_cmd: str = '', max_pixels: Optional[int] = None, **kwargs) -> None:
        self.prepare_cmd = prepare_cmd
        self.max_pixels = max_pixels
        super().__init__(**kwargs)

    @classmethod
    def _load_metainfo(cls, metainfo: Optional[Mapping] = None) -> dict:
        """The config's ``metainfo`` values as written.

        Why: mmengine reads every string value that names an existing path as a file of lines, relative to
        the current folder, so ``dataset_type='div2k'`` stopped training with ``IsADirectoryError`` when run
        next to a ``div2k/`` data folder, a file named ``set5`` there became the metadata, and each other value
        logged "... is not a meta file" (``ann_file`` is the meta-info file's place).
        """
        info = copy.deepcopy(cls.METAINFO)
        if metainfo is None:
            return info
        if not isinstance(metainfo, Mapping):
            raise TypeError(f'metainfo should be a dict, but got {type(metainfo).__name__}')
        info.update(copy.deepcopy(dict(metainfo)))
        return info

    def _missing(self, what: str) -> FileNotFoundError:
        name = self.metainfo.get('dataset_type', type(self).__name__)
        hint = (f'; prepare it with: {runnable_command(command_for_root(self.prepare_cmd, self.data_root))}'
                if self.prepare_cmd else '')
        return FileNotFoundError(f'dataset {name!r}: {what}{hint}')

    def load_data_list(self) -> List[dict]:
        """Check that the data exists, then load the list as ``BasicImageDataset`` does."""
        mark = read_incomplete(self.data_root or '')
        if mark is not None:
            why, tool = mark
            again = f": {runnable_command(f'python {tool}')} ..." if tool and not self.prepare_cmd else ''
            raise self._missing(f"'{self.data_root}' was not fully prepared ({why}; its {INCOMPLETE_MARK} file says "
                                f"so), so its scores would not be the benchmark's; prepare it again{again}")
        for key, folder in self.data_prefix.items():
            if not osp.isdir(folder):
                where = '' if osp.isabs(folder) else f' in {os.getcwd()} (data_root is relative to the current folder)'
                raise self._missing(f"folder '{folder}' (data_prefix['{key}']) does not exist{where}")
        if self.use_ann_file and not osp.isfile(self.ann_file):
            raise self._missing(f"meta-info file '{self.ann_file}' (ann_file) does not exist")
        data_list = super().load_data_list()
        if not data_list:
            source = f"'{self.ann_file}'" if self.use_ann_file else f"folder '{self.data_prefix[self.search_key]}'"
            raise self._missing(f'no images found in {source}')
        for key in self.data_prefix:
            absent = [d[f'{key}_path'] for d in data_list if not osp.isfile(d[f'{key}_path'])]
            if absent:
                more = f' and {len(absent) - 1} more' if len(absent) > 1 else ''
                raise self._missing(f"'{absent[0]}'{more} listed for '{key}' not found "
                                    f"({len(data_list)} entries, folder '{self.data_prefix[key]}')")
        return data_list

    def prepare_data(self, idx: int):
        """Run the pipeline on sample ``idx``; a failure is re-raised naming the sample's (broken) files."""
        info = self.get_data_info(idx)
        paths = sample_files(self, idx)
        option = f'max_pixels=N in the dataset config (or {MAX_PIXELS_ENV}=N)'
        try:
            for path in paths.values():  # header only: nothing is decoded before the sizes are known
                check_image_file(path, self.max_pixels, option)
            return super().prepare_data(idx)
        except DataSampleError:
            raise
        except Exception as e:
            files = ', '.join(f"{k}: '{v}'" for k, v in paths.items())
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            other_scale = self._other_scale(reason)
            if other_scale:  # the folder, not this file: no "replace or remove", nothing to resume
                raise DataSampleError(f"sample '{info.get('key', idx)}' ({files}): {other_scale}") from e
            if not isinstance(e, ImageFileError):
                broken = self._broken_file(paths, option)
                reason = broken or reason
            listed = f" and its line in '{self.ann_file}'" if self.ann_file else ''
            then = '' if self.test_mode else ', then continue with --resume'  # (a training run kept its checkpoints)
            raise DataSampleError(f"sample '{info.get('key', idx)}' ({files}) could not be loaded: {reason}; "
                                  f'replace or remove this file{listed}{then}') from e

    def _other_scale(self, reason: str) -> Optional[str]:
        """The fix when mmagic's crop found LR and GT sizes of another whole scale than the pipeline's
        (``data_prefix`` pointing at the x3 images of an x2 config): the whole folder is of another scale, and
        replacing the sample's file, as for a damaged one, would be the wrong advice; else None."""
        m = _SCALE_MISMATCH.search(reason)
        if not m:
            return None
        gt_h, gt_w, scale, lq_h, lq_w = map(int, m.groups())
        found = round(gt_h / max(lq_h, 1))
        if found < 1 or found == scale or abs(gt_h - found * lq_h) >= found or abs(gt_w - found * lq_w) >= found:
            return None
        folder = self.data_prefix.get('img', '')
        return (f'its LR image is {lq_h}x{lq_w}, 1/{found} of its {gt_h}x{gt_w} GT, but the pipeline crops for scale '
                f"{scale}: data_prefix['img'] ('{folder}') holds x{found} images; point it at the x{scale} images, or "
                f'train a scale-{found} config (its scale = {found} and the generator\'s upscale_factor={found})')

    def _broken_file(self, paths: dict, option: str) -> Optional[str]:
        """Which of a failed sample's files is damaged (decoded whole to find out), as a sentence; else None."""
        for key, path in paths.items():
            try:
                verify_image_file(path, self.max_pixels, option)
            except (ImageFileError, OSError) as err:
                text = str(err).split('; copy or export')[0]
                return f'its {key} file {text}'
        return None


__all__ = ['CheckedImageDataset', 'DataSampleError']
