"""NaN / infinite weights or outputs are reported by restore (API and tools/restore.py) and tools/test.py before
anything is written: never a black image or NaN metrics with exit status 0."""
import math
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import DEMO_CONFIG, build_demo_model, demo_overrides, run_tool, save_runner_checkpoint

from panet_mm import apis as R
from panet_mm.apis import restore_cli


def checkpoint_with(tmp_path, name, edit):
    model = build_demo_model()
    with torch.no_grad():
        edit(dict(model.named_parameters()))
    return str(save_runner_checkpoint(model, tmp_path / name))


def nan_weight(params):
    params['generator.body.0.conv1.weight'][0, 0, 0, 0] = float('nan')


def inf_weight(params):
    params['generator.conv_last.weight'][0, 0, 0, 0] = math.inf


def overflowing(params):
    """Finite weights whose output overflows float32 (an output of infinities, then NaN)."""
    params['generator.conv_last.weight'].fill_(3e38)


def images(folder):
    folder.mkdir()
    rng = np.random.RandomState(0)
    cv2.imwrite(str(folder / 'a.png'), rng.randint(0, 255, (12, 16, 3), np.uint8))
    return folder


def restore_tool(args):
    return restore_cli.main([str(a) for a in args])


@pytest.mark.parametrize('edit,key', [(nan_weight, 'generator.body.0.conv1.weight'),
                                      (inf_weight, 'generator.conv_last.weight')])
def test_restore_refuses_non_finite_weights_before_writing(tmp_path, capsys, edit, key):
    ckpt = checkpoint_with(tmp_path, 'bad.pth', edit)
    with pytest.raises(R.CheckpointRefusedError, match=f'NaN / infinite weights in 1 tensor.*{key}'):
        R.build_restorer(DEMO_CONFIG, ckpt, device='cpu')
    out = tmp_path / 'out'
    assert restore_tool(['--config', DEMO_CONFIG, '--checkpoint', ckpt, images(tmp_path / 'in'), out,
                         '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error:') and key in err and not out.exists()


def test_restore_reports_a_non_finite_output_and_writes_nothing(tmp_path, capsys):
    ckpt = checkpoint_with(tmp_path, 'overflow.pth', overflowing)
    r = R.build_restorer(DEMO_CONFIG, ckpt, device='cpu')  # the weights themselves are finite
    with pytest.raises(R.RestoreError, match="output has NaN / infinite values"):
        r.restore_array(np.full((12, 16, 3), 128, np.uint8))
    out = tmp_path / 'out'
    assert restore_tool(['--config', DEMO_CONFIG, '--checkpoint', ckpt, images(tmp_path / 'in'), out,
                         '--device', 'cpu', '--no-progress']) == 1
    err = capsys.readouterr().err
    assert 'NaN / infinite values' in err and '1 failed' in err
    assert not [p for p in out.rglob('*') if p.is_file()] if out.exists() else True


@pytest.mark.slow  # tools/test.py in a subprocess, twice
@pytest.mark.parametrize('edit,expected', [(nan_weight, 'NaN / infinite weights in 1 tensor'),
                                           (overflowing, "the model's output for")])
def test_tools_test_reports_non_finite_before_writing(demo_root, tmp_path, edit, expected):
    ckpt = checkpoint_with(tmp_path, 'bad.pth', edit)
    out = tmp_path / 'metrics.json'
    proc = run_tool([sys.executable, 'tools/test.py', DEMO_CONFIG, ckpt, '--out', str(out),
                     '--work-dir', str(tmp_path / 'test')] + demo_overrides(demo_root), check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1 and expected in errors[0]
    assert not out.exists()


@pytest.mark.slow  # tools/test.py in a subprocess
def test_tools_test_of_a_resumed_runs_config_loads_weights_only(demo_root, tmp_path):
    """A config copy written by a --resume run says resume = True: tools/test.py loads the checkpoint's weights (a
    mismatch is a mismatch, not a failed --resume)."""
    ckpt = str(tmp_path / 'other.pth')
    save_runner_checkpoint(build_demo_model(mid_channels=16), ckpt)
    proc = run_tool([sys.executable, 'tools/test.py', DEMO_CONFIG, ckpt, '--work-dir', str(tmp_path / 'test'),
                     '--cfg-options', 'resume=True'] + demo_overrides(demo_root)[1:], check=False)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error')]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-2000:]
    assert 'does not match' in errors[0] and '--resume' not in errors[0], errors[0]
