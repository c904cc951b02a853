"""Convert the released PANet / PA-EDSR checkpoints to panet_mm (mmengine) checkpoints.

The released files are plain ``state_dict`` pickles of the reference models. Their layout:

* ``head.0.*``: first convolution (ours: ``conv_first``);
* ``body.N.body.0.*`` / ``body.N.body.2.*``: the two convolutions of ResBlock ``N`` (ours:
  ``body.N.conv1`` / ``body.N.conv2``); ``body.N.body.1.weight`` is PANet's PReLU slope, ONE
  parameter shared by all blocks, stored under every block's name or under some of them (ours: one
  copy per block, ``body.N.act.weight``); PA-EDSR's ResBlocks use a parameter-free ReLU;
* ``body.K`` (``K = num_blocks // 2``: 40 for PANet, 16 for PA-EDSR): the pyramid attention with
  ``conv_match_L_base`` / ``conv_match`` / ``conv_assembly`` (ours: ``query`` / ``key`` / ``value``),
  each ``.0`` = 1x1 conv and ``.1`` = PReLU, plus the buffer ``escape_NaN`` (a constant, dropped);
* ``body.<num_blocks + 1>.*``: the convolution closing the body (ours: ``conv_after_body``);
* tail: PANet ``tail.0`` = last conv (ours: ``conv_last``); PA-EDSR ``tail.0.0`` (and ``tail.0.2``
  at x4) = up-sampling conv(s) before each PixelShuffle (ours: ``upsample.J.upsample_conv``),
  ``tail.1`` = last conv;
* ``sub_mean.*`` / ``add_mean.*``: frozen mean-shift convs; PA-EDSR uses them (same names here),
  PANet builds them but never calls them, so they are ignored for PANet;
* ``msa.*`` (PA-EDSR only): the attention module registered a second time as an attribute, so every
  released PA-EDSR file holds the attention tensors twice (``msa.*`` and ``body.16.*``, one tensor
  object each). The twins are dropped when every one equals its ``body.K.*`` counterpart.

``tests/data/released/`` lists every key, shape and dtype of the six released networks.

Every key is checked against the ``state_dict`` of the target generator built with the paper's
hyper-parameters: a missing, unexpected or mis-shaped key refuses the whole conversion (the
reference loads by name with ``strict=False``, so a wrong model silently loads in part).
The reference code feeds the released models 0-1 data (``rgb_range 1``: the SR commands pass it,
the other tasks' ``option.py`` default to it); the file itself says which (``sub_mean.bias`` is
``-rgb_range x DIV2K mean``). panet_mm's configs work in 0-255 (``rgb_range=255``), so a 0-1 model is
converted exactly by scaling its first conv by ``1/255`` and its last conv (and PA-EDSR's mean-shift
biases) by 255: the features in between are unchanged.
"""
from __future__ import annotations

import hashlib
import os
import os.path as osp
import pickle
import re
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from panet_mm.version import __version__

from .panet_net import PAEDSRNet, PANet

CONVERTER_VERSION = '1.1'

#: Paper hyper-parameters of the released models.
ARCH_DEFAULTS: Dict[str, Dict[str, int]] = {
    'panet': dict(mid_channels=64, num_blocks=80, reduction=2),
    'paedsr': dict(mid_channels=256, num_blocks=32, reduction=8),
}

# Wrappers seen around released / re-saved state dicts, tried in this order.
_WRAPPER_KEYS = ('state_dict', 'model_state_dict', 'model', 'params_ema', 'params', 'net')
_PREFIXES = ('module.', 'model.')

_ATTENTION_NAMES = {'query': 'conv_match_L_base', 'key': 'conv_match', 'value': 'conv_assembly'}

#: The DIV2K mean the released mean shifts are built from (``common.MeanShift``).
_DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
#: Prefix of PA-EDSR's second registration of its attention module.
_TWIN_PREFIX = 'msa.'


class ConversionError(ValueError):
    """A released checkpoint cannot be converted; the message names the keys and the fix."""


