"""Hooks of panet_mm: stop at non-finite losses (training) and non-finite outputs (testing); save test metrics."""
from __future__ import annotations

import csv
import io
import math
import os.path as osp
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Tuple

import mmengine
import numpy as np
import torch
from mmagic.utils import print_colored_log
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from panet_mm.datasets.check import leaf_datasets, pair_sizes
from panet_mm.utils.checkpoint import list_keys
from panet_mm.utils.errors import PanetMMError
from panet_mm.utils.fileio import atomic_write

if TYPE_CHECKING:  # annotations only: no runner import at run time (import cycles)
    from mmengine.runner import Runner


class NonFiniteLossError(PanetMMError, RuntimeError):
    """The training loss became NaN or infinite."""


def _batch_files(data_batch: Any) -> List[str]:
    samples = data_batch.get('data_samples', []) if isinstance(data_batch, dict) else []
    files = []
    for s in samples or []:
        meta = s.metainfo if hasattr(s, 'metainfo') else {}
        path = meta.get('gt_path') or meta.get('img_path') or meta.get('key')
        if path:
            files.append(str(path))
    return files


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at the first NaN / infinite loss, naming the iteration and the batch's files.

    Why it exists: mmengine keeps training on a NaN loss, and the next checkpoint then overwrites the
    last good one with NaN weights. This hook runs before the checkpoint hook of the same iteration,
    so the last checkpoint on disk stays the last good one; the error says which it is.

    Args:
        keys (list[str], optional): Loss entries to watch. Default: every entry whose name starts
            with ``loss``.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, keys: Optional[List[str]] = None) -> None:
        """Watch ``keys`` (None: every ``loss*`` entry of the outputs)."""
        self.keys = keys

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        """Raise :class:`NonFiniteLossError` if a watched loss of this iteration is NaN / infinite."""
        if not outputs:
            return
        for name, value in outputs.items():
            if self.keys is not None and name not in self.keys:
                continue
            if self.keys is None and not name.startswith('loss'):
                continue
            v = float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else float(value)
            if not math.isfinite(v):
                files = _batch_files(data_batch)
                shown = list_keys(files)
                last = _last_checkpoint(runner)
                raise NonFiniteLossError(
                    f'{name} is {v} at iteration {runner.iter + 1} (batch: {shown or "file names unknown"}); '
                    f'training stopped, the last good checkpoint is {last or "none (nothing saved yet)"}. '
                    'Check these images, lower the learning rate or train without AMP, then resume from it')


