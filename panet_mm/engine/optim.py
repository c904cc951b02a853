"""Mixed-precision training on CPU.

mmengine's ``AmpOptimWrapper`` refuses to be built without a GPU-like device (it asserts one, for its
float16 ``GradScaler``), although mmengine's own ``autocast`` runs bfloat16 on CPU. This wrapper is
that missing CPU case: the forward and the loss under ``autocast('cpu', bfloat16)``, no loss
scaling (bfloat16 has float32's exponent range, so gradients do not underflow). The pyramid
attention kernel keeps its softmax and accumulations in float32 under autocast.

A CPU without bfloat16 units (AVX512-BF16 or AMX) emulates bfloat16, and there ``--amp`` is many times
slower than float32: the wrapper says so in one log line when it is built (at the start of training).
"""
from __future__ import annotations

import contextlib
import logging
import platform
from typing import Iterator, Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner.amp import autocast

#: Measured: seconds per iteration of ``tools/train.py --amp`` (bfloat16 autocast) and of float32 training, on an
#: AMD EPYC with AVX2 and no bfloat16 units (a user trial; 2 threads).
CPU_AMP_SECONDS_PER_ITER = ((12, 19), (1.5, 2.4))


def cpu_bf16_units() -> Optional[bool]:
    """Whether this x86 CPU has bfloat16 matrix units (AVX512-BF16 or AMX); None where torch cannot tell (other
    architectures, older torch)."""
    if platform.machine().lower() not in ('x86_64', 'amd64'):
        return None
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # (private helpers of torch.cpu)
        return None


def cpu_amp_note() -> Optional[str]:
    """The note for bfloat16 autocast training on this CPU: slow where it has no bfloat16 units, else None.

    Why: ``tools/train.py --amp`` on an AVX2 CPU ran 12-19 s/iter against 1.5-2.4 s/iter in float32, silently.
    """
    if cpu_bf16_units() is not False:
        return None
    (amp_low, amp_high), (fp32_low, fp32_high) = CPU_AMP_SECONDS_PER_ITER
    return (f'bfloat16 autocast (--amp on CPU, CPUAmpOptimWrapper) is emulated and slow on this CPU, which has no '
            f'bfloat16 units (AVX512-BF16, AMX): a demo run took {amp_low}-{amp_high} s/iter against {fp32_low}-'
            f"{fp32_high} s/iter in float32; train without --amp (optim_wrapper type='OptimWrapper') on this CPU")


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
        note = cpu_amp_note()
        if note:  # (built once, when training starts)
            print_log(f'note: {note}', logger='current', level=logging.WARNING)

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """``OptimWrapper``'s context (gradient accumulation) inside CPU bfloat16 autocast."""
        with super().optim_context(model), autocast(device_type='cpu', dtype=self.cast_dtype):
            yield


__all__ = ['CPUAmpOptimWrapper', 'cpu_amp_note', 'cpu_bf16_units']
