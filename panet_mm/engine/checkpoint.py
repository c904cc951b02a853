"""Safe and crash-proof checkpoints for mmengine 0.10.7, scoped to panet_mm's own loading and runs.

Why it exists:

* **Weights-only loading.** mmengine 0.10.7 reads every local checkpoint with a plain ``torch.load``:
  on torch < 2.6 that unpickles arbitrary objects (a crafted file can run code), and on torch >= 2.6
  (``weights_only=True`` by default) it cannot read mmengine's own checkpoints, whose message hub
  pickles ``HistoryBuffer`` objects with ``getattr(HistoryBuffer, 'mean')``-style references.
  :func:`load_weights_only` loads with ``weights_only=True`` and allows, for that one load, numpy data
  and exactly those references (the real ``HistoryBuffer`` and a ``getattr`` that only returns its
  statistics methods): every checkpoint mmengine / mmagic write loads, metadata included, and nothing
  in the file is called except data constructors.
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
import os
import os.path as osp
import pickle
import re
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, List, Optional, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import CheckpointLoader

from panet_mm.utils.compat import numpy_core_module, numpy_pickle_aliases

_BUFFER_TAG = '__panet_mm_history_buffer__'
#: Name of :class:`AtomicLocalBackend` in mmengine's file backends.
ATOMIC_BACKEND = 'panet_mm_atomic_local'


def numpy_safe_globals() -> List[Any]:
    """The numpy constructors that plain arrays and scalars need under ``weights_only=True``.

    They rebuild data only (array buffers, dtypes, scalars); nothing callable by the file. Files written
    under the other numpy major (numpy 1 vs 2 name these functions differently) load too.
    """
    multiarray = numpy_core_module('multiarray')
    dtype_classes = {type(np.dtype(code)) for code in np.typecodes['All']}
    return [multiarray._reconstruct, multiarray.scalar, *numpy_pickle_aliases(), np.ndarray, np.dtype,
            *sorted(dtype_classes, key=str)]


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for mmengine's message hub only: a statistics method of ``HistoryBuffer``, nothing else.

    mmengine checkpoints pickle ``HistoryBuffer._statistics_methods`` as ``getattr(HistoryBuffer, 'mean')``
    etc. (pickle protocol 2); allowlisting the real ``getattr`` would let a file reach any attribute of any
    allowed object. Registered under the name ``builtins.getattr`` for one load at a time.
    """
    # the defaults are registered by the first HistoryBuffer(), which a fresh process may not have built yet
    known = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and isinstance(name, str) and name in known \
            and callable(getattr(HistoryBuffer, name, None)):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({type(obj).__name__}, {name!r}) is not a HistoryBuffer statistics method')


_history_buffer_getattr.__module__ = 'builtins'
_history_buffer_getattr.__name__ = _history_buffer_getattr.__qualname__ = 'getattr'

#: What mmengine's message hub needs beyond tensors and numpy data: data-only ``HistoryBuffer`` objects
#: (``__dict__`` set from the file, nothing called) and the restricted ``getattr`` above.
MMENGINE_SAFE_GLOBALS = (HistoryBuffer, _history_buffer_getattr)


@contextlib.contextmanager
def _weights_only_globals() -> Iterator[None]:
    """Allow numpy data and mmengine's message hub for the duration of one load."""
    registered = list(torch.serialization.get_safe_globals())
    wanted = [*numpy_safe_globals(), *MMENGINE_SAFE_GLOBALS]
    # only what is not registered yet, so that leaving the scope removes nothing other code allowed
    extra = [g for g in wanted if not any(g is r for r in registered)]
    with torch.serialization.safe_globals(extra):  # torch >= 2.5, as setup.py requires
        yield


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint is unreadable, or holds Python objects that weights-only loading refuses."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if 'WeightsUnpickler error:' in text:
        text = text.split('WeightsUnpickler error:')[-1].strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def _torch_reason(err: BaseException) -> str:
    """The reason in torch's weights-only refusal, without its advice to load with ``weights_only=False``."""
    text = str(err).strip()
    if 'WeightsUnpickler error:' in text:  # torch >= 2.6: the reason follows this marker
        text = text.split('WeightsUnpickler error:')[-1]
    advice = ('Weights only load failed', 'Re-running', 'weights_only', 'Check the documentation',
              'Please file an issue', 'In PyTorch 2.6', 'Alternatively', '(1)', '(2)')
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(advice)]
    lines = [ln for ln in lines if 'weights_only' not in ln]
    return (lines[0] if lines else type(err).__name__)[:300]


