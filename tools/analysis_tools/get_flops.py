"""Multiply-adds and parameters of a config's generator at one input size, the pyramid attention counted.

    python tools/analysis_tools/get_flops.py CONFIG --shape H W [--out-table]

mmagic's tool of the same name (mmagic/.mim/tools/analysis_tools/get_flops.py, ``--shape C H W``)
works on these configs too; this one adds what it lacks: the input channels taken from the model,
each pyramid attention block's count beside its own ``macs()`` (the check that the trace counted the
whole block), and the operators the counter skipped in one line instead of a warning per operator.
Counts are mmengine's: one FLOP per multiply-add, the pyramid attention kernel through the handle
``panet_mm`` registers in mmengine's flop counter (:mod:`panet_mm.ops.flops`).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import List, Optional


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Count a config generator's multiply-adds (FLOPs, mmengine's convention) and parameters")
    parser.add_argument('config', help='model config, e.g. configs/panet_sr_x2_div2k.py')
    parser.add_argument('--shape', type=int, nargs='+', default=[64, 64], metavar='N',
                        help='input size: H W, or C H W as mmagic\'s get_flops (default: 64 64; C from the model)')
    parser.add_argument('--out-table', action='store_true', help='also print the per-module table')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', help='override config settings')
    args = parser.parse_args(argv)
    from panet_mm.utils.config_names import config_not_found, find_config
    if find_config(args.config) is None:  # a path or a shipped config's name, read by read_tool_config
        parser.error(config_not_found(args.config))
    if len(args.shape) not in (2, 3) or min(args.shape) < 1:
        parser.error(f'--shape takes H W or C H W (positive), got {" ".join(map(str, args.shape))}')
    return args


def _size(n: float) -> str:
    for unit, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if n >= scale:
            return f'{n / scale:.3f}{unit}'
    return str(int(n))


def count(generator, shape, block_type):
    """mmengine's counts for one ``(1, *shape)`` input, and the input shape each ``block_type`` module saw."""
    import torch
    from mmengine.analysis import FlopAnalyzer

    block_inputs = {}

    def record_input(name):
        def hook(module, inputs) -> None:
            block_inputs.setdefault(name, tuple(inputs[0].shape))
        return hook

    hooks = [m.register_forward_pre_hook(record_input(name)) for name, m in generator.named_modules()
             if isinstance(m, block_type)]
    analyzer = FlopAnalyzer(generator, (torch.zeros(1, *shape),))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = analyzer.total()
    for hook in hooks:
        hook.remove()
    return analyzer, total, block_inputs


def main(argv: Optional[List[str]] = None) -> int:
    """Print the counts; return the exit status."""
    args = parse_args(argv)
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        from mmengine.analysis import parameter_count
        from mmengine.analysis.print_helper import complexity_stats_table
        from mmengine.registry import MODELS, init_default_scope

        from panet_mm.engine.cli import read_tool_config, readable_errors
        from panet_mm.engine.quiet import quiet_third_party_warnings
        from panet_mm.models.layers import PyramidAttention
        from panet_mm.utils.checkpoint import first_conv_in_channels
    quiet_third_party_warnings(early)

    cfg = read_tool_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmagic'))
    with readable_errors():  # a model the config cannot build (a mix position, an argument): one line
        model = MODELS.build(cfg.model)
    generator = getattr(model, 'generator', model).eval()
    channels = first_conv_in_channels(generator)
    if len(args.shape) == 3:
        shape = tuple(args.shape)
        if channels and shape[0] != channels:
            raise SystemExit(f"error: --shape {' '.join(map(str, shape))}: the generator of '{args.config}' takes "
                             f'{channels} input channel(s), not {shape[0]}; pass --shape {channels} {shape[1]} '
                             f'{shape[2]} or just H W')
    else:
        shape = (channels or 3, *args.shape)
    analyzer, total, block_inputs = count(generator, shape, PyramidAttention)
    params = parameter_count(generator)['']

    line = '=' * 60
    print(f'{line}\nConfig: {args.config}\nGenerator: {type(generator).__name__}, input shape {shape}')
    print(f'FLOPs (multiply-adds): {_size(total)}\nParameters: {_size(params)}')
    for name, block in generator.named_modules():
        if not isinstance(block, PyramidAttention):
            continue
        if name not in block_inputs:
            print(f'Pyramid attention {name}: not called at this input size')
            continue
        _, c, h, w = block_inputs[name]
        counted, expected = analyzer.total(name), block.macs(h, w)
        print(f'Pyramid attention {name} (input {c}x{h}x{w}): {_size(counted)} counted, '
              f'{_size(expected)} by its macs(), {100 * counted / total:.1f}% of the total')
    skipped = analyzer.unsupported_ops()
    if skipped:
        print('Not counted (no flop handle in mmengine; elementwise or data movement): '
              + ', '.join(f'{op.split("::")[-1]} x{n}' for op, n in sorted(skipped.items())))
    print(line)
    if args.out_table:
        print(complexity_stats_table(analyzer, max_depth=3, show_param_shapes=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
