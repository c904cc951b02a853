"""Reading checkpoints safely and comparing their tensors with a model.

Why it exists: one weights-only loader, one unwrapping of the containers checkpoints come in and one
key / shape comparison, so that training, conversion, restoration and plain-weight loading refuse the
same files with the same wording.

* :func:`load_weights_only` is ``torch.load(weights_only=True)`` that also reads every checkpoint
  mmengine / mmagic write: numpy data and mmengine's message hub (``HistoryBuffer``, pickled with
  ``getattr(HistoryBuffer, 'mean')``-style references) are allowed for that one load, as data. A
  plain ``torch.load`` on torch < 2.6 would unpickle anything (a crafted file can run code); torch
  >= 2.6's weights-only default cannot read mmengine's own checkpoints.
* :func:`unwrap_state_dict` finds the flat tensor state dict inside the usual wrappers.
* :func:`compare_state_dicts` / :func:`list_keys` say which keys are missing, unexpected or mis-shaped.
"""
from __future__ import annotations

import ast
import contextlib
import os.path as osp
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Type, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from torch import Tensor, nn

from .compat import numpy_core_module, numpy_pickle_aliases
from .config import TASK_VARIABLES
from .errors import PanetMMError, first_line

#: Wrapper keys of the containers checkpoints come in: mmengine / mmagic (``state_dict``), plain
#: training scripts (``model_state_dict``, ``model``, ``net``) and BasicSR (``params_ema``, ``params``).
WRAPPER_KEYS = ('state_dict', 'model_state_dict', 'model', 'params_ema', 'params', 'net')
#: Prefixes stripped when every key carries them: DataParallel (``module.``) and ``model.``.
COMMON_PREFIXES = ('module.', 'model.')
#: How many keys an error message lists before ``... (N more)``.
LISTED_KEYS = 12


class UnsafeCheckpointError(PanetMMError, pickle.UnpicklingError):
    """A checkpoint is unreadable, or holds Python objects that weights-only loading refuses."""


class NonFiniteWeightsError(PanetMMError, ValueError):
    """A checkpoint's weights hold NaN or infinite values (a diverged run or a damaged file)."""


class StateDictError(PanetMMError):
    """A loaded checkpoint holds no flat state dict of tensors."""


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
def weights_only_globals() -> Iterator[None]:
    """Allow numpy data and mmengine's message hub for the duration of one load."""
    registered = list(torch.serialization.get_safe_globals())
    wanted = [*numpy_safe_globals(), *MMENGINE_SAFE_GLOBALS]
    # only what is not registered yet, so that leaving the scope removes nothing other code allowed
    extra = [g for g in wanted if not any(g is r for r in registered)]
    with torch.serialization.safe_globals(extra):  # torch >= 2.5, as setup.py requires
        yield


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


def _not_a_torch_file(head: bytes) -> Optional[str]:
    """What a file that is no PyTorch checkpoint is, from its first bytes; None where it may be one.

    ``torch.save`` writes a zip archive (``PK``), older torch versions a pickle (protocol byte 0x80); anything
    else fails deep in torch's unpickler (``KeyError: 101`` for a text file) or reads as "refused Python
    objects" (a JSON file), which would send a user after a security problem instead of the wrong file.
    """
    if not head:
        return 'it is empty (0 bytes)'
    if head[:4] == b'PK\x03\x04' or head[:1] == b'\x80':
        return None
    if len(head) >= 10 and head[8:10] == b'{"':
        return 'it is a safetensors file; load it with safetensors.torch.load_file and save its tensors with torch.save'
    kinds = [(b'\x89PNG', 'a PNG image'), (b'\xff\xd8\xff', 'a JPEG image'), (b'GIF8', 'a GIF image'),
             (b'\x1f\x8b', 'a gzip archive'), (b'7z\xbc\xaf', 'a 7-Zip archive'), (b'Rar!', 'a RAR archive'),
             (b'\x93NUMPY', 'a numpy .npy array'), (b'\x89HDF', 'an HDF5 file (Keras / h5py)')]
    for magic, kind in kinds:
        if head.startswith(magic):
            return f'it is {kind}'
    text = head.lstrip()[:64].lower()
    if text.startswith((b'<!doctype html', b'<html', b'<?xml', b'<')):
        return 'it is an HTML / XML page (a download that returned a web page instead of the file?)'
    if text.startswith((b'{', b'[')):
        return 'it is a JSON file'
    if text.startswith(b'version https://git-lfs'):
        return 'it is a Git LFS pointer (run git lfs pull to fetch the file)'
    if all(32 <= c < 127 or c in b'\t\r\n' for c in head[:256]):
        return 'it is a text file'
    if head[257:262] == b'ustar':
        return None  # torch's oldest (tar) format: torch decides
    return ("its first bytes are neither a zip archive's (torch.save) nor a pickle's (older torch): another kind "
            'of file, or a damaged one')


