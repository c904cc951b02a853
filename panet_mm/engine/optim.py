"""Mixed-precision training on CPU.

mmengine's ``AmpOptimWrapper`` refuses to be built without a GPU-like device (it asserts one, for its
float16 ``GradScaler``), although mmengine's own ``autocast`` runs bfloat16 on CPU. This wrapper is
that missing CPU case: the forward and the loss under ``autocast('cpu', bfloat16)``, no loss
scaling (bfloat16 has float32's exponent range, so gradients do not underflow). The pyramid
attention kernel keeps its softmax and accumulations in float32 under autocast.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner.amp import autocast


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs in bfloat16 autocast on CPU (``tools/train.py --amp`` on CPU).

    Args:
        dtype (str | torch.dtype): Autocast dtype; CPU autocast supports ``'bfloat16'`` only.
            Default: ``'bfloat16'``.
        **kwargs: ``OptimWrapper``'s arguments (``optimizer``, ``clip_grad``, ``accumulative_counts``).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs) -> None:
        cast = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
        if cast != torch.bfloat16:
            raise ValueError(f"CPUAmpOptimWrapper: dtype={dtype!r} is not supported by CPU autocast; use 'bfloat16'")
        super().__init__(**kwargs)
        self.cast_dtype = cast

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """``OptimWrapper``'s context (gradient accumulation) inside CPU bfloat16 autocast."""
        with super().optim_context(model), autocast(device_type='cpu', dtype=self.cast_dtype):
            yield


__all__ = ['CPUAmpOptimWrapper']
