"""ValidationScaleHook: a validation set of another scale than the training data is refused before training."""
import os
import sys

from conftest import DEMO_CONFIG, demo_overrides, run_tool


def test_a_validation_set_of_another_scale_stops_the_run_before_its_first_iteration(demo_root, tmp_path):
    """x3 LR images in the x2 demo's Set5: found at the first validation (5000 iterations into the paper configs)."""
    work = tmp_path / 'w'
    opts = demo_overrides(demo_root, **{'val_dataloader.dataset.data_prefix.img': 'LRbicx3',
                                        'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2})
    proc = run_tool([sys.executable, 'tools/train.py', DEMO_CONFIG, '--work-dir', str(work)] + opts, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: validation set 'set5' ('{demo_root}/Set5/LRbicx3') pairs 28x40 inputs with 84x120 ground truth (x3), "
        'but the training pairs are x2: point its data_prefix at the x2 images (found before training, not at the '
        'first validation)')
    assert 'Iter(train)' not in proc.stdout + proc.stderr and os.listdir(tmp_path) == []


def test_the_hook_is_quiet_where_the_scales_agree_or_are_unknown():
    from types import SimpleNamespace

    import torch

    from panet_mm.engine.hooks import ValidationScaleHook

    def dataset(inputs, gt):
        sample = dict(inputs=torch.zeros(3, *inputs), data_samples=SimpleNamespace(gt_img=torch.zeros(3, *gt)))
        return SimpleNamespace(prepare_data=lambda idx: sample, metainfo={}, data_prefix={})

    def runner(train, *vals):
        loaders = [SimpleNamespace(dataset=d) for d in vals]
        return SimpleNamespace(train_loop=SimpleNamespace(dataloader=SimpleNamespace(dataset=train)),
                               val_loop=SimpleNamespace(dataloaders=loaders))

    hook = ValidationScaleHook()
    hook.before_train(runner(dataset((16, 16), (32, 32)), dataset((28, 40), (56, 80)), dataset((5, 7), (10, 14))))
    hook.before_train(runner(dataset((16, 16), (16, 16)), dataset((28, 40), (28, 40))))   # restoration: x1
    broken = SimpleNamespace(prepare_data=lambda idx: 1 / 0, metainfo={}, data_prefix={})
    hook.before_train(runner(dataset((16, 16), (32, 32)), broken))      # the loop reports a damaged sample itself
    hook.before_train(SimpleNamespace(val_loop=None, train_loop=None))  # no validation
