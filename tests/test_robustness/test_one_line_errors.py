"""Cases 6 and 8: one line (``error: ...``) where tracebacks were; messages that name the broken file."""
import os
import sys

import cv2
import pytest
from conftest import DEMO_CONFIG, ROOT, demo_overrides, run_tool, write_tiny_images
from hostile_files import photo

INJECT = os.path.join(ROOT, 'tests', 'test_robustness', 'fault_injection.py')
DEMO = 'configs/demo/panet_sr_x2_demo.py'


def one_error_line(stderr):
    lines = [line for line in stderr.splitlines() if 'error:' in line]
    assert 'Traceback' not in stderr and len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_wrong_type_in_cfg_options_is_refused_before_the_work_dir(demo_root, tmp_path):
    work = tmp_path / 'w'
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work)]
                    + demo_overrides(demo_root, **{'train_cfg.max_iters': 'abc'}), check=False)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert 'train_cfg.max_iters=abc' in line and 'an integer' in line
    assert not work.exists()


def test_check_overrides_keeps_numbers_numbers():
    from mmengine.config import Config

    from panet_mm.engine.cli import check_overrides
    cfg = Config(dict(a=dict(n=3, lr=1e-4, flag=True, name='x', seq=[dict(k=1)])))
    assert check_overrides(cfg, {'a.n': 5, 'a.lr': 2, 'a.flag': False, 'a.name': 7, 'a.new': 'y', 'a.n2': None}) \
        is None
    assert check_overrides(cfg, {'a.n': 1e3}) is None
    assert 'a.n=1.5' in check_overrides(cfg, {'a.n': 1.5})
    assert 'a.lr=fast' in check_overrides(cfg, {'a.lr': 'fast'})
    assert 'True or False' in check_overrides(cfg, {'a.flag': 'yes'})
    assert 'a.seq.0.k=b' in check_overrides(cfg, {'a.seq.0.k': 'b'})


def test_cfg_options_mmengine_cannot_parse_are_one_line():
    """A dict inside a list sent mmengine's DictAction into a RecursionError traceback."""
    from panet_mm.engine.cli import parse_cfg_options
    with pytest.raises(SystemExit, match=r"^--cfg-options model.generator.insert=\[dict\(after='conv1',"
                       r"channels=32\)\]: mmengine cannot read this value .*write it in a config file"):
        parse_cfg_options(['train_cfg.max_iters=2', "model.generator.insert=[dict(after='conv1',channels=32)]"])
    assert parse_cfg_options(['a.b=1', 'c=[1,2]', 'd=x']) == {'a.b': 1, 'c': [1, 2], 'd': 'x'}


def test_check_overrides_names_wrong_paths():
    """A name into a list (the paper configs' five test loaders: a TypeError traceback from mmengine's merge) and
    near misses of existing keys (silently added, or a TypeError when the loop is built) are refused."""
    from mmengine.config import Config

    from panet_mm.engine.cli import check_overrides
    cfg = Config(dict(train_cfg=dict(max_iters=3), test_dataloader=[dict(dataset=dict(data_root='a'))] * 2))
    assert check_overrides(cfg, {'test_dataloader.dataset.data_root': 'b'}) == (
        '--cfg-options test_dataloader.dataset.data_root=b: test_dataloader is a list of 2 in this config; give the '
        'index of the entry, e.g. test_dataloader.0.dataset.data_root=b (nothing was created)')
    assert 'has 2 entries (0-1)' in check_overrides(cfg, {'test_dataloader.2.dataset.data_root': 'b'})
    assert "no key 'trian_cfg'; did you mean 'train_cfg'?" in check_overrides(cfg, {'trian_cfg.max_iters': 1})
    assert "did you mean 'train_cfg.max_iters'?" in check_overrides(cfg, {'train_cfg.max_iter': 1})
    single = Config(dict(test_dataloader=dict(dataset=dict(data_root='a'))))  # the demo configs: one test loader
    assert check_overrides(single, {'test_dataloader.0.dataset.data_root': 'b'}) == (
        '--cfg-options test_dataloader.0.dataset.data_root=b: test_dataloader is a single dict in this config, not a '
        'list; drop the index: test_dataloader.dataset.data_root=b (nothing was created)')
    assert check_overrides(cfg, {'test_dataloader.1.dataset.data_root': 'b', 'randomness.seed': 1,
                                 'train_cfg.val_interval': 2}) is None   # new keys stay allowed


