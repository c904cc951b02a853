"""Safe and crash-proof checkpoints for mmengine 0.10.7.

Why it exists:

* **Weights-only loading.** mmengine 0.10.7 reads every local checkpoint with a plain ``torch.load``:
  on torch < 2.6 that unpickles arbitrary objects (a crafted file can run code), and on torch >= 2.6
  (``weights_only=True`` by default) it cannot read mmengine's own checkpoints, whose message hub
  pickles ``HistoryBuffer`` objects holding bound methods. Importing panet_mm replaces mmengine's
  local checkpoint loader by :func:`load_local_weights_only`, which always loads with
  ``weights_only=True`` (numpy arrays and scalars allowed, nothing callable), and
  :class:`WeightsOnlyCheckpointHook` stores the message hub as plain tensors so that checkpoints
  written by panet_mm runs load that way, on every torch version.
* **Atomic writes.** mmengine writes checkpoints and the ``last_checkpoint`` pointer with a plain
  ``open(..., 'wb')``: a run killed while saving leaves a truncated file that ``--resume`` then picks.
  :class:`AtomicLocalBackend` (registered as mmengine's ``local`` file backend) writes to a temporary
  file in the same folder and renames it over the target, so a file is either complete or absent.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import os.path as osp
import pickle
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import CheckpointLoader

_BUFFER_TAG = '__panet_mm_history_buffer__'


def numpy_safe_globals() -> List[Any]:
    """The numpy constructors that plain arrays and scalars need under ``weights_only=True``.

    They rebuild data only (array buffers, dtypes, scalars); nothing callable by the file.
    """
    multiarray = importlib.import_module('numpy.core.multiarray' if np.__version__.startswith('1.')
                                         else 'numpy._core.multiarray')
    dtype_classes = {type(np.dtype(code)) for code in np.typecodes['All']}
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *sorted(dtype_classes, key=str)]


class _Discarded:
    """Inert stand-in for the metadata objects of checkpoints written by plain mmengine runs.

    Such checkpoints pickle ``HistoryBuffer`` objects whose bound methods go through
    ``builtins.getattr``; allowlisting the real ``getattr`` would let a file reach any attribute of any
    allowed object. When only the weights are wanted, those two names are allowed as this class
    instead: built without running anything, state ignored, dropped with the metadata.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _Discarded:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f'<discarded {type(self).__module__}.{type(self).__name__}>'


def _stand_in(module: str, name: str) -> type:
    """A :class:`_Discarded` subclass that torch's weights-only unpickler finds under ``module.name``."""
    return type(name, (_Discarded,), {'__module__': module, '__qualname__': name})


#: The two unsafe-to-allow globals of plain mmengine checkpoints (message hub, HistoryBuffer).
STAND_INS = (_stand_in('mmengine.logging.history_buffer', 'HistoryBuffer'), _stand_in('builtins', 'getattr'))


@contextlib.contextmanager
def _weights_only_globals(stand_ins: bool) -> Iterator[None]:
    """Allow numpy data (and, if asked, the inert stand-ins) for the duration of one load."""
    get = getattr(torch.serialization, 'get_safe_globals', None)
    registered = list(get()) if get is not None else []
    wanted = [*numpy_safe_globals(), *(STAND_INS if stand_ins else ())]
    # only what is not registered yet, so that leaving the scope removes nothing other code allowed
    extra = [g for g in wanted if not any(g is r for r in registered)]
    scoped = getattr(torch.serialization, 'safe_globals', None)
    if scoped is not None:  # torch >= 2.5
        with scoped(extra):
            yield
        return
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch 2.4: no scoped form; the entries are data-only or inert
        add(extra)
    yield


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint is unreadable, or holds Python objects that weights-only loading refuses."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if 'WeightsUnpickler error:' in text:
        text = text.split('WeightsUnpickler error:')[-1].strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def load_weights_only(filename: Union[str, Path], map_location: Any = 'cpu',
                      weights_only_metadata: bool = False) -> Any:
    """``torch.load(filename, weights_only=True)`` with numpy data allowed and a readable refusal.

    Args:
        filename (str | Path): A local checkpoint file.
        map_location: As for :func:`torch.load`. Default: ``'cpu'``.
        weights_only_metadata (bool): The caller needs only the weights: metadata objects of plain
            mmengine checkpoints (``HistoryBuffer``) load as inert stand-ins instead of being refused.
            Default: False.

    Returns:
        The loaded object (tensors, containers, numbers, strings, numpy arrays).

    Raises:
        FileNotFoundError: If the file does not exist.
        UnsafeCheckpointError: If the file holds other Python objects, or is not a readable torch file.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint '{filename}' not found")
    try:
        with _weights_only_globals(stand_ins=weights_only_metadata):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"checkpoint '{filename}' holds Python objects that the weights-only loader refuses ({_first_line(e)}); "
            'panet_mm never unpickles objects that could run code. Use a checkpoint written by tools/train.py or '
            "tools/convert_official_ckpt.py; for a file you made and trust, re-save its weights with torch.save("
            "{'state_dict': torch.load(path, weights_only=False)['state_dict']}, new_path)") from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, ImportError,
            UnicodeDecodeError) as e:
        raise UnsafeCheckpointError(f"checkpoint '{filename}' cannot be read ({type(e).__name__}: {_first_line(e)}); "
                                    'it is truncated, corrupt or not a PyTorch file - copy or download it again'
                                    ) from None


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_weights_only(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for local paths, replaced by a weights-only one (see module docstring)."""
    return load_weights_only(filename, map_location)


def _pack_buffers(scalars: Dict[str, Any]) -> Dict[str, Any]:
    packed = {}
    for key, value in scalars.items():
        if isinstance(value, HistoryBuffer):
            log, count = value.data
            value = {_BUFFER_TAG: True, 'log': torch.from_numpy(np.asarray(log, dtype=np.float64)),
                     'count': torch.from_numpy(np.asarray(count, dtype=np.float64)),
                     'max_length': int(value.max_length)}
        packed[key] = value
    return packed


def _unpack_buffers(scalars: Dict[str, Any]) -> Dict[str, Any]:
    unpacked = {}
    for key, value in scalars.items():
        if isinstance(value, dict) and value.get(_BUFFER_TAG):
            value = HistoryBuffer(value['log'].numpy().tolist(), value['count'].numpy().tolist(),
                                  value['max_length'])
        unpacked[key] = value
    return unpacked


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Store the message hub's ``HistoryBuffer`` objects as tensors, and restore them on load.

    With it, checkpoints written by a run load with ``torch.load(weights_only=True)`` (torch >= 2.6's
    default) and resume exactly as before. ``tools/train.py`` and ``tools/test.py`` add it to every
    runner; ``configs/_base_/default_runtime.py`` lists it for other launchers.
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get('message_hub')
        if isinstance(hub, dict) and isinstance(hub.get('log_scalars'), dict):
            hub['log_scalars'] = _pack_buffers(hub['log_scalars'])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get('message_hub')
        if isinstance(hub, dict) and isinstance(hub.get('log_scalars'), dict):
            hub['log_scalars'] = _unpack_buffers(hub['log_scalars'])


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


@register_backend('local', force=True, prefixes='')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic (temporary file + ``os.replace``)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        _atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        _atomic_write(obj, filepath, encoding)


__all__ = ['STAND_INS', 'AtomicLocalBackend', 'UnsafeCheckpointError', 'WeightsOnlyCheckpointHook',
           'ensure_checkpoint_hook', 'load_local_weights_only', 'load_weights_only', 'numpy_safe_globals']
