"""Insert pyramid attention blocks into any mmagic generator from a config: ``WithPyramidAttention``.

    generator=dict(
        type='WithPyramidAttention',
        generator=dict(type='EDSRNet', mid_channels=64, num_blocks=16, upscale_factor=2, ...),
        insert=[dict(after='body.7')])                   # or dict(after_every=4, of='body'), dict(before='upsample')

How it works, and why:

* **Names stay the generator's own.** The wrapper shares the generator's tables of parameters,
  buffers and child modules (the very same dict objects), so ``state_dict()``, ``named_parameters()``
  and ``named_modules()`` give exactly the plain generator's names, plus the inserted blocks under
  ``attentions.<where>_<position>`` (e.g. ``attentions.after_body_7.value.0.weight``). Weights of the
  plain model therefore load by name (:meth:`WithPyramidAttention.load_plain_weights`), and a mixed
  checkpoint loads with ``strict=True``. Module replacement (``nn.Sequential(block, attention)``)
  would rename ``body.7.*`` to ``body.7.0.*``; a wrapper that registered the generator as a child
  would prefix every name with ``generator.``.
* **The generator's code runs unchanged.** ``forward`` calls the generator's own ``forward``; the
  attention enters through a forward hook (``after``: ``y = attention(module(x))``) or a forward
  pre-hook (``before``) on the named submodule. The hooks are small picklable objects that hold the
  attention module, so ``copy.deepcopy`` (used by EMA and by mmengine), pickling and DDP (which only
  sees ordinary registered parameters) keep them pointing at the right copy.
* **Channels are known at build time, before any weight is loaded.** ``channels`` is taken from the
  tensor each position really produces, found by a dry shape probe when the wrapper is built: the
  generator runs once on a ``(1, *probe_shape)`` input on PyTorch's ``meta`` device (shapes only, no
  arithmetic, no memory, no random numbers; if some operation of the generator has no meta
  implementation, it runs on a real zero input under ``torch.no_grad`` in eval mode). Lazy
  initialisation at the first forward was rejected: the optimizer is built and checkpoints are loaded
  before the first forward, so a lazily created attention would be missing from both. Reading the
  preceding layer's ``out_channels`` was rejected as fragile (pixel shuffles, concatenations,
  transformer stages). The probe also rejects, at build time, positions whose module never runs,
  runs more than once per forward (a shared activation), or does not produce a feature map.
* **Transformer stages** that work on tokens ``(B, H*W, C)`` and receive their ``(H, W)`` as an
  argument (SwinIR's ``RSTB`` layers) are recognised by the probe; the attention then sees the tokens
  reshaped to ``(B, C, H, W)`` and gives tokens back (``layout='tokens'`` in the repr).
* **Initial weights.** The attention blocks draw their initial weights from their own random stream
  (seeded from ``torch.initial_seed()`` and the position name), so the generator's own initial
  weights are identical to those of the plain generator built under the same seed: plain and mixed
  runs differ only by the attention. ``identity_init=True`` zeroes the value embedding so that an
  inserted block starts as the identity (useful when fine-tuning from plain weights).

Limitations: the generator's forward must call each target module once per forward (checked);
overrides of ``_save_to_state_dict`` / ``_load_from_state_dict`` on the generator's *root* class are
not used by the wrapper (no mmagic 1.2 generator has one); setting a plain attribute on the wrapper
does not set it on the generator (reading falls through to the generator).
"""
from __future__ import annotations

import difflib
import inspect
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmagic.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor

from panet_mm.models.layers import PyramidAttention

ATTENTIONS = 'attentions'  # child name of the inserted blocks; state-dict keys start with 'attentions.'
_ATTENTION_ARGS = tuple(p for p in inspect.signature(PyramidAttention.__init__).parameters if p != 'self')
_EXTRA_ARGS = ('identity_init',)
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
    """

    name: str
    where: str
    module: str
    channels: int
    layout: str


class _AfterHook:
    """Forward hook: replaces a module's output ``y`` by ``attention(y)``."""

    def __init__(self, attention: nn.Module, layout: str) -> None:
        self.attention = attention
        self.layout = layout

    def __call__(self, module: nn.Module, args: Tuple[Any, ...], output: Tensor) -> Tensor:
        return _apply_attention(self.attention, self.layout, output, args)


