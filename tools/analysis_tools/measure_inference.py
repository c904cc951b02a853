"""Time and peak memory of one whole-image inference with a config's model, before you try it on photos.

    python tools/analysis_tools/measure_inference.py CONFIG [--size 256 | --size 480x320] [--device cpu|cuda]
                                      [--test-cfg chop|tile=SIZE,OVERLAP] [--cfg-options k=v ...] [--json F]
                                      [--keep-denormals]

The model is built from the config with random weights (no checkpoint or data is read: with denormal
floats flushed to zero, as by default and as ``tools/restore.py`` runs, weights barely change the time,
and not the memory) and run once in eval mode, under ``torch.no_grad``, on a random
``--size`` image with the test-time path of the config's model (``PANetEditModel.restore``: whole
image unless the config or ``--test-cfg`` asks for chop / tiles). It prints the time of that pass and
the peak memory: on CPU the process's peak resident set size (``ru_maxrss``, everything the process
ever held: Python, torch, mmagic and the model included) and its increase over the resident size
just before the pass; on CUDA ``torch.cuda.max_memory_allocated``. Why a tool: mmagic has no way to
ask "will this model restore a photo of this size on this machine?" short of trying on real data.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from typing import Optional, Sequence, Tuple, Union


def parse_size(text: str) -> Tuple[int, int]:
    """``'256'`` -> (256, 256); ``'480x320'`` -> (480, 320) as (height, width)."""
    m = re.fullmatch(r'\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?', text)
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise argparse.ArgumentTypeError(f"--size must be N or HxW with positive integers, got '{text}'")
    h = int(m.group(1))
    return h, int(m.group(2)) if m.group(2) else h


def parse_test_cfg(text: str) -> dict:
    """``'chop'`` -> chop with the released defaults; ``'tile=128,16'`` -> tiles of 128 overlapping by 16."""
    if text == 'chop':
        return dict(chop=dict(min_size=6400, shave=10))
    m = re.fullmatch(r'tile=(\d+)(?:,(\d+))?', text)
    if m:
        size, overlap = int(m.group(1)), int(m.group(2) or 0)
        if not 0 <= overlap < size:
            raise argparse.ArgumentTypeError(f"'{text}': tile=SIZE[,OVERLAP] needs 0 <= OVERLAP < SIZE")
        return dict(tile=dict(size=size, overlap=overlap))
    raise argparse.ArgumentTypeError(f"--test-cfg must be 'chop' or 'tile=SIZE[,OVERLAP]', got '{text}'")


def build_model(config: str, device: str, test_cfg: Optional[dict], cfg_options, seed: int):
    """The config's model with random weights (seeded), in eval mode on ``device``, and its ``test_cfg``."""
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        import torch
        from mmagic.registry import MODELS
        from mmengine.registry import init_default_scope

        import panet_mm  # noqa: F401  (registers the panet_mm modules even without custom_imports)
        from panet_mm.engine.cli import read_tool_config
        from panet_mm.engine.quiet import quiet_third_party_warnings
    quiet_third_party_warnings(early)
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit(f"--device {device} was requested but torch sees no GPU; use --device cpu")
    cfg = read_tool_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmagic'))
    model_cfg = cfg.model.copy()
    if test_cfg is not None:
        if model_cfg.get('type') not in ('PANetEditModel', 'mmagic.PANetEditModel'):
            raise SystemExit(f"--test-cfg needs a config with model type='PANetEditModel'; '{config}' builds "
                             f"{model_cfg.get('type')}")
        model_cfg['test_cfg'] = {**dict(model_cfg.get('test_cfg') or {}), **test_cfg}
    torch.manual_seed(seed)
    return MODELS.build(model_cfg).eval().to(device), dict(model_cfg.get('test_cfg') or {})


