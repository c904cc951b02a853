"""configs/_base_/datasets/sr_testsets.py and the SR configs: the five SR benchmarks at x2/x3/x4, Y channel,
crop = scale, prefixes, and nothing else in the config."""
import os.path as osp

import pytest
from conftest import ROOT, point_testsets_at
from mmagic.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import panet_mm  # noqa: F401

SETS = ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_sr_testsets(scale, tiny_testsets):
    init_default_scope('mmagic')
    base = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/sr_testsets.py'))
    # the base is the config keys themselves (its helper functions are not keys): nothing unused is logged
    assert set(base.keys()) == {'test_dataloader', 'test_evaluator'}
    cfg = Config.fromfile(osp.join(ROOT, f'configs/panet_sr_x{scale}_div2k.py'), import_custom_modules=False)
    loaders, evaluators = cfg.test_dataloader, cfg.test_evaluator
    assert [osp.basename(d.dataset.data_root) for d in loaders] == SETS
    for name, loader, evaluator in zip(SETS, loaders, evaluators):
        assert loader.dataset.data_prefix == dict(img=f'LRbicx{scale}', gt='GTmod12')
        assert [(m.type, m.prefix, m.crop_border, m.convert_to) for m in evaluator.metrics] == [
            ('PSNR', name, scale, 'Y'), ('SSIM', name, scale, 'Y')]
        assert f'--{name.lower()} ' in loader.dataset.prepare_cmd
    # the logged config names no other scale's test sets
    others = {f'LRbicx{s}' for s in (2, 3, 4)} - {f'LRbicx{scale}'}
    assert not any(o in cfg.pretty_text for o in others)
    cfg = Config(dict(test_dataloader=loaders))
    cfg.merge_from_dict(point_testsets_at(cfg, tiny_testsets))
    for loader in cfg.test_dataloader:
        shapes = sorted((tuple(item['data_samples'].gt_img.shape), tuple(item['inputs'].shape))
                        for item in DATASETS.build(loader.dataset))
        assert shapes == [((3, h, w), (3, h // scale, w // scale)) for h, w in ((24, 36), (24, 36), (36, 48))]
