"""Insertion sites of ``WithPyramidAttention``: parsing ``insert=[...]`` and building one attention per site.

A wrong position fails here, when the wrapper is built, with the valid names listed.
"""
from __future__ import annotations

import difflib
import inspect
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from panet_mm.models.layers import PyramidAttention

from .errors import InsertionError
from .probe import ProbeRecord

_ATTENTION_ARGS = tuple(p for p in inspect.signature(PyramidAttention.__init__).parameters if p != 'self')
_EXTRA_ARGS = ('identity_init',)
_POSITION_KEYS = ('after', 'before', 'after_every', 'of')
_LISTED_DEPTH = 2  # error messages list the positions with at most this many name components


@dataclass(frozen=True)
class InsertionSite:
    """Where one inserted pyramid attention sits.

    Attributes:
        name (str): Its key in ``attentions`` (``'after_body_7'``); its state-dict keys start with
            ``'attentions.' + name + '.'``.
        where (str): ``'after'`` (runs on the module's output) or ``'before'`` (on its first input).
        module (str): Dotted name of the generator submodule it is attached to (``'body.7'``).
        channels (int): Channels of the feature map it receives.
        layout (str): ``'nchw'`` (a feature map) or ``'tokens'`` (``(B, H*W, C)``, reshaped around it).
        input_per_pixel (float): Input pixels per feature pixel there (4.0 at a quarter of the input's
            resolution, 0.5 after a x2 up-sampler), from the probe; sets the smallest input the attention's
            pyramid can take (:meth:`WithPyramidAttention.min_input_size`).
    """

    name: str
    where: str
    module: str
    channels: int
    layout: str
    input_per_pixel: float = 1.0


