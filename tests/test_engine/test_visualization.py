"""Image grids: FirstSamplesVisualizationHook per test set, the TensorBoard switch, and grids written by a test run."""
import argparse
import os.path as osp
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import DEMO_CONFIG, demo_overrides, run_tool
from mmengine.config import Config
from mmengine.logging import MessageHub

from panet_mm.engine import FirstSamplesVisualizationHook
from panet_mm.engine.cli import load_config


class Recorder:
    def __init__(self):
        self.drawn = []

    def add_datasample(self, sample, step=0):
        self.drawn.append(sample)


def test_first_samples_of_every_set():
    """mmagic's multi-set loops number batches across sets; the hook counts per data loader and per run."""
    hook = FirstSamplesVisualizationHook(num_samples=2)
    loop = SimpleNamespace(dataloader=None)
    # no `iter`: reading runner.iter builds the train loop and its dataset, which a test-only run lacks
    runner = SimpleNamespace(visualizer=Recorder(), test_loop=loop, val_loop=loop,
                             message_hub=MessageHub.get_instance('test_first_samples_of_every_set'))
    for _ in range(2):                                  # two test runs
        hook.before_test_epoch(runner)
        index = 0
        for name, size in (('a', 5), ('b', 1), ('c', 3)):
            loop.dataloader = object()
            for _ in range(size):
                hook.after_test_iter(runner, index, {}, [f'{name}{index}'])
                index += 1
    assert runner.visualizer.drawn == ['a0', 'a1', 'b5', 'c6', 'c7'] * 2
    hook.after_train_iter(runner, 0, {}, ['t'])          # never during training
    assert len(runner.visualizer.drawn) == 10
    with pytest.raises(ValueError, match='num_samples must be >= 1'):
        FirstSamplesVisualizationHook(num_samples=0)


def args_for(config, *options):
    return argparse.Namespace(config=config, work_dir=None, cfg_options=list(options) or None, launcher='none',
                              local_rank=0)


def test_tensorboard_switch(monkeypatch):
    cfg = load_config(args_for(DEMO_CONFIG))
    assert cfg.tensorboard is False and [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend']
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'tensorboard' else real(name, *a))
    with pytest.raises(SystemExit, match=r"pip install 'panet_mm\[tensorboard\]'"):
        load_config(args_for(DEMO_CONFIG, 'tensorboard=True'))
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: object() if name == 'tensorboard' else None)
    cfg = load_config(args_for(DEMO_CONFIG, 'tensorboard=True'))
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend', 'TensorboardVisBackend']


def test_configs_draw_lr_output_gt():
    cfg = Config.fromfile(DEMO_CONFIG, import_custom_modules=False)
    assert cfg.visualizer.img_keys == ['input', 'pred_img', 'gt_img']
    assert dict(type='FirstSamplesVisualizationHook', num_samples=3) in cfg.custom_hooks


