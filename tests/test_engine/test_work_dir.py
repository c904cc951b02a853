"""Cases 4 and 7: one training run per work directory; leftovers of interrupted saves are removed."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT, demo_overrides, run_tool

from panet_mm.engine.work_dir import LOCK_NAME, WorkDirBusyError, WorkDirLock, remove_interrupted_saves

DEMO = 'configs/demo/panet_sr_x2_demo.py'


def dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_second_lock_is_refused_naming_the_holder(tmp_path):
    with WorkDirLock(str(tmp_path / 'w')) as first:
        assert first.note is None
        with pytest.raises(WorkDirBusyError) as err:
            WorkDirLock(str(tmp_path / 'w')).acquire()
        assert f'pid {os.getpid()}' in str(err.value) and socket.gethostname() in str(err.value)
        assert 'work_dir' in str(err.value)
        assert '--work-dir' in err.value.for_cli({'work_dir': '--work-dir'})  # how the tools name their flag
    assert not (tmp_path / 'w' / LOCK_NAME).exists()  # released
    WorkDirLock(str(tmp_path / 'w')).acquire().release()


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    work = tmp_path / 'w'
    work.mkdir()
    (work / LOCK_NAME).write_text(json.dumps(dict(pid=dead_pid(), host=socket.gethostname(), start='1',
                                                  started=time.time() - 60)))
    with WorkDirLock(str(work)) as lock:
        assert 'no longer running' in lock.note
        assert json.loads((work / LOCK_NAME).read_text())['pid'] == os.getpid()


def test_lock_of_a_live_process_without_flock_is_respected(tmp_path):
    """A file system without flock: the lock file's PID (alive, same start time) still refuses."""
    from panet_mm.engine.work_dir import _process_start
    work = tmp_path / 'w'
    work.mkdir()
    holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        time.sleep(0.2)
        (work / LOCK_NAME).write_text(json.dumps(dict(pid=holder.pid, host=socket.gethostname(),
                                                      start=_process_start(holder.pid), started=time.time())))
        with pytest.raises(WorkDirBusyError, match=f'pid {holder.pid}'):
            WorkDirLock(str(work)).acquire()
    finally:
        holder.kill()
        holder.wait()


def test_only_temporary_files_of_checkpoint_saves_are_removed(tmp_path):
    names = ['.iter_4.pth.k2j4_x9a.tmp', '.last_checkpoint.abcdefgh.tmp', '.best_PSNR_iter_2.pth.12345678.tmp',
             'iter_2.pth', '.notes.abcdefgh.tmp', 'mine.tmp', '.iter_4.pth.short.tmp']
    for n in names:
        (tmp_path / n).write_bytes(b'x' * 10)
    removed, size = remove_interrupted_saves(str(tmp_path))
    assert removed == sorted(names[:3]) and size == 30
    assert sorted(os.listdir(tmp_path)) == sorted(names[3:])


def test_folders_the_lock_created_are_removed_when_nothing_was_written(tmp_path):
    kept = tmp_path / 'work_dirs'
    kept.mkdir()
    WorkDirLock(str(kept / 'runs' / 'a')).acquire().release()
    assert os.listdir(tmp_path) == ['work_dirs'] and os.listdir(kept) == []  # made, then removed; kept stays
    with WorkDirLock(str(kept / 'b')):
        (kept / 'b' / 'iter_1.pth').write_bytes(b'x')
    assert os.listdir(kept / 'b') == ['iter_1.pth']  # a run that wrote something keeps its folder
    with WorkDirLock(str(kept)):
        pass
    assert kept.is_dir()  # a folder that existed before is never removed, even empty


def train(demo_root, work, iters=2):
    opts = demo_overrides(demo_root, **{'train_cfg.max_iters': iters, 'train_cfg.val_interval': 1000,
                                        'default_hooks.checkpoint.interval': 2})
    return run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work)] + opts, check=False)


