"""Case 5: outputs are validated before the expensive part; a full disk stops at the first failed write."""
import os
import sys
from collections import namedtuple

import cv2
import pytest
from conftest import DEMO_CONFIG, ROOT, demo_overrides, run_tool
from hostile_files import photo

from panet_mm.apis import RestoreError, check_output_room, plan_jobs

INJECT = os.path.join(ROOT, 'tests', 'test_robustness', 'fault_injection.py')


def images(folder, n=3, size=24):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f'{chr(97 + i)}.png'), photo(size, size, seed=i))
    return folder


def test_test_tool_refuses_an_unsupported_out_before_evaluating(demo_root, tmp_path):
    args = [sys.executable, 'tools/test.py', 'configs/demo/panet_sr_x2_demo.py', str(tmp_path / 'none.pth'),
            '--out', str(tmp_path / 'metrics.txt'), '--work-dir', str(tmp_path / 'w')]
    (tmp_path / 'none.pth').write_bytes(b'never read')
    proc = run_tool(args + demo_overrides(demo_root), check=False)
    assert proc.returncode == 2 and "--out '" in proc.stderr and '.json' in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'w').exists()


def test_test_tool_leaves_no_log_folder_for_a_refused_checkpoint(demo_root, tmp_path):
    """Each refused checkpoint left one more timestamped log folder holding only the refusal."""
    (tmp_path / 'notes.pth').write_text('hello\n')
    args = [sys.executable, 'tools/test.py', 'configs/demo/panet_sr_x2_demo.py', str(tmp_path / 'notes.pth'),
            '--work-dir', str(tmp_path / 'w')]
    proc = run_tool(args + demo_overrides(demo_root), check=False)
    assert proc.returncode == 1 and 'is not a PyTorch checkpoint: it is a text file' in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'w').exists()  # refused before the runner
    (tmp_path / 'empty.pt').write_bytes(b'')  # nor with the default work_dir (the config's, under the current folder)
    absolute = [sys.executable, f'{ROOT}/tools/test.py', f'{ROOT}/configs/demo/panet_sr_x2_demo.py']
    proc = run_tool(absolute + [str(tmp_path / 'empty.pt')] + demo_overrides(demo_root), check=False, cwd=tmp_path)
    assert proc.returncode == 1 and 'is not a PyTorch checkpoint: it is empty (0 bytes)' in proc.stderr
    assert not (tmp_path / 'work_dirs').exists()


def test_test_tool_refuses_a_read_only_out_before_evaluating(demo_root, tmp_path):
    ro = tmp_path / 'ro'
    ro.mkdir()
    (tmp_path / 'none.pth').write_bytes(b'never read')
    args = [sys.executable, INJECT, f'EROFS:{ro}', 'tools/test.py', 'configs/demo/panet_sr_x2_demo.py',
            str(tmp_path / 'none.pth'), '--out', str(ro / 'metrics.json'), '--work-dir', str(tmp_path / 'w')]
    proc = run_tool(args + demo_overrides(demo_root), check=False)
    assert proc.returncode == 2 and 'Read-only file system' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'w').exists()  # refused before the runner (and the evaluation)


def test_restore_refuses_a_read_only_output_before_loading_the_model(tmp_path):
    src = images(tmp_path / 'in')
    out = tmp_path / 'ro' / 'out'
    (tmp_path / 'ro').mkdir()
    proc = run_tool([sys.executable, INJECT, f'EROFS:{tmp_path / "ro"}', 'tools/restore.py', str(src), str(out),
                     '--config', DEMO_CONFIG, '--checkpoint', str(tmp_path / 'missing.pth'), '--no-progress'],
                    check=False)
    # the checkpoint does not exist: the output is refused first, before any model is built
    assert proc.returncode == 2 and 'cannot be written' in proc.stderr and 'Read-only' in proc.stderr
    assert 'missing.pth' not in proc.stderr and not out.exists()


def test_restore_refuses_a_disk_too_small_for_the_results(tmp_path, monkeypatch):
    import shutil
    jobs = plan_jobs(str(images(tmp_path / 'in', size=40)), str(tmp_path / 'out'), ext='bmp')
    usage = namedtuple('usage', 'total used free')
    need = check_output_room(jobs, scale=2)
    assert need == 3 * 80 * 80 * 3  # BMP: uncompressed
    monkeypatch.setattr(shutil, 'disk_usage', lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(RestoreError, match='MB free but the results need about'):
        check_output_room(jobs, scale=2)
    assert not (tmp_path / 'out').exists()


def test_restore_stops_at_the_first_full_disk_error(tmp_path, demo_checkpoint):
    src = images(tmp_path / 'in')
    out = tmp_path / 'out'
    proc = run_tool([sys.executable, INJECT, rf'ENOSPC:{out}:\.b\.png\..*\.tmp', 'tools/restore.py', str(src),
                     str(out), '--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), '--device', 'cpu',
                     '--no-progress'], check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'No space left on device' in errors[0]
    assert 'stopped before computing the other 1 image(s)' in errors[0]
    assert sorted(os.listdir(out)) == ['a.png']  # c.png was never computed; no temporary file is left
