"""The pyramid attention block of PANet (Mei et al. 2020), registered in mmagic's ``MODELS``.

The tensor maths lives in :mod:`panet_mm.ops.pyramid_attention` (torch only); this file holds the
learnable parts (the three 1x1 embeddings) and the residual connection.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn as nn
from mmagic.registry import MODELS
from torch import Tensor

from panet_mm.ops import pyramid_attention as pa_ops
from panet_mm.ops.flops import CHUNKED_ATTENTION_OP, chunked_attention_flop_handle
from panet_mm.utils.arguments import check_init_arguments


class _Embedding(nn.Sequential):
    """1x1 convolution with bias followed by its own single-slope PReLU (no normalisation)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 1, bias=True), nn.PReLU())


@MODELS.register_module()
class PyramidAttention(nn.Module):
    """Pyramid attention block: every pixel attends to 3x3 patches of a multi-scale pyramid.

    Computes exactly what the released PANet code computes: a bicubic pyramid of the input at
    scales ``1 - i/10``; query ``theta`` (full resolution), key ``g`` and value ``f`` embeddings
    (1x1 conv + PReLU); key patches divided by ``max(||k||, 1e-4)``; ONE softmax over the patches of
    all levels jointly; every pixel pastes its attention-weighted value patch, overlapping pastes add
    up and the sum is divided by 4; finally ``y = attention / 4 + res_scale * x`` (``res_scale``
    scales the identity branch, as in the released code).

    Export. Under ``torch.export.export`` (and ``torch.onnx.export``) the block computes the attention with
    the reference formulation whatever ``implementation`` says (:func:`~panet_mm.ops.kernel.exporting`):
    the same function, in plain tensor operations a graph can hold, with its quadratic memory (the
    ``(H*W) x L`` score map; the chunked kernel's Python chunk loop and autograd Function cannot be
    exported). The program is exported for the example's height and width (the pyramid's floored level
    sizes specialise them; torch refuses a dynamic ``H`` or ``W``). ``torch.jit.trace`` keeps the chunked
    kernel, as one ``prim::PythonOp`` node (what mmengine's flop counter counts, see
    :mod:`panet_mm.ops.flops`): the trace runs, but ``torch.jit.save`` refuses it (``Could not export Python
    function call '_ChunkedAttention'``). For a savable TorchScript module, trace the reference (the traced
    module, too, is fixed to the traced height and width; the batch may vary)::

        block.implementation = 'reference'      # or build with implementation='reference';
        traced = torch.jit.trace(block, x)      # PANet: attention_cfg=dict(implementation='reference')
        torch.jit.save(traced, 'block.pt')

    Args:
        channels (int): Channels ``C`` of the input feature map. Default: 64.
        reduction (int): Query/key embeddings have ``C // reduction`` channels. Default: 2.
        levels (int): Number of pyramid levels. Default: 5.
        scale_step (float): Scale decrement between levels. Default: 0.1.
        ksize (int): Patch size. Default: 3.
        softmax_scale (float): Multiplier of the matching scores before the softmax. Default: 10.
        res_scale (float): Scale of the identity branch. Default: 1.
        eps (float): Lower bound of a key patch's norm. Default: 1e-4.
        divisor (float): The pasted attention output is divided by this. Default: 4.
        implementation (str): ``'chunked'`` (exact, memory linear in pixels, the default) or
            ``'reference'`` (the straightforward formulation that materialises the full score map;
            quadratic memory, kept for checking).
        chunk_size (int, optional): Query pixels per chunk for the chunked kernel. Default: chosen
            from ``memory_budget_mb``.
        memory_budget_mb (float, optional): Memory budget of one chunk's temporaries, in MiB; it also
            decides the formulation (PA-EDSR's channels run ``'pixel'`` only where one query row fits).
            Default: None (256 on CPU, a quarter of the free device memory on CUDA).
    """

    def __init__(self,
                 channels: int = 64,
                 reduction: int = 2,
                 levels: int = 5,
                 scale_step: float = 0.1,
                 ksize: int = 3,
                 softmax_scale: float = 10.0,
                 res_scale: float = 1.0,
                 eps: float = 1e-4,
                 divisor: float = 4.0,
                 implementation: str = 'chunked',
                 chunk_size: Optional[int] = None,
                 memory_budget_mb: Optional[float] = None) -> None:
        check_init_arguments(type(self), locals())  # channels='8' failed in `channels % reduction`, naming nothing
        super().__init__()
        if channels % reduction != 0:
            raise ValueError(f'channels ({channels}) must be divisible by reduction ({reduction})')
        if implementation not in ('chunked', 'reference'):
            raise ValueError(f"implementation must be 'chunked' or 'reference', got {implementation!r}")
        self.channels = channels
        self.reduction = reduction
        self.scales = pa_ops.pyramid_scales(levels, scale_step)
        self.ksize = ksize
        self.softmax_scale = softmax_scale
        self.res_scale = res_scale
        self.eps = eps
        self.divisor = divisor
        self.implementation = implementation
        self.chunk_size = chunk_size
        self.memory_budget_mb = memory_budget_mb
        self.query = _Embedding(channels, channels // reduction)   # theta, released: conv_match_L_base
        self.key = _Embedding(channels, channels // reduction)     # g, released: conv_match
        self.value = _Embedding(channels, channels)                # f, released: conv_assembly

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, reduction={self.reduction}, scales={self.scales}, '
                f'softmax_scale={self.softmax_scale}, res_scale={self.res_scale}, '
                f'implementation={self.implementation!r}')

    def macs(self, height: int, width: int, dtype: Optional[torch.dtype] = None,
             device: Union[str, torch.device, None] = None) -> int:
        """Multiply-adds of one forward of one ``(C, height, width)`` feature map.

        The three 1x1 embeddings (query at full resolution, key and value at every pyramid level) and
        the attention's matrix products (:func:`~panet_mm.ops.pyramid_attention.attention_macs`) in the
        formulation the kernel runs for that dtype and device (:func:`~panet_mm.ops.pyramid_attention.
        choose_method`: ``'col'`` or ``'pixel'``; the unfolded patches for ``implementation='reference'``);
        the bicubic pyramid, PReLUs, softmax and additions are not counted, as mmengine's flop counter
        does not count them either. Quadratic in the pixels: what limits whole-image restoration.

        Args:
            height (int): Feature map height.
            width (int): Feature map width.
            dtype (torch.dtype, optional): Compute dtype (autocast's under autocast). Default: the
                block's parameters'.
            device (str | torch.device, optional): Where it runs. Default: the block's parameters'.

        Returns:
            int: Multiply-adds.
        """
        c, cq = self.channels, self.channels // self.reduction
        sizes = pa_ops.level_sizes(height, width, self.scales)
        embeddings = height * width * c * cq + sum(h * w for h, w in sizes) * c * (cq + c)
        param = next(self.parameters())
        if self.implementation == 'reference':
            method = 'patch'
        else:
            method = pa_ops.choose_method(height, width, sizes, cq, c, self.ksize, dtype or param.dtype,
                                          device or param.device, self.memory_budget_mb)
        return embeddings + pa_ops.attention_macs(height, width, self.scales, cq, c, self.ksize, method=method)

    def attention(self, x: Tensor) -> Tensor:
        """The attention branch alone (``pasted / divisor``), without the identity."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f'PyramidAttention(channels={self.channels}) expects (B, {self.channels}, H, W), '
                             f'got shape {tuple(x.shape)}')
        levels = pa_ops.build_pyramid(x, self.scales)
        query = self.query(x)
        keys = [self.key(t) for t in levels]
        values = [self.value(t) for t in levels]
        kwargs = dict(ksize=self.ksize, softmax_scale=self.softmax_scale, eps=self.eps, divisor=self.divisor)
        if self.implementation == 'chunked':
            return pa_ops.pyramid_attention(query, keys, values, chunk_size=self.chunk_size,
                                            memory_budget_mb=self.memory_budget_mb, **kwargs)
        return pa_ops.pyramid_attention_reference(query, keys, values, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Forward.

        Args:
            x (Tensor): Feature map ``(B, C, H, W)``.

        Returns:
            Tensor: ``attention(x) + res_scale * x``, same shape as ``x``.
        """
        return self.attention(x) + self.res_scale * x


def _register_flop_handle() -> None:
    """Count the kernel in mmengine's flop counter (and so in mmagic's ``get_flops``).

    mmengine has no registry for flop handles: every ``FlopAnalyzer`` starts from the module-level
    table ``_DEFAULT_SUPPORTED_FLOP_OPS``, so the handle is added there, next to the block's
    registration in ``MODELS``. Without it the kernel's node counts 0 and is reported as unsupported.
    """
    try:
        from mmengine.analysis import complexity_analysis
    except ImportError:         # an mmengine without the analysis package: nothing to count with
        return
    complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS.setdefault(CHUNKED_ATTENTION_OP, chunked_attention_flop_handle)


_register_flop_handle()


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``, trainable or frozen."""
    return sum(p.numel() for p in module.parameters())


__all__ = ['PyramidAttention', 'count_parameters']
