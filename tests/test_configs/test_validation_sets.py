"""Every paper config validates on DIV2K 801-810 (the released --data_range 1-800/801-810), never on a test set, with
its task's own metric protocol, and keeps the best checkpoint by the validation set's prefixed PSNR; the validation
set that tools/dataset_converters/prepare_div2k.py --valid writes builds and scores through each config."""
import math
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, run_tool
from mmagic.registry import DATASETS, METRICS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

import panet_mm  # noqa: F401

# config -> (the metrics' Y conversion, their border crop)
PAPER = {f'configs/panet_dn_sigma{s}_div2k.py': (None, 0) for s in (10, 30, 50, 70)}
PAPER.update({f'configs/panet_car_q{q}_div2k.py': (None, 0) for q in (10, 20, 30, 40)})
PAPER['configs/panet_demosaic_div2k.py'] = (None, 0)
PAPER.update({f'configs/panet_sr_x{s}_div2k.py': ('Y', s) for s in (2, 3, 4)})
TEST_SET_NAMES = {'Set5', 'Set14', 'B100', 'Urban100', 'Manga109', 'Kodak24', 'CBSD68', 'McMaster', 'LIVE1',
                  'Classic5'}


def load(path):
    init_default_scope('mmagic')
    return Config.fromfile(osp.join(ROOT, path))


def loaders(value):
    return value if isinstance(value, (list, tuple)) else [value]


@pytest.mark.parametrize('path', sorted(PAPER))
def test_validates_on_div2k_801_810(path):
    convert, crop = PAPER[path]
    cfg = load(path)
    assert cfg.val_cfg.type == 'MultiValLoop' and cfg.train_cfg.val_interval == 5000
    (loader, ), (evaluator, ) = loaders(cfg.val_dataloader), loaders(cfg.val_evaluator)
    ds = loader.dataset
    assert ds.type == 'CheckedImageDataset' and ds.data_root == 'data/DIV2K/valid'
    assert ds.data_prefix['gt'] == 'GTmod12' and ds.metainfo.dataset_type == 'div2k_valid'
    assert 'prepare_div2k.py --no-div2k --valid PATH/TO/DIV2K_valid_HR' in ds.prepare_cmd
    # never a test set: no test loader reads the validation folder, no validation metric is named after a test set
    test_roots = {d.dataset.data_root for d in loaders(cfg.test_dataloader)}
    assert ds.data_root not in test_roots and not any(osp.basename(r) in ds.data_root for r in test_roots)
    assert [(m.type, m.prefix, m.crop_border, m.get('convert_to')) for m in evaluator.metrics] == [
        ('PSNR', 'DIV2K', crop, convert), ('SSIM', 'DIV2K', crop, convert)]
    assert not {m.prefix for m in evaluator.metrics} & TEST_SET_NAMES
    # save_best names the key MultiValLoop logs: the metric's prefix, '/', its name
    hook = cfg.default_hooks.checkpoint
    assert hook.save_best == f'{evaluator.metrics[0].prefix}/{evaluator.metrics[0].type}' == 'DIV2K/PSNR'
    assert hook.rule == 'greater'
    # the test sets stay the paper's table
    assert all(osp.basename(r) in TEST_SET_NAMES for r in test_roots)


@pytest.fixture(scope='module')
def div2k_valid(tmp_path_factory):
    """A tiny DIV2K_valid_HR (0801-0810) prepared by the tool: the ``valid`` folder (centre 48x48 crops)."""
    tmp = tmp_path_factory.mktemp('div2k_valid')
    src = tmp / 'DIV2K_valid_HR'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(801, 811):
        img = cv2.GaussianBlur((rng.random((70, 90, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
        cv2.imwrite(str(src / f'{i:04d}.png'), img)
    run_tool([sys.executable, 'tools/dataset_converters/prepare_div2k.py', '--no-div2k', '--div2k', str(tmp / 'DIV2K'),
              '--valid', str(src), '--valid-crop', '48', '--workers', '1'])
    return tmp / 'DIV2K' / 'valid'


@pytest.mark.parametrize('path', ['configs/panet_dn_sigma30_div2k.py', 'configs/panet_car_q10_div2k.py',
                                  'configs/panet_demosaic_div2k.py'])
def test_validation_set_builds_and_scores(path, div2k_valid):
    cfg = load(path)
    cfg.merge_from_dict({'val_dataloader.dataset.data_root': str(div2k_valid)})
    ds = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(ds) == 10 and ds[0]['data_samples'].gt_img.shape[-2:] == (48, 48)
    cfg.model.generator.update(mid_channels=8, num_blocks=2)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    batch = pseudo_collate([ds[0], ds[1]])
    with torch.no_grad():
        outputs = model.val_step(batch)
    for metric_cfg in cfg.val_evaluator.metrics:
        metric = METRICS.build(metric_cfg)
        metric.process(batch, [o.to_dict() for o in outputs])
        value = metric.compute_metrics(metric.results)[metric_cfg.type]
        assert math.isfinite(value) and value > 0


def test_missing_validation_set_names_the_command(tmp_path):
    cfg = load('configs/panet_dn_sigma30_div2k.py')
    cfg.merge_from_dict({'val_dataloader.dataset.data_root': str(tmp_path / 'valid')})
    with pytest.raises(FileNotFoundError, match='prepare_div2k.py --no-div2k --valid PATH/TO/DIV2K_valid_HR'):
        DATASETS.build(cfg.val_dataloader.dataset)