def missing_checkpoint(filename: Union[str, Path]) -> Optional[str]:
    """Why ``filename`` is no checkpoint file to read (missing, or a folder, such as a work directory); None
    where it is a file."""
    filename = str(filename)
    if osp.isfile(filename):
        return None
    if osp.isdir(filename):
        return (f"checkpoint '{filename}' is a folder; pass a .pth file in it (a work directory's 'last_checkpoint' "
                'file names the newest)')
    return f"checkpoint '{filename}' not found"


def checkpoint_problem(filename: Union[str, Path]) -> Optional[str]:
    """Why ``filename`` cannot be a checkpoint, seen without loading it: missing, a folder, unreadable, or another
    kind of file (its first bytes: empty, an image, a text file...); None where torch may read it. The tools
    ask before building a model and a log folder, not after."""
    filename = str(filename)
    missing = missing_checkpoint(filename)
    if missing:
        return missing
    try:
        with open(filename, 'rb') as f:
            kind = _not_a_torch_file(f.read(4096))
    except OSError as e:
        return f"checkpoint '{filename}' cannot be read ({e.strerror or e}); check the file and its permissions"
    if not kind:
        return None
    fix = '' if ';' in kind or 'git lfs' in kind else ('; pass the .pth file tools/train.py saved (or one torch.save '
                                                         'wrote), or copy or download this one again')
    return f"checkpoint '{filename}' is not a PyTorch checkpoint: {kind}{fix}"


def load_weights_only(filename: Union[str, Path], map_location: Any = 'cpu') -> Any:
    """``torch.load(filename, weights_only=True)`` that reads every mmengine / mmagic checkpoint.

    Args:
        filename (str | Path): A local checkpoint file.
        map_location: As for :func:`torch.load`. Default: ``'cpu'``.

    Returns:
        The loaded object (tensors, containers, numbers, strings, numpy arrays, ``HistoryBuffer``).

    Raises:
        FileNotFoundError: If the file does not exist.
        UnsafeCheckpointError: If the file holds other Python objects, or is not a readable torch file.
    """
    filename = osp.expanduser(str(filename))
    missing = missing_checkpoint(filename)
    if missing:
        raise FileNotFoundError(missing)
    problem = checkpoint_problem(filename)
    if problem:
        raise UnsafeCheckpointError(problem) from None
    try:
        with weights_only_globals():
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"checkpoint '{filename}' holds Python objects that the weights-only loader refuses ({_torch_reason(e)}); "
            'panet_mm never unpickles objects that could run code. Use a checkpoint written by mmagic / mmengine, '
            'tools/train.py or tools/model_converters/convert_official_ckpt.py, or save only its tensors (the '
            'state_dict) from the program that made it') from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, ImportError,
            UnicodeDecodeError, KeyError, IndexError) as e:  # (torch's unpickler on damaged data)
        raise UnsafeCheckpointError(f"checkpoint '{filename}' cannot be read ({type(e).__name__}: {first_line(e)}); "
                                    'it is truncated, corrupt or not a PyTorch file - copy or download it again'
                                    ) from None


