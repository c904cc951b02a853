"""The denoising, demosaicing and JPEG configs: the paper's recipe and evaluation protocol, read from the built
config; every generator, training set and test set builds (demo data / tiny prepared sets standing in)."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import ROOT, point_testsets_at
from mmagic.registry import DATASETS, METRICS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

import panet_mm  # noqa: F401

COLOUR_SETS = ['Kodak24', 'CBSD68', 'McMaster', 'Urban100']
GREY_SETS = ['LIVE1', 'Classic5']
PAPER = {}
for s in (10, 30, 50, 70):
    PAPER[f'configs/panet_dn_sigma{s}_div2k.py'] = dict(
        channels=3, sets=COLOUR_SETS, img_dir=f'noisy_sigma{s}', gt_dir='GT',
        train=('RandomNoise', lambda t, s=s: t['params']['gaussian_sigma'] == [s, s]
               and t['params']['noise_prob'] == [1.0] and t['params']['gaussian_gray_noise_prob'] == 0),
        fallback=('SeededGaussianNoise', lambda t, s=s: t['sigma'] == s and t['seed'] == 0))
for q in (10, 20, 30, 40):
    PAPER[f'configs/panet_car_q{q}_div2k.py'] = dict(
        channels=1, sets=GREY_SETS, img_dir=f'jpeg_q{q}', gt_dir='GT_gray',
        train=('RandomJPEGCompression',
               lambda t, q=q: t['params']['quality'] == [q, q] and t['color_type'] == 'grayscale'),
        fallback=('JPEGCompression', lambda t, q=q: t['quality'] == q))
PAPER['configs/panet_demosaic_div2k.py'] = dict(
    channels=3, sets=['McMaster', 'Kodak24', 'CBSD68', 'Urban100'], img_dir='mosaic_grbg', gt_dir='GT',
    train=('BayerMosaic', lambda t: t['pattern'] == 'GRBG'), fallback=('BayerMosaic', lambda t: t['pattern'] == 'GRBG'))
DEMOS = {
    'configs/demo/panet_dn_sigma30_demo.py': 'configs/panet_dn_sigma30_div2k.py',
    'configs/demo/panet_car_q10_demo.py': 'configs/panet_car_q10_div2k.py',
    'configs/demo/panet_demosaic_demo.py': 'configs/panet_demosaic_div2k.py',
}


def load(path):
    init_default_scope('mmagic')
    return Config.fromfile(osp.join(ROOT, path))


def types(pipeline):
    return [t['type'] for t in pipeline]


def only(pipeline, name):
    found = [t for t in pipeline if t['type'] == name]
    assert len(found) == 1, (name, types(pipeline))
    return found[0]


@pytest.mark.parametrize('path', sorted(PAPER))
def test_paper_recipe(path):
    spec, cfg = PAPER[path], load(path)
    assert cfg.model.type == 'PANetEditModel'
    # demosaicing: chop / tile start at even offsets (the Bayer phase kept); the others: whole image, no options
    assert cfg.model.test_cfg == (dict(align=2) if 'demosaic' in path else {})
    gen = cfg.model.generator
    assert (gen.type, gen.mid_channels, gen.num_blocks, gen.rgb_range) == ('PANet', 64, 80, 255)
    assert gen.in_channels == gen.out_channels == spec['channels']
    assert gen.attention_cfg == dict(reduction=2, levels=5, softmax_scale=10, res_scale=1.0)
    assert len(cfg.model.data_preprocessor.mean) == len(cfg.model.data_preprocessor.std) == spec['channels']
    assert cfg.model.pixel_loss.type == 'L1Loss'
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, tuple(opt.betas), opt.eps) == ('Adam', 1e-4, (0.9, 0.999), 1e-8)
    assert cfg.param_scheduler.milestones == [200000, 400000, 600000, 800000] and cfg.param_scheduler.gamma == 0.5
    assert cfg.train_cfg.max_iters == 1000000 and cfg.train_dataloader.batch_size == 16
    assert cfg.train_dataloader.dataset.data_prefix == dict(gt='DIV2K_train_HR_sub')
    assert cfg.train_dataloader.dataset.ann_file == 'meta_info_DIV2K800sub_GT.txt'

    pipe = cfg.train_dataloader.dataset.pipeline
    names = types(pipe)
    crop = only(pipe, 'Crop')
    assert tuple(crop.crop_size) == (48, 48) and crop.random_crop and crop['keys'] == ['gt']
    assert [t.direction for t in pipe if t['type'] == 'Flip'] == ['horizontal', 'vertical']
    assert 'RandomTransposeHW' in names
    degrade, check = spec['train']
    # the clean patch is cropped and augmented first, then copied and degraded, then packed
    assert names.index('RandomTransposeHW') < names.index('CopyValues') < names.index(degrade) < names.index(
        'PackInputs') == len(names) - 1
    assert check(only(pipe, degrade))
    assert ('GrayOrY' in names) == (spec['channels'] == 1)
    fallback, check = spec['fallback']
    assert check(only(cfg.test_pipeline_on_the_fly, fallback))


@pytest.mark.parametrize('path', sorted(PAPER))
def test_paper_evaluation_protocol(path):
    spec, cfg = PAPER[path], load(path)
    assert cfg.val_cfg.type == 'MultiValLoop' and cfg.test_cfg.type == 'MultiTestLoop'
    sets = spec['sets']
    assert [osp.basename(d.dataset.data_root) for d in cfg.test_dataloader] == sets
    assert len(cfg.test_evaluator) == len(sets)
    for name, loader, evaluator in zip(sets, cfg.test_dataloader, cfg.test_evaluator):
        assert loader.dataset.data_root == f'data/{name}'
        assert loader.dataset.data_prefix == dict(img=spec['img_dir'], gt=spec['gt_dir'])
        assert loader.dataset.type == 'CheckedImageDataset'
        assert f'tools/dataset_converters/prepare_testsets.py --{name.lower()} ' in loader.dataset.prepare_cmd
        assert [(m.type, m.prefix, m.crop_border, m.get('convert_to')) for m in evaluator.metrics] == [
            ('PSNR', name, 0, None), ('SSIM', name, 0, None)]
    # validation: DIV2K 801-810 (tests/test_configs/test_validation_sets.py), never a test set; its prefixed PSNR
    # picks the best checkpoint
    assert cfg.val_dataloader.dataset.data_root == 'data/DIV2K/valid'
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_pipeline_on_the_fly
    assert [(m.type, m.prefix, m.crop_border, m.get('convert_to')) for m in cfg.val_evaluator.metrics] == [
        ('PSNR', 'DIV2K', 0, None), ('SSIM', 'DIV2K', 0, None)]
    assert cfg.default_hooks.checkpoint.save_best == 'DIV2K/PSNR'
    assert cfg.default_hooks.checkpoint.rule == 'greater'
    # MMagicInferencer: loads only the input image
    inf = cfg.inference_pipeline
    assert inf[0]['type'] == 'LoadImageFromFile' and inf[0]['key'] == 'img' and inf[-1]['type'] == 'PackInputs'
    assert 'gt' not in str(inf)


@pytest.mark.parametrize('path', sorted(PAPER))
def test_paper_config_builds(path, demo_root, tiny_testsets):
    spec, cfg = PAPER[path], load(path)
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': f'{demo_root}/DIV2K',
                         **point_testsets_at(cfg, tiny_testsets)})
    gen = MODELS.build(cfg.model.generator)
    assert gen.conv_first.in_channels == gen.conv_last.out_channels == spec['channels'] and len(gen.body) == 81
    train = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(train) == 235
    np.random.seed(0)
    item = train[0]
    assert item['inputs'].shape == item['data_samples'].gt_img.shape == (spec['channels'], 48, 48)
    for loader in cfg.test_dataloader:
        ds = DATASETS.build(loader.dataset)
        shapes = []
        for item in ds:
            assert item['inputs'].shape == item['data_samples'].gt_img.shape
            shapes.append(tuple(item['inputs'].shape))
        assert sorted(shapes) == [(spec['channels'], 24, 36), (spec['channels'], 28, 37), (spec['channels'], 37, 49)]


@pytest.mark.parametrize('path', ['configs/panet_dn_sigma30_div2k.py', 'configs/panet_car_q10_div2k.py',
                                  'configs/panet_demosaic_div2k.py'])
def test_val_step_and_metrics_end_to_end(path, tiny_testsets):
    """A tiny generator restores every test set of the config through mmagic's pre-processor and metrics."""
    cfg = load(path)
    cfg.merge_from_dict(point_testsets_at(cfg, tiny_testsets))
    cfg.model.generator.update(mid_channels=8, num_blocks=2)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    for loader, evaluator in zip(cfg.test_dataloader, cfg.test_evaluator):
        ds = DATASETS.build(loader.dataset)
        batch = pseudo_collate([ds[0]])
        with torch.no_grad():
            outputs = model.val_step(batch)
        pred = outputs[0].output.pred_img
        assert pred.shape == outputs[0].gt_img.shape == ds[0]['inputs'].shape
        for metric_cfg in evaluator.metrics:
            metric = METRICS.build(metric_cfg)
            metric.process(batch, [o.to_dict() for o in outputs])
            value = metric.compute_metrics(metric.results)[metric_cfg.type]
            assert math.isfinite(value) and value > 0


