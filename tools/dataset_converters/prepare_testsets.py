"""Arrange downloaded benchmark test sets in the layout the configs read, with their degraded inputs.

    python tools/dataset_converters/prepare_testsets.py [--out data] [--kodak24 DIR] [--cbsd68 DIR] [--mcmaster DIR]
        [--urban100 DIR] [--live1 DIR] [--classic5 DIR] [--set5 DIR] [--set14 DIR] [--b100 DIR]
        [--manga109 DIR] [--sigmas 10 30 50 70] [--qualities 10 20 30 40] [--patterns GRBG]
        [--scales 2 3 4] [--sr-crop {12,scale,both}] [--workers 2] [--overwrite] [--skip-bad] [--max-pixels N]

Each option names the folder holding one set's clean (HR / ground-truth) images, in any format
OpenCV reads (PNG, BMP, TIFF, JPEG, ...). The degraded inputs are written once, like the paper's
pre-generated test data, and are the same bytes in every run:

* colour denoising / demosaicing sets (Kodak24, CBSD68, McMaster, Urban100)::

      {out}/{Set}/GT/NAME.png                the clean image (3-channel PNG, full size)
      {out}/{Set}/noisy_sigma{s}/NAME.png    + AWGN of std s (0-255 scale), rounded and clipped to 8 bits;
                                             the noise is seeded per image (base seed 0 and the NAME,
                                             see panet_mm.datasets.transforms.SeededGaussianNoise)
      {out}/{Set}/mosaic_{pattern}/NAME.png  zero-filled 3-channel Bayer mosaic (BayerMosaic), GRBG by default

* JPEG artifact reduction sets (LIVE1, Classic5)::

      {out}/{Set}/GT_gray/NAME.png           1-channel: grey images as they are, colour images as their
                                             MATLAB BT.601 Y channel (rgb2ycbcr, 16-235; GrayOrY)
      {out}/{Set}/jpeg_q{q}/NAME.png         GT_gray compressed by OpenCV's JPEG encoder at quality q and
                                             decoded (JPEGCompression), stored losslessly as PNG

* super-resolution sets (Set5, Set14, B100, Urban100, Manga109), as prepare_div2k.py does Set5::

      {out}/{Set}/GTmod12/NAME.png           HR cropped to a multiple of 12 (bottom / right)
      {out}/{Set}/LRbicx{s}/NAME.png         MATLAB-like bicubic down-sampling by s

  and with --sr-crop scale (or both) the layout the released test data had, which the paper's tables
  scored (the SR configs read it with --cfg-options sr_test_crop=scale)::

      {out}/{Set}/GTmod{s}/NAME.png          HR cropped to a multiple of s only
      {out}/{Set}/LRbicx{s}_GTmod{s}/NAME.png  its bicubic down-sampling by s

NAME is the source file name without its extension; in the SR benchmark packages' layout
(``img_001_SRF_2_HR.png`` next to ``img_001_SRF_2_LR.png``) the ``*_LR`` files are skipped and the
``_SRF_<n>_HR`` / ``_HR`` suffix is dropped. Urban100 gets both its colour and its SR layout. Every
file is written atomically (temporary file + rename); existing files are kept unless --overwrite.

Every source image is checked before it is used: an image declaring more than --max-pixels pixels is
refused from its header (a decompression bomb is never decoded), and every pixel is decoded once to find
truncated or corrupt files (OpenCV would fill them in grey). A damaged image stops its set, with one line
naming it, and nothing derived from it is written; with --skip-bad it is skipped and listed at the end.
A source folder that is one of the folders this tool writes is refused: the sources would be replaced.
The same transforms are used on the fly by the configs' ``test_pipeline_on_the_fly``, so prepared
and on-the-fly inputs are identical.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import re
import sys
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

#: How this tool is named in a set's ``.incomplete`` file (panet_mm.datasets.testsets.mark_incomplete).
TOOL = 'tools/dataset_converters/prepare_testsets.py'
IMG_EXT = ('.png', '.bmp', '.tif', '.tiff', '.jpg', '.jpeg', '.ppm', '.pgm', '.webp')


@dataclass(frozen=True)
class TestSet:
    """One benchmark: its folder name under --out, the tasks it serves and its usual image count."""

    name: str
    tasks: Tuple[str, ...]  # 'color' (denoising + demosaicing), 'gray' (JPEG), 'sr'
    count: int
    example: str


TEST_SETS: Dict[str, TestSet] = {
    'kodak24': TestSet('Kodak24', ('color', ), 24, 'kodim01.png ... kodim24.png'),
    'cbsd68': TestSet('CBSD68', ('color', ), 68, 'the 68 colour BSD68 test images'),
    'mcmaster': TestSet('McMaster', ('color', ), 18, '1.tif ... 18.tif'),
    'urban100': TestSet('Urban100', ('color', 'sr'), 100, 'img_001.png ... img_100.png (HR)'),
    'live1': TestSet('LIVE1', ('gray', ), 29, 'the 29 LIVE1 reference images (bikes.bmp, ...)'),
    'classic5': TestSet('Classic5', ('gray', ), 5, 'baboon, barbara, boats, lena, peppers'),
    'set5': TestSet('Set5', ('sr', ), 5, 'baby, bird, butterfly, head, woman (HR)'),
    'set14': TestSet('Set14', ('sr', ), 14, 'the 14 Set14 HR images'),
    'b100': TestSet('B100', ('sr', ), 100, 'the 100 BSD100 HR images'),
    'manga109': TestSet('Manga109', ('sr', ), 109, 'the 109 Manga109 images'),
}
SR_MOD = 12  # panet_mm.datasets.testsets.SR_MOD, here too so that the argument checks import nothing


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in the help, but not "(default: None)" for an unset folder, nor a second default
    after a help text that states its own."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or 'default:' in (action.help or ''):
            return action.help or ''
        return super()._get_help_string(action) or ''


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and check the command line (cheap checks only: nothing is imported or written)."""
    parser = argparse.ArgumentParser(
        description='Arrange benchmark test sets under --out and write their degraded inputs (noise, mosaic, '
        'JPEG, bicubic LR) once, reproducibly.',
        formatter_class=_HelpWithDefaults)
    parser.add_argument('--out', default='data', help='root folder the configs read (data_root)')
    for key, ts in TEST_SETS.items():
        parser.add_argument(f'--{key}', metavar='DIR', help=f'folder of the {ts.name} clean images ({ts.example})')
    parser.add_argument('--sigmas', type=float, nargs='+', default=[10, 30, 50, 70],
                        help='AWGN standard deviations on the 0-255 scale (colour sets)')
    parser.add_argument('--qualities', type=int, nargs='+', default=[10, 20, 30, 40],
                        help='JPEG qualities (LIVE1, Classic5)')
    parser.add_argument('--patterns', nargs='+', default=['GRBG'], help='Bayer patterns (colour sets)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], help='SR down-sampling factors')
    parser.add_argument('--sr-crop', choices=['12', 'scale', 'both'], default='12',
                        help="SR ground truth: '12' GTmod12 for every scale (mmagic's layout), 'scale' GTmod{s} per "
                        "scale (the paper's test data), 'both'")
    parser.add_argument('--workers', type=int, default=2, help='worker processes')
    parser.add_argument('--overwrite', action='store_true', help='rewrite files that already exist')
    parser.add_argument('--skip-bad', action='store_true',
                        help='skip damaged source images (listed at the end) instead of stopping their set')
    parser.add_argument('--max-pixels', type=int, default=None,
                        help='refuse source images declaring more pixels (default: what the memory affords, '
                        'see panet_mm.datasets.image_io.default_max_pixels)')
    args = parser.parse_args(argv)

    args.sets = {key: getattr(args, key) for key in TEST_SETS if getattr(args, key)}
    if not args.sets:
        parser.error('no test set given; pass the folder of at least one set, e.g. --kodak24 PATH/TO/Kodak24')
    bad = [s for s in args.sigmas if not 1 <= s <= 255]
    if bad:
        parser.error(f'--sigmas {bad}: give the noise levels on the 0-255 scale, e.g. --sigmas 10 30 50 70')
    bad = [q for q in args.qualities if not 1 <= q <= 100]
    if bad:
        parser.error(f'--qualities {bad}: JPEG qualities are integers from 1 to 100')
    args.patterns = [p.upper() for p in args.patterns]
    bad = [p for p in args.patterns if p not in ('RGGB', 'BGGR', 'GRBG', 'GBRG')]
    if bad:
        parser.error(f'--patterns {bad}: use some of RGGB, BGGR, GRBG, GBRG')
    args.sr_crops = ['12', 'scale'] if args.sr_crop == 'both' else [args.sr_crop]
    bad = [s for s in args.scales if s < 1 or ('12' in args.sr_crops and SR_MOD % s)]
    if bad:
        parser.error(f'--scales {bad}: each scale must divide {SR_MOD} (the GTmod{SR_MOD} crop), e.g. --scales 2 3 4, '
                     'or pass --sr-crop scale' if all(s >= 1 for s in bad) else
                     f'--scales {bad}: give down-sampling factors of at least 1, e.g. --scales 2 3 4')
    if args.workers < 1:
        parser.error(f'--workers {args.workers}: use at least 1')
    if args.max_pixels is not None and args.max_pixels < 1:
        parser.error(f'--max-pixels {args.max_pixels}: give a positive number of pixels')
    return args


def output_folders(key: str, args: argparse.Namespace) -> List[str]:
    """Every folder the tool writes for the set ``key`` (under ``{out}/{Set}``)."""
    set_dir = osp.join(args.out, TEST_SETS[key].name)
    names = []
    for task in TEST_SETS[key].tasks:
        if task == 'color':
            names += ['GT'] + [f'noisy_sigma{s:g}' for s in args.sigmas]
            names += [f'mosaic_{p.lower()}' for p in args.patterns]
        elif task == 'gray':
            names += ['GT_gray'] + [f'jpeg_q{q}' for q in args.qualities]
        else:
            from panet_mm.datasets.testsets import sr_folders
            names += sorted({d for crop in args.sr_crops for s in args.scales for d in sr_folders(s, crop)})
    return [osp.join(set_dir, n) for n in names]


def source_clash(args: argparse.Namespace) -> Optional[str]:
    """A message if a source folder is a folder this tool writes (its images would be replaced), else None."""
    from panet_mm.datasets.prepare import same_folder
    for key, folder in args.sets.items():
        for other in args.sets:
            for out_folder in output_folders(other, args):
                if same_folder(folder, out_folder):
                    return (f"--{key} '{folder}' is the folder this tool writes {TEST_SETS[other].name}'s "
                            f"{osp.basename(out_folder)} images to (under --out '{args.out}'): its images would be "
                            'replaced by their outputs. Copy the originals to another folder and pass that one')
    return None


def output_name(stem: str) -> Optional[str]:
    """Output name (no extension) of a source image, or None for the LR images of an SR package."""
    if re.search(r'_LR$', stem):
        return None
    return re.sub(r'(_SRF_\d+)?_HR$', '', stem)


def list_sources(key: str, folder: str) -> List[Tuple[str, str]]:
    """``(source path, output name)`` of every image of one set, sorted; exits with one sentence if unusable."""
    option, ts = f'--{key}', TEST_SETS[key]
    if not osp.isdir(folder):
        what = 'is a file, not a folder' if osp.exists(folder) else 'does not exist'
        raise SystemExit(f"error: {option} folder '{folder}' {what}; pass the folder holding the {ts.name} "
                         f'images ({ts.example}).')
    sources: Dict[str, str] = {}
    for f in sorted(os.listdir(folder)):
        path = osp.join(folder, f)
        stem, ext = osp.splitext(f)
        if ext.lower() not in IMG_EXT or not osp.isfile(path):
            continue
        name = output_name(stem)
        if name is None:
            continue
        if name in sources:
            raise SystemExit(f"error: {option} folder '{folder}' holds two images named {name!r} "
                             f"('{osp.basename(sources[name])}' and '{f}'); keep one of them.")
        sources[name] = path
    if not sources:
        subs = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)) and not d.startswith('.'))
        inside = f", only the folder(s) {', '.join(repr(d) for d in subs[:4])}" if subs else ''
        raise SystemExit(f"error: {option} folder '{folder}' holds no images ({', '.join(IMG_EXT)}){inside}; pass the "
                         f'folder holding the {ts.name} images ({ts.example}).')
    return [(path, name) for name, path in sources.items()]