def load_weights_only(filename: Union[str, Path], map_location: Any = 'cpu',
                      weights_only_metadata: bool = False) -> Any:
    """``torch.load(filename, weights_only=True)`` that reads every mmengine / mmagic checkpoint.

    numpy data and mmengine's message hub (``HistoryBuffer``) are allowed for this one load, as data
    (see the module docstring); anything else that is not plain data is refused with torch's reason.

    Args:
        filename (str | Path): A local checkpoint file.
        map_location: As for :func:`torch.load`. Default: ``'cpu'``.
        weights_only_metadata (bool): Kept for callers that only need the weights; the metadata loads
            in full either way. Default: False.

    Returns:
        The loaded object (tensors, containers, numbers, strings, numpy arrays, ``HistoryBuffer``).

    Raises:
        FileNotFoundError: If the file does not exist.
        UnsafeCheckpointError: If the file holds other Python objects, or is not a readable torch file.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint '{filename}' not found")
    try:
        with _weights_only_globals():
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"checkpoint '{filename}' holds Python objects that the weights-only loader refuses ({_torch_reason(e)}); "
            'panet_mm never unpickles objects that could run code. Use a checkpoint written by mmagic / mmengine, '
            'tools/train.py or tools/convert_official_ckpt.py, or save only its tensors (the state_dict) from '
            'the program that made it') from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, ImportError,
            UnicodeDecodeError) as e:
        raise UnsafeCheckpointError(f"checkpoint '{filename}' cannot be read ({type(e).__name__}: {_first_line(e)}); "
                                    'it is truncated, corrupt or not a PyTorch file - copy or download it again'
                                    ) from None


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

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in _PACKED_KEYS:
            if key in checkpoint:
                checkpoint[key] = _pack(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in _PACKED_KEYS:
            if key in checkpoint:
                checkpoint[key] = _unpack(checkpoint[key])


def ensure_checkpoint_hook(runner) -> None:
    """Register :class:`WeightsOnlyCheckpointHook` on ``runner`` unless its config already did."""
    if not any(isinstance(h, WeightsOnlyCheckpointHook) for h in runner.hooks):
        runner.register_hook(WeightsOnlyCheckpointHook())


def _atomic_write(data: Union[bytes, str], filepath: Union[str, Path], encoding: Optional[str] = None) -> None:
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(filepath)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode(encoding or 'utf-8') if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, filepath)
    except BaseException as err:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and not err.filename:
            err.filename = filepath  # a full disk fails in write / fsync, which name no file
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@register_backend('panet_mm_atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic (temporary file + ``os.replace``).

    Registered as ``'panet_mm_atomic_local'`` only (mmengine's ``'local'`` backend is unchanged); select it with
    ``backend_args=dict(backend='panet_mm_atomic_local')``, as :class:`~panet_mm.engine.runner.PANetRunner` does
    for its ``CheckpointHook``.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        _atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        _atomic_write(obj, filepath, encoding)


__all__ = ['ATOMIC_BACKEND', 'MMENGINE_SAFE_GLOBALS', 'AtomicLocalBackend', 'UnsafeCheckpointError',
           'WeightsOnlyCheckpointHook', 'ensure_checkpoint_hook', 'is_local_path', 'load_checkpoint_file',
           'load_local_weights_only', 'load_weights_only', 'numpy_safe_globals', 'safe_checkpoint_loading']
