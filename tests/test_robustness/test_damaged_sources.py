"""Cases 2 and 3: damaged source images stop their set (or are skipped); no tool replaces its own sources."""
import hashlib
import os
import sys

import cv2
import pytest
from conftest import run_tool, write_tiny_images
from hostile_files import encode, photo


def prepare_testsets(*args, check=False):
    return run_tool([sys.executable, 'tools/dataset_converters/prepare_testsets.py',
                     '--workers', '1', *map(str, args)], check=check)


def files_under(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def digest(folder):
    return {p: hashlib.sha256((folder / p).read_bytes()).hexdigest() for p in files_under(folder)}


def truncated_jpeg(path):
    data = encode(photo(48, 60, seed=3), '.jpg', cv2.IMWRITE_JPEG_QUALITY, 95)
    path.write_bytes(data[:len(data) * 2 // 3])  # OpenCV decodes this with a flat grey bottom, exit 0
    return path


def test_truncated_jpeg_stops_its_set_and_nothing_is_made_from_it(tmp_path):
    src = write_tiny_images(tmp_path / 'set5')
    bad = truncated_jpeg(src / 'img_9.jpg')
    good = write_tiny_images(tmp_path / 'kodak')
    out = tmp_path / 'data'
    proc = prepare_testsets('--out', out, '--set5', src, '--kodak24', good)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and str(bad) in errors[0] and 'truncated' in errors[0] and '--skip-bad' in errors[0]
    assert 'Traceback' not in proc.stderr
    assert not any('img_9' in p for p in files_under(out))
    assert len(os.listdir(out / 'Kodak24' / 'GT')) == 3  # the other set is prepared
    assert 'Kodak24: 3 images' in proc.stdout and 'Set5:' not in proc.stdout


def test_truncated_png_is_one_line_and_skip_bad_reports_it(tmp_path):
    src = write_tiny_images(tmp_path / 'live1')
    data = (src / 'img_2.png').read_bytes()
    (src / 'img_2.png').write_bytes(data[:len(data) // 2])
    out = tmp_path / 'data'
    proc = prepare_testsets('--out', out, '--live1', src)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr and "img_2.png' is truncated" in proc.stderr
    # the images made before the stop stay, marked: evaluating on them is refused (they were scored as the set)
    with pytest.raises(FileNotFoundError, match=r"LIVE1' was not fully prepared \(stopped at a damaged image: .*"
                       r"img_2.png' is truncated.*; its .incomplete file says so\).*prepare it again: python "
                       r"\S*tools/dataset_converters/prepare_testsets.py \.\.\.$"):
        live1(out)
    assert (out / 'LIVE1' / '.incomplete').read_text().splitlines()[1].startswith(
        'written by tools/dataset_converters/prepare_testsets.py; run it again to finish the folder')

    proc = prepare_testsets('--out', out, '--live1', src, '--skip-bad')
    assert proc.returncode == 0, proc.stderr
    assert 'skipped 1 damaged image(s)' in proc.stderr and str(src / 'img_2.png') in proc.stderr
    assert 'LIVE1: 2 images' in proc.stdout
    assert sorted(os.listdir(out / 'LIVE1' / 'GT_gray')) == ['img_1.png', 'img_3.png']
    assert len(live1(out)) == 2


def live1(out):
    from mmengine.registry import init_default_scope

    from panet_mm.datasets import CheckedImageDataset
    init_default_scope('mmagic')
    return CheckedImageDataset(data_root=str(out / 'LIVE1'), data_prefix=dict(img='jpeg_q10', gt='GT_gray'),
                               pipeline=[])


def test_zero_byte_png_is_called_empty(tmp_path):
    src = write_tiny_images(tmp_path / 'set14')
    (src / 'img_4.png').write_bytes(b'')
    proc = prepare_testsets('--out', tmp_path / 'data', '--set14', src)
    assert proc.returncode == 1 and 'is empty (0 bytes)' in proc.stderr and 'convert it to PNG' not in proc.stderr


def test_prepare_div2k_stops_before_the_meta_info(tmp_path):
    div2k = tmp_path / 'DIV2K'
    hr = div2k / 'DIV2K_train_HR'
    hr.mkdir(parents=True)
    for i in (1, 2):
        cv2.imwrite(str(hr / f'000{i}.png'), photo(96, 96, seed=i))
    truncated_jpeg(hr / '0003.jpg')
    args = [sys.executable, 'tools/dataset_converters/prepare_div2k.py',
            '--div2k', str(div2k), '--scales', '2', '--crop-size', '48',
            '--step', '48', '--thresh-size', '0', '--workers', '1']
    proc = run_tool(args, check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr and '0003.jpg' in proc.stderr
    assert not (div2k / 'meta_info_DIV2K800sub_GT.txt').exists()
    assert not any(p.startswith('0003') for p in os.listdir(div2k / 'DIV2K_train_HR_sub'))

    proc = run_tool(args + ['--skip-bad'], check=False)
    assert proc.returncode == 0, proc.stderr
    lines = (div2k / 'meta_info_DIV2K800sub_GT.txt').read_text().splitlines()
    assert len(lines) == 8 and not any(line.startswith('0003') for line in lines)


def test_prepare_div2k_treats_a_too_small_image_as_a_bad_one(tmp_path):
    """An HR image smaller than the sub-images (a stray thumbnail) stopped the run with a ValueError traceback,
    --skip-bad or not."""
    div2k = tmp_path / 'DIV2K'
    hr = div2k / 'DIV2K_train_HR'
    hr.mkdir(parents=True)
    for i in (1, 2):
        cv2.imwrite(str(hr / f'000{i}.png'), photo(96, 96, seed=i))
    cv2.imwrite(str(hr / '0003.png'), photo(30, 96, seed=3))
    args = [sys.executable, 'tools/dataset_converters/prepare_div2k.py',
            '--div2k', str(div2k), '--scales', '2', '--crop-size', '48',
            '--step', '48', '--thresh-size', '0', '--workers', '1']
    proc = run_tool(args, check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert (f"'{hr / '0003.png'}' is 96x30 pixels (width x height after the mod-crop), smaller than the 48x48 "
            'sub-images (--crop-size); stopped before') in proc.stderr          # the advice once, not twice
    assert not (div2k / 'meta_info_DIV2K800sub_GT.txt').exists()
    proc = run_tool(args + ['--skip-bad'], check=False)
    assert proc.returncode == 0, proc.stderr
    assert len((div2k / 'meta_info_DIV2K800sub_GT.txt').read_text().splitlines()) == 8


def test_prepare_testsets_never_replaces_its_sources(tmp_path):
    out = tmp_path / 'data'
    gt = write_tiny_images(out / 'Set5' / 'GTmod12')  # the sources sit where the outputs go
    before = digest(gt)
    proc = prepare_testsets('--out', out, '--set5', gt, '--overwrite')
    assert proc.returncode == 2 and 'would be replaced' in proc.stderr and 'Traceback' not in proc.stderr
    assert digest(gt) == before and sorted(os.listdir(out / 'Set5')) == ['GTmod12']

    gray = write_tiny_images(out / 'LIVE1' / 'GT_gray')  # colour sources that would become grey
    before = digest(gray)
    linked = tmp_path / 'link'
    linked.symlink_to(gray)
    proc = prepare_testsets('--out', out, '--live1', linked, '--overwrite')
    assert proc.returncode == 2 and 'GT_gray' in proc.stderr and digest(gray) == before


def test_prepare_div2k_never_replaces_its_set5_sources(tmp_path):
    set5 = write_tiny_images(tmp_path / 'Set5' / 'GTmod12')
    before = digest(set5)
    proc = run_tool([sys.executable, 'tools/dataset_converters/prepare_div2k.py',
                     '--no-div2k', '--set5', str(set5), '--set5-out',
                     str(tmp_path / 'Set5')], check=False)
    assert proc.returncode == 2 and 'would be replaced' in proc.stderr and digest(set5) == before


def test_make_demo_data_never_deletes_files_it_did_not_make(tmp_path):
    out = tmp_path / 'mine'
    hr = out / 'DIV2K' / 'DIV2K_train_HR_sub'
    hr.mkdir(parents=True)
    (hr / 'holiday.png').write_bytes(b'my photo')  # the user's file, inside one of the tool's image folders
    make = [sys.executable, 'tools/dataset_converters/make_demo_data.py', '--out', str(out), '--scales', '2']
    run_tool(make + ['--overwrite'])  # adopts the folder
    proc = run_tool(make)  # a rerun: the folder is now the tool's
    assert (hr / 'holiday.png').read_bytes() == b'my photo' and 'removed' not in proc.stdout
    assert 'holiday.png' not in (out / '.panet_mm_demo').read_text()


def test_a_truncated_jpeg_is_named_without_pillows_buffer_count(tmp_path):
    """Pillow says "image file is truncated (55 bytes not processed)" for a JPEG cut in half: the count is its
    buffer's, not what is missing, and misled; the message keeps the rest."""
    from panet_mm.datasets.image_io import ImageFileError, verify_image_file
    path = truncated_jpeg(tmp_path / 'cut.jpg')
    with pytest.raises(ImageFileError) as err:
        verify_image_file(str(path))
    assert str(err.value) == (f"'{path}' is truncated or corrupt (image file is truncated); copy or export the image "
                              'again')
