"""The kernel's optional compiled steps on CPU: a chunk's shifted sums, softmax and softmax backward, row by row.

Why this exists: after its matrix products every chunk makes several elementwise passes over its
``(images, rows, L')`` score block (the shifted sums, the scaling by the key norms, the softmax or its
backward, the denormal flush). The block does not fit the CPU's caches, so each of torch's passes reads
and writes it from L3 or memory; ``csrc/attention_rows.cpp`` does the same steps one query row at a
time, the row staying in cache (README, "Attention speed and memory"). Torch has no fused operation
for them, and ``torch.compile``'s generated CPU code for these steps ran slower than the eager ones.

The source ships with the package and is compiled on first use with ``torch.utils.cpp_extension``
(a C++ compiler and ninja, about 10-30 s, once per torch installation, panet_mm copy and machine; the
build lives in torch's extension folder, ``TORCH_EXTENSIONS_DIR``). Where it cannot be built the kernel runs the
same steps with torch's operations, after one warning that says why. ``PANET_MM_NATIVE=0`` turns it off.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import os.path as osp
import re
import shutil
import sys
import threading
import time
import warnings
from typing import Any, Optional

import torch

__all__ = ['fused_ops', 'native_status', 'ENV_VAR']

#: Environment variable: ``0`` (or ``false`` / ``off``) runs torch's operations instead of the compiled steps.
ENV_VAR = 'PANET_MM_NATIVE'
SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', 'attention_rows.cpp')

_lock = threading.Lock()
_state: dict = {}


def _disabled() -> bool:
    return os.environ.get(ENV_VAR, '1').strip().lower() in ('0', 'false', 'off', 'no')


def _flags() -> list:
    """Compiler flags: the vector instructions torch itself dispatches to on this CPU (x86-64-v3 for
    AVX2, v4 for AVX-512), so the build never uses an instruction the machine lacks; no fused
    multiply-add contraction, so the scaling rounds as torch's ``addcmul`` does."""
    flags = ['-O3', '-ffp-contract=off', '-fopenmp']
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        capability = 'DEFAULT'
    if capability.startswith('AVX512'):
        flags += ['-march=x86-64-v4', '-mprefer-vector-width=512']
    elif capability == 'AVX2':
        flags += ['-march=x86-64-v3']
    return flags


def _build_name() -> str:
    """Extension name: one build per torch installation (version and folder), instruction set and panet_mm copy.
    Virtual environments of one Python share torch's extension folder; with one name between them, each would
    rebuild the library in place (its headers' paths differ), under processes of the other that use it. The same
    holds for two copies of panet_mm on one torch (a git checkout and an installed wheel): each writes its own
    source path into the shared build.ninja, so every switch between them recompiled (10-12 s), each time
    reopening the window in which a killed build leaves torch's lock behind. (A symlinked environment counts as
    another torch installation for the same reason.)"""
    version = re.sub(r'[^0-9A-Za-z]+', '_', torch.__version__)
    capability = '_'.join(f.split('=')[-1] for f in _flags() if f.startswith('-march')) or 'generic'
    # the path torch is imported by, not its real path: the compile command names the headers by it, so one torch
    # reached through a symlinked environment would otherwise rebuild the other's library at every switch
    where = hashlib.sha1(osp.abspath(osp.dirname(torch.__file__)).encode()).hexdigest()[:8]
    source = hashlib.sha1(osp.realpath(SOURCE).encode()).hexdigest()[:8]
    return re.sub(r'[^0-9A-Za-z_]+', '_', f'panet_mm_attention_rows_{version}_{capability}_{where}_{source}')


def _built(cpp_extension, name: str) -> bool:
    """Whether a build of ``name`` is already in torch's extension folder (then loading takes a moment; torch
    still rebuilds it if the source changed)."""
    try:
        folder = cpp_extension._get_build_directory(name, verbose=False)
    except Exception:                    # a private helper: say 'compiling' where it is missing
        return False
    return osp.exists(osp.join(folder, f'{name}.so'))


def _ninja_on_path() -> None:
    """torch builds with the ``ninja`` command: where it is not on PATH but installed in this interpreter's
    environment (``pip install ninja`` in a virtual environment that is not activated), its folder is
    put on this process's PATH."""
    if shutil.which('ninja') is not None:
        return
    folders = [osp.dirname(sys.executable)]
    try:
        import ninja
        folders.insert(0, ninja.BIN_DIR)
    except (ImportError, AttributeError):
        pass
    for folder in folders:
        if shutil.which('ninja', path=folder) is not None:
            os.environ['PATH'] = folder + os.pathsep + os.environ.get('PATH', '')
            return


#: A build lock older than this is left by an interrupted build (the build itself takes well under a minute).
STALE_LOCK_SECONDS = 600
#: How long to wait for another process's build lock before giving up on the compiled step (the build takes
#: 10-30 s); torch itself would wait forever.
LOCK_WAIT_SECONDS = 90.0
#: A lock held for less than this (processes starting together, one loading the built library) goes unsaid.
_LOCK_QUIET_SECONDS = 5.0
_LOCK_POLL_SECONDS = 0.25