def unwrap_state_dict(obj: Any, source: str = '<object>', prefix: Optional[str] = None,
                      strip: Sequence[str] = COMMON_PREFIXES,
                      error: Type[Exception] = StateDictError) -> Dict[str, Tensor]:
    """The flat tensor state dict inside a loaded checkpoint.

    Wrappers (:data:`WRAPPER_KEYS`, nested a few levels at most) are opened until a dict of tensors is
    reached; then ``prefix`` selects and strips one sub-model's keys, and each of ``strip`` is removed
    while every key carries it.

    Args:
        obj: What :func:`load_weights_only` returned.
        source (str): The file name, for messages.
        prefix (str, optional): Keep only the keys under this prefix, without it (e.g. ``'generator.'``
            for the generator of an mmagic edit model). Default: None (all keys).
        strip (sequence[str]): Prefixes removed when every key carries them. Default: :data:`COMMON_PREFIXES`.
        error (type): The exception class raised (a caller's own refusal class). Default: StateDictError.

    Returns:
        OrderedDict[str, Tensor]: The state dict (a new dict; the tensors are not copied). It carries the
        inner dict's torch ``_metadata`` (per-module versions, e.g. BatchNorm's), re-keyed along with
        the prefixes, so that ``load_state_dict`` sees what ``state_dict()`` wrote.

    Raises:
        StateDictError: No non-empty dict of tensors inside, or none under ``prefix``.
    """
    for _ in range(4):
        if not isinstance(obj, Mapping) or (obj and all(isinstance(v, Tensor) for v in obj.values())):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise error(f"'{source}' holds {type(obj).__name__}, not a state dict of tensors; "
                    'pass a checkpoint written by tools/train.py or tools/model_converters/convert_official_ckpt.py, '
                    'or a saved state_dict()')
    bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
    if bad:
        raise error(f"'{source}' has non-tensor state dict entries ({list_keys(bad)}); pass a checkpoint written "
                    'by tools/train.py, or save only the model\'s state_dict()')
    state = {str(k): v for k, v in obj.items()}
    metadata = getattr(obj, '_metadata', None)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise error(f"'{source}' has no keys under the prefix '{prefix}' (it has e.g. "
                        f'{list_keys(sorted(map(str, obj)), 3)}); pass the matching prefix')
        metadata = _strip_metadata(metadata, prefix)
    while True:
        common = next((p for p in strip if all(k.startswith(p) for k in state)), None)
        if common is None:
            break
        state = {k[len(common):]: v for k, v in state.items()}
        metadata = _strip_metadata(metadata, common)
    out = OrderedDict(state)
    if metadata is not None:
        out._metadata = metadata        # type: ignore[attr-defined]
    return out


def _strip_metadata(metadata: Optional[Mapping], prefix: str) -> Optional[OrderedDict]:
    """torch's ``_metadata`` of the sub-module under ``prefix`` (its keys are module paths, no trailing dot)."""
    if metadata is None:
        return None
    module = prefix[:-1] if prefix.endswith('.') else prefix
    out: OrderedDict = OrderedDict()
    for key, value in metadata.items():
        if key == module:
            out[''] = value
        elif key.startswith(module + '.'):
            out[key[len(module) + 1:]] = value
    return out


class StateDictDiff(NamedTuple):
    """How a given state dict differs from the expected one (keys sorted)."""

    missing: List[str]
    unexpected: List[str]
    #: ``(key, expected_shape, given_shape)``
    mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def misshaped(self) -> List[str]:
        """The mis-shaped keys as ``'key (given shape) vs model (expected shape)'``."""
        return [f'{k} {given} vs model {expected}' for k, expected, given in self.mismatched]

    def counts(self) -> str:
        """E.g. ``'2 missing, 1 mis-shaped'``."""
        return ', '.join(f'{len(v)} {n}' for n, v in self._groups() if v)

    def lines(self, limit: int = LISTED_KEYS) -> List[str]:
        """One line per non-empty group: ``'missing (27): a, b, ... (15 more)'``."""
        return [f'{n} ({len(v)}): {list_keys(v, limit)}' for n, v in self._groups() if v]

    def _groups(self) -> List[Tuple[str, List[str]]]:
        return [('missing', self.missing), ('unexpected', self.unexpected), ('mis-shaped', self.misshaped())]


def compare_state_dicts(expected: Mapping[str, Any], given: Mapping[str, Any]) -> StateDictDiff:
    """Missing, unexpected and mis-shaped keys of ``given`` against ``expected`` (a model's ``state_dict()``).

    BatchNorm's ``num_batches_tracked`` counters may be absent: torch fills them in when loading.
    """
    missing = sorted(k for k in expected if k not in given and 'num_batches_tracked' not in k)
    unexpected = sorted(k for k in given if k not in expected)
    mismatched = sorted((k, tuple(v.shape), tuple(given[k].shape)) for k, v in expected.items()
                        if k in given and hasattr(given[k], 'shape') and tuple(given[k].shape) != tuple(v.shape))
    return StateDictDiff(missing, unexpected, mismatched)


