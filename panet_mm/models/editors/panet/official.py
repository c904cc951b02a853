"""Convert the released PANet / PA-EDSR checkpoints to panet_mm (mmengine) checkpoints.

Every key is checked against the ``state_dict`` of the target generator built with the paper's
hyper-parameters (:mod:`.official_keys` holds the released layout): a missing, unexpected or
mis-shaped key refuses the whole conversion (the reference loads by name with ``strict=False``, so a
wrong model silently loads in part). PA-EDSR's ``msa.*`` twins are dropped when every one equals its
``body.K.*`` counterpart.

The reference code feeds the released models 0-1 data (``rgb_range 1``: the SR commands pass it,
the other tasks' ``option.py`` default to it); the file itself says which (``sub_mean.bias`` is
``-rgb_range x DIV2K mean``, see :mod:`.official_infer`). panet_mm's configs work in 0-255
(``rgb_range=255``), so a 0-1 model is converted exactly by scaling its first conv by ``1/255`` and
its last conv (and PA-EDSR's mean-shift biases) by 255: the features in between are unchanged.
"""
from __future__ import annotations

import hashlib
import os
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from panet_mm.utils.checkpoint import (
    StateDictDiff,
    UnsafeCheckpointError,
    compare_state_dicts,
    list_keys,
    load_weights_only,
    missing_checkpoint,
    non_finite_keys,
    non_finite_message,
    unwrap_state_dict,
)
from panet_mm.utils.errors import first_line
from panet_mm.utils.fileio import atomic_save_checkpoint, existing_folder, probe_writable
from panet_mm.version import __version__

from .official_infer import (
    ConversionPlan,
    infer_arch,
    infer_scale,
    infer_source_rgb_range,
    not_released_reason,
    plan_conversion,
)
from .official_keys import (
    ARCH_DEFAULTS,
    TWIN_PREFIX,
    ConversionError,
    SettingError,
    build_generator,
    detected_depth,
    generator_config,
    official_name,
    released_names,
    target_state,
)

CONVERTER_VERSION = '1.1'


def load_official_file(path: str) -> Dict[str, Tensor]:
    """Load a released checkpoint safely (tensors only) and unwrap it to a flat ``state_dict``.

    Args:
        path (str): The released ``.pt`` file.

    Returns:
        dict[str, Tensor]: The released state dict, wrappers and ``module.`` / ``model.`` prefixes removed.

    Raises:
        ConversionError: The file is missing or a folder (its .pt / .pth files named), truncated, not a plain
            tensor checkpoint, or holds no state dict.
    """
    missing = missing_checkpoint(path)
    if missing and osp.isdir(path):  # the helper's wording, with what a released file is called and those here
        found = sorted(f for f in os.listdir(path) if f.endswith(('.pt', '.pth')) and osp.isfile(osp.join(path, f)))
        raise ConversionError(f"source checkpoint '{path}' is a folder; pass the released .pt file in it"
                              + (f" (it holds {list_keys(found, 6)})" if found else ''))
    if missing:
        raise ConversionError(f'{missing}; pass the released .pt file')
    try:
        obj = load_weights_only(path, map_location='cpu')
    except (UnsafeCheckpointError, OSError) as err:
        text = first_line(err, 600)
        if 'is not a PyTorch checkpoint' in text:  # (names the file and the fix already)
            raise ConversionError(text.replace('the .pth file tools/train.py saved (or one torch.save wrote)',
                                               'the released .pt file')) from err
        raise ConversionError(f'not a plain tensor checkpoint: {text} (the released files hold tensors only)') from err
    return unwrap_state_dict(obj, source=path, error=ConversionError)


