"""SaveMetricsHook: the test metrics in a file after the test epoch (tools/test.py --out), written atomically."""
import json

import numpy as np
import pytest
import yaml
from mmengine.registry import HOOKS

import panet_mm  # noqa: F401  (registers the hook)


def test_built_from_a_config_dict_and_writes_the_metrics(tmp_path):
    out = tmp_path / 'metrics.json'
    hook = HOOKS.build(dict(type='SaveMetricsHook', out=str(out)))
    assert hook.priority == 'LOWEST'
    hook.after_test_epoch(runner=None, metrics=None)   # a run without metrics writes nothing
    assert not out.exists()
    hook.after_test_epoch(runner=None, metrics={'Set5/PSNR': 30.5, 'Set5/SSIM': 0.9})
    assert json.loads(out.read_text()) == {'Set5/PSNR': 30.5, 'Set5/SSIM': 0.9}


def test_the_extension_picks_the_format_and_numpy_numbers_are_plain(tmp_path):
    """mmagic's metrics are numpy floats: YAML tagged them as Python objects that ``yaml.safe_load`` refuses."""
    out = tmp_path / 'metrics.yaml'
    HOOKS.build(dict(type='SaveMetricsHook', out=str(out))).after_test_epoch(
        None, {'PSNR': np.float64(31.25), 'SSIM': np.float32(0.5), 'n': 3})
    assert yaml.safe_load(out.read_text()) == {'PSNR': 31.25, 'SSIM': 0.5, 'n': 3}


def test_mmagic_metrics_that_return_tensors_are_written_as_numbers(tmp_path):
    """mmagic's MAE (in its stock SR evaluators) returns a 0-dim tensor, which JSON cannot write: the test run ended
    in a TypeError after the whole evaluation, and no file."""
    import torch
    from mmagic.registry import METRICS
    from mmagic.structures import DataSample
    from mmengine.registry import init_default_scope

    init_default_scope('mmagic')
    mae = METRICS.build(dict(type='MAE', prefix='Set5'))
    sample = DataSample(gt_img=torch.full((3, 4, 4), 100.)).to_dict()
    sample['output'] = DataSample(pred_img=torch.full((3, 4, 4), 151.)).to_dict()
    mae.process([dict(inputs=torch.zeros(3, 4, 4))], [sample])
    mae.size = 1                                      # what the loop's prepare() sets
    metrics = dict(mae.evaluate(), PSNR=np.float64(30.0), vector=torch.tensor([1.0, 2.0]))
    assert isinstance(metrics['Set5/MAE'], torch.Tensor)
    out = tmp_path / 'metrics.json'
    HOOKS.build(dict(type='SaveMetricsHook', out=str(out))).after_test_epoch(None, metrics)
    written = json.loads(out.read_text())
    assert written == {'Set5/MAE': pytest.approx(0.2), 'PSNR': 30.0, 'vector': [1.0, 2.0]}


def test_pickle_and_missing_folders_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    import pickle

    import panet_mm.utils.fileio as fileio
    out = tmp_path / 'new' / 'metrics.pkl'
    HOOKS.build(dict(type='SaveMetricsHook', out=str(out))).after_test_epoch(None, {'PSNR': 2.0})
    assert pickle.loads(out.read_bytes()) == {'PSNR': 2.0}

    def fail(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(fileio.os, 'fsync', fail)  # the disk fills up while the file is written
    with pytest.raises(OSError, match='No space left'):
        HOOKS.build(dict(type='SaveMetricsHook', out=str(out))).after_test_epoch(None, {'PSNR': 3.0})
    assert pickle.loads(out.read_bytes()) == {'PSNR': 2.0} and [p.name for p in out.parent.iterdir()] == ['metrics.pkl']
