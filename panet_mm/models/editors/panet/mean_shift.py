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
    """``y = (x + sign * rgb_range * mean) / std`` per channel, with frozen weights.

    Args:
        rgb_range (float): Range the network works in (panet_mm's configs: 255; the released models were
            trained at 1, which ``tools/model_converters/convert_official_ckpt.py`` converts exactly).
        mean (Sequence[float]): Channel means in ``[0, 1]``.
        std (Sequence[float]): Channel standard deviations. Default: all ones.
        sign (int): -1 subtracts the mean, +1 adds it back.
    """

    def __init__(self, rgb_range: float, mean: Sequence[float], std: Sequence[float] = (1.0, 1.0, 1.0),
                 sign: int = -1) -> None:
        channels = len(mean)
        super().__init__(channels, channels, kernel_size=1)
        std_t = torch.tensor(std, dtype=torch.float32)
        with torch.no_grad():
            self.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1) / std_t.view(channels, 1, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(mean, dtype=torch.float32) / std_t)
        for p in self.parameters():
            p.requires_grad = False
