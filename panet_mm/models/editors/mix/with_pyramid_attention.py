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

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmagic.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor

from panet_mm.ops.pyramid import smallest_side
from panet_mm.utils.checkpoint import StateDictDiff, compare_state_dicts, list_keys, unwrap_state_dict

from .errors import InsertionError, PlainWeightsError
from .probe import probe_input_channels, run_probe
from .sites import InsertionSite, make_attention, parse_insert, token_hw

ATTENTIONS = 'attentions'  # child name of the inserted blocks; state-dict keys start with 'attentions.'


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


def _apply_attention(attention: nn.Module, layout: str, x: Tensor, args: Sequence[Any]) -> Tensor:
    if layout == 'nchw':
        return attention(x)
    b, n, c = x.shape
    hw = token_hw(args, n)
    if hw is None:
        raise RuntimeError(f'inserted pyramid attention expected an (H, W) argument with H*W = {int(n)} next to '
                           f'its (B, H*W, C) tokens; the module was called without one')
    y = attention(x.transpose(1, 2).reshape(b, c, hw[0], hw[1]))
    return y.flatten(2).transpose(1, 2)


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
        if hasattr(net, ATTENTIONS):
            raise InsertionError(f'{type(net).__name__} already has an attribute {ATTENTIONS!r}; '
                                 f'WithPyramidAttention cannot wrap it')
        if plain_weights is not None and not isinstance(plain_weights, (str, Mapping)):
            raise TypeError(f'plain_weights must be a path or a dict(checkpoint=...), '
                            f'got {type(plain_weights).__name__}')
        self._share_tables(net)
        self.plain_weights = plain_weights

        specs = parse_insert(net, insert, attention_cfg or {})
        if probe_shape is None:
            probe_shape = (probe_input_channels(net), 32, 32)
        records = run_probe(net, [(s['where'], s['module']) for s in specs], tuple(probe_shape)) if specs else {}

        attentions = nn.ModuleDict()
        sites = []
        for spec in specs:
            site, attention = make_attention(spec, records[(spec['where'], spec['module'])], probe_shape)
            attentions[site.name] = attention
            sites.append(site)
        self.add_module(ATTENTIONS, attentions)  # registered in the shared table: net.attentions exists too
        self.sites: Tuple[InsertionSite, ...] = tuple(sites)
        for site in self.sites:
            target = net.get_submodule(site.module)
            if site.where == 'after':
                target.register_forward_hook(_AfterHook(attentions[site.name], site.layout))
            else:
                target.register_forward_pre_hook(_BeforeHook(attentions[site.name], site.layout))

    def _share_tables(self, net: nn.Module) -> None:
        """Keep ``net`` out of the module tree and use its tables as this module's own.

        This is the one place that touches ``nn.Module``'s tables: sharing them (the very same dicts)
        is what gives the wrapper the plain generator's state-dict names (see the module docstring).
        """
        object.__setattr__(self, '_generator', net)
        for table in ('_parameters', '_buffers', '_non_persistent_buffers_set', '_modules'):
            object.__setattr__(self, table, getattr(net, table))

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

    def min_input_size(self) -> int:
        """Smallest input side for which every inserted attention's pyramid levels are non-empty.

        An attention at a quarter of the input's resolution (NAFNet's middle) needs 4x the pixels one at
        full resolution needs (:attr:`InsertionSite.input_per_pixel`); ``PANetEditModel`` pads smaller inputs.
        """
        need = 1
        for site in self.sites:
            n = smallest_side(self.attentions[site.name].scales)
            need = max(need, math.ceil(n * site.input_per_pixel - 1e-9))
        return need

    def attention_keys(self) -> List[str]:
        """State-dict keys of the inserted blocks (everything else has the plain generator's names)."""
        return [k for k in self.state_dict() if k.startswith(ATTENTIONS + '.')]

    # ---------------------------------------------------------------------------------------- weights

    def init_weights(self) -> None:
        """Initialise as the plain generator would, then load ``plain_weights`` and apply ``init_cfg``."""
        net = self._generator
        # mmengine's BaseModule.init_weights records each parameter's initialiser in the root's
        # _params_init_info; the generator is outside the module tree, so it borrows the wrapper's record.
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
                raise PlainWeightsError(f'plain_weights={self.plain_weights} needs a checkpoint= path')
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
        state = _plain_state(checkpoint, source, map_location)
        own = self.state_dict()
        attention_keys = [k for k in own if k.startswith(ATTENTIONS + '.')]
        plain_keys = [k for k in own if not k.startswith(ATTENTIONS + '.')]
        if prefix is None:
            prefix = _choose_prefix(state, plain_keys, source)
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        self._check_plain_match(sub, own, attention_keys, f'{source} (prefix {prefix!r})', source)
        result = self.load_state_dict(sub, strict=False)
        left = list(result.missing_keys)
        assert sorted(left) == sorted(k for k in attention_keys if k not in sub), left
        print_log(f'WithPyramidAttention: loaded {len(sub)} tensors of the plain {type(self._generator).__name__} '
                  f'from {source} (prefix {prefix!r}); attention tensors left at their initial values: '
                  f'{", ".join(left) if left else "none"}', logger='current')
        return left

    def _check_plain_match(self, sub: Mapping[str, Tensor], own: Mapping[str, Tensor], attention_keys: List[str],
                           where: str, source: str) -> None:
        """Refuse a checkpoint that lacks a generator tensor, has extra or mis-shaped ones, or half the attention."""
        diff = compare_state_dicts(own, sub)
        order = {k: i for i, k in enumerate(dict.fromkeys([*own, *sub]))}  # the model's order: first layer first
        diff = StateDictDiff(*(sorted(group, key=lambda k: order[k if isinstance(k, str) else k[0]]) for group in diff))
        missing = [k for k in diff.missing if not k.startswith(ATTENTIONS + '.')]
        if missing or diff.unexpected:
            groups = StateDictDiff(missing, diff.unexpected, []).lines()
            raise PlainWeightsError(f'{where} does not match the plain {type(self._generator).__name__}: '
                                    f'{"; ".join(groups)}; check the generator config and prefix')
        present = [k for k in attention_keys if k in sub]
        if present and len(present) != len(attention_keys):
            absent = [k for k in attention_keys if k not in sub]
            raise PlainWeightsError(f'{source} holds only some attention tensors (missing {list_keys(absent)}); '
                                    f'it does not fit this insertion layout')
        if diff.mismatched:
            raise PlainWeightsError(f'{source} has tensors of the wrong shape: {list_keys(diff.misshaped())}; '
                                    f'check the generator config (widths, depth, scale)')