@pytest.mark.slow
def test_runs_write_grids(demo_root, tmp_path):
    """A demo training run (quiet stderr) and tools/test.py write LR | output | GT rows of the first 3 Set5 images.

    The grids are written by mmagic's ConcatImageVisualizer through mmengine's LocalVisBackend; the output
    panel must be what panet_mm's restore API makes of the LR image with the same checkpoint.
    """
    work = tmp_path / 'train'
    proc = run_tool([sys.executable, 'tools/train.py', DEMO_CONFIG, '--work-dir', str(work)]
                    + demo_overrides(demo_root, **{'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                                                   'train_dataloader.batch_size': 2}))
    assert 'warn' not in proc.stderr.lower(), proc.stderr                                   # nothing third-party
    assert ' - WARNING - ' not in proc.stdout                                              # nor in the log
    assert len(sorted(work.glob('*/vis_data/vis_image/*_2.png'))) == 3                    # validation at iter 2
    import json
    records = [json.loads(line) for line in next(work.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    assert [r['step'] for r in records if 'Set5/PSNR' in r] == [2]                # its metrics too (was step 0)
    test_work = tmp_path / 'test'
    run_tool([sys.executable, 'tools/test.py', DEMO_CONFIG, str(work / 'iter_2.pth'), '--work-dir', str(test_work)]
             + demo_overrides(demo_root))
    grids = sorted(test_work.glob('*/vis_data/vis_image/*.png'))
    assert len(grids) == 3, grids

    from panet_mm.apis import build_restorer
    restorer = build_restorer(DEMO_CONFIG, str(work / 'iter_2.pth'), device='cpu')
    for path in grids:
        stem = path.name.rsplit('_', 1)[0]
        gt = cv2.imread(osp.join(demo_root, 'Set5', 'GTmod12', stem + '.png'))
        lr = cv2.imread(osp.join(demo_root, 'Set5', 'LRbicx2', stem + '.png'))
        grid = cv2.imread(str(path))
        h, w = gt.shape[:2]
        assert grid.shape == (h, lr.shape[1] + 2 * w, 3)
        assert np.array_equal(grid[:lr.shape[0], :lr.shape[1]], lr)          # the LR input, top left
        assert np.array_equal(grid[:, -w:], gt)                              # the ground truth, exactly
        out = restorer.to_bgr(restorer.restore_array(lr[..., ::-1]))         # the config reads RGB
        panel = grid[:, lr.shape[1]:lr.shape[1] + w].astype(int)
        assert np.abs(panel - out.astype(int)).max() <= 1                    # the model's output (rounding)


def test_grids_of_several_sets_are_named_by_set(tmp_path):
    """Two test sets holding an image of the same name wrote one grid file, the second set's overwriting the first's;
    with several sets the file names start with the set's name (the metrics' prefix), with one set they do not."""
    import torch
    from mmagic.structures import DataSample
    from mmagic.visualization import ConcatImageVisualizer
    from mmengine.visualization import LocalVisBackend

    visualizer = ConcatImageVisualizer(name='grids_of_several_sets', fn_key='gt_path', img_keys=['gt_img'],
                                       vis_backends=[dict(type=LocalVisBackend)], save_dir=str(tmp_path))
    hook = FirstSamplesVisualizationHook(num_samples=1)
    class Loader:  # hashable, as a DataLoader is
        def __init__(self, name):
            self.dataset = SimpleNamespace(data_root=f'data/{name}')

    sets = [Loader('Kodak24'), Loader('McMaster')]
    loop = SimpleNamespace(dataloaders=sets, dataloader=None, evaluator=None)
    runner = SimpleNamespace(visualizer=visualizer, test_loop=loop, val_loop=loop,
                             message_hub=MessageHub.get_instance('test_grids_of_several_sets_are_named_by_set'))
    hook.before_test_epoch(runner)
    for i, (prefix, loader) in enumerate(zip(('Kodak', None), sets)):
        loop.dataloader = loader
        loop.evaluator = SimpleNamespace(metrics=[SimpleNamespace(prefix=prefix)])
        sample = DataSample(gt_img=torch.full((3, 4, 4), 60.0 * (i + 1)), metainfo=dict(gt_path=f'x/{i}/0001.png'))
        hook.after_test_iter(runner, i, {}, [sample])
        assert sample.gt_path == f'x/{i}/0001.png'  # the sample itself (its metrics' record) is untouched
    written = sorted(p.name for p in tmp_path.rglob('*.png'))
    assert written == ['Kodak_0001_0.png', 'McMaster_0001_0.png']  # the prefix, else the data root's name
    assert cv2.imread(str(next(tmp_path.rglob('McMaster_0001_0.png'))))[0, 0, 0] == 120
    loop.dataloaders = sets[:1]                                      # one set: the image's own name
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, {}, [DataSample(gt_img=torch.zeros(3, 4, 4), metainfo=dict(gt_path='y/0002.png'))])
    assert len(list(tmp_path.rglob('0002_0.png'))) == 1
