"""Residual block of PANet / PA-EDSR.

Why not mmagic's ``ResidualBlockNoBN``: it hard-codes ReLU and rescales its initial weights by 0.1,
while PANet uses a learnable PReLU and the released models use PyTorch's default initialisation.
"""
from __future__ import annotations

import torch.nn as nn
from torch import Tensor


class ResBlock(nn.Module):
    """``x + res_scale * conv3x3(act(conv3x3(x)))``, convolutions with bias, no normalisation.

    Args:
        channels (int): Channels of the input and output.
        act (str): ``'relu'`` (PA-EDSR) or ``'prelu'`` (PANet, one slope per block). Default: 'relu'.
        res_scale (float): Scale of the residual branch. Default: 1.
    """

    def __init__(self, channels: int, act: str = 'relu', res_scale: float = 1.0) -> None:
        super().__init__()
        if act not in ('relu', 'prelu'):
            raise ValueError(f"act must be 'relu' or 'prelu', got {act!r}")
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.act = nn.ReLU(inplace=True) if act == 'relu' else nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        """Forward: ``(B, C, H, W) -> (B, C, H, W)``."""
        return x + self.conv2(self.act(self.conv1(x))) * self.res_scale
