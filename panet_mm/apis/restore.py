"""Restore a user's own images with a trained panet_mm model (the library behind ``tools/restore.py``).

Three pieces, usable on their own:

* :func:`load_state_dict_safely` reads a checkpoint weights-only with
  :func:`panet_mm.engine.checkpoint.load_weights_only` (mmengine's metadata loads as data and is dropped),
  so a crafted file cannot run code; any other global (``os.system``,
  ``builtins.exec``, ...) is refused. The ``state_dict`` must match the model exactly: a missing, unexpected or
  mis-shaped key refuses the checkpoint (listing the keys) and nothing is loaded.
* :class:`Restorer` (from :func:`build_restorer`) holds the model built from the config with mmagic's
  registry and restores one image array, with the config's colour handling (the ``LoadImageFromFile``
  of its inference / test pipeline) and data pre-processor (mean / std, channel order), and the
  test-time options of ``PANetEditModel`` (whole image by default, released chop, tiles, x8
  self-ensemble).
* :func:`plan_jobs` and :func:`restore_files` turn an input file or folder into output paths (never an
  input file, never outside the output folder) and restore them one by one, skipping and reporting
  unreadable or truncated files; every result is written atomically (:func:`write_image_atomic`).
"""
from __future__ import annotations

import copy
import errno
import io
import logging
import os
import os.path as osp
import re
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor

from panet_mm.datasets.image_io import ImageFileError, check_image_file, pillow_checks, read_image_header
from panet_mm.datasets.transforms.color import gray_or_y, is_gray
from panet_mm.datasets.transforms.mosaic import bayer_mosaic, check_pattern, is_bayer_mosaic
from panet_mm.engine.checkpoint import UnsafeCheckpointError, _first_line, load_weights_only
from panet_mm.engine.hooks import non_finite_keys, non_finite_message
from panet_mm.engine.runner import compare_state_dicts

#: File extensions collected from an input folder (case-insensitive).
IMAGE_EXTENSIONS = ('.bmp', '.dib', '.jpeg', '.jpg', '.jpe', '.jp2', '.png', '.webp', '.pbm', '.pgm', '.ppm',
                    '.pnm', '.tif', '.tiff')

_LOADER_TYPES = ('LoadImageFromFile', 'mmagic.LoadImageFromFile')
#: Whole-image restorations whose pyramid attention needs more multiply-adds than this get a note on CPU
#: (about 4 minutes on 2 cores; a 256x256 input to the full PANet needs 4.1e12).
SLOW_ATTENTION_MACS = 1e13
#: Speed of the attention kernel per CPU thread for the time estimate of that note: forward at 128x128 ran
#: 2.5e11 multiply-adds in 6.4 s with 2 threads (README, Attention speed and memory).
CPU_MACS_PER_THREAD = 20e9
_MAX_LISTED_KEYS = 12


class RestoreError(ValueError):
    """A restoration request is refused; the message names the file / key / value and the fix."""


class CheckpointRefusedError(RestoreError):
    """A checkpoint is unreadable, not weights-only loadable, or does not match the model."""


class ImageReadError(RestoreError):
    """One input image cannot be read (missing, unreadable, truncated or not an image)."""


# --------------------------------------------------------------------------------------------------
# Weights-only checkpoint loading (panet_mm.engine.checkpoint does the loading)


def load_state_dict_safely(path: str) -> Dict[str, Tensor]:
    """Read the tensor ``state_dict`` of a checkpoint without unpickling arbitrary objects.

    Accepts mmengine checkpoints (``tools/train.py``, ``tools/convert_official_ckpt.py``: the
    ``state_dict`` entry is used, metadata dropped) and plain state dicts; a ``module.`` prefix on
    every key (DataParallel) is removed.

    Args:
        path (str): Checkpoint file.

    Returns:
        dict[str, Tensor]: The state dict, on the CPU.

    Raises:
        CheckpointRefusedError: Missing or unreadable file, objects the weights-only loader refuses,
            or no state dict of tensors inside.
    """
    if not osp.isfile(path):
        raise CheckpointRefusedError(f"checkpoint '{path}' does not exist; pass a .pth written by tools/train.py "
                                     'or tools/convert_official_ckpt.py')
    try:
        obj = load_weights_only(path, 'cpu')
    except UnsafeCheckpointError as err:
        raise CheckpointRefusedError(str(err)) from None
    state = obj.get('state_dict', obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not state:
        raise CheckpointRefusedError(f"checkpoint '{path}' holds {type(obj).__name__} without a 'state_dict' of "
                                     'tensors; pass a checkpoint written by tools/train.py')
    bad = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if bad:
        raise CheckpointRefusedError(f"checkpoint '{path}' has non-tensor state_dict entries {bad[:_MAX_LISTED_KEYS]}; "
                                     'pass a checkpoint written by tools/train.py')
    state = {str(k): v for k, v in state.items()}
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


def _listed(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:_MAX_LISTED_KEYS])
    return shown + (f', ... ({len(keys) - _MAX_LISTED_KEYS} more)' if len(keys) > _MAX_LISTED_KEYS else '')


