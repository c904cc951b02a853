"""Differentiable SSIM and the ``SSIMLoss`` (1 - SSIM), registered in mmagic's ``MODELS``.

SSIM as defined by Wang et al. 2004 ("Image quality assessment: from error visibility to structural
similarity"): local statistics under an 11x11 Gaussian window (sigma 1.5, normalised to sum 1),
``C1 = (K1 * L)^2`` and ``C2 = (K2 * L)^2`` with ``K1 = 0.01``, ``K2 = 0.03`` and ``L`` the data range,
the map computed only where the window fits inside the image ("valid", as the authors' MATLAB code
and mmagic's SSIM metric do), averaged over the map and the channels of every image.
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmagic.registry import MODELS
from torch import Tensor

# ITU-R BT.601 luma of RGB in [0, 1], in the [16/255, 235/255] studio range (MATLAB rgb2ycbcr, mmagic's 'Y').
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0 / 255.0


def gaussian_window_1d(size: int, sigma: float, dtype: torch.dtype = torch.float32,
                       device: Optional[torch.device] = None) -> Tensor:
    """Normalised 1-D Gaussian of ``size`` taps; the 2-D SSIM window is its outer product with itself.

    Args:
        size (int): Number of taps (odd).
        sigma (float): Standard deviation in pixels.
        dtype (torch.dtype): Output dtype. Default: float32.
        device (torch.device, optional): Output device. Default: None (CPU).

    Returns:
        Tensor: ``(size,)``, summing to 1.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f'window_size must be a positive odd number, got {size}')
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def rgb_to_y(img: Tensor, channel_order: str = 'rgb') -> Tensor:
    """BT.601 luma (MATLAB ``rgb2ycbcr`` Y, mmagic's ``convert_to='Y'``) of ``(B, 3, H, W)`` data in [0, 1].

    Args:
        img (Tensor): Colour images in [0, 1].
        channel_order (str): ``'rgb'`` or ``'bgr'``. Default: 'rgb'.

    Returns:
        Tensor: ``(B, 1, H, W)`` in ``[16/255, 235/255]``.
    """
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f"convert_to='Y' needs (B, 3, H, W) colour images, got shape {tuple(img.shape)}")
    weights = _Y_WEIGHTS if channel_order == 'rgb' else _Y_WEIGHTS[::-1]
    w = torch.tensor(weights, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img * w).sum(dim=1, keepdim=True) + _Y_OFFSET


def ssim(pred: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5, data_range: float = 1.0,
         k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Mean SSIM of every image pair, differentiable in both inputs.

    Args:
        pred (Tensor): ``(B, C, H, W)``.
        target (Tensor): Same shape as ``pred``.
        window_size (int): Side of the Gaussian window. Default: 11.
        sigma (float): Standard deviation of the window. Default: 1.5.
        data_range (float): ``L``, the dynamic range of the data (1 for [0, 1]). Default: 1.
        k1 (float): ``C1 = (k1 * L)^2``. Default: 0.01.
        k2 (float): ``C2 = (k2 * L)^2``. Default: 0.03.

    Returns:
        Tensor: ``(B,)``, the SSIM map averaged over positions and channels of each image.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f'ssim needs two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} and '
                         f'{tuple(target.shape)}')
    b, c, h, w = pred.shape
    if h < window_size or w < window_size:
        raise ValueError(f'ssim with window_size={window_size} needs images of at least {window_size}x{window_size}, '
                         f'got {h}x{w}; use a smaller window_size or larger crops')
    g = gaussian_window_1d(window_size, sigma, dtype=pred.dtype, device=pred.device)
    gy = g.view(1, 1, window_size, 1).expand(c, 1, window_size, 1)
    gx = g.view(1, 1, 1, window_size).expand(c, 1, 1, window_size)

    def blur(t: Tensor) -> Tensor:  # separable Gaussian, per channel, valid positions only
        return F.conv2d(F.conv2d(t, gy, groups=c), gx, groups=c)

    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu_x, mu_y = blur(pred), blur(target)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = blur(pred * pred) - mu_xx
    var_y = blur(target * target) - mu_yy
    cov = blur(pred * target) - mu_xy
    ssim_map = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)


