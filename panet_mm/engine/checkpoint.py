"""Safe and crash-proof checkpoints for mmengine 0.10.7, scoped to panet_mm's own loading and runs.

Why it exists:

* **Weights-only loading.** mmengine 0.10.7 reads every local checkpoint with a plain ``torch.load``,
  which unpickles arbitrary objects on torch < 2.6 and cannot read mmengine's own checkpoints on
  torch >= 2.6. :func:`~panet_mm.utils.checkpoint.load_weights_only` (re-exported here) reads them all
  weights-only; this module puts it where mmengine loads.
* **Scoped, not process-wide.** Importing panet_mm only registers modules: mmengine's checkpoint loader
  and file backends are left as they are, so mmagic's own tools and models behave exactly as without
  the plugin. panet_mm's runner (:class:`~panet_mm.engine.runner.PANetRunner`, used by ``tools/train.py``
  and ``tools/test.py``) loads ``load_from`` / ``--resume`` with :func:`load_weights_only` and runs its
  train / val / test loops inside :func:`safe_checkpoint_loading` (mmengine's local loader swapped for the
  safe one, restored afterwards: covers ``init_cfg`` pretrained weights); ``panet_mm.apis`` and
  ``WithPyramidAttention(plain_weights=...)`` call :func:`load_weights_only` directly.
* **Checkpoints any torch loads weights-only.** :class:`WeightsOnlyCheckpointHook` stores the message
  hub's ``HistoryBuffer`` objects as tensors and numpy values as Python numbers / tensors, so that a
  panet_mm checkpoint loads with a plain ``torch.load(path, weights_only=True)`` (no panet_mm needed)
  and resumes exactly as before.
* **Atomic writes.** mmengine writes checkpoints and the ``last_checkpoint`` pointer with a plain
  ``open(..., 'wb')``: a run killed while saving leaves a truncated file that ``--resume`` then picks.
  :class:`AtomicLocalBackend` (registered as the file backend ``'panet_mm_atomic_local'``, which
  :class:`~panet_mm.engine.runner.PANetRunner` gives its ``CheckpointHook``) writes to a temporary file
  in the same folder and renames it over the target, so a file is either complete or absent.
"""
from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import CheckpointLoader

from panet_mm.utils.checkpoint import (  # re-exported: the loader's historical home
    MMENGINE_SAFE_GLOBALS,
    UnsafeCheckpointError,
    load_weights_only,
    numpy_safe_globals,
)
from panet_mm.utils.fileio import atomic_write

if TYPE_CHECKING:  # annotations only: no runner import at run time (import cycles)
    from mmengine.runner import Runner

_BUFFER_TAG = '__panet_mm_history_buffer__'
#: Name of :class:`AtomicLocalBackend` in mmengine's file backends.
ATOMIC_BACKEND = 'panet_mm_atomic_local'


def load_local_weights_only(filename: str, map_location: Any = None) -> Any:
    """mmengine's ``CheckpointLoader`` signature for :func:`load_weights_only` (used inside
    :func:`safe_checkpoint_loading`)."""
    return load_weights_only(filename, map_location)


def is_local_path(filename: str) -> bool:
    """Whether mmengine's ``CheckpointLoader`` reads ``filename`` with its local loader (no URL scheme)."""
    return re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', str(filename)) is None and \
        not str(filename).startswith(('open-mmlab:', 'openmmlab:', 'torchvision:', 'mmcls:', 'pavi:'))


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """Load a checkpoint as mmengine's ``_load_checkpoint`` does, local files weights-only.

    URLs and other schemes go through mmengine's loaders inside :func:`safe_checkpoint_loading`.
    """
    if is_local_path(filename):
        return load_weights_only(filename, map_location)
    with safe_checkpoint_loading():
        return CheckpointLoader.load_checkpoint(filename, map_location=map_location)


@contextlib.contextmanager
def safe_checkpoint_loading() -> Iterator[None]:
    """Within the block, mmengine's loader for local paths is :func:`load_local_weights_only`.

    Used by :class:`~panet_mm.engine.runner.PANetRunner` around its loops (``init_cfg`` pretrained weights,
    hooks that load); the previous loader is put back on exit, so the rest of the process is unchanged.
    """
    schemes = CheckpointLoader._schemes
    previous = schemes.get('', _MISSING)
    schemes[''] = load_local_weights_only
    try:
        yield
    finally:
        if previous is _MISSING:
            schemes.pop('', None)
        else:
            schemes[''] = previous


