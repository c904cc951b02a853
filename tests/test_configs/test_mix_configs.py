"""configs/mix: every config parses and builds from mmagic's own base; every demo trains via tools/train.py."""
import os.path as osp
import sys

import mmagic
import pytest
import torch
from conftest import ROOT, demo_overrides, run_tool
from mmagic.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import panet_mm  # noqa: F401

# config -> (mmagic generator type, insertion sites (name, channels, layout))
FULL = {
    'edsr_pa_sr_x2_div2k.py': ('EDSRNet', [('after_body_7', 64, 'nchw')]),
    'rdn_pa_sr_x2_div2k.py': ('RDNNet', [('after_rdbs_7', 64, 'nchw')]),
    'swinir_pa_dn30_dfwb.py': ('SwinIRNet', [('after_layers_2', 180, 'tokens')]),
    'nafnet_pa_dn_sidd.py': ('NAFNet', [('after_middle_blks_5', 1024, 'nchw')]),
}
DEMO = {
    'edsr_pa_sr_x2_demo.py': ('EDSRNet', [('after_body_1', 32, 'nchw')]),
    'rdn_pa_sr_x2_demo.py': ('RDNNet', [('after_rdbs_1', 32, 'nchw')]),
    'swinir_pa_dn30_demo.py': ('SwinIRNet', [('after_layers_0', 24, 'tokens')]),
    'nafnet_pa_dn30_demo.py': ('NAFNet', [('after_middle_blks_0', 64, 'nchw')]),
}
CONFIGS = [f'configs/mix/{name}' for name in FULL] + [f'configs/mix/demo/{name}' for name in DEMO]


