"""tools/dataset_converters/prepare_testsets.py on tiny fake benchmark folders: layout, determinism, prepared == on
the fly, errors."""
import filecmp
import sys

import cv2
import numpy as np
import pytest
from conftest import run_tool, write_tiny_images

from panet_mm.datasets.prepare import bicubic_downscale, mod_crop
from panet_mm.datasets.transforms import TEST_SEED, add_gaussian_noise, bayer_mosaic, image_seed, jpeg_compress

NAMES = ['img_1', 'img_2', 'img_3']


def tool(*args, check=True):
    return run_tool([sys.executable, 'tools/dataset_converters/prepare_testsets.py',
                     '--workers', '1', *map(str, args)], check=check)


def files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file())


def read(path, flags=cv2.IMREAD_UNCHANGED):
    img = cv2.imread(str(path), flags)
    assert img is not None, path
    return img


def test_layout_and_content(tiny_testsets, tmp_path):
    root = tiny_testsets
    src = write_tiny_images(tmp_path / 'src')  # the same images the fixture was made from
    for name in ('Kodak24', 'CBSD68', 'McMaster', 'Urban100'):
        for sub in ['GT', 'noisy_sigma10', 'noisy_sigma30', 'noisy_sigma50', 'noisy_sigma70', 'mosaic_grbg']:
            assert sorted(p.stem for p in (root / name / sub).iterdir()) == NAMES, (name, sub)
    for name in ('LIVE1', 'Classic5'):
        for sub in ['GT_gray', 'jpeg_q10', 'jpeg_q20', 'jpeg_q30', 'jpeg_q40']:
            assert sorted(p.stem for p in (root / name / sub).iterdir()) == NAMES, (name, sub)
    for name in ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109'):
        for sub in ['GTmod12', 'LRbicx2', 'LRbicx3', 'LRbicx4']:
            assert sorted(p.stem for p in (root / name / sub).iterdir()) == NAMES, (name, sub)

    clean = read(src / 'img_2.png')  # 28x37
    gt = read(root / 'Kodak24' / 'GT' / 'img_2.png')
    assert np.array_equal(gt, clean)  # full size, unchanged
    noisy = read(root / 'Kodak24' / 'noisy_sigma30' / 'img_2.png')
    expected = add_gaussian_noise(clean[..., ::-1], 30, image_seed('img_2', TEST_SEED))[..., ::-1]
    assert np.array_equal(noisy, expected)
    assert 20 < (noisy.astype(float) - clean).std() < 32  # sigma 30, a little clipping
    mosaic = read(root / 'Kodak24' / 'mosaic_grbg' / 'img_2.png')
    assert np.array_equal(mosaic[..., ::-1], bayer_mosaic(clean[..., ::-1], 'GRBG'))
    assert mosaic[0, 0, 2] == 0 and mosaic[0, 0, 1] == clean[0, 0, 1]  # G at (0, 0), R and B zero there

    y = read(root / 'LIVE1' / 'GT_gray' / 'img_2.png')
    assert y.shape == clean.shape[:2]  # one channel
    import mmcv
    assert np.array_equal(y, mmcv.bgr2ycbcr(clean, y_only=True))
    assert np.array_equal(read(root / 'LIVE1' / 'jpeg_q10' / 'img_2.png'), jpeg_compress(y, 10))

    hr = read(root / 'Set14' / 'GTmod12' / 'img_2.png')
    assert hr.shape == (24, 36, 3) and np.array_equal(hr, mod_crop(clean, 12))
    assert np.array_equal(read(root / 'Set14' / 'LRbicx3' / 'img_2.png'), bicubic_downscale(hr, 3))


def test_same_bytes_every_run(tiny_testsets, tmp_path):
    """A second run (2 workers instead of 1) writes byte-identical files; existing files are kept unless
    --overwrite, which writes the same bytes again."""
    src = write_tiny_images(tmp_path / 'src')  # the images tiny_testsets was made from
    out = tmp_path / 'again'
    run_tool([sys.executable, 'tools/dataset_converters/prepare_testsets.py',
              '--workers', '2', '--out', str(out), '--kodak24', str(src),
              '--classic5', str(src), '--set14', str(src)])
    names = files(out)
    assert len(names) == 3 * (6 + 5 + 4)
    match, mismatch, errors = filecmp.cmpfiles(tiny_testsets, out, names, shallow=False)
    assert not mismatch and not errors
    target = out / 'Kodak24' / 'noisy_sigma30' / 'img_1.png'
    target.write_bytes(b'stale')
    tool('--out', out, '--kodak24', src, '--sigmas', '30')
    assert target.read_bytes() == b'stale'
    tool('--out', out, '--kodak24', src, '--sigmas', '30', '--overwrite')
    assert filecmp.cmp(target, tiny_testsets / 'Kodak24' / 'noisy_sigma30' / 'img_1.png', shallow=False)
    assert not list(out.rglob('*.tmp'))


