"""One training run per work directory, and the leftovers of interrupted checkpoint saves.

Why it exists: mmengine lets two runs share a ``work_dir``; their logs interleave, one run's
``iter_N.pth`` replaces the other's and ``last_checkpoint`` points at whichever wrote last, so a
later ``--resume`` continues the wrong run. And a run killed while saving a checkpoint (SIGKILL,
SIGTERM, a full disk) leaves the temporary file of :class:`~panet_mm.engine.checkpoint.AtomicLocalBackend`
(``.iter_N.pth.XXXXXXXX.tmp``, as large as a checkpoint) that nothing removes.

:class:`WorkDirLock` is held by ``tools/train.py`` for the whole run: a lock file
``{work_dir}/.panet_mm_train.lock`` records the process (PID, host, start time) and is ``flock``-ed.
A second run finds the lock held and stops with one line naming the first. A lock left by a run
that was killed is detected (its PID is gone on this host, or its process started at another time,
or on another host its ``flock`` is released) and taken over with a note. Once the lock is held,
:func:`remove_interrupted_saves` deletes the temporary files of interrupted saves: no other run can
be writing them.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import os.path as osp
import socket
import sys
import time
from typing import Iterator, List, Optional, Tuple

from panet_mm.utils.errors import ParameterError
from panet_mm.utils.fileio import temp_file_target

LOCK_NAME = '.panet_mm_train.lock'


class WorkDirError(ParameterError, OSError):
    """The work directory cannot be created."""


def _why_not_made(path: str, err: OSError) -> str:
    """Why ``os.makedirs(path)`` failed, in words: the file standing in the path, else the system's reason."""
    parent = osp.abspath(path)
    while not osp.exists(parent) and osp.dirname(parent) != parent:
        parent = osp.dirname(parent)
    if osp.exists(parent) and not osp.isdir(parent):
        return f"'{parent}' is a file"
    return f"{err.strerror or err} (in '{parent}')"


class WorkDirBusyError(ParameterError, RuntimeError):
    """Another live training run holds the work directory."""


def _process_start(pid: int) -> Optional[str]:
    """The start time of process ``pid`` in clock ticks since boot (``/proc``), None if it does not exist."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: Optional[str]) -> bool:
    """Whether the process ``pid`` (started at ``start``, if known) is still running on this host."""
    if pid <= 0:
        return False
    now = _process_start(pid)
    if now is not None:
        return start is None or now == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkDirLock:
    """An exclusive lock on a training work directory (see the module docstring).

    Args:
        work_dir (str): The run's work directory (created if missing).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self.fd: Optional[int] = None
        self.note: Optional[str] = None
        self._made: List[str] = []  # the folders acquire() created, innermost first

    def _holder(self, text: str) -> dict:
        try:
            info = json.loads(text)
            return info if isinstance(info, dict) else {}
        except ValueError:
            return {}

    def _describe(self, info: dict) -> str:
        started = info.get('started')
        when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started)) if isinstance(started, (int, float)) \
            else 'an unknown time'
        return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {when}"

    def acquire(self) -> WorkDirLock:
        """Take the lock, or raise :class:`WorkDirBusyError` naming the run that holds it.

        Returns:
            WorkDirLock: ``self``; ``note`` says whether a stale lock was taken over.
        """
        self._made = _missing_folders(self.work_dir)
        try:
            os.makedirs(self.work_dir, exist_ok=True)
        except OSError as err:  # a file in the path, /proc, a read-only or full disk: a traceback from os.makedirs
            self._made = []
            why = _why_not_made(self.work_dir, err)
            raise WorkDirError('work_dir', f"{{param}} '{self.work_dir}' cannot be created: {why}; pass another "
                               '{param}') from None
        host, pid = socket.gethostname(), os.getpid()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = self._holder(os.pread(fd, 4096, 0).decode('utf-8', 'replace'))
                os.close(fd)
                raise WorkDirBusyError(
                    'work_dir',
                    f"work directory '{self.work_dir}' is in use by another training run ({self._describe(info)}); "
                    'two runs in one work directory overwrite each other\'s checkpoints. Wait for it to finish, '
                    'or pass another {param}') from None
            try:  # the file may have been removed and re-created by a run finishing meanwhile
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = self._holder(os.pread(fd, 4096, 0).decode('utf-8', 'replace'))
        if info:
            if info.get('host') == host and _alive(int(info.get('pid') or 0), info.get('start')) \
                    and info.get('pid') != pid:
                # alive but no flock: a file system without flock support; trust the PID
                os.close(fd)
                raise WorkDirBusyError(
                    'work_dir',
                    f"work directory '{self.work_dir}' is in use by another training run ({self._describe(info)}); "
                    'wait for it to finish, or pass another {param}')
            self.note = (f"took over the lock of an earlier run in '{self.work_dir}' ({self._describe(info)}) that "
                         'is no longer running (killed or crashed)')
        record = dict(pid=pid, host=host, start=_process_start(pid), started=time.time(), argv=sys.argv)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode('utf-8'), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and release the lock (safe to call twice).

        The folders :meth:`acquire` created are removed again when nothing else was written to them: a run that
        failed before its first log (a config or data error) left an empty work directory, and each corrected
        retry under another name one more.
        """
        if self.fd is None:
            return
        try:
            if osp.exists(self.path) and os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
                os.remove(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        for folder in self._made:
            try:
                os.rmdir(folder)  # only an empty folder: anything the run wrote keeps it
            except OSError:
                break
        self._made = []

    def __enter__(self) -> WorkDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _missing_folders(path: str) -> List[str]:
    """The folders of ``path`` that do not exist yet, innermost first (those ``os.makedirs(path)`` creates)."""
    missing = []
    path = osp.abspath(path)
    while not osp.exists(path):
        missing.append(path)
        parent = osp.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


@contextlib.contextmanager
def removed_if_left_empty(path: str) -> Iterator[None]:
    """Remove the folders of ``path`` made inside the block again if they are empty at its end (innermost first).

    Why: ``tools/test.py`` stopped by missing data (mmengine's runner makes the work directory first) left an empty
    ``work_dirs/<config>/``; training does the same through :class:`WorkDirLock`.
    """
    made = _missing_folders(path)
    try:
        yield
    finally:
        for folder in made:
            try:
                os.rmdir(folder)  # only an empty folder: anything the run wrote keeps it
            except OSError:
                break


def remove_interrupted_saves(work_dir: str) -> Tuple[List[str], int]:
    """Delete the temporary files that interrupted checkpoint saves left in ``work_dir``.

    Call it only while holding :class:`WorkDirLock` (no other run may be saving there). The files
    are those of :class:`~panet_mm.engine.checkpoint.AtomicLocalBackend`
    (:func:`panet_mm.utils.fileio.temp_file_target`) for a checkpoint (``.pth``) or the ``last_checkpoint`` pointer.

    Args:
        work_dir (str): The work directory.

    Returns:
        tuple[list[str], int]: The removed file names and their total size in bytes.
    """
    removed, size = [], 0
    if not osp.isdir(work_dir):
        return removed, size
    for name in sorted(os.listdir(work_dir)):
        target = temp_file_target(name)
        path = osp.join(work_dir, name)
        if target and (target.endswith('.pth') or target == 'last_checkpoint') and osp.isfile(path) \
                and not osp.islink(path):
            size += os.path.getsize(path)
            os.remove(path)
            removed.append(name)
    return removed, size


__all__ = ['LOCK_NAME', 'WorkDirBusyError', 'WorkDirError', 'WorkDirLock', 'remove_interrupted_saves',
           'removed_if_left_empty']