def expected(path):
    return {**FULL, **DEMO}[osp.basename(path)]


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('mmagic')


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses_and_builds(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert cfg.custom_imports == dict(imports=['panet_mm'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmagic'
    generator_type, sites = expected(path)
    assert cfg.model.type == 'BaseEditModel'
    assert cfg.model.generator.type == 'WithPyramidAttention'
    assert cfg.model.generator.generator.type == generator_type
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert [(s.name, s.channels, s.layout) for s in model.generator.sites] == sites


DEGRADATIONS = {'SeededGaussianNoise', 'RandomNoise', 'JPEGCompression', 'RandomJPEGCompression', 'RandomBlur'}


@pytest.mark.parametrize('path', CONFIGS)
def test_mmagic_inferencer_pipeline_degrades_nothing(path):
    """MMagicInferencer takes inference_pipeline, else demo_pipeline, test_pipeline, val_pipeline: the SwinIR
    denoising config had none but a test_pipeline adding seeded noise, so mmagic's inferencer noised the user's
    photo before denoising it."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    chosen = next(cfg[k] for k in ('inference_pipeline', 'demo_pipeline', 'test_pipeline', 'val_pipeline')
                  if cfg.get(k))
    assert not DEGRADATIONS & {t['type'] for t in chosen}, chosen


@pytest.mark.parametrize('name', list(FULL))
def test_full_configs_keep_mmagic_recipe(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mix', name))
    base = {
        'edsr_pa_sr_x2_div2k.py': 'edsr/edsr_x2c64b16_1xb16-300k_div2k.py',
        'rdn_pa_sr_x2_div2k.py': 'rdn/rdn_x2c64b16_1xb16-1000k_div2k.py',
        'swinir_pa_dn30_dfwb.py': 'swinir/swinir_s128w8d6e180_8xb1-lr2e-4-1600k_dfwb-colorDN25.py',
        'nafnet_pa_dn_sidd.py': 'nafnet/nafnet_c64eb2248mb12db2222_8xb8-lr1e-3-400k_sidd.py',
    }[name]
    mmagic_cfg = Config.fromfile(osp.join(osp.dirname(mmagic.__file__), '.mim', 'configs', base))
    for key in ('model.generator', 'model.pixel_loss', 'optim_wrapper', 'param_scheduler', 'train_cfg'):
        ours, theirs = cfg, mmagic_cfg
        for part in key.split('.'):
            ours, theirs = ours[part], theirs[part]
        if key == 'model.generator':
            ours = ours['generator']  # the wrapped generator is mmagic's, unchanged
        assert without_scope(ours) == without_scope(theirs), key


def without_scope(value):
    """A config value without the '_scope_' keys that mmengine adds to values from 'mmagic::' bases."""
    if isinstance(value, dict):
        return {k: without_scope(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [without_scope(v) for v in value]
    return value


def test_swinir_config_noise_is_sigma_30_everywhere():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mix/swinir_pa_dn30_dfwb.py'))
    noise = [t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'RandomNoise']
    assert [n['params']['gaussian_sigma'] for n in noise] == [[30, 30]]
    for loader in [cfg.val_dataloader] + list(cfg.test_dataloader):
        noise = [t for t in loader.dataset.pipeline if 'Noise' in t['type']]
        assert noise == [dict(type='SeededGaussianNoise', keys=['img'], sigma=30, seed=0)]
    assert cfg.val_cfg.type == 'MultiValLoop'


def test_demo_plain_variant_from_cfg_options():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mix/demo/edsr_pa_sr_x2_demo.py'))
    cfg.merge_from_dict({'model.generator.insert': []})
    torch.manual_seed(0)
    mixed_plain = MODELS.build(cfg.model.generator)
    torch.manual_seed(0)
    plain = MODELS.build(cfg.model.generator.generator)
    assert mixed_plain.sites == ()
    for (k1, v1), (k2, v2) in zip(mixed_plain.state_dict().items(), plain.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


def test_a_mixed_checkpoint_tested_under_a_plain_config_names_its_attention(demo_root, tmp_path):
    """The mixed model's checkpoint under the plain EDSR config: the error said "for another architecture, depth or
    scale ... load only what matches with allow_partial_load=True", which silently scores EDSR without its
    attention; it now names the inserted attention and the config to use."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mix/demo/edsr_pa_sr_x2_demo.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'mixed.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(experiment_name='edsr_pa_sr_x2_demo_20261206_050000')),
               ckpt)
    proc = run_tool([sys.executable, 'tools/test.py', 'configs/mix/demo/edsr_pa_sr_x2_demo.py', str(ckpt),
                     '--work-dir', str(tmp_path / 't')]
                    + demo_overrides(demo_root, **{'model.generator.insert': '[]'}), check=False)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error')]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert 'tensors of pyramid attention inserted into it (generator.attentions.after_body_1.' in errors[0]
    assert "run 'edsr_pa_sr_x2_demo_20261206_050000'" in errors[0]
    assert 'allow_partial_load=True would drop the attention' in errors[0]


def metric_keys(evaluator):
    """The keys an evaluator config reports ('Set5/PSNR', or 'PSNR' without a prefix)."""
    metrics = evaluator.get('metrics', []) if isinstance(evaluator, dict) else evaluator
    return [f"{m['prefix']}/{m['type']}" if m.get('prefix') else m['type'] for m in metrics]


def loaders(cfg):
    """(what, dataloader config) of the config's training, validation and test sets."""
    tests = cfg.test_dataloader if isinstance(cfg.test_dataloader, (list, tuple)) else [cfg.test_dataloader]
    return ([('train_dataloader', cfg.train_dataloader), ('val_dataloader', cfg.val_dataloader)]
            + [(f'test_dataloader[{i}]', loader) for i, loader in enumerate(tests)])


@pytest.mark.parametrize('name', ['edsr_pa_sr_x2_div2k.py', 'rdn_pa_sr_x2_div2k.py'])
def test_full_sr_configs_evaluate_y_with_crop_scale_on_the_papers_test_sets(name):
    """The paper's protocol (PA-EDSR 38.33 dB on Set5 is Y, crop = scale); mmagic's SR configs score RGB."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mix', name))
    evaluators = [cfg.val_evaluator] + list(cfg.test_evaluator)
    for evaluator in evaluators:
        assert evaluator['metrics'], evaluator
        for metric in evaluator['metrics']:
            assert metric['type'] in ('PSNR', 'SSIM') and metric['convert_to'] == 'Y', metric
            assert metric['crop_border'] == cfg.scale == 2, metric
    assert [e['metrics'][0]['prefix'] for e in cfg.test_evaluator] == ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']
    assert [d.dataset.data_root for d in cfg.test_dataloader] == [
        'data/Set5', 'data/Set14', 'data/B100', 'data/Urban100', 'data/Manga109']
    assert all(d.dataset.data_prefix == dict(img='LRbicx2', gt='GTmod12') for d in cfg.test_dataloader)


@pytest.mark.parametrize('name', ['swinir_pa_dn30_dfwb.py', 'nafnet_pa_dn_sidd.py'])
def test_full_denoising_configs_evaluate_rgb_without_crop(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mix', name))
    tests = cfg.test_evaluator if isinstance(cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
    for evaluator in [cfg.val_evaluator] + list(tests):
        for metric in (evaluator.get('metrics', []) if isinstance(evaluator, dict) else evaluator):
            assert not metric.get('convert_to') and not metric.get('crop_border'), metric


@pytest.mark.parametrize('path', CONFIGS)
def test_checkpoints_go_into_the_work_dir_and_save_best_names_a_validation_metric(path, tmp_path):
    """mmagic's out_dir='./work_dirs/' wrote a --work-dir /tmp/w/x run's checkpoints to ./work_dirs/x/."""
    from types import SimpleNamespace

    from mmengine.hooks import CheckpointHook
    from mmengine.logging import MMLogger

    cfg = Config.fromfile(osp.join(ROOT, path))
    hook_cfg = {k: v for k, v in cfg.default_hooks.checkpoint.items() if k not in ('type', '_scope_')}
    assert hook_cfg['save_best'] in metric_keys(cfg.val_evaluator), (hook_cfg['save_best'], cfg.val_evaluator)
    hook = CheckpointHook(**hook_cfg)
    work_dir = str(tmp_path / 'x')
    runner = SimpleNamespace(work_dir=work_dir, logger=MMLogger.get_instance('mix_ckpt_test'),
                             message_hub=SimpleNamespace(runtime_info={}))
    hook.before_train(runner)  # where the hook writes, as in a training run
    assert hook.out_dir == work_dir


@pytest.mark.parametrize('path', CONFIGS)
def test_missing_data_names_a_command_or_the_layout(path, tmp_path, monkeypatch):
    """mmagic's BasicImageDataset stopped with a bare '[Errno 2] ... data/denoising_gaussian_test/CBSD68'."""
    from mmagic.registry import DATASETS

    from panet_mm.datasets.checked_image_dataset import runnable_command
    cfg = Config.fromfile(osp.join(ROOT, path))
    monkeypatch.chdir(tmp_path)  # no data/ here: every relative data_root is missing
    for what, loader in loaders(cfg):
        dataset = dict(loader.dataset)
        assert dataset['type'] == 'CheckedImageDataset', what
        cmd = dataset['prepare_cmd']
        assert cmd.startswith('python ') or 'data/' in cmd, (what, cmd)
        if 'demo' not in path:
            assert 'PATH' in cmd or 'DIR' in cmd or 'data/' in cmd, (what, cmd)  # names what to give
        with pytest.raises(FileNotFoundError) as err:
            DATASETS.build(dataset)
        message = str(err.value)
        assert 'does not exist' in message and 'prepare it with: ' in message and '\n' not in message, message
        assert message.endswith('prepare it with: ' + runnable_command(cmd)), message


def test_prepare_testsets_commands_name_a_flag_of_the_tool_for_the_folder_read():
    """The val / test sets of the SR and SwinIR configs: prepare_testsets.py --{set} writes data/{Set}."""
    import re

    proc = run_tool([sys.executable, 'tools/dataset_converters/prepare_testsets.py', '--help'])
    for name in ('edsr_pa_sr_x2_div2k.py', 'rdn_pa_sr_x2_div2k.py', 'swinir_pa_dn30_dfwb.py'):
        cfg = Config.fromfile(osp.join(ROOT, 'configs/mix', name))
        for what, loader in loaders(cfg)[1:]:
            m = re.match(r'python tools/dataset_converters/prepare_testsets.py (--\w+) PATH/TO/(\w+)',
                         loader.dataset.prepare_cmd)
            assert m and m.group(1) in proc.stdout, (name, what, loader.dataset.prepare_cmd)
            assert m.group(1) == '--' + m.group(2).lower() and loader.dataset.data_root == f'data/{m.group(2)}'


def short(demo_root, iters=2):
    return demo_overrides(demo_root, **{
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters, 'default_hooks.checkpoint.interval': iters,
        'default_hooks.logger.interval': 1, 'val_dataloader.dataset.indices': [1]})


@pytest.mark.slow
@pytest.mark.parametrize('name', list(DEMO))
def test_demo_trains(name, demo_root, tmp_path):
    work = tmp_path / 'work'
    proc = run_tool([sys.executable, 'tools/train.py', f'configs/mix/demo/{name}', '--work-dir', str(work)]
                    + short(demo_root), env={'OMP_NUM_THREADS': '2'})
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log and 'Set5/PSNR' in log
    state = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    site = expected(name)[1][0][0]
    assert any(k.startswith(f'generator.attentions.{site}.') for k in state)
    # the checkpoint loads strictly into a model built from the same config, under the generator's own names
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mix/demo', name))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(work / 'iter_2.pth'), map_location='cpu', strict=True)
    plain_names = [f'generator.{k}' for k in model.generator.wrapped.state_dict() if not k.startswith('attentions.')]
    assert set(plain_names) < set(state)


@pytest.mark.parametrize('name, stride, min_size', [('edsr_pa_sr_x2_demo.py', 1.0, 2), ('rdn_pa_sr_x2_demo.py', 1.0, 2),
                                                    ('swinir_pa_dn30_demo.py', 1.0, 8),
                                                    ('nafnet_pa_dn30_demo.py', 4.0, 8)])
def test_mixed_models_restore_tiny_photos_and_take_test_time_modes(name, stride, min_size, tmp_path):
    """Restoring a mixed model (mmagic's BaseEditModel) runs it as PANetEditModel: inputs too small for the attention
    at its resolution (NAFNet's middle: 1/4) or for SwinIR's window padding are padded (a 4x4 photo stopped with
    'input of size (1, 1) is too small for a pyramid level', a 3x5 one in SwinIR's reflection padding), and --tile
    is taken (refused before, while the slow-photo note suggested it)."""
    import cv2
    import numpy as np
    from conftest import save_runner_checkpoint

    from panet_mm.apis import build_restorer
    config = osp.join(ROOT, 'configs', 'mix', 'demo', name)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    assert model.generator.sites[0].input_per_pixel == stride
    checkpoint = str(save_runner_checkpoint(model, tmp_path / 'model.pth'))
    scale = 2 if '_sr_' in name else 1
    for h, w in ((1, 1), (3, 5), (4, 4), (9, 13)):
        photo = np.random.RandomState(h).randint(0, 256, (h, w, 3)).astype(np.uint8)
        cv2.imwrite(str(tmp_path / 'in.png'), photo)
        restorer = build_restorer(config, checkpoint, device='cpu')
        assert restorer.model.min_input_size == min_size
        out = restorer(img=str(tmp_path / 'in.png'))
        assert out.shape == (h * scale, w * scale, 3), (name, h, w)
    tiled = build_restorer(config, checkpoint, device='cpu', tile=dict(size=8, overlap=2))
    assert tiled(img=str(tmp_path / 'in.png')).shape == (9 * scale, 13 * scale, 3)


def test_test_time_keys_on_a_mixed_config_switch_to_panet_edit_model_with_a_note(tmp_path, capsys):
    """tools/test.py ... --cfg-options model.test_cfg.precision=bf16 on a mixed model measured the float32 model:
    mmagic's BaseEditModel ignores those keys."""
    import argparse

    from panet_mm.engine.cli import load_config
    config = osp.join(ROOT, 'configs', 'mix', 'demo', 'rdn_pa_sr_x2_demo.py')

    def load(*options):
        args = argparse.Namespace(config=config, work_dir=str(tmp_path), cfg_options=list(options) or None,
                                  launcher='none', local_rank=0)
        return load_config(args)

    cfg = load()
    assert cfg.model.type == 'BaseEditModel' and 'note:' not in capsys.readouterr().err
    cfg = load('model.test_cfg.precision=bf16', 'model.test_cfg.tile.size=16')
    assert cfg.model.type == 'PANetEditModel' and dict(cfg.model.test_cfg) == dict(precision='bf16', tile=dict(size=16))
    err = capsys.readouterr().err
    assert err.startswith("note: model.test_cfg sets ['precision', 'tile'], which mmagic's BaseEditModel ignores: the "
                          'model runs as PANetEditModel') and "other test_cfg keys ['crop_border', 'metrics']" in err
    model = MODELS.build(cfg.model)
    assert model.precision == 'bf16' and model.tile_cfg['size'] == (16, 16)


def test_resuming_a_fine_tune_does_not_need_its_plain_weights_any_more(demo_root, tmp_path):
    """A fine-tune from plain_weights resumed with --resume after the plain checkpoint was moved stopped with
    "checkpoint '...' not found": the resume replaces every weight, so the start point is not read then."""
    from conftest import save_runner_checkpoint
    from mmagic.models.editors import EDSRNet
    config = osp.join(ROOT, 'configs', 'mix', 'demo', 'edsr_pa_sr_x2_demo.py')
    inner = dict(Config.fromfile(config).model.generator.generator)
    inner.pop('type')
    plain = torch.nn.Module()
    plain.generator = EDSRNet(**inner)
    start = save_runner_checkpoint(plain, tmp_path / 'plain_edsr.pth')
    work = tmp_path / 'work'
    opts = demo_overrides(demo_root, **{'train_cfg.max_iters': 2, 'train_cfg.val_interval': 100,
                                        'default_hooks.checkpoint.interval': 2,
                                        'model.generator.plain_weights.checkpoint': str(start),
                                        'model.generator.plain_weights.prefix': 'generator.'})
    run_tool([sys.executable, 'tools/train.py', config, '--work-dir', str(work)] + opts, timeout=600)
    start.rename(tmp_path / 'moved.pth')
    longer = [o.replace('train_cfg.max_iters=2', 'train_cfg.max_iters=3') for o in opts]
    proc = run_tool([sys.executable, 'tools/train.py', config, '--work-dir', str(work), '--resume'] + longer,
                    timeout=600)
    log = sorted(work.glob('*/*.log'))[-1].read_text()
    assert 'plain_weights are not read' in log and 'resumed epoch: 0, iter: 2' in log
    assert (work / 'iter_3.pth').is_file() and proc.returncode == 0
    proc = run_tool([sys.executable, 'tools/train.py', config, '--work-dir', str(tmp_path / 'new')] + opts,
                    timeout=600, check=False)  # a new run still needs its start point, and says which file
    assert proc.returncode == 1 and 'moved' not in proc.stderr and 'plain_edsr.pth' in proc.stderr
