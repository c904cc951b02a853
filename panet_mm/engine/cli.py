"""What ``tools/train.py`` and ``tools/test.py`` share: arguments and config loading.

The arguments are mmagic's (``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank``);
the extras are a readable error for a missing config and the CPU distributed set-up.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import os
import os.path as osp
import re
import sys
from typing import Iterator, List, Optional

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS

from .checkpoint import UnsafeCheckpointError
from .distributed import setup_distributed
from .hooks import NonFiniteLossError
from .runner import CheckpointMismatchError, PANetRunner
from .work_dir import WorkDirBusyError, WorkDirLock, remove_interrupted_saves

_MISSING = object()
#: Errors of a full or read-only disk: one line instead of a traceback.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Add the arguments every mmagic tool takes."""
    parser.add_argument('--work-dir', help='the directory to save logs, checkpoints and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. train_cfg.max_iters=10 '
        'train_dataloader.dataset.data_root=data/demo/DIV2K (lists: key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """Load ``args.config`` with the command-line overrides and the work directory applied.

    Args:
        args (argparse.Namespace): Parsed arguments of a tool (see :func:`add_common_args`).

    Returns:
        Config: The config, ready for ``Runner.from_cfg``.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        raise SystemExit(f"config file '{args.config}' not found; the configs are listed in configs/ "
                         '(see README "Configs")')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        problem = check_overrides(cfg, args.cfg_options)
        if problem:
            print(f'error: {problem}', file=sys.stderr)
            raise SystemExit(2)
        cfg.merge_from_dict(args.cfg_options)
    # work_dir priority: command line > config > config file name
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    setup_distributed(cfg, args.launcher)
    return cfg


def _config_value(cfg: Config, key: str):
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg  # a Config is not a dict; its ConfigDict is
    for part in key.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def check_overrides(cfg: Config, options: dict) -> Optional[str]:
    """A message for a ``--cfg-options`` value whose type contradicts the config's value there, else None.

    Why it exists: ``DictAction`` keeps a value it cannot parse as a string, so ``train_cfg.max_iters=abc``
    only fails when the loop is built, after the work directory and its logs were created, with a
    traceback. Numbers and booleans of the config must stay numbers and booleans (``None`` is allowed).

    Args:
        cfg (Config): The config before the overrides.
        options (dict): The parsed ``--cfg-options``.

    Returns:
        str, optional: The problem, naming the key, the value and what the config has there.
    """
    for key, value in options.items():
        old = _config_value(cfg, key)
        if old is _MISSING or old is None or value is None:
            continue
        if isinstance(old, bool):
            ok, want = isinstance(value, bool), 'True or False'
        elif isinstance(old, int):
            ok = (isinstance(value, int) and not isinstance(value, bool)
                  or isinstance(value, float) and value.is_integer())
            want = 'an integer'
        elif isinstance(old, float):
            ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), 'a number'
        else:
            continue
        if not ok:
            return (f'--cfg-options {key}={value}: the config has {old!r} there; give {want} '
                    '(nothing was created)')
    return None


@contextlib.contextmanager
def hold_work_dir(cfg: Config) -> Iterator[None]:
    """Hold the work directory's :class:`~panet_mm.engine.work_dir.WorkDirLock` for a training run.

    Only the first process of a distributed run (rank 0) takes it. With the lock held, temporary files
    of checkpoint saves that an earlier run left when it was interrupted are removed (with a note).
    """
    rank = int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')) or 0)
    if rank != 0:
        yield
        return
    with WorkDirLock(cfg.work_dir) as lock:
        if lock.note:
            print(f'note: {lock.note}', file=sys.stderr)
        removed, size = remove_interrupted_saves(cfg.work_dir)
        if removed:
            shown = ', '.join(removed[:4]) + (f' (+{len(removed) - 4} more)' if len(removed) > 4 else '')
            print(f'note: removed {len(removed)} temporary file(s) ({size / 1e6:.1f} MB) of interrupted checkpoint '
                  f"saves in '{cfg.work_dir}': {shown}", file=sys.stderr)
        yield


