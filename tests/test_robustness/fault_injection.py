"""Run a repository tool with a read-only or full disk simulated under one folder.

    python tests/test_robustness/fault_injection.py SPEC tools/TOOL.py [tool arguments ...]

SPEC is ``EROFS:PREFIX`` (every write, folder creation, rename or removal under PREFIX fails with
"Read-only file system", as on a disk mounted read-only) or ``ENOSPC:PREFIX:REGEX`` (writes to files
under PREFIX whose name matches REGEX fail with "No space left on device" when they are flushed to the
disk, ``os.fsync``, or written with ``os.write``, which is where a full disk reports it).

Why: the tests run as root, for whom ``chmod`` does not make a folder read-only, and a tmpfs cannot be
mounted without privileges. The faults are raised by the same ``os`` / ``open`` calls the tool makes, as
``OSError`` with the real errno, so the tool's handling is exercised unchanged. Child processes made by
``fork`` (multiprocessing pools) inherit the faults.
"""
from __future__ import annotations

import builtins
import errno
import io
import os
import os.path as osp
import re
import runpy
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install(spec: str) -> None:
    """Patch ``os`` and ``open`` so that writes under the spec's folder fail as it says."""
    kind, _, rest = spec.partition(':')
    code = getattr(errno, kind)
    if code == errno.ENOSPC:
        prefix, _, pattern = rest.partition(':')
    else:
        prefix, pattern = rest, ''
    prefix = osp.realpath(prefix)
    name_re = re.compile(pattern or '.*')

    def under(path) -> bool:
        if isinstance(path, int):
            return False
        path = osp.realpath(os.fsdecode(path))
        return (path == prefix or path.startswith(prefix + os.sep)) and bool(name_re.fullmatch(osp.basename(path)))

    def fail(path=None):
        raise OSError(code, os.strerror(code), *([os.fsdecode(path)] if path is not None else []))

    if code == errno.ENOSPC:
        real_fsync, real_write = os.fsync, os.write

        def fd_path(fd):
            try:
                return os.readlink(f'/proc/self/fd/{fd}')
            except OSError:
                return None

        def fsync(fd):
            if not isinstance(fd, int):
                fd = fd.fileno()
            path = fd_path(fd)
            if path is not None and under(path):
                fail()
            return real_fsync(fd)

        def write(fd, data):
            path = fd_path(fd)
            if path is not None and under(path):
                fail()
            return real_write(fd, data)

        os.fsync, os.write = fsync, write
        return

    real_os_open, real_open = os.open, builtins.open
    real = {name: getattr(os, name) for name in ('mkdir', 'replace', 'rename', 'remove', 'unlink', 'rmdir')}

    def os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & _WRITE_FLAGS and under(path):
            fail(path)
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    def open_(file, mode='r', *args, **kwargs):
        if any(c in mode for c in 'wax+') and under(file):
            fail(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded(name):
        def call(path, *args, **kwargs):
            if name == 'mkdir' and osp.lexists(path):  # as the kernel does: an existing folder is EEXIST
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(path))
            if under(path) or (args and isinstance(args[0], (str, bytes, os.PathLike)) and under(args[0])):
                fail(path)
            return real[name](path, *args, **kwargs)
        return call

    os.open = os_open
    builtins.open = io.open = open_
    for name in real:
        setattr(os, name, guarded(name))


def main() -> None:
    spec, tool, *args = sys.argv[1:]
    install(spec)
    sys.argv = [tool, *args]
    runpy.run_path(tool, run_name='__main__')


if __name__ == '__main__':
    main()
