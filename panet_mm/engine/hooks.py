"""Hooks of panet_mm: stop at non-finite losses (training) and non-finite outputs (testing); save test metrics."""
from __future__ import annotations

import math
import os.path as osp
from typing import TYPE_CHECKING, Any, List, Mapping, Optional

import mmengine
import numpy as np
import torch
from mmagic.utils import print_colored_log
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from panet_mm.utils.checkpoint import list_keys
from panet_mm.utils.errors import PanetMMError
from panet_mm.utils.fileio import atomic_write

if TYPE_CHECKING:  # annotations only: no runner import at run time (import cycles)
    from mmengine.runner import Runner


class NonFiniteLossError(PanetMMError, RuntimeError):
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
        """Watch ``keys`` (None: every ``loss*`` entry of the outputs)."""
        self.keys = keys

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        """Raise :class:`NonFiniteLossError` if a watched loss of this iteration is NaN / infinite."""
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
                shown = list_keys(files)
                last = _last_checkpoint(runner)
                raise NonFiniteLossError(
                    f'{name} is {v} at iteration {runner.iter + 1} (batch: {shown or "file names unknown"}); '
                    f'training stopped, the last good checkpoint is {last or "none (nothing saved yet)"}. '
                    'Check these images, lower the learning rate or train without AMP, then resume from it')


def _last_checkpoint(runner) -> Optional[str]:
    pointer = osp.join(runner.work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            return f.read().strip() or None
    return None


class NonFiniteOutputError(PanetMMError, RuntimeError):
    """A model's test output holds NaN or infinite values (or its checkpoint does)."""


@HOOKS.register_module()
class NonFiniteOutputHook(Hook):
    """Stop testing at the first output with NaN / infinite values, naming the image.

    Why it exists: mmagic's metrics and visualisation turn such outputs into NaN scores and black images
    without an error. Priority ``VERY_HIGH``: it runs before hooks that write images of the batch, and
    the test metrics are dumped only after the epoch, so nothing is written.
    """

    priority = 'VERY_HIGH'

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        """Raise :class:`NonFiniteOutputError` if a ``pred_img`` of this batch has NaN / infinite values."""
        for sample in outputs or []:
            output = getattr(sample, 'output', sample)
            pred = getattr(output, 'pred_img', None)
            if isinstance(pred, torch.Tensor) and pred.is_floating_point() and not bool(torch.isfinite(pred).all()):
                meta = sample.metainfo if hasattr(sample, 'metainfo') else {}
                name = meta.get('img_path') or meta.get('gt_path') or f'batch {batch_idx}'
                raise NonFiniteOutputError(
                    f"the model's output for '{name}' has NaN / infinite values (test iteration {batch_idx + 1}); "
                    'nothing was written - the checkpoint or the test-time settings (e.g. AMP, fp16) are broken')


def _plain_number(value: Any) -> Any:
    """A metric as plain Python numbers: numpy scalars, which YAML tags as Python objects that ``yaml.safe_load``
    refuses, and tensors (mmagic's ``MAE`` and ``MSE`` return one-element tensors), which JSON cannot write."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else value.tolist()
    return value.item() if isinstance(value, np.generic) else value


@HOOKS.register_module()
class SaveMetricsHook(Hook):
    """Dump the test metrics to a file after the test epoch (``tools/test.py --out``).

    Priority ``LOWEST``: the metrics are final by then, and a run stopped by another hook writes none.

    Args:
        out (str): The file; its extension picks the format (``.json``, ``.yaml``, ``.pkl``, as
            :func:`mmengine.dump`).
    """

    priority = 'LOWEST'

    def __init__(self, out: str) -> None:
        """Write the metrics to the file ``out``."""
        self.out = out

    def after_test_epoch(self, runner: Runner, metrics: Optional[Mapping[str, Any]] = None) -> None:
        """Write ``metrics`` (numpy scalars and tensors as plain numbers) to :attr:`out` atomically."""
        if metrics is not None:  # serialised first, then written atomically: never a half-written metrics file
            fmt = osp.splitext(self.out)[1].lower().lstrip('.')
            plain = {k: _plain_number(v) for k, v in metrics.items()}
            atomic_write(self.out, mmengine.dump(plain, file_format={'yml': 'yaml', 'pickle': 'pkl'}.get(fmt, fmt)))
            print_colored_log(f'Metrics saved to {self.out}')


__all__ = ['NonFiniteLossError', 'NonFiniteLossHook', 'NonFiniteOutputError', 'NonFiniteOutputHook',
           'SaveMetricsHook']
