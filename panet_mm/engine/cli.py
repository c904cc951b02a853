"""What ``tools/train.py`` and ``tools/test.py`` share: arguments and config loading.

The arguments are mmagic's (``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank``);
the extras are a readable error for a missing config and the CPU distributed set-up.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction

from .distributed import setup_distributed


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
        cfg.merge_from_dict(args.cfg_options)
    # work_dir priority: command line > config > config file name
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    setup_distributed(cfg, args.launcher)
    return cfg


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


__all__ = ['add_common_args', 'load_config', 'enable_amp']