@pytest.mark.slow
def test_disk_full_during_training_is_one_line(demo_root, tmp_path):
    work = tmp_path / 'w'
    opts = demo_overrides(demo_root, **{'train_cfg.max_iters': 2, 'train_cfg.val_interval': 1000,
                                        'default_hooks.checkpoint.interval': 2})
    proc = run_tool([sys.executable, INJECT, rf'ENOSPC:{work}:\.iter_2\.pth\..*\.tmp', 'tools/train.py', DEMO,
                     '--work-dir', str(work)] + opts, check=False)
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert 'No space left on device' in line and 'iter_2.pth' in line and '--resume' in line
    assert not [f for f in os.listdir(work) if f.endswith('.tmp') or f.endswith('.pth')]


def test_make_demo_data_read_only_out_is_one_line(tmp_path):
    ro = tmp_path / 'ro'
    ro.mkdir()
    args = [sys.executable, INJECT, f'EROFS:{ro}', 'tools/dataset_converters/make_demo_data.py',
            '--out', str(ro / 'demo')]
    proc = run_tool(args, check=False)
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert 'Read-only file system' in line and '--out' in line
    proc = run_tool(args, check=False, env={'PANET_MM_DEBUG': '1'})
    assert proc.returncode == 1 and 'Traceback' in proc.stderr  # the debug switch keeps it


def test_negative_chop_shave_is_refused_up_front(tmp_path):
    cv2.imwrite(str(tmp_path / 'a.png'), photo(24, 24))
    proc = run_tool([sys.executable, 'tools/restore.py', str(tmp_path / 'a.png'), str(tmp_path / 'out'),
                     '--config', DEMO_CONFIG, '--checkpoint', str(tmp_path / 'missing.pth'), '--chop',
                     '--chop-shave', '-3'], check=False)
    assert proc.returncode == 2 and '--chop-shave -3' in proc.stderr and 'missing.pth' not in proc.stderr


def test_zero_byte_png_is_called_empty_by_restore(tmp_path, demo_checkpoint):
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), photo(24, 24))
    (src / 'b.png').write_bytes(b'')
    proc = run_tool([sys.executable, 'tools/restore.py', str(src), str(tmp_path / 'out'), '--config', DEMO_CONFIG,
                     '--checkpoint', str(demo_checkpoint), '--device', 'cpu', '--no-progress'], check=False)
    assert proc.returncode == 1
    assert "'%s' is empty (0 bytes)" % (src / 'b.png') in proc.stderr
    assert 'convert it to PNG' not in proc.stderr


def test_corrupt_training_pair_names_the_broken_file(tmp_path):
    from mmengine.registry import init_default_scope

    from panet_mm.datasets import CheckedImageDataset
    from panet_mm.datasets.checked_image_dataset import DataSampleError
    init_default_scope('mmagic')
    write_tiny_images(tmp_path / 'gt')
    lq = write_tiny_images(tmp_path / 'lq')
    data = (lq / 'img_2.png').read_bytes()
    (lq / 'img_2.png').write_bytes(data[:len(data) // 2])
    ds = CheckedImageDataset(data_root=str(tmp_path), data_prefix=dict(img='lq', gt='gt'),
                             pipeline=[dict(type='LoadImageFromFile', key='img'),
                                       dict(type='LoadImageFromFile', key='gt')])
    errors = []
    for i in range(len(ds)):
        try:
            ds[i]
        except DataSampleError as err:
            errors.append(str(err))
    assert len(errors) == 1 and f"its img file '{lq / 'img_2.png'}' is truncated" in errors[0]
    assert 'gt file' not in errors[0]
    # no meta-info file to edit here (it named one); a training set's run kept its checkpoints
    assert errors[0].endswith('; replace or remove this file, then continue with --resume')
    ds.test_mode, ds.ann_file = True, str(tmp_path / 'meta_info.txt')
    with pytest.raises(DataSampleError, match=r"replace or remove this file and its line in '.*meta_info.txt'$"):
        ds[2]


def test_a_sample_error_from_a_dataloader_worker_is_its_own_sentence(capsys, monkeypatch):
    """torch re-raises a worker's error with the worker's traceback and the class's module path before the message."""
    from panet_mm.datasets.checked_image_dataset import DataSampleError
    from panet_mm.engine.cli import readable_errors
    monkeypatch.delenv('PANET_MM_DEBUG', raising=False)
    worker = ("Caught DataSampleError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
              '  File "x.py", line 1, in f\npanet_mm.datasets.checked_image_dataset.DataSampleError: '
              "sample 'a' (img: 'a.png') could not be loaded: broken; replace or remove this file")
    with pytest.raises(SystemExit):
        with readable_errors():
            raise DataSampleError(worker)
    assert capsys.readouterr().err.endswith("error: sample 'a' (img: 'a.png') could not be loaded: broken; replace or "
                                            'remove this file\n')
