"""The restoration configs run: each demo config trains and validates a few iterations via tools/train.py, and a
paper config (tiny generator) trains on demo data, then tools/test.py reports every test set of its table."""
import csv
import json
import math
import re
import sys

import pytest
from conftest import demo_overrides, point_testsets_at, run_tool, write_tiny_images

DEMOS = ['configs/demo/panet_dn_sigma30_demo.py', 'configs/demo/panet_car_q10_demo.py',
         'configs/demo/panet_demosaic_demo.py']


def as_options(opts):
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def short(iters=2):
    return {'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters, 'default_hooks.checkpoint.interval': iters,
            'default_hooks.logger.interval': 1}


@pytest.mark.slow
@pytest.mark.parametrize('config', DEMOS)
def test_demo_trains_and_validates(config, demo_root, tmp_path):
    work = tmp_path / 'work'
    proc = run_tool([sys.executable, 'tools/train.py', config, '--work-dir', str(work)]
                    + demo_overrides(demo_root, **short()))
    log = proc.stdout + proc.stderr
    psnr = re.search(r'Iter\(val\) \[5/5\].*Set5/PSNR: ([\d.]+)\s+Set5/SSIM: ([\d.]+)', log)
    assert psnr, log[-3000:]
    assert 0 < float(psnr.group(1)) < 60 and -1 <= float(psnr.group(2)) <= 1
    assert (work / 'iter_2.pth').is_file() and (work / 'best_Set5_PSNR_iter_2.pth').is_file()
    # nothing alarming from the stack: mmagic's "Cannot convert inputs with 'single' channel order" on the JPEG
    # model's grey outputs was logged at every validation
    assert ' - WARNING - ' not in log, [ln for ln in log.splitlines() if ' - WARNING - ' in ln]


@pytest.mark.slow
def test_paper_config_trains_and_tests_every_set(demo_root, tiny_testsets, tmp_path):
    config = 'configs/panet_dn_sigma30_div2k.py'
    sets = ['Kodak24', 'CBSD68', 'McMaster', 'Urban100']
    # validation: DIV2K 801-810 as prepare_div2k.py --valid lays it out (GTmod12), here 3 tiny clean images
    valid = tmp_path / 'valid'
    write_tiny_images(valid / 'GTmod12')
    data = {**point_testsets_at(config, tiny_testsets), 'val_dataloader.dataset.data_root': str(valid),
            'val_dataloader.num_workers': 0, **{f'test_dataloader.{i}.num_workers': 0 for i in range(len(sets))}}
    tiny = {'model.generator.mid_channels': 8, 'model.generator.num_blocks': 2}  # 2 iterations: barely trained
    work = tmp_path / 'work'
    proc = run_tool([sys.executable, 'tools/train.py', config, '--work-dir', str(work)] + as_options({
        **tiny, **data, **short(), 'randomness.seed': 0, 'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.dataset.data_root': f'{demo_root}/DIV2K'}))
    log = proc.stdout + proc.stderr
    assert re.search(r'Iter\(val\) \[3/3\].*DIV2K/PSNR: [\d.]+\s+DIV2K/SSIM', log), log[-3000:]
    assert (work / 'best_DIV2K_PSNR_iter_2.pth').is_file()  # chosen on the validation set, not a test set

    out = tmp_path / 'metrics.json'
    per_image = tmp_path / 'per_image.csv'
    run_tool([sys.executable, 'tools/test.py', config, str(work / 'iter_2.pth'), '--out', str(out),
              '--per-image', str(per_image), '--work-dir', str(tmp_path / 'test')] + as_options({**tiny, **data}))
    metrics = json.loads(out.read_text())
    assert {f'{s}/{m}' for s in sets for m in ('PSNR', 'SSIM')} <= set(metrics)
    assert all(math.isfinite(metrics[f'{s}/PSNR']) and -1 <= metrics[f'{s}/SSIM'] <= 1 for s in sets)
    rows = list(csv.DictReader(per_image.open()))  # every set's images (mmagic's MultiTestLoop), means as logged
    assert [r['set'] for r in rows] == [s for s in sets for _ in range(3)]
    for s in sets:
        psnr = [float(r['PSNR']) for r in rows if r['set'] == s]
        assert sum(psnr) / 3 == pytest.approx(metrics[f'{s}/PSNR'], abs=1e-4)
