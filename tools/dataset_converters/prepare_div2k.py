"""Prepare DIV2K (and optionally Set5) in the layout the SR configs read.

    python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K [--scales 2 3 4] [--crop-size 480 --step 240]
        [--set5 path/to/Set5_HR_images] [--valid path/to/DIV2K_valid_HR [--valid-crop 288]] [--no-div2k]
        [--workers 2] [--skip-bad] [--max-pixels N]

From ``{div2k}/DIV2K_train_HR/0001.png ... 0800.png`` it writes

* ``{div2k}/DIV2K_train_HR_sub/0001_s001.png ...``: overlapping HR sub-images (mmagic's convention:
  480x480, step 240, border remainders above 48 pixels kept);
* ``{div2k}/DIV2K_train_LR_bicubic/X{s}_sub/0001_s001.png ...``: the matching LR sub-images, cut from
  the official ``DIV2K_train_LR_bicubic/X{s}/0001x{s}.png`` when that folder exists, else made with
  MATLAB-compatible bicubic down-sampling of the HR image (what the official LR images are);
* ``{div2k}/meta_info_DIV2K800sub_GT.txt``.

With ``--set5 DIR`` it also writes ``data/Set5/GTmod12`` (HR mod-cropped to a multiple of 12) and
``data/Set5/LRbicx{s}`` (bicubic LR) from the HR images in DIR (``--set5-out`` to change the target).
With ``--valid DIR`` (the official ``DIV2K_valid_HR`` folder, ``0801.png ... 0900.png``) it writes the
validation set of the paper configs, images ``--valid-range`` (default 801-810, the released code's
``--data_range 1-800/801-810``), under ``--valid-out`` (default ``{div2k}/valid``): ``GTmod12/0801.png ...``
(HR mod-cropped to a multiple of 12, as the SR test sets; DIV2K's sizes already are) and ``LRbicx{s}/0801.png``
(the same MATLAB-like bicubic as the train LR). ``--valid-crop N`` (default 288, a multiple of 12) keeps the
centre N x N of each image, its corner on a multiple of 12 so that every LR image is exactly the bicubic of its
GT; ``--valid-crop 0`` keeps whole images (the released validation; see the configs for the cost). The folder
holds a ``.incomplete`` mark while it is being written, which the configs' dataset refuses.
Every file is written atomically; existing outputs are left alone unless ``--overwrite``. Every source
image is checked first (its declared size against ``--max-pixels`` from the header, then every pixel
decoded once): a damaged image stops the run with one line naming it, before anything derived from it is
written and before the meta-info file (``--skip-bad``: it is skipped, listed, and left out of the
meta-info). A ``--set5`` folder that is one of the folders written under ``--set5-out`` is refused.
"""
from __future__ import annotations

import argparse
import math
import os
import os.path as osp
import sys
import warnings
from functools import partial
from typing import List, Optional, Sequence, Tuple

