"""Test (and evaluate) a checkpoint on the config's test sets, with mmagic's tools/test.py arguments.

    python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [--work-dir DIR] [--cfg-options k=v ...]

Distributed: tools/dist_test.sh CONFIG CHECKPOINT GPUS.
"""
import argparse
import os.path as osp
import sys
import warnings

#: Formats mmengine.dump writes, by extension.
OUT_FORMATS = ('.json', '.yaml', '.yml', '.pkl', '.pickle')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a panet_mm / mmagic model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='file (.json/.yaml/.pkl) to save the metrics to')
    parser.add_argument('--per-image', metavar='FILE.csv',
                        help="every test image's scores, one row per set and image (PerImageMetricsHook)")
    parser.add_argument('--work-dir', help='the directory to save logs and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', metavar='KEY=VALUE',
        help='override config settings, e.g. test_dataloader.dataset.data_root=data/demo/Set5 (where the config '
        'has a list of test loaders: test_dataloader.0.dataset.data_root=...; list values: key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if args.out and osp.splitext(args.out)[1].lower() not in OUT_FORMATS:
        parser.error(f"--out '{args.out}': the metrics are saved as {', '.join(OUT_FORMATS)}; name the file "
                     'with one of these extensions')
    if args.per_image and osp.splitext(args.per_image)[1].lower() != '.csv':
        parser.error(f"--per-image '{args.per_image}': the per-image scores are saved as .csv; name the file so")
    return args


def check_writable(out: str, flag: str = '--out') -> None:
    """Refuse (exit 2) an ``--out`` / ``--per-image`` file whose folder cannot be written, before the evaluation."""
    from panet_mm.utils.fileio import unwritable_file
    why = unwritable_file(out)
    if why:
        print(f"error: {flag} '{out}' cannot be written ({why}); pass a file in a writable folder", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    args = parse_args()
    for out, flag in ((args.out, '--out'), (args.per_image, '--per-image')):
        if out:
            check_writable(out, flag)  # before the evaluation, not after it
    from panet_mm.utils.checkpoint import checkpoint_problem
    problem = checkpoint_problem(args.checkpoint)  # before the model and a log folder are made
    if problem:
        raise SystemExit(f'error: {problem}')
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        from mmagic.utils import print_colored_log

        from panet_mm.engine.cli import build_runner, drop_unused_log_dir, load_config, readable_errors
        from panet_mm.engine.distributed import finish_distributed
        from panet_mm.engine.hooks import PerImageMetricsHook, SaveMetricsHook
        from panet_mm.engine.quiet import quiet_third_party_warnings
        from panet_mm.engine.work_dir import removed_if_left_empty
    quiet_third_party_warnings(early)
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    # the weights only: a config copy written by a --resume run says resume = True, and mmengine's runner would then
    # resume (optimizer, iteration) from the checkpoint and answer a mismatch as a failed --resume
    cfg.resume = False
    with readable_errors(interrupted='the test stopped before its metrics; run it again'), \
            removed_if_left_empty(cfg.work_dir):  # (a stop before any log: no empty work directory left)
        runner = build_runner(cfg)
        print_colored_log(f'Working directory: {cfg.work_dir}')
        print_colored_log(f'Log directory: {runner.log_dir}')
        if args.out:
            runner.register_hook(SaveMetricsHook(args.out))
        if args.per_image:
            runner.register_hook(PerImageMetricsHook(args.per_image))
        try:
            runner.test()
        except BaseException:
            drop_unused_log_dir(runner)
            raise
        finish_distributed()


if __name__ == '__main__':
    main()