def _drop_twins(state: Dict[str, Tensor], source: str) -> Tuple[Dict[str, Tensor], List[str]]:
    """Remove the ``msa.*`` second registration of PA-EDSR's attention after checking every twin.

    A twin is ``body.K.<rest>`` for ``msa.<rest>``, ``K`` being the body index holding the attention
    in the file. A ``msa.*`` key without a twin stays (and is reported as unexpected).
    """
    twins = [k for k in state if k.startswith(TWIN_PREFIX)]
    if not twins:
        return state, []
    att = sorted({m.group(1) for k in state for m in [re.fullmatch(r'body\.(\d+)\.conv_match_L_base\..*', k)] if m})
    if len(att) != 1:
        return state, []
    prefix = f'body.{att[0]}.'
    differ, dropped = [], []
    for key in twins:
        twin = prefix + key[len(TWIN_PREFIX):]
        if twin not in state:
            continue
        a, b = state[key], state[twin]
        if a.shape != b.shape or a.dtype != b.dtype or not torch.equal(a, b):
            differ.append(key)
        else:
            dropped.append(key)
    if differ:
        pairs = ', '.join(f'{k} != {prefix}{k[len(TWIN_PREFIX):]}' for k in sorted(differ))
        raise ConversionError(
            f"'{source}' stores the attention twice (msa.* and {prefix}*, one module in the released PA-EDSR) "
            f'but {len(differ)} twin(s) differ ({pairs}), so it is not a state_dict() of the released model '
            f'and the weights to use are ambiguous; nothing was written - use the released file, or delete '
            f'the msa.* or {prefix}* copies you do not want')
    return {k: v for k, v in state.items() if k not in dropped}, sorted(dropped)


def _check_finite(state: Dict[str, Tensor], source: str) -> None:
    bad = non_finite_keys(state)
    if bad:
        raise ConversionError(non_finite_message(source, bad, 'the file is corrupted or comes from a diverged run - '
                                                 'download the released file again (nothing was written)'))


def _sort_keys(state: Dict[str, Tensor], plan: ConversionPlan,
               slope_keys: List[str]) -> Tuple[Dict[str, Tensor], Dict[str, Tensor], List[str]]:
    """Split the released keys into those to rename (or report), PANet's PReLU slope copies and the ignored."""
    escape = f'body.{plan.num_blocks // 2}.escape_NaN'
    slope_names = {f'body.{k.split(".")[1]}.body.1.weight' for k in slope_keys}
    given: Dict[str, Tensor] = {}
    slopes: Dict[str, Tensor] = {}
    ignored: List[str] = []
    for name, value in state.items():
        if name in slope_names:
            slopes[name] = value
        elif name == escape or (plan.arch == 'panet' and name.split('.')[0] in ('sub_mean', 'add_mean')):
            ignored.append(name)
        else:
            given[name] = value
    return given, slopes, ignored


def _copy_shared_slope(out: Dict[str, Tensor], diff: StateDictDiff, slopes: Dict[str, Tensor],
                       slope_keys: List[str], shape: Tuple[int, ...], source: str) -> Optional[str]:
    """Copy PANet's one shared PReLU slope into every block after checking its stored copies agree.

    Problems are added to ``diff``; returns the note for the user when the slope was copied.
    """
    if not slopes:
        diff.missing.append('body.N.body.1.weight (the shared PReLU slope, under at least one ResBlock name)')
        return None
    bad_shape = [(n, shape, tuple(v.shape)) for n, v in slopes.items() if tuple(v.shape) != shape]
    diff.mismatched.extend(bad_shape)
    if bad_shape:
        return None
    first_name, first = next(iter(slopes.items()))
    differ = [n for n, v in slopes.items() if not torch.equal(v, first)]
    if differ:
        raise ConversionError(
            f"'{source}': the PReLU slopes {sorted(differ)} differ from {first_name}, but the released "
            'PANet shares ONE slope across all ResBlocks; this is not a released PANet checkpoint '
            '(or it was fine-tuned with separate slopes) - it cannot be converted safely')
    for key in slope_keys:
        out[key] = first.clone()
    return (f'PANet shared PReLU slope found under {len(slopes)} of {len(slope_keys)} ResBlock '
            f'names; copied into all {len(slope_keys)} blocks')


def _ratio(a: float, b: float) -> str:
    """``a / b`` as a user reads it: ``255``, ``1/255``, ``255/2``."""
    return f'{a:g}' if b == 1 else f'{a:g}/{b:g}'