def match_state_dict(model: torch.nn.Module, state: Dict[str, Tensor], checkpoint: str,
                     config: str) -> Dict[str, Tensor]:
    """Check that ``state`` has exactly the keys and shapes of ``model`` (no partial loading).

    A bare generator state dict (keys without ``generator.``) is accepted when, prefixed, it matches.

    Args:
        model (nn.Module): The edit model built from the config.
        state (dict[str, Tensor]): From :func:`load_state_dict_safely`.
        checkpoint (str): Checkpoint path, for the message.
        config (str): Config path, for the message.

    Returns:
        dict[str, Tensor]: The state dict to load with ``strict=True``.

    Raises:
        CheckpointRefusedError: Missing, unexpected or mis-shaped keys, all named.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if not set(state) & set(expected) and any(k.startswith('generator.') for k in expected):
        prefixed = {f'generator.{k}': v for k, v in state.items()}
        if set(prefixed) == set(expected):
            state = prefixed
    found = compare_state_dicts(model.state_dict(), state)
    missing, unexpected, misshaped = (sorted(found[k]) for k in ('missing', 'unexpected', 'mis-shaped'))
    if not (missing or unexpected or misshaped):
        return state
    counts = ', '.join(f'{len(v)} {n}' for n, v in (('missing', missing), ('unexpected', unexpected),
                                                     ('mis-shaped', misshaped)) if v)
    lines = [f"checkpoint '{checkpoint}' does not match the model of config '{config}' ({counts} key(s)), so "
             'nothing was loaded or written; pass the checkpoint trained with this config (same architecture, '
             'size and scale) or the config it was trained with.']
    for name, keys in (('missing', missing), ('unexpected', unexpected), ('mis-shaped', misshaped)):
        if keys:
            lines.append(f'  {name} ({len(keys)}): {_listed(keys)}')
    if any(k.startswith(('head.', 'tail.')) for k in unexpected):
        lines.append('  hint: this looks like a released PANet / PA-EDSR file; convert it first with '
                     'tools/convert_official_ckpt.py.')
    elif misshaped and all('upsample' in k for k in misshaped):
        lines.append('  hint: only the up-sampler differs: the checkpoint was trained for another scale; use the '
                     'config of that scale.')
    raise CheckpointRefusedError('\n'.join(lines))


# --------------------------------------------------------------------------------------------------
# The model and one image


@dataclass(frozen=True)
class LoadSettings:
    """How the config loads the degraded input (its ``LoadImageFromFile``), and where that was found.

    Attributes:
        color_type (str): ``'color'``, ``'grayscale'`` or ``'unchanged'`` (mmcv's decode flag).
        channel_order (str): ``'rgb'`` or ``'bgr'`` (colour images as the model sees them).
        to_y_channel (bool): Whether the config converts colour images to their Y channel.
        source (str): The config entry the settings come from, e.g. ``'inference_pipeline'``.
        transform (dict): The transform config (with ``key='img'``).
        bayer_pattern (str, optional): The pattern of a ``BayerMosaic`` of ``img`` in the same pipeline
            (demosaicing configs): inputs are then Bayer data, see :meth:`Restorer.to_mosaic`. Default: None.
        bayer_channel_order (str): Channel order of that ``BayerMosaic`` (the loader's unless set). Default: 'rgb'.
    """

    color_type: str
    channel_order: str
    to_y_channel: bool
    source: str
    transform: Dict[str, Any] = field(compare=False)
    bayer_pattern: Optional[str] = None
    bayer_channel_order: str = 'rgb'


def _dataset_pipelines(node: Any, prefix: str) -> Iterator[Tuple[str, Any]]:
    """Pipelines of a dataloader / dataset config (lists of loaders, wrapped and concatenated datasets)."""
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _dataset_pipelines(item, f'{prefix}[{i}]')
    elif isinstance(node, dict):
        if 'pipeline' in node:
            yield f'{prefix}.pipeline', node['pipeline']
        if 'dataset' in node:
            yield from _dataset_pipelines(node['dataset'], f'{prefix}.dataset')
        if 'datasets' in node:
            yield from _dataset_pipelines(node['datasets'], f'{prefix}.datasets')


def find_load_settings(cfg: Any, config: str = '<config>') -> LoadSettings:
    """The config's loading of the degraded input image, as the inferencers and tests read it.

    Looks at ``inference_pipeline``, then the test and validation dataloaders' pipelines, then
    ``test_pipeline`` / ``val_pipeline``; in the first pipeline with a ``LoadImageFromFile`` it takes
    the one for ``key='img'``, else the one for ``'gt'`` (pipelines that synthesise the input from
    the ground truth: the user's image is then loaded like the ground truth, without the synthetic
    degradation). A ``BayerMosaic`` of ``img`` in that pipeline (demosaicing) is recorded: its pattern
    tells the restorer to give the model zero-filled Bayer mosaics.

    Args:
        cfg (Config): The loaded config.
        config (str): Config path, for the message.

    Returns:
        LoadSettings: The loading settings.

    Raises:
        RestoreError: No ``LoadImageFromFile`` anywhere.
    """
    candidates: List[Tuple[str, Any]] = [('inference_pipeline', cfg.get('inference_pipeline'))]
    for name in ('test_dataloader', 'val_dataloader'):
        candidates += list(_dataset_pipelines(cfg.get(name), name))
    candidates += [('test_pipeline', cfg.get('test_pipeline')), ('val_pipeline', cfg.get('val_pipeline'))]
    for source, pipeline in candidates:
        if not isinstance(pipeline, (list, tuple)):
            continue
        loaders = [t for t in pipeline if isinstance(t, dict) and t.get('type') in _LOADER_TYPES]
        for key in ('img', 'gt'):
            found = next((t for t in loaders if t.get('key') == key), None)
            if found is not None:
                transform = dict(copy.deepcopy(dict(found)), key='img')
                channel_order = str(found.get('channel_order', 'bgr')).lower()
                mosaic = next((t for t in pipeline if isinstance(t, dict)
                               and t.get('type') in ('BayerMosaic', 'mmagic.BayerMosaic')
                               and 'img' in ([t['keys']] if isinstance(t.get('keys'), str) else t.get('keys', []))),
                              None)
                pattern = None if mosaic is None else check_pattern(mosaic.get('pattern', 'GRBG'), source)
                return LoadSettings(color_type=str(found.get('color_type', 'color')), channel_order=channel_order,
                                    to_y_channel=bool(found.get('to_y_channel', False)),
                                    source=source, transform=transform, bayer_pattern=pattern,
                                    bayer_channel_order=str((mosaic or {}).get('channel_order') or channel_order))
    raise RestoreError(f"config '{config}' has no LoadImageFromFile in inference_pipeline or its test / val "
                       'pipelines; add inference_pipeline = [dict(type=\'LoadImageFromFile\', key=\'img\', ...), '
                       "dict(type='PackInputs')]")


def _native_info(data: bytes, path: str) -> Tuple[int, np.dtype]:
    """Channels (grey + alpha: 2) and dtype of the encoded image as stored; truncated or corrupt files raise.

    PIL checks files it knows (it notices truncated PNG / JPEG data, which OpenCV may decode into a
    partly grey image); OpenCV then decodes, which also covers formats PIL does not know.
    """
    from PIL import Image, UnidentifiedImageError
    mode = None
    try:  # the declared size was checked against the pixel limit (read_image): Pillow's own guard is off
        with pillow_checks(), Image.open(io.BytesIO(data)) as im:
            im.load()
            mode = im.mode
    except UnidentifiedImageError:
        pass  # not a PIL format: OpenCV decides below
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"'{path}' is truncated or corrupt ({_first_line(err)}); copy or export "
                             'the image again') from None
    native = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if native is None:
        raise ImageReadError(f"'{path}' is not an image OpenCV can decode; convert it to PNG")
    channels = 1 if native.ndim == 2 else int(native.shape[2])
    if channels == 4 and mode in ('LA', 'La'):
        channels = 2  # grey + alpha, which OpenCV decodes as 4 channels
    return channels, native.dtype


def _no_missing_gt_warning(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Cannot find key 'gt")


def _first_conv_in_channels(module: torch.nn.Module) -> Optional[int]:
    conv = next((m for m in module.modules() if isinstance(m, torch.nn.Conv2d)), None)
    return None if conv is None else int(conv.in_channels)


class Restorer:
    """A trained model ready to restore images, with the config's loading and pre-processing.

    Build it with :func:`build_restorer`.

    Args:
        model (nn.Module): The edit model (weights loaded, eval mode, on ``device``).
        load (LoadSettings): The config's loading of the input image.
        in_channels (int): Channels the generator takes (3 colour, 1 grey).
        device (str): Device of the model.
        config (str): Config path (for messages).
    """

    #: Images declaring more pixels are refused from their header, before decoding (None: the machine's
    #: default, :func:`panet_mm.datasets.image_io.default_max_pixels`); ``tools/restore.py --max-pixels``.
    max_pixels: Optional[int] = None

    def __init__(self, model: torch.nn.Module, load: LoadSettings, in_channels: int, device: str = 'cpu',
                 config: str = '<config>') -> None:
        from mmagic.registry import TRANSFORMS
        self.model = model
        self.load = load
        self.in_channels = int(in_channels)
        self.device = device
        self.config = config
        self._loader = TRANSFORMS.build(copy.deepcopy(load.transform))
        self._pack = TRANSFORMS.build(dict(type='PackInputs'))

    def attention_cost_note(self, height: int, width: int) -> Optional[str]:
        """A note when restoring a ``height x width`` input in one pass will be slow on CPU, else None.

        Whole-image pyramid attention costs multiply-adds quadratic in the pixels
        (``PyramidAttention.macs``, summed over the generator's blocks, x8 with self-ensemble). Above
        :data:`SLOW_ATTENTION_MACS` on CPU the note gives the cost, a rough time (at
        :data:`CPU_MACS_PER_THREAD` per torch thread) and the tiling options that bound it. Only for
        PANet / PA-EDSR generators (their attention runs at the input's resolution) in whole-image
        mode: chopped or tiled restorations are bounded already.

        Args:
            height (int): Input height.
            width (int): Input width.

        Returns:
            str, optional: The note.
        """
        from panet_mm.models.editors.panet.panet_net import PAEDSRNet, PANet
        from panet_mm.models.layers import PyramidAttention
        model = self.model
        generator = getattr(model, 'generator', model)
        if (not str(self.device).startswith('cpu') or not isinstance(generator, (PANet, PAEDSRNet))
                or getattr(model, 'chop_cfg', None) is not None or getattr(model, 'tile_cfg', None) is not None):
            return None
        macs = sum(m.macs(height, width) for m in generator.modules() if isinstance(m, PyramidAttention))
        macs *= 8 if getattr(model, 'self_ensemble', False) else 1
        if macs < SLOW_ATTENTION_MACS:
            return None
        seconds = macs / (CPU_MACS_PER_THREAD * max(torch.get_num_threads(), 1))
        eta = f'{seconds / 3600:.1f} h' if seconds >= 5400 else f'{seconds / 60:.0f} min'
        return (f'{width}x{height} in one pass: the pyramid attention alone needs about {macs:.1e} multiply-adds '
                f'(quadratic in the pixels; roughly {eta} with {torch.get_num_threads()} CPU threads); --tile 256 '
                '--tile-overlap 16 bounds it (the attention then sees each tile), or use --device cuda')

    def read_image(self, path: str) -> Tuple[np.ndarray, List[str]]:
        """Load ``path`` as the config loads test inputs, adapted to the model's channels.

        Args:
            path (str): Image file.

        Returns:
            tuple[np.ndarray, list[str]]: ``H x W x C`` image in the config's channel order, and notes
            on conversions done (grey to colour, colour to grey / Y, alpha dropped, 16 to 8 bits).

        Raises:
            ImageReadError: The file is missing, unreadable, truncated or not an image.
        """
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as err:
            raise ImageReadError(f"'{path}' cannot be read ({err.strerror or err}); check the file and its "
                                 'permissions') from None
        try:  # from the header, before anything decodes it (a decompression bomb is never decoded)
            check_image_file(data, self.max_pixels, '--max-pixels N', name=path)
        except ImageFileError as err:
            raise ImageReadError(str(err)) from None
        channels, dtype = _native_info(data, path)
        try:
            img = self._loader(dict(img_path=path))['img']
        except Exception as err:  # noqa: BLE001  (any decoder failure is one skipped file)
            raise ImageReadError(f"'{path}' cannot be decoded as the config loads images "
                                 f'({type(err).__name__}: {_first_line(err)}); convert it to PNG') from None
        if img is None:
            raise ImageReadError(f"'{path}' cannot be decoded as the config loads images; convert it to PNG")
        img = img[..., None] if img.ndim == 2 else img
        # Each conversion is decided once, from what the file holds (its channels and depth) to what the
        # model takes, and noted once: the loader's own grey-to-colour copy is undone first.
        notes = []
        if int(img.shape[2]) in (2, 4):  # a loader that keeps alpha ('unchanged')
            img = img[..., :-1]
        if channels in (2, 4):
            notes.append('alpha channel dropped (transparent pixels keep their stored colour)')
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
            notes.append(f'colour image converted to {how} by the config\'s loader ({self.load.source})')
        if self.load.bayer_pattern is not None:
            img, more = self.to_mosaic(img, raw=channels in (1, 2) or (img.shape[2] == 3 and is_gray(img)))
            notes += more
        img, more = self.adapt_channels(img)
        return img, notes + more

    def to_mosaic(self, img: np.ndarray, raw: Optional[bool] = None) -> Tuple[np.ndarray, List[str]]:
        """For a demosaicing config (``load.bayer_pattern``): the zero-filled 3-channel mosaic the model takes.

        * A 1-channel image (``raw``) is raw colour-filter-array data, one measurement per pixel with the
          config's pattern anchored at the top-left pixel: it is spread into the zero-filled mosaic
          (:func:`~panet_mm.datasets.transforms.bayer_mosaic`; a grey file read as 3 equal channels
          gives the same mosaic).
        * A 3-channel image that already is a zero-filled mosaic of that pattern passes unchanged.
        * Any other 3-channel image is a colour photo: it is mosaicked with the pattern (a simulation of
          the sensor, to try the model). A zero-filled mosaic of another Bayer pattern is refused.

        Other configs, and images with other channel counts, are returned unchanged.

        Args:
            img (np.ndarray): ``H x W`` or ``H x W x C`` image in the config's channel order.
            raw (bool, optional): Whether the file was a 1-channel image (it may have been read as 3
                equal channels). Default: None, i.e. whether ``img`` has 1 channel (2: with alpha).

        Returns:
            tuple[np.ndarray, list[str]]: The image and notes on what was done.

        Raises:
            RestoreError: The image is a zero-filled mosaic of another Bayer pattern.
        """
        pattern, order = self.load.bayer_pattern, self.load.bayer_channel_order
        img = img[..., None] if img.ndim == 2 else img
        if pattern is None:
            return img, []
        c = int(img.shape[2])
        if raw is None:
            raw = c in (1, 2)
        if c in (2, 4):
            img, c = img[..., :c - 1], c - 1
        if c not in (1, 3):
            return img, []
        where = f'{pattern[:2]} / {pattern[2:]} from the top-left pixel'
        if raw:
            what = '1-channel image' if c == 1 else 'grey image (3 equal channels)'
            return bayer_mosaic(img[..., :1], pattern, order), [
                f'{what} taken as raw {pattern} Bayer data ({where}) and expanded into the zero-filled '
                '3-channel mosaic the model takes']
        if is_bayer_mosaic(img, pattern, order):
            return img, []
        other = next((p for p in ('RGGB', 'BGGR', 'GRBG', 'GBRG') if p != pattern and is_bayer_mosaic(img, p, order)),
                     None)
        if other is not None:
            raise RestoreError(f'the image is a zero-filled {other} mosaic but the model of {self.config} takes '
                               f'{pattern} ({where}); crop it by one row and/or column to shift the pattern, or '
                               'pass a model trained for that pattern')
        return bayer_mosaic(img, pattern, order), [
            f'colour image mosaicked with the {pattern} Bayer pattern first (a simulation of the camera sensor, to '
            'try the model); to demosaic a real raw image, pass its colour filter array as a 1-channel image (e.g. '
            f'an 8-bit PNG / PGM, {where}) or a zero-filled 3-channel {pattern} mosaic']

    def adapt_channels(self, img: np.ndarray) -> Tuple[np.ndarray, List[str]]:
        """Give an image the generator's channel count.

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
            img, c = img[..., :c - 1], c - 1
            notes.append('alpha channel dropped')
        if c == 1 and self.in_channels == 3:
            img = np.repeat(img, 3, axis=2)
            notes.append('grey image converted to 3 channels for the colour model')
        elif c == 3 and self.in_channels == 1:
            # as GrayOrY (the grey / Y configs): grey stays grey, colour becomes MATLAB's BT.601 Y
            if is_gray(img):
                img = img[..., :1]
                notes.append('grey image stored as 3 equal channels taken as 1 channel for the 1-channel model')
            else:
                order = self.load.channel_order if self.load.channel_order in ('rgb', 'bgr') else 'rgb'
                if img.dtype == np.uint8:
                    img = gray_or_y(img, order)
                else:  # mmcv takes float images as 0-1
                    img = gray_or_y(img.astype(np.float32) / 255, order) * 255
                notes.append('colour image converted to its Y channel (ITU-R BT.601) for the 1-channel model')
        elif c != self.in_channels:
            raise RestoreError(f'the image has {c} channels but the model of {self.config} takes {self.in_channels}; '
                               'pass a colour (3-channel) or grey (1-channel) image')
        return np.ascontiguousarray(img), notes

    @torch.no_grad()
    def _predict(self, img: np.ndarray) -> Tensor:
        """Model output ``(C, H', W')``, 0-255, as mmagic's data pre-processor destructs it (BGR if colour)."""
        from mmengine.logging import MMLogger
        grey = img.ndim == 2 or img.shape[2] == 1  # mmagic's pre-processor must not reorder one channel
        results = dict(img=img, img_path='', ori_img_shape=img.shape,
                       img_channel_order='single' if grey else self.load.channel_order,
                       img_color_type='grayscale' if grey else 'color')
        packed = self._pack(results)
        logger = MMLogger.get_current_instance()
        logger.addFilter(_no_missing_gt_warning)  # a user's image has no ground truth; mmagic warns per image
        try:
            data = self.model.data_preprocessor(
                dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]), False)
        finally:
            logger.removeFilter(_no_missing_gt_warning)
        preds = self.model(**data, mode='predict')
        return preds[0].output.pred_img

    def restore_array(self, img: np.ndarray) -> np.ndarray:
        """Restore one image.

        Args:
            img (np.ndarray): ``H x W`` or ``H x W x C`` image, uint8, uint16 (0-65535) or float (0-255), colour in
                the config's channel order (``load.channel_order``; RGB for the shipped configs);
                channels are adapted as in :meth:`adapt_channels`. For demosaicing configs the image
                becomes a zero-filled Bayer mosaic first, as in :meth:`to_mosaic` (a 1-channel array is
                raw Bayer data, a colour one is mosaicked unless it already is a mosaic).

        Returns:
            np.ndarray: ``uint8`` ``H*s x W*s x C_out`` image (``s``: the model's scale), same channel order.

        Raises:
            RestoreError: Unsupported dtype or channel count, a mosaic of another Bayer pattern, or a model
                output with NaN / infinite values.
        """
        if img.dtype == np.uint16:  # 16-bit images (cv2.IMREAD_UNCHANGED of a 16-bit PNG): 0-65535 to 0-255
            img = img.astype(np.float32) / 257
        if img.dtype not in (np.uint8, np.float32, np.float64):
            raise RestoreError(f'restore_array takes uint8, uint16 or float images (float: values 0-255), got '
                               f'{img.dtype}; convert it first')
        if img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
            raise RestoreError(f'restore_array takes an H x W or H x W x C image, got shape {img.shape}')
        img, _ = self.to_mosaic(img.astype(np.float32) if img.dtype == np.float64 else img)
        img, _ = self.adapt_channels(img)
        pred = self._predict(img)
        if not bool(torch.isfinite(pred).all()):
            raise RestoreError(f"the model's output has NaN / infinite values ({int((~torch.isfinite(pred)).sum())} of "
                               f'{pred.numel()}), so nothing was written; the checkpoint or the device computation '
                               'is broken (try --device cpu, or an earlier checkpoint)')
        out = pred.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        if out.shape[2] == 3 and self.load.channel_order == 'rgb':
            out = out[..., ::-1]  # the pre-processor destructs colour outputs to BGR
        return np.ascontiguousarray(out)

    def to_bgr(self, img: np.ndarray) -> np.ndarray:
        """An output of :meth:`restore_array` in OpenCV's channel order, ready for ``cv2.imencode``."""
        if img.ndim == 3 and img.shape[2] == 3 and self.load.channel_order == 'rgb':
            return np.ascontiguousarray(img[..., ::-1])
        return img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img


def _check_device(device: Optional[str]) -> str:
    if device is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise RestoreError(f"device '{device}' was requested but torch sees no GPU; use --device cpu")
    if not device.startswith(('cpu', 'cuda')):
        raise RestoreError(f"device '{device}' is not supported; use cpu or cuda")
    return device


def build_restorer(config: str,
                   checkpoint: str,
                   device: Optional[str] = None,
                   chop: Optional[Dict[str, int]] = None,
                   tile: Optional[Dict[str, Any]] = None,
                   self_ensemble: bool = False,
                   precision: Optional[str] = None) -> Restorer:
    """Build the config's model with mmagic's registry and load ``checkpoint`` weights-only and strictly.

    The test-time mode is the one given here (whole image by default), not the config's: ``chop`` /
    ``tile`` / ``self_ensemble`` of the config's ``model.test_cfg`` are replaced, its other keys kept
    (``align``, ``min_input_size``). A demosaicing config (a ``BayerMosaic`` in its inference pipeline)
    gets ``align=2`` unless its ``test_cfg`` sets ``align``, so chop / tile keep the Bayer phase; the
    model then refuses ``self_ensemble`` (a flip or transpose changes the pattern).

    Args:
        config (str): Model config (e.g. ``configs/panet_sr_x2_div2k.py``).
        checkpoint (str): Checkpoint (``tools/train.py`` or ``tools/convert_official_ckpt.py`` output).
        device (str, optional): ``'cpu'`` or ``'cuda'``. Default: cuda if available, else cpu.
        chop (dict, optional): The released recursive chop, ``dict(min_size=6400, shave=10)``.
        tile (dict, optional): Fixed overlapping tiles, ``dict(size=128, overlap=16)``.
        self_ensemble (bool): Geometric x8 self-ensemble. Default: False.
        precision (str, optional): ``'fp32'``, ``'bf16'`` or ``'fp16'`` (autocast; the model's
            ``test_cfg`` ``precision``). Default: None (the config's, float32 unless it sets one).

    Returns:
        Restorer: The model in eval mode on ``device``.

    Raises:
        RestoreError: Missing config, unsupported options or device.
        ValueError: Test-time options the model refuses (e.g. ``self_ensemble`` for a demosaicing model).
        CheckpointRefusedError: The checkpoint is unsafe, unreadable, does not match the model or has NaN /
            infinite weights.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    if not osp.isfile(config):
        raise RestoreError(f"config '{config}' does not exist; pass a model config such as "
                           'configs/panet_sr_x2_div2k.py')
    if chop is not None and tile is not None:
        raise RestoreError('chop and tile were both requested; keep one of them')
    device = _check_device(device)
    cfg = Config.fromfile(config)  # imports custom_imports (panet_mm registers its modules)
    init_default_scope(cfg.get('default_scope', 'mmagic'))
    from mmagic.registry import MODELS

    import panet_mm  # noqa: F401  (registers PANetEditModel etc. even if the config lacks custom_imports)

    model_cfg = copy.deepcopy(cfg.model)
    options = {k: v for k, v in dict(chop=chop, tile=tile, self_ensemble=self_ensemble, precision=precision).items()
               if v}
    test_cfg = {k: v for k, v in dict(model_cfg.get('test_cfg') or {}).items()
                if k not in ('chop', 'tile', 'self_ensemble')}
    load = find_load_settings(cfg, config)
    if model_cfg.get('type') in ('PANetEditModel', 'mmagic.PANetEditModel'):
        test_cfg.update(options)
        if load.bayer_pattern is not None:
            test_cfg.setdefault('align', 2)  # tiles / chop quadrants at even offsets keep the Bayer phase
    elif options:
        raise RestoreError(f"config '{config}' builds {model_cfg.get('type')}, which has no {sorted(options)}; "
                           "use a config with model type='PANetEditModel' or drop those options")
    model_cfg['test_cfg'] = test_cfg
    model = MODELS.build(model_cfg)
    state = match_state_dict(model, load_state_dict_safely(checkpoint), checkpoint, config)
    bad = non_finite_keys(state)
    if bad:
        raise CheckpointRefusedError(non_finite_message(checkpoint, bad))
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    generator = getattr(model, 'generator', model)
    in_channels = model_cfg.get('generator', {}).get('in_channels') or _first_conv_in_channels(generator) or 3
    return Restorer(model, load, int(in_channels), device=device, config=config)


# --------------------------------------------------------------------------------------------------
# Files


@dataclass
class RestoreJob:
    """One image to restore.

    Attributes:
        src (str): Input file.
        dst (str): Output file.
        root (str): The output folder ``dst`` must stay in (the folder of ``dst`` for a file OUTPUT).
        error (str, optional): Why it cannot be restored (found while planning); reported, not run.
    """

    src: str
    dst: str
    root: str
    error: Optional[str] = None


@dataclass
class RestoreSummary:
    """What :func:`restore_files` did.

    Attributes:
        restored (list[str]): Outputs written.
        failed (list[tuple[str, str]]): ``(input, reason)`` of files skipped because of a problem.
        kept (list[str]): Existing outputs left alone (no ``overwrite``).
        notes (list[tuple[str, str]]): ``(input, note)`` about conversions (e.g. grey to colour).
        stopped (str, optional): Why the run stopped early (a full or read-only output disk); the
            images after it were not computed.
    """

    restored: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)
    notes: List[Tuple[str, str]] = field(default_factory=list)
    stopped: Optional[str] = None


def _inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it (both already normalised the same way)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _normalise_ext(ext: Optional[str]) -> Optional[str]:
    if ext is None:
        return None
    ext = ext if ext.startswith('.') else f'.{ext}'
    if not re.fullmatch(r'\.[A-Za-z0-9]{1,10}', ext) or not cv2.haveImageWriter(f'x{ext}'):
        raise RestoreError(f"--ext '{ext}' is not an image format OpenCV can write; use png, jpg, bmp, tif or webp")
    return ext


def _collect(folder: str, recursive: bool, exclude: Optional[str]) -> List[str]:
    """Image files in ``folder`` (sorted; symlinked folders not followed; ``exclude`` subtree skipped)."""
    found: List[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if exclude is None or osp.realpath(osp.join(dirpath, d)) != exclude)
        if not recursive:
            dirnames[:] = []
        for name in sorted(filenames):
            path = osp.join(dirpath, name)
            if osp.splitext(name)[1].lower() in IMAGE_EXTENSIONS and osp.isfile(path):
                found.append(path)
    return found


def plan_jobs(input_path: str, output_path: str, recursive: bool = False, suffix: str = '',
              ext: Optional[str] = None) -> List[RestoreJob]:
    """Input files and their output paths, refusing any plan that could touch an input or leave OUTPUT.

    A folder INPUT gives ``OUTPUT/<relative folder>/<stem><suffix><ext>`` for each image in it
    (sub-folders with ``recursive``; an OUTPUT inside INPUT is skipped). A file INPUT writes to OUTPUT
    itself when OUTPUT has an image extension, otherwise into the folder OUTPUT. ``ext`` defaults to
    the input's extension.

    Args:
        input_path (str): Image file or folder.
        output_path (str): Output file or folder.
        recursive (bool): Also restore images in sub-folders. Default: False.
        suffix (str): Added to each output stem, e.g. ``'_x2'``. Default: ''.
        ext (str, optional): Output format, e.g. ``'png'``. Default: keep the input's.

    Returns:
        list[RestoreJob]: One job per input image, sorted.

    Raises:
        RestoreError: Missing input, no images, OUTPUT equal to INPUT, an output resolving to an input
            file or outside OUTPUT (symlinks), a suffix with a path separator, two inputs with the same
            output, or a bad ``ext``.
    """
    if any(sep in suffix for sep in {'/', '\\', os.sep, '\0'}) or suffix in ('.', '..'):
        raise RestoreError(f"--suffix '{suffix}' would name a file outside OUTPUT (it contains a path separator); "
                           "use a plain suffix such as '_x2'")
    ext = _normalise_ext(ext)
    if not osp.exists(input_path):
        raise RestoreError(f"input '{input_path}' does not exist; pass an image file or a folder of images")
    in_real, out_real = osp.realpath(input_path), osp.realpath(output_path)
    if in_real == out_real:
        raise RestoreError(f"OUTPUT '{output_path}' is the input itself; choose another output, inputs are never "
                           'overwritten')
    jobs: List[RestoreJob] = []
    if osp.isdir(input_path):
        if osp.exists(output_path) and not osp.isdir(output_path):
            raise RestoreError(f"OUTPUT '{output_path}' is a file but INPUT '{input_path}' is a folder; pass an output "
                               'folder')
        exclude = out_real if _inside(out_real, in_real) else None
        sources = _collect(input_path, recursive, exclude)
        if not sources:
            raise RestoreError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in '{input_path}'"
                               + ('' if recursive else '; pass --recursive to include sub-folders'))
        for src in sources:
            rel_dir = osp.relpath(osp.dirname(src), input_path)
            stem, src_ext = osp.splitext(osp.basename(src))
            dst = osp.normpath(osp.join(output_path, rel_dir, stem + suffix + (ext or src_ext)))
            jobs.append(RestoreJob(src, dst, output_path))
    else:
        stem, src_ext = osp.splitext(osp.basename(input_path))
        as_folder = (osp.isdir(output_path) or output_path.endswith(('/', os.sep))
                     or osp.splitext(output_path)[1].lower() not in IMAGE_EXTENSIONS)
        if as_folder:
            jobs.append(RestoreJob(input_path, osp.join(output_path, stem + suffix + (ext or src_ext)), output_path))
        else:
            out_ext = osp.splitext(output_path)[1]
            if ext is not None and ext.lower() != out_ext.lower():
                raise RestoreError(f"--ext '{ext}' contradicts OUTPUT '{output_path}'; drop --ext or rename OUTPUT")
            if suffix:
                raise RestoreError(f"--suffix applies to outputs named after inputs, but OUTPUT '{output_path}' names "
                                   'the file; drop --suffix or pass an output folder')
            jobs.append(RestoreJob(input_path, output_path, osp.dirname(output_path) or '.'))
    _check_jobs(jobs, [j.src for j in jobs])
    return jobs


def _check_jobs(jobs: List[RestoreJob], sources: Sequence[str]) -> None:
    """Refuse outputs that resolve to an input file, leave their root, or collide; mark unwritable formats."""
    input_reals = {osp.realpath(s): s for s in sources}
    input_ids = {}
    for s in sources:
        st = os.stat(s)
        input_ids[(st.st_dev, st.st_ino)] = s
    seen: Dict[str, str] = {}
    for job in jobs:
        root_abs, dst_abs = osp.abspath(job.root), osp.abspath(job.dst)
        if not _inside(dst_abs, root_abs):
            raise RestoreError(f"output '{job.dst}' for '{job.src}' would be written outside OUTPUT '{job.root}'; "
                               'rename the input or choose another OUTPUT')
        root_real, dst_real = osp.realpath(job.root), osp.realpath(job.dst)
        if not _inside(osp.realpath(osp.dirname(job.dst)), root_real):
            raise RestoreError(f"output '{job.dst}' resolves to '{dst_real}', outside OUTPUT '{job.root}' (a symbolic "
                               'link leads out of it); remove the link or choose another OUTPUT')
        clash = input_reals.get(dst_real)
        if clash is None and osp.exists(job.dst):
            st = os.stat(job.dst)
            clash = input_ids.get((st.st_dev, st.st_ino))
        if clash is not None:
            raise RestoreError(f"output '{job.dst}' is the input file '{clash}'; inputs are never overwritten - choose "
                               'another OUTPUT or pass --suffix')
        if dst_real in seen:
            raise RestoreError(f"inputs '{seen[dst_real]}' and '{job.src}' would both be written to '{job.dst}'; "
                               'pass --suffix or keep the input extensions (drop --ext)')
        seen[dst_real] = job.src
        if not cv2.haveImageWriter(job.dst):
            kind = osp.splitext(job.dst)[1] or 'extension-less'
            job.error = f"OpenCV cannot write '{kind}' files such as '{job.dst}'; pass --ext png"


def write_image_atomic(path: str, img: np.ndarray, params: Optional[Sequence[int]] = None) -> None:
    """Encode ``img`` (OpenCV channel order) for ``path``'s extension and write it atomically.

    The bytes go to a temporary file in the same folder (``.<name>.<random>.tmp``), which is flushed,
    synced and renamed over ``path`` (``os.replace``): ``path`` is either its old self or complete, and
    no temporary file is left behind, even on errors or interrupts.

    Args:
        path (str): Output file; its folder is created.
        img (np.ndarray): ``H x W`` or ``H x W x C`` uint8 image, BGR if colour.
        params (sequence[int], optional): ``cv2.imencode`` parameters (e.g. JPEG quality).

    Raises:
        OSError: The file cannot be written.
        RestoreError: OpenCV cannot encode the image for that extension.
    """
    ok, buf = cv2.imencode(osp.splitext(path)[1], img, list(params or []))
    if not ok:
        raise RestoreError(f"OpenCV cannot encode a {img.shape} image as '{osp.splitext(path)[1]}' for '{path}'; "
                           'pass --ext png')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(buf.tobytes())
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the permissions a plain write would
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


#: Output bytes per pixel and channel assumed by :func:`check_output_room` (compressed formats: a
#: conservative guess, so that only a disk that surely cannot hold the results is refused).
_BYTES_PER_SAMPLE = {'.bmp': 1.0, '.dib': 1.0, '.ppm': 1.0, '.pgm': 1.0, '.pnm': 1.0, '.pbm': 1.0, '.jpg': 0.05,
                     '.jpeg': 0.05, '.jpe': 0.05}
_COMPRESSED_BYTES_PER_SAMPLE = 0.25
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def config_scale(config: str) -> int:
    """The up-scaling factor of a config's generator (``upscale_factor``, ``upscale`` or ``scale``; else 1)."""
    from mmengine.config import Config
    try:
        generator = Config.fromfile(config, import_custom_modules=False).model.get('generator', {})
    except Exception:  # noqa: BLE001  (build_restorer reports config problems properly)
        return 1
    for key in ('upscale_factor', 'upscale', 'scale'):
        if isinstance(generator.get(key), int):
            return int(generator[key])
    return 1


def _existing_folder(path: str) -> str:
    path = osp.abspath(path)
    while not osp.isdir(path) and osp.dirname(path) != path:
        path = osp.dirname(path)
    return path


def check_output_room(jobs: Sequence[RestoreJob], scale: int = 1, overwrite: bool = False) -> int:
    """Refuse outputs that cannot be written before any model is loaded: a read-only folder or too little space.

    Each output folder (its nearest existing parent) gets a probe file, created and removed. The space
    the results need is estimated from the inputs' headers (no pixel decoded): output pixels times
    channels times bytes per sample (1 for BMP / PNM, 0.25 for PNG, TIFF and WebP, 0.05 for JPEG).

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
    needed: Dict[str, int] = {}
    for job in jobs:
        if job.error or (osp.lexists(job.dst) and not overwrite):
            continue
        folder = _existing_folder(osp.dirname(job.dst) or '.')
        try:
            header = read_image_header(job.src)
        except (ImageFileError, OSError):
            header = None  # reported when the image is read
        per = _BYTES_PER_SAMPLE.get(osp.splitext(job.dst)[1].lower(), _COMPRESSED_BYTES_PER_SAMPLE)
        size = 0 if header is None else int(header.pixels * scale * scale * 3 * per)
        needed[folder] = needed.get(folder, 0) + size
    for folder, size in needed.items():
        try:
            fd, probe = tempfile.mkstemp(prefix='.restore-probe.', suffix='.tmp', dir=folder)
            os.close(fd)
            os.remove(probe)
        except OSError as err:
            raise RestoreError(f"output folder '{folder}' cannot be written ({err.strerror or err}); choose a writable "
                               'OUTPUT') from None
        free = shutil.disk_usage(folder).free
        if size > free:
            raise RestoreError(f"output folder '{folder}' has {free / 1e6:.0f} MB free but the results need about "
                               f'{size / 1e6:.0f} MB; free some space or choose another OUTPUT')
    return sum(needed.values())


def _default_log(message: str) -> None:
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


def restore_files(restorer: Restorer, jobs: Sequence[RestoreJob], overwrite: bool = False,
                  progress: Optional[bool] = None, log: Optional[Callable[[str], None]] = None) -> RestoreSummary:
    """Restore each job's input into its output, one image at a time, with a progress bar.

    Unreadable / truncated inputs and per-image errors are reported (one line each through ``log``)
    and skipped; the other images are restored. Existing outputs are kept unless ``overwrite``.

    Args:
        restorer (Restorer): From :func:`build_restorer`.
        jobs (sequence[RestoreJob]): From :func:`plan_jobs`.
        overwrite (bool): Replace existing outputs (inputs never). Default: False.
        progress (bool, optional): Show a tqdm bar; None: only on a terminal. Default: None.
        log (callable, optional): Receives each report line. Default: ``tqdm.write`` to stderr.

    Returns:
        RestoreSummary: Outputs written, failures, kept outputs and notes.
    """
    from tqdm import tqdm
    log = log or _default_log
    summary = RestoreSummary()
    bar = tqdm(jobs, desc='restoring', unit='img', file=sys.stderr, dynamic_ncols=True,
               disable=None if progress is None else not progress)
    for job in bar:
        if job.error:
            summary.failed.append((job.src, job.error))
            log(f"skipped '{job.src}': {job.error}")
            continue
        if osp.lexists(job.dst) and not overwrite:
            summary.kept.append(job.dst)
            continue
        try:
            img, notes = restorer.read_image(job.src)
            slow = restorer.attention_cost_note(*img.shape[:2])
            for note in notes + ([slow] if slow else []):
                summary.notes.append((job.src, note))
                log(f"note: '{job.src}': {note}")
            out = restorer.restore_array(img)
            os.makedirs(osp.dirname(osp.abspath(job.dst)), exist_ok=True)
            if not _inside(osp.realpath(osp.dirname(job.dst)), osp.realpath(job.root)):
                raise RestoreError(f"the folder of '{job.dst}' now leads outside OUTPUT '{job.root}' through a "
                                   'symbolic link; remove the link')
            write_image_atomic(job.dst, restorer.to_bgr(out))
        except ImageReadError as err:
            summary.failed.append((job.src, str(err)))
            log(f'skipped: {err}')
        except OSError as err:
            if err.errno in _DISK_FULL + _READ_ONLY:  # every later image would fail the same way: stop now
                where = err.filename or job.dst
                summary.stopped = (f"cannot write '{where}' ({err.strerror}); stopped before computing the other "
                                   f'{len(jobs) - jobs.index(job) - 1} image(s): '
                                   + ('free space on that disk' if err.errno in _DISK_FULL else
                                      'choose a writable OUTPUT') + ' and rerun (finished results are kept)')
                summary.failed.append((job.src, summary.stopped))
                break
            reason = f'{type(err).__name__}: {_first_line(err)}'
            summary.failed.append((job.src, reason))
            log(f"skipped '{job.src}': {reason}")
        except (ValueError, RuntimeError, cv2.error) as err:
            reason = f'{type(err).__name__}: {_first_line(err)}'
            summary.failed.append((job.src, reason))
            log(f"skipped '{job.src}': {reason}")
        else:
            summary.restored.append(job.dst)
    return summary


__all__ = ['CheckpointRefusedError', 'IMAGE_EXTENSIONS', 'ImageReadError', 'LoadSettings', 'RestoreError',
           'RestoreJob', 'RestoreSummary', 'Restorer', 'build_restorer', 'check_output_room', 'config_scale',
           'find_load_settings',
           'load_state_dict_safely', 'match_state_dict', 'plan_jobs', 'restore_files', 'write_image_atomic']