def _wait_for_build_lock(cpp_extension: Any, name: str) -> None:
    """Wait, bounded, for a build lock another process holds, so torch's own wait is never entered on one.

    torch < 2.14 (``FileBaton``) waits on the lock file's mere existence, with no limit: a build killed mid-compile
    (SIGTERM, SIGKILL) leaves the file, and every later process would hang silently, even where the library is
    already built. Here a lock that goes away within LOCK_WAIT_SECONDS lets the load go on (it then finds the
    build); one older than STALE_LOCK_SECONDS is removed as left by an interrupted build; any other raises
    RuntimeError, which ``fused_ops`` turns into one warning and torch's operations. torch's ``FileLock`` (later
    versions) is released by the system when its holder dies, and its file stays after release: left alone."""
    if not hasattr(cpp_extension, 'FileBaton') or hasattr(cpp_extension, 'FileLock'):
        return
    try:
        lock = osp.join(cpp_extension._get_build_directory(name, verbose=False), 'lock')
    except Exception:                    # torch's private helper moved: torch's own wait, as before
        return
    start = time.monotonic()
    deadline, told = start + LOCK_WAIT_SECONDS, False
    while True:
        try:
            age = time.time() - os.stat(lock).st_mtime
        except OSError:                  # no lock (the usual case), or the other build finished
            return
        if age > STALE_LOCK_SECONDS:
            print(f'panet_mm: removing {lock}, left {age / 60:.0f} minutes ago by an interrupted build',
                  file=sys.stderr, flush=True)
            with contextlib.suppress(OSError):
                os.remove(lock)
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(f'build lock {lock} still held after {LOCK_WAIT_SECONDS:.0f} s (a killed build '
                               f'leaves it): remove it if no other panet_mm process is compiling')
        if not told and time.monotonic() - start >= _LOCK_QUIET_SECONDS:  # (ranks starting together: a moment)
            print(f'panet_mm: waiting up to {LOCK_WAIT_SECONDS:.0f} s for another process\'s build of the fused CPU '
                  f'attention step (lock: {lock})', file=sys.stderr, flush=True)
            told = True
        time.sleep(_LOCK_POLL_SECONDS)


class _NoCudaRuntimeLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith('No CUDA runtime is found')


def _cpp_extension() -> Any:
    """``torch.utils.cpp_extension``, imported without the line it prints (torch 2.5) or logs (later) where a CUDA
    toolkit is installed but torch sees no GPU ("No CUDA runtime is found, using CUDA_HOME=..."): this CPU-only
    build needs no CUDA, and the line appeared in every restore on such machines. Anything else passes through."""
    if 'torch.utils.cpp_extension' in sys.modules:
        return sys.modules['torch.utils.cpp_extension']
    printed = io.StringIO()
    logger = logging.getLogger('torch.utils.cpp_extension')
    no_cuda_line = _NoCudaRuntimeLine()
    logger.addFilter(no_cuda_line)
    try:
        with contextlib.redirect_stderr(printed):
            from torch.utils import cpp_extension
    finally:
        logger.removeFilter(no_cuda_line)
    sys.stderr.write(''.join(line for line in printed.getvalue().splitlines(keepends=True)
                             if not line.startswith('No CUDA runtime is found')))
    return cpp_extension


def _build() -> Any:
    if shutil.which(os.environ.get('CXX', 'c++')) is None:
        raise RuntimeError('no C++ compiler found (install g++, or set CXX)')
    cpp_extension = _cpp_extension()
    _ninja_on_path()
    cpp_extension.verify_ninja_availability()
    name = _build_name()
    _wait_for_build_lock(cpp_extension, name)
    if not _built(cpp_extension, name):
        print(f'panet_mm: compiling the fused CPU attention step ({osp.basename(SOURCE)}; once per machine, torch '
              f'version and panet_mm copy, 10-30 s)', file=sys.stderr, flush=True)
    cpp_extension.load(name=name, sources=[SOURCE], extra_cflags=_flags(), is_python_module=False, verbose=False)
    return torch.ops.panet_mm


def fused_ops() -> Optional[Any]:
    """``torch.ops.panet_mm`` (``stencil_softmax``: the forward's step; ``stencil_softmax_backward``: the
    backward's), compiled on the first call; None where turned off (``PANET_MM_NATIVE=0``) or where they
    cannot be built (then one warning says why).

    ``stencil_softmax(src, lo, row_offsets, range_counts, starts, ends, key_offsets, inv_scale, bias, out, raw,
    zero_rows)``:
    for each of the ``m`` rows ``i`` of ``out`` ``(B, m, L')``, the shifted sums ``src[lo+i] + sum over shifts
    j of src[lo+i+row_offsets[j], k+key_offsets[r]]`` (for ``starts[r] <= k < ends[r]``, the ``range_counts[j]``
    ranges of shift ``j``), times ``inv_scale`` ``(B, 1, L')``, plus ``bias`` ``(L',)``, then the softmax over
    the keys (denormals written as 0); ``raw`` (optional, like ``out``) gets the shifted sums; the rows listed in
    ``zero_rows`` (optional int64 indices: padding query positions) get probability 0.
    ``stencil_softmax_backward(src, lo, ..., key_offsets, attn, inv_scale, dz, raw)``: with ``g`` those shifted
    sums (the gradient of the probabilities ``attn``), ``dz <- attn * (g - sum_k attn * g) * inv_scale``
    (denormals written as 0), and ``raw <- raw * attn * (g - sum_k attn * g)`` where given.
    """
    if _disabled():
        return None
    if 'op' in _state:
        return _state['op']
    with _lock:
        if 'op' not in _state:
            try:
                _state['op'] = _build()
                _state['why'] = None
            except Exception as err:    # no compiler, no ninja, a read-only cache, a failed build: eager ops
                _state['op'] = None
                _state['why'] = f'{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ""}'
                warnings.warn(f'panet_mm: the fused CPU attention step could not be built ({_state["why"]}); the '
                              f'kernel runs torch operations instead (same results, slower on CPU). '
                              f'{ENV_VAR}=0 turns the attempt off.', stacklevel=3)
    return _state['op']


def native_status() -> str:
    """One line: whether the compiled step is in use, and why not (for bug reports and the benchmark)."""
    if _disabled():
        return f'off ({ENV_VAR}=0)'
    ops = fused_ops()
    return 'on' if ops is not None else f'unavailable ({_state.get("why")})'
