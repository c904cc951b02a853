"""panet_mm.datasets.check: every sample loaded and every file decoded whole, every problem listed."""
import cv2
import numpy as np
import pytest
from mmengine.dataset import RepeatDataset
from mmengine.registry import init_default_scope

from panet_mm.datasets import CheckedImageDataset
from panet_mm.datasets.check import check_dataset, check_sample, leaf_datasets, sample_count

PIPELINE = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='SetValues', dictionary=dict(scale=2)),
    dict(type='PairedRandomCrop', gt_patch_size=16),
    dict(type='PackInputs'),
]


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 100 / (h + w)], axis=-1)
    return np.clip(base + rng.random((h, w, 3)) * 40, 0, 255).astype(np.uint8)


def _dataset(root, names=('a', 'b', 'c'), ext='.png'):
    """x2 pairs (GT 48x40, LR 24x20) named ``names``, as a training set (random 16x16 GT crops)."""
    init_default_scope('mmagic')
    for sub in ('lq', 'gt'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        gt = _photo(48, 40, i)
        cv2.imwrite(str(root / 'gt' / f'{name}{ext}'), gt, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(root / 'lq' / f'{name}{ext}'), cv2.resize(gt, (20, 24), interpolation=cv2.INTER_AREA),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    return CheckedImageDataset(data_root=str(root), data_prefix=dict(img='lq', gt='gt'), pipeline=PIPELINE)


def test_a_clean_dataset_has_no_problems_and_every_sample_is_counted(tmp_path):
    ds = _dataset(tmp_path)
    seen = []
    assert list(check_dataset(ds, jobs=2, progress=seen.append)) == []
    assert seen == [1, 1, 1]


def test_a_truncated_jpeg_that_the_pipeline_trains_on_is_found(tmp_path):
    """OpenCV fills a truncated JPEG's missing rows with grey: the dataset's own loading does not fail on it, the
    check does, naming the sample and the file."""
    ds = _dataset(tmp_path, ext='.jpg')
    damaged = tmp_path / 'gt' / 'b.jpg'
    data = damaged.read_bytes()
    damaged.write_bytes(data[:len(data) // 2])
    ds.prepare_data(1)                                  # loads: what training would have used
    (problem,) = check_dataset(ds, jobs=1)
    assert problem.startswith("sample 'b' (img: ") and f"its gt file '{damaged}' is truncated or corrupt" in problem


def test_sizes_that_do_not_match_the_scale_are_found_with_the_sample(tmp_path):
    ds = _dataset(tmp_path)
    cv2.imwrite(str(tmp_path / 'lq' / 'c.png'), _photo(30, 20, 9))    # x2 of 48x40 is 24x20
    problems = list(check_dataset(ds, jobs=2))
    assert len(problems) == 1 and problems[0].startswith("sample 'c' (img: ")
    assert 'could not be loaded' in problems[0] and 'replace or remove' not in problems[0]


def test_every_problem_is_listed_in_sample_order(tmp_path):
    ds = _dataset(tmp_path, names=('a', 'b', 'c', 'd'))
    (tmp_path / 'gt' / 'd.png').write_bytes(b'')
    (tmp_path / 'lq' / 'b.png').write_bytes(b'not an image')
    problems = list(check_dataset(ds, jobs=3))
    order = [ds.get_data_info(i)['key'] for i in range(len(ds))]  # mmagic lists a folder in the file system's order
    assert [p.split("'")[1] for p in problems] == [k for k in order if k in ('b', 'd')]
    problems.sort()
    assert 'its img file' in problems[0] and "its gt file" in problems[1] and 'is empty (0 bytes)' in problems[1]


def test_a_file_removed_after_the_listing_is_a_problem_not_a_crash(tmp_path):
    ds = _dataset(tmp_path)
    (tmp_path / 'gt' / 'a.png').unlink()
    problem = check_sample(ds, 0)
    assert problem.startswith("sample 'a' (") and 'its gt file' in problem


def test_wrappers_are_unwrapped_and_each_sample_checked_once(tmp_path):
    ds = _dataset(tmp_path)
    repeated = RepeatDataset(ds, times=5)
    assert leaf_datasets(repeated) == [ds] and sample_count(repeated) == 3
    seen = []
    assert list(check_dataset(repeated, progress=seen.append)) == [] and len(seen) == 3


@pytest.mark.parametrize('jobs', [None, 1])
def test_a_pixel_limit_of_the_dataset_is_kept(tmp_path, jobs):
    ds = _dataset(tmp_path)
    ds.max_pixels = 1000                                  # 48x40 GT images are 1920 pixels
    problems = list(check_dataset(ds, jobs=jobs))
    assert len(problems) == 3 and all('its gt file' in p and 'max_pixels' in p for p in problems)


TEST_PIPELINE = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='PackInputs'),
]


def test_a_test_pair_of_another_scale_than_the_rest_of_its_set_is_found(tmp_path):
    """A test set's pipeline crops nothing, so a wrong LR file (another image's, 60x60 for an 84x84 GT) loaded, and
    tools/test.py then blamed the model's scale without naming the file."""
    _dataset(tmp_path, names=('a', 'b', 'c', 'd'))
    cv2.imwrite(str(tmp_path / 'lq' / 'c.png'), _photo(30, 30, 7))        # 48x40 GT: x2 is 24x20
    cv2.imwrite(str(tmp_path / 'lq' / 'd.png'), _photo(16, 20, 8))        # x3 by height, x2 by width
    ds = CheckedImageDataset(data_root=str(tmp_path), data_prefix=dict(img='lq', gt='gt'), pipeline=TEST_PIPELINE,
                             test_mode=True)
    problems = sorted(check_dataset(ds, jobs=2))
    assert len(problems) == 2, problems
    assert problems[0].startswith("sample 'c' (") and problems[0].endswith(
        'its input is 30x30 and its ground truth 48x40, not one scale for both sides; replace the file that does not '
        'belong to the pair')
    assert problems[1].startswith("sample 'd' (") and 'its input is 16x20 and its ground truth 48x40' in problems[1]
    cv2.imwrite(str(tmp_path / 'lq' / 'd.png'), _photo(24, 20, 8))        # d mended; c a whole x3 pair among x2 ones
    cv2.imwrite(str(tmp_path / 'gt' / 'c.png'), _photo(48, 39, 7))
    cv2.imwrite(str(tmp_path / 'lq' / 'c.png'), _photo(16, 13, 7))
    (problem,) = check_dataset(ds, jobs=2)
    assert problem.startswith("sample 'c' (") and problem.endswith(
        'its input is 16x13 and its ground truth 48x39 (x3), unlike the x2 of the other 3 samples; replace the file '
        'that does not belong to the pair')