def test_grey_sources_and_sr_package_names(tmp_path):
    src = tmp_path / 'classic5'
    src.mkdir()
    grey = np.random.default_rng(0).integers(0, 256, (24, 36), dtype=np.uint8)
    cv2.imwrite(str(src / 'barbara.bmp'), grey)
    cv2.imwrite(str(src / 'lena.png'), np.repeat(grey[..., None], 3, -1))  # grey stored as 3 channels
    sr = write_tiny_images(tmp_path / 'urban', sizes=((24, 36), (24, 36)))
    (sr / 'img_1.png').rename(sr / 'img_001_SRF_2_HR.png')
    (sr / 'img_2.png').rename(sr / 'img_001_SRF_2_LR.png')
    tool('--out', tmp_path / 'data', '--classic5', src, '--set14', sr, '--qualities', '20', '--scales', '2')
    for name in ('barbara', 'lena'):  # grey values kept, not mapped to 16-235
        assert np.array_equal(read(tmp_path / 'data' / 'Classic5' / 'GT_gray' / f'{name}.png'), grey)
    assert files(tmp_path / 'data' / 'Set14') == ['GTmod12/img_001.png', 'LRbicx2/img_001.png']


def test_sr_crop_scale_writes_the_released_test_layout(tmp_path):
    """--sr-crop scale: the HR cropped to a multiple of each scale only (what the paper's tables scored; GTmod12 drops
    up to 11 rows and columns more) and its own LR; both: next to GTmod12 / LRbicx{s}; scales need not divide 12."""
    src = write_tiny_images(tmp_path / 'src')
    clean = read(src / 'img_2.png')  # 28x37
    tool('--out', tmp_path / 'data', '--set5', src, '--scales', '2', '3', '--sr-crop', 'both')
    set5 = tmp_path / 'data' / 'Set5'
    assert sorted({f.split('/')[0] for f in files(set5)}) == [
        'GTmod12', 'GTmod2', 'GTmod3', 'LRbicx2', 'LRbicx2_GTmod2', 'LRbicx3', 'LRbicx3_GTmod3']
    for s, shape in ((2, (28, 36, 3)), (3, (27, 36, 3))):
        hr = read(set5 / f'GTmod{s}' / 'img_2.png')
        assert hr.shape == shape and np.array_equal(hr, mod_crop(clean, s))
        assert np.array_equal(read(set5 / f'LRbicx{s}_GTmod{s}' / 'img_2.png'), bicubic_downscale(hr, s))
    assert np.array_equal(read(set5 / 'LRbicx3' / 'img_2.png'), bicubic_downscale(mod_crop(clean, 12), 3))
    tool('--out', tmp_path / 'five', '--set5', src, '--scales', '5', '--sr-crop', 'scale')
    assert sorted({f.split('/')[0] for f in files(tmp_path / 'five' / 'Set5')}) == ['GTmod5', 'LRbicx5_GTmod5']


@pytest.mark.parametrize('case', ['missing', 'empty', 'nested', 'file'])
def test_unusable_folder_is_named_and_nothing_written(tmp_path, case):
    good = write_tiny_images(tmp_path / 'good', sizes=((20, 24), ))
    bad = tmp_path / 'bad'
    if case in ('empty', 'nested'):
        bad.mkdir()
    if case == 'nested':                                 # B100's download: image_SRF_2/, image_SRF_3/, ...
        write_tiny_images(bad / 'image_SRF_2', sizes=((20, 24), ))
    elif case == 'file':
        bad.write_text('x')
    proc = tool('--out', tmp_path / 'data', '--kodak24', good, '--live1', bad, check=False)
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    expected = {'missing': 'does not exist', 'empty': 'holds no images', 'nested': 'holds no images',
                'file': 'is a file, not a folder'}[case]
    assert message.startswith(f"error: --live1 folder '{bad}' {expected}")
    assert (", only the folder(s) 'image_SRF_2'; pass the folder" in message) == (case == 'nested'), message
    assert 'LIVE1' in message and message.count('. ') == 0  # one sentence
    assert not (tmp_path / 'data').exists()


def test_no_set_and_bad_values_are_refused(tmp_path):
    proc = tool('--out', tmp_path / 'data', check=False)
    assert proc.returncode == 2 and 'no test set given' in proc.stderr and '--kodak24' in proc.stderr
    proc = tool('--kodak24', tmp_path, '--sigmas', '0.1', check=False)
    assert proc.returncode == 2 and 'the 0-255 scale' in proc.stderr
    proc = tool('--set5', tmp_path, '--scales', '5', check=False)
    assert proc.returncode == 2 and 'must divide 12' in proc.stderr and '--sr-crop scale' in proc.stderr
    proc = tool('--set5', tmp_path, '--scales', '0', '--sr-crop', 'scale', check=False)
    assert proc.returncode == 2 and 'factors of at least 1' in proc.stderr


def test_help_states_each_default_once():
    """--help printed '(default: None)' after every set folder and a second default after --max-pixels' own."""
    proc = run_tool([sys.executable, 'tools/dataset_converters/prepare_testsets.py', '--help'])
    text = ' '.join(proc.stdout.split())
    assert 'default: None' not in text and '(default: data)' in text
    assert text.count('default:') == text.count('(default:'), text
    assert 'panet_mm.datasets.image_io.default_max_pixels)' in text and 'default_max_pixels) (default' not in text