#: The validation GT is mod-cropped to this (as the SR test sets' GTmod12), and a centre crop starts on it.
VALID_MOD = 12
#: How this tool is named in a set's ``.incomplete`` file (panet_mm.datasets.testsets.mark_incomplete).
TOOL = 'tools/dataset_converters/prepare_div2k.py'
IMG_EXT = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
#: This tool's flag for each library parameter its error messages name.
LIBRARY_FLAGS = {'max_pixels': '--max-pixels'}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Prepare DIV2K sub-images (and Set5) for the SR configs')
    parser.add_argument('--div2k', default='data/DIV2K', help='DIV2K folder holding DIV2K_train_HR/')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], help='SR scales to prepare')
    parser.add_argument('--crop-size', type=int, default=480, help='HR sub-image size (multiple of every scale)')
    parser.add_argument('--step', type=int, default=240, help='distance between two HR sub-images')
    parser.add_argument('--thresh-size', type=int, default=48, help='keep a border remainder above this size')
    parser.add_argument('--set5', help='folder of Set5 HR images to arrange as GTmod12 / LRbicx*')
    parser.add_argument('--set5-out', default='data/Set5', help='where the Set5 layout is written')
    parser.add_argument('--valid', help='the DIV2K_valid_HR folder: write the validation set (GTmod12 / LRbicx*)')
    parser.add_argument('--valid-out', help='where the validation set is written (default: {div2k}/valid)')
    parser.add_argument('--valid-range', default='801-810', help='DIV2K image numbers of the validation set')
    parser.add_argument('--valid-crop', type=int, default=288,
                        help='centre crop of each validation image (a multiple of 12); 0: whole images')
    parser.add_argument('--no-div2k', action='store_true', help='skip the training sub-images (with --set5 / --valid)')
    parser.add_argument('--workers', type=int, default=2, help='worker processes')
    parser.add_argument('--overwrite', action='store_true', help='rewrite files that already exist')
    parser.add_argument('--skip-bad', action='store_true',
                        help='skip damaged source images (listed at the end) instead of stopping')
    parser.add_argument('--max-pixels', type=int, default=None,
                        help='refuse images declaring more pixels (default: what the memory affords)')
    args = parser.parse_args(argv)
    if args.max_pixels is not None and args.max_pixels < 1:
        parser.error(f'--max-pixels {args.max_pixels}: give a positive number of pixels')
    if args.valid_crop < 0 or args.valid_crop % VALID_MOD:
        parser.error(f'--valid-crop {args.valid_crop}: give a multiple of {VALID_MOD} (0: whole images)')
    try:
        first, last = (int(v) for v in args.valid_range.split('-'))
    except ValueError:
        first = last = 0
    if not 1 <= first <= last:
        parser.error(f'--valid-range {args.valid_range!r}: give FIRST-LAST image numbers, e.g. 801-810')
    args.valid_numbers = list(range(first, last + 1))
    if args.valid_out is None:
        args.valid_out = osp.join(args.div2k, 'valid')
    bad = [s for s in args.scales if s < 1 or args.crop_size % s or args.step % s]
    if bad:
        parser.error(f'--crop-size {args.crop_size} and --step {args.step} must be multiples of every scale; '
                     f'scale(s) {bad} do not divide them')
    return args


def list_images(folder: str) -> List[str]:
    """Sorted image file names in ``folder``."""
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMG_EXT))


