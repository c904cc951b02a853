"""tools/dataset_converters/make_demo_data.py: layout, HR/LR consistency, determinism, reruns and refusals (CPU,
offline)."""
import hashlib
import os
import os.path as osp
import subprocess
import sys

import cv2
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'dataset_converters', 'make_demo_data.py')
SCALES = (2, 3, 4)


def make(out, *args, check=True):
    """Run the tool with this interpreter; return the CompletedProcess."""
    proc = subprocess.run([sys.executable, TOOL, '--out', str(out), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f'exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return proc


def tree_hashes(root):
    """{relative path: sha256} of every file under root."""
    hashes = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = osp.join(dirpath, f)
            with open(path, 'rb') as fh:
                hashes[osp.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return hashes


def png_names(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith('.png'))


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp('make_demo') / 'demo'
    proc = make(out, '--scales', *map(str, SCALES))
    return out, proc


def test_layout_counts_and_summary(demo):
    out, proc = demo
    hr_dir = out / 'DIV2K' / 'DIV2K_train_HR_sub'
    hr = png_names(hr_dir)
    assert 100 <= len(hr) <= 400  # small enough for a one-minute CPU demo
    assert hr[0] == '0001_s001.png'
    assert all(len(n) == len('0001_s001.png') and n[4:6] == '_s' for n in hr)
    lines = (out / 'DIV2K' / 'meta_info_DIV2K800sub_GT.txt').read_text().splitlines()
    assert lines == [f'{n} (120,120,3)' for n in hr]
    assert (out / '.panet_mm_demo').is_file()
    # Nothing half-written or stray: only the marker is hidden.
    hidden = [osp.join(d, f) for d, _, files in os.walk(out) for f in files if f.startswith('.')]
    assert hidden == [str(out / '.panet_mm_demo')]
    assert sorted(os.listdir(out)) == ['.panet_mm_demo', 'DIV2K', 'Set5']
    assert sorted(os.listdir(out / 'DIV2K' / 'DIV2K_train_LR_bicubic')) == [f'X{s}_sub' for s in SCALES]
    assert sorted(os.listdir(out / 'Set5')) == ['GTmod12'] + [f'LRbicx{s}' for s in SCALES]
    assert f'{len(hr)} HR sub-images' in proc.stdout and str(out) in proc.stdout


@pytest.mark.parametrize('scale', SCALES)
def test_train_lr_matches_hr(demo, scale):
    out, _ = demo
    hr_dir = out / 'DIV2K' / 'DIV2K_train_HR_sub'
    lr_dir = out / 'DIV2K' / 'DIV2K_train_LR_bicubic' / f'X{scale}_sub'
    assert png_names(lr_dir) == png_names(hr_dir)
    for name in png_names(hr_dir)[::7]:
        hr = cv2.imread(str(hr_dir / name), cv2.IMREAD_UNCHANGED)
        lr = cv2.imread(str(lr_dir / name), cv2.IMREAD_UNCHANGED)
        assert hr.shape == (120, 120, 3) and hr.dtype == 'uint8'
        assert lr.shape == (120 // scale, 120 // scale, 3) and lr.dtype == 'uint8'
        # The LR image is a down-sampling of this HR image (not of some other crop).
        approx = cv2.resize(hr, lr.shape[1::-1], interpolation=cv2.INTER_AREA)
        assert abs(approx.astype(float) - lr).mean() < 6


@pytest.mark.parametrize('scale', SCALES)
def test_set5_gt_and_lr(demo, scale):
    out, _ = demo
    gt_dir, lr_dir = out / 'Set5' / 'GTmod12', out / 'Set5' / f'LRbicx{scale}'
    names = png_names(gt_dir)
    assert len(names) == 5 and png_names(lr_dir) == names
    train_sources = (out / '.panet_mm_demo').read_text().split('Held-out')[0]
    for name in names:
        assert osp.splitext(name)[0] not in train_sources  # held out from training
        gt = cv2.imread(str(gt_dir / name), cv2.IMREAD_UNCHANGED)
        lr = cv2.imread(str(lr_dir / name), cv2.IMREAD_UNCHANGED)
        h, w = gt.shape[:2]
        assert gt.ndim == 3 and h % 12 == 0 and w % 12 == 0 and max(h, w) <= 128 and min(h, w) >= 48
        assert lr.shape == (h // scale, w // scale, 3)


def test_deterministic_and_rerun_is_idempotent(demo, tmp_path):
    out, _ = demo
    reference = tree_hashes(out)
    again = tmp_path / 'again'
    make(again)  # default --scales 2 3 4
    assert tree_hashes(again) == reference
    # A rerun into a folder this tool made is allowed; it rewrites the same bytes and deletes only files it
    # recorded making (the LR images of scales no longer asked for) and its own temporary files.
    make(again, '--scales', '2')
    assert not (again / 'DIV2K' / 'DIV2K_train_LR_bicubic' / 'X3_sub').exists()
    assert not (again / 'Set5' / 'LRbicx4').exists() and (again / 'Set5' / 'LRbicx2').is_dir()
    mine = again / 'DIV2K' / 'DIV2K_train_HR_sub' / '0099_s001.png'
    mine.write_bytes(b'the user put this here')
    (again / 'Set5' / 'LRbicx2' / '.astronaut.png.123.abcd.tmp').write_bytes(b'half')
    proc = make(again)
    assert mine.read_bytes() == b'the user put this here'  # not recorded: never deleted
    mine.unlink()
    assert tree_hashes(again) == reference
    assert 'removed 1 stale' in proc.stdout


def test_refuses_foreign_folder(tmp_path):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'notes.txt').write_text('keep me')
    proc = make(out, check=False)
    assert proc.returncode != 0
    assert '--overwrite' in proc.stderr and 'Traceback' not in proc.stderr
    assert os.listdir(out) == ['notes.txt'] and (out / 'notes.txt').read_text() == 'keep me'
    (tmp_path / 'a_file').write_text('x')
    proc = make(tmp_path / 'a_file', check=False)
    assert proc.returncode != 0 and 'not a folder' in proc.stderr


def test_rejects_unsupported_scale(tmp_path):
    proc = make(tmp_path / 'x', '--scales', '2', '5', check=False)
    assert proc.returncode == 2 and 'unsupported scale' in proc.stderr
    assert not (tmp_path / 'x').exists()


def test_missing_scikit_image_message(monkeypatch):
    from panet_mm.datasets import demo_data
    monkeypatch.setattr(demo_data.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(demo_data.DemoDataError) as exc:   # the tool prints it as 'error: ...', exit status 1
        demo_data.skimage_data_dir()
    assert 'scikit-image' in str(exc.value) and 'pip install scikit-image' in str(exc.value)


def test_folder_errors_name_the_parameter_from_python(tmp_path):
    """From Python the refusals name ``out`` / ``overwrite=True``; the tool prints ``--out`` / ``--overwrite``."""
    from panet_mm.datasets import demo_data
    (tmp_path / 'a_file').write_text('x')
    with pytest.raises(demo_data.DemoDataParameterError) as exc:
        demo_data.check_out_dir(str(tmp_path / 'a_file'), overwrite=False)
    assert str(exc.value) == f'out {tmp_path / "a_file"} exists and is not a folder.'
    assert exc.value.for_cli({'out': '--out'}).startswith('--out ')
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('keep me')
    with pytest.raises(demo_data.DemoDataParameterError) as exc:
        demo_data.check_out_dir(str(tmp_path / 'mine'), overwrite=False)
    assert 'pass overwrite=True to write' in str(exc.value) and '--' not in str(exc.value)
