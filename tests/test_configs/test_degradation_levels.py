"""The denoising / JPEG model configs set sigma / quality over a shared base (configs/_base_/panet_{dn,car}_div2k.py):
every degradation and every prepared-input folder of the built config carries the model's own value. mmengine
evaluates a base before its child, so a pipeline or loader built in the base keeps the base's value (None) unless
the model config rebuilds it."""
import os.path as osp
import re

import pytest
from conftest import ROOT
from mmengine.config import Config

# per task: the training degradation, its on-the-fly test twin, the prepared-input folder
TASKS = {
    'sigma': dict(train='RandomNoise', fallback='SeededGaussianNoise', folder='noisy_sigma'),
    'quality': dict(train='RandomJPEGCompression', fallback='JPEGCompression', folder='jpeg_q'),
}
LEVEL = {  # where each degradation keeps its level
    'RandomNoise': lambda t: t['params']['gaussian_sigma'],
    'SeededGaussianNoise': lambda t: t['sigma'],
    'RandomJPEGCompression': lambda t: t['params']['quality'],
    'JPEGCompression': lambda t: t['quality'],
}
PAPER = [f'configs/panet_dn_sigma{s}_div2k.py' for s in (10, 30, 50, 70)] + [
    f'configs/panet_car_q{q}_div2k.py' for q in (10, 20, 30, 40)]
DEMOS = ['configs/demo/panet_dn_sigma30_demo.py', 'configs/demo/panet_car_q10_demo.py']


def level_of(path):
    """('sigma', 30) for panet_dn_sigma30_*.py, ('quality', 10) for panet_car_q10_*.py."""
    m = re.search(r'_(dn_sigma|car_q)(\d+)_', osp.basename(path))
    return ('sigma' if m.group(1) == 'dn_sigma' else 'quality'), int(m.group(2))


def walk(node, where='cfg'):
    """(where, value) of every dict, list item and string in a built config."""
    yield where, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f'{where}.{k}')
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from walk(v, f'{where}[{i}]')


def wrong_levels(cfg, name, value):
    """Every place of the built config whose degradation level or input folder is not ``value``."""
    folder = TASKS[name]['folder']
    wrong = [] if cfg[name] == value else [(name, cfg[name])]
    for where, node in walk(cfg.to_dict()):
        if isinstance(node, dict) and node.get('type') in LEVEL:
            level = LEVEL[node['type']](node)
            if level not in (value, [value, value]):
                wrong.append((where, level))
        elif isinstance(node, str) and folder in node and node != f'{folder}{value}':
            wrong.append((where, node))
    return wrong


@pytest.mark.parametrize('path', PAPER + DEMOS)
def test_every_degradation_carries_the_configs_level(path):
    name, value = level_of(path)
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert wrong_levels(cfg, name, value) == []
    if path in DEMOS:
        return
    # and each place that has one is there: training, the on-the-fly fallback, every test set, the validation
    task = TASKS[name]
    for pipeline in (cfg.train_pipeline, cfg.train_dataloader.dataset.pipeline):
        assert [t['type'] for t in pipeline].count(task['train']) == 1
    assert [t['type'] for t in cfg.test_pipeline_on_the_fly].count(task['fallback']) == 1
    for loader in cfg.test_dataloader:
        assert loader.dataset.data_prefix.img == f"{task['folder']}{value}"
    # validation (DIV2K 801-810): the clean image degraded on the fly at the model's level
    assert [t['type'] for t in cfg.val_dataloader.dataset.pipeline].count(task['fallback']) == 1
    assert cfg.experiment_name == osp.splitext(osp.basename(path))[0] and cfg.work_dir.endswith(cfg.experiment_name)


@pytest.mark.parametrize('base, name', [('panet_dn_div2k.py', 'sigma'), ('panet_car_div2k.py', 'quality')])
def test_a_child_that_only_sets_the_level_is_caught(base, name, tmp_path):
    """The trap the model configs avoid: redefining the variable does not reach what the base built from it."""
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{ROOT}/configs/_base_/{base}']\n{name} = 10\n")
    cfg = Config.fromfile(str(child))
    wrong = wrong_levels(cfg, name, 10)
    assert wrong and all('dataloader' in where for where, _ in wrong)  # the base's test loaders
