"""Fuzz the project's readers with truncated and bit-flipped files; print one JSON result per case.

    python tests/test_robustness/fuzz_worker.py WORKDIR CHECKPOINT CONFIG [--cases N]

Run in a subprocess by ``test_fuzz_readers.py``, so that a hang (timeout) or a crash of a decoder
(signal) is seen as such instead of taking pytest down. For every mutated file each reader either
works or raises the project's one-line error; the preparation step either writes all its outputs or
none, and never leaves a temporary file.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import random
import shutil
import sys
import time
import warnings
from functools import partial

import cv2

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, HERE)

from hostile_files import encode, photo  # noqa: E402


def mutations(data: bytes, n: int, rng: random.Random):
    """``n`` variants: half truncations (spread over the file, header included), half 1-4 bit flips."""
    for i in range(n // 2):
        yield f'truncate@{len(data) * i // (n // 2)}', data[:len(data) * i // (n // 2)]
    for _ in range(n - n // 2):
        out = bytearray(data)
        flips = [rng.randrange(len(data) * 8) for _ in range(rng.randint(1, 4))]
        for bit in flips:
            out[bit // 8] ^= 1 << (bit % 8)
        yield f'flip{flips}', bytes(out)


def outcome(func, ok_errors):
    try:
        func()
        return 'ok', ''
    except ok_errors as err:
        text = str(err)
        return ('error' if '\n' not in text else 'multi-line'), text
    except Exception as err:  # noqa: BLE001  (an unexpected failure is the finding)
        return 'unexpected', f'{type(err).__name__}: {err}'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('workdir')
    parser.add_argument('checkpoint')
    parser.add_argument('config')
    parser.add_argument('--cases', type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter('ignore')
    cv2.setNumThreads(1)
    from panet_mm.apis import CheckpointRefusedError, ImageReadError, build_restorer, load_state_dict_safely
    from panet_mm.datasets.image_io import ImageFileError, imread_verified
    from panet_mm.datasets.testsets import TestSetOptions, process_sr
    prep_options = TestSetOptions(scales=[2], overwrite=True, max_pixels=10**6)

    restorer = build_restorer(args.config, args.checkpoint, device='cpu')
    rng = random.Random(0)
    img = photo(36, 48, seed=5)
    sources = {'png': encode(img, '.png'), 'jpg': encode(img, '.jpg', cv2.IMWRITE_JPEG_QUALITY, 90)}
    start = time.perf_counter()
    for kind, data in sources.items():
        for name, variant in mutations(data, args.cases, rng):
            path = osp.join(args.workdir, f'case.{kind}')
            with open(path, 'wb') as f:
                f.write(variant)
            set_dir = osp.join(args.workdir, 'set')
            shutil.rmtree(set_dir, ignore_errors=True)
            results = {
                'prepare_read': outcome(partial(imread_verified, path, max_pixels=10**6), (ImageFileError, )),
                'restore_read': outcome(partial(restorer.read_image, path), (ImageReadError, )),
                'prepare_write': outcome(partial(process_sr, (path, 'case'), set_dir, prep_options),
                                         (ImageFileError, )),
            }
            written = sorted(osp.relpath(osp.join(d, f), set_dir) for d, _, fs in os.walk(set_dir) for f in fs)
            print(json.dumps(dict(reader=kind, case=name, results=results, written=written)), flush=True)

    ckpt = open(args.checkpoint, 'rb').read()
    for name, variant in mutations(ckpt, args.cases, rng):
        path = osp.join(args.workdir, 'case.pth')
        with open(path, 'wb') as f:
            f.write(variant)
        results = {'load_state_dict_safely': outcome(partial(load_state_dict_safely, path), (CheckpointRefusedError, ))}
        print(json.dumps(dict(reader='checkpoint', case=name, results=results, written=[])), flush=True)
    print(json.dumps(dict(seconds=time.perf_counter() - start)), flush=True)


if __name__ == '__main__':
    main()
