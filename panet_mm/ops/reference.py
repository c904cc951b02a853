"""Pyramid attention written as directly as possible: the reference the fast kernel is tested against.

It materialises the full ``(H*W) x L`` score map (``L ~= 3.3*H*W`` for five levels), so its memory
is quadratic in the number of pixels; see :mod:`panet_mm.ops.pyramid` for the formula.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .pyramid import check_inputs, extract_patches, normalised_key_patches

__all__ = ['pyramid_attention_reference', 'released_block_attention']


def pyramid_attention_reference(query: Tensor,
                                keys: Sequence[Tensor],
                                values: Sequence[Tensor],
                                ksize: int = 3,
                                softmax_scale: float = 10.0,
                                eps: float = 1e-4,
                                divisor: float = 4.0) -> Tensor:
    """Straightforward pyramid attention: the full score map, batched, autograd does the rest.

    This is the formulation of the released code (without its Python loop over the batch). It is
    kept as the reference the fast kernel is tested and benchmarked against; its memory is
    quadratic in the number of pixels.

    Args:
        query (Tensor): ``(B, Cq, H, W)`` query embedding of the block input.
        keys (Sequence[Tensor]): ``(B, Cq, H_l, W_l)`` key embedding of every pyramid level.
        values (Sequence[Tensor]): ``(B, C, H_l, W_l)`` value embedding of every pyramid level.
        ksize (int): Patch size. Default: 3.
        softmax_scale (float): Multiplier of the scores before the softmax. Default: 10.
        eps (float): Lower bound of a key patch's norm. Default: 1e-4.
        divisor (float): The pasted patches are divided by this (4 in the released code). Default: 4.

    Returns:
        Tensor: ``(B, C, H, W)``, the attention branch (the block adds ``res_scale * x``).
    """
    _, h, w, _ = check_inputs(query, keys, values)
    q = extract_patches(query, ksize)                                  # (B, HW, Cq*k*k)
    k = normalised_key_patches(keys, ksize, eps)                       # (B, L, Cq*k*k)
    v = torch.cat([extract_patches(t, ksize) for t in values], dim=1)  # (B, L, C*k*k)
    scores = torch.bmm(q, k.transpose(1, 2))                           # (B, HW, L)
    attn = torch.softmax(scores * softmax_scale, dim=-1)
    patches = torch.bmm(attn, v)                                       # (B, HW, C*k*k)
    out = F.fold(patches.transpose(1, 2), (h, w), ksize, padding=ksize // 2)
    return out / divisor



def released_block_attention(query: Tensor,
                             keys: Sequence[Tensor],
                             values: Sequence[Tensor],
                             ksize: int = 3,
                             softmax_scale: float = 10.0,
                             eps: float = 1e-4,
                             divisor: float = 4.0) -> Tensor:
    """The attention maths of the released PANet block, computed the way its code computes it.

    Written here from the released ``attention.py``'s description (not copied), as the baseline the
    benchmark measures users' alternative against: the key and value patches of every level are
    unfolded for the whole batch, then a Python loop over the images uses the normalised key patches
    as the filters of one ``conv2d`` over the zero-padded query (the scores, ``(1, L, H, W)``), takes
    the softmax over the ``L`` channels and pastes the value patches with ``conv_transpose2d`` (the
    value patches as its filters), divided by ``divisor``. It gives the same function as
    :func:`pyramid_attention_reference`; its memory is quadratic in the number of pixels too.

    Args:
        query (Tensor): ``(B, Cq, H, W)`` query embedding of the block input.
        keys (Sequence[Tensor]): ``(B, Cq, H_l, W_l)`` key embedding of every pyramid level.
        values (Sequence[Tensor]): ``(B, C, H_l, W_l)`` value embedding of every pyramid level.
        ksize (int): Patch size (odd). Default: 3.
        softmax_scale (float): Multiplier of the scores before the softmax. Default: 10.
        eps (float): Lower bound of a key patch's norm. Default: 1e-4.
        divisor (float): The pasted patches are divided by this. Default: 4.

    Returns:
        Tensor: ``(B, C, H, W)``, as :func:`pyramid_attention_reference`.
    """
    b, h, w, c = check_inputs(query, keys, values)
    if ksize % 2 != 1:
        raise ValueError(f'ksize must be odd, got {ksize}')
    pad = ksize // 2

    def filters(t: Tensor) -> Tensor:          # (B, C, H_l, W_l) -> (B, H_l*W_l, C, k, k)
        cols = F.unfold(t, ksize, padding=pad)
        return cols.view(t.shape[0], t.shape[1], ksize, ksize, -1).permute(0, 4, 1, 2, 3)

    key_filters = [filters(t) for t in keys]
    value_filters = [filters(t) for t in values]
    out = []
    for i in range(b):
        k_i = torch.cat([f[i] for f in key_filters], dim=0)                        # (L, Cq, k, k)
        norm = k_i.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(eps)
        scores = F.conv2d(F.pad(query[i:i + 1], (pad, pad, pad, pad)), k_i / norm)  # (1, L, H, W)
        attn = torch.softmax(scores * softmax_scale, dim=1)
        v_i = torch.cat([f[i] for f in value_filters], dim=0)                       # (L, C, k, k)
        out.append(F.conv_transpose2d(attn, v_i, padding=pad) / divisor)
    return torch.cat(out, dim=0)