@pytest.mark.parametrize('demo', sorted(DEMOS))
def test_demo_configs(demo):
    cfg, paper = load(demo), load(DEMOS[demo])
    gen = cfg.model.generator
    assert gen.mid_channels <= 32 and gen.num_blocks <= 4
    assert gen.in_channels == paper.model.generator.in_channels
    assert cfg.model.test_cfg == paper.model.test_cfg
    # about a minute on 2 CPU cores (tools/analysis_tools/quick_quality.py measures it): 300 iterations, 600 for
    # demosaicing
    assert cfg.train_cfg.max_iters <= (600 if 'demosaic' in demo else 300)
    assert cfg.train_dataloader.dataset.data_root == 'data/demo/DIV2K'
    assert cfg.train_dataloader.dataset.prepare_cmd == 'python tools/dataset_converters/make_demo_data.py'
    assert cfg.optim_wrapper.optimizer.type == 'Adam' and cfg.model.pixel_loss.type == 'L1Loss'
    # the same degradation as the paper config, in training and (on the fly) in validation
    train_types = [t for t in types(cfg.train_dataloader.dataset.pipeline) if t not in ('Crop', )]
    assert train_types == [t for t in types(paper.train_dataloader.dataset.pipeline) if t != 'Crop']
    fallback = paper.test_pipeline_on_the_fly[-2]
    assert cfg.val_dataloader.dataset.pipeline[-2] == fallback
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.data_root == 'data/demo/Set5' and loader.dataset.data_prefix == dict(gt='GTmod12')
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert [(m.type, m.prefix, m.crop_border) for m in evaluator.metrics] == [('PSNR', 'Set5', 0),
                                                                                  ('SSIM', 'Set5', 0)]
    assert cfg.default_hooks.checkpoint.save_best == 'Set5/PSNR'
    assert cfg.inference_pipeline == paper.inference_pipeline


