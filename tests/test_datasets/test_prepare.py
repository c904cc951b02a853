"""Tests for panet_mm.datasets.prepare: mod-crop, sub-images, bicubic LR, meta-info and atomic writes."""
import os
import re

import cv2
import numpy as np
import pytest

from panet_mm.datasets import prepare


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ----------------------------------------------------------------------------------------------- mod_crop


@pytest.mark.parametrize('shape', [(101, 75), (101, 75, 3)])
def test_mod_crop_keeps_top_left_multiple(rng, shape):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    out = prepare.mod_crop(img, 12)
    assert out.shape[:2] == (96, 72) and out.shape[2:] == shape[2:]
    np.testing.assert_array_equal(out, img[:96, :72])
    assert prepare.mod_crop(img[:96, :72], 12).shape[:2] == (96, 72)  # already a multiple: unchanged


@pytest.mark.parametrize('scale', [0, -2, 2.0, True])
def test_mod_crop_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match='positive integer'):
        prepare.mod_crop(np.zeros((24, 24), np.uint8), scale)


def test_mod_crop_rejects_too_small_image():
    with pytest.raises(ValueError, match='smaller than the modulus'):
        prepare.mod_crop(np.zeros((11, 40, 3), np.uint8), 12)


# ------------------------------------------------------------------------------------------ sub-images


@pytest.mark.parametrize('length, crop, step, thresh, expected', [
    (512, 120, 60, 0, [0, 60, 120, 180, 240, 300, 360, 392]),  # leftover strip -> one crop at the end
    (480, 120, 60, 0, [0, 60, 120, 180, 240, 300, 360]),  # exact fit: nothing added
    (310, 120, 60, 0, [0, 60, 120, 180, 190]),
    (310, 120, 60, 9, [0, 60, 120, 180, 190]),
    (310, 120, 60, 10, [0, 60, 120, 180]),  # leftover 10 <= thresh_size: dropped
    (120, 120, 60, 0, [0]),
    (2040, 480, 240, 0, [0, 240, 480, 720, 960, 1200, 1440, 1560]),  # a DIV2K width with the default settings
])
def test_sub_image_starts(length, crop, step, thresh, expected):
    assert prepare.sub_image_starts(length, crop, step, thresh) == expected


def test_sub_image_starts_rejects_bad_arguments():
    with pytest.raises(ValueError, match='shorter than the crop size'):
        prepare.sub_image_starts(100, 120, 60)
    with pytest.raises(ValueError, match='positive'):
        prepare.sub_image_starts(200, 120, 0)
    with pytest.raises(ValueError, match='non-negative'):
        prepare.sub_image_starts(200, 120, 60, -1)


def test_crop_sub_images_names_order_sizes_and_coverage(rng):
    img = rng.integers(0, 256, (250, 330, 3), dtype=np.uint8)
    subs = prepare.crop_sub_images(img, '0007', 120, 60)
    ys, xs = [0, 60, 120, 130], [0, 60, 120, 180, 210]
    assert len(subs) == len(ys) * len(xs) == 20
    assert [name for name, _ in subs] == [f'0007_s{i:03d}.png' for i in range(1, 21)]
    covered = np.zeros(img.shape[:2], bool)
    for (name, sub), (y, x) in zip(subs, [(y, x) for y in ys for x in xs]):  # row-major order
        assert sub.shape == (120, 120, 3), name
        np.testing.assert_array_equal(sub, img[y:y + 120, x:x + 120])
        covered[y:y + 120, x:x + 120] = True
    assert covered.all()  # thresh_size=0 covers every pixel


def test_crop_sub_images_grayscale_thresh_and_extension(rng):
    img = rng.integers(0, 256, (130, 250), dtype=np.uint8)
    subs = prepare.crop_sub_images(img, 'img', 120, 60, thresh_size=10, ext='.jpg')
    # Height: 0 and the leftover 10 <= 10 is dropped; width: 0, 60, 120 and the leftover 10 is dropped.
    assert [n for n, _ in subs] == ['img_s001.jpg', 'img_s002.jpg', 'img_s003.jpg']
    assert all(s.shape == (120, 120) for _, s in subs)
    with pytest.raises(ValueError, match='smaller than the crop size'):
        prepare.crop_sub_images(img, 'img', 140, 60)