def load_official_file(path: str) -> Dict[str, Tensor]:
    """Load a released checkpoint safely (tensors only) and unwrap it to a flat ``state_dict``.

    Args:
        path (str): The released ``.pt`` file.

    Returns:
        dict[str, Tensor]: The released state dict, wrappers and ``module.`` / ``model.`` prefixes removed.

    Raises:
        ConversionError: The file is missing, truncated, not a plain tensor checkpoint, or holds no
            state dict.
    """
    if not osp.isfile(path):
        raise ConversionError(f"source checkpoint '{path}' does not exist; pass the released .pt file")
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, UnicodeDecodeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConversionError(
            f"'{path}' is not a plain tensor checkpoint that torch.load(weights_only=True) can read "
            f'({type(err).__name__}: {first}); it is truncated, corrupted or pickles other objects - '
            'download the released file again (arbitrary pickles are never unpickled)') from err
    return unwrap_state_dict(obj, source=path)


def unwrap_state_dict(obj: Any, source: str = '<object>') -> Dict[str, Tensor]:
    """Find the tensor state dict inside a loaded checkpoint.

    Handles ``{'state_dict': ...}``-style wrappers (also ``model``, ``params``, ``net``...) and the
    ``module.`` (DataParallel) / ``model.`` prefixes when every key carries them.

    Args:
        obj: What ``torch.load`` returned.
        source (str): File name used in error messages.

    Returns:
        dict[str, Tensor]: Flat state dict.

    Raises:
        ConversionError: No dict of tensors found.
    """
    for _ in range(4):  # wrappers nest at most a few levels deep
        if not isinstance(obj, dict):
            break
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not obj:
        raise ConversionError(f"'{source}' holds {type(obj).__name__}, not a state dict of tensors; "
                              'pass the released PANet / PA-EDSR .pt file')
    bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
    if bad:
        raise ConversionError(f"'{source}' has non-tensor entries {bad}; pass a plain state dict "
                              '(the released .pt file) or unwrap it first')
    state = {str(k): v for k, v in obj.items()}
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped = True
    return state


def generator_config(arch: str, scale: int = 1, colors: int = 3, mid_channels: Optional[int] = None,
                     num_blocks: Optional[int] = None, reduction: Optional[int] = None) -> Dict[str, Any]:
    """The mmagic generator config matching a released checkpoint (use it in the model config).

    Args:
        arch (str): ``'panet'`` or ``'paedsr'``.
        scale (int): Up-scaling factor (PA-EDSR: 2, 3 or 4; PANet: 1).
        colors (int): Image channels (PANet: 3 or 1; PA-EDSR: 3).
        mid_channels (int, optional): Feature channels. Default: paper value.
        num_blocks (int, optional): Number of ResBlocks. Default: paper value.
        reduction (int, optional): Attention channel reduction. Default: paper value.

    Returns:
        dict: ``dict(type='PANet' | 'PAEDSRNet', ...)`` with ``rgb_range=255``.
    """
    if arch not in ARCH_DEFAULTS:
        raise ConversionError(f"unknown arch {arch!r}; use 'panet' (denoise / demosaic / JPEG) or 'paedsr' (SR)")
    d = ARCH_DEFAULTS[arch]
    mid = d['mid_channels'] if mid_channels is None else int(mid_channels)
    blocks = d['num_blocks'] if num_blocks is None else int(num_blocks)
    red = d['reduction'] if reduction is None else int(reduction)
    if arch == 'panet':
        if scale != 1:
            raise ConversionError(f'--scale {scale} was given for --arch panet, which has no up-sampler; '
                                  'drop --scale or use --arch paedsr for super-resolution')
        if colors not in (1, 3):
            raise ConversionError(f'--colors {colors} is not supported; PANet models have 3 (colour) or 1 (grey)')
        return dict(type='PANet', in_channels=colors, out_channels=colors, mid_channels=mid, num_blocks=blocks,
                    res_scale=1.0, rgb_range=255, attention_cfg=dict(reduction=red))
    if colors != 3:
        raise ConversionError(f'--colors {colors} was given for --arch paedsr; the released PA-EDSR models '
                              'are RGB only, drop --colors')
    if scale not in (2, 3) and (scale < 2 or scale & (scale - 1)):
        raise ConversionError(f'--scale {scale} is not supported by PA-EDSR; use 2, 3 or 4')
    return dict(type='PAEDSRNet', in_channels=3, out_channels=3, mid_channels=mid, num_blocks=blocks,
                upscale_factor=scale, res_scale=0.1, rgb_range=255,
                attention_cfg=dict(reduction=red, res_scale=0.1))


