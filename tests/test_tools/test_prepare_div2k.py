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


def test_a_rerun_with_another_crop_size_is_refused_unless_overwrite(tmp_path):
    """The rerun kept the old 48x48 sub-images under the names it writes, wrote 24x24 ones beside them and listed all
    as 24x24 in the meta-info file: a silently mixed training set."""
    root = tmp_path / 'DIV2K'
    fake_div2k(root, n=1, h=96, w=96)
    tool = [sys.executable, 'tools/dataset_converters/prepare_div2k.py', '--div2k', str(root), '--step', '24',
            '--thresh-size', '0', '--scales', '2', '--workers', '1']
    run_tool(tool + ['--crop-size', '48'])
    meta_before = (root / 'meta_info_DIV2K800sub_GT.txt').read_text()
    proc = run_tool(tool + ['--crop-size', '24'], check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        f"error: '{root}/DIV2K_train_HR_sub' holds sub-images of 48x48 pixels ('0001_s001.png'), from a run with "
        'another --crop-size; this run writes 24x24')
    assert (root / 'meta_info_DIV2K800sub_GT.txt').read_text() == meta_before      # nothing was changed
    run_tool(tool + ['--crop-size', '24', '--overwrite'])
    listed = [line.split()[0] for line in (root / 'meta_info_DIV2K800sub_GT.txt').read_text().splitlines()]
    assert {cv2.imread(str(root / 'DIV2K_train_HR_sub' / name)).shape for name in listed} == {(24, 24, 3)}


def test_missing_hr_folder_is_named(tmp_path):
    proc = run_tool([sys.executable, 'tools/dataset_converters/prepare_div2k.py',
                     '--div2k', str(tmp_path / 'none')], check=False)
    assert proc.returncode != 0 and f"'{tmp_path}/none/DIV2K_train_HR' not found" in proc.stderr


def test_scale_must_divide_crop(tmp_path):
    proc = run_tool([sys.executable, 'tools/dataset_converters/prepare_div2k.py',
                     '--div2k', str(tmp_path), '--crop-size', '50',
                     '--scales', '3'], check=False)
    assert proc.returncode == 2 and 'multiples of every scale' in proc.stderr


