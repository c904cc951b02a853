"""The layout of the released PANet / PA-EDSR checkpoints and the generators they map onto.

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
  object each).

``tests/data/released/`` lists every key, shape and dtype of the six released networks.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from panet_mm.utils.errors import PanetMMError, ParameterError

from .panet_net import PAEDSRNet, PANet

#: Paper hyper-parameters of the released models.
ARCH_DEFAULTS: Dict[str, Dict[str, int]] = {
    'panet': dict(mid_channels=64, num_blocks=80, reduction=2),
    'paedsr': dict(mid_channels=256, num_blocks=32, reduction=8),
}
#: Prefix of PA-EDSR's second registration of its attention module.
TWIN_PREFIX = 'msa.'

_ATTENTION_NAMES = {'query': 'conv_match_L_base', 'key': 'conv_match', 'value': 'conv_assembly'}


#: The settings of a conversion (the parameters of ``convert_state_dict``) that messages name.
SETTINGS = ('arch', 'scale', 'colors', 'mid_channels', 'num_blocks', 'reduction', 'source_rgb_range')


class ConversionError(PanetMMError):
    """A released checkpoint cannot be converted; the message names the keys and the fix."""


class SettingError(ConversionError, ParameterError):
    """A conversion setting the file contradicts, cannot tell, or the network cannot have.

    The template names settings as ``{arch}``, ``{scale}``... (``{param}`` is ``param``): ``str()``
    gives the parameter names, :meth:`for_cli` a command line's flags, so one message serves both.
    """

    def __init__(self, param: str, template: str, flag: Optional[str] = None) -> None:
        self.param, self.template, self.flag = param, template, flag
        PanetMMError.__init__(self, self._name_settings({}))

    def for_cli(self, flags: Optional[Mapping[str, str]] = None) -> str:
        """The message naming the flags of ``flags`` (setting name -> flag) instead of the parameters."""
        return self._name_settings(flags or {})

    def _name_settings(self, flags: Mapping[str, str]) -> str:
        text = self.template.replace('{param}', '{' + self.param + '}')
        for name in SETTINGS:
            shown = flags.get(name) or (self.flag if name == self.param else None) or name
            text = text.replace('{' + name + '}', shown)
        return text


def check_arch(arch: Any) -> str:
    """``arch`` itself when it names a released network, else a :class:`SettingError`."""
    if arch not in ARCH_DEFAULTS:
        raise SettingError('arch', f"unknown {{arch}} {arch!r}; use 'panet' (denoise / demosaic / JPEG) or "
                           "'paedsr' (SR)")
    return arch


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
    d = ARCH_DEFAULTS[check_arch(arch)]
    mid = d['mid_channels'] if mid_channels is None else int(mid_channels)
    blocks = d['num_blocks'] if num_blocks is None else int(num_blocks)
    red = d['reduction'] if reduction is None else int(reduction)
    if arch == 'panet':
        if scale != 1:
            raise SettingError('scale', f'{{scale}} {scale} was given for {{arch}} panet, which has no up-sampler; '
                               'drop {scale} or use {arch} paedsr for super-resolution')
        if colors not in (1, 3):
            raise SettingError('colors', f'{{colors}} {colors} is not supported; PANet models have 3 (colour) or 1 '
                               '(grey)')
        return dict(type='PANet', in_channels=colors, out_channels=colors, mid_channels=mid, num_blocks=blocks,
                    res_scale=1.0, rgb_range=255, attention_cfg=dict(reduction=red))
    if colors != 3:
        raise SettingError('colors', f'{{colors}} {colors} was given for {{arch}} paedsr; the released PA-EDSR '
                           'models are RGB only, drop {colors}')
    if scale not in (2, 3) and (scale < 2 or scale & (scale - 1)):
        raise SettingError('scale', f'{{scale}} {scale} is not supported by PA-EDSR; use 2, 3 or 4')
    return dict(type='PAEDSRNet', in_channels=3, out_channels=3, mid_channels=mid, num_blocks=blocks,
                upscale_factor=scale, res_scale=0.1, rgb_range=255,
                attention_cfg=dict(reduction=red, res_scale=0.1))


def build_generator(cfg: Dict[str, Any], device: str = 'cpu') -> nn.Module:
    """Build :class:`PANet` / :class:`PAEDSRNet` from :func:`generator_config` output."""
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    cls = PANet if cfg['type'] == 'PANet' else PAEDSRNet
    with torch.device(device):
        return cls(**kwargs)


def target_state(cfg: Dict[str, Any]) -> Dict[str, Tensor]:
    """The target generator's state dict, built on the meta device (shapes only: no memory, no init cost)."""
    try:
        net = build_generator(cfg, device='meta')
    except (RuntimeError, NotImplementedError, TypeError):
        net = build_generator(cfg)
    return dict(net.state_dict())


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


def released_names(keys: List[str], arch: str, num_blocks: int) -> Tuple[Dict[str, str], List[str]]:
    """``{released name: our key}`` for our generator ``keys``, and our per-block PReLU slope keys."""
    expected: Dict[str, str] = {}
    slope_keys: List[str] = []
    for key in keys:
        name = official_name(key, arch, num_blocks)
        if name is None:
            slope_keys.append(key)
        else:
            expected[name] = key
    return expected, slope_keys


def detected_depth(keys: List[str]) -> Optional[int]:
    """How many released ResBlocks the keys hold (``None`` when none)."""
    idx = {int(m.group(1)) for k in keys for m in [re.fullmatch(r'body\.(\d+)\.body\.0\.weight', k)] if m}
    return len(idx) if idx else None