def test_inference_pipelines(tiny_testsets):
    """What MMagicInferencer / tools/restore.py feed the models: the degraded file as the model takes it."""
    from mmengine.dataset import Compose

    from panet_mm.datasets.transforms import bayer_mosaic, gray_or_y

    init_default_scope('mmagic')
    photo = f'{tiny_testsets}/Kodak24/GT/img_1.png'
    rgb = Compose([dict(type='LoadImageFromFile', key='img', channel_order='rgb')])(dict(img_path=photo))['img']

    def run(path, config):
        return Compose(load(config).inference_pipeline)(dict(img_path=path))['inputs'].numpy().transpose(1, 2, 0)

    noisy = f'{tiny_testsets}/Kodak24/noisy_sigma30/img_1.png'
    assert run(noisy, 'configs/panet_dn_sigma30_div2k.py').shape == rgb.shape
    # demosaicing: a prepared mosaic passes unchanged, a photo is mosaicked first
    mosaic = f'{tiny_testsets}/Kodak24/mosaic_grbg/img_1.png'
    assert np.array_equal(run(mosaic, 'configs/panet_demosaic_div2k.py'), bayer_mosaic(rgb))
    assert np.array_equal(run(photo, 'configs/panet_demosaic_div2k.py'), bayer_mosaic(rgb))
    # JPEG: grey files stay grey, colour files become their Y channel
    grey = f'{tiny_testsets}/LIVE1/jpeg_q10/img_1.png'
    grey_img = Compose([dict(type='LoadImageFromFile', key='img', color_type='grayscale')])(dict(img_path=grey))['img']
    assert np.array_equal(run(grey, 'configs/panet_car_q40_div2k.py'), grey_img)
    assert np.array_equal(run(photo, 'configs/panet_car_q10_div2k.py'), gray_or_y(rgb))