def build_generator(cfg: Dict[str, Any], device: str = 'cpu') -> nn.Module:
    """Build :class:`PANet` / :class:`PAEDSRNet` from :func:`generator_config` output."""
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    cls = PANet if cfg['type'] == 'PANet' else PAEDSRNet
    with torch.device(device):
        return cls(**kwargs)


def _target_shapes(cfg: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    """Shapes of the target generator's state dict, built on the meta device (no memory, no init cost)."""
    try:
        net = build_generator(cfg, device='meta')
    except (RuntimeError, NotImplementedError, TypeError):
        net = build_generator(cfg)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def official_name(key: str, arch: str, num_blocks: int) -> Optional[str]:
    """Released name of one of our generator keys (``None`` for PANet's per-block PReLU slopes).

    Args:
        key (str): Key of our generator's state dict, e.g. ``'body.3.conv1.weight'``.
        arch (str): ``'panet'`` or ``'paedsr'``.
        num_blocks (int): Number of ResBlocks.

    Returns:
        str or None: e.g. ``'body.3.body.0.weight'``.
    """
    att = num_blocks // 2
    rules = [
        (r'conv_first\.(\w+)$', r'head.0.\1'),
        (r'body\.(\d+)\.conv1\.(\w+)$', r'body.\1.body.0.\2'),
        (r'body\.(\d+)\.conv2\.(\w+)$', r'body.\1.body.2.\2'),
        (rf'body\.{att}\.(query|key|value)\.([01])\.(\w+)$',
         lambda m: f'body.{att}.{_ATTENTION_NAMES[m.group(1)]}.{m.group(2)}.{m.group(3)}'),
        (r'conv_after_body\.(\w+)$', rf'body.{num_blocks + 1}.\1'),
        (r'upsample\.(\d+)\.upsample_conv\.(\w+)$', lambda m: f'tail.0.{2 * int(m.group(1))}.{m.group(2)}'),
        (r'conv_last\.(\w+)$', r'tail.0.\1' if arch == 'panet' else r'tail.1.\1'),
        (r'(sub_mean|add_mean)\.(\w+)$', r'\1.\2'),
    ]
    if re.fullmatch(r'body\.\d+\.act\.weight', key):
        return None
    for pattern, repl in rules:
        m = re.fullmatch(pattern, key)
        if m:
            return repl(m) if callable(repl) else m.expand(repl)
    raise KeyError(f'no released name known for {key!r}')


def _detected_depth(state: Dict[str, Tensor]) -> Optional[int]:
    idx = {int(m.group(1)) for k in state for m in [re.fullmatch(r'body\.(\d+)\.body\.0\.weight', k)] if m}
    return len(idx) if idx else None


def infer_scale(state: Dict[str, Tensor], mid_channels: Optional[int] = None) -> Optional[int]:
    """Up-scaling factor of a released PA-EDSR state dict from its tail (``None`` if unclear).

    Args:
        state (dict[str, Tensor]): Released state dict.
        mid_channels (int, optional): Feature channels; default: the up-sampling conv's input channels.

    Returns:
        int or None: 2, 3, 4 (or 2^n), read from ``tail.0.0.weight`` and the number of ``tail.0.N`` convs.
    """
    stages = sorted(int(m.group(1)) for k in state for m in [re.fullmatch(r'tail\.0\.(\d+)\.weight', k)] if m)
    first = state.get('tail.0.0.weight')
    if not stages or first is None or first.dim() != 4:
        return None
    ratio = first.shape[0] / (first.shape[1] if mid_channels is None else mid_channels)
    if ratio == 9 and len(stages) == 1:
        return 3
    if ratio == 4:
        return 2 ** len(stages)
    return None


def infer_arch(state: Dict[str, Tensor]) -> Tuple[Optional[str], List[str]]:
    """Which released network a state dict comes from, and the keys that say so.

    Args:
        state (dict[str, Tensor]): Released state dict.

    Returns:
        tuple[str or None, list[str]]: ``'paedsr'`` (keys ``tail.1.*``, ``tail.0.0.*`` or ``msa.*``),
        ``'panet'`` (``tail.0.weight``), or ``None`` when the keys say neither or both; and the evidence.
    """
    paedsr = [k for k in ('tail.1.weight', 'tail.0.0.weight') if k in state]
    if any(k.startswith(_TWIN_PREFIX) for k in state):
        paedsr.append(_TWIN_PREFIX + '*')
    panet = [k for k in ('tail.0.weight',) if k in state]
    if paedsr and not panet:
        return 'paedsr', paedsr
    if panet and not paedsr:
        return 'panet', panet
    return None, paedsr + panet


def _mean_shift_range(state: Dict[str, Tensor], name: str, sign: int) -> Optional[float]:
    """``rgb_range`` of a released mean shift ``name`` (bias ``sign * rgb_range * mean / std``,
    weight ``eye / std``); ``None`` when the tensors are absent or not of that form."""
    w, b = state.get(f'{name}.weight'), state.get(f'{name}.bias')
    if w is None or b is None or tuple(w.shape) != (3, 3, 1, 1) or tuple(b.shape) != (3, ):
        return None
    w = w.detach().double().view(3, 3)
    diag = torch.diagonal(w)
    if (diag <= 0).any() or not torch.allclose(w, torch.diag(diag), rtol=0, atol=1e-6):
        return None
    ranges = sign * b.detach().double() / (diag * torch.tensor(_DIV2K_MEAN, dtype=torch.float64))
    if (ranges <= 0).any() or float(ranges.max() - ranges.min()) > 1e-4 * float(ranges.mean()):
        return None
    value = float(ranges.mean())
    return float(round(value)) if abs(value - round(value)) <= 1e-4 * value else value


def infer_source_rgb_range(state: Dict[str, Tensor]) -> Optional[float]:
    """The ``rgb_range`` a released model was built with (1 or 255), read from its ``sub_mean``.

    Every released file stores ``sub_mean`` (PANet builds it without using it), whose bias is
    ``-rgb_range x DIV2K mean``.

    Args:
        state (dict[str, Tensor]): Released state dict.

    Returns:
        float or None: The range, or ``None`` when ``sub_mean`` is absent or not a DIV2K mean shift.
    """
    return _mean_shift_range(state, 'sub_mean', -1)


def _nonfinite_keys(state: Dict[str, Tensor]) -> List[str]:
    return sorted(k for k, v in state.items()
                  if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all()))


