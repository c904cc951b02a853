"""--amp on CPU: bfloat16 autocast through CPUAmpOptimWrapper (mmengine's AmpOptimWrapper refuses CPU)."""
import re
import sys

import pytest
import torch
from conftest import DEMO_CONFIG, demo_overrides, log_records, run_tool
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from panet_mm.engine.cli import enable_amp
from panet_mm.models.layers import PyramidAttention

pytestmark = pytest.mark.usefixtures('one_thread')


def wrapper_cfg(model, **kw):
    return dict(type='CPUAmpOptimWrapper', optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason='the refusal is on machines without a GPU')
def test_mmengine_amp_wrapper_refuses_cpu():
    """Why the CPU wrapper exists: mmengine's own asserts a GPU-like device."""
    model = torch.nn.Linear(2, 2)
    with pytest.raises(AssertionError, match='only available training on gpu'):
        AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_cpu_wrapper_runs_the_forward_in_bfloat16_and_steps():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), PyramidAttention(channels=8, reduction=2))
    wrapper = OPTIM_WRAPPERS.build(wrapper_cfg(model))
    x = torch.randn(2, 8, 10, 9)
    before = [p.detach().clone() for p in model.parameters()]
    with wrapper.optim_context(model):
        out = model(x)
        conv = model[0](x)
    assert conv.dtype == torch.bfloat16 and out.dtype == torch.bfloat16
    loss = out.float().abs().mean()
    wrapper.update_params(loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())        # master weights stay float32
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # outside the context: float32 again
    assert model(x).dtype == torch.float32


def test_cpu_wrapper_refuses_float16():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="not supported by CPU autocast; use 'bfloat16'"):
        OPTIM_WRAPPERS.build(wrapper_cfg(model, dtype='float16'))


@pytest.mark.parametrize('units', [False, True, None])
def test_cpu_wrapper_notes_a_cpu_without_bfloat16_units_once(monkeypatch, units):
    """--amp on an AVX2 AMD EPYC ran 12-19 s/iter against 1.5-2.4 s/iter in float32, without a word."""
    import logging

    from panet_mm.engine import optim
    monkeypatch.setattr(optim, 'cpu_bf16_units', lambda: units)
    with log_records() as records:
        model = torch.nn.Linear(2, 2)
        wrapper = OPTIM_WRAPPERS.build(wrapper_cfg(model))
        with wrapper.optim_context(model):
            loss = model(torch.ones(1, 2)).float().sum()
        wrapper.update_params(loss)  # (said when built, at the start of training; not per step)
    expected = ('note: bfloat16 autocast (--amp on CPU, CPUAmpOptimWrapper) is emulated and slow on this CPU, which '
                'has no bfloat16 units (AVX512-BF16, AMX): a demo run took 12-19 s/iter against 1.5-2.4 s/iter in '
                "float32; train without --amp (optim_wrapper type='OptimWrapper') on this CPU")
    assert [(r.levelno, r.getMessage()) for r in records] == ([(logging.WARNING, expected)] if units is False else [])


@pytest.mark.parametrize('device,expected', [('cpu', 'CPUAmpOptimWrapper'), ('cuda', 'AmpOptimWrapper')])
def test_enable_amp_picks_the_wrapper(device, expected):
    cfg = Config.fromfile(DEMO_CONFIG, import_custom_modules=False)
    note = enable_amp(cfg, device=device)
    assert cfg.optim_wrapper.type == expected and cfg.val_cfg.fp16 is True
    assert ('bfloat16' in note) if device == 'cpu' else (note is None and cfg.optim_wrapper.loss_scale == 'dynamic')
    assert enable_amp(cfg, device=device) == 'AMP training is already enabled in the config'


@pytest.mark.slow
def test_train_amp_on_cpu(demo_root, tmp_path):
    """tools/train.py --amp on the demo config: trains and validates in bfloat16 on CPU, no traceback."""
    proc = run_tool([sys.executable, 'tools/train.py', DEMO_CONFIG, '--amp', '--work-dir', str(tmp_path / 'w')]
                    + demo_overrides(demo_root, **{'train_cfg.max_iters': 3, 'train_cfg.val_interval': 3,
                                                   'train_dataloader.batch_size': 2,
                                                   'default_hooks.logger.interval': 1}))
    log = proc.stdout + proc.stderr
    assert "type='CPUAmpOptimWrapper'" in log and "dtype='bfloat16'" in log
    losses = [float(v) for v in re.findall(r'Iter\(train\) \[\d/3\].*?loss: ([\d.]+)', log)]
    assert len(losses) == 3 and all(v > 0 for v in losses)
    assert re.search(r'Iter\(val\) \[5/5\]\s+Set5/PSNR: [\d.]+', log)
    assert 'Traceback' not in log and 'AssertionError' not in log
    from panet_mm.engine.optim import cpu_bf16_units
    # one line at the start where bfloat16 is emulated (not per iteration, nor again for validation)
    assert log.count('is emulated and slow on this CPU') == (1 if cpu_bf16_units() is False else 0)