def _plain_state(checkpoint: Union[str, Mapping[str, Tensor]], source: str, map_location: str) -> Dict[str, Tensor]:
    """The state dict of a checkpoint path (loaded weights-only) or of a given dict."""
    if isinstance(checkpoint, str):  # weights-only: a crafted file cannot run code, even under mmagic's tools
        from panet_mm.engine.checkpoint import load_checkpoint_file
        checkpoint = load_checkpoint_file(checkpoint, map_location=map_location)
    return unwrap_state_dict(checkpoint, source, strip=())


def _choose_prefix(state: Mapping[str, Tensor], plain_keys: List[str], source: str) -> str:
    """``''`` or ``'generator.'``, whichever puts more of the generator's keys in ``state``."""
    counts = {p: sum(p + k in state for k in plain_keys) for p in ('', 'generator.')}
    prefix = max(counts, key=counts.get)
    if counts[prefix] == 0:
        sample = ', '.join(list(state)[:5])
        raise PlainWeightsError(f'none of the generator\'s keys (e.g. {plain_keys[:1]}) is in {source}, with or '
                                f'without the prefix "generator." (it has e.g. {sample}); pass prefix=...')
    return prefix

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
        raise PlainWeightsError(f'{type(model).__name__} holds {len(wrappers)} WithPyramidAttention modules; '
                                f'call load_plain_weights on the one you mean')
    return wrappers[0].load_plain_weights(checkpoint, prefix=prefix, map_location=map_location)


__all__ = ['WithPyramidAttention', 'InsertionSite', 'load_plain_weights']