def list_keys(keys: Sequence[str], limit: int = LISTED_KEYS) -> str:
    """``keys`` for a message: the first ``limit`` (in the given order), then ``... (N more)``."""
    shown = ', '.join(str(k) for k in keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def non_finite_keys(state: Mapping[str, Any]) -> List[str]:
    """Keys of the floating-point and complex tensors of ``state`` that hold a NaN or an infinity."""
    return [str(k) for k, v in state.items() if isinstance(v, Tensor) and (v.is_floating_point() or v.is_complex())
            and not bool(torch.isfinite(v).all())]


def non_finite_message(source: str, keys: List[str], fix: str = 'its training diverged, so nothing was restored or '
                       'tested - use an earlier checkpoint of the run') -> str:
    """One sentence naming the non-finite tensors of checkpoint ``source`` and what to do (``fix``)."""
    return f"checkpoint '{source}' has NaN / infinite weights in {len(keys)} tensor(s): {list_keys(keys)}; {fix}"


def first_conv_in_channels(module: nn.Module) -> Optional[int]:
    """Input channels of the first ``Conv2d`` in ``module`` (registration order), None without one.

    The first convolution of an image-to-image network reads the image, so this is the channel count
    the network takes.
    """
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    return None if conv is None else int(conv.in_channels)


#: The task setting a released file's name carries (README, "Released checkpoints": model_x2.pt, model_N30.pt,
#: Q40.pt), for converted checkpoints, which record that name as ``meta['source']``.
RELEASED_NAME_SETTINGS = ((re.compile(r'^model_x(\d)\.pt$'), 'scale'), (re.compile(r'^model_N(\d+)\.pt$'), 'sigma'),
                          (re.compile(r'^Q(\d+)\.pt$'), 'quality'))
#: Released files named for their task only: the demosaicing model (``model_best.pt``, GRBG mosaics).
RELEASED_NAME_FIXED = {'model_best.pt': {'pattern': 'GRBG'}}
#: The top-level config variables that name a model's task level (those a config carries into its model).
TASK_SETTINGS = tuple(TASK_VARIABLES)


def checkpoint_task_settings(meta: Any) -> Dict[str, Any]:
    """The task settings (``scale``, ``sigma``, ``quality``, ``pattern``) a checkpoint was made for, as far as its
    ``meta`` says, read without running anything: the top-level assignments of the config mmengine saves as text
    in ``meta['cfg']``, else the released file name the converter records in ``meta['source']``.

    Why: a JPEG q10 or a sigma-30 model has the same weights' shapes as the q40 / sigma-50 one, so a checkpoint
    tested under another level's config loads without a mismatch and reports numbers of the wrong model.
    """
    found: Dict[str, Any] = {}
    if not isinstance(meta, Mapping):
        return found
    text = meta.get('cfg')
    if isinstance(text, str):
        for m in re.finditer(rf"^({'|'.join(TASK_SETTINGS)}) = (.+?)\s*$", text, re.MULTILINE):
            try:
                value = ast.literal_eval(m.group(2))
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                found.setdefault(m.group(1), value)
    source = meta.get('source')
    if not found and isinstance(source, str):
        found.update(RELEASED_NAME_FIXED.get(osp.basename(source), {}))
        for pattern, name in RELEASED_NAME_SETTINGS:
            m = pattern.match(osp.basename(source))
            if m:
                found[name] = int(m.group(1))
    return found


__all__ = ['COMMON_PREFIXES', 'LISTED_KEYS', 'MMENGINE_SAFE_GLOBALS', 'NonFiniteWeightsError', 'RELEASED_NAME_FIXED',
           'RELEASED_NAME_SETTINGS', 'StateDictDiff', 'StateDictError', 'TASK_SETTINGS', 'UnsafeCheckpointError',
           'WRAPPER_KEYS', 'checkpoint_problem', 'checkpoint_task_settings', 'compare_state_dicts',
           'first_conv_in_channels', 'list_keys', 'load_weights_only', 'missing_checkpoint', 'non_finite_keys',
           'non_finite_message', 'numpy_safe_globals', 'unwrap_state_dict', 'weights_only_globals']
