"""configs/_base_/datasets/sr_testsets.py and the SR configs: the five SR benchmarks at x2/x3/x4, Y channel,
crop = scale, prefixes, and nothing else in the config."""
import os.path as osp

import pytest
from conftest import ROOT, point_testsets_at, write_tiny_images
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
    assert set(base.keys()) == {'test_dataloader', 'test_evaluator', 'sr_test_crop'} and base.sr_test_crop == '12'
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


@pytest.mark.parametrize('scale', [2, 3])
def test_sr_test_crop_scale_scores_the_released_test_data(scale, tmp_path):
    """sr_test_crop=scale: every SR test set reads GTmod{s} / LRbicx{s}_GTmod{s} (the paper's test data, a 28x37
    image keeps 28x36 at x2, not GTmod12's 24x36), and a missing set's hint is the command that writes it."""
    from panet_mm.datasets.testsets import TestSetOptions, process_sr
    from panet_mm.engine.cli import read_tool_config

    src = write_tiny_images(tmp_path / 'src', sizes=((28, 37), ))
    options = TestSetOptions(scales=(scale, ), sr_crops=('scale', ))
    for name in SETS:
        process_sr((str(src / 'img_1.png'), 'img_1'), str(tmp_path / 'data' / name), options)
    cfg = read_tool_config(osp.join(ROOT, f'configs/panet_sr_x{scale}_div2k.py'), ['sr_test_crop=scale'])
    for loader in cfg.test_dataloader:
        assert loader.dataset.data_prefix == dict(img=f'LRbicx{scale}_GTmod{scale}', gt=f'GTmod{scale}')
        assert f'prepare_testsets.py --sr-crop scale --scales {scale} --' in loader.dataset.prepare_cmd
    cfg.merge_from_dict(point_testsets_at(cfg, tmp_path / 'data'))
    init_default_scope('mmagic')
    h, w = 28 // scale * scale, 37 // scale * scale
    for loader in cfg.test_dataloader:
        (item, ) = DATASETS.build(loader.dataset)
        assert tuple(item['data_samples'].gt_img.shape) == (3, h, w)
        assert tuple(item['inputs'].shape) == (3, h // scale, w // scale)
    assert read_tool_config(osp.join(ROOT, f'configs/panet_sr_x{scale}_div2k.py'),
                            ['sr_test_crop=12']).test_dataloader[0].dataset.data_prefix.gt == 'GTmod12'
    # a run's saved config holds the rewritten folders: it reads again, either way
    saved = tmp_path / 'saved.py'
    cfg.dump(str(saved))
    again = read_tool_config(str(saved))
    assert [d.dataset.data_prefix for d in again.test_dataloader] == \
        [d.dataset.data_prefix for d in cfg.test_dataloader]
    back = read_tool_config(str(saved), ['sr_test_crop=12']).test_dataloader[0].dataset
    assert back.data_prefix == dict(img=f'LRbicx{scale}', gt='GTmod12') and '--sr-crop' not in back.prepare_cmd


def test_sr_test_crop_on_a_demo_config_hints_the_tool_that_writes_the_folders():
    """The demo configs' hint is make_demo_data.py, which writes GTmod12 only: under sr_test_crop=scale it became
    a command that could not write the folder it was asked for."""
    from panet_mm.engine.cli import read_tool_config
    cfg = read_tool_config(osp.join(ROOT, 'configs/demo/panet_sr_x2_demo.py'), ['sr_test_crop=scale'])
    assert cfg.test_dataloader.dataset.prepare_cmd.startswith(
        'python tools/dataset_converters/prepare_testsets.py --sr-crop scale --scales 2 --set5 PATH/TO/Set5/HR')


@pytest.mark.parametrize('config,option,message', [
    ('configs/panet_sr_x2_div2k.py', 'sr_test_crop=paper', "sr_test_crop='paper': use '12'"),
    ('configs/panet_dn_sigma30_div2k.py', 'sr_test_crop=scale', 'this config has none; drop it'),
])
def test_sr_test_crop_refusals(config, option, message):
    from panet_mm.engine.cli import read_tool_config
    with pytest.raises(SystemExit, match=message):
        read_tool_config(osp.join(ROOT, config), [option])
