"""Make a small, deterministic super-resolution data set for offline demos and smoke tests.

    python tools/dataset_converters/make_demo_data.py [--out data/demo] [--scales 2 3 4] [--overwrite]

The images are real photographs that ship inside the scikit-image package (``skimage/data``);
nothing is downloaded. The output mimics mmagic's DIV2K / Set5 layout, so that the regular
dataset configs work on it with only ``data_root`` changed::

    {out}/DIV2K/DIV2K_train_HR_sub/0001_s001.png ...        HR training sub-images (120x120)
    {out}/DIV2K/DIV2K_train_LR_bicubic/X{s}_sub/*.png        their bicubic LR versions, same names
    {out}/DIV2K/meta_info_DIV2K800sub_GT.txt                 "NAME (H,W,C)" per HR sub-image
    {out}/Set5/GTmod12/*.png                                 5 held-out photos, at most 128 px, mod 12
    {out}/Set5/LRbicx{s}/*.png                               their bicubic LR versions, same names

Training photos are shrunk (cv2.INTER_AREA) to at most 320 px and cut into 120x120 sub-images
with a step of 60 px; each LR sub-image is the MATLAB-like bicubic down-sampling of its HR
sub-image. The five validation photos are never used for training. The same command always
writes the same bytes. A marker file ``{out}/.panet_mm_demo`` records that the folder belongs to
this tool and lists every file the tool wrote there (each is recorded before it is written): reruns
rewrite the folder in place and delete only recorded files that they no longer make (e.g. the LR
images of a scale dropped from ``--scales``), and their own interrupted temporary files. A non-empty
folder without the marker is left alone unless ``--overwrite`` is given; the user's files in it are
never recorded, so no run ever deletes them.
"""
import argparse
import os
import os.path as osp
import sys
import time
import warnings
from typing import Optional, Sequence

#: The demo's scales: each divides the 120 px sub-images and the mod-12 validation crops
#: (``panet_mm.datasets.demo_data.SUPPORTED_SCALES``, checked again there).
SCALES_HELP = '2, 3, 4, 6 or 12'
#: The flags of the parameters that panet_mm.datasets.demo_data names in its errors.
CLI_FLAGS = {'out': '--out', 'overwrite=True': '--overwrite'}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Make a small offline SR data set (DIV2K / Set5 layout) from the photos in scikit-image.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', default='data/demo', help='output folder')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4],
                        help=f'down-sampling factors of the LR images; each one of {SCALES_HELP}')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into --out even if it holds files this tool did not make')
    args = parser.parse_args(argv)
    demo_data = import_demo_data()
    bad = [s for s in args.scales if s not in demo_data.SUPPORTED_SCALES]
    if bad:
        parser.error(f'unsupported scale(s) {bad}: the sizes {demo_data.CROP_SIZE} and mod {demo_data.VAL_MOD} '
                     f'must be multiples of each scale, so use some of {list(demo_data.SUPPORTED_SCALES)}')
    args.scales = sorted(set(args.scales))
    return args


def import_demo_data():
    """``panet_mm.datasets.demo_data``, with one sentence if panet_mm or mmagic cannot be imported."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # torch / transformers deprecation noise at import time
            try:
                from panet_mm.datasets import demo_data
            except ModuleNotFoundError as e:
                if e.name != 'panet_mm':
                    raise
                # a checkout, not installed
                sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
                from panet_mm.datasets import demo_data
    except ImportError as e:
        raise SystemExit(f'error: panet_mm and mmagic are needed (MATLAB-like bicubic resize) but cannot be '
                         f'imported ({e}); set up the environment with `bash tools/setup_env.sh`.') from None
    return demo_data


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    args = parse_args(argv)
    demo_data = import_demo_data()
    from panet_mm.utils.interrupt import RERUN_DOES_THE_REST, one_line_interrupts
    start = time.perf_counter()
    try:
        with one_line_interrupts(RERUN_DOES_THE_REST):
            summary = demo_data.make_demo_data(args.out, args.scales, args.overwrite)
    except demo_data.DemoDataError as err:
        from panet_mm.utils.errors import cli_message
        raise SystemExit(f'error: {cli_message(err, CLI_FLAGS)}') from None
    except OSError as err:
        if os.environ.get('PANET_MM_DEBUG'):
            raise
        where = f" ('{err.filename}')" if err.filename else ''
        raise SystemExit(f'error: cannot write the demo data under --out {args.out}{where}: '
                         f'{err.strerror or err}; choose a writable folder with free space') from None
    print_summary(demo_data, summary, args, time.perf_counter() - start)


def print_summary(d, summary: dict, args: argparse.Namespace, elapsed: float) -> None:
    """What was written where (``d``: the ``panet_mm.datasets.demo_data`` module)."""
    n_train, val = summary['train'], summary['val']
    n_files = (n_train + len(val)) * (1 + len(args.scales))
    print(f'Demo data written to {osp.abspath(args.out)} in {elapsed:.1f} s '
          f'({n_files} images, from scikit-image {summary["skimage_version"]}):')
    print(f'  DIV2K: {n_train} HR sub-images {d.CROP_SIZE}x{d.CROP_SIZE} from {len(d.TRAIN_PHOTOS)} photos in '
          f'{d.HR_SUB_DIR}, listed in {d.META_FILE}')
    for s in args.scales:
        print(f"         {n_train} LR x{s} sub-images {d.CROP_SIZE // s}x{d.CROP_SIZE // s} in "
              f"{d.LR_SUB_DIR.format(s)}")
    sizes = ', '.join(f'{n} {h}x{w}' for n, (h, w) in val.items())
    print(f'  Set5:  {len(val)} held-out GT images in {d.VAL_GT_DIR} ({sizes}); LR in '
          + ', '.join(d.VAL_LR_DIR.format(s) for s in args.scales))
    if summary['removed']:
        print(f'  removed {summary["removed"]} stale file(s) an earlier run recorded in {d.MARKER} (or its temporary '
              'files)')

if __name__ == '__main__':
    main()
