"""Test (and evaluate) a checkpoint on the config's test sets, with mmagic's tools/test.py arguments.

    python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [--work-dir DIR] [--cfg-options k=v ...]

Distributed: tools/dist_test.sh CONFIG CHECKPOINT GPUS.
"""
import argparse
import os.path as osp

import mmengine
from mmagic.utils import print_colored_log
from mmengine.hooks import Hook

from panet_mm.engine.cli import add_common_args, build_runner, load_config, readable_errors


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a panet_mm / mmagic model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='file (.json/.yaml/.pkl) to save the metrics to')
    add_common_args(parser)
    return parser.parse_args()


class SaveMetricsHook(Hook):
    """Dump the test metrics to a file after the test epoch."""

    def __init__(self, out: str) -> None:
        self.out = out

    def after_test_epoch(self, runner, metrics=None) -> None:
        if metrics is not None:
            mmengine.dump(metrics, self.out)
            print_colored_log(f'Metrics saved to {self.out}')


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f"checkpoint '{args.checkpoint}' not found")
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    with readable_errors():
        runner = build_runner(cfg)
        print_colored_log(f'Working directory: {cfg.work_dir}')
        print_colored_log(f'Log directory: {runner._log_dir}')
        if args.out:
            runner.register_hook(SaveMetricsHook(args.out), 'LOWEST')
        runner.test()


if __name__ == '__main__':
    main()