def import_libraries() -> None:
    """Import panet_mm (and so mmagic) once in the parent, with one sentence if that fails."""
    try:
        import panet_mm.datasets.testsets  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != 'panet_mm':
            raise SystemExit(f'error: panet_mm needs {e.name}, which is not installed; set up the environment '
                             'with `bash tools/setup_env.sh`.') from None
        sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # a checkout, not installed
        import panet_mm.datasets.testsets  # noqa: F401


def prepare(args: argparse.Namespace) -> Dict[str, Tuple[int, int]]:
    """Prepare every requested set; return ``{set name: (images, files written)}``.

    A set with a damaged image stops there (one line on stderr naming it) and is left out of the
    result, unless ``args.skip_bad``; the skipped images are in ``args.skipped``.
    """
    jobs = {key: list_sources(key, folder) for key, folder in args.sets.items()}  # check all before writing
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        import_libraries()
        from panet_mm.engine.quiet import quiet_third_party_warnings
    quiet_third_party_warnings(early)
    from panet_mm.datasets.prepare import ImagePool
    from panet_mm.datasets.testsets import PROCESSORS, TestSetOptions, mark_incomplete
    options = TestSetOptions(sigmas=args.sigmas, qualities=args.qualities, patterns=args.patterns,
                             scales=args.scales, sr_crops=args.sr_crops, overwrite=args.overwrite,
                             max_pixels=args.max_pixels)
    clash = source_clash(args)
    if clash:
        print(f'error: {clash}', file=sys.stderr)
        raise SystemExit(2)
    summary: Dict[str, Tuple[int, int]] = {}
    args.skipped = []
    with ImagePool(args.workers, flags={'max_pixels': '--max-pixels'}) as pool:
        for key, sources in jobs.items():
            ts = TEST_SETS[key]
            set_dir = osp.join(args.out, ts.name)
            written, stopped, set_bad = 0, False, set()
            os.makedirs(set_dir, exist_ok=True)
            mark_incomplete(set_dir, 'being prepared (or its preparation was interrupted)', TOOL)
            for task in ts.tasks:
                results, bad = pool.run(partial(PROCESSORS[task], set_dir=set_dir, options=options), sources,
                                        skip_bad=args.skip_bad, desc=f'{ts.name} ({task})')
                written += sum(results)
                set_bad.update(bad)
                args.skipped += [b for b in bad if b not in args.skipped]
                if bad and not args.skip_bad:
                    print(f'error: {ts.name}: {bad[0]}; the set was stopped and nothing was made from that image. '
                          'Replace or remove it, or pass --skip-bad to prepare the set without it', file=sys.stderr)
                    stopped = True
                    mark_incomplete(set_dir, f'stopped at a damaged image: {bad[0]}', TOOL)
                    break
            if not stopped:
                mark_incomplete(set_dir, None)
                summary[ts.name] = (len(sources) - len(set_bad), written)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point (exit status 1 when a set was stopped by a damaged image)."""
    args = parse_args(argv)
    from panet_mm.utils.interrupt import RERUN_DOES_THE_REST, one_line_interrupts
    with one_line_interrupts(RERUN_DOES_THE_REST):
        summary = prepare(args)
    for key in args.sets:
        ts = TEST_SETS[key]
        if ts.name not in summary:
            continue
        n, written = summary[ts.name]
        note = '' if n == ts.count else f' (the benchmark has {ts.count}: check the folder)'
        print(f'{ts.name}: {n} images{note}, {written} files written under {osp.join(args.out, ts.name)}')
    if args.skip_bad and args.skipped:
        print(f'skipped {len(args.skipped)} damaged image(s) (--skip-bad):', file=sys.stderr)
        for message in args.skipped:
            print(f'  {message}', file=sys.stderr)
    if len(summary) < len(args.sets):
        raise SystemExit(1)


if __name__ == '__main__':
    main()
