"""tools/dataset_converters/prepare_div2k.py on a tiny fake DIV2K."""
import sys

import cv2
import numpy as np
from conftest import run_tool


def fake_div2k(root, n=2, h=130, w=170):
    rng = np.random.default_rng(0)
    (root / 'DIV2K_train_HR').mkdir(parents=True)
    for i in range(1, n + 1):
        img = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
        cv2.imwrite(str(root / 'DIV2K_train_HR' / f'{i:04d}.png'), img)


def test_sub_images_lr_and_meta(tmp_path):
    root = tmp_path / 'DIV2K'
    fake_div2k(root)
    run_tool([sys.executable, 'tools/dataset_converters/prepare_div2k.py',
              '--div2k', str(root), '--crop-size', '48', '--step', '24',
              '--thresh-size', '0', '--scales', '2', '3', '4'])
    hr = sorted(p.name for p in (root / 'DIV2K_train_HR_sub').iterdir())
    # 130x170 mod-cropped by 12 -> 120x168: 4 x 6 sub-images of 48 at step 24 per image
    assert len(hr) == 2 * 4 * 6 and hr[0] == '0001_s001.png'
    meta = (root / 'meta_info_DIV2K800sub_GT.txt').read_text().splitlines()
    assert meta[0] == '0001_s001.png (48,48,3)' and len(meta) == len(hr)
    for s in (2, 3, 4):
        lr_dir = root / 'DIV2K_train_LR_bicubic' / f'X{s}_sub'
        assert sorted(p.name for p in lr_dir.iterdir()) == hr
        lr = cv2.imread(str(lr_dir / hr[-1]))
        assert lr.shape == (48 // s, 48 // s, 3)
        # the LR sub-image is (close to) the bicubic down-sampling of its HR sub-image
        hr_img = cv2.imread(str(root / 'DIV2K_train_HR_sub' / hr[-1])).astype(float)
        approx = cv2.resize(hr_img, (48 // s, 48 // s), interpolation=cv2.INTER_AREA)
        assert np.abs(lr[2:-2, 2:-2] - approx[2:-2, 2:-2]).mean() < 12


def test_missing_hr_folder_is_named(tmp_path):
    proc = run_tool([sys.executable, 'tools/dataset_converters/prepare_div2k.py',
                     '--div2k', str(tmp_path / 'none')], check=False)
    assert proc.returncode != 0 and f"'{tmp_path}/none/DIV2K_train_HR' not found" in proc.stderr


def test_scale_must_divide_crop(tmp_path):
    proc = run_tool([sys.executable, 'tools/dataset_converters/prepare_div2k.py',
                     '--div2k', str(tmp_path), '--crop-size', '50',
                     '--scales', '3'], check=False)
    assert proc.returncode == 2 and 'multiples of every scale' in proc.stderr