def measure(config: str, size: Tuple[int, int], device: str = 'cpu', test_cfg: Optional[dict] = None,
            cfg_options: Union[dict, Sequence[str], None] = None, seed: int = 0) -> dict:
    """Build the config's model and time one restoration of a random ``size`` image.

    Args:
        config (str): Config file.
        size (tuple[int, int]): Input ``(height, width)`` (low-resolution input for SR models).
        device (str): ``'cpu'`` or ``'cuda'``. Default: ``'cpu'``.
        test_cfg (dict, optional): Replaces the model's test-time options (``PANetEditModel`` only).
        cfg_options (dict | Sequence[str], optional): Config overrides, as ``--cfg-options`` (a dict,
            or its ``KEY=VALUE`` strings).
        seed (int): Seed of the random weights and image. Default: 0.

    Returns:
        dict: ``model``, ``input``, ``output``, ``time_s``, ``device``, ``threads`` and the memory
        figures (``peak_rss_bytes`` and ``rss_increase_bytes`` on CPU, ``cuda_peak_bytes`` on CUDA).
    """
    from panet_mm.utils.config_names import config_not_found, find_config
    if find_config(config) is None:  # a path or a shipped config's name, read by read_tool_config
        raise SystemExit(config_not_found(config))
    model, model_test_cfg = build_model(config, device, test_cfg, cfg_options, seed)
    import torch

    from panet_mm.utils.checkpoint import first_conv_in_channels
    from panet_mm.utils.memory import current_rss_bytes, peak_rss_bytes
    restore = getattr(model, 'restore', None) or getattr(model, 'generator', model)
    x = torch.rand(1, first_conv_in_channels(model) or 3, *size, device=device)
    cuda = device.startswith('cuda')
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = current_rss_bytes()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = restore(x)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    result = dict(config=config, model=type(model).__name__,
                  generator=type(getattr(model, 'generator', model)).__name__, input=list(x.shape),
                  output=list(out.shape), time_s=elapsed, device=device, threads=torch.get_num_threads(),
                  test_cfg=model_test_cfg)
    if cuda:
        result['cuda_peak_bytes'] = int(torch.cuda.max_memory_allocated())
    else:
        peak = peak_rss_bytes()
        result.update(peak_rss_bytes=peak, rss_increase_bytes=max(peak - base, 0))
    return result


def _gb(n: int) -> str:
    return f'{n / 2**30:.2f} GB' if n >= 2**30 else f'{n / 2**20:.0f} MB'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='model config, e.g. configs/panet_dn_sigma30_div2k.py')
    parser.add_argument('--size', type=parse_size, default=(256, 256),
                        help='input size N or HxW (the low-resolution input for SR); default 256')
    parser.add_argument('--device', default='cpu', help='cpu or cuda (default cpu)')
    parser.add_argument('--test-cfg', type=parse_test_cfg, default=None,
                        help="'chop' (released chop) or 'tile=SIZE[,OVERLAP]'; default: the config's (whole image)")
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', help='override config settings')
    parser.add_argument('--keep-denormals', action='store_true',
                        help='do not flush denormal floats to zero on CPU (tools/restore.py flushes them by '
                        "default, and so does this measurement: README 'Denormal floats')")
    parser.add_argument('--json', help='also write the result to this JSON file')
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        from panet_mm.engine.quiet import quiet_third_party_warnings
        from panet_mm.utils.denormals import flushed_denormals
        from panet_mm.utils.fileio import atomic_write, unwritable_file
    why = unwritable_file(args.json) if args.json else None
    if why:  # before the measurement (a minute on a large photo), not after it
        parser.error(f"--json '{args.json}' cannot be written ({why}); pass a file in a writable folder")
    quiet_third_party_warnings(early)
    # as tools/restore.py: before anything starts torch's CPU threads, which copy the mode once
    with flushed_denormals(not args.keep_denormals) as flushed:
        r = measure(args.config, args.size, args.device, args.test_cfg, args.cfg_options)
    r['denormals_flushed'] = flushed
    mode = ', '.join(sorted(k for k in r['test_cfg'] if k in ('chop', 'tile'))) or 'whole image'
    print(f"{r['generator']} ({r['model']}) {r['input'][2]}x{r['input'][3]}x{r['input'][1]} -> "
          f"{r['output'][2]}x{r['output'][3]}, {mode}, {r['device']} ({r['threads']} threads): {r['time_s']:.1f} s")
    if 'cuda_peak_bytes' in r:
        print(f"peak GPU memory allocated: {_gb(r['cuda_peak_bytes'])}")
    else:
        print(f"peak memory of the process: {_gb(r['peak_rss_bytes'])} "
              f"(+{_gb(r['rss_increase_bytes'])} over the process before the pass)")
    if args.json:
        atomic_write(args.json, json.dumps(r, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
