"""tools/analysis_tools/quick_quality.py: the baselines, and a short run that prints the comparison table."""
import json
import os.path as osp
import re
import sys

import numpy as np
import pytest
from conftest import ROOT, run_tool

from panet_mm.datasets.demo_tasks import DEMO_TASKS as TASKS
from panet_mm.datasets.demo_tasks import bicubic_baseline
from panet_mm.datasets.transforms.mosaic import bilinear_demosaic


def smooth_image(h=16, w=20):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([50 + 3 * x + 2 * y, 80 + 2 * x + y, 200 - 4 * y - x], -1).astype(np.float64)


@pytest.mark.parametrize('pattern', ['RGGB', 'GRBG', 'GBRG', 'BGGR'])
def test_bilinear_demosaic_exact_on_linear_image_interior(pattern):
    img = smooth_image()
    mosaic = np.zeros_like(img)
    for i, ch in enumerate(pattern):
        dy, dx = divmod(i, 2)
        c = 'RGB'.index(ch)
        mosaic[dy::2, dx::2, c] = img[dy::2, dx::2, c]
    out = bilinear_demosaic(mosaic)
    np.testing.assert_allclose(out[2:-2, 2:-2], img[2:-2, 2:-2], atol=1e-9)  # linear ramps are reproduced
    assert np.array_equal(out[mosaic != 0], img[mosaic != 0])  # known samples are kept


def test_bicubic_baseline_shape():
    assert bicubic_baseline(smooth_image(8, 10), (16, 20, 3)).shape == (16, 20, 3)


def test_sr_run_prints_table(demo_root, tmp_path):
    out = tmp_path / 'q.json'
    proc = run_tool([sys.executable, 'tools/analysis_tools/quick_quality.py',
                     'sr', '--iters', '2', '--data-root', str(demo_root),
                     '--work-dir', str(tmp_path / 'w'), '--json', str(out)])
    assert re.search(r'^\| sr \| `configs/demo/panet_sr_x2_demo.py` \| 2 \| \d+ s \| 5 \|', proc.stdout, re.M)
    r = json.loads(out.read_text())['sr']
    assert r['images'] == 5 and 20 < r['baseline'] < 50 and np.isfinite(r['model'])
    assert r['train_s'] > 0 and r['threads'] >= 1
    # the table's model PSNR is the config's own metric: the same as the validation on the same photos
    logged = re.findall(r'Set5/PSNR: (\d+\.\d+)', proc.stdout + proc.stderr)
    assert logged and abs(float(logged[-1]) - r['model']) < 1e-3, (logged, r['model'])


def test_every_task_has_a_demo_config():
    for config, _ in TASKS.values():
        assert osp.isfile(osp.join(ROOT, config)), config
