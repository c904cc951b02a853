"""PANet and PA-EDSR generators (Mei et al. 2020), registered in mmagic's ``MODELS``.

Both networks keep the attention inside ``body`` at the position the released checkpoints use
(``body.40`` for PANet, ``body.16`` for PA-EDSR), so ``body.N`` names line up with the released
ones; the released trailing ``body.<last>`` convolution is ``conv_after_body`` here.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmagic.models.editors.edsr.edsr_net import UpsampleModule
from mmagic.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from panet_mm.models.layers import PyramidAttention, ResBlock
from panet_mm.utils.arguments import check_init_arguments

from .mean_shift import MeanShift


def _make_body(mid_channels: int, num_blocks: int, act: str, res_scale: float,
               attention_cfg: Optional[dict], default_reduction: int, default_res_scale: float) -> nn.Sequential:
    """``num_blocks // 2`` ResBlocks, the pyramid attention, the remaining ResBlocks."""
    cfg = dict(channels=mid_channels, reduction=default_reduction, res_scale=default_res_scale)
    cfg.update(attention_cfg or {})
    first = num_blocks // 2
    blocks = [ResBlock(mid_channels, act=act, res_scale=res_scale) for _ in range(first)]
    blocks.append(PyramidAttention(**cfg))
    blocks += [ResBlock(mid_channels, act=act, res_scale=res_scale) for _ in range(num_blocks - first)]
    return nn.Sequential(*blocks)


class _ChannelsLast:
    """Runs the network's convolutions in channels-last memory format (``channels_last=True``).

    oneDNN's CPU convolutions are faster on NHWC tensors, especially in bfloat16 (measured in the
    README's "Benchmarks"), and the released code runs NCHW. mmagic's EDSR has no such switch: the weights
    are converted once here (``load_state_dict`` copies into them and keeps the format), the input
    on entry, and the output is returned in the usual contiguous layout.
    """

    channels_last: bool

    def _set_memory_format(self, channels_last: bool) -> None:
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def _enter(self, x: Tensor) -> Tensor:
        """The input checked (a ``(B, in_channels, H, W)`` batch) and in the network's memory format."""
        channels = self.conv_first.in_channels
        if x.dim() != 4 or x.shape[1] != channels:
            if x.dim() == 3:
                fix = ': for one (C, H, W) image use x.unsqueeze(0)'
            elif x.dim() == 4:
                fix = f': {x.shape[1]} channels, but the network was built with in_channels={channels}'
            else:
                fix = ''
            raise ValueError(f'{type(self).__name__} expects a batch of images (B, {channels}, H, W), '
                             f'got shape {tuple(x.shape)}{fix}')
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


