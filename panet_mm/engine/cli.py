"""What ``tools/train.py`` and ``tools/test.py`` share: arguments and config loading.

The arguments are mmagic's (``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank``);
the extras are a readable error for a missing config and the CPU distributed set-up.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import os.path as osp
import re
import sys
from typing import Iterator, List, Optional

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS

from ..registry import register_config_package
from .checkpoint import UnsafeCheckpointError
from .distributed import setup_distributed
from .hooks import NonFiniteLossError, NonFiniteOutputError
from .runner import CheckpointMismatchError, PANetRunner


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
    register_config_package()  # `_base_ = 'panet_mm::...'` in the config
    try:
        cfg = Config.fromfile(args.config)
    except FileNotFoundError as err:
        raise SystemExit(explain_missing_base(args.config, err)) from None
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir priority: command line > config > config file name
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    setup_distributed(cfg, args.launcher)
    return cfg


def explain_missing_base(config: str, err: FileNotFoundError) -> str:
    """One line for a config whose base file is missing, with the fix for ``panet_mm::`` bases."""
    quoted = re.search(r'"(.+)"', str(err))  # mmengine's check_file_exist: 'file "PATH" does not exist'
    missing = getattr(err, 'filename', None) or (quoted.group(1) if quoted else str(err))
    text = f"config '{config}' names a base file that does not exist: {missing}"
    if osp.join('.mim', 'model-index.yml') in str(err):
        return (f"{text}; `panet_mm::` bases need panet_mm installed from its wheel (an editable install has no "
                "panet_mm/.mim): pip install dist/panet_mm-*.whl, or use a relative _base_ into configs/")
    if osp.join('.mim', 'configs') in str(err):
        return f"{text}; the installed names are those of configs/panet/ (see configs/panet/README.md)"
    return text


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
    except (CheckpointMismatchError, UnsafeCheckpointError, NonFiniteLossError, NonFiniteOutputError,
            FileNotFoundError) as e:
        _fail(str(e))
    except KeyError as e:
        text = explain_unknown_type(str(e))
        if text is None:
            raise
        _fail(text)
    except RuntimeError as e:
        if type(e).__name__ != 'DataSampleError':
            raise
        _fail(str(e).strip().splitlines()[-1])


def _fail(message: str) -> None:
    print(f'error: {message}', file=sys.stderr)
    raise SystemExit(1)


__all__ = ['add_common_args', 'build_runner', 'enable_amp', 'explain_missing_base', 'explain_unknown_type',
           'load_config', 'readable_errors']
