"""Frozen 1x1 convolution that subtracts or adds the dataset mean, as in the released PA-EDSR.

Why a convolution and not a buffer (mmagic's EDSRNet keeps the mean in a plain tensor): the released
checkpoints store the mean shifts as ``sub_mean`` / ``add_mean`` convolution weights, and the
paper's parameter counts include them.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


class MeanShift(nn.Conv2d):
    """Per channel, ``y = (x - rgb_range * mean) / std`` (``sign=-1``) or its inverse ``y = x * std + rgb_range *
    mean`` (``sign=+1``), with frozen weights.

    The released code's ``sign=+1`` shift computes ``(x + rgb_range * mean) / std``, which is the inverse only at
    ``std = 1``, the only value its models use; here the add-back undoes the subtraction for any ``std``, as
    mmagic's ``EDSRNet`` does, and equals the released shift wherever the released models run.

    Args:
        rgb_range (float): Range the network works in (panet_mm's configs: 255; the released models were
            trained at 1, which ``tools/model_converters/convert_official_ckpt.py`` converts exactly).
        mean (Sequence[float]): Channel means in ``[0, 1]``.
        std (Sequence[float]): Channel standard deviations. Default: all ones.
        sign (int): -1 subtracts the mean (and divides by ``std``), +1 multiplies by ``std`` and adds the mean
            back. Default: -1.
    """

    def __init__(self, rgb_range: float, mean: Sequence[float], std: Sequence[float] = (1.0, 1.0, 1.0),
                 sign: int = -1) -> None:
        if sign not in (-1, 1):
            raise ValueError(f'sign must be -1 (subtract the mean) or +1 (add it back), got {sign}')
        channels = len(mean)
        if len(std) != channels:
            raise ValueError(f'mean and std need as many values, got {channels} and {len(std)}')
        super().__init__(channels, channels, kernel_size=1)
        std_t = torch.tensor(std, dtype=torch.float32)
        shift = rgb_range * torch.tensor(mean, dtype=torch.float32)
        scale = 1.0 / std_t if sign < 0 else std_t
        with torch.no_grad():
            self.weight.copy_(torch.diag(scale).view(channels, channels, 1, 1))
            self.bias.copy_(-shift / std_t if sign < 0 else shift)
        for p in self.parameters():
            p.requires_grad = False