def enable_amp(cfg: Config) -> Optional[str]:
    """Switch every ``OptimWrapper`` of ``cfg`` to ``AmpOptimWrapper`` with dynamic loss scaling.

    Returns:
        str, optional: A note for the log when AMP was already enabled, else None.
    """
    wrapper = cfg.optim_wrapper
    single = 'type' in wrapper and ('constructor' not in wrapper
                                    or wrapper['constructor'] == 'DefaultOptimWrapperConstructor')
    targets = [wrapper] if single else [v for v in wrapper.values() if isinstance(v, dict) and 'type' in v]
    notes = []
    for w in targets:
        if w['type'] == 'AmpOptimWrapper':
            notes.append('AMP training is already enabled in the config')
            continue
        if w['type'] != 'OptimWrapper':
            raise SystemExit(f"--amp needs optim_wrapper type 'OptimWrapper', the config has {w['type']!r}")
        w['type'] = 'AmpOptimWrapper'
        w['loss_scale'] = 'dynamic'
    return notes[0] if notes else None


def build_runner(cfg: Config):
    """Build the runner: the config's ``runner_type`` if it names one, else :class:`PANetRunner`."""
    if cfg.get('runner_type'):
        return RUNNERS.build(cfg)
    return PANetRunner.from_cfg(cfg)


def _registered_names(registry_name: str) -> List[str]:
    """Every name registered under ``registry_name`` in mmengine's root registry and its children."""
    import mmengine.registry as root_registries
    names = set()
    for value in vars(root_registries).values():
        if getattr(value, 'name', None) == registry_name and hasattr(value, 'module_dict'):
            stack = [value]
            while stack:
                reg = stack.pop()
                reg.import_from_location()
                names.update(reg.module_dict)
                stack.extend(reg.children.values())
    return sorted(names)


def explain_unknown_type(message: str) -> Optional[str]:
    """Rewrite mmengine's "X is not in the scope::name registry" error with close registered names."""
    m = re.search(r"`?'?(\w+)'?`? is not in the (\w+)::(\w+) registry", message)
    if not m:
        return None
    name, _, registry = m.groups()
    close = difflib.get_close_matches(name, _registered_names(registry), n=5, cutoff=0.6)
    hint = f'did you mean {", ".join(close)}?' if close else 'check the spelling and custom_imports'
    return (f"the config names type='{name}', which is not registered in the '{registry}' registry; {hint} "
            "(panet_mm modules need custom_imports = dict(imports=['panet_mm']))")


@contextlib.contextmanager
def readable_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one line on stderr and exit status 1.

    Set ``PANET_MM_DEBUG=1`` to see the full traceback instead.
    """
    if os.environ.get('PANET_MM_DEBUG'):
        yield
        return
    try:
        yield
    except (CheckpointMismatchError, UnsafeCheckpointError, NonFiniteLossError, FileNotFoundError,
            WorkDirBusyError) as e:
        _fail(str(e))
    except OSError as e:
        text = disk_error(e)
        if text is None:
            raise
        _fail(text)
    except KeyError as e:
        text = explain_unknown_type(str(e))
        if text is None:
            raise
        _fail(text)
    except RuntimeError as e:
        if type(e).__name__ != 'DataSampleError':
            raise
        _fail(str(e).strip().splitlines()[-1])


def disk_error(err: OSError, hint: str = 'then continue with --resume') -> Optional[str]:
    """One sentence for a full or read-only disk (naming the file), or None for other errors."""
    what = f"cannot write '{err.filename}'" if err.filename else 'a write failed'
    if err.errno in _NO_SPACE:
        return (f'{what}: {err.strerror or "no space left"}; free space on that disk (or pass another --work-dir), '
                f'{hint}')
    if err.errno in _NOT_WRITABLE:
        return f'{what}: {err.strerror or "not writable"}; pass a writable --work-dir'
    return None


def _fail(message: str) -> None:
    print(f'error: {message}', file=sys.stderr)
    raise SystemExit(1)


__all__ = ['add_common_args', 'build_runner', 'check_overrides', 'disk_error', 'enable_amp', 'explain_unknown_type',
           'hold_work_dir', 'load_config', 'readable_errors']