class _BeforeHook:
    """Forward pre-hook: replaces a module's first positional input ``x`` by ``attention(x)``."""

    def __init__(self, attention: nn.Module, layout: str) -> None:
        self.attention = attention
        self.layout = layout

    def __call__(self, module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        return (_apply_attention(self.attention, self.layout, args[0], args),) + tuple(args[1:])


def _token_hw(args: Sequence[Any], num_tokens: int) -> Optional[Tuple[int, int]]:
    """The first ``(H, W)`` pair of ints among ``args`` with ``H * W == num_tokens``."""
    for arg in args:
        if isinstance(arg, (tuple, list)) and len(arg) == 2 and all(isinstance(v, int) for v in arg):
            if arg[0] * arg[1] == num_tokens:
                return int(arg[0]), int(arg[1])
    return None


def _apply_attention(attention: nn.Module, layout: str, x: Tensor, args: Sequence[Any]) -> Tensor:
    if layout == 'nchw':
        return attention(x)
    b, n, c = x.shape
    hw = _token_hw(args, n)
    if hw is None:
        raise RuntimeError(f'inserted pyramid attention expected an (H, W) argument with H*W = {n} next to '
                           f'its (B, H*W, C) tokens; the module was called without one')
    y = attention(x.transpose(1, 2).reshape(b, c, hw[0], hw[1]))
    return y.flatten(2).transpose(1, 2)


class _ProbeRecord:
    """What the shape probe saw at one position."""

    def __init__(self) -> None:
        self.calls = 0
        self.value: Any = None
        self.args: Tuple[Any, ...] = ()


def _probe_input_channels(net: nn.Module) -> int:
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError(f'{type(net).__name__} has no Conv2d to read its input channels from; '
                     f'pass probe_shape=(C, H, W) to WithPyramidAttention')


def _run_probe(net: nn.Module, targets: Sequence[Tuple[str, str]],
               probe_shape: Sequence[int]) -> Dict[Tuple[str, str], _ProbeRecord]:
    """Run ``net`` once on a dummy input and record what each ``(where, module)`` target sees.

    Shapes only: first on the meta device (no arithmetic), else on a real zero input without grad,
    with every submodule in eval mode. Every attribute binding of every submodule is restored afterwards.
    """
    modules = dict(net.named_modules())
    records = {target: _ProbeRecord() for target in targets}
    handles = []

    def recorder(record: _ProbeRecord, where: str):
        def after(module, args, output):
            record.calls += 1
            record.value, record.args = output, tuple(args)

        def before(module, args):
            record.calls += 1
            record.value, record.args = (args[0] if args else None), tuple(args)

        return after if where == 'after' else before

    for (where, path), record in records.items():
        hook = recorder(record, where)
        register = modules[path].register_forward_hook if where == 'after' else modules[path].register_forward_pre_hook
        handles.append(register(hook))
    # forward may rebind attributes (EDSRNet does self.mean = self.mean.to(x)): restore every binding after.
    saved = {m: dict(m.__dict__) for m in net.modules()}

    def restore() -> None:
        for module, attrs in saved.items():
            for key in [k for k in module.__dict__ if k not in attrs]:
                del module.__dict__[key]
            for key, value in attrs.items():
                if module.__dict__.get(key) is not value:
                    module.__dict__[key] = value

    net.eval()
    try:
        try:
            tensors = {name: torch.empty_like(t, device='meta')
                       for name, t in list(net.named_parameters()) + list(net.named_buffers())}
            with torch.no_grad():
                torch.func.functional_call(net, tensors, (torch.zeros(1, *probe_shape, device='meta'),))
        except Exception:  # noqa: BLE001 - some operation has no meta kernel: probe for real
            restore()
            net.eval()
            for record in records.values():
                record.__init__()
            try:
                with torch.no_grad():
                    net(torch.zeros(1, *probe_shape))
            except Exception as exc:
                raise ValueError(f'the shape probe of {type(net).__name__} on an input of shape '
                                 f'{(1, *probe_shape)} failed ({type(exc).__name__}: {exc}); '
                                 f'pass a probe_shape=(C, H, W) that the generator accepts') from exc
    finally:
        for handle in handles:
            handle.remove()
        restore()
    return records


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f'a tensor of shape {tuple(value.shape)}'
    return f'a {type(value).__name__}'


def _site_name(where: str, path: str) -> str:
    return f'{where}_{path.replace(".", "_")}'


@MODELS.register_module()
class WithPyramidAttention(BaseModule):
    """Any registered generator with pyramid attention blocks inserted at named positions.

    The result behaves as the generator (same forward signature and output, same parameter and
    state-dict names) with ``PyramidAttention`` blocks applied at the chosen positions; their own
    parameters are under ``attentions.<where>_<position>.*``. See the module docstring for the
    mechanism (shared module tables, forward hooks, build-time shape probe).

    Positions (one per entry of ``insert``; every other key of an entry is a ``PyramidAttention``
    argument for that block, overriding ``attention_cfg``):

    * ``dict(after='body.7')``: on the output of submodule ``body.7``;
    * ``dict(before='upsample')``: on the first input of submodule ``upsample``;
    * ``dict(after_every=4, of='body')``: after children 3, 7, 11, ... of the ``nn.Sequential`` /
      ``nn.ModuleList`` ``body`` (after every 4th child).

    A wrong position fails when the wrapper is built, with the valid names listed. Loading weights of
    the plain generator: :meth:`load_plain_weights` or, from a config, ``plain_weights=...`` (applied
    by ``init_weights``, strict for every generator tensor; only the attention tensors may be absent,
    and they are listed in the log). mmengine's ``load_from`` loads non-strictly; prefer
    ``plain_weights`` to start a mixed model from a plain checkpoint.

    Args:
        generator (dict | nn.Module): Config of any generator in mmagic's ``MODELS`` (or a built one).
        insert (Sequence[dict]): Insertion positions and per-block attention arguments, see above.
            ``channels`` is inferred from the probe unless given (then it is checked). May be empty,
            which gives the plain generator (convenient for A/B runs from one config).
        attention_cfg (dict, optional): ``PyramidAttention`` arguments shared by all inserted blocks
            (e.g. ``dict(reduction=4, res_scale=1.0)``), plus ``identity_init`` (bool): zero the value
            embedding so the block starts as the identity (needs ``res_scale=1``). Default: None.
        probe_shape (Sequence[int], optional): Shape of one input sample, without the batch
            dimension, for the build-time shape probe. Default: ``(C, 32, 32)`` with ``C`` the
            ``in_channels`` of the generator's first ``Conv2d``.
        plain_weights (str | dict, optional): Checkpoint of the plain generator to load in
            :meth:`init_weights`: a path, or ``dict(checkpoint=PATH, prefix=None, map_location='cpu')``
            with the arguments of :meth:`load_plain_weights`. Default: None.
        init_cfg (dict, optional): mmengine initialisation config of the wrapper, applied after the
            generator's own initialisation (e.g. ``Pretrained`` of a mixed checkpoint). Default: None.
    """

    def __init__(self,
                 generator: Union[dict, nn.Module],
                 insert: Sequence[dict] = (),
                 attention_cfg: Optional[dict] = None,
                 probe_shape: Optional[Sequence[int]] = None,
                 plain_weights: Optional[Union[str, dict]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        net = MODELS.build(generator) if isinstance(generator, Mapping) else generator
        if not isinstance(net, nn.Module):
            raise TypeError(f'generator must be a config dict or an nn.Module, got {type(net).__name__}')
        if ATTENTIONS in net._modules or hasattr(net, ATTENTIONS):
            raise ValueError(f'{type(net).__name__} already has an attribute {ATTENTIONS!r}; '
                             f'WithPyramidAttention cannot wrap it')
        if plain_weights is not None and not isinstance(plain_weights, (str, Mapping)):
            raise TypeError(f'plain_weights must be a path or a dict(checkpoint=...), '
                            f'got {type(plain_weights).__name__}')
        # The generator itself is kept out of the module tree; its tables are shared instead (see module docstring).
        object.__setattr__(self, '_generator', net)
        object.__setattr__(self, '_parameters', net._parameters)
        object.__setattr__(self, '_buffers', net._buffers)
        object.__setattr__(self, '_non_persistent_buffers_set', net._non_persistent_buffers_set)
        object.__setattr__(self, '_modules', net._modules)
        self.plain_weights = plain_weights

        specs = self._parse_insert(net, insert, attention_cfg or {})
        if probe_shape is None:
            probe_shape = (_probe_input_channels(net), 32, 32)
        records = _run_probe(net, [(s['where'], s['module']) for s in specs], tuple(probe_shape)) if specs else {}

        attentions = nn.ModuleDict()
        sites = []
        for spec in specs:
            site, attention = self._make_attention(spec, records[(spec['where'], spec['module'])], probe_shape)
            attentions[site.name] = attention
            sites.append(site)
        self.add_module(ATTENTIONS, attentions)  # registered in the shared table: net.attentions exists too
        self.sites: Tuple[InsertionSite, ...] = tuple(sites)
        for site in self.sites:
            hook_cls = _AfterHook if site.where == 'after' else _BeforeHook
            target = net.get_submodule(site.module)
            hook = hook_cls(attentions[site.name], site.layout)
            if site.where == 'after':
                target.register_forward_hook(hook)
            else:
                target.register_forward_pre_hook(hook)

    # ----------------------------------------------------------------------------------------- build

    @staticmethod
    def _parse_insert(net: nn.Module, insert: Sequence[dict], attention_cfg: Mapping) -> List[dict]:
        """Validate the ``insert`` entries and expand ``after_every`` into single positions."""
        if isinstance(insert, Mapping) or isinstance(insert, str):
            raise TypeError(f'insert must be a list of dicts such as [dict(after="body.7")], got {insert!r}')
        allowed = set(_ATTENTION_ARGS) | set(_EXTRA_ARGS)
        for key in attention_cfg:
            if key not in allowed or key == 'channels':
                raise ValueError(f'attention_cfg key {key!r} is not a PyramidAttention argument '
                                 f'(allowed: {", ".join(sorted(allowed - {"channels"}))})')
        modules = dict(net.named_modules())
        specs: List[dict] = []
        for i, entry in enumerate(insert):
            entry = dict(entry)
            where_keys = [k for k in ('after', 'before', 'after_every') if k in entry]
            if len(where_keys) != 1:
                raise ValueError(f'insert[{i}] = {entry} needs exactly one of after=NAME, before=NAME or '
                                 f'after_every=N with of=NAME')
            kind = where_keys[0]
            if kind == 'after_every':
                n, parent = entry.pop('after_every'), entry.pop('of', None)
                if not isinstance(n, int) or n < 1:
                    raise ValueError(f'insert[{i}] after_every={n!r} must be a positive int')
                container = WithPyramidAttention._lookup(net, modules, parent, f'insert[{i}] of')
                if not isinstance(container, (nn.Sequential, nn.ModuleList)):
                    raise ValueError(f'insert[{i}] of={parent!r} is a {type(container).__name__}; after_every needs '
                                     f'an nn.Sequential or nn.ModuleList (use after=NAME for a single position)')
                children = [name for name, _ in container.named_children()]
                paths = [f'{parent}.{c}' for k, c in enumerate(children) if (k + 1) % n == 0]
                if not paths:
                    raise ValueError(f'insert[{i}] after_every={n} of={parent!r}: {parent!r} has only '
                                     f'{len(children)} children, so no position; use a smaller after_every')
                where = 'after'
            else:
                if 'of' in entry:
                    raise ValueError(f'insert[{i}] has of={entry["of"]!r} without after_every; remove of= '
                                     f'or use after_every=N')
                where, path = kind, entry.pop(kind)
                WithPyramidAttention._lookup(net, modules, path, f'insert[{i}] {kind}')
                paths = [path]
            for key in entry:
                if key not in allowed:
                    close = difflib.get_close_matches(key, sorted(allowed), n=1)
                    hint = f' (did you mean {close[0]!r}?)' if close else ''
                    raise ValueError(f'insert[{i}] key {key!r} is neither a position (after, before, after_every, '
                                     f'of) nor a PyramidAttention argument{hint}')
            for path in paths:
                kwargs = dict(attention_cfg)
                kwargs.update(entry)
                specs.append(dict(where=where, module=path, kwargs=kwargs, index=i))
        seen: Dict[str, int] = {}
        for spec in specs:
            name = _site_name(spec['where'], spec['module'])
            if name in seen:
                raise ValueError(f'insert[{spec["index"]}] puts a second attention {spec["where"]} '
                                 f'{spec["module"]!r} (already from insert[{seen[name]}]); remove one of them')
            seen[name] = spec['index']
        return specs

    @staticmethod
    def _lookup(net: nn.Module, modules: Dict[str, nn.Module], path: Any, what: str) -> nn.Module:
        if isinstance(path, str) and path and path in modules:
            return modules[path]
        names = [n for n in modules if n]
        listed = [n for n in names if n.count('.') < _LISTED_DEPTH]
        shown = ', '.join(listed[:80]) + (f', ... ({len(listed) - 80} more)' if len(listed) > 80 else '')
        close = difflib.get_close_matches(str(path), names, n=3, cutoff=0.6)
        hint = f'; closest: {", ".join(close)}' if close else ''
        raise ValueError(f'{what}={path!r} is not a submodule of {type(net).__name__}{hint}; valid positions '
                         f'(up to {_LISTED_DEPTH} levels, deeper dotted names work too): {shown}')

    @staticmethod
    def _make_attention(spec: dict, record: _ProbeRecord,
                        probe_shape: Sequence[int]) -> Tuple[InsertionSite, PyramidAttention]:
        where, path, kwargs = spec['where'], spec['module'], dict(spec['kwargs'])
        label = f'insert[{spec["index"]}] ({where} {path!r})'
        if record.calls == 0:
            raise ValueError(f'{label}: the module never runs in the generator\'s forward (probe input '
                             f'{(1, *probe_shape)}); pick a module that runs once per forward')
        if record.calls > 1:
            raise ValueError(f'{label}: the module runs {record.calls} times per forward (a shared module); '
                             f'an attention there would run after every call; pick a module that runs once')
        value = record.value
        layout = None
        if isinstance(value, Tensor) and value.dim() == 4:
            layout, channels = 'nchw', int(value.shape[1])
        elif isinstance(value, Tensor) and value.dim() == 3 and _token_hw(record.args, value.shape[1]):
            layout, channels = 'tokens', int(value.shape[2])
        if layout is None:
            what = 'outputs' if where == 'after' else 'receives'
            raise ValueError(f'{label}: the module {what} {_describe(value)}, not a (B, C, H, W) feature map '
                             f'(nor (B, H*W, C) tokens with an (H, W) argument); pick another position')
        given = kwargs.pop('channels', None)
        if given is not None and given != channels:
            raise ValueError(f'{label}: channels={given} but the module gives {channels} channels; '
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
                raise ValueError(f'{label}: {exc}') from exc
        if identity_init:
            if attention.res_scale != 1:
                raise ValueError(f'{label}: identity_init=True needs res_scale=1 (got {attention.res_scale}); '
                                 f'set res_scale=1 or drop identity_init')
            value_conv = attention.value[0]
            nn.init.zeros_(value_conv.weight)
            nn.init.zeros_(value_conv.bias)
        return InsertionSite(name=name, where=where, module=path, channels=channels, layout=layout), attention

    # ----------------------------------------------------------------------------------------- module

    @property
    def wrapped(self) -> nn.Module:
        """The wrapped generator object (its parameter, buffer and module tables are this wrapper's)."""
        return self._generator

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            net = self.__dict__.get('_generator')
            if net is None:
                raise
            return getattr(net, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the generator's own forward; the inserted blocks run from their hooks.

        Args:
            *args: Positional arguments of the generator's forward.
            **kwargs: Keyword arguments of the generator's forward.

        Returns:
            Whatever the generator returns.
        """
        return self._generator(*args, **kwargs)

    def train(self, mode: bool = True) -> WithPyramidAttention:
        """Set train / eval mode of the wrapper, the generator object and all submodules."""
        super().train(mode)
        self._generator.training = mode
        return self

    def extra_repr(self) -> str:
        lines = [f'generator={type(self._generator).__name__}']
        for site in self.sites:
            lines.append(f'{ATTENTIONS}.{site.name}: {site.where} {site.module} '
                         f'(channels={site.channels}, layout={site.layout})')
        return '\n'.join(lines)

    def attention_keys(self) -> List[str]:
        """State-dict keys of the inserted blocks (everything else has the plain generator's names)."""
        return [k for k in self.state_dict() if k.startswith(ATTENTIONS + '.')]

    # ---------------------------------------------------------------------------------------- weights

    def init_weights(self) -> None:
        """Initialise as the plain generator would, then load ``plain_weights`` and apply ``init_cfg``."""
        net = self._generator
        shared_info = getattr(self, '_params_init_info', None)
        if hasattr(net, 'init_weights'):
            if shared_info is not None:
                net._params_init_info = shared_info
            try:
                net.init_weights()
            finally:
                if shared_info is not None:
                    del net._params_init_info
        if self.plain_weights is not None:
            spec = self.plain_weights
            spec = dict(checkpoint=spec) if isinstance(spec, str) else dict(spec)
            if 'checkpoint' not in spec:
                raise ValueError(f'plain_weights={self.plain_weights} needs a checkpoint= path')
            self.load_plain_weights(**spec)
        if self.init_cfg:
            from mmengine.model.weight_init import initialize
            initialize(self, self.init_cfg)
        self._is_init = True

    def load_plain_weights(self,
                           checkpoint: Union[str, Mapping[str, Tensor]],
                           prefix: Optional[str] = None,
                           map_location: str = 'cpu') -> List[str]:
        """Load weights of the plain generator: strict for every generator tensor, attention left as is.

        Every tensor of the generator must be in the checkpoint with the right shape and the
        checkpoint may hold nothing else (under ``prefix``); the inserted blocks' tensors may be
        absent (then they keep their current values and are listed in the log and the return value)
        or present (a mixed checkpoint; then all of them must be).

        Args:
            checkpoint (str | Mapping[str, Tensor]): Path of a checkpoint (loaded weights-only; URLs through mmengine),
                or a state dict. A ``'state_dict'`` entry is used when present.
            prefix (str, optional): Prefix of the generator's keys in the checkpoint:
                ``'generator.'`` for an mmagic edit-model checkpoint, ``''`` for a bare generator
                state dict. Default: None (whichever of the two matches).
            map_location (str): Device to load a checkpoint file onto. Default: 'cpu'.

        Returns:
            list[str]: State-dict keys of the inserted blocks that were not in the checkpoint.
        """
        source = checkpoint if isinstance(checkpoint, str) else 'the given state dict'
        if isinstance(checkpoint, str):  # weights-only: a crafted file cannot run code, even under mmagic's tools
            from panet_mm.engine.checkpoint import load_checkpoint_file
            checkpoint = load_checkpoint_file(checkpoint, map_location=map_location)
        state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, Mapping) else None
        if not isinstance(state, Mapping):
            raise TypeError(f'{source} is not a state dict (got {type(checkpoint).__name__})')
        own = self.state_dict()
        attention_keys = [k for k in own if k.startswith(ATTENTIONS + '.')]
        plain_keys = [k for k in own if not k.startswith(ATTENTIONS + '.')]
        if prefix is None:
            counts = {p: sum(p + k in state for k in plain_keys) for p in ('', 'generator.')}
            prefix = max(counts, key=counts.get)
            if counts[prefix] == 0:
                sample = ', '.join(list(state)[:5])
                raise ValueError(f'none of the generator\'s keys (e.g. {plain_keys[:1]}) is in {source}, with or '
                                 f'without the prefix "generator." (it has e.g. {sample}); pass prefix=...')
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        missing = [k for k in plain_keys if k not in sub]
        unexpected = [k for k in sub if k not in own]
        if missing or unexpected:
            raise ValueError(f'{source} (prefix {prefix!r}) does not match the plain {type(self._generator).__name__}: '
                             f'missing {missing[:10]}{" ..." if len(missing) > 10 else ""}, '
                             f'unexpected {unexpected[:10]}{" ..." if len(unexpected) > 10 else ""}; '
                             f'check the generator config and prefix')
        present = [k for k in attention_keys if k in sub]
        if present and len(present) != len(attention_keys):
            absent = [k for k in attention_keys if k not in sub]
            raise ValueError(f'{source} holds only some attention tensors (missing {absent[:10]}); '
                             f'it does not fit this insertion layout')
        bad = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
               for k, v in sub.items() if tuple(v.shape) != tuple(own[k].shape)]
        if bad:
            raise ValueError(f'{source} has tensors of the wrong shape: {"; ".join(bad[:10])}; '
                             f'check the generator config (widths, depth, scale)')
        result = self.load_state_dict(sub, strict=False)
        left = list(result.missing_keys)
        assert sorted(left) == sorted(k for k in attention_keys if k not in sub), left
        print_log(f'WithPyramidAttention: loaded {len(sub)} tensors of the plain {type(self._generator).__name__} '
                  f'from {source} (prefix {prefix!r}); attention tensors left at their initial values: '
                  f'{", ".join(left) if left else "none"}', logger='current')
        return left


def load_plain_weights(model: nn.Module,
                       checkpoint: Union[str, Mapping[str, Tensor]],
                       prefix: Optional[str] = None,
                       map_location: str = 'cpu') -> List[str]:
    """Load plain-generator weights into the ``WithPyramidAttention`` inside ``model``.

    ``model`` is the wrapper itself or a module holding exactly one (an mmagic edit model whose
    ``generator`` is the wrapper). See :meth:`WithPyramidAttention.load_plain_weights`.

    Args:
        model (nn.Module): The wrapper, or a model containing one.
        checkpoint (str | Mapping[str, Tensor]): Checkpoint path or state dict of the plain model.
        prefix (str, optional): Prefix of the generator's keys in the checkpoint. Default: None (auto).
        map_location (str): Device to load a checkpoint file onto. Default: 'cpu'.

    Returns:
        list[str]: State-dict keys (relative to the wrapper) of the attention tensors left as they were.
    """
    wrappers = [m for m in model.modules() if isinstance(m, WithPyramidAttention)]
    if len(wrappers) != 1:
        raise ValueError(f'{type(model).__name__} holds {len(wrappers)} WithPyramidAttention modules; '
                         f'call load_plain_weights on the one you mean')
    return wrappers[0].load_plain_weights(checkpoint, prefix=prefix, map_location=map_location)


__all__ = ['WithPyramidAttention', 'InsertionSite', 'load_plain_weights']