def process_div2k_image(name: str, args: argparse.Namespace) -> List[Tuple[str, Tuple[int, int, int]]]:
    """Write the HR and LR sub-images of one DIV2K image; return the meta-info entries."""
    from panet_mm.datasets.image_io import ImageFileError
    from panet_mm.datasets.prepare import (
        bicubic_downscale,
        crop_sub_images,
        imread_color,
        imwrite_atomic,
        mod_crop,
        sub_image_starts,
    )
    stem = osp.splitext(name)[0]
    # mod-crop by every scale at once so that each sub-image starts on a whole LR pixel
    hr_path = osp.join(args.div2k, 'DIV2K_train_HR', name)
    full = imread_color(hr_path, args.max_pixels)
    hr = mod_crop(full, math.lcm(*args.scales))
    if min(hr.shape[:2]) < args.crop_size:  # (an image-level refusal, so that --skip-bad leaves it out)
        raise ImageFileError(f"'{hr_path}' is {hr.shape[1]}x{hr.shape[0]} pixels (width x height after the mod-crop), "
                             f'smaller than the {args.crop_size}x{args.crop_size} sub-images (--crop-size)')
    # every input is read (and verified) and checked before anything is written: a bad one leaves no output
    lrs = {}
    for s in args.scales:
        official = osp.join(args.div2k, 'DIV2K_train_LR_bicubic', f'X{s}', f'{stem}x{s}.png')
        lr = imread_color(official, args.max_pixels) if osp.isfile(official) else None
        # the official LR is the whole HR image down-sampled: H/s rounded either way (an X2 file in X3/ is larger)
        fits = lr is None or all(n // s <= m <= -(-n // s) for n, m in zip(full.shape[:2], lr.shape[:2]))
        if not fits:
            want = f'{full.shape[1] // s}x{full.shape[0] // s}'
            up = f'{-(-full.shape[1] // s)}x{-(-full.shape[0] // s)}'
            want += f' (or {up}, rounded up)' if up != want else ''
            raise ImageFileError(f"LR image '{official}' ({lr.shape[1]}x{lr.shape[0]}) is not the HR image '{name}' "
                                 f'({full.shape[1]}x{full.shape[0]}) down-sampled by {s}, which would be {want}; '
                                 f'remove it to regenerate it (or put the right X{s} file there)')
        lrs[s] = (official, lr)
    entries = []
    for sub_name, sub in crop_sub_images(hr, stem, args.crop_size, args.step, args.thresh_size):
        path = osp.join(args.div2k, 'DIV2K_train_HR_sub', sub_name)
        if args.overwrite or not osp.exists(path):
            imwrite_atomic(sub, path)
        entries.append((sub_name, sub.shape))
    for s in args.scales:
        official, lr = lrs[s]
        if lr is None:
            lr = bicubic_downscale(hr, s)
        # the LR sub-images sit at the HR positions divided by the scale, so names and content match
        index = 0
        ys = sub_image_starts(hr.shape[0], args.crop_size, args.step, args.thresh_size)
        xs = sub_image_starts(hr.shape[1], args.crop_size, args.step, args.thresh_size)
        c = args.crop_size // s
        for y in ys:
            for x in xs:
                index += 1
                path = osp.join(args.div2k, 'DIV2K_train_LR_bicubic', f'X{s}_sub', f'{stem}_s{index:03d}.png')
                if args.overwrite or not osp.exists(path):
                    imwrite_atomic(lr[y // s:y // s + c, x // s:x // s + c], path)
    return entries


def refuse_other_crop_size(sub_dir: str, crop_size: int) -> None:
    """Stop (exit 2) where ``sub_dir`` holds sub-images of another size than ``--crop-size``.

    Why: existing outputs are kept without ``--overwrite``, so a rerun with another ``--crop-size`` kept the old
    sub-images under the names it would write, wrote the new ones beside them and listed all as the new size in
    the meta-info file: a silently mixed training set. Only the headers are read.
    """
    from panet_mm.datasets.image_io import check_image_file
    if not osp.isdir(sub_dir):
        return
    for name in sorted(n for n in os.listdir(sub_dir) if n.endswith('.png')):
        try:
            header = check_image_file(osp.join(sub_dir, name))
        except Exception:  # noqa: BLE001 (a damaged old file: check_dataset.py and training report it)
            continue
        if (header.height, header.width) != (crop_size, crop_size):
            print(f"error: '{sub_dir}' holds sub-images of {header.width}x{header.height} pixels ('{name}'), from a "
                  f'run with another --crop-size; this run writes {crop_size}x{crop_size} under the same names and '
                  'would keep the old ones. Pass --overwrite to prepare them all again, or the --crop-size they were '
                  'made with', file=sys.stderr)
            raise SystemExit(2)


def prepare_div2k(args: argparse.Namespace) -> int:
    """Prepare the DIV2K sub-images; return the number of HR sub-images."""
    from panet_mm.datasets.prepare import ImagePool, write_meta_info
    hr_dir = osp.join(args.div2k, 'DIV2K_train_HR')
    if not osp.isdir(hr_dir):
        raise SystemExit(f"folder '{hr_dir}' not found: download DIV2K_train_HR.zip from the DIV2K site and "
                         f'unzip it into {args.div2k}/')
    names = list_images(hr_dir)
    if not names:
        raise SystemExit(f"no images in '{hr_dir}'")
    if not args.overwrite:
        refuse_other_crop_size(osp.join(args.div2k, 'DIV2K_train_HR_sub'), args.crop_size)
    with ImagePool(args.workers, flags=LIBRARY_FLAGS) as pool:
        results, bad = pool.run(partial(process_div2k_image, args=args), names, args.skip_bad, desc='DIV2K')
    if bad and not args.skip_bad:
        raise SystemExit(f'error: DIV2K: {bad[0]}; stopped before writing anything made from it and before the '
                         'meta-info file. Replace or remove it, or pass --skip-bad to leave it out')
    args.skipped += bad
    entries = [e for result in results for e in result]
    write_meta_info(osp.join(args.div2k, 'meta_info_DIV2K800sub_GT.txt'), entries)
    return len(entries)


def prepare_set5(args: argparse.Namespace) -> int:
    """Arrange Set5 HR images as GTmod12 and LRbicx{s}; return the number of images arranged."""
    from tqdm import tqdm

    from panet_mm.datasets.image_io import ImageFileError
    from panet_mm.datasets.prepare import bicubic_downscale, imread_color, imwrite_atomic, mod_crop
    from panet_mm.utils.errors import cli_message
    names = list_images(args.set5) if osp.isdir(args.set5) else []
    if not names:
        raise SystemExit(f"no Set5 images found in '{args.set5}'; point --set5 at the folder of the 5 HR images")
    done = 0
    for name in tqdm(names, desc='Set5', unit='img'):
        try:
            gt = mod_crop(imread_color(osp.join(args.set5, name), args.max_pixels), 12)
        except ImageFileError as err:
            if not args.skip_bad:
                raise SystemExit(f'error: Set5: {cli_message(err, LIBRARY_FLAGS)}; stopped. Replace or remove it, '
                                 'or pass --skip-bad') from None
            args.skipped.append(cli_message(err, LIBRARY_FLAGS))
            continue
        done += 1
        stem = osp.splitext(name)[0]
        imwrite_atomic(gt, osp.join(args.set5_out, 'GTmod12', f'{stem}.png'))
        for s in args.scales:
            imwrite_atomic(bicubic_downscale(gt, s), osp.join(args.set5_out, f'LRbicx{s}', f'{stem}.png'))
    return done


def process_valid_image(name: str, args: argparse.Namespace) -> int:
    """Write GTmod12 and LRbicx{s} of one DIV2K validation image (read and checked first); return files written."""
    from panet_mm.datasets.image_io import ImageFileError
    from panet_mm.datasets.prepare import bicubic_downscale, imread_color, imwrite_atomic, mod_crop
    src = osp.join(args.valid, name)
    gt = mod_crop(imread_color(src, args.max_pixels), VALID_MOD)
    c = args.valid_crop
    if c:
        h, w = gt.shape[:2]
        if min(h, w) < c:
            raise ImageFileError(f"'{src}' is {w}x{h} pixels, smaller than the {c}x{c} centre crop (--valid-crop)")
        # the centre, its corner rounded down to a multiple of 12: every scale's LR starts on a whole pixel
        y, x = (h - c) // 2 // VALID_MOD * VALID_MOD, (w - c) // 2 // VALID_MOD * VALID_MOD
        gt = gt[y:y + c, x:x + c]
    outputs = [(gt, osp.join(args.valid_out, f'GTmod{VALID_MOD}', f'{osp.splitext(name)[0]}.png'))]
    outputs += [(bicubic_downscale(gt, s), osp.join(args.valid_out, f'LRbicx{s}', f'{osp.splitext(name)[0]}.png'))
                for s in args.scales]
    written = 0
    for img, path in outputs:  # everything computed before the first file is written
        if args.overwrite or not osp.exists(path):
            imwrite_atomic(img, path)
            written += 1
    return written


def prepare_valid(args: argparse.Namespace) -> int:
    """Write the DIV2K validation set (``--valid-range`` of ``--valid``); return the number of images."""
    from panet_mm.datasets.prepare import ImagePool
    from panet_mm.datasets.testsets import mark_incomplete
    if not osp.isdir(args.valid):
        raise SystemExit(f"--valid folder '{args.valid}' not found: download DIV2K_valid_HR.zip from the DIV2K site, "
                         'unzip it and pass its DIV2K_valid_HR folder')
    by_number = {}
    for name in list_images(args.valid):
        stem = osp.splitext(name)[0]
        if stem.isdigit():
            by_number.setdefault(int(stem), name)
    missing = [n for n in args.valid_numbers if n not in by_number]
    if missing:
        raise SystemExit(f"--valid '{args.valid}' has no image {missing[0]:04d}"
                         f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} of --valid-range "
                         f'{args.valid_range}: pass the DIV2K_valid_HR folder (0801.png ... 0900.png)')
    names = [by_number[n] for n in args.valid_numbers]
    os.makedirs(args.valid_out, exist_ok=True)
    mark_incomplete(args.valid_out, 'being prepared (or its preparation was interrupted)', TOOL)
    with ImagePool(args.workers, flags=LIBRARY_FLAGS) as pool:
        results, bad = pool.run(partial(process_valid_image, args=args), names, args.skip_bad, desc='DIV2K valid')
    if bad and not args.skip_bad:
        mark_incomplete(args.valid_out, f'stopped at a damaged image: {bad[0]}', TOOL)
        raise SystemExit(f'error: DIV2K valid: {bad[0]}; stopped before writing anything made from it. Replace or '
                         'remove it, or pass --skip-bad to leave it out')
    args.skipped += bad
    mark_incomplete(args.valid_out, None)
    return len(results)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    args.skipped = []
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        from panet_mm.engine.quiet import quiet_third_party_warnings
        from panet_mm.utils.interrupt import RERUN_DOES_THE_REST, one_line_interrupts
    quiet_third_party_warnings(early)
    with one_line_interrupts(RERUN_DOES_THE_REST):
        _prepare(args)


def _prepare(args: argparse.Namespace) -> None:
    if args.set5:
        from panet_mm.datasets.prepare import same_folder
        outs = [osp.join(args.set5_out, d) for d in ['GTmod12'] + [f'LRbicx{s}' for s in args.scales]]
        clash = next((o for o in outs if same_folder(args.set5, o)), None)
        if clash:
            print(f"error: --set5 '{args.set5}' is the folder this tool writes {osp.basename(clash)} images to (under "
                  f"--set5-out '{args.set5_out}'): its images would be replaced by their outputs. Copy the originals "
                  'to another folder and pass that one', file=sys.stderr)
            raise SystemExit(2)
    if args.valid:
        from panet_mm.datasets.prepare import same_folder
        outs = [osp.join(args.valid_out, d) for d in [f'GTmod{VALID_MOD}'] + [f'LRbicx{s}' for s in args.scales]]
        clash = next((o for o in [args.valid_out] + outs if same_folder(args.valid, o)), None)
        if clash:
            print(f"error: --valid '{args.valid}' is a folder this tool writes to (under --valid-out "
                  f"'{args.valid_out}'): its images would be mixed with their outputs. Pass the unzipped "
                  'DIV2K_valid_HR folder', file=sys.stderr)
            raise SystemExit(2)
    if not args.no_div2k:
        n = prepare_div2k(args)
        print(f'DIV2K: {n} HR sub-images and their LR x{args.scales} in {args.div2k}')
    if args.set5:
        print(f'Set5: {prepare_set5(args)} images in {args.set5_out}')
    if args.valid:
        crop = f'centre {args.valid_crop}x{args.valid_crop} crops' if args.valid_crop else 'whole images'
        print(f'DIV2K valid: {prepare_valid(args)} images ({crop}) in {args.valid_out} (GTmod{VALID_MOD}, '
              f'LRbicx{args.scales})')
    if args.skipped:
        print(f'skipped {len(args.skipped)} damaged image(s) (--skip-bad):', file=sys.stderr)
        for message in args.skipped:
            print(f'  {message}', file=sys.stderr)


if __name__ == '__main__':
    main()
