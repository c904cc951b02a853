"""Image grids of the first few validation / test samples of every test set.

mmagic's ``BasicVisualizationHook`` draws every ``interval``-th batch of a loop through the config's
visualizer (``ConcatImageVisualizer``: one ``LR | output | GT`` row per sample, written by
``LocalVisBackend`` under ``{work_dir}/{timestamp}/vis_data/vis_image/``). It has no upper bound: a
test of the SR configs would write all 328 benchmark images three times over, a few hundred MB, and
mmagic's multi-set loops number the batches of all sets in one sequence. This hook draws the first
``num_samples`` batches of each data loader instead, on the same visualizer; with several sets, each grid's
file name starts with its set's name (``Urban100_img_001_0.png``), so same-named images do not overwrite.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, Optional, Sequence

from mmagic.engine.hooks import BasicVisualizationHook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class FirstSamplesVisualizationHook(BasicVisualizationHook):
    """``BasicVisualizationHook`` limited to the first ``num_samples`` batches of each validation / test set.

    Args:
        num_samples (int): Batches drawn per data loader and loop run (with the configs' batch size
            of 1: images). Default: 3.
        on_val (bool): Draw during validation. Default: True.
        on_test (bool): Draw during test. Default: True.
    """

    def __init__(self, num_samples: int = 3, on_val: bool = True, on_test: bool = True) -> None:
        if num_samples < 1:
            raise ValueError(f'FirstSamplesVisualizationHook: num_samples must be >= 1, got {num_samples}')
        super().__init__(interval=1, on_train=False, on_val=on_val, on_test=on_test)
        self.num_samples = num_samples
        self._drawn: Dict[Any, int] = {}     # batches drawn per data loader in this loop run

    def before_val_epoch(self, runner) -> None:
        self._drawn = {}

    def before_test_epoch(self, runner) -> None:
        self._drawn = {}

    def _after_iter(self, runner, batch_idx: int, data_batch: Optional[Sequence[dict]] = None,
                    outputs: Optional[Sequence] = None, mode: Optional[str] = None) -> None:
        if mode not in ('val', 'test'):
            return
        loop = runner.val_loop if mode == 'val' else runner.test_loop
        key = getattr(loop, 'dataloader', None)     # mmagic's multi-set loops switch it per set
        if self._drawn.get(key, 0) < self.num_samples:
            self._drawn[key] = self._drawn.get(key, 0) + 1
            # In a test run, not mmagic's `step=runner.iter`: that builds the train loop and its dataset,
            # which a user testing a checkpoint need not have; the message hub's iteration (or 0) names it.
            step = runner.iter if mode == 'val' else runner.message_hub.get_info('iter') or 0
            set_name = _set_name(loop)
            for data_sample in outputs or ():
                if set_name:
                    data_sample = _named_for_set(data_sample, runner.visualizer, set_name)
                runner.visualizer.add_datasample(data_sample, step=step)


def _set_name(loop: Any) -> Optional[str]:
    """The name of the test set a multi-set loop is on (its metrics' prefix, as the logs say it, else the data
    root's folder name); None with a single set, whose grids keep the image names alone."""
    if len(getattr(loop, 'dataloaders', None) or ()) < 2:
        return None
    for metric in getattr(getattr(loop, 'evaluator', None), 'metrics', None) or ():
        if getattr(metric, 'prefix', None):
            return str(metric.prefix)
    root = getattr(getattr(getattr(loop, 'dataloader', None), 'dataset', None), 'data_root', None)
    return osp.basename(osp.normpath(root)) if root else None


def _named_for_set(data_sample: Any, visualizer: Any, set_name: str) -> Any:
    """A copy of ``data_sample`` whose file name (the visualizer's ``fn_key``) starts with ``set_name``: the
    grids of two sets with an image of the same name (``0001.png``) were written to one file, the last winning."""
    key = getattr(visualizer, 'fn_key', None)
    name = data_sample.metainfo.get(key) if key and hasattr(data_sample, 'metainfo') else None
    if isinstance(name, list):
        name = name[0] if name else None
    if not isinstance(name, str):
        return data_sample
    return data_sample.new(metainfo={key: f'{set_name}_{osp.basename(name)}'})


__all__ = ['FirstSamplesVisualizationHook']