def _drop_twins(state: Dict[str, Tensor], source: str) -> Tuple[Dict[str, Tensor], List[str]]:
    """Remove the ``msa.*`` second registration of PA-EDSR's attention after checking every twin.

    A twin is ``body.K.<rest>`` for ``msa.<rest>``, ``K`` being the body index holding the attention
    in the file. A ``msa.*`` key without a twin stays (and is reported as unexpected).
    """
    twins = [k for k in state if k.startswith(_TWIN_PREFIX)]
    if not twins:
        return state, []
    att = sorted({m.group(1) for k in state for m in [re.fullmatch(r'body\.(\d+)\.conv_match_L_base\..*', k)] if m})
    if len(att) != 1:
        return state, []
    prefix = f'body.{att[0]}.'
    differ, dropped = [], []
    for key in twins:
        twin = prefix + key[len(_TWIN_PREFIX):]
        if twin not in state:
            continue
        a, b = state[key], state[twin]
        if a.shape != b.shape or a.dtype != b.dtype or not torch.equal(a, b):
            differ.append(key)
        else:
            dropped.append(key)
    if differ:
        pairs = ', '.join(f'{k} != {prefix}{k[len(_TWIN_PREFIX):]}' for k in sorted(differ))
        raise ConversionError(
            f"'{source}' stores the attention twice (msa.* and {prefix}*, one module in the released PA-EDSR) "
            f'but {len(differ)} twin(s) differ ({pairs}), so it is not a state_dict() of the released model '
            f'and the weights to use are ambiguous; nothing was written - use the released file, or delete '
            f'the msa.* or {prefix}* copies you do not want')
    return {k: v for k, v in state.items() if k not in dropped}, sorted(dropped)


