"""PerImageMetricsHook (tools/test.py --per-image): every test image's scores from the metrics' own per-sample results,
one CSV row per set and image, whose means are the logged metrics."""
import csv
from types import SimpleNamespace

import pytest
import torch
from mmagic.registry import METRICS
from mmagic.structures import DataSample
from mmengine.registry import HOOKS, init_default_scope

import panet_mm  # noqa: F401  (registers the hook)


def batch(names, seed):
    """Test-step outputs and the packed batch of ``names`` (random 0-255 images and predictions)."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for name in names:
        gt = (torch.rand(3, 24, 24, generator=g) * 255).round()
        pred = (gt + torch.randn(3, 24, 24, generator=g) * 10).clamp(0, 255)
        sample = DataSample(gt_img=gt, metainfo=dict(gt_path=f'/data/set/GT/{name}', img_path=f'/data/in/{name}'))
        sample.output = DataSample(pred_img=pred)
        samples.append(sample)
    return samples


def test_rows_per_set_and_image_whose_means_are_the_logged_metrics(tmp_path):
    init_default_scope('mmagic')
    sets = {'Set5': [['a.png', 'b,1.png'], ['c.png']], 'Urban100': [['img_001.png']]}
    evaluators = [SimpleNamespace(metrics=[METRICS.build(dict(type=t, prefix=name)) for t in ('PSNR', 'SSIM', 'MAE')])
                  for name in sets]  # (MAE: 0-d tensors per sample, its mean scaled by 100)
    runner = SimpleNamespace(test_loop=SimpleNamespace(evaluators=evaluators))
    out = tmp_path / 'per_image.csv'
    hook = HOOKS.build(dict(type='PerImageMetricsHook', out=str(out)))
    hook.before_test(runner)
    logged = {}
    for batches, evaluator in zip(sets.values(), evaluators):
        for i, names in enumerate(batches):
            outputs = batch(names, seed=i)
            for metric in evaluator.metrics:  # what mmagic's Evaluator.process does
                metric.process([{}] * len(outputs), [o.to_dict() for o in outputs])
            hook.after_test_iter(runner, i, None, outputs)
        for metric in evaluator.metrics:
            metric.size = sum(len(b) for b in batches)  # (what the loop's prepare() sets)
            logged.update(metric.evaluate())  # (clears the metric's results)
    hook.after_test_epoch(runner, logged)
    rows = list(csv.DictReader(out.open()))
    assert [(r['set'], r['image']) for r in rows] == [('Set5', 'a.png'), ('Set5', 'b,1.png'), ('Set5', 'c.png'),
                                                      ('Urban100', 'img_001.png')]
    for name in sets:
        mine = [r for r in rows if r['set'] == name]
        for metric in ('PSNR', 'SSIM', 'MAE'):
            mean = sum(float(r[metric]) for r in mine) / len(mine)
            assert mean == pytest.approx(float(logged[f'{name}/{metric}']), abs=1e-5)


def test_nothing_tested_writes_nothing(tmp_path):
    runner = SimpleNamespace(test_loop=SimpleNamespace(evaluator=SimpleNamespace(metrics=[])))
    hook = HOOKS.build(dict(type='PerImageMetricsHook', out=str(tmp_path / 'x.csv')))
    hook.before_test(runner)
    hook.after_test_epoch(runner, {})
    assert not (tmp_path / 'x.csv').exists()


def test_sets_without_a_prefix_are_kept_apart(tmp_path):
    """Two test sets whose metrics have no prefix (a user's config) and an image name in both: two rows, named by
    the set's index, not one merged row."""
    init_default_scope('mmagic')
    evaluators = [SimpleNamespace(metrics=[METRICS.build(dict(type='PSNR'))]) for _ in range(2)]
    runner = SimpleNamespace(test_loop=SimpleNamespace(evaluators=evaluators))
    out = tmp_path / 'rows.csv'
    hook = HOOKS.build(dict(type='PerImageMetricsHook', out=str(out)))
    hook.before_test(runner)
    for i, evaluator in enumerate(evaluators):
        outputs = batch(['same.png'], seed=i)
        evaluator.metrics[0].process([{}], [o.to_dict() for o in outputs])
        hook.after_test_iter(runner, 0, None, outputs)
    hook.after_test_epoch(runner, {})
    rows = list(csv.DictReader(out.open()))
    assert [(r['set'], r['image']) for r in rows] == [('test set 0', 'same.png'), ('test set 1', 'same.png')]
