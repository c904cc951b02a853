"""SaveMetricsHook: the test metrics in a file after the test epoch (tools/test.py --out)."""
import json

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


def test_the_extension_picks_the_format(tmp_path):
    out = tmp_path / 'metrics.yaml'
    HOOKS.build(dict(type='SaveMetricsHook', out=str(out))).after_test_epoch(None, {'PSNR': 1.0})
    assert yaml.safe_load(out.read_text()) == {'PSNR': 1.0}
