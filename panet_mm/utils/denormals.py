"""Flush denormal floats to zero in torch's CPU threads, for the inference tools.

Why this exists: the attention's softmax gives probabilities far below float32's smallest normal
number (``exp`` of a logit 87 or more below its row's maximum) whenever a network's logits spread
widely, as PA-EDSR's do. On x86 every operation that produces or reads such a denormal number takes a
microcode assist: PA-EDSR's softmax runs several times slower with them, outputs equal without them
(measured in the README, "Denormal floats").

``torch.set_flush_denormal`` sets the flush-to-zero and denormals-are-zero modes of the *calling*
thread only; the threads of torch's CPU pool copy the mode of the thread that starts them, once, at
torch's first parallel operation. So the modes must be set before that, which a command-line tool can
do and a library function cannot: :func:`flushed_denormals` is for the tools (``tools/restore.py``),
and :func:`pool_flushes` says whether it reached every thread.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ['flushed_denormals', 'thread_flushes', 'pool_flushes']

#: ``_TINY * _SCALE`` is a float32 denormal (1e-40): 0 in a thread that flushes.
_TINY, _SCALE = 1e-30, 1e-10
#: Elements per thread of the pool probe: at least torch's parallel grain (32768), so that every thread
#: of the pool computes a part of it.
_PER_THREAD = 4 * 32768


def _flushed(numel: int) -> bool:
    product = torch.full((numel,), _TINY, dtype=torch.float32) * _SCALE
    # compared as bits: a thread that treats denormals as zero would also count a denormal as zero
    return int(product.view(torch.int32).count_nonzero()) == 0


def thread_flushes() -> bool:
    """Whether the calling thread flushes denormal float32 results to zero (one element: no pool thread)."""
    return _flushed(1)


def pool_flushes() -> bool:
    """Whether every thread of torch's CPU pool flushes denormal float32 results to zero."""
    return _flushed(_PER_THREAD * max(torch.get_num_threads(), 1))


@contextmanager
def flushed_denormals(enabled: bool = True) -> Iterator[bool]:
    """Flush denormals to zero in the calling thread for the block, and in the CPU pool if it starts inside it.

    On exit the calling thread's mode is restored; pool threads started inside keep the mode (nothing
    can reach them afterwards), which is why this is for a process's top level (a command-line tool).

    Args:
        enabled (bool): False: change nothing (the tools' ``--keep-denormals``). Default: True.

    Yields:
        bool: Whether denormals are flushed in the calling thread (False when disabled or where the CPU
        has no such mode).
    """
    if not enabled:
        yield False
        return
    before = thread_flushes()
    flushed = torch.set_flush_denormal(True)
    try:
        yield flushed
    finally:
        torch.set_flush_denormal(before)