def convert_state_dict(state: Dict[str, Tensor],
                       arch: Optional[str] = None,
                       scale: Optional[int] = None,
                       colors: Optional[int] = None,
                       mid_channels: Optional[int] = None,
                       num_blocks: Optional[int] = None,
                       reduction: Optional[int] = None,
                       source: str = '<state dict>',
                       source_rgb_range: Optional[float] = None) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """Rename a released state dict to our generator's names, checking every key, shape and value.

    Args:
        state (dict[str, Tensor]): Released state dict (see :func:`load_official_file`).
        arch (str, optional): ``'panet'`` or ``'paedsr'``; inferred from the keys when ``None``
            (a given value the keys contradict is refused).
        scale (int, optional): PA-EDSR up-scaling factor; inferred from the tail when ``None``.
            PANet: must be ``None`` or 1.
        colors (int, optional): Image channels; inferred from ``head.0.weight`` when ``None``.
        mid_channels (int, optional): Feature channels (paper value by default; for small test models).
        num_blocks (int, optional): Number of ResBlocks (paper value by default).
        reduction (int, optional): Attention reduction (paper value by default).
        source (str): Name of the source, for messages.
        source_rgb_range (float, optional): Data range the released model was trained on (1 or 255);
            read from ``sub_mean.bias`` when ``None``. Needed only for a file without a released mean shift.

    Returns:
        tuple[dict, dict]: Our generator's state dict (keys without ``generator.``) and an info dict
        with ``generator_cfg``, ``arch``, ``scale``, ``colors``, ``source_rgb_range``, ``inferred``
        and ``notes`` (lists of strings for the user) and ``ignored`` (released keys deliberately dropped).

    Raises:
        ConversionError: Non-finite weights; a flag the file contradicts; ``msa.*`` twins or shared
            PReLU copies that differ; keys missing, unexpected or mis-shaped (all of them listed, grouped).
    """
    bad = _nonfinite_keys(state)
    if bad:
        shown = ', '.join(bad[:8]) + (f' and {len(bad) - 8} more' if len(bad) > 8 else '')
        raise ConversionError(f"'{source}' holds NaN or Inf weights in {len(bad)} tensor(s) ({shown}); the file is "
                              'corrupted or comes from a diverged run - download the released file again '
                              '(nothing was written)')
    inferred: List[str] = []
    file_arch, evidence = infer_arch(state)
    if arch is None:
        if file_arch is None:
            raise ConversionError(
                f"cannot tell from the keys of '{source}' whether it is a PANet or a PA-EDSR "
                f"({', '.join(evidence) if evidence else 'no tail.0.weight, tail.1.weight or msa.* key'}); pass "
                '--arch panet (denoise / demosaic / JPEG) or --arch paedsr (SR)'
                + (', or use an already converted panet_mm checkpoint directly'
                   if any(k.startswith('generator.') for k in state) else ''))
        arch = file_arch
        inferred.append(f"arch {arch} (keys {', '.join(evidence)})")
    elif arch in ARCH_DEFAULTS and file_arch is not None and arch != file_arch:
        raise ConversionError(f"--arch {arch} contradicts '{source}', whose keys ({', '.join(evidence)}) are those "
                              f'of a {file_arch}; drop --arch (it is inferred) or pass the file you meant')
    if arch not in ARCH_DEFAULTS:
        raise ConversionError(f"unknown arch {arch!r}; use 'panet' (denoise / demosaic / JPEG) or 'paedsr' (SR)")
    d = ARCH_DEFAULTS[arch]
    mid = d['mid_channels'] if mid_channels is None else int(mid_channels)
    blocks = d['num_blocks'] if num_blocks is None else int(num_blocks)

    head = state.get('head.0.weight')
    file_colors = int(head.shape[1]) if head is not None and head.dim() == 4 else None
    if colors is None:
        colors = 3 if file_colors is None else file_colors
        if file_colors is not None:
            inferred.append(f'{colors} colour channel(s) (head.0.weight {tuple(head.shape)})')
    elif file_colors is not None and int(colors) != file_colors:
        raise ConversionError(f"--colors {colors} contradicts '{source}', whose head.0.weight {tuple(head.shape)} "
                              f'takes {file_colors} channel(s); drop --colors (it is inferred)')

    scale_given = scale is not None
    if arch == 'panet':
        scale = 1 if scale is None else int(scale)
    else:
        file_scale = infer_scale(state)
        if scale is None:
            if file_scale is None:
                raise ConversionError(f"cannot infer the scale of '{source}' from its tail.0.* keys; "
                                      'pass --scale 2, 3 or 4')
            scale = file_scale
            convs = sum(1 for k in state if re.fullmatch(r'tail\.0\.\d+\.weight', k))
            inferred.append(f"scale x{scale} (tail.0.0.weight {tuple(state['tail.0.0.weight'].shape)}, "
                            f'{convs} up-sampling conv(s))')
        elif file_scale is not None and int(scale) != file_scale:
            raise ConversionError(f"--scale {scale} contradicts '{source}', whose up-sampler (tail.0.0.weight "
                                  f"{tuple(state['tail.0.0.weight'].shape)}) is x{file_scale}; drop --scale "
                                  '(it is inferred) or pass the file of that scale')
    cfg = generator_config(arch, scale, colors, mid, blocks, reduction)
    target_range = float(cfg['rgb_range'])

    file_range = infer_source_rgb_range(state)
    if source_rgb_range is None:
        if file_range is None:
            raise ConversionError(
                f"cannot tell the data range '{source}' was trained on: it has no released sub_mean "
                '(bias = -rgb_range x DIV2K mean); pass --source-rgb-range 1 (what the reference code uses for '
                'every released model) or 255')
        source_rgb_range = file_range
        inferred.append(f'trained on rgb_range {file_range:g} (sub_mean.bias)')
    elif file_range is not None and abs(float(source_rgb_range) - file_range) > 1e-3 * file_range:
        raise ConversionError(f"--source-rgb-range {source_rgb_range:g} contradicts '{source}', whose sub_mean.bias "
                              f'says rgb_range {file_range:g}; drop --source-rgb-range (it is inferred)')
    source_rgb_range = float(source_rgb_range)
    if source_rgb_range <= 0:
        raise ConversionError(f'--source-rgb-range {source_rgb_range:g} must be positive (1 or 255)')
    if arch == 'paedsr':
        add_range = _mean_shift_range(state, 'add_mean', 1)
        if file_range is not None and add_range is not None and abs(add_range - file_range) > 1e-3 * file_range:
            raise ConversionError(f"'{source}': add_mean.bias says rgb_range {add_range:g} but sub_mean.bias says "
                                  f'{file_range:g}; the mean shifts of a released PA-EDSR agree, so the file was '
                                  'edited - use the released file')

    state, twins = _drop_twins(state, source)
    shapes = _target_shapes(cfg)

    expected: Dict[str, str] = {}  # released name -> our name
    act_keys: List[str] = []
    for key in shapes:
        name = official_name(key, arch, blocks)
        if name is None:
            act_keys.append(key)
        else:
            expected[name] = key

    att = blocks // 2
    out: Dict[str, Tensor] = {}
    missing: List[str] = []
    unexpected: List[str] = []
    misshaped: List[str] = []
    ignored: List[str] = []
    slopes: Dict[str, Tensor] = {}
    act_src = {f'body.{k.split(".")[1]}.body.1.weight' for k in act_keys}
    for name, value in state.items():
        if name in expected:
            ours = expected[name]
            if tuple(value.shape) != shapes[ours]:
                misshaped.append(f'{name} {tuple(value.shape)} (expected {shapes[ours]} for {ours})')
            else:
                out[ours] = value
        elif name in act_src:
            slopes[name] = value
        elif name == f'body.{att}.escape_NaN' or (arch == 'panet' and name.split('.')[0] in ('sub_mean', 'add_mean')):
            ignored.append(name)
        else:
            unexpected.append(name)
    missing = [name for name in expected if name not in state]

    notes: List[str] = []
    if act_keys:
        if not slopes:
            missing.append('body.N.body.1.weight (the shared PReLU slope, under at least one ResBlock name)')
        else:
            shape_expected = shapes[act_keys[0]]
            bad_shape = [f'{n} {tuple(v.shape)} (expected {shape_expected})' for n, v in slopes.items()
                         if tuple(v.shape) != shape_expected]
            misshaped += bad_shape
            if not bad_shape:
                first_name, first = next(iter(slopes.items()))
                differ = [n for n, v in slopes.items() if not torch.equal(v, first)]
                if differ:
                    raise ConversionError(
                        f"'{source}': the PReLU slopes {sorted(differ)} differ from {first_name}, but the released "
                        'PANet shares ONE slope across all ResBlocks; this is not a released PANet checkpoint '
                        '(or it was fine-tuned with separate slopes) - it cannot be converted safely')
                for key in act_keys:
                    out[key] = first.clone()
                notes.append(f'PANet shared PReLU slope found under {len(slopes)} of {len(act_keys)} ResBlock '
                             f'names; copied into all {len(act_keys)} blocks')

    if missing or unexpected or misshaped:
        raise ConversionError(_problem_report(source, arch, scale, colors, mid, blocks, scale_given,
                                              missing, unexpected, misshaped, _detected_depth(state)))
    if arch == 'panet':
        if any(n.split('.')[0] in ('sub_mean', 'add_mean') for n in ignored):
            notes.append('released sub_mean / add_mean ignored: PANet builds them but never uses them')
        notes.append(f'the model config must use generator rgb_range={target_range:g} (PANet defaults to 1), '
                     "as panet_mm's PANet configs do")
    if twins:
        ignored += twins
        notes.append(f'{len(twins)} msa.* key(s) dropped: the released PA-EDSR registers its attention twice, and '
                     'each equals its body twin')
    if source_rgb_range != target_range:
        _rescale_range(out, arch, source_rgb_range, target_range)
        notes.append(f'the released model works on 0-{source_rgb_range:g} data; conv_first was scaled by '
                     f'{source_rgb_range:g}/{target_range:g} and conv_last'
                     + (' and the mean-shift biases' if arch == 'paedsr' else '')
                     + f' by {target_range:g}/{source_rgb_range:g}, so it runs at rgb_range={target_range:g} '
                     'with the same features (exact up to float rounding)')
    info = dict(generator_cfg=cfg, arch=arch, scale=scale, colors=colors, source_rgb_range=source_rgb_range,
                inferred=inferred, notes=notes, ignored=sorted(ignored))
    return out, info


