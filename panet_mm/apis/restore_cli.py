"""Restore your own images (one file or a folder) with a trained panet_mm model: ``tools/restore.py``.

    python tools/restore.py --config CONFIG --checkpoint CKPT INPUT OUTPUT [--device cpu|cuda]
        [--recursive] [--suffix _x2] [--ext png] [--overwrite]
        [--chop [--chop-min-size 6400 --chop-shave 10] | --tile SIZE [--tile-overlap N]] [--self-ensemble]
        [--precision fp32|bf16|fp16] [--max-pixels N] [--keep-denormals] [--no-exif]

INPUT is an image or a folder of images; a folder OUTPUT receives the results under the inputs'
relative names, a file INPUT may name its OUTPUT file. Inputs are never overwritten, nothing is written
outside OUTPUT, results are written atomically, existing ones kept unless ``--overwrite``; unreadable
images are reported and skipped. The README ("Restoring your own photos") has the details.

Exit status: 0 every image restored (or kept), 1 some images failed (listed), 2 refused before
anything was written (bad arguments, unsafe paths, checkpoint not matching the model or not safe),
130 interrupted (Ctrl-C: one line says what was done; finished results are kept, and the same command
keeps them and restores the rest).

Only the standard library is imported at module level: ``tools/restore.py --help`` loads this file on
its own, without importing torch or mmagic.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any, Dict, List, Optional

#: The command-line names of the library's parameters, for its refusals.
CLI_FLAGS = {'input_path': 'INPUT', 'output_path': 'OUTPUT', 'recursive': '--recursive', 'suffix': '--suffix',
             'ext': '--ext', 'device': '--device', 'config': '--config', 'max_pixels': '--max-pixels',
             'self_ensemble': '--self-ensemble'}
#: The options that notes and refusals suggest, as flags.
CLI_HINTS = {'max_pixels': '--max-pixels N', 'tile': '--tile 256 --tile-overlap 16', 'device': '--device cuda',
             'ext': '--ext png', 'bf16': '--precision bf16', 'fp32': '--precision fp32'}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``tools/restore.py``."""
    parser = argparse.ArgumentParser(
        description='Restore your own images with a trained panet_mm model (whole image in one pass by default).',
        epilog='exit status: 0 all restored (or kept), 1 some images failed (each reported), 2 refused before '
        'writing anything (arguments, unsafe paths, checkpoint unsafe or not matching the config), 130 interrupted '
        '(finished results are kept; the same command again restores the rest)')
    parser.add_argument('input', help='image file or folder of images (never modified)')
    parser.add_argument('output', help='output folder (or output file for a single input image)')
    parser.add_argument('--config', required=True,
                        help='model config: a file (configs/panet_sr_x2_div2k.py in a checkout) or, from anywhere, '
                        'a shipped one by name (panet_mm::panet/panet_sr_x2_div2k.py or panet_sr_x2_div2k)')
    parser.add_argument('--checkpoint', required=True, help='checkpoint trained with that config (.pth)')
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available, else cpu)')
    parser.add_argument('--recursive', action='store_true', help='also restore images in sub-folders of INPUT')
    parser.add_argument('--suffix', default='', help="added to each output file name's stem, e.g. _x2 (default: none)")
    parser.add_argument('--ext', default=None, help='output format, e.g. png (default: the input extension)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs (inputs never)')
    parser.add_argument('--chop', action='store_true', help='the released recursive overlapping chop')
    parser.add_argument('--chop-min-size', type=int, default=None,
                        help='chop: pieces with fewer pixels are run whole (default 6400)')
    parser.add_argument('--chop-shave', type=int, default=None, help='chop: overlap in input pixels (default 10)')
    parser.add_argument('--tile', type=int, default=None, metavar='SIZE', help='fixed tiles of SIZE input pixels')
    parser.add_argument('--tile-overlap', type=int, default=None, help='tile: overlap in input pixels (default 0)')
    parser.add_argument('--self-ensemble', action='store_true',
                        help='average the x8 flips / transposes (refused for demosaicing models)')
    parser.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'], default=None,
                        help="autocast dtype of the network: bf16 for CPUs with bfloat16 units and GPUs, fp16 for "
                        "GPUs (both emulated and slow on CPUs without bfloat16 units; a note says so) "
                        "(default: the config's test_cfg precision, fp32)")
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--keep-denormals', action='store_true',
                        help='do not flush denormal floats to zero on CPU (the default flushes them: '
                        "PA-EDSR's softmax runs 3-6x faster, outputs equal; README 'Denormal floats')")
    parser.add_argument('--no-exif', action='store_true',
                        help="write results without the input's EXIF data (camera, dates, GPS position); by default "
                        'PNG, JPEG and WebP results keep it, marked upright and with their own size')
    parser.add_argument('--max-pixels', type=int, default=None,
                        help='refuse images declaring more pixels, from their header (default: what the memory '
                        'affords; see panet_mm.datasets.image_io.default_max_pixels)')
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments, with the combinations argparse cannot check refused (exit status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, value, low in (('--chop-shave', args.chop_shave, 0), ('--chop-min-size', args.chop_min_size, 1),
                             ('--tile', args.tile, 1), ('--tile-overlap', args.tile_overlap, 0),
                             ('--max-pixels', args.max_pixels, 1)):
        if value is not None and value < low:
            parser.error(f'{name} {value}: give {"a non-negative" if low == 0 else "a positive"} number of pixels')
    if not args.chop and (args.chop_min_size is not None or args.chop_shave is not None):
        parser.error('--chop-min-size / --chop-shave need --chop')
    if args.tile is None and args.tile_overlap is not None:
        parser.error('--tile-overlap needs --tile SIZE')
    if args.chop and args.tile is not None:
        parser.error('--chop and --tile are alternatives; pass one of them')
    if args.tile is not None and args.tile_overlap is not None and args.tile_overlap >= args.tile:
        parser.error(f'--tile-overlap {args.tile_overlap} must be smaller than --tile {args.tile}')
    return args


def inferencer_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The inferencer's test-time keyword arguments from the flags."""
    chop = tile = None
    if args.chop:
        chop = {k: v for k, v in dict(min_size=args.chop_min_size, shave=args.chop_shave).items() if v is not None}
    if args.tile is not None:
        tile = dict(size=args.tile, overlap=args.tile_overlap or 0)
    return dict(chop=chop, tile=tile, self_ensemble=args.self_ensemble, precision=args.precision)


def _report(summary: Any, total: int, output: str) -> int:
    line = f'restored {len(summary.restored)} of {total} image(s)' + (f' into {output}' if summary.restored else '')
    if summary.kept:
        line += f'; kept {len(summary.kept)} existing output(s) (pass --overwrite to replace them)'
    if summary.failed:
        line += f'; {len(summary.failed)} failed: ' + ', '.join(src for src, _ in summary.failed)
    print(line, file=sys.stderr if summary.failed else sys.stdout)
    if summary.stopped:
        print(f'error: {summary.stopped}', file=sys.stderr)
    return 1 if summary.failed else 0


def _report_interrupt(summary: Any, total: Optional[int], args: argparse.Namespace, terminated: bool = False) -> int:
    """One line on stderr for Ctrl-C (or SIGTERM) instead of a traceback; exit status 130 (143)."""
    status, by = (143, ' (SIGTERM)') if terminated else (130, '')
    if summary is None or total is None:
        print(f'interrupted{by} before any image was restored', file=sys.stderr)
        return status
    line = f'interrupted{by}: restored {len(summary.restored)} of {total} image(s)'
    if summary.kept:
        line += f', kept {len(summary.kept)} existing'
    if summary.failed:
        line += f', {len(summary.failed)} failed: ' + ', '.join(src for src, _ in summary.failed)
    if args.overwrite:  # (the same command computes every image again)
        rerun = ('run the same command again to start over, or without --overwrite to restore only the images that '
                 'have no output yet')
    else:  # (existing outputs are kept, not computed again)
        rerun = 'run the same command again to do the rest'
    # (written atomically: the image in progress left no partial file)
    line += f'; finished results are kept in {args.output}, {rerun}' if summary.restored else f'; {rerun}'
    print(line, file=sys.stderr)
    return status


def main(argv: Optional[List[str]] = None) -> int:
    """Restore the images; return the exit status (0 all restored, 1 some failed, 2 refused, 130 interrupted)."""
    args = parse_args(argv)
    state: Dict[str, Any] = {}  # the summary and the number of images, once restoring started
    try:
        with warnings.catch_warnings(record=True) as early:  # the stack's import-time warnings, filtered below
            warnings.simplefilter('always')
            from panet_mm.engine.quiet import quiet_third_party_warnings
            from panet_mm.utils.denormals import flushed_denormals
            from panet_mm.utils.interrupt import terminate_as_interrupt
        quiet_third_party_warnings(early)
        # before anything starts torch's CPU threads: they copy the mode once (panet_mm/utils/denormals.py)
        with terminate_as_interrupt(), flushed_denormals(not args.keep_denormals):  # SIGTERM: the same clean-up
            return _restore(args, state)
    except KeyboardInterrupt as err:
        if os.environ.get('PANET_MM_DEBUG'):  # the traceback, as panet_mm.engine.cli.readable_errors shows it
            raise
        # SIGTERM is caught once panet_mm.utils.interrupt is imported; before (during the imports), only Ctrl-C
        interrupt = sys.modules.get('panet_mm.utils.interrupt')
        signal_name = interrupt.interrupting_signal(err) if interrupt is not None else 'Ctrl-C'
        return _report_interrupt(state.get('summary'), state.get('total'), args, terminated=signal_name == 'SIGTERM')


def _restore(args: argparse.Namespace, state: Optional[Dict[str, Any]] = None) -> int:
    from panet_mm.apis import (
        PANetInferencer,
        RestoreSummary,
        check_output_room,
        config_scale,
        plan_jobs,
        resolve_config,
        restore_files,
    )
    from panet_mm.utils.errors import cli_message
    try:
        jobs = plan_jobs(args.input, args.output, recursive=args.recursive, suffix=args.suffix, ext=args.ext)
        config = resolve_config(args.config)
        check_output_room(jobs, config_scale(config), overwrite=args.overwrite)  # before loading the model
        inferencer = PANetInferencer(config, args.checkpoint, device=args.device, **inferencer_options(args))
    except ValueError as err:  # panet_mm's refusals, and test_cfg options PANetEditModel refuses
        print(f'error: {cli_message(err, CLI_FLAGS)}', file=sys.stderr)
        return 2
    inferencer.max_pixels, inferencer.hints, inferencer.keep_exif = args.max_pixels, CLI_HINTS, not args.no_exif
    state = {} if state is None else state
    state.update(summary=RestoreSummary(), total=len(jobs))  # what main reports when interrupted
    summary = restore_files(inferencer, jobs, overwrite=args.overwrite, progress=False if args.no_progress else None,
                            summary=state['summary'])
    return _report(summary, len(jobs), args.output)


if __name__ == '__main__':
    sys.exit(main())
