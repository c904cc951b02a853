"""Console scripts ``panet-train``, ``panet-test``, ``panet-restore`` and ``panet-convert``.

Each runs the repository tool of the same name (``tools/train.py`` ...) exactly as ``python tools/X.py``
would, so the tools stay the one implementation. An installed wheel carries them in
``panet_mm/.mim/tools/`` (setup.py copies them there, as OpenMMLab packages do); a source checkout
without ``.mim`` uses ``tools/`` next to the package.
"""
from __future__ import annotations

import os.path as osp
import sys
import types
from typing import List, Optional

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
TOOLS = {'train': 'train.py', 'test': 'test.py', 'restore': 'restore.py',
         'convert': osp.join('model_converters', 'convert_official_ckpt.py')}


def tool_path(name: str) -> str:
    """Path of the tool script ``name`` (``train``, ``test``, ``restore``, ``convert``).

    Raises:
        FileNotFoundError: neither the installed copy nor a checkout's ``tools/`` holds it.
    """
    script = TOOLS[name]
    candidates = [osp.join(PACKAGE_DIR, '.mim', 'tools', script),
                  osp.join(osp.dirname(PACKAGE_DIR), 'tools', script)]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f"panet_mm's tool {script} is missing (looked in {' and '.join(candidates)}); "
                            'reinstall panet_mm from its wheel or run it from a git checkout')


def run_tool(name: str, argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Run the tool ``name`` with the arguments ``argv`` (default: this process's) as ``__main__``.

    Args:
        name (str): ``train``, ``test``, ``restore`` or ``convert``.
        argv (list[str], optional): The tool's arguments. Default: this process's.
        prog (str, optional): The command the tool's usage and errors name (argparse takes it from
            ``sys.argv[0]``): ``panet-restore --help`` said ``usage: restore.py``. Default: the script's name.

    Returns:
        int: The tool's exit status (its ``SystemExit`` code; 0 when it returns normally).
    """
    try:
        path = tool_path(name)
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    saved_argv, saved_path, saved_main = sys.argv, list(sys.path), sys.modules.get('__main__')
    sys.argv = [prog or path] + list(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, osp.dirname(path))  # as `python tools/X.py` does
    # (not runpy.run_path: it sets sys.argv[0] to the script's path, which argparse shows as the program's name)
    main = types.ModuleType('__main__')
    main.__file__ = path
    sys.modules['__main__'] = main
    try:
        with open(path, 'rb') as f:
            exec(compile(f.read(), path, 'exec'), main.__dict__)
    except SystemExit as done:
        code = done.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)  # SystemExit('message'), as the tools use for argument errors
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        if saved_main is not None:
            sys.modules['__main__'] = saved_main
    return 0


def train() -> int:
    """``panet-train CONFIG [options]``: tools/train.py."""
    return run_tool('train', prog='panet-train')


def test() -> int:
    """``panet-test CONFIG CHECKPOINT [options]``: tools/test.py."""
    return run_tool('test', prog='panet-test')


def restore() -> int:
    """``panet-restore --config CONFIG --checkpoint CKPT INPUT OUTPUT``: tools/restore.py."""
    return run_tool('restore', prog='panet-restore')


def convert() -> int:
    """``panet-convert SRC.pt DST.pth --arch panet|paedsr``: tools/model_converters/convert_official_ckpt.py."""
    return run_tool('convert', prog='panet-convert')


__all__ = ['convert', 'restore', 'run_tool', 'test', 'tool_path', 'train']
