"""Train a model from a config, with mmagic's tools/train.py arguments.

    python tools/train.py configs/panet_sr_x2_div2k.py [--work-dir DIR] [--resume] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

Distributed: tools/dist_train.sh CONFIG GPUS (works without a GPU too, over gloo).
The run holds the work directory (``.panet_mm_train.lock``): a second run there is refused with one line,
a lock left by a killed run is taken over with a note, and temporary files of its interrupted
checkpoint saves are removed.
"""
import argparse
import logging

from mmagic.utils import print_colored_log

from panet_mm.engine.cli import add_common_args, build_runner, enable_amp, hold_work_dir, load_config, readable_errors


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a panet_mm / mmagic model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work directory')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the real total batch size (auto_scale_lr in the config)')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    if args.amp:
        note = enable_amp(cfg)
        if note:
            print_colored_log(note, logger='current', level=logging.WARNING)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit('--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume:
        cfg.resume = True

    with readable_errors(), hold_work_dir(cfg):  # one run per work directory
        runner = build_runner(cfg)
        print_colored_log(f'Working directory: {cfg.work_dir}')
        print_colored_log(f'Log directory: {runner._log_dir}')
        runner.train()
    print_colored_log(f'Log saved under {runner._log_dir}')
    print_colored_log(f'Checkpoint saved under {cfg.work_dir}')


if __name__ == '__main__':
    main()