def test_train_refuses_a_work_dir_in_use(demo_root, tmp_path):
    work = tmp_path / 'w'
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time; from panet_mm.engine.work_dir import WorkDirLock; '
         'WorkDirLock(sys.argv[1]).acquire(); print("held", flush=True); time.sleep(120)', str(work)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        proc = train(demo_root, work)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and f'pid {holder.pid}' in errors[0] and 'Traceback' not in proc.stderr
    assert os.listdir(work) == [LOCK_NAME]  # no log folder, no checkpoint of the refused run


def test_killed_run_leftovers_are_cleaned_at_the_next_start(demo_root, tmp_path):
    work = tmp_path / 'w'
    work.mkdir()
    (work / LOCK_NAME).write_text(json.dumps(dict(pid=dead_pid(), host=socket.gethostname(), start='1')))
    (work / '.iter_2.pth.ab12cd34.tmp').write_bytes(b'\0' * 4096)  # a save interrupted by SIGKILL
    (work / 'notes.tmp').write_text('mine')
    proc = train(demo_root, work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'took over the lock' in proc.stderr and 'removed 1 temporary file(s)' in proc.stderr
    assert not (work / '.iter_2.pth.ab12cd34.tmp').exists() and (work / 'notes.tmp').exists()
    assert (work / 'iter_2.pth').is_file() and not (work / LOCK_NAME).exists()


def test_run_failing_before_its_first_log_leaves_no_work_dir(demo_root, tmp_path):
    """A data error found while the runner is built: the work directory train.py created is removed again."""
    work = tmp_path / 'work_dirs' / 'missing_data'
    opts = demo_overrides(demo_root, **{'train_dataloader.dataset.data_root': str(tmp_path / 'no_DIV2K')})
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work)] + opts, check=False)
    assert proc.returncode == 1 and 'no_DIV2K' in proc.stderr, proc.stderr[-3000:]
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)


def test_run_failing_in_its_first_batch_leaves_no_work_dir(demo_root, tmp_path):
    """LR images of another scale, found when the first batch is loaded (after mmengine wrote the config copy): the
    copy goes with the log folder, and the work directory train.py created with them; the error names the folder's
    scale instead of asking to replace one sample's file and resume."""
    work = tmp_path / 'work_dirs' / 'x3_data'
    opts = demo_overrides(demo_root, **{'train_dataloader.dataset.data_prefix.img': 'DIV2K_train_LR_bicubic/X3_sub'})
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work)] + opts, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    (error,) = (line for line in proc.stderr.splitlines() if line.startswith('error:'))
    assert "1/3 of its" in error and "holds x3 images; point it at the x2 images" in error, error
    assert 'replace or remove' not in error and '--resume' not in error
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)


def test_a_failed_run_keeps_the_config_copy_an_earlier_run_wrote(demo_root, tmp_path):
    work = tmp_path / 'w'
    work.mkdir()
    copy = work / osp.basename(DEMO)
    copy.write_text('# an earlier run\n')
    opts = demo_overrides(demo_root, **{'train_dataloader.dataset.data_prefix.img': 'DIV2K_train_LR_bicubic/X3_sub'})
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work)] + opts, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert os.listdir(work) == [osp.basename(DEMO)]   # (rewritten by mmengine, as every run does; not removed)


def test_a_work_dir_that_cannot_be_created_is_named_with_the_file_in_its_way(tmp_path):
    """A work directory below a file was os.makedirs' NotADirectoryError traceback."""
    from panet_mm.engine.work_dir import WorkDirError
    (tmp_path / 'config.py').write_text('')
    with pytest.raises(WorkDirError) as err:
        WorkDirLock(str(tmp_path / 'config.py' / 'run')).acquire()
    assert err.value.for_cli({'work_dir': '--work-dir'}) == (
        f"--work-dir '{tmp_path}/config.py/run' cannot be created: '{tmp_path}/config.py' is a file; pass another "
        '--work-dir')
    assert sorted(os.listdir(tmp_path)) == ['config.py']
