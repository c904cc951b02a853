"""``CompositeLoss``: the weighted sum of registered losses, for mmagic's single ``pixel_loss`` slot.

mmagic's ``BaseEditModel`` computes ``pixel_loss(pred, gt)`` with ONE loss module; the PANet /
EDSR reference code trains with sums such as ``--loss 1*L1+0.5*MSE``. ``CompositeLoss`` is one
module that computes such a sum, configured either as a list of loss configs or as that string.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Union

import torch.nn as nn
from mmagic.registry import MODELS
from torch import Tensor

# Names of the reference code's --loss strings (and short forms) -> registered loss types.
LOSS_ALIASES: Dict[str, str] = {
    'L1': 'L1Loss',
    'MSE': 'MSELoss',
    'L2': 'MSELoss',
    'Charbonnier': 'CharbonnierLoss',
    'SSIM': 'SSIMLoss',
}
_TERM = re.compile(r'^\s*(?:([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$')


def parse_loss_string(spec: str) -> List[dict]:
    """Loss configs of a reference-style string such as ``'1*L1+0.5*MSE'``.

    Every ``+``-separated term is ``WEIGHT*NAME`` or ``NAME`` (weight 1). ``NAME`` is one of
    :data:`LOSS_ALIASES` (``L1``, ``MSE``/``L2``, ``Charbonnier``, ``SSIM``) or the type name of any
    loss registered in mmagic's ``MODELS`` (e.g. ``PSNRLoss``). The weight goes to ``loss_weight``.

    Args:
        spec (str): The loss string.

    Returns:
        list[dict]: One ``dict(type=..., loss_weight=...)`` per term.
    """
    configs = []
    for term in spec.split('+'):
        match = _TERM.match(term)
        if not match:
            raise ValueError(f'loss term {term.strip()!r} of {spec!r} is not WEIGHT*NAME (e.g. 0.5*MSE); '
                             f'fix the string')
        weight, name = match.groups()
        loss_type = LOSS_ALIASES.get(name, name)
        if MODELS.get(loss_type) is None:
            raise ValueError(f'loss {name!r} in {spec!r} is neither an alias ({", ".join(LOSS_ALIASES)}) nor a '
                             f'type registered in mmagic MODELS; use one of those (perceptual / GAN terms need '
                             f'their own mmagic models, not pixel_loss)')
        configs.append(dict(type=loss_type, loss_weight=float(weight) if weight is not None else 1.0))
    return configs


@MODELS.register_module()
class CompositeLoss(nn.Module):
    """Weighted sum of any registered losses: ``loss_weight * sum_i loss_i(pred, target)``.

    When to use it: wherever one loss slot (``BaseEditModel``'s ``pixel_loss``) needs several
    terms: the reference recipes' ``1*L1+0.5*MSE``, L1 plus an ``SSIMLoss`` term, Charbonnier plus
    MSE, etc. Each term's weight is its own ``loss_weight`` (mmagic's ``L1Loss``, ``MSELoss``,
    ``CharbonnierLoss``, ... and this project's ``SSIMLoss`` all have one), so::

        pixel_loss=dict(type='CompositeLoss', losses=[
            dict(type='L1Loss', loss_weight=1.0), dict(type='MSELoss', loss_weight=0.5)])
        pixel_loss=dict(type='CompositeLoss', losses='1*L1+0.5*MSE')          # the same

    are equivalent. The terms are called as ``loss(pred, target)`` (``weight=`` and other keyword
    arguments are passed on only when given), which is how ``BaseEditModel`` calls ``pixel_loss``.
    Every term should reduce to a scalar (the default ``reduction='mean'``).

    Args:
        losses (Sequence[dict] | str): Configs of the terms (any type in mmagic's ``MODELS``) or a
            reference-style string, see :func:`parse_loss_string`.
        loss_weight (float): Multiplier of the whole sum. Default: 1.0.
    """

    def __init__(self, losses: Union[Sequence[dict], str], loss_weight: float = 1.0) -> None:
        super().__init__()
        configs = parse_loss_string(losses) if isinstance(losses, str) else list(losses)
        if not configs:
            raise ValueError('CompositeLoss losses=[] is empty; give at least one loss config '
                             'or a string such as "1*L1"')
        for i, cfg in enumerate(configs):
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise ValueError(f'CompositeLoss losses[{i}]={cfg!r} is not a loss config; use dict(type=..., ...)')
        self.loss_weight = loss_weight
        self.losses = nn.ModuleList([MODELS.build(cfg) for cfg in configs])

    def extra_repr(self) -> str:
        terms = ' + '.join(f'{getattr(m, "loss_weight", 1.0):g}*{type(m).__name__}' for m in self.losses)
        return f'loss_weight={self.loss_weight}, terms: {terms}'

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None, **kwargs) -> Tensor:
        """Forward.

        Args:
            pred (Tensor): Prediction, e.g. ``(B, C, H, W)``.
            target (Tensor): Ground truth of the same shape.
            weight (Tensor, optional): Element-wise weight passed to every term. Default: None.
            **kwargs: Passed to every term.

        Returns:
            Tensor: The weighted sum (a scalar when every term reduces to one).
        """
        if weight is not None:
            kwargs['weight'] = weight
        total = None
        for loss in self.losses:
            value = loss(pred, target, **kwargs)
            total = value if total is None else total + value
        return self.loss_weight * total


__all__ = ['CompositeLoss', 'LOSS_ALIASES', 'parse_loss_string']
