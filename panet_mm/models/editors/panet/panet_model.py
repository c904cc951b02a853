"""Edit model of PANet / PA-EDSR: mmagic's ``BaseEditModel`` with test-time restoration options.

Training is ``BaseEditModel``'s. At validation / test time the image is restored in one pass by
default (the pyramid attention then sees the whole image, the point of this project), or, as
options, with the released recursive ``--chop``, with fixed overlapping tiles, and/or with the
geometric x8 self-ensemble. Inputs too small for the network are padded and the output cropped back.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmagic.models.base_models import BaseEditModel
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from torch import Tensor

from panet_mm.models.layers import PyramidAttention
from panet_mm.ops.pyramid import smallest_side
from panet_mm.utils.errors import PanetMMError

from .tiling import check_align, chop_boxes, output_scale, pad_axis, tile_spans, tile_starts

#: The keys of ``test_cfg`` that PANetEditModel takes (mmagic's BaseEditModel ignores them).
TEST_CFG_KEYS = ('chop', 'tile', 'self_ensemble', 'min_input_size', 'align', 'precision', 'quantize')
# test_cfg precision: the autocast dtype of test-time restoration (None: float32, no autocast)
_PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
_CHOP_KEYS = ('min_size', 'shave', 'tiles_per_batch')
_TILE_KEYS = ('size', 'overlap', 'tiles_per_batch')


class InvalidTestCfgError(PanetMMError):
    """A ``test_cfg`` of :class:`PANetEditModel` it cannot run; names the key, the value and the fix."""


class ScaleMismatchError(PanetMMError, RuntimeError):
    """The model's output and the ground truth differ in size: the model's and the data's scales disagree."""


def check_output_size(inputs: Tensor, out: Tensor, gt: Any, files: Optional[Sequence[str]] = None) -> None:
    """Refuse an output whose size is not the ground truth's, naming both scales (and the batch's files).

    Why: a model up-scaling x3 trained on x2 pairs stopped inside the loss with "The size of tensor a (48) must
    match the size of tensor b (32)", an x2 checkpoint tested on x3 inputs inside the metric with "Image shapes
    are different".
    """
    if not isinstance(gt, Tensor) or gt.dim() < 2 or tuple(gt.shape[-2:]) == tuple(out.shape[-2:]):
        return
    (ih, iw), (oh, ow), (gh, gw) = inputs.shape[-2:], out.shape[-2:], gt.shape[-2:]
    named = f" ({', '.join(files[:3])}{' ...' if len(files) > 3 else ''})" if files else ''
    pair = (", or this pair's files do not belong together (tools/analysis_tools/check_dataset.py finds such pairs)"
            if files else '')
    raise ScaleMismatchError(
        f'the model turns {ih}x{iw} inputs{named} into {oh}x{ow} (x{oh / ih:g}) but their ground truth is {gh}x{gw} '
        f"(x{gh / ih:g}): the generator's scale (model.generator upscale_factor) and the data's (its LR folder, "
        f"the pipeline's scale) disagree{pair}; make them the same")


def _batch_inputs(data_samples: Any) -> List[str]:
    """The input files of a batch of data samples (``img_path`` of their metainfo), where they have them."""
    paths = getattr(data_samples, 'metainfo', {}).get('img_path') if data_samples is not None else None
    if isinstance(paths, str):
        return [paths]
    return [str(p) for p in paths] if isinstance(paths, (list, tuple)) else []