@MODELS.register_module()
class SSIMLoss(nn.Module):
    """``loss_weight * (1 - SSIM(pred, target))``: a structural-similarity training loss.

    When to use it: as a secondary term next to a pixel loss (e.g. ``CompositeLoss`` of ``L1Loss``
    and ``SSIMLoss`` with weight 0.1-0.5) when SSIM is a target metric, or to favour local structure
    and contrast over absolute intensity. On its own it is insensitive to small constant offsets
    (through ``C1``) and converges slower than L1; it needs images (crops) of at least
    ``window_size`` pixels per side. Data must be in ``[0, data_range]`` (mmagic's data
    preprocessor gives ``[0, 1]``).

    Args:
        loss_weight (float): Multiplier of the loss. Default: 1.0.
        window_size (int): Side of the Gaussian window. Default: 11.
        sigma (float): Standard deviation of the window. Default: 1.5.
        data_range (float): Dynamic range ``L`` of the data. Default: 1.0.
        k1 (float): ``C1 = (k1 * L)^2``. Default: 0.01.
        k2 (float): ``C2 = (k2 * L)^2``. Default: 0.03.
        convert_to (str, optional): ``'Y'`` to compare the BT.601 luma of colour images (as the SR
            papers' evaluation does), or None for all channels. Default: None.
        channel_order (str): ``'rgb'`` or ``'bgr'``, for ``convert_to='Y'``. Default: 'rgb'.
        reduction (str): ``'mean'`` over the batch, ``'sum'``, or ``'none'`` (one value per image).
            Default: 'mean'.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 window_size: int = 11,
                 sigma: float = 1.5,
                 data_range: float = 1.0,
                 k1: float = 0.01,
                 k2: float = 0.03,
                 convert_to: Optional[str] = None,
                 channel_order: str = 'rgb',
                 reduction: str = 'mean') -> None:
        super().__init__()
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f"SSIMLoss reduction={reduction!r} is not supported; use 'mean', 'sum' or 'none'")
        if convert_to not in (None, 'Y', 'y'):
            raise ValueError(f"SSIMLoss convert_to={convert_to!r} is not supported; use None or 'Y'")
        if channel_order not in ('rgb', 'bgr'):
            raise ValueError(f"SSIMLoss channel_order={channel_order!r} is not supported; use 'rgb' or 'bgr'")
        gaussian_window_1d(window_size, sigma)  # validates window_size
        self.loss_weight = loss_weight
        self.window_size = window_size
        self.sigma = sigma
        self.data_range = data_range
        self.k1 = k1
        self.k2 = k2
        self.convert_to = convert_to.upper() if convert_to else None
        self.channel_order = channel_order
        self.reduction = reduction
        self._range_checked = False

    def _check_range(self, target: Tensor) -> None:
        """Warn once where the first target exceeds ``data_range`` by far (0-255 data with the default 1.0).

        Why: SSIM's stabilising constants are ``(k * data_range)**2``; 0-255 data under ``data_range=1`` gave a loss
        that trained, silently, towards another objective.
        """
        self._range_checked = True
        if target.numel() == 0:
            return
        peak = float(target.detach().abs().max())
        if peak > 1.5 * self.data_range:
            warnings.warn(f'SSIMLoss got targets up to {peak:g} with data_range={self.data_range:g}: the data look '
                          f'like 0-{255 if peak <= 255 else "65535"}; set data_range to that range, or feed data in '
                          f'[0, {self.data_range:g}]', UserWarning, stacklevel=3)

    def extra_repr(self) -> str:
        return (f'loss_weight={self.loss_weight}, window_size={self.window_size}, sigma={self.sigma}, '
                f'data_range={self.data_range}, convert_to={self.convert_to!r}, reduction={self.reduction!r}')

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None, **kwargs) -> Tensor:
        """Forward.

        Args:
            pred (Tensor): ``(B, C, H, W)`` prediction in ``[0, data_range]``.
            target (Tensor): Ground truth of the same shape.
            weight (Tensor, optional): Not supported (SSIM is a windowed statistic); must be None.

        Returns:
            Tensor: Scalar (``'mean'`` / ``'sum'``) or ``(B,)`` (``'none'``).
        """
        if weight is not None:
            raise ValueError('SSIMLoss does not take element-wise weight=...; pass weight=None '
                             '(or use a pixel loss for weighted terms)')
        if not self._range_checked:
            self._check_range(target)
        if self.convert_to == 'Y':
            pred, target = rgb_to_y(pred, self.channel_order), rgb_to_y(target, self.channel_order)
        loss = 1 - ssim(pred, target, self.window_size, self.sigma, self.data_range, self.k1, self.k2)
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss


__all__ = ['SSIMLoss', 'gaussian_window_1d', 'rgb_to_y', 'ssim']
