"""The pyramid and the patches pyramid attention matches: scales, bicubic levels, unfolded patches.

Notation used throughout :mod:`panet_mm.ops` (one image; everything is batched over ``B``):

* ``query``  ``q``: ``(B, Cq, H, W)``, the embedded block input (theta(x)).
* ``keys``   ``k_l``: ``(B, Cq, H_l, W_l)``, one per pyramid level (g(x_l)).
* ``values`` ``v_l``: ``(B, C, H_l, W_l)``, one per pyramid level (f(x_l)).

With ``P(t)`` the ``k x k`` zero-padded patch of ``t`` around a pixel, flattened in ``(c, dy, dx)``
order, the released PANet computes::

    K_j   = P(k)_j / max(||P(k)_j||_2, eps)            # every patch j of every level
    S_pj  = <P(q)_p, K_j>                              # no normalisation of the query
    A_pj  = softmax_j(softmax_scale * S_pj)            # ONE softmax over all levels jointly
    O_p   = sum_j A_pj * P(v)_j                        # a C x k x k patch per query pixel p
    out   = fold(O) / divisor                          # overlapping pastes add up; divisor is 4
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['pyramid_scales', 'level_sizes', 'smallest_side', 'build_pyramid', 'extract_patches',
           'normalised_key_patches']


def pyramid_scales(levels: int, step: float = 0.1) -> List[float]:
    """Scales of the pyramid levels: ``1 - i*step`` for ``i`` in ``0..levels-1``.

    Args:
        levels (int): Number of levels (the paper uses 5: 1.0, 0.9, 0.8, 0.7, 0.6).
        step (float): Scale decrement between two levels. Default: 0.1.

    Returns:
        list[float]: The scale of every level, the first being 1.0.
    """
    if levels < 1:
        raise ValueError(f'levels must be >= 1, got {levels}')
    scales = [1.0 - i * step for i in range(levels)]
    if scales[-1] <= 0:
        raise ValueError(f'levels={levels} with step={step} gives a non-positive scale {scales[-1]:g}; '
                         'use fewer levels or a smaller step')
    return scales


def level_sizes(height: int, width: int, scales: Sequence[float]) -> List[Tuple[int, int]]:
    """``(H_l, W_l)`` of every pyramid level of an ``height x width`` map: the floored products, as
    :func:`build_pyramid` resamples (``recompute_scale_factor=True``)."""
    return [(torch.sym_int(height * s), torch.sym_int(width * s)) for s in scales]  # (symbolic under export)


def smallest_side(scales: Sequence[float]) -> int:
    """Smallest side ``n`` for which every level ``floor(n * s)`` of the pyramid is at least one pixel.

    Args:
        scales (Sequence[float]): Scale of every level.

    Returns:
        int: The smallest side (1 for a pyramid of scale 1 only).
    """
    n = 1
    while any(int(n * s) < 1 for s in scales):
        n += 1
    return n


def build_pyramid(x: Tensor, scales: Sequence[float]) -> List[Tensor]:
    """Bicubic pyramid of ``x`` as the released code builds it.

    Level ``i`` has size ``floor(s_i*H) x floor(s_i*W)`` (``x`` itself for ``s_i == 1``) and is
    resampled bicubically (``align_corners=False``) with the step ``H / floor(s_i*H)`` implied by the
    sizes. That is what ``F.interpolate(x, scale_factor=s_i, mode='bicubic')`` did on PyTorch 1.1, which
    the released models were trained with; since PyTorch 1.6 the same call samples with the step
    ``1 / s_i`` instead (other pixels), so ``recompute_scale_factor=True`` keeps the trained behaviour.

    Args:
        x (Tensor): Input of shape ``(B, C, H, W)``.
        scales (Sequence[float]): Scale of every level.

    Returns:
        list[Tensor]: One tensor per level.
    """
    levels = []
    for s in scales:
        if s == 1:
            levels.append(x)
        else:
            if min(level_sizes(x.shape[-2], x.shape[-1], [s])[0]) < 1:
                raise ValueError(f'input of size {tuple(x.shape[-2:])} is too small for a pyramid level at '
                                 f'scale {s:g}; use an input of at least {smallest_side([s])} pixels per side')
            levels.append(F.interpolate(x, scale_factor=s, mode='bicubic', align_corners=False,
                                        recompute_scale_factor=True))
    return levels


def extract_patches(x: Tensor, ksize: int = 3) -> Tensor:
    """All ``ksize x ksize`` patches with stride 1 and "same" zero padding.

    Args:
        x (Tensor): ``(B, C, H, W)``.
        ksize (int): Odd patch size. Default: 3.

    Returns:
        Tensor: ``(B, H*W, C*ksize*ksize)``, patches in row-major pixel order, each flattened in
        ``(c, dy, dx)`` order.
    """
    if ksize % 2 != 1:
        raise ValueError(f'ksize must be odd, got {ksize}')
    return F.unfold(x, ksize, padding=ksize // 2).transpose(1, 2)


def normalised_key_patches(keys: Sequence[Tensor], ksize: int = 3, eps: float = 1e-4) -> Tensor:
    """Key patches of every level, concatenated and divided by ``max(||patch||_2, eps)``.

    Args:
        keys (Sequence[Tensor]): One ``(B, Cq, H_l, W_l)`` tensor per level.
        ksize (int): Patch size. Default: 3.
        eps (float): Lower bound of the norm (the released ``escape_NaN``). Default: 1e-4.

    Returns:
        Tensor: ``(B, L, Cq*ksize*ksize)`` with ``L = sum_l H_l*W_l``.
    """
    k = torch.cat([extract_patches(t, ksize) for t in keys], dim=1)
    norm = k.pow(2).sum(dim=-1, keepdim=True).sqrt()
    return k / norm.clamp_min(eps)


def check_inputs(query: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor]) -> Tuple[int, int, int, int]:
    """``(B, H, W, C)`` of a call's inputs, or a ValueError naming the argument whose shape does not fit."""
    if query.dim() != 4:
        raise ValueError(f'query must be (B, C, H, W), got shape {tuple(query.shape)}')
    if len(keys) == 0 or len(keys) != len(values):
        raise ValueError(f'need one key and one value map per level, got {len(keys)} keys and {len(values)} values')
    # ints under torch.jit.trace (sizes are tensors there); not otherwise: under torch.export the sizes stay
    # symbolic, and int() would pin a dynamic batch to the example's
    tracing = torch.jit.is_tracing()
    b, cq, h, w = (int(s) for s in query.shape) if tracing else query.shape
    for i, (k, v) in enumerate(zip(keys, values)):
        if k.shape[0] != b or k.shape[1] != cq:
            raise ValueError(f'keys[{i}] has shape {tuple(k.shape)}, expected batch {b} and {cq} channels')
        if v.shape[0] != b or v.shape[-2:] != k.shape[-2:]:
            raise ValueError(f'values[{i}] has shape {tuple(v.shape)}, expected batch {b} and size '
                             f'{tuple(k.shape[-2:])} like keys[{i}]')
        if v.shape[1] != values[0].shape[1]:
            raise ValueError(f'values[{i}] has {v.shape[1]} channels, values[0] has {values[0].shape[1]}')
    cv = values[0].shape[1]
    return b, h, w, int(cv) if tracing else cv