def fake_div2k_valid(folder, first=801, n=12, h=130, w=170):
    """A tiny DIV2K_valid_HR: images {first:04d}.png ... (blurred noise, like fake_div2k)."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    for i in range(first, first + n):
        img = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
        cv2.imwrite(str(folder / f'{i:04d}.png'), img)
    return folder


def bicubic(img, s):
    from panet_mm.datasets.prepare import bicubic_downscale
    return bicubic_downscale(img, s)


def test_valid_set_centre_crops_and_lr(tmp_path):
    """--valid: images 0801-0810 only (the paper's validation), centre crops on a multiple of 12, LR = the tool's
    bicubic of the GT; the .incomplete mark is gone once the set is complete."""
    src = fake_div2k_valid(tmp_path / 'DIV2K_valid_HR')
    root = tmp_path / 'DIV2K'
    proc = run_tool([sys.executable, 'tools/dataset_converters/prepare_div2k.py', '--no-div2k', '--div2k', str(root),
                     '--valid', str(src), '--valid-crop', '48', '--workers', '1'])
    assert 'DIV2K valid: 10 images' in proc.stdout
    valid = root / 'valid'
    names = [f'{i:04d}.png' for i in range(801, 811)]
    assert sorted(p.name for p in (valid / 'GTmod12').iterdir()) == names
    assert not (valid / '.incomplete').exists() and not (root / 'DIV2K_train_HR_sub').exists()
    for name in names:
        gt = cv2.imread(str(valid / 'GTmod12' / name))
        assert gt.shape == (48, 48, 3)
        # 130x170 mod 12 -> 120x168; the centre crop's corner rounded down to a multiple of 12: (36, 60)
        whole = cv2.imread(str(src / name))[:120, :168]
        assert np.array_equal(gt, whole[36:84, 60:108])
        for s in (2, 3, 4):
            lr = cv2.imread(str(valid / f'LRbicx{s}' / name))
            assert lr.shape == (48 // s, 48 // s, 3) and np.array_equal(lr, bicubic(gt, s))


def test_valid_set_whole_images(tmp_path):
    src = fake_div2k_valid(tmp_path / 'DIV2K_valid_HR', n=10)
    out = tmp_path / 'val'
    run_tool([sys.executable, 'tools/dataset_converters/prepare_div2k.py', '--no-div2k', '--valid', str(src),
              '--valid-out', str(out), '--valid-crop', '0', '--scales', '3', '--workers', '1'])
    gt = cv2.imread(str(out / 'GTmod12' / '0810.png'))
    assert np.array_equal(gt, cv2.imread(str(src / '0810.png'))[:120, :168])
    lr = cv2.imread(str(out / 'LRbicx3' / '0810.png'))
    assert lr.shape == (40, 56, 3) and np.array_equal(lr, bicubic(gt, 3))
    assert sorted(p.name for p in out.iterdir()) == ['GTmod12', 'LRbicx3']


def test_valid_set_refusals(tmp_path):
    src = fake_div2k_valid(tmp_path / 'DIV2K_valid_HR', n=5)
    tool = [sys.executable, 'tools/dataset_converters/prepare_div2k.py', '--no-div2k', '--valid']
    proc = run_tool(tool + [str(src), '--valid-out', str(tmp_path / 'v')], check=False)
    assert proc.returncode == 1 and 'has no image 0806 (and 4 more) of --valid-range 801-810' in proc.stderr
    proc = run_tool(tool + [str(src), '--valid-crop', '50'], check=False)
    assert proc.returncode == 2 and '--valid-crop 50: give a multiple of 12' in proc.stderr
    proc = run_tool(tool + [str(src), '--valid-out', str(tmp_path / 'v'), '--valid-crop', '240',
                            '--valid-range', '801-805'], check=False)
    assert proc.returncode == 1 and 'smaller than the 240x240 centre crop' in proc.stderr
    # stopped at an image: the folder stays marked, so a config refuses to validate on the part written
    assert 'stopped at' in (tmp_path / 'v' / '.incomplete').read_text()


def test_official_lr_images_are_used_and_a_wrong_scale_file_is_refused(tmp_path):
    """The official DIV2K_train_LR_bicubic/X{s}/NNNNx{s}.png files (the whole HR down-sampled) give the LR
    sub-images; an X2 file in X3/ was accepted (it is larger than needed) and cut into wrong-scale LR patches."""
    from panet_mm.datasets.prepare import bicubic_downscale
    root = tmp_path / 'DIV2K'
    fake_div2k(root, n=1)  # 130x170
    hr = cv2.imread(str(root / 'DIV2K_train_HR' / '0001.png'))
    for s in (2, 3):
        (root / 'DIV2K_train_LR_bicubic' / f'X{s}').mkdir(parents=True)
    official = np.ascontiguousarray(255 - bicubic_downscale(hr[:130 // 2 * 2, :170 // 2 * 2], 2))  # recognisable
    cv2.imwrite(str(root / 'DIV2K_train_LR_bicubic' / 'X2' / '0001x2.png'), official)
    cv2.imwrite(str(root / 'DIV2K_train_LR_bicubic' / 'X3' / '0001x3.png'), official)  # X2 size in X3/
    tool = [sys.executable, 'tools/dataset_converters/prepare_div2k.py', '--div2k', str(root), '--crop-size', '48',
            '--step', '24', '--thresh-size', '0', '--workers', '1']
    proc = run_tool(tool + ['--scales', '2', '3'], check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert ("0001x3.png' (85x65) is not the HR image '0001.png' (170x130) down-sampled by 3, which would be 56x43 "
            '(or 57x44, rounded up); remove it to regenerate it (or put the right X3 file there)') in proc.stderr, \
        proc.stderr
    assert not (root / 'DIV2K_train_LR_bicubic' / 'X2_sub').exists()  # nothing made from that image
    (root / 'DIV2K_train_LR_bicubic' / 'X3' / '0001x3.png').unlink()
    run_tool(tool + ['--scales', '2', '3'])
    sub = cv2.imread(str(root / 'DIV2K_train_LR_bicubic' / 'X2_sub' / '0001_s002.png'))  # HR rows 0-47, cols 24-71
    assert np.array_equal(sub, official[0:24, 12:36])