_MISSING = object()


_ARRAY_TAG = '__panet_mm_numpy_array__'


def _pack(value: Any) -> Any:
    """``value`` with HistoryBuffers and numpy objects replaced by tensors / Python numbers (new containers)."""
    if isinstance(value, HistoryBuffer):
        log, count = value.data
        return {_BUFFER_TAG: True, 'log': torch.from_numpy(np.asarray(log, dtype=np.float64)),
                'count': torch.from_numpy(np.asarray(count, dtype=np.float64)), 'max_length': int(value.max_length)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {_ARRAY_TAG: True, 'data': torch.from_numpy(np.ascontiguousarray(value)).clone(),
                'dtype': value.dtype.str}
    if type(value) in (dict, OrderedDict):
        return type(value)((k, _pack(v)) for k, v in value.items())
    if type(value) in (list, tuple):
        return type(value)(_pack(v) for v in value)
    return value


def _unpack(value: Any) -> Any:
    """Inverse of :func:`_pack` (Python numbers stay Python numbers: same values)."""
    if isinstance(value, dict) and value.get(_BUFFER_TAG) is True:
        return HistoryBuffer(value['log'].numpy().tolist(), value['count'].numpy().tolist(), value['max_length'])
    if isinstance(value, dict) and value.get(_ARRAY_TAG) is True:
        return value['data'].numpy().astype(np.dtype(value['dtype']), copy=False)
    if type(value) in (dict, OrderedDict):
        return type(value)((k, _unpack(v)) for k, v in value.items())
    if type(value) in (list, tuple):
        return type(value)(_unpack(v) for v in value)
    return value


#: Checkpoint entries whose numpy objects / HistoryBuffers are stored as tensors (the rest is torch's own data).
_PACKED_KEYS = ('meta', 'message_hub')


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Store the message hub's ``HistoryBuffer`` objects and numpy values as tensors / numbers, and restore them.

    With it, checkpoints written by a run load with a plain ``torch.load(weights_only=True)`` (torch >= 2.6's
    default, no panet_mm needed) and resume exactly as before. ``tools/train.py`` and ``tools/test.py`` add it to every
    runner; ``configs/_base_/default_runtime.py`` lists it for other launchers.
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Pack ``checkpoint``'s ``meta`` / ``message_hub`` in place, so that it loads weights-only."""
        for key in _PACKED_KEYS:
            if key in checkpoint:
                checkpoint[key] = _pack(checkpoint[key])

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Restore, in place, the HistoryBuffers and numpy values :meth:`before_save_checkpoint` packed."""
        for key in _PACKED_KEYS:
            if key in checkpoint:
                checkpoint[key] = _unpack(checkpoint[key])


def ensure_checkpoint_hook(runner: Runner) -> None:
    """Register :class:`WeightsOnlyCheckpointHook` on ``runner`` unless its config already did."""
    if not any(isinstance(h, WeightsOnlyCheckpointHook) for h in runner.hooks):
        runner.register_hook(WeightsOnlyCheckpointHook())


@register_backend('panet_mm_atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic (temporary file + ``os.replace``).

    Registered as ``'panet_mm_atomic_local'`` only (mmengine's ``'local'`` backend is unchanged); select it with
    ``backend_args=dict(backend='panet_mm_atomic_local')``, as :class:`~panet_mm.engine.runner.PANetRunner` does
    for its ``CheckpointHook``.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write the bytes ``obj`` to ``filepath`` atomically: the file is complete or absent."""
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` to ``filepath`` atomically: the file is complete or absent."""
        atomic_write(filepath, obj, encoding)


__all__ = ['ATOMIC_BACKEND', 'MMENGINE_SAFE_GLOBALS', 'AtomicLocalBackend', 'UnsafeCheckpointError',
           'WeightsOnlyCheckpointHook', 'ensure_checkpoint_hook', 'is_local_path', 'load_checkpoint_file',
           'load_local_weights_only', 'load_weights_only', 'numpy_safe_globals', 'safe_checkpoint_loading']
