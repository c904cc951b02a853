"""Load every sample of a config's datasets and decode every image file whole, before a long run.

    python tools/analysis_tools/check_dataset.py CONFIG [--split train val test] [--jobs N] [--cfg-options k=v ...]

Each dataset of the config's ``train_dataloader``, ``val_dataloader`` and ``test_dataloader`` (lists of
loaders included; a dataset used by several loaders is checked once; wrappers such as ``RepeatDataset`` are
unwrapped) is built as the runner builds it, and every sample is checked: each of its files decoded whole by
Pillow (a truncated or corrupt file, which OpenCV would fill in with grey and train on, or one above the pixel
limit), then the sample run through the dataset's pipeline as the loop would run it (LR and GT sizes that do not
match the scale, a patch larger than the image, ...). Every problem is listed, one line each, with its sample and
files; the exit status is 1 when there is any, 0 when every sample loads. A training run meets such a file only
when its sampler draws it, and stops there (``panet_mm.datasets.check`` says why the pass exists).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any, Dict, List, Optional, Tuple

SPLITS = ('train', 'val', 'test')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Load every sample of a config's datasets and decode every image file whole; list what fails")
    parser.add_argument('config', help='config file, e.g. configs/panet_sr_x2_div2k.py')
    parser.add_argument('--split', nargs='+', choices=SPLITS, default=list(SPLITS),
                        help='which loaders\' datasets to check (default: all three)')
    parser.add_argument('--jobs', type=int, default=None, metavar='N',
                        help='samples checked at once (default: the number of CPU cores)')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override config settings, e.g. train_dataloader.dataset.data_root=/data/DIV2K')
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    from panet_mm.utils.config_names import config_not_found, find_config
    if find_config(args.config) is None:  # a path or a shipped config's name, read by read_tool_config
        parser.error(config_not_found(args.config))
    return args


def config_datasets(cfg: Any, splits: List[str]) -> List[Tuple[str, dict]]:
    """``(name, dataset config)`` of the chosen loaders, each distinct dataset once, named by every loader using it
    (``'val, test'``; ``'val[1]'`` for the second of a list of loaders)."""
    found: Dict[str, Tuple[List[str], dict]] = {}
    for split in splits:
        loaders = cfg.get(f'{split}_dataloader')
        if loaders is None:
            continue
        many = isinstance(loaders, (list, tuple))
        for i, loader in enumerate(loaders if many else [loaders]):
            dataset = loader.get('dataset') if hasattr(loader, 'get') else None
            if dataset is None:
                continue
            name = f'{split}[{i}]' if many and len(loaders) > 1 else split
            found.setdefault(repr(dataset), ([], dataset))[0].append(name)
    return [(', '.join(names), dataset) for names, dataset in found.values()]


def describe(dataset: Any) -> str:
    """``CheckedImageDataset 'set5' at data/Set5``: the type, the metainfo's name and the data root."""
    from panet_mm.datasets.check import leaf_datasets
    leaf = leaf_datasets(dataset)[0]
    name = getattr(leaf, 'metainfo', {}).get('dataset_type')
    root = getattr(leaf, 'data_root', None)
    return ' '.join(p for p in (type(dataset).__name__, f"'{name}'" if name else '', f'at {root}' if root else '')
                    if p)


def main(argv: Optional[List[str]] = None) -> int:
    """Check the datasets; print every problem; return 1 if there is any, else 0."""
    args = parse_args(argv)
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        from mmengine.registry import DATASETS, init_default_scope
        from mmengine.utils import import_modules_from_strings
        from tqdm import tqdm

        import panet_mm  # noqa: F401  (registers the panet_mm modules even without custom_imports)
        from panet_mm.datasets.check import check_dataset, sample_count
        from panet_mm.engine.cli import read_tool_config, readable_errors
        from panet_mm.engine.quiet import quiet_third_party_warnings
        from panet_mm.utils.errors import PanetMMError
    quiet_third_party_warnings(early)

    cfg = read_tool_config(args.config, args.cfg_options)
    chosen = config_datasets(cfg, args.split)
    if not chosen:
        raise SystemExit(f"error: '{args.config}' has no dataset in {', '.join(f'{s}_dataloader' for s in args.split)}")
    problems, samples, unbuilt = 0, 0, 0
    with readable_errors('nothing was written'):
        if cfg.get('custom_imports'):
            import_modules_from_strings(**cfg.custom_imports)
        init_default_scope(cfg.get('default_scope', 'mmagic'))
        for name, dataset_cfg in chosen:
            try:
                dataset = DATASETS.build(dataset_cfg)
            except (PanetMMError, FileNotFoundError) as err:  # a missing folder or list: a problem, go on
                print(f'{name}: cannot be built: {err}')
                unbuilt += 1
                continue
            total = sample_count(dataset)
            print(f'{name}: {describe(dataset)}, {total} samples')
            found = []
            with tqdm(total=total, desc=name, unit='sample', disable=None, file=sys.stderr) as bar:
                for problem in check_dataset(dataset, args.jobs, bar.update):
                    tqdm.write(f'  {problem}')
                    found.append(problem)
            print(f"{name}: {'every sample loads' if not found else f'{len(found)} of {total} samples fail'}")
            problems += len(found)
            samples += total
    if problems or unbuilt:
        fixes = ([f'{unbuilt} dataset(s) could not be built: prepare them as the lines above say'] if unbuilt else []) \
            + ([f'{problems} problem(s) in {samples} samples checked: replace or remove the files named above (and '
                'their lines in the meta-info file, where the dataset has one)'] if problems else [])
        print('; '.join(fixes) + '; then check again')
        return 1
    print(f'all {samples} samples load')
    return 0


if __name__ == '__main__':
    sys.exit(main())