# ----------------------------------------------------------------------------------------- bicubic LR


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_bicubic_downscale_sizes(rng, scale):
    img = rng.integers(0, 256, (72, 48, 3), dtype=np.uint8)
    lr = prepare.bicubic_downscale(img, scale)
    assert lr.shape == (72 // scale, 48 // scale, 3) and lr.dtype == np.uint8
    gray = prepare.bicubic_downscale(img[..., 0], scale)
    assert gray.shape == (72 // scale, 48 // scale) and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, lr[..., 0])  # channels are resized independently


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_bicubic_downscale_is_mmagics_matlab_like_resize(rng, scale):
    from mmagic.datasets.transforms import MATLABLikeResize

    img = rng.integers(0, 256, (60, 36, 3), dtype=np.uint8)
    ref = MATLABLikeResize(keys=['img'], scale=1 / scale)({'img': img})['img']
    assert ref.shape == (60 // scale, 36 // scale, 3)
    np.testing.assert_array_equal(prepare.bicubic_downscale(img, scale), np.clip(np.round(ref), 0, 255))


def test_bicubic_downscale_values():
    # Constant images stay constant; the antialiased cubic kernel reproduces linear ramps, so away from
    # the borders a x2 down-sampling of 0, 2, 4, ... is the mean of each pixel pair: 1, 5, 9, ...
    assert np.unique(prepare.bicubic_downscale(np.full((24, 36), 77, np.uint8), 3)).tolist() == [77]
    ramp = np.tile(np.arange(0, 96, 2, dtype=np.uint8), (8, 1))
    lr = prepare.bicubic_downscale(ramp, 2)
    np.testing.assert_array_equal(lr[:, 2:-2], np.tile(np.arange(9, 89, 4), (4, 1)))
    # uint8 results are rounded and clipped (the cubic kernel overshoots at sharp edges).
    edge = np.zeros((12, 12), np.uint8)
    edge[:, 6:] = 255
    assert prepare.bicubic_downscale(edge, 2).dtype == np.uint8


def test_bicubic_downscale_rejects_bad_input(rng):
    img = rng.integers(0, 256, (50, 48, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match='mod_crop'):
        prepare.bicubic_downscale(img, 4)
    with pytest.raises(ValueError, match='positive integer'):
        prepare.bicubic_downscale(img, 0)
    one = prepare.bicubic_downscale(img, 1)
    np.testing.assert_array_equal(one, img)
    assert one is not img


# ------------------------------------------------------------------------------------------- meta-info


def test_meta_info_line_format():
    assert prepare.meta_info_line('0001_s001.png', (480, 480, 3)) == '0001_s001.png (480,480,3)'
    assert prepare.meta_info_line('gray.png', (30, 40)) == 'gray.png (30,40,1)'
    assert prepare.parse_meta_info_line(' 0001_s001.png (480,480,3)\n') == ('0001_s001.png', (480, 480, 3))
    with pytest.raises(ValueError, match='whitespace'):
        prepare.meta_info_line('a b.png', (1, 1, 3))
    for bad in ['0001.png', '0001.png 480,480,3', '0001.png (480,480)', '0001.png (a,b,c)']:
        with pytest.raises(ValueError, match='NAME'):
            prepare.parse_meta_info_line(bad)


def test_write_and_read_meta_info(tmp_path):
    path = tmp_path / 'sub' / 'meta_info_DIV2K800sub_GT.txt'
    entries = [('0002_s001.png', (120, 120, 3)), ('0001_s002.png', (120, 120, 3)), ('0001_s001.png', (96, 120, 3))]
    assert prepare.write_meta_info(str(path), entries) == 3
    text = path.read_text()
    assert text == '0001_s001.png (96,120,3)\n0001_s002.png (120,120,3)\n0002_s001.png (120,120,3)\n'
    assert all(re.fullmatch(r'\S+\.png \(\d+,\d+,\d+\)', line) for line in text.splitlines())
    assert prepare.read_meta_info(str(path)) == sorted(entries)
    assert os.listdir(path.parent) == [path.name]  # no temporary file left


def test_meta_info_is_read_by_mmagic(tmp_path):
    from mmagic.datasets import BasicImageDataset

    names = ['0001_s001.png', '0001_s002.png']
    for name in names:
        prepare.imwrite_atomic(np.zeros((24, 24, 3), np.uint8), str(tmp_path / 'gt' / name))
        prepare.imwrite_atomic(np.zeros((12, 12, 3), np.uint8), str(tmp_path / 'lq' / name))
    prepare.write_meta_info(str(tmp_path / 'meta.txt'), [(n, (24, 24, 3)) for n in names])
    dataset = BasicImageDataset(ann_file='meta.txt', data_root=str(tmp_path), data_prefix=dict(img='lq', gt='gt'),
                                filename_tmpl=dict(img='{}', gt='{}'), pipeline=[])
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [d['key'] for d in infos] == ['0001_s001', '0001_s002']
    assert all(os.path.isfile(d['gt_path']) and os.path.isfile(d['img_path']) for d in infos)


# -------------------------------------------------------------------------------------------- writing


def test_imwrite_atomic_is_lossless_and_leaves_no_temp_file(tmp_path, rng):
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / 'deep' / 'dir' / 'a.png'
    prepare.imwrite_atomic(img, str(path))
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), img)
    assert os.listdir(path.parent) == ['a.png']
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0o600 of a mkstemp file
    # Overwriting replaces the content in one step.
    prepare.imwrite_atomic(255 - img, str(path))
    np.testing.assert_array_equal(cv2.imread(str(path)), 255 - img)
    assert os.listdir(path.parent) == ['a.png']
    np.testing.assert_array_equal(prepare.imread_color(str(path)), 255 - img)


def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / 'b.png'
    prepare.imwrite_atomic(np.zeros((4, 4, 3), np.uint8), str(path))
    old = path.read_bytes()

    def fail(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(OSError, match='disk full'):
        prepare.imwrite_atomic(np.full((4, 4, 3), 9, np.uint8), str(path))
    with pytest.raises(OSError, match='disk full'):
        prepare.write_meta_info(str(tmp_path / 'meta.txt'), [('b.png', (4, 4, 3))])
    assert sorted(os.listdir(tmp_path)) == ['b.png']
    assert path.read_bytes() == old


def test_imwrite_atomic_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match='could not encode'):
        prepare.imwrite_atomic(np.zeros((4, 4, 3), np.uint8), str(tmp_path / 'c.unknown'))
    assert os.listdir(tmp_path) == []


def test_imread_color_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        prepare.imread_color(str(tmp_path / 'missing.png'))
    (tmp_path / 'junk.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match='is not an image file of a known format'):
        prepare.imread_color(str(tmp_path / 'junk.png'))


@pytest.mark.parametrize('ext', ['tif', 'jpg', 'png'])
@pytest.mark.parametrize('orientation', [3, 6, 8])
def test_imread_color_reads_turned_photos_upright(tmp_path, rng, ext, orientation):
    """Pillow-written files with an EXIF orientation come out as viewers show them (OpenCV 4.11's imread
    failed on TIFFs turned by 90 degrees; the reader decodes the file's bytes instead)."""
    from PIL import Image, ImageOps
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = str(tmp_path / f'turned.{ext}')
    Image.fromarray(rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)).save(
        path, exif=exif if ext == 'tif' else exif.tobytes(), **({'quality': 100} if ext == 'jpg' else {}))
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert('RGB'))[..., ::-1]
    got = prepare.imread_color(path)
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= (6 if ext == 'jpg' else 0)
