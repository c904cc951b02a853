"""The build-time shape probe of ``WithPyramidAttention``: what each insertion position really receives.

The generator runs once on a dummy input, first on PyTorch's ``meta`` device (shapes only: no
arithmetic, no memory, no random numbers), else on a real zero input without grad; every submodule
is in eval mode and every attribute binding is restored afterwards, so the probe leaves no trace.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from panet_mm.utils.checkpoint import first_conv_in_channels

from .errors import InsertionError

Target = Tuple[str, str]  # (where: 'after' | 'before', dotted module name)


class ProbeRecord:
    """What the shape probe saw at one position: how often it ran, its tensor and its call arguments."""

    def __init__(self) -> None:
        self.calls = 0
        self.value: Any = None
        self.args: Tuple[Any, ...] = ()


def probe_input_channels(net: nn.Module) -> int:
    """Input channels of ``net``, read from its first ``Conv2d`` (the default probe input)."""
    channels = first_conv_in_channels(net)
    if channels is not None:
        return channels
    raise InsertionError(f'{type(net).__name__} has no Conv2d to read its input channels from; '
                         f'pass probe_shape=(C, H, W) to WithPyramidAttention')


def _recorder(record: ProbeRecord, where: str) -> Callable[..., None]:
    def after(module: nn.Module, args: Tuple[Any, ...], output: Any) -> None:
        record.calls += 1
        record.value, record.args = output, tuple(args)

    def before(module: nn.Module, args: Tuple[Any, ...]) -> None:
        record.calls += 1
        record.value, record.args = (args[0] if args else None), tuple(args)

    return after if where == 'after' else before


def _register_recorders(net: nn.Module, records: Dict[Target, ProbeRecord]) -> List[Any]:
    modules = dict(net.named_modules())
    handles = []
    for (where, path), record in records.items():
        module = modules[path]
        register = module.register_forward_hook if where == 'after' else module.register_forward_pre_hook
        handles.append(register(_recorder(record, where)))
    return handles


def _binding_restorer(net: nn.Module) -> Callable[[], None]:
    """A function that puts back every attribute binding of every submodule as it is now.

    A forward may rebind attributes (EDSRNet does ``self.mean = self.mean.to(x)``).
    """
    saved = {m: dict(m.__dict__) for m in net.modules()}

    def restore() -> None:
        for module, attrs in saved.items():
            for key in [k for k in module.__dict__ if k not in attrs]:
                del module.__dict__[key]
            for key, value in attrs.items():
                if module.__dict__.get(key) is not value:
                    module.__dict__[key] = value

    return restore


def _probe_on_meta(net: nn.Module, probe_shape: Sequence[int]) -> None:
    tensors = {name: torch.empty_like(t, device='meta')
               for name, t in list(net.named_parameters()) + list(net.named_buffers())}
    with torch.no_grad():
        torch.func.functional_call(net, tensors, (torch.zeros(1, *probe_shape, device='meta'),))


def _probe_for_real(net: nn.Module, probe_shape: Sequence[int]) -> None:
    try:
        with torch.no_grad():
            net(torch.zeros(1, *probe_shape))
    except Exception as exc:
        if isinstance(exc, TypeError) and re.search(r'forward\(\) missing \d+ required positional argument', str(exc)):
            # (LIIF's coord / cell, TTSR's textures: no probe_shape can supply them)
            raise InsertionError(f'{type(net).__name__} takes more inputs than an image ({exc}), so '
                                 'WithPyramidAttention cannot run it to find its insertion sites; pyramid attention '
                                 'can be added to generators whose forward takes one image batch') from exc
        raise InsertionError(f'the shape probe of {type(net).__name__} on an input of shape '
                             f'{(1, *probe_shape)} failed ({type(exc).__name__}: {exc}); pass a probe_shape that the '
                             'generator accepts: one sample without the batch dimension, e.g. (C, H, W) for an image '
                             'model, (T, C, H, W) for a video model') from exc


def run_probe(net: nn.Module, targets: Sequence[Target], probe_shape: Sequence[int]) -> Dict[Target, ProbeRecord]:
    """Run ``net`` once on a dummy input and record what each ``(where, module)`` target sees.

    Args:
        net (nn.Module): The generator (left in eval mode, its attribute bindings unchanged).
        targets (Sequence[tuple[str, str]]): ``('after' | 'before', dotted module name)`` pairs.
        probe_shape (Sequence[int]): One input sample's shape, without the batch dimension.

    Returns:
        dict: A :class:`ProbeRecord` per target.
    """
    records = {target: ProbeRecord() for target in targets}
    handles = _register_recorders(net, records)
    restore = _binding_restorer(net)
    net.eval()
    try:
        try:
            _probe_on_meta(net, probe_shape)
        except Exception:  # noqa: BLE001 - some operation has no meta kernel: probe for real
            restore()
            net.eval()
            for record in records.values():
                record.__init__()
            _probe_for_real(net, probe_shape)
    finally:
        for handle in handles:
            handle.remove()
        restore()
    return records
