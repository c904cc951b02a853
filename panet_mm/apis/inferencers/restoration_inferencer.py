"""One image through a trained panet_mm model, in the four stages of mmagic's inferencers.

All four tasks (super-resolution, denoising, JPEG artefact removal, demosaicing) take this path: the
config says how the input is loaded and pre-processed, the model's ``test_cfg`` how it is run (whole
image, chop, tiles, self-ensemble, precision).
"""
from __future__ import annotations

import contextlib
import logging
import os
import os.path as osp
import re
import threading
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.infer import BaseInferencer
from torch import Tensor

from panet_mm.engine.optim import cpu_bf16_units
from panet_mm.engine.quiet import INFERENCE_LOG_WARNINGS
from panet_mm.utils.checkpoint import first_conv_in_channels
from panet_mm.utils.config import ConfigFileError, read_config
from panet_mm.utils.config_names import missing_config_message
from panet_mm.utils.fileio import atomic_write_image, unwritable_file
from panet_mm.utils.image_metadata import orientation_steps

from ..errors import RestoreError, RestoreParameterError
from ..image_kinds import ALPHA_NOTE, ImageAdapter, alpha_note, attach_alpha, exif_note, keeps_alpha, profile_note
from ..model_loading import build_model, check_device

ImageInput = Union[str, 'os.PathLike[str]', np.ndarray]

#: Whole-image restorations whose attention needs more multiply-adds than this get a note on CPU
#: (about 2.5 minutes on 2 cores; a 256x256 input to the full PANet needs 4.1e12).
SLOW_ATTENTION_MACS = 1e13
#: Attention multiply-adds per second and CPU thread, slowest and fastest measured, for the time range in that
#: note. Fastest: an Intel Xeon with AMX (README, "Attention speed and memory": the block's forward at 320x320,
#: 9.95e12, in 146.8 s with 2 threads). Slowest: an AMD EPYC without AVX-512 shared with other work (96x96 to
#: 224x224, 5.2-7.4e9; 2.38e12 at 224x224 in 166.8 s with 2 threads). One number was 3x off on the other machine.
CPU_MACS_PER_THREAD = (6e9, 30e9)
#: How Python callers set the options that notes and refusals suggest; a CLI gives its flags instead.
#: Tiles narrower than this (pixels) get a note (:meth:`RestorationInferencer.attention_cost_note`).
SMALL_TILE = 32

PYTHON_HINTS = {'max_pixels': 'max_pixels=N', 'tile': 'tile=dict(size=256, overlap=16)', 'device': "device='cuda'",
                'ext': 'a .png result file', 'bf16': "precision='bf16'", 'fp32': "precision='fp32'"}
#: Measured: fp16 time / fp32 time of the demo model (configs/demo/panet_sr_x2_demo.py) on a 64x64 image, CPU
#: (AMD EPYC, AVX2, no half-precision units; 2 threads, denormals flushed as tools/restore.py does).
CPU_FP16_SLOWDOWN = 28
#: The same for bf16 on that CPU (README, "Half precision": 7.8 s against 0.26 s in float32).
CPU_BF16_SLOWDOWN = 30


def show_note(note: str) -> None:
    """One note for a Python caller: a WARNING through mmengine's current logger (``print_log``), as mmagic's
    inferencers report (its console handler shows a repeated note once)."""
    from mmengine.logging import print_log
    print_log(f'note: {note}', logger='current', level=logging.WARNING)


def _no_missing_gt_warning(record: logging.LogRecord) -> bool:
    """mmagic's per-image WARNINGs about a user's image that say nothing to its user
    (:data:`~panet_mm.engine.quiet.INFERENCE_LOG_WARNINGS`)."""
    return not any(re.match(p, str(record.msg)) for p in INFERENCE_LOG_WARNINGS)


_FILTER_LOCK = threading.Lock()
_NOTES_LOCK = threading.Lock()
_filter_users: Dict[int, int] = {}


