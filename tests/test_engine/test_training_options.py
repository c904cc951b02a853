"""README "EMA, gradient clipping, TensorBoard and Weights & Biases": its snippets build and train as stated."""
import os.path as osp
import re
import sys

import pytest
import torch
from conftest import DEMO_CONFIG, ROOT, demo_overrides, run_tool

SECTION = '### EMA, gradient clipping, TensorBoard and Weights & Biases'


def readme_snippets():
    """The section's python blocks: (EMA hooks, gradient clipping, visualiser)."""
    with open(osp.join(ROOT, 'README.md')) as f:
        text = f.read()
    section = text[text.index(SECTION):]
    section = section[:section.index('\n## ')]
    blocks = re.findall(r'```python\n(.*?)```', section, flags=re.S)
    assert len(blocks) == 3, blocks
    return blocks


def config_with(tmp_path, *blocks):
    path = tmp_path / 'with_options.py'
    path.write_text(f'_base_ = {DEMO_CONFIG!r}\n' + '\n'.join(blocks))
    return path


def test_snippets_build(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import HOOKS, VISBACKENDS, init_default_scope

    import panet_mm  # noqa: F401
    ema, clip, vis = readme_snippets()
    init_default_scope('mmagic')
    cfg = Config.fromfile(str(config_with(tmp_path, ema, clip, vis)))
    hooks = [type(HOOKS.build(dict(h))).__name__ for h in cfg.custom_hooks]
    base_hooks = [h['type'] for h in Config.fromfile(DEMO_CONFIG).custom_hooks]
    assert hooks == base_hooks + ['EMAHook']  # the snippet keeps every hook of the base
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=10.0, norm_type=2)
    assert cfg.optim_wrapper.optimizer.type == 'Adam'  # merged into the base's wrapper, not replacing it
    backends = [VISBACKENDS.build(dict(b, save_dir=str(tmp_path / 'vis'))) for b in cfg.visualizer.vis_backends]
    assert [type(b).__name__ for b in backends] == ['LocalVisBackend', 'TensorboardVisBackend']
    wandb = re.search(r'# or: (dict\(.*\))', vis).group(1)
    assert type(VISBACKENDS.build(dict(eval(wandb), save_dir=str(tmp_path / 'wb')))).__name__ == 'WandbVisBackend'


def test_clip_grad_bounds_the_update():
    """The snippet's max_norm=10 is what mmengine's OptimWrapper applies before the step."""
    from mmengine.optim import build_optim_wrapper

    layer = torch.nn.Linear(4, 1, bias=False)
    torch.nn.init.zeros_(layer.weight)
    wrapper = build_optim_wrapper(layer, dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=1.0),
                                              clip_grad=dict(max_norm=10.0, norm_type=2)))
    wrapper.update_params((layer(torch.full((1, 4), 1000.0))).sum())
    assert layer.weight.norm().item() == pytest.approx(10.0, rel=1e-4)


@pytest.mark.slow
def test_ema_and_clipping_train_and_resume(demo_root, tmp_path):
    ema, clip, _ = readme_snippets()
    config = config_with(tmp_path, ema, clip)
    work = tmp_path / 'work'

    def opts(max_iters):
        return demo_overrides(demo_root, **{'train_cfg.max_iters': max_iters, 'train_cfg.val_interval': 2,
                                            'default_hooks.checkpoint.interval': 2,
                                            'default_hooks.logger.interval': 1})

    proc = run_tool([sys.executable, 'tools/train.py', str(config), '--work-dir', str(work)] + opts(2))
    assert 'Set5/PSNR' in proc.stdout + proc.stderr
    from panet_mm.engine.checkpoint import load_weights_only
    ckpt = load_weights_only(work / 'iter_2.pth')  # what --resume and tools/test.py load
    raw, averaged = ckpt['ema_state_dict'], ckpt['state_dict']
    assert set(raw) >= {f'module.{k}' for k in averaged}
    # the checkpoint's model weights are the average, the raw ones sit in ema_state_dict
    assert any(not torch.equal(raw[f'module.{k}'], v) for k, v in averaged.items())

    proc = run_tool([sys.executable, 'tools/train.py', str(config), '--work-dir', str(work), '--resume'] + opts(4))
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    run_tool([sys.executable, 'tools/test.py', str(config), str(work / 'iter_4.pth'), '--work-dir',
              str(tmp_path / 'test')] + demo_overrides(demo_root))