def _rescale_range(out: Dict[str, Tensor], arch: str, source: float, target: float) -> None:
    """Make a model trained at ``rgb_range=source`` compute the same features at ``rgb_range=target``.

    Only the first conv sees the input scale and only the last conv (and PA-EDSR's mean shifts) make
    the output scale, so rescaling them is exact; done in float64, stored in the original dtype.
    """
    factors = {'conv_first.weight': source / target, 'conv_last.weight': target / source,
               'conv_last.bias': target / source}
    if arch == 'paedsr':
        factors.update({'sub_mean.bias': target / source, 'add_mean.bias': target / source})
    for key, factor in factors.items():
        value = out[key]
        out[key] = (value.detach().double() * factor).to(value.dtype)


def _problem_report(source: str, arch: str, scale: int, colors: int, mid: int, blocks: int, scale_given: bool,
                    missing: List[str], unexpected: List[str], misshaped: List[str],
                    depth: Optional[int]) -> str:
    counts = ', '.join(f'{len(v)} {n}' for n, v in (('missing', missing), ('unexpected', unexpected),
                                                     ('mis-shaped', misshaped)) if v)
    lines = [f"'{source}' does not match --arch {arch} (scale {scale}, {colors} colours, {mid} channels, "
             f'{blocks} ResBlocks): {counts} key(s); nothing was written - check --arch / --scale / --colors '
             'against the released file name.']
    if missing:
        lines.append(f'  missing ({len(missing)}): ' + ', '.join(missing))
    if unexpected:
        lines.append(f'  unexpected ({len(unexpected)}): ' + ', '.join(sorted(unexpected)))
    if misshaped:
        lines.append(f'  mis-shaped ({len(misshaped)}): ' + '; '.join(misshaped))
    if depth is not None and depth != blocks:
        lines.append(f'  hint: the file has {depth} ResBlocks, the target {blocks}.')
    if arch == 'paedsr' and scale_given and any(k.startswith('tail.') for k in missing + misshaped + unexpected):
        lines.append('  hint: the tail does not match --scale; the file name of a released model says its scale.')
    if arch == 'panet' and 'tail.1.weight' in unexpected:
        lines.append('  hint: the file looks like a PA-EDSR (super-resolution) checkpoint; try --arch paedsr.')
    if arch == 'paedsr' and 'tail.0.weight' in unexpected:
        lines.append('  hint: the file looks like a PANet (denoising / demosaicing / JPEG) checkpoint; '
                     'try --arch panet.')
    if any(k.startswith('generator.') for k in unexpected):
        lines.append('  hint: this looks like an already converted panet_mm checkpoint; use it directly.')
    return '\n'.join(lines)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint_atomic(checkpoint: Dict[str, Any], dst: str) -> None:
    """``torch.save`` to a temporary file next to ``dst``, then ``os.replace`` it into place."""
    folder = osp.dirname(osp.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(dst)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions a plain save would
        os.replace(tmp, dst)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def convert_official_checkpoint(src: str,
                                dst: str,
                                arch: Optional[str] = None,
                                scale: Optional[int] = None,
                                colors: Optional[int] = None,
                                mid_channels: Optional[int] = None,
                                num_blocks: Optional[int] = None,
                                reduction: Optional[int] = None,
                                source_rgb_range: Optional[float] = None) -> Dict[str, Any]:
    """Convert a released ``.pt`` file to an mmengine checkpoint loadable by ``tools/test.py``.

    The output is ``{'meta': {...}, 'state_dict': {'generator.<key>': tensor}}``, written atomically;
    nothing is written when any check fails.

    Args:
        src (str): Released checkpoint (never modified).
        dst (str): Output ``.pth`` path; must differ from ``src``.
        arch (str, optional): ``'panet'`` or ``'paedsr'``; inferred from the keys when ``None``.
        scale (int, optional): PA-EDSR scale (inferred when ``None``); PANet: ``None`` or 1.
        colors (int, optional): 3 or 1 (PANet JPEG models); inferred when ``None``.
        mid_channels (int, optional): Feature channels override (paper value by default).
        num_blocks (int, optional): ResBlock count override (paper value by default).
        reduction (int, optional): Attention reduction override (paper value by default).
        source_rgb_range (float, optional): Data range of the released model; read from the file when ``None``.

    Returns:
        dict: The ``meta`` written (with ``inferred`` and ``notes`` for the user).

    Raises:
        ConversionError: Same file, unreadable source, non-finite weights, a flag the file contradicts,
            differing twins, or key / shape mismatches.
    """
    if osp.abspath(src) == osp.abspath(dst) or (osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst)):
        raise ConversionError(f"destination '{dst}' is the source file; choose another path, the released "
                              'checkpoint is never overwritten')
    state = load_official_file(src)
    converted, info = convert_state_dict(state, arch, scale=scale, colors=colors, mid_channels=mid_channels,
                                         num_blocks=num_blocks, reduction=reduction, source=src,
                                         source_rgb_range=source_rgb_range)
    meta = dict(arch=info['arch'], scale=info['scale'], colors=info['colors'], generator_cfg=info['generator_cfg'],
                source=osp.basename(src), source_sha256=_sha256(src), converter='panet_mm.official',
                converter_version=CONVERTER_VERSION, panet_mm_version=__version__,
                source_rgb_range=info['source_rgb_range'], inferred=info['inferred'], notes=info['notes'],
                ignored_keys=info['ignored'])
    checkpoint = dict(meta=meta, state_dict={f'generator.{k}': v.detach().clone().contiguous()
                                             for k, v in converted.items()})
    save_checkpoint_atomic(checkpoint, dst)
    return meta


__all__ = ['ARCH_DEFAULTS', 'CONVERTER_VERSION', 'ConversionError', 'convert_official_checkpoint',
           'convert_state_dict', 'generator_config', 'infer_arch', 'infer_scale', 'infer_source_rgb_range',
           'load_official_file', 'official_name', 'save_checkpoint_atomic', 'unwrap_state_dict']