@contextlib.contextmanager
def _filtered(logger: logging.Logger) -> Iterator[None]:
    """:func:`_no_missing_gt_warning` on ``logger`` while any call is inside: calls from several threads on one
    inferencer each added and removed it, so one thread's removal let mmagic's warning out of another's call."""
    with _FILTER_LOCK:
        if not _filter_users.get(id(logger)):
            logger.addFilter(_no_missing_gt_warning)
        _filter_users[id(logger)] = _filter_users.get(id(logger), 0) + 1
    try:
        yield
    finally:
        with _FILTER_LOCK:
            _filter_users[id(logger)] -= 1
            if not _filter_users[id(logger)]:
                del _filter_users[id(logger)]
                logger.removeFilter(_no_missing_gt_warning)


def model_attention_macs(module: torch.nn.Module, height: int, width: int) -> int:
    """Multiply-adds of the blocks in ``module`` that report their cost (a ``macs(h, w)`` method).

    The blocks are asked at ``height x width``: exact where the attention runs at the input's
    resolution (PANet, PA-EDSR), an upper bound where a host network runs it on smaller features. (One block's
    count from its sizes alone is :func:`panet_mm.ops.cost.attention_macs`.)
    """
    own = getattr(module, 'macs', None)
    if callable(own):
        return int(own(height, width))
    return sum(model_attention_macs(child, height, width) for child in module.children())


def check_result_path(result_out_dir: Any, img: Any = None) -> None:
    """Refuse a ``result_out_dir`` that cannot be the result's file, in one sentence, before any work.

    Why: mmagic's name suggests a folder, and a folder (or a name without an extension) failed after the
    restoration with OpenCV's "could not encode ... as ''"; an unwritable place showed the temporary file's
    name; and the input's own path was overwritten with the result (``tools/restore.py`` refuses that).
    """
    if not result_out_dir:
        return
    path = str(result_out_dir)
    if isinstance(img, (str, os.PathLike)) and osp.exists(path) and osp.exists(str(img)) \
            and osp.samefile(path, str(img)):
        raise RestoreParameterError('result_out_dir', f"{{param}} '{path}' is the input image itself; choose another "
                                    'file, inputs are never overwritten')
    if osp.isdir(path) or path.endswith(('/', os.sep)):
        stem = osp.splitext(osp.basename(str(img)))[0] if isinstance(img, (str, os.PathLike)) else 'result'
        inside = osp.join(path, stem + '_restored.png')
        if osp.splitext(path.rstrip('/' + os.sep))[1] and osp.isdir(path):  # a file's name: a folder is in the way
            raise RestoreParameterError('result_out_dir', f"{{param}} '{path}' is a folder; remove or rename it, or "
                                        f"name a file inside it, e.g. {inside}")
        raise RestoreParameterError('result_out_dir', f"{{param}} '{path}' is a folder; it names the result's file, "
                                    f'e.g. {inside}')
    if not osp.splitext(path)[1]:
        raise RestoreParameterError('result_out_dir', f"{{param}} '{path}' has no extension to choose the format; "
                                    f"name the file with one, e.g. '{path}.png'")
    why = unwritable_file(path)
    if why:
        raise RestoreParameterError('result_out_dir', f"{{param}} '{path}' cannot be written ({why}); pass a file in "
                                    'a writable folder')


def orient_output(pred: Tensor, orientation: int) -> Tensor:
    """A ``(C, H, W)`` output turned as :func:`~panet_mm.utils.image_metadata.apply_orientation` turns ``H x W``
    pixels for an EXIF ``orientation`` (1-8).

    Why: raw Bayer data is demosaiced as stored (its pattern is the sensor's layout); its result is then
    turned upright, as every other image is before the model.
    """
    transpose, mirror = orientation_steps(orientation)
    if transpose:
        pred = pred.transpose(-2, -1)
    return (pred.flip([axis - 2 for axis in mirror]) if mirror else pred).contiguous()