def _is_size(value: Any) -> bool:
    """An int-like size: a Python int, a ``torch.SymInt`` (``torch.compile``) or a 0-dim integer tensor
    (what ``x.shape[i]`` gives under ``torch.jit.trace``, e.g. in mmengine's flop counter)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, torch.SymInt)):
        return True
    return isinstance(value, Tensor) and value.dim() == 0 and not value.dtype.is_floating_point \
        and not value.dtype.is_complex and value.dtype != torch.bool


def token_hw(args: Sequence[Any], num_tokens: Any) -> Optional[Tuple[Any, Any]]:
    """The first ``(H, W)`` pair of sizes among ``args`` with ``H * W == num_tokens``.

    The sizes are returned as given (ints, or traced values under ``torch.jit.trace`` / ``torch.compile``),
    so that a reshape by them stays a traced operation; use ``int()`` where a Python number is needed.
    """
    for arg in args:
        if isinstance(arg, (tuple, list)) and len(arg) == 2 and all(_is_size(v) for v in arg):
            with warnings.catch_warnings():
                # Which argument is (H, W) is fixed by the module's signature, not by the input: comparing
                # traced sizes here is safe, and the tracer's warning about it would only be noise.
                warnings.simplefilter('ignore', torch.jit.TracerWarning)
                match = bool(arg[0] * arg[1] == num_tokens)
            if match:
                return arg[0], arg[1]
    return None


def _site_name(where: str, path: str) -> str:
    return f'{where}_{path.replace(".", "_")}'


def _describe_value(value: Any) -> str:
    """``"a str 'conv1'"``, ``"an int 3"``, ``'None'``: a wrong value with its type, for a message."""
    if value is None:
        return 'None'
    kind = type(value).__name__
    return f'{"an" if kind[:1].lower() in "aeiou" else "a"} {kind} {value!r}'


def _call_repr(mapping: Mapping) -> str:
    """``dict(after='conv1', reduction=2)``: a dict as it is written in a config."""
    return 'dict(' + ', '.join(f'{k}={v!r}' for k, v in mapping.items()) + ')'


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f'a tensor of shape {tuple(value.shape)}'
    return f'a {type(value).__name__}'


def closest_names(query: Any, names: Sequence[str], n: int = 3) -> List[str]:
    """The names in ``names`` closest to ``query`` (the best-scoring ones, at most ``n``), for a hint.

    A numbered child past the end (``'rdbs.9'`` of four blocks) gives the last one (``'rdbs.3'``); otherwise
    names with as many dots as ``query`` are preferred, case is ignored and a looser second cut-off lets
    ``'upsampling'`` find ``'upscale'``.
    """
    if not isinstance(query, str) or not query:
        return []
    parent, _, last = query.rpartition('.')
    if parent and last.isdigit():
        numbered = sorted((int(m.rpartition('.')[2]), m) for m in names
                          if m.rpartition('.')[0] == parent and m.rpartition('.')[2].isdigit())
        if numbered and int(last) > numbered[-1][0]:
            return [numbered[-1][1]]
    order = {name: k for k, name in enumerate(names)}
    same_depth = [m for m in names if m.count('.') == query.count('.')]
    for pool in (same_depth, list(names)):
        for cutoff in (0.6, 0.5):
            scored = [(difflib.SequenceMatcher(None, query.lower(), m.lower()).ratio(), m) for m in pool]
            scored = [(r, m) for r, m in scored if r >= cutoff]
            if scored:
                best = max(r for r, _ in scored)
                return sorted((m for r, m in scored if r >= best - 1e-9), key=order.get)[:n]
    return []


def did_you_mean(query: Any, names: Sequence[str]) -> str:
    """``" (did you mean 'upscale'?)"`` for the names closest to ``query``, or ``''`` when none is close."""
    close = closest_names(query, names)
    if not close:
        return ''
    quoted = [repr(m) for m in close]
    listed = quoted[0] if len(quoted) == 1 else f'{", ".join(quoted[:-1])} or {quoted[-1]}'
    return f' (did you mean {listed}?)'


def find_submodule(net: nn.Module, modules: Dict[str, nn.Module], path: Any, what: str) -> nn.Module:
    """``modules[path]``, or an ``InsertionError`` naming ``what``, the closest names and the valid positions."""
    if isinstance(path, str) and path and path in modules:
        return modules[path]
    names = [n for n in modules if n]
    listed = [n for n in names if n.count('.') < _LISTED_DEPTH]
    shown = ', '.join(listed[:80]) + (f', ... ({len(listed) - 80} more)' if len(listed) > 80 else '')
    raise InsertionError(f'{what}={path!r} is not a submodule of {type(net).__name__}{did_you_mean(path, names)}; '
                         f'valid positions (up to {_LISTED_DEPTH} levels, deeper dotted names work too): {shown}')


def _entry_dict(i: int, entry: Any) -> dict:
    """``insert[i]`` as a new dict; a string (what ``--cfg-options`` makes of a dict in a list) is refused."""
    if isinstance(entry, Mapping):
        return dict(entry)
    if isinstance(entry, str):
        text = entry.strip()
        example = text if text.startswith(('dict(', '{')) else f'dict(after={text!r})'
        raise InsertionError(f'insert[{i}] is {_describe_value(entry)}; each entry is a dict like {example}; '
                             f'--cfg-options cannot write dicts inside lists, put insert=[{example}] in a config '
                             f'file (an existing entry can be changed with --cfg-options '
                             f'model.generator.insert.{i}.after=NAME)')
    raise InsertionError(f'insert[{i}] is {_describe_value(entry)}; each entry is a dict like '
                         f"dict(after='NAME')")


def _entry_positions(net: nn.Module, modules: Dict[str, nn.Module], i: int, entry: dict) -> Tuple[str, List[str]]:
    """``(where, module paths)`` of ``insert[i]``, popping its position keys from ``entry``."""
    where_keys = [k for k in ('after', 'before', 'after_every') if k in entry]
    if len(where_keys) != 1:
        # a misspelt position key (aftr=...): name the one it looks like
        unknown = [k for k in entry if k not in _POSITION_KEYS + _ATTENTION_ARGS + _EXTRA_ARGS]
        close = [(k, closest_names(k, _POSITION_KEYS)) for k in unknown if not where_keys]
        hint = ''.join(f' (did you mean {c[0]!r} for {k!r}?)' for k, c in close[:1] if c)
        raise InsertionError(f'insert[{i}] = {entry} needs exactly one of after=NAME, before=NAME or '
                             f'after_every=N with of=NAME{hint}')
    kind = where_keys[0]
    if kind != 'after_every':
        if 'of' in entry:
            raise InsertionError(f'insert[{i}] has of={entry["of"]!r} without after_every; remove of= '
                                 f'or use after_every=N')
        path = entry.pop(kind)
        find_submodule(net, modules, path, f'insert[{i}] {kind}')
        return kind, [path]
    n, parent = entry.pop('after_every'), entry.pop('of', None)
    if not isinstance(n, int) or n < 1:
        raise InsertionError(f'insert[{i}] after_every={n!r} must be a positive int')
    container = find_submodule(net, modules, parent, f'insert[{i}] of')
    if not isinstance(container, (nn.Sequential, nn.ModuleList)):
        raise InsertionError(f'insert[{i}] of={parent!r} is a {type(container).__name__}; after_every needs '
                             f'an nn.Sequential or nn.ModuleList (use after=NAME for a single position)')
    children = [name for name, _ in container.named_children()]
    paths = [f'{parent}.{c}' for k, c in enumerate(children) if (k + 1) % n == 0]
    if not paths:
        raise InsertionError(f'insert[{i}] after_every={n} of={parent!r}: {parent!r} has only '
                             f'{len(children)} children, so no position; use a smaller after_every')
    return 'after', paths


def _check_arguments(keys: Sequence[str], what: str, allowed: set) -> None:
    for key in keys:
        if key not in allowed:
            raise InsertionError(f'{what} key {key!r} is neither a position (after, before, after_every, '
                                 f'of) nor a PyramidAttention argument{did_you_mean(key, sorted(allowed))}')


def parse_insert(net: nn.Module, insert: Sequence[dict], attention_cfg: Mapping) -> List[dict]:
    """Validate the ``insert`` entries and expand ``after_every`` into single positions.

    Returns:
        list[dict]: ``dict(where, module, kwargs, index)`` per position, in order.
    """
    if isinstance(insert, Mapping):
        raise InsertionError(f'insert is a single dict {dict(insert)}; insert is a list of them: put it in '
                             f'brackets, insert=[{_call_repr(insert)}]')
    if isinstance(insert, str) or not isinstance(insert, Iterable):
        text = insert.strip() if isinstance(insert, str) else ''
        example = f'[{text}]' if text.startswith('dict(') else "[dict(after='body.7')]"
        raise InsertionError(f'insert is {_describe_value(insert)}; insert is a list of dicts such as {example} '
                             f'(--cfg-options cannot write dicts inside lists: put it in a config file), or [] for '
                             f'the plain generator')
    if not isinstance(attention_cfg, Mapping):
        raise InsertionError(f'attention_cfg is {_describe_value(attention_cfg)}; it is a dict of PyramidAttention '
                             f'arguments such as dict(reduction=2, res_scale=1.0)')
    allowed = set(_ATTENTION_ARGS) | set(_EXTRA_ARGS)
    for key in attention_cfg:
        if key not in allowed or key == 'channels':
            shown = sorted(allowed - {'channels'})
            raise InsertionError(f'attention_cfg key {key!r} is not a PyramidAttention argument'
                                 f'{did_you_mean(key, shown)} (allowed: {", ".join(shown)})')
    modules = dict(net.named_modules())
    specs: List[dict] = []
    for i, entry in enumerate(insert):
        entry = _entry_dict(i, entry)
        where, paths = _entry_positions(net, modules, i, entry)
        _check_arguments(list(entry), f'insert[{i}]', allowed)
        specs += [dict(where=where, module=path, kwargs={**attention_cfg, **entry}, index=i) for path in paths]
    seen: Dict[str, int] = {}
    for spec in specs:
        name = _site_name(spec['where'], spec['module'])
        if name in seen:
            raise InsertionError(f'insert[{spec["index"]}] puts a second attention {spec["where"]} '
                                 f'{spec["module"]!r} (already from insert[{seen[name]}]); remove one of them')
        seen[name] = spec['index']
    return specs


def _layout(label: str, where: str, record: ProbeRecord, probe_shape: Sequence[int]) -> Tuple[str, int]:
    """``(layout, channels)`` of what the probe saw at one site; refuses a site unfit for an attention."""
    if record.calls == 0:
        raise InsertionError(f'{label}: the module never runs in the generator\'s forward (probe input '
                             f'{(1, *probe_shape)}); pick a module that runs once per forward')
    if record.calls > 1:
        raise InsertionError(f'{label}: the module runs {record.calls} times per forward (a shared module); '
                             f'an attention there would run after every call; pick a module that runs once')
    value = record.value
    if isinstance(value, Tensor) and value.dim() == 4:
        return 'nchw', int(value.shape[1])
    if isinstance(value, Tensor) and value.dim() == 3 and token_hw(record.args, value.shape[1]):
        return 'tokens', int(value.shape[2])
    what = 'outputs' if where == 'after' else 'receives'
    raise InsertionError(f'{label}: the module {what} {_describe(value)}, not a (B, C, H, W) feature map '
                         f'(nor (B, H*W, C) tokens with an (H, W) argument); pick another position')


def make_attention(spec: dict, record: ProbeRecord,
                   probe_shape: Sequence[int]) -> Tuple[InsertionSite, PyramidAttention]:
    """The site of one :func:`parse_insert` entry and its new attention, sized from the probe's record."""
    where, path, kwargs = spec['where'], spec['module'], dict(spec['kwargs'])
    label = f'insert[{spec["index"]}] ({where} {path!r})'
    layout, channels = _layout(label, where, record, probe_shape)
    given = kwargs.pop('channels', None)
    if given is not None and given != channels:
        raise InsertionError(f'{label}: channels={given} but the module gives {channels} channels; '
                             f'drop channels= to infer it')
    identity_init = bool(kwargs.pop('identity_init', False))
    name = _site_name(where, path)
    # Own random stream: the generator's initial weights stay those of the plain generator.
    seed = (torch.initial_seed() + zlib.crc32(name.encode())) % (2**63)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            attention = PyramidAttention(channels=channels, **kwargs)
        except (TypeError, ValueError) as exc:
            raise InsertionError(f'{label}: {exc}') from exc
    if identity_init:
        if attention.res_scale != 1:
            raise InsertionError(f'{label}: identity_init=True needs res_scale=1 (got {attention.res_scale}); '
                                 f'set res_scale=1 or drop identity_init')
        value_conv = attention.value[0]
        nn.init.zeros_(value_conv.weight)
        nn.init.zeros_(value_conv.bias)
    value = record.value
    feature_hw = tuple(value.shape[2:]) if layout == 'nchw' else tuple(map(int, token_hw(record.args, value.shape[1])))
    ratio = max(probe_shape[-2] / feature_hw[0], probe_shape[-1] / feature_hw[1])
    return InsertionSite(name=name, where=where, module=path, channels=channels, layout=layout,
                         input_per_pixel=float(ratio)), attention