def _as_pair(value: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise InvalidTestCfgError(f'test_cfg tile {name} must be an int or (height, width), got {value!r}')


def _transform(x: Tensor, k: int) -> Tensor:
    """Geometric transform ``k`` (0-7) of the dihedral group: bit 0 h-flip, bit 1 v-flip, bit 2 transpose.

    Why not mmagic's ``SpatialTemporalEnsemble``: it keeps all eight outputs (and takes video ``(N, T, C, H,
    W)`` input) before averaging; the x8 test mode here adds each output to a running sum, one image at a time,
    so a whole photograph needs the memory of one output, not eight.
    """
    if k & 1:
        x = x.flip(-1)
    if k & 2:
        x = x.flip(-2)
    if k & 4:
        x = x.transpose(-2, -1)
    return x


def _inverse_transform(x: Tensor, k: int) -> Tensor:
    if k & 4:
        x = x.transpose(-2, -1)
    if k & 2:
        x = x.flip(-2)
    if k & 1:
        x = x.flip(-1)
    return x


@MODELS.register_module()
class PANetEditModel(BaseEditModel):
    """``BaseEditModel`` for PANet / PA-EDSR with whole-image, chopped, tiled and x8 test modes.

    Training is unchanged. In eval mode ``forward_tensor`` (hence ``val_step`` / ``test_step`` and
    ``mode='tensor'``) restores the image with :meth:`restore`, which by default runs the generator
    once on the whole image: with the memory-linear attention kernel every pixel attends to the
    whole image, which the released code could not afford (it always ran with ``--chop``, so its
    attention was tile-local at test time). The released protocol stays available to reproduce the
    paper's numbers.

    Args:
        generator (dict): Generator config (``PANet`` / ``PAEDSRNet``).
        pixel_loss (dict): Pixel loss config.
        train_cfg (dict, optional): Training config (unused by this model). Default: None.
        test_cfg (dict, optional): Test-time options, all optional (default: whole image, one pass):

            - ``chop`` (dict): the released recursive overlapping chop, bit for bit
              (see :func:`chop_boxes`): ``min_size`` (default 6400; the released commands use 6400
              for SR and 6800 for denoising), ``shave`` (overlap in input pixels, default 10) and
              ``tiles_per_batch`` (leaf tiles of equal size run together, the released ``n_GPUs``;
              default 1). Use it to reproduce the paper's test numbers, or when memory is short.
            - ``tile`` (dict): fixed tiles of ``size`` (int or (h, w), input pixels) overlapping by at
              least ``overlap`` (default 0), outputs averaged where tiles overlap; ``tiles_per_batch``
              (default 1). Bounds the memory with a predictable tile size and softer seams than chop.
              Mutually exclusive with ``chop``.
            - ``self_ensemble`` (bool): geometric x8 self-ensemble (h/v flips and transposes; each
              output transformed back, the 8 averaged), as the papers' "+" results. Default: False.
            - ``min_input_size`` (int): inputs (and tiles) smaller than this per side are padded at
              the bottom/right (reflect, or replicate when the image is too small to reflect) and the
              output cropped back. Default: the smallest side for which every pyramid level of the
              generator's attention is non-empty (2 for the paper's scales down to 0.6), so tiny or
              thin images are restored instead of rejected. Padding at the bottom/right keeps the
              position (e.g. the Bayer phase) of every input pixel.
            - ``align`` (int >= 1): every ``chop`` leaf and every ``tile`` starts at a multiple of
              ``align`` input pixels (chop: the second quadrant's start rounded down; tile: starts
              rounded down, the last tile up to ``align - 1`` pixels larger; see :func:`chop_boxes`,
              :func:`tile_spans`). ``align=2`` for zero-filled Bayer mosaics (the demosaicing
              configs), whose 2x2 pattern a tile at an odd offset would show in another phase.
              ``self_ensemble`` is refused with ``align > 1`` (a flip or transpose changes the
              pattern). Default: 1 (the released chop, bit for bit).
            - ``precision`` (str): ``'fp32'`` (default), ``'bf16'`` or ``'fp16'``: restoration runs
              under ``torch.autocast`` of that dtype (convolutions and attention products in half
              precision, the attention softmax and sums in float32) and returns float32. ``'bf16'``
              for CPUs with bfloat16 matrix units and for GPUs; ``'fp16'`` for GPUs (on CPU it is
              slow). The README lists the measured accuracy against float32.
            - ``quantize`` (bool): round the prediction to whole 0-255 levels before the metrics see it,
              as the released test does (its ``quantize`` before ``calc_psnr``) and as every image
              ``tools/restore.py`` writes; ``False`` scores the float output as mmagic's own models do
              (about 0.001 dB apart). Default: True.
        init_cfg (dict, optional): Initialisation config. Default: None.
        data_preprocessor (dict, optional): Data pre-processor config. Default: None.
    """

    def __init__(self,
                 generator: dict,
                 pixel_loss: dict,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(generator=generator, pixel_loss=pixel_loss, train_cfg=train_cfg, test_cfg=test_cfg,
                         init_cfg=init_cfg, data_preprocessor=data_preprocessor)
        cfg = dict(test_cfg or {})
        unknown = sorted(set(cfg) - set(TEST_CFG_KEYS))
        if unknown:
            raise InvalidTestCfgError(f'PANetEditModel test_cfg has unknown keys {unknown}; '
                                      f'allowed: {list(TEST_CFG_KEYS)}')
        self.chop_cfg = self._check_sub_cfg(cfg.get('chop'), 'chop', _CHOP_KEYS,
                                            dict(min_size=6400, shave=10, tiles_per_batch=1))
        self.tile_cfg = self._check_sub_cfg(cfg.get('tile'), 'tile', _TILE_KEYS, dict(overlap=0, tiles_per_batch=1))
        if self.chop_cfg is not None and self.tile_cfg is not None:
            raise InvalidTestCfgError('PANetEditModel test_cfg sets both chop and tile; keep one of them')
        if self.tile_cfg is not None:
            if 'size' not in self.tile_cfg:
                raise InvalidTestCfgError('PANetEditModel test_cfg tile needs a size, '
                                          'e.g. tile=dict(size=128, overlap=16)')
            size = _as_pair(self.tile_cfg['size'], 'size')
            tile_starts(size[0], size[0], self.tile_cfg['overlap'])  # validates overlap < size
            tile_starts(size[1], size[1], self.tile_cfg['overlap'])
            self.tile_cfg['size'] = size
        if self.chop_cfg is not None and int(self.chop_cfg['min_size']) <= (2 * int(self.chop_cfg['shave'])) ** 2:
            raise InvalidTestCfgError(_chop_too_fine(self.chop_cfg))
        self.align = cfg.get('align', 1)
        try:
            check_align(self.align)
        except ValueError as err:
            raise InvalidTestCfgError(f'PANetEditModel test_cfg {err}') from None
        if self.tile_cfg is not None and min(self.tile_cfg['size']) < self.align:
            raise InvalidTestCfgError(f"PANetEditModel test_cfg tile size {self.tile_cfg['size']} is smaller than "
                                      f'align={self.align}; use tiles of at least {self.align} pixels')
        self.self_ensemble = bool(cfg.get('self_ensemble', False))
        if self.self_ensemble and self.align > 1:
            raise InvalidTestCfgError(f'PANetEditModel test_cfg sets self_ensemble together with align={self.align}, '
                                      'which is refused because a flip or transpose changes the Bayer pattern the '
                                      'model was trained on; drop self_ensemble for this model.')
        min_input = cfg.get('min_input_size')
        if min_input is not None and (not isinstance(min_input, int) or min_input < 1):
            raise InvalidTestCfgError(f'PANetEditModel test_cfg min_input_size must be a positive int, '
                                      f'got {min_input!r}')
        self.min_input_size = min_input if min_input is not None else self._pyramid_min_size()
        self.precision = cfg.get('precision', 'fp32')
        if not isinstance(self.precision, str) or self.precision not in _PRECISIONS:
            raise InvalidTestCfgError(f'PANetEditModel test_cfg precision must be one of {list(_PRECISIONS)}, '
                                      f'got {self.precision!r}')
        #: Called as ``progress(done, total)`` after each generator pass of :meth:`restore` (a tile batch, an x8
        #: pass), so that a caller can show how far one slow image is; ``None``: nothing is reported.
        self.progress: Optional[Callable[[int, int], None]] = None
        self._pass = (0, 1)
        self.quantize = cfg.get('quantize', True)
        if not isinstance(self.quantize, bool):
            raise InvalidTestCfgError(f'PANetEditModel test_cfg quantize must be True or False, got {self.quantize!r}')

    @staticmethod
    def _check_sub_cfg(value: Any, name: str, keys: Sequence[str], defaults: Dict[str, Any]) -> Optional[dict]:
        if value is None or value is False:
            return None
        if value is True:
            value = {}
        if not isinstance(value, dict):
            raise InvalidTestCfgError(f'PANetEditModel test_cfg {name} must be a dict, got {value!r}')
        unknown = sorted(set(value) - set(keys))
        if unknown:
            raise InvalidTestCfgError(f'PANetEditModel test_cfg {name} has unknown keys {unknown}; '
                                      f'allowed: {list(keys)}')
        out = dict(defaults)
        out.update(value)
        if int(out['tiles_per_batch']) < 1:
            raise InvalidTestCfgError(f'PANetEditModel test_cfg {name} tiles_per_batch must be >= 1, '
                                      f"got {out['tiles_per_batch']}")
        return out

    def _pyramid_min_size(self) -> int:
        """Smallest side for which every pyramid level of every attention block is non-empty (a mixed model's
        :meth:`~panet_mm.models.editors.mix.WithPyramidAttention.min_input_size` where the blocks sit at another
        resolution)."""
        window = getattr(self.generator, 'window_size', None)  # SwinIR pads to its window by reflection,
        window = window if isinstance(window, int) else 1     # which needs inputs of about that size
        if callable(getattr(self.generator, 'min_input_size', None)):
            return max(int(self.generator.min_input_size()), window)
        scales = [s for m in self.generator.modules() if isinstance(m, PyramidAttention) for s in m.scales]
        return max(smallest_side(scales), window)

    def forward_tensor(self, inputs: Tensor, data_samples: Optional[List[DataSample]] = None,
                       **kwargs) -> Tensor:
        """The generator's output: plain forward in training, :meth:`restore` in eval mode.

        Args:
            inputs (Tensor): Batch ``(B, C, H, W)`` from the data pre-processor.
            data_samples (list[DataSample], optional): Their stacked ``gt_img``, where there is one, must
                have the output's size (:func:`check_output_size`).
            **kwargs: Passed to the generator.

        Returns:
            Tensor: Restored batch ``(B, C_out, H * scale, W * scale)``.
        """
        out = self.generator(inputs, **kwargs) if self.training else self.restore(inputs, **kwargs)
        files = [] if self.training else _batch_inputs(data_samples)  # (a training batch: crops of many files)
        check_output_size(inputs, out, getattr(data_samples, 'gt_img', None), files)
        return out

    def forward_inference(self, inputs: Tensor, data_samples: Optional[List[DataSample]] = None,
                          **kwargs) -> DataSample:
        """``BaseEditModel.forward_inference``, its 0-255 ``pred_img`` rounded to whole levels with ``quantize``.

        Why: the released test rounds its output to 8-bit levels before scoring it, and the images users keep are
        8-bit; mmagic scores the float output, which differed from a restored PNG's score by up to 0.001 dB.
        """
        predictions = super().forward_inference(inputs, data_samples, **kwargs)
        if self.quantize:
            predictions.pred_img = predictions.pred_img.round()
        return predictions

    def restore(self, inputs: Tensor, **kwargs) -> Tensor:
        """Test-time restoration with the options of ``test_cfg`` (see the class docstring).

        Args:
            inputs (Tensor): ``(B, C, H, W)``.
            **kwargs: Passed to the generator.

        Returns:
            Tensor: ``(B, C_out, H * scale, W * scale)``, float32 for every ``precision``.
        """
        half = _PRECISIONS[self.precision]
        if half is None:
            return self._restore(inputs, **kwargs)
        with torch.autocast(inputs.device.type, dtype=half):
            return self._restore(inputs, **kwargs).float()

    def _restore(self, inputs: Tensor, **kwargs) -> Tensor:
        if not self.self_ensemble:
            self._pass = (0, 1)
            return self._restore_once(inputs, **kwargs)
        total = None
        for k in range(8):
            self._pass = (k, 8)
            out = _inverse_transform(self._restore_once(_transform(inputs, k), **kwargs), k).float()
            total = out if total is None else total + out
        return total / 8

    def _report(self, done: int, per_pass: int) -> None:
        """Tell :attr:`progress` that ``done`` of this pass's ``per_pass`` generator runs are done."""
        if self.progress is not None:
            k, passes = self._pass
            self.progress(k * per_pass + done, passes * per_pass)

    def _restore_once(self, x: Tensor, **kwargs) -> Tensor:
        if self.chop_cfg is not None:
            return self._chop(x, **kwargs)
        if self.tile_cfg is not None:
            return self._tile(x, **kwargs)
        out = self._run(x, **kwargs)
        self._report(1, 1)
        return out

    def _run(self, x: Tensor, **kwargs) -> Tensor:
        """One generator pass, padding inputs smaller than ``min_input_size`` and cropping back."""
        h, w = x.shape[-2:]
        m = self.min_input_size
        if h >= m and w >= m:
            return self.generator(x, **kwargs)
        padded = pad_axis(pad_axis(x, -2, m), -1, m)
        out = self.generator(padded, **kwargs)
        s = output_scale(padded, out)
        return out[..., :h * s, :w * s]

    def _run_tiles(self, x: Tensor, boxes: Sequence[Tuple[int, int, int, int]], per_batch: int,
                   paste: Callable[[int, Tensor, int], None], **kwargs) -> None:
        """Run the ``(top, left, height, width)`` boxes, equal-size neighbours batched, and paste each output."""
        b = x.shape[0]
        groups, i = [], 0
        while i < len(boxes):
            j = i + 1
            while j < len(boxes) and j - i < per_batch and boxes[j][2:] == boxes[i][2:]:
                j += 1
            groups.append((i, j))
            i = j
        for done, (i, j) in enumerate(groups, 1):
            crops = [x[..., t:t + hh, le:le + ww] for t, le, hh, ww in boxes[i:j]]
            batch = torch.cat(crops, dim=0)  # always a contiguous copy, as the released chop feeds its tiles
            out = self._run(batch, **kwargs)
            s = output_scale(batch, out)
            for n, idx in enumerate(range(i, j)):
                paste(idx, out[n * b:(n + 1) * b], s)
            self._report(done, len(groups))

    def _chop(self, x: Tensor, **kwargs) -> Tensor:
        """The released recursive chop: leaf tiles from :func:`chop_boxes`, kept regions copied."""
        h, w = x.shape[-2:]
        cfg = self.chop_cfg
        tiles = chop_boxes(h, w, int(cfg['min_size']), int(cfg['shave']), self.align)
        if len(tiles) > 16 * -(-h * w // int(cfg['min_size'])) + 16:  # about 4x the area / min_size when sane
            raise InvalidTestCfgError(_chop_too_fine(cfg, f'splits this {w}x{h} input into {len(tiles)} pieces'))
        result: List[Optional[Tensor]] = [None]

        def paste(idx: int, out: Tensor, s: int) -> None:
            t = tiles[idx]
            if result[0] is None:
                result[0] = out.new_zeros(out.shape[0], out.shape[1], h * s, w * s)
            if t.keep_height == 0 or t.keep_width == 0:
                return
            r0, c0 = (t.keep_top - t.top) * s, (t.keep_left - t.left) * s
            result[0][..., t.keep_top * s:(t.keep_top + t.keep_height) * s,
                      t.keep_left * s:(t.keep_left + t.keep_width) * s] = \
                out[..., r0:r0 + t.keep_height * s, c0:c0 + t.keep_width * s]

        boxes = [(t.top, t.left, t.height, t.width) for t in tiles]
        self._run_tiles(x, boxes, int(cfg['tiles_per_batch']), paste, **kwargs)
        return result[0]

    def _tile(self, x: Tensor, **kwargs) -> Tensor:
        """Fixed overlapping tiles, outputs averaged over the overlaps."""
        h, w = x.shape[-2:]
        (th, tw), overlap = self.tile_cfg['size'], int(self.tile_cfg['overlap'])
        th, tw = min(th, h), min(tw, w)
        rows = tile_spans(h, th, min(overlap, th - 1), self.align)
        cols = tile_spans(w, tw, min(overlap, tw - 1), self.align)
        boxes = [(t, le, hh, ww) for t, hh in rows for le, ww in cols]
        acc: List[Optional[Tensor]] = [None, None]

        def paste(idx: int, out: Tensor, s: int) -> None:
            t, le, hh, ww = boxes[idx]
            if acc[0] is None:
                acc[0] = out.new_zeros(out.shape[0], out.shape[1], h * s, w * s)
                acc[1] = out.new_zeros(1, 1, h * s, w * s)
            acc[0][..., t * s:(t + hh) * s, le * s:(le + ww) * s] += out
            acc[1][..., t * s:(t + hh) * s, le * s:(le + ww) * s] += 1

        self._run_tiles(x, boxes, int(self.tile_cfg['tiles_per_batch']), paste, **kwargs)
        return acc[0] / acc[1]


def _chop_too_fine(cfg: Dict[str, Any], what: str = 'never stops splitting early') -> str:
    """Why a chop ``min_size`` close to ``(2 * shave) ** 2`` is refused: a quadrant is half its node plus ``shave``,
    so pieces shrink towards ``2 * shave`` pixels per side but hardly below; a ``min_size`` near that area
    splits on to thousands of tiny overlapping pieces (a 60x60 photo: 4096 with min_size=400, shave=10)."""
    min_size, shave = int(cfg['min_size']), int(cfg['shave'])
    return (f'PANetEditModel test_cfg chop min_size={min_size} with shave={shave} {what}: pieces cannot get much '
            f'smaller than 2*shave={2 * shave} pixels per side, so a min_size near {(2 * shave) ** 2} keeps '
            f'splitting; use min_size >= {16 * shave * shave} (16*shave^2; the released commands use 6400 with '
            'shave=10), or tile')


#: mmagic's plain edit model, whose test-time keys :func:`as_panet_edit_model` makes work.
PLAIN_EDIT_MODELS = ('BaseEditModel', 'mmagic.BaseEditModel')


def as_panet_edit_model(model_cfg: Dict[str, Any]) -> Optional[List[str]]:
    """Make a ``BaseEditModel`` config a :class:`PANetEditModel` one (in place), keeping only its test-time keys.

    Why: both take the same arguments and weights, but ``BaseEditModel`` silently ignores ``test_cfg``'s
    ``tile`` / ``chop`` / ``precision`` / ``self_ensemble`` (a tiled or bf16 evaluation of a mixed model
    measured the float32 whole-image one) and cannot pad inputs too small for the attention.

    Args:
        model_cfg (dict): A config's ``model``; changed only when its type is ``BaseEditModel``.

    Returns:
        list[str], optional: The ``test_cfg`` keys dropped (PANetEditModel has no use for them); None when
        the type is not ``BaseEditModel``.
    """
    if model_cfg.get('type') not in PLAIN_EDIT_MODELS:
        return None
    test_cfg = dict(model_cfg.get('test_cfg') or {})
    model_cfg['type'] = 'PANetEditModel'
    model_cfg['test_cfg'] = {k: v for k, v in test_cfg.items() if k in TEST_CFG_KEYS}
    return sorted(k for k in test_cfg if k not in TEST_CFG_KEYS)


__all__ = ['InvalidTestCfgError', 'PANetEditModel', 'PLAIN_EDIT_MODELS', 'ScaleMismatchError', 'TEST_CFG_KEYS',
           'as_panet_edit_model', 'check_output_size']
