"""Train a model from a config, with mmagic's tools/train.py arguments.

    python tools/train.py configs/panet_sr_x2_div2k.py [--work-dir DIR] [--resume [CHECKPOINT]] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

Distributed: tools/dist_train.sh CONFIG GPUS (works without a GPU too, over gloo).
The run holds the work directory (``.panet_mm_train.lock``): a second run there is refused with one line,
a lock left by a killed run is taken over with a note, and temporary files of its interrupted
checkpoint saves are removed.
"""
import argparse
import logging
import os.path as osp
import warnings


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a panet_mm / mmagic model')
    parser.add_argument('config', nargs='?', help='train config file path')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                        help="resume from the latest checkpoint in the work directory, or from CHECKPOINT "
                        "(mmdet / mmpretrain's form; mmagic's is --resume alone)")
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training (bfloat16 autocast on CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the real total batch size (auto_scale_lr in the config)')
    parser.add_argument('--work-dir', help='the directory to save logs, checkpoints and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', metavar='KEY=VALUE',
        help='override config settings, e.g. train_cfg.max_iters=10 '
        'train_dataloader.dataset.data_root=data/demo/DIV2K (lists: key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    # `--resume CONFIG` (mmagic's bare flag before the config) reads the config as the optional checkpoint
    if args.config is None and args.resume and args.resume.lower().endswith(('.py', '.yml', '.yaml', '.json')):
        args.config, args.resume = args.resume, 'auto'
    if args.config is None:
        parser.error('the following arguments are required: config')
    return args


def main() -> None:
    args = parse_args()
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        from mmagic.utils import print_colored_log
        from mmengine.hooks import CheckpointHook

        from panet_mm.engine.cli import (
            build_runner,
            drop_unused_log_dir,
            enable_amp,
            hold_work_dir,
            load_config,
            readable_errors,
            resume_overrides_note,
        )
        from panet_mm.engine.distributed import finish_distributed
        from panet_mm.engine.quiet import quiet_third_party_warnings
    quiet_third_party_warnings(early)

    cfg = load_config(args)
    if args.amp:
        note = enable_amp(cfg)
        if note:
            print_colored_log(note, level=logging.WARNING)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit(f"error: --auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) in '{args.config}' "
                             '(N: the total batch its learning rate was set for; 16 in the paper configs)')
        cfg.auto_scale_lr.enable = True
    if args.resume:
        if args.resume != 'auto':
            if '://' not in args.resume and not osp.isfile(args.resume):  # (URLs: mmengine's file backends)
                raise SystemExit(f"error: --resume '{args.resume}' is not a checkpoint file; pass a checkpoint of "
                                 'the run (e.g. its iter_N.pth), or --resume alone for the latest one in the work '
                                 'directory')
            cfg.load_from = args.resume  # (mmengine resumes from load_from when resume is set)
        cfg.resume = True
    note = (resume_overrides_note(args.cfg_options, cfg.work_dir, None if args.resume == 'auto' else args.resume)
            if args.resume else None)

    stopped = (f'checkpoints already saved in {cfg.work_dir} are kept (none half-written); continue with the same '
               'command and --resume')
    with readable_errors(interrupted=stopped), hold_work_dir(cfg):  # one run per work directory
        runner = build_runner(cfg)
        print_colored_log(f'Working directory: {cfg.work_dir}')
        print_colored_log(f'Log directory: {runner.log_dir}')
        if note:  # (after the environment and config dump, where it is seen, and into the log file)
            print_colored_log(note, level=logging.WARNING)
        try:
            runner.train()
        except BaseException:
            drop_unused_log_dir(runner, training=True)
            raise
        finish_distributed()
    print_colored_log(f'Log saved under {runner.log_dir}')
    # (a config's CheckpointHook out_dir, as mmagic's own configs set it, puts them outside the work directory)
    folders = [h.out_dir for h in runner.hooks if isinstance(h, CheckpointHook) and h.out_dir]
    print_colored_log(f'Checkpoint saved under {folders[0] if folders else cfg.work_dir}')


if __name__ == '__main__':
    main()
