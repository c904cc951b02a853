"""Test (and evaluate) a checkpoint on the config's test sets, with mmagic's tools/test.py arguments.

    python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [--work-dir DIR] [--cfg-options k=v ...]

Distributed: tools/dist_test.sh CONFIG CHECKPOINT GPUS.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

import mmengine
from mmagic.utils import print_colored_log
from mmengine.hooks import Hook

from panet_mm.engine.cli import add_common_args, build_runner, load_config, readable_errors

#: Formats mmengine.dump writes, by extension.
OUT_FORMATS = ('.json', '.yaml', '.yml', '.pkl', '.pickle')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a panet_mm / mmagic model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='file (.json/.yaml/.pkl) to save the metrics to')
    add_common_args(parser)
    args = parser.parse_args()
    if args.out and osp.splitext(args.out)[1].lower() not in OUT_FORMATS:
        parser.error(f"--out '{args.out}': the metrics are saved as {', '.join(OUT_FORMATS)}; name the file "
                     'with one of these extensions')
    return args


def check_writable(out: str) -> None:
    """Refuse (exit 2) an ``--out`` whose folder cannot be written, before the evaluation runs."""
    folder = osp.dirname(osp.abspath(out))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f'.{osp.basename(out)}.', suffix='.probe', dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        print(f"error: --out '{out}' cannot be written ({err.strerror or err}); pass a file in a writable folder",
              file=sys.stderr)
        raise SystemExit(2) from None


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
    if args.out:
        check_writable(args.out)  # before the evaluation, not after it
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