def _final_notes(plan: ConversionPlan, out: Dict[str, Tensor], ignored: List[str], twins: List[str]) -> List[str]:
    """Rescale ``out`` to the target range; say what was dropped and rescaled."""
    notes: List[str] = []
    target_range = float(plan.generator_cfg['rgb_range'])
    if plan.arch == 'panet':
        if any(n.split('.')[0] in ('sub_mean', 'add_mean') for n in ignored):
            notes.append('released sub_mean / add_mean ignored: PANet builds them but never uses them')
        notes.append(f'the model config must use generator rgb_range={target_range:g} (PANet defaults to 1), '
                     "as panet_mm's PANet configs do")
    if twins:
        notes.append(f'{len(twins)} msa.* key(s) dropped: the released PA-EDSR registers its attention twice, and '
                     'each equals its body twin')
    source_range = plan.source_rgb_range
    if source_range != target_range:
        _rescale_range(out, plan.arch, source_range, target_range)
        notes.append(f'the released model works on 0-{source_range:g} data; conv_first was scaled by '
                     f'{_ratio(source_range, target_range)} and conv_last'
                     + (' and the mean-shift biases' if plan.arch == 'paedsr' else '')
                     + f' by {_ratio(target_range, source_range)}, so it runs at rgb_range={target_range:g} '
                     'with the same features (exact up to float rounding)')
    return notes


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
        ConversionError: A file in mmagic's / panet_mm's layout (no released key; it needs no conversion);
            non-finite weights; a setting the file contradicts; ``msa.*`` twins or shared
            PReLU copies that differ; keys missing, unexpected or mis-shaped (all of them listed, grouped).
    """
    not_released = not_released_reason(state, source)
    if not_released:
        raise ConversionError(not_released)
    _check_finite(state, source)
    plan = plan_conversion(state, source, arch, scale, colors, mid_channels, num_blocks, reduction, source_rgb_range)
    state, twins = _drop_twins(state, source)
    target = target_state(plan.generator_cfg)
    expected, slope_keys = released_names(list(target), plan.arch, plan.num_blocks)
    given, slopes, ignored = _sort_keys(state, plan, slope_keys)
    diff = compare_state_dicts({name: target[ours] for name, ours in expected.items()}, given)
    out = {expected[name]: value for name, value in given.items() if name in expected}
    notes: List[str] = []
    if slope_keys:
        note = _copy_shared_slope(out, diff, slopes, slope_keys, tuple(target[slope_keys[0]].shape), source)
        notes += [note] if note else []
    if not diff.ok:
        raise SettingError('arch', _problem_report(source, plan, diff, detected_depth(list(state))))
    notes += _final_notes(plan, out, ignored, twins)
    info = dict(generator_cfg=plan.generator_cfg, arch=plan.arch, scale=plan.scale, colors=plan.colors,
                source_rgb_range=plan.source_rgb_range, inferred=plan.inferred, notes=notes,
                ignored=sorted(ignored + twins))
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


def _problem_report(source: str, plan: ConversionPlan, diff: StateDictDiff, depth: Optional[int]) -> str:
    """The key report of a file that is not the target network, with hints at the setting to change."""
    arch, blocks = plan.arch, plan.num_blocks
    lines = [f"'{source}' does not match {{arch}} {arch} (scale {plan.scale}, {plan.colors} colour channel(s), "
             f'{plan.mid_channels} channels, {blocks} ResBlocks): {diff.counts()} key(s); nothing was written - '
             'check {arch} / {scale} / {colors} against the released file name.']
    lines += [f'  {line}' for line in diff.lines()]
    named = diff.missing + diff.unexpected + [k for k, _, _ in diff.mismatched]
    if depth is not None and depth != blocks:
        lines.append(f'  hint: the file has {depth} ResBlocks, the target {blocks}.')
    if arch == 'paedsr' and plan.scale_given and any(k.startswith('tail.') for k in named):
        lines.append('  hint: the tail does not match {scale}; the file name of a released model says its scale.')
    if arch == 'panet' and 'tail.1.weight' in diff.unexpected:
        lines.append('  hint: the file looks like a PA-EDSR (super-resolution) checkpoint; try {arch} paedsr.')
    if arch == 'paedsr' and 'tail.0.weight' in diff.unexpected:
        lines.append('  hint: the file looks like a PANet (denoising / demosaicing / JPEG) checkpoint; '
                     'try {arch} panet.')
    if any(k.startswith('generator.') for k in diff.unexpected):
        lines.append('  hint: this looks like an already converted panet_mm checkpoint; use it directly.')
    return '\n'.join(lines)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _check_destination(src: str, dst: str) -> None:
    """Refuse a destination that cannot be written before the source (up to 160 MB) is read and converted: a
    folder (existing, or to be: ``out/``), or one in a folder that cannot be written (tracebacks after the
    conversion before). Missing folders are made when the result is saved; their nearest existing parent must
    be writable."""
    stem = osp.splitext(osp.basename(src))[0] or 'converted'
    if osp.isdir(dst):
        raise ConversionError(f"destination '{dst}' is a folder; name the output file, e.g. "
                              f"{osp.join(dst, stem + '.pth')}")
    if dst.endswith(tuple({os.sep, osp.altsep or os.sep})):  # 'out/': a folder to be, no file name
        raise ConversionError(f"destination '{dst}' names a folder; name the output file, e.g. "
                              f"{osp.join(dst, stem + '.pth')}")
    folder = existing_folder(osp.dirname(osp.abspath(dst)))
    if not osp.isdir(folder):
        raise ConversionError(f"destination folder '{folder}' is a file; choose another path")
    why = probe_writable(folder)
    if why:
        raise ConversionError(f"destination folder '{folder}' cannot be written ({why}); choose a writable folder")


def convert_official_checkpoint(src: str, dst: str, arch: Optional[str] = None, **settings: Any) -> Dict[str, Any]:
    """Convert a released ``.pt`` file to an mmengine checkpoint loadable by ``tools/test.py``.

    The output is ``{'meta': {...}, 'state_dict': {'generator.<key>': tensor}}``, written atomically;
    nothing is written when any check fails.

    Args:
        src (str): Released checkpoint (never modified).
        dst (str): Output ``.pth`` path; must differ from ``src``.
        arch (str, optional): ``'panet'`` or ``'paedsr'``; inferred from the keys when ``None``.
        **settings: ``scale``, ``colors``, ``mid_channels``, ``num_blocks``, ``reduction``,
            ``source_rgb_range``, as for :func:`convert_state_dict`.

    Returns:
        dict: The ``meta`` written (with ``inferred`` and ``notes`` for the user).

    Raises:
        ConversionError: Same file, a destination that cannot be written (a folder, a read-only folder, a
            file where a folder should be; missing folders are made), unreadable source, non-finite weights, a
            flag the file contradicts, differing twins, or key / shape mismatches.
    """
    if osp.abspath(src) == osp.abspath(dst) or (osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst)):
        raise ConversionError(f"destination '{dst}' is the source file; choose another path, the released "
                              'checkpoint is never overwritten')
    _check_destination(src, dst)
    state = load_official_file(src)
    converted, info = convert_state_dict(state, arch, source=src, **settings)
    meta = dict(arch=info['arch'], scale=info['scale'], colors=info['colors'], generator_cfg=info['generator_cfg'],
                source=osp.basename(src), source_sha256=_sha256(src), converter='panet_mm.official',
                converter_version=CONVERTER_VERSION, panet_mm_version=__version__,
                source_rgb_range=info['source_rgb_range'], inferred=info['inferred'], notes=info['notes'],
                ignored_keys=info['ignored'])
    checkpoint = dict(meta=meta, state_dict={f'generator.{k}': v.detach().clone().contiguous()
                                             for k, v in converted.items()})
    atomic_save_checkpoint(checkpoint, dst)
    return meta


__all__ = ['ARCH_DEFAULTS', 'CONVERTER_VERSION', 'ConversionError', 'ConversionPlan', 'SettingError',
           'build_generator',
           'convert_official_checkpoint', 'convert_state_dict', 'generator_config', 'infer_arch', 'infer_scale',
           'infer_source_rgb_range', 'load_official_file', 'official_name', 'unwrap_state_dict']