@MODELS.register_module()
class PANet(_ChannelsLast, BaseModule):
    """PANet for denoising, demosaicing and JPEG artifact reduction.

    ``conv_first`` (3x3) -> ``body`` (``num_blocks // 2`` ResBlocks with PReLU, pyramid attention,
    the other ResBlocks) -> ``conv_after_body`` (3x3) -> long skip from ``conv_first`` ->
    ``conv_last`` (3x3). No mean shift and no image-level residual, as in the released code.
    The released code shares one PReLU slope across all ResBlocks (an argument-order bug); here
    every block has its own, and ``tools/model_converters/convert_official_ckpt.py`` copies the shared slope into each.

    Args:
        in_channels (int): Channels of the input image (3 colour, 1 grey). Default: 3.
        out_channels (int): Channels of the output image. Default: 3.
        mid_channels (int): Channels of the features. Default: 64.
        num_blocks (int): Number of ResBlocks in the body (80 in the paper). Default: 80.
        res_scale (float): Residual scale of the ResBlocks. Default: 1.
        rgb_range (float): The input in ``[0, 1]`` is multiplied by this before the network and the
            output divided by it (panet_mm's configs use 255, as ``PAEDSRNet``; the converter rescales the
            released models, trained at 1, to it exactly, so converted weights need 255). Default: 255.
        attention_cfg (dict, optional): Overrides of the ``PyramidAttention`` arguments
            (defaults: ``channels=mid_channels, reduction=2, res_scale=1``).
        channels_last (bool): Run the convolutions in channels-last memory format (faster on CPU;
            the result is the same up to rounding). Default: True.
        init_cfg (dict, optional): mmengine initialisation config. Default: None.
    """

    def __init__(self,
                 in_channels: int = 3,
                 out_channels: int = 3,
                 mid_channels: int = 64,
                 num_blocks: int = 80,
                 res_scale: float = 1.0,
                 rgb_range: float = 255.0,
                 attention_cfg: Optional[dict] = None,
                 channels_last: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        check_init_arguments(type(self), locals())  # mid_channels='16' failed inside nn.Conv2d, naming nothing
        super().__init__(init_cfg=init_cfg)
        self.rgb_range = rgb_range
        self.conv_first = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.body = _make_body(mid_channels, num_blocks, 'prelu', res_scale, attention_cfg, 2, 1.0)
        self.conv_after_body = nn.Conv2d(mid_channels, mid_channels, 3, padding=1)
        self.conv_last = nn.Conv2d(mid_channels, out_channels, 3, padding=1)
        self._set_memory_format(channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """Forward.

        Args:
            x (Tensor): Degraded image ``(B, in_channels, H, W)`` in ``[0, 1]``.

        Returns:
            Tensor: Restored image ``(B, out_channels, H, W)``.
        """
        feat = self.conv_first(self._enter(x) * self.rgb_range)
        feat = self.conv_after_body(self.body(feat)) + feat
        return (self.conv_last(feat) / self.rgb_range).contiguous()


@MODELS.register_module()
class PAEDSRNet(_ChannelsLast, BaseModule):
    """PA-EDSR: EDSR with a pyramid attention block in the middle of its body, for super-resolution.

    ``sub_mean`` -> ``conv_first`` -> ``body`` (``num_blocks // 2`` ResBlocks, pyramid attention,
    the other ResBlocks) -> ``conv_after_body`` -> long skip -> ``upsample`` (mmagic's EDSR
    upsampler: conv + PixelShuffle, x2^n or x3) -> ``conv_last`` -> ``add_mean``.
    The mean shifts are frozen 1x1 convolutions, as in the released checkpoints.

    Args:
        in_channels (int): Channels of the input image. Default: 3.
        out_channels (int): Channels of the output image. Default: 3.
        mid_channels (int): Channels of the features (256 in the paper). Default: 256.
        num_blocks (int): Number of ResBlocks (32 in the paper). Default: 32.
        upscale_factor (int): 2, 3 or 4 (any 2^n works). Default: 2.
        res_scale (float): Residual scale of the ResBlocks. Default: 0.1.
        rgb_range (float): The input in ``[0, 1]`` is multiplied by this before the network and the
            output divided by it (the released models were trained at 1; the converter rescales them
            exactly to 255). Default: 255.
        rgb_mean (Sequence[float]): Image mean in RGB order, in ``[0, 1]`` (DIV2K's by default).
        rgb_std (Sequence[float]): Image std in RGB order. Default: (1, 1, 1).
        attention_cfg (dict, optional): Overrides of the ``PyramidAttention`` arguments
            (defaults: ``channels=mid_channels, reduction=8, res_scale=res_scale``).
        channels_last (bool): Run the convolutions in channels-last memory format (faster on CPU,
            especially in bfloat16; the result is the same up to rounding). Default: True.
        init_cfg (dict, optional): mmengine initialisation config. Default: None.
    """

    def __init__(self,
                 in_channels: int = 3,
                 out_channels: int = 3,
                 mid_channels: int = 256,
                 num_blocks: int = 32,
                 upscale_factor: int = 2,
                 res_scale: float = 0.1,
                 rgb_range: float = 255.0,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040),
                 rgb_std: Sequence[float] = (1.0, 1.0, 1.0),
                 attention_cfg: Optional[dict] = None,
                 channels_last: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        check_init_arguments(type(self), locals())  # mid_channels='16' failed inside nn.Conv2d, naming nothing
        super().__init__(init_cfg=init_cfg)
        if len(rgb_mean) != in_channels or len(rgb_std) != in_channels:
            raise ValueError(f'rgb_mean and rgb_std need {in_channels} values (in_channels), '
                             f'got {len(rgb_mean)} and {len(rgb_std)}')
        if out_channels != in_channels:
            raise ValueError(f'PAEDSRNet adds the input mean back to its output, so out_channels must equal '
                             f'in_channels ({in_channels}), got {out_channels}')
        self.upscale_factor = upscale_factor
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, rgb_mean, rgb_std, sign=-1)
        self.conv_first = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.body = _make_body(mid_channels, num_blocks, 'relu', res_scale, attention_cfg, 8, res_scale)
        self.conv_after_body = nn.Conv2d(mid_channels, mid_channels, 3, padding=1)
        self.upsample = UpsampleModule(upscale_factor, mid_channels)
        self.conv_last = nn.Conv2d(mid_channels, out_channels, 3, padding=1)
        self.add_mean = MeanShift(rgb_range, rgb_mean, rgb_std, sign=1)
        self._set_memory_format(channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """Forward.

        Args:
            x (Tensor): Low-resolution image ``(B, in_channels, h, w)`` in ``[0, 1]``.

        Returns:
            Tensor: ``(B, out_channels, h * upscale_factor, w * upscale_factor)``.
        """
        feat = self.conv_first(self.sub_mean(self._enter(x) * self.rgb_range))
        feat = self.conv_after_body(self.body(feat)) + feat
        out = self.add_mean(self.conv_last(self._upsample(feat)))
        return (out / self.rgb_range).contiguous()

    def _upsample(self, feat: Tensor) -> Tensor:
        """``self.upsample(feat)``; for an empty batch its pixel shuffles as reshapes: torch's ``pixel_shuffle``
        backward fails on an empty batch (``PixelShuffleBackward0 returned an invalid gradient``, torch 2.5 and
        2.14), a reshape's does not."""
        if feat.shape[0] != 0:
            return self.upsample(feat)
        for pack in self.upsample:
            feat = _pixel_shuffle_reshaped(pack.upsample_conv(feat), pack.scale_factor)
        return feat


def _pixel_shuffle_reshaped(x: Tensor, factor: int) -> Tensor:
    """``F.pixel_shuffle(x, factor)`` as a reshape, a permutation and a reshape."""
    b, c, h, w = x.shape
    c //= factor * factor
    return x.reshape(b, c, factor, factor, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, h * factor, w * factor)
