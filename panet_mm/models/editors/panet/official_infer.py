"""What a released checkpoint says about itself: network, scale, colours and the data range it was trained on.

Each setting is read from the file; a value the caller gives is checked against it, so a wrong
argument is refused instead of silently loading a wrong model in part.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .official_keys import ARCH_DEFAULTS, TWIN_PREFIX, ConversionError, SettingError, check_arch, generator_config

#: The DIV2K mean the released mean shifts are built from (``common.MeanShift``).
_DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


@dataclass
class ConversionPlan:
    """The settings of one conversion, and the facts read from the file (for the user)."""

    arch: str
    scale: int
    colors: int
    mid_channels: int
    num_blocks: int
    scale_given: bool
    source_rgb_range: float
    generator_cfg: Dict[str, Any]
    inferred: List[str] = field(default_factory=list)


#: Keys only the released layout has (``tests/data/released/`` lists them all): the head, the tail, PA-EDSR's
#: ``msa.*`` twins, the reference ResBlock's ``body.N.body.*`` and its attention's names. Every released file has
#: ``head.0.*``; mmagic's generators and panet_mm's (which follow mmagic's names) have none of these.
_RELEASED_KEY = re.compile(r'(head|tail|msa)\..+|body\.\d+\.(body\.\d+|conv_match_L_base|conv_match|conv_assembly)\..+')
#: Keys of panet_mm's own generators: PANet / PAEDSRNet's attention and PReLU, WithPyramidAttention's blocks.
_PANET_MM_KEY = re.compile(r'body\.\d+\.(query|key|value|act)\..+|attentions\..+')
#: Keys of mmagic's generator layout (EDSRNet, MSRResNet, RDN, SwinIR, ...).
_MMAGIC_KEY = re.compile(r'(conv_first|conv_after_body|conv_last|conv_hr|upsample|upsampler)\..+|body\.\d+\.conv\d\..+')
#: The prefix of the generator's keys in an mmagic / panet_mm edit model's checkpoint.
_GENERATOR = 'generator.'


def not_released_reason(state: Dict[str, Any], source: str) -> Optional[str]:
    """What a file is when none of its keys is a released PANet / PA-EDSR key, else None.

    Such a file is already in mmagic's layout (a plain mmagic generator, or panet_mm's own model), which
    needs no conversion, or an unknown one; asking for ``arch`` / ``scale`` would only lead to a report of
    every released key missing.

    Args:
        state (dict): The file's state dict (see :func:`~.official.load_official_file`).
        source (str): The file name, for the message.

    Returns:
        str or None: One sentence saying what the file is and what to do with it.
    """
    keys = [str(k) for k in state]
    if any(_RELEASED_KEY.fullmatch(k) for k in keys):
        return None
    prefix = _GENERATOR if any(k.startswith(_GENERATOR) for k in keys) else ''
    generator = [k[len(prefix):] for k in keys if k.startswith(prefix)]
    own = next((k for k in generator if _PANET_MM_KEY.fullmatch(k)), None)
    plain = next((k for k in generator if _MMAGIC_KEY.fullmatch(k)), None)
    not_released = 'not a released PANet / PA-EDSR file'
    if own is not None:
        load = (f'tools/test.py CONFIG {source} or tools/restore.py --config CONFIG --checkpoint {source}' if prefix
                else f'tools/restore.py --config CONFIG --checkpoint {source}')
        return (f"'{source}' is {'a checkpoint' if prefix else 'a generator state dict'} already in panet_mm's "
                f'layout (keys such as {prefix}{own}), {not_released}, so it needs no conversion: load it '
                f'directly with {load}')
    if plain is not None or prefix:
        example = plain if plain is not None else generator[0]
        test = ('test it with tools/test.py and the mmagic config it was trained with, or ' if prefix
                else '')
        return (f"'{source}' is {'a checkpoint' if prefix else 'the state dict'} of a plain mmagic generator "
                f"(mmagic's layout, keys such as {prefix}{example}), {not_released}, so there is nothing to "
                f'convert: {test}start a model with pyramid attention from it as plain_weights of '
                "WithPyramidAttention (README: 'Add pyramid attention to your model')")
    return (f"'{source}' has none of the keys of a released PANet / PA-EDSR file (head.0.weight, "
            f"body.N.body.0.weight, tail.*; it has e.g. {', '.join(sorted(keys)[:4])}), so it is not one; pass the "
            'released .pt file')


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
    if any(k.startswith(TWIN_PREFIX) for k in state):
        paedsr.append(TWIN_PREFIX + '*')
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
    # the file's rounding (float32 released; a half-precision copy rounds the mean to ~5e-4)
    tol = max(1e-4, 4 * torch.finfo(b.dtype).eps) if b.is_floating_point() else 1e-4
    w = w.detach().double().view(3, 3)
    diag = torch.diagonal(w)
    if (diag <= 0).any() or not torch.allclose(w, torch.diag(diag), rtol=0, atol=max(1e-6, tol * 1e-2)):
        return None
    ranges = sign * b.detach().double() / (diag * torch.tensor(_DIV2K_MEAN, dtype=torch.float64))
    if (ranges <= 0).any() or float(ranges.max() - ranges.min()) > tol * float(ranges.mean()):
        return None
    value = float(ranges.mean())
    return float(round(value)) if abs(value - round(value)) <= tol * value else value


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


def _resolve_arch(state: Dict[str, Tensor], arch: Optional[str], source: str, inferred: List[str]) -> str:
    file_arch, evidence = infer_arch(state)
    if arch is None:
        if file_arch is None:
            raise SettingError(
                'arch', f"cannot tell from the keys of '{source}' whether it is a PANet or a PA-EDSR "
                f"({', '.join(evidence) if evidence else 'no tail.0.weight, tail.1.weight or msa.* key'}); pass "
                '{arch} panet (denoise / demosaic / JPEG) or {arch} paedsr (SR)'
                + (', or use an already converted panet_mm checkpoint directly'
                   if any(k.startswith('generator.') for k in state) else ''))
        inferred.append(f"arch {file_arch} (keys {', '.join(evidence)})")
        return file_arch
    if arch in ARCH_DEFAULTS and file_arch is not None and arch != file_arch:
        raise SettingError('arch', f"{{arch}} {arch} contradicts '{source}', whose keys ({', '.join(evidence)}) are "
                           f'those of a {file_arch}; drop {{arch}} (it is inferred) or pass the file you meant')
    return check_arch(arch)


def _resolve_colors(state: Dict[str, Tensor], colors: Optional[int], source: str, inferred: List[str]) -> int:
    head = state.get('head.0.weight')
    file_colors = int(head.shape[1]) if head is not None and head.dim() == 4 else None
    if colors is None:
        if file_colors is None:
            return 3
        inferred.append(f'{file_colors} colour channel(s) (head.0.weight {tuple(head.shape)})')
        return file_colors
    if file_colors is not None and int(colors) != file_colors:
        raise SettingError('colors', f"{{colors}} {colors} contradicts '{source}', whose head.0.weight "
                           f'{tuple(head.shape)} takes {file_colors} channel(s); drop {{colors}} (it is inferred)')
    return colors


def _resolve_scale(state: Dict[str, Tensor], arch: str, scale: Optional[int], source: str,
                   inferred: List[str]) -> int:
    if arch == 'panet':
        return 1 if scale is None else int(scale)
    file_scale = infer_scale(state)
    if scale is None:
        if file_scale is None:
            raise SettingError('scale', f"cannot infer the scale of '{source}' from its tail.0.* keys; "
                               'pass {scale} 2, 3 or 4')
        convs = sum(1 for k in state if re.fullmatch(r'tail\.0\.\d+\.weight', k))
        inferred.append(f"scale x{file_scale} (tail.0.0.weight {tuple(state['tail.0.0.weight'].shape)}, "
                        f'{convs} up-sampling conv(s))')
        return file_scale
    if file_scale is not None and int(scale) != file_scale:
        raise SettingError('scale', f"{{scale}} {scale} contradicts '{source}', whose up-sampler (tail.0.0.weight "
                           f"{tuple(state['tail.0.0.weight'].shape)}) is x{file_scale}; drop {{scale}} "
                           '(it is inferred) or pass the file of that scale')
    return scale


def _resolve_range(state: Dict[str, Tensor], arch: str, source_rgb_range: Optional[float], source: str,
                   inferred: List[str]) -> float:
    file_range = infer_source_rgb_range(state)
    if source_rgb_range is None:
        if file_range is None:
            raise SettingError(
                'source_rgb_range', f"cannot tell the data range '{source}' was trained on: it has no released "
                'sub_mean (bias = -rgb_range x DIV2K mean); pass {source_rgb_range} 1 (what the reference code uses '
                'for every released model) or 255')
        source_rgb_range = file_range
        inferred.append(f'trained on rgb_range {file_range:g} (sub_mean.bias)')
    elif file_range is not None and abs(float(source_rgb_range) - file_range) > 1e-3 * file_range:
        raise SettingError('source_rgb_range', f"{{source_rgb_range}} {source_rgb_range:g} contradicts '{source}', "
                           f'whose sub_mean.bias says rgb_range {file_range:g}; drop {{source_rgb_range}} '
                           '(it is inferred)')
    source_rgb_range = float(source_rgb_range)
    if source_rgb_range <= 0:
        raise SettingError('source_rgb_range', f'{{source_rgb_range}} {source_rgb_range:g} must be positive '
                           '(1 or 255)')
    if arch == 'paedsr':
        add_range = _mean_shift_range(state, 'add_mean', 1)
        if file_range is not None and add_range is not None and abs(add_range - file_range) > 1e-3 * file_range:
            raise ConversionError(f"'{source}': add_mean.bias says rgb_range {add_range:g} but sub_mean.bias says "
                                  f'{file_range:g}; the mean shifts of a released PA-EDSR agree, so the file was '
                                  'edited - use the released file')
    return source_rgb_range


def plan_conversion(state: Dict[str, Tensor], source: str, arch: Optional[str], scale: Optional[int],
                    colors: Optional[int], mid_channels: Optional[int], num_blocks: Optional[int],
                    reduction: Optional[int], source_rgb_range: Optional[float]) -> ConversionPlan:
    """Every setting of a conversion: the given ones checked against the file, the others read from it.

    Arguments as :func:`panet_mm.models.editors.panet.official.convert_state_dict`.

    Raises:
        ConversionError: A given setting the file contradicts, or one the file cannot tell.
    """
    inferred: List[str] = []
    arch = _resolve_arch(state, arch, source, inferred)
    d = ARCH_DEFAULTS[arch]
    mid = d['mid_channels'] if mid_channels is None else int(mid_channels)
    blocks = d['num_blocks'] if num_blocks is None else int(num_blocks)
    colors = _resolve_colors(state, colors, source, inferred)
    scale_given = scale is not None
    scale = _resolve_scale(state, arch, scale, source, inferred)
    cfg = generator_config(arch, scale, colors, mid, blocks, reduction)
    rgb_range = _resolve_range(state, arch, source_rgb_range, source, inferred)
    return ConversionPlan(arch=arch, scale=scale, colors=colors, mid_channels=mid, num_blocks=blocks,
                          scale_given=scale_given, source_rgb_range=rgb_range, generator_cfg=cfg, inferred=inferred)