def check_image_input(img: Any, files: bool = True) -> None:
    """Refuse what is neither an image file's path nor a numpy array, naming the conversion to make.

    Why: a torch tensor, a PIL image or a list was taken for a path (``TypeError: expected str, bytes or
    os.PathLike object``), the bytes of a file for a file name (``embedded null byte``).
    """
    if isinstance(img, np.ndarray) or files and isinstance(img, (str, os.PathLike)):
        return
    kind = type(img).__module__.split('.')[0] + '.' + type(img).__name__
    fix = {'torch': 'img.detach().cpu().permute(1, 2, 0).numpy() (H x W x C; values in 0-1 times 255)',
           'PIL': "restore_array(np.array(img)) takes a Pillow image's RGB order",
           'builtins.bytes': 'cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)'}
    hint = next((v for k, v in fix.items() if kind.startswith(k)), None)
    if hint is None and isinstance(img, (list, tuple)):
        hint = 'one image per call (tools/restore.py or restore_files take folders)'
    what = 'an image file path or a numpy array' if files else 'a numpy array'
    raise RestoreError(f'img must be {what}, got {kind}; convert it: {hint or "np.asarray(img)"}')


class RestorationInferencer(BaseInferencer):
    """Restores images with a panet_mm model: ``preprocess`` -> ``forward`` -> ``visualize`` -> ``postprocess``.

    Used like mmagic's ``ImageSuperResolutionInferencer``: ``inferencer(img='photo.png',
    result_out_dir='out.png')`` returns the result. Arrays in and out of the four stages are in
    OpenCV's channel order (BGR, as ``cv2.imread`` gives and ``cv2.imwrite`` takes); the config's order
    exists only inside ``preprocess``. :meth:`restore_array` is the array API in the config's order.

    Why mmengine's ``BaseInferencer`` and not mmagic's ``BaseMMagicInferencer``: importing the latter
    imports every mmagic inferencer (diffusers and controlnet pipelines: ten third-party warnings and
    half a second for each restore run), its ``__init__`` seeds every global random generator, and its
    ``load_checkpoint`` accepts a partial or non-finite state dict. Here the weights load weights-only,
    strictly and finite (:func:`~panet_mm.apis.model_loading.build_model`); the call and the four
    stages keep mmagic's shape.

    Args:
        config (str): Model config file.
        checkpoint (str): Checkpoint of that config (``tools/train.py`` or
            ``tools/model_converters/convert_official_ckpt.py``).
        device (str, optional): ``'cpu'`` or ``'cuda'``. Default: cuda if available, else cpu.
        chop (dict, optional): The released recursive chop, ``dict(min_size=6400, shave=10)``.
        tile (dict, optional): Fixed overlapping tiles, ``dict(size=128, overlap=16)``.
        self_ensemble (bool): Geometric x8 self-ensemble. Default: False.
        precision (str, optional): ``'fp32'``, ``'bf16'`` or ``'fp16'`` autocast. Default: the config's.
    """

    visualize_kwargs = {'result_out_dir', 'icc_profile', 'alpha', 'exif'}
    #: Images declaring more pixels are refused from their header (None: the machine's default).
    max_pixels: Optional[int] = None
    #: Whether a file's EXIF data (camera, dates, GPS position) is carried into its result.
    keep_exif: bool = True
    #: How the caller spells the options suggested in notes and refusals (see :data:`PYTHON_HINTS`).
    hints: Mapping[str, str] = PYTHON_HINTS
    slow_attention_macs: float = SLOW_ATTENTION_MACS

    def __init__(self, config: str, checkpoint: str, device: Optional[str] = None,
                 chop: Optional[Dict[str, int]] = None, tile: Optional[Dict[str, Any]] = None,
                 self_ensemble: bool = False, precision: Optional[str] = None) -> None:
        if not osp.isfile(config):
            # (not the checkout path as an example: it does not exist outside a checkout)
            raise RestoreParameterError('config', missing_config_message(str(config)) or f"{{param}} '{config}' does "
                                        'not exist; pass a config file, or a shipped model name such as '
                                        "'panet_sr_x2_div2k' to PANetInferencer")
        if chop is not None and tile is not None:
            raise RestoreError('chop and tile were both requested; keep one of them')
        if not isinstance(self_ensemble, (bool, np.bool_)):
            raise RestoreParameterError('self_ensemble', f'{{param}} must be True or False, got {self_ensemble!r}')
        self.config = config
        self.options = dict(chop=chop, tile=tile, self_ensemble=self_ensemble, precision=precision)
        self.device = check_device(device)
        try:
            cfg = read_config(config)
        except ConfigFileError as err:
            named = str(err).replace(f"config '{config}'", "{param} '" + config + "'")  # the CLI says --config
            raise RestoreParameterError('config', named) from None
        super().__init__(cfg, checkpoint, self.device)

    @torch.no_grad()
    def __call__(self, img: ImageInput, result_out_dir: str = '') -> np.ndarray:  # type: ignore[override]
        """Restore ``img`` (a file, or an array in OpenCV's order); write it to ``result_out_dir`` if given.

        Each note (a conversion such as grey to colour, a slow setting or image size, what the result's file
        cannot hold) is logged as a WARNING through mmengine's current logger (:meth:`show_notes`), the run's
        settings' notes once per inferencer; :meth:`preprocess` only returns them.

        Returns:
            np.ndarray: The restored uint8 image, OpenCV's channel order (BGRA where the input had alpha,
            ``H x W`` where the model's output is grey).
        """
        check_result_path(result_out_dir, img)  # before the work, and never the input itself
        data = self.preprocess(img)
        where = f"'{os.fspath(img)}': " if isinstance(img, (str, os.PathLike)) else ''
        lost_alpha = alpha_note(data['alpha'], result_out_dir, self.hints['ext']) if result_out_dir else None
        # (an alpha not "written back" when the result's file then loses it)
        self.show_notes([n for n in data['notes'] if not (lost_alpha and n == ALPHA_NOTE)]
                        + [self.attention_cost_note(*data['size'])], where)
        preds = self.forward(data)
        if result_out_dir:
            channels = 4 if keeps_alpha(data['alpha'], result_out_dir) else int(preds.shape[0])
            self.show_notes([lost_alpha, profile_note(data['icc_profile'], result_out_dir, channels, self.hints['ext']),
                             exif_note(data['exif'], result_out_dir, self.hints['ext'])], where)
        return self.postprocess(preds, self._visualize(preds, result_out_dir=result_out_dir,
                                                      icc_profile=data['icc_profile'], alpha=data['alpha'],
                                                      exif=data['exif']))

    def show_notes(self, notes: List[Optional[str]], where: str = '') -> None:
        """Log :meth:`run_notes` the first time, then ``notes`` (None entries skipped; the run's notes that
        :meth:`preprocess` repeats are not said again), each as ``note: <where><note>`` (:func:`show_note`).

        Why: :meth:`__call__`, ``infer`` and :meth:`restore_array` returned without a word although
        :meth:`preprocess` collected notes (fp16 on CPU, grey to colour, a whole-image attention that takes
        hours); only ``restore_files`` and ``tools/restore.py``, which do not call these, printed them.
        """
        once = self.run_notes()
        with _NOTES_LOCK:  # (calls from several threads: each run note still said once)
            shown = self.__dict__.setdefault('_shown_run_notes', set())
            new = [n for n in once if n not in shown]
            shown.update(new)
        for note in new + [n for n in notes if n and n not in once]:
            show_note(note if note in once else where + note)

    def _init_model(self, cfg: Any, weights: str, device: str) -> torch.nn.Module:
        """The model with the checkpoint's weights; also the image adapter its input kinds need."""
        model, self.load = build_model(cfg, self.config, weights, device, self.options)
        generator = getattr(model, 'generator', model)
        self.in_channels = int(cfg.model.get('generator', {}).get('in_channels')
                               or first_conv_in_channels(generator) or 3)
        self.adapter = ImageAdapter(self.load, self.in_channels, self.config)
        return model

    def _init_pipeline(self, cfg: Any) -> Any:
        """``PackInputs``: loading is the adapter's (the config's loader, then the image-kind conversions)."""
        from mmagic.registry import TRANSFORMS
        return TRANSFORMS.build(dict(type='PackInputs'))

    def _init_collate(self, cfg: Any) -> Any:
        """mmengine's ``pseudo_collate``, unused: :meth:`pack` batches the one image itself.

        mmengine's looks ``test_dataloader.collate_fn`` up in the ``mmagic`` scope's function registry,
        which mmagic does not define: every restore run logged a WARNING that the registry was not found.
        """
        from mmengine.dataset import pseudo_collate
        return pseudo_collate

    def _init_visualizer(self, cfg: Any) -> None:
        """None: :meth:`visualize` writes the result itself (a config's visualizer needs a ``save_dir``)."""
        return None

    def preprocess(self, img: ImageInput) -> Dict[str, Any]:
        """One image as the model's data pre-processor takes it.

        Args:
            img (str | np.ndarray): An image file, or an array in OpenCV's channel order: uint8 (0-255), uint16
                (0-65535, a 16-bit image: 8-bit values in a uint16 array come out nearly black, and get a note) or
                float (0-255); grey, colour, with alpha or a raw Bayer mosaic.

        Returns:
            dict: ``inputs`` and ``data_samples`` (a batch of one), ``notes`` (:meth:`run_notes`, then one per
            conversion done; returned only: :meth:`__call__` logs them), ``size`` (height, width),
            ``icc_profile`` (the file's colour profile, for :meth:`visualize`; None for arrays), ``alpha`` (the
            input's alpha plane, written back by :meth:`visualize`), ``exif`` (the file's EXIF block, carried into
            the result; None for arrays, or with ``keep_exif = False``), ``orientation`` (the EXIF orientation
            :meth:`forward` applies to the output: raw Bayer data is demosaiced as stored; 1 for everything else).

        Raises:
            ImageReadError: An unreadable, truncated, too large or non-image file.
            RestoreError: An array of an unsupported dtype, shape or channel count.
        """
        profile = alpha = exif = None
        orientation = 1
        check_image_input(img)
        if isinstance(img, np.ndarray):
            arr, notes, alpha = self._prepare_array(self._swap_red_blue(img))
        else:
            arr, notes, profile, alpha, exif, orientation = self.adapter.read_file(os.fspath(img), self.max_pixels,
                                                                                   self.hints['max_pixels'])
        notes = self.run_notes() + notes
        return dict(self.pack(arr), notes=notes, size=tuple(arr.shape[:2]), icc_profile=profile, alpha=alpha,
                    exif=exif if self.keep_exif else None, orientation=orientation)

    def pack(self, img: np.ndarray) -> Dict[str, List[Any]]:
        """An ``H x W x C`` image in the config's channel order as a batch of one (``PackInputs``)."""
        grey = img.shape[2] == 1  # mmagic's pre-processor must not reorder one channel
        if not img.flags.writeable:  # (np.asarray of a Pillow image: torch.from_numpy warns about read-only arrays)
            img = img.copy()
        packed = self.pipeline(dict(img=img, img_path='', ori_img_shape=img.shape,
                                    img_channel_order='single' if grey else self.load.channel_order,
                                    img_color_type='grayscale' if grey else 'color'))
        return dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']])

    @torch.no_grad()
    def forward(self, data: Dict[str, Any]) -> Tensor:
        """The model's output ``(C, H', W')``, 0-255, BGR if colour (as the data pre-processor destructs it), turned
        upright where ``data`` says (``orientation``: raw Bayer data demosaiced as stored).

        Raises:
            RestoreError: The output has NaN or infinite values (nothing may be written from it).
        """
        from mmengine.logging import MMLogger
        with _filtered(MMLogger.get_current_instance()):  # a user's image has no ground truth; mmagic warns per image
            batch = self.model.data_preprocessor(dict(inputs=data['inputs'], data_samples=data['data_samples']), False)
            pred = self.model(**batch, mode='predict')[0].output.pred_img
        finite = torch.isfinite(pred)
        if not bool(finite.all()):
            raise RestoreError(f"the model's output has NaN / infinite values ({int((~finite).sum())} of "
                               f'{pred.numel()}), so nothing was written; the checkpoint or the device computation is '
                               'broken (try the CPU, or an earlier checkpoint)')
        return orient_output(pred, data.get('orientation', 1))

    def visualize(self, preds: Tensor, result_out_dir: str = '', icc_profile: Optional[bytes] = None,
                  alpha: Optional[np.ndarray] = None, exif: Optional[bytes] = None) -> List[np.ndarray]:
        """The output as an 8-bit image in OpenCV's order, written atomically to ``result_out_dir`` if given.

        Args:
            preds (Tensor): From :meth:`forward`.
            result_out_dir (str): Output file (its extension picks the format), as in mmagic. Default: ''.
            icc_profile (bytes, optional): The input's colour profile (:meth:`preprocess`), written into
                PNG, JPEG and WebP results whose channels it describes (:func:`profile_note` says when
                it is not). Default: None.
            alpha (np.ndarray, optional): The input's alpha plane (:meth:`preprocess`), resized to the
                result and added as a 4th channel (:func:`attach_alpha`); formats without alpha (JPEG,
                BMP) get the colour only (:func:`alpha_note` says so). Default: None.
            exif (bytes, optional): The input's EXIF block (:meth:`preprocess`), written into PNG, JPEG and
                WebP results with orientation 1, the result's size and no thumbnail (:func:`exif_note` says
                when it is not). Default: None.

        Returns:
            list[np.ndarray]: The ``H' x W' x C`` uint8 image (``C = 4`` with ``alpha``).
        """
        check_result_path(result_out_dir)
        return self._visualize(preds, result_out_dir, icc_profile, alpha, exif)

    def _visualize(self, preds: Tensor, result_out_dir: str = '', icc_profile: Optional[bytes] = None,
                   alpha: Optional[np.ndarray] = None, exif: Optional[bytes] = None) -> List[np.ndarray]:
        """:meth:`visualize` for a ``result_out_dir`` already checked (:meth:`__call__` checks it before the work)."""
        img = np.ascontiguousarray(preds.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())
        full = img if alpha is None else attach_alpha(img, alpha)
        if result_out_dir:
            written = full if keeps_alpha(alpha, result_out_dir) else img
            atomic_write_image(result_out_dir, written[..., 0] if written.shape[2] == 1 else written,
                               icc_profile=icc_profile, exif=exif)
        return [full]

    def postprocess(self, preds: Tensor, imgs: Optional[List[np.ndarray]] = None) -> np.ndarray:
        """What a call returns: the restored uint8 image in OpenCV's order, ``H x W`` for a grey one (as
        ``cv2.imread`` and :meth:`to_bgr` give it, and as the file is written)."""
        img = (imgs or self.visualize(preds))[0]
        return img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img

    def read_image(self, path: str) -> Tuple[np.ndarray, List[str]]:
        """Load ``path`` as the config loads test inputs, in the config's order, with one note per conversion."""
        return self.adapter.read(path, self.max_pixels, self.hints['max_pixels'])

    def to_mosaic(self, img: np.ndarray, raw: Optional[bool] = None) -> Tuple[np.ndarray, List[str]]:
        """See :meth:`ImageAdapter.to_mosaic <panet_mm.apis.image_kinds.ImageAdapter.to_mosaic>`."""
        return self.adapter.to_mosaic(img, raw)

    def adapt_channels(self, img: np.ndarray) -> Tuple[np.ndarray, List[str]]:
        """See :meth:`ImageAdapter.adapt_channels <panet_mm.apis.image_kinds.ImageAdapter.adapt_channels>`."""
        return self.adapter.adapt_channels(img)

    def restore_array(self, img: np.ndarray) -> np.ndarray:
        """Restore one array given and returned in the config's channel order (RGB for the shipped configs).

        Its notes (conversions, slow settings) are logged as :meth:`__call__` logs them (:meth:`show_notes`).

        Args:
            img (np.ndarray): ``H x W`` or ``H x W x C``: uint8 (0-255), uint16 (0-65535, a 16-bit image: 8-bit
                values in a uint16 array come out nearly black, and get a note) or float (0-255). A last channel
                after grey or colour (``C`` = 2 or 4) is alpha: kept apart from the model and returned resized
                to the result, as :meth:`__call__` does. Demosaicing configs take a 1-channel array as raw
                Bayer data and mosaic other colour arrays.

        Returns:
            np.ndarray: ``uint8`` ``H*s x W*s x C_out`` image (``s``: the model's scale), ``H*s x W*s x 4`` (colour
            + alpha; a grey result as 3 equal channels) where ``img`` had alpha.

        Raises:
            RestoreError: Unsupported dtype or channels, a mosaic of another pattern, or a non-finite output.
        """
        check_image_input(img, files=False)
        arr, notes, alpha = self._prepare_array(img)
        self.show_notes(notes + [self.attention_cost_note(*arr.shape[:2])])
        return self._swap_red_blue(self.visualize(self.forward(self.pack(arr)), alpha=alpha)[0])

    def _prepare_array(self, img: np.ndarray) -> Tuple[np.ndarray, List[str], Optional[np.ndarray]]:
        """An array in the config's channel order adapted to the model: ``(image, notes, alpha)``. A last channel
        after grey or colour (``C`` = 2 or 4) is alpha, kept apart from the model as for files."""
        alpha = None
        if img.ndim == 3 and img.shape[2] in (2, 4):
            img, alpha = img[..., :-1], np.ascontiguousarray(img[..., -1])
        arr, notes = self.adapter.prepare(img)
        return arr, ([ALPHA_NOTE] if alpha is not None else []) + notes, alpha

    def to_bgr(self, img: np.ndarray) -> np.ndarray:
        """A :meth:`restore_array` result in OpenCV's order (``H x W`` if grey), ready for ``cv2.imwrite``."""
        img = self._swap_red_blue(img)
        return img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img

    def _swap_red_blue(self, img: np.ndarray) -> np.ndarray:
        """Between OpenCV's order and the config's (the same swap both ways); alpha stays last."""
        if self.load.channel_order != 'rgb' or img.ndim != 3 or img.shape[2] not in (3, 4):
            return img
        return np.ascontiguousarray(img[..., [2, 1, 0, 3][:img.shape[2]]])

    def run_notes(self) -> List[str]:
        """Notes on the run's settings rather than on one image (each :meth:`preprocess` repeats them;
        :func:`~panet_mm.apis.restore_files` and :meth:`show_notes` log them once).

        Why: ``precision='fp16'`` on CPU works (59.8 dB against float32) but torch emulates float16 there, and
        nothing said why a restoration took many times longer than in float32; ``precision='bf16'`` is emulated
        the same way on a CPU without bfloat16 units (30x the float32 time on an AVX2 AMD EPYC).
        """
        precision = getattr(self.model, 'precision', None)
        if precision not in ('fp16', 'bf16') or not str(self.device).startswith('cpu'):
            return []
        hint = {k: self.hints.get(k, PYTHON_HINTS[k]) for k in ('bf16', 'fp32', 'device')}
        units = cpu_bf16_units()
        if precision == 'bf16':
            if units is not False:  # (None: torch cannot tell, so nothing is claimed)
                return []
            return [f'bf16 autocast on this CPU is emulated and slow: it has no bfloat16 units (AVX512-BF16, AMX), '
                    f'and the demo model took about {CPU_BF16_SLOWDOWN}x the float32 time on a 64x64 image on such a '
                    f"CPU; use {hint['fp32']}, or {hint['device']}"]
        if units:
            advice = f"use {hint['bf16']}, this CPU's half precision (it has bfloat16 units)"
        elif units is None:
            advice = f"use {hint['bf16']} on CPUs with bfloat16 units (AVX512-BF16, AMX), else {hint['fp32']}"
        else:
            advice = f"this CPU has no bfloat16 units either, so use {hint['fp32']}, or {hint['device']}"
        return [f'fp16 autocast on CPU is emulated and slow (the demo model took about {CPU_FP16_SLOWDOWN}x the '
                f'float32 time on a 64x64 image); {advice}']

    def attention_cost_note(self, height: int, width: int) -> Optional[str]:
        """A note when a ``height x width`` input in one pass will be slow on CPU, else None.

        Whole-image attention costs multiply-adds quadratic in the pixels (:func:`model_attention_macs`, x8
        with self-ensemble). Chopped or tiled restorations are bounded already, and a GPU is fast.
        """
        model = self.model
        tile_cfg = getattr(model, 'tile_cfg', None)
        if tile_cfg is not None:
            return self._small_tiles_note(tile_cfg, height, width)
        if not str(self.device).startswith('cpu') or getattr(model, 'chop_cfg', None) is not None:
            return None
        macs = model_attention_macs(getattr(model, 'generator', model), height, width)
        macs *= 8 if getattr(model, 'self_ensemble', False) else 1
        if macs < self.slow_attention_macs:
            return None
        threads = max(torch.get_num_threads(), 1)
        slow, fast = (macs / (rate * threads) for rate in CPU_MACS_PER_THREAD)
        eta = (f'{fast / 3600:.1f}-{slow / 3600:.1f} h' if slow >= 5400
               else f'{max(fast / 60, 1):.0f}-{slow / 60:.0f} min')
        return (f'{width}x{height} in one pass: the pyramid attention alone needs about {macs:.1e} multiply-adds '
                f'(quadratic in the pixels; roughly {eta} with {threads} CPU threads); {self.hints["tile"]} bounds '
                f'it (the attention then sees each tile), or use {self.hints["device"]}')

    def _small_tiles_note(self, tile_cfg: Mapping[str, Any], height: int, width: int) -> Optional[str]:
        """A note for tiles under :data:`SMALL_TILE` pixels on an image that needs more than a few of them: the
        attention, which restores a pixel from similar patches elsewhere, sees only its tile, and each tile is a
        pass of its own (``--tile 1``: 14400 one-pixel passes for a 120x120 image, minutes, and no attention)."""
        from panet_mm.models.editors.panet.tiling import tile_starts
        size = tile_cfg.get('size')
        th, tw = (size, size) if isinstance(size, int) else tuple(size)
        if min(th, tw) >= SMALL_TILE:
            return None
        overlap = int(tile_cfg.get('overlap', 0))
        count = len(tile_starts(height, th, overlap)) * len(tile_starts(width, tw, overlap))
        if count <= 4:
            return None
        return (f'tiles of {th}x{tw} pixels: the pyramid attention sees only each tile (it restores a pixel from '
                f'similar patches elsewhere in the image), and {width}x{height} takes {count} passes of the network; '
                f'tiles of 64-256 pixels keep its reach with bounded memory ({self.hints["tile"]})')


__all__ = ['CPU_BF16_SLOWDOWN', 'CPU_FP16_SLOWDOWN', 'CPU_MACS_PER_THREAD', 'PYTHON_HINTS', 'RestorationInferencer',
           'SLOW_ATTENTION_MACS', 'SMALL_TILE', 'check_image_input', 'check_result_path', 'cpu_bf16_units',
           'model_attention_macs', 'orient_output', 'show_note']
