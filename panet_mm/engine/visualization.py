"""Image grids of the first few validation / test samples of every test set.

mmagic's ``BasicVisualizationHook`` draws every ``interval``-th batch of a loop through the config's
visualizer (``ConcatImageVisualizer``: one ``LR | output | GT`` row per sample, written by
``LocalVisBackend`` under ``{work_dir}/{timestamp}/vis_data/vis_image/``). It has no upper bound: a
test of the SR configs would write all 328 benchmark images three times over, a few hundred MB, and
mmagic's multi-set loops number the batches of all sets in one sequence. This hook draws the first
``num_samples`` batches of each data loader instead, on the same visualizer.
"""
from __future__ import annotations

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
            for data_sample in outputs or ():
                runner.visualizer.add_datasample(data_sample, step=step)


__all__ = ['FirstSamplesVisualizationHook']