def _last_checkpoint(runner) -> Optional[str]:
    pointer = osp.join(runner.work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            return f.read().strip() or None
    return None


class NonFiniteOutputError(PanetMMError, RuntimeError):
    """A model's test output holds NaN or infinite values (or its checkpoint does)."""


@HOOKS.register_module()
class NonFiniteOutputHook(Hook):
    """Stop testing at the first output with NaN / infinite values, naming the image.

    Why it exists: mmagic's metrics and visualisation turn such outputs into NaN scores and black images
    without an error. Priority ``VERY_HIGH``: it runs before hooks that write images of the batch, and
    the test metrics are dumped only after the epoch, so nothing is written.
    """

    priority = 'VERY_HIGH'

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        """Raise :class:`NonFiniteOutputError` if a ``pred_img`` of this batch has NaN / infinite values."""
        for sample in outputs or []:
            output = getattr(sample, 'output', sample)
            pred = getattr(output, 'pred_img', None)
            if isinstance(pred, torch.Tensor) and pred.is_floating_point() and not bool(torch.isfinite(pred).all()):
                meta = sample.metainfo if hasattr(sample, 'metainfo') else {}
                name = meta.get('img_path') or meta.get('gt_path') or f'batch {batch_idx}'
                raise NonFiniteOutputError(
                    f"the model's output for '{name}' has NaN / infinite values (test iteration {batch_idx + 1}); "
                    'nothing was written - the checkpoint or the test-time settings (e.g. AMP, fp16) are broken')


def _pair_scale(dataset: Any) -> Optional[Tuple[float, Tuple[int, int], Tuple[int, int]]]:
    """``(scale, input size, ground-truth size)`` of ``dataset``'s first sample (the data's up-scaling factor, 1 for
    restoration), or None where it has no ``inputs`` and ``gt_img`` of matching aspect."""
    dataset = leaf_datasets(dataset)[0]  # (inside a wrapper such as RepeatDataset)
    try:
        sample = dataset.prepare_data(0) if hasattr(dataset, 'prepare_data') else dataset[0]
    except Exception:  # noqa: BLE001 (a damaged first sample is the loop's to report, naming its files)
        return None
    sizes = pair_sizes(sample)
    if sizes is None or min(sizes[:2]) < 1:
        return None
    ih, iw, gh, gw = sizes
    scale_h, scale_w = gh / ih, gw / iw
    if abs(scale_h - scale_w) > 1 / min(ih, iw):  # not one scale for both sides: the loop reports it
        return None
    return round(scale_h, 3), (ih, iw), (gh, gw)


@HOOKS.register_module()
class ValidationScaleHook(Hook):
    """Before the first training iteration, compare the scale of every validation set with the training data's.

    Why it exists: a validation set of another scale (``LRbicx3`` for an x2 run) was found only at the first
    validation, 5000 iterations into the paper configs, by :func:`check_output_size`. One sample of each set is
    loaded before training starts.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner: Runner) -> None:
        """Raise :class:`ValidationScaleError` naming the first validation set of another scale than the training's."""
        loop = runner.val_loop
        train_loader = getattr(runner.train_loop, 'dataloader', None)
        if loop is None or train_loader is None:
            return
        found = _pair_scale(train_loader.dataset)
        if found is None:
            return
        scale = found[0]
        loaders = getattr(loop, 'dataloaders', None) or [getattr(loop, 'dataloader', None)]
        for loader in loaders:
            dataset = getattr(loader, 'dataset', None)
            seen = _pair_scale(dataset) if dataset is not None else None
            if seen is None or seen[0] == scale:
                continue
            val_scale, (ih, iw), (gh, gw) = seen
            name = getattr(dataset, 'metainfo', {}).get('dataset_type') or type(dataset).__name__
            folder = getattr(dataset, 'data_prefix', {}).get('img', getattr(dataset, 'data_root', ''))
            raise ValidationScaleError(
                f"validation set '{name}' ('{folder}') pairs {ih}x{iw} inputs with {gh}x{gw} ground truth "
                f'(x{val_scale:g}), but the training pairs are x{scale:g}: point its data_prefix at the x{scale:g} '
                'images (found before training, not at the first validation)')


class ValidationScaleError(PanetMMError, RuntimeError):
    """A validation set's scale is not the training data's."""


def _plain_number(value: Any) -> Any:
    """A metric as plain Python numbers: numpy scalars, which YAML tags as Python objects that ``yaml.safe_load``
    refuses, and tensors (mmagic's ``MAE`` and ``MSE`` return one-element tensors), which JSON cannot write."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else value.tolist()
    return value.item() if isinstance(value, np.generic) else value


@HOOKS.register_module()
class SaveMetricsHook(Hook):
    """Dump the test metrics to a file after the test epoch (``tools/test.py --out``).

    Priority ``LOWEST``: the metrics are final by then, and a run stopped by another hook writes none.

    Args:
        out (str): The file; its extension picks the format (``.json``, ``.yaml``, ``.pkl``, as
            :func:`mmengine.dump`).
    """

    priority = 'LOWEST'

    def __init__(self, out: str) -> None:
        """Write the metrics to the file ``out``."""
        self.out = out

    def after_test_epoch(self, runner: Runner, metrics: Optional[Mapping[str, Any]] = None) -> None:
        """Write ``metrics`` (numpy scalars and tensors as plain numbers) to :attr:`out` atomically."""
        if metrics is not None:  # serialised first, then written atomically: never a half-written metrics file
            fmt = osp.splitext(self.out)[1].lower().lstrip('.')
            plain = {k: _plain_number(v) for k, v in metrics.items()}
            atomic_write(self.out, mmengine.dump(plain, file_format={'yml': 'yaml', 'pickle': 'pkl'}.get(fmt, fmt)))
            print_colored_log(f'Metrics saved to {self.out}')


def _test_metrics(runner: Runner) -> List[Any]:
    """The metric objects of every test evaluator (mmengine's ``TestLoop``: one, mmagic's ``MultiTestLoop``: one
    evaluator per test set)."""
    loop = runner.test_loop
    evaluators = getattr(loop, 'evaluators', None) or [getattr(loop, 'evaluator', None)]
    return [m for ev in evaluators if ev is not None for m in getattr(ev, 'metrics', [])]


@HOOKS.register_module()
class PerImageMetricsHook(Hook):
    """Write every test image's scores to a CSV file, one row per image and set (``tools/test.py --per-image``).

    Why: mmagic's evaluators keep only each set's mean, and the paper's protocol is judged image by image too (an
    outlier, a border crop that differs, a per-image table to compare with). The scores are the metrics' own per-
    sample values (``BaseSampleWiseMetric.results``, taken after each test iteration), so the file's means are the
    logged ones; from every rank in a distributed test.

    Args:
        out (str): The ``.csv`` file: columns ``set,image`` then each metric (``PSNR``, ``SSIM``, ...).
    """

    priority = 'LOWEST'

    def __init__(self, out: str) -> None:
        self.out = out
        self._rows: dict = {}
        self._seen: dict = {}

    def before_test(self, runner: Runner) -> None:
        """Start an empty table."""
        self._rows, self._seen = {}, {}

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        """Take the per-sample results each metric added for this batch's ``outputs``."""
        names = [_sample_name(o) for o in outputs or []]
        for index, metric in enumerate(_test_metrics(runner)):
            results = getattr(metric, 'results', None)
            if not isinstance(results, list):
                continue
            start = self._seen.get(id(metric), 0)
            start = 0 if len(results) < start else start  # (cleared by its evaluate())
            new, self._seen[id(metric)] = results[start:], len(results)
            if len(new) != len(names):  # not one result per sample (a metric over the whole set)
                continue
            scaling = float(getattr(metric, 'scaling', 1) or 1)  # (mmagic scales the mean, e.g. MAE x 100)
            for name, result in zip(names, new):
                if not isinstance(result, dict):
                    break
                label = metric.prefix or f'test set {_set_index(runner, metric, index)}'
                row = self._rows.setdefault((label, name), {})
                row.update({k: _scalar(v) * scaling for k, v in result.items() if _scalar(v) is not None})

    def after_test_epoch(self, runner: Runner, metrics: Optional[Mapping[str, Any]] = None) -> None:
        """Gather the rows of every rank and write them (rank 0), atomically."""
        from mmengine.dist import all_gather_object, get_world_size, is_main_process
        parts = all_gather_object(self._rows) if get_world_size() > 1 else [self._rows]
        rows: dict = {}
        for part in parts:
            rows.update(part)
        if not is_main_process() or not rows:
            return
        columns = sorted({k for row in rows.values() for k in row})
        table = io.StringIO()
        writer = csv.writer(table, lineterminator='\n')
        writer.writerow(['set', 'image'] + columns)
        for (prefix, name), row in rows.items():
            writer.writerow([prefix, name] + [f'{row[c]:.6f}' if c in row else '' for c in columns])
        atomic_write(self.out, table.getvalue())
        print_colored_log(f'Per-image scores ({len(rows)} rows) saved to {self.out}')


def _scalar(value: Any) -> Optional[float]:
    """A per-sample metric value as a float (numbers, numpy scalars, one-element tensors), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.generic)) or isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    return None


def _set_index(runner: Runner, metric: Any, fallback: int) -> int:
    """The index of the test evaluator holding ``metric`` (a set without a prefix is named by it)."""
    loop = runner.test_loop
    for i, ev in enumerate(getattr(loop, 'evaluators', None) or [getattr(loop, 'evaluator', None)]):
        if metric in getattr(ev, 'metrics', []):
            return i
    return fallback


def _sample_name(sample: Any) -> str:
    """A test sample's ground-truth file name (else its input's), as the CSV names it."""
    meta = getattr(sample, 'metainfo', {}) or {}
    path = meta.get('gt_path') or meta.get('img_path') or ''
    return osp.basename(str(path))


__all__ = ['NonFiniteLossError', 'NonFiniteLossHook', 'NonFiniteOutputError', 'NonFiniteOutputHook',
           'PerImageMetricsHook', 'SaveMetricsHook', 'ValidationScaleError', 'ValidationScaleHook']
