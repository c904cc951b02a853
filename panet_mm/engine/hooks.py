"""Training hooks of panet_mm."""
from __future__ import annotations

import math
import os.path as osp
from typing import Any, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def _batch_files(data_batch: Any) -> List[str]:
    samples = data_batch.get('data_samples', []) if isinstance(data_batch, dict) else []
    files = []
    for s in samples or []:
        meta = s.metainfo if hasattr(s, 'metainfo') else {}
        path = meta.get('gt_path') or meta.get('img_path') or meta.get('key')
        if path:
            files.append(str(path))
    return files


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at the first NaN / infinite loss, naming the iteration and the batch's files.

    Why it exists: mmengine keeps training on a NaN loss, and the next checkpoint then overwrites the
    last good one with NaN weights. This hook runs before the checkpoint hook of the same iteration,
    so the last checkpoint on disk stays the last good one; the error says which it is.

    Args:
        keys (list[str], optional): Loss entries to watch. Default: every entry whose name starts
            with ``loss``.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, keys: Optional[List[str]] = None) -> None:
        self.keys = keys

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Optional[dict] = None) -> None:
        if not outputs:
            return
        for name, value in outputs.items():
            if self.keys is not None and name not in self.keys:
                continue
            if self.keys is None and not name.startswith('loss'):
                continue
            v = float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else float(value)
            if not math.isfinite(v):
                files = _batch_files(data_batch)
                shown = ', '.join(files[:8]) + (f' (+{len(files) - 8} more)' if len(files) > 8 else '')
                last = _last_checkpoint(runner)
                raise NonFiniteLossError(
                    f'{name} is {v} at iteration {runner.iter + 1} (batch: {shown or "file names unknown"}); '
                    f'training stopped, the last good checkpoint is {last or "none (nothing saved yet)"}. '
                    'Check these images, lower the learning rate or disable --amp, then resume with --resume')


def _last_checkpoint(runner) -> Optional[str]:
    pointer = osp.join(runner.work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            return f.read().strip() or None
    return None


__all__ = ['NonFiniteLossError', 'NonFiniteLossHook']
