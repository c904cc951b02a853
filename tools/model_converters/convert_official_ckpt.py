"""Convert a released PANet / PA-EDSR checkpoint to a panet_mm (mmengine) checkpoint.

    python tools/model_converters/convert_official_ckpt.py SRC.pt DST.pth [--arch panet|paedsr] [--scale N]
        [--colors 1|3] [--overwrite]

The released file is read with ``torch.load(weights_only=True)`` (no arbitrary unpickling). The
network, scale, colours and the data range it was trained on are read from the file and printed; a
flag the file contradicts is refused. Every key, shape and value is checked (NaN/Inf refused, PA-EDSR's
``msa.*`` copies must equal their ``body.16.*`` twins) and nothing is written unless all pass; a file
already in mmagic's layout (panet_mm's own checkpoints, a plain mmagic generator's) is named as such, as it
needs no conversion. The output loads with ``python tools/test.py CONFIG DST.pth``; the config's generator
uses ``rgb_range=255`` (a model trained on 0-1 data, as every released one, is rescaled exactly). An
existing DST is kept unless ``--overwrite``. Exit status: 0 converted, 1 refused, 2 DST exists.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
import warnings
from typing import List, Optional

#: The flag of each setting the converter's messages name (they name the Python parameters).
FLAGS = {'arch': '--arch', 'scale': '--scale', 'colors': '--colors', 'mid_channels': '--mid-channels',
         'num_blocks': '--num-blocks', 'reduction': '--reduction', 'source_rgb_range': '--source-rgb-range'}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description='Convert a released PANet / PA-EDSR .pt checkpoint to panet_mm')
    parser.add_argument('src', help='released checkpoint (.pt); never modified')
    parser.add_argument('dst', help='output mmengine checkpoint (.pth); written atomically, must differ from src')
    parser.add_argument('--overwrite', action='store_true', help='replace dst if it exists (default: refuse)')
    parser.add_argument('--arch', default=None, choices=['panet', 'paedsr'],
                        help='panet: denoising / demosaicing / JPEG models; paedsr: super-resolution models '
                        '(default: inferred from the keys)')
    parser.add_argument('--scale', type=int, default=None,
                        help='PA-EDSR scale 2, 3 or 4 (default: inferred from the tail); not for panet')
    parser.add_argument('--colors', type=int, choices=[1, 3], default=None,
                        help='image channels: 3, or 1 for the grey JPEG PANet models (default: inferred)')
    parser.add_argument('--mid-channels', type=int, default=None,
                        help='feature channels, for non-paper variants (default: 64 panet, 256 paedsr)')
    parser.add_argument('--num-blocks', type=int, default=None,
                        help='number of ResBlocks, for non-paper variants (default: 80 panet, 32 paedsr)')
    parser.add_argument('--reduction', type=int, default=None,
                        help='attention channel reduction, for non-paper variants (default: 2 panet, 8 paedsr)')
    parser.add_argument('--source-rgb-range', type=float, default=None,
                        help='data range the released model was trained on, 1 or 255 (default: read from its '
                        'sub_mean; needed only for a file without one)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; return the exit status."""
    args = parse_args(argv)
    if osp.isfile(args.dst) and not args.overwrite and not (osp.isfile(args.src) and osp.samefile(args.src, args.dst)):
        print(f"error: '{args.dst}' exists; pass --overwrite to replace it, or choose another path", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        from panet_mm.engine.quiet import quiet_third_party_warnings
        from panet_mm.models.editors.panet.official import ConversionError, convert_official_checkpoint
        from panet_mm.utils.errors import cli_message
        from panet_mm.utils.interrupt import one_line_interrupts
    quiet_third_party_warnings(early)
    try:
        with one_line_interrupts(f"nothing was written to '{args.dst}'; run it again"):
            meta = convert_official_checkpoint(args.src, args.dst, args.arch, scale=args.scale, colors=args.colors,
                                               mid_channels=args.mid_channels, num_blocks=args.num_blocks,
                                               reduction=args.reduction, source_rgb_range=args.source_rgb_range)
    except ConversionError as err:
        print(f'error: {cli_message(err, FLAGS)}', file=sys.stderr)
        return 1
    cfg = meta['generator_cfg']
    for fact in meta['inferred']:
        print(f'inferred from the file: {fact}')
    print(f"converted {args.src} -> {args.dst} ({meta['arch']}, scale {meta['scale']}, "
          f"{meta['colors']} colour channel(s))")
    for note in meta['notes']:
        print(f'note: {note}')
    # (the msa.* twins and PANet's unused mean shifts have their notes above, with their count and why)
    others = [k for k in meta['ignored_keys'] if not k.startswith(('msa.', 'sub_mean.', 'add_mean.'))]
    if others:
        print(f"note: dropped released keys {', '.join(others)}")
    print(f'generator config: {cfg}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
