"""configs/_base_/datasets/sr_testsets.py: the five SR benchmarks at x2/x3/x4, Y channel, crop = scale, prefixes."""
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
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/sr_testsets.py'))
    # every name carries the scale (no clash with a config's own keys); the sets' names are shared
    assert set(cfg.keys()) == {'sr_sets'} | {f'sr_x{s}_test_{kind}' for s in (2, 3, 4)
                                             for kind in ('dataloader', 'evaluator')}
    loaders, evaluators = cfg[f'sr_x{scale}_test_dataloader'], cfg[f'sr_x{scale}_test_evaluator']
    assert [osp.basename(d.dataset.data_root) for d in loaders] == SETS
    for name, loader, evaluator in zip(SETS, loaders, evaluators):
        assert loader.dataset.data_prefix == dict(img=f'LRbicx{scale}', gt='GTmod12')
        assert [(m.type, m.prefix, m.crop_border, m.convert_to) for m in evaluator.metrics] == [
            ('PSNR', name, scale, 'Y'), ('SSIM', name, scale, 'Y')]
        assert f'--{name.lower()} ' in loader.dataset.prepare_cmd
    cfg = Config(dict(test_dataloader=loaders))
    cfg.merge_from_dict(point_testsets_at(cfg, tiny_testsets))
    for loader in cfg.test_dataloader:
        shapes = sorted((tuple(item['data_samples'].gt_img.shape), tuple(item['inputs'].shape))
                        for item in DATASETS.build(loader.dataset))
        assert shapes == [((3, h, w), (3, h // scale, w // scale)) for h, w in ((24, 36), (24, 36), (36, 48))]


def test_all_scales_in_one_base_chain(tmp_path):
    """An SR config at x3 inherits the x2 config (with the test-set base) and finds the x3 lists there."""
    base = osp.join(ROOT, 'configs/_base_/datasets')
    (tmp_path / 'x2.py').write_text(f"_base_ = ['{base}/sr_testsets.py']\n"
                                    'test_dataloader = _base_.sr_x2_test_dataloader\n')
    (tmp_path / 'x3.py').write_text("_base_ = ['./x2.py']\n"
                                    'test_dataloader = _base_.sr_x3_test_dataloader\n'
                                    'test_evaluator = _base_.sr_x3_test_evaluator\n')
    cfg = Config.fromfile(str(tmp_path / 'x3.py'))
    assert [d.dataset.data_prefix.img for d in cfg.test_dataloader] == ['LRbicx3'] * 5
    assert [e.metrics[0].crop_border for e in cfg.test_evaluator] == [3] * 5
