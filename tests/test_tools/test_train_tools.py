"""tools/train.py, --resume, tools/test.py and tools/dist_train.sh on the demo data (CPU)."""
import json
import os.path as osp
import socket
import sys

import pytest
import torch
from conftest import DEMO_CONFIG, ROOT, demo_overrides, run_tool

DEMO = 'configs/demo/panet_sr_x2_demo.py'


def short(demo_root, max_iters):
    return demo_overrides(demo_root, **{
        'train_cfg.max_iters': max_iters, 'train_cfg.val_interval': 2,
        'default_hooks.checkpoint.interval': 2, 'default_hooks.logger.interval': 1})


def ckpt_iter(path):
    return torch.load(path, map_location='cpu', weights_only=False)['meta']['iter']


def test_train_resume_and_test(demo_root, tmp_path):
    work = tmp_path / 'work'
    # --resume with nothing to resume says so (mmengine: "Auto resumed from the latest checkpoint None.")
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work), '--resume']
                    + short(demo_root, 4))
    log = proc.stdout + proc.stderr
    assert f"--resume: no checkpoint in '{work}' yet, so training starts at iteration 0" in log
    assert 'checkpoint None' not in log
    assert 'Set5/PSNR' in log
    assert ckpt_iter(work / 'iter_4.pth') == 4
    assert list(work.glob('best_Set5_PSNR_iter_*.pth'))

    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work), '--resume']
                    + short(demo_root, 6))
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'Iter(train) [5/6]' in log and 'Iter(train) [1/6]' not in log
    assert ckpt_iter(work / 'iter_6.pth') == 6
    # another model's config resuming this work directory: the fix is another --work-dir, not a partial load
    proc = run_tool([sys.executable, 'tools/train.py', 'configs/demo/panet_dn_sigma30_demo.py', '--work-dir',
                     str(work), '--resume'] + short(demo_root, 8), check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert f"--resume: checkpoint '{work / 'iter_6.pth'}' in the work directory '{work}' is of another model" \
        in proc.stderr and 'pass another --work-dir to train this one' in proc.stderr
    assert 'allow_partial_load' not in proc.stderr

    out = tmp_path / 'metrics.json'
    run_tool([sys.executable, 'tools/test.py', DEMO, str(work / 'iter_6.pth'), '--out', str(out),
              '--work-dir', str(tmp_path / 'test')] + demo_overrides(demo_root))
    metrics = json.loads(out.read_text())
    assert metrics['Set5/PSNR'] > 10 and 0 < metrics['Set5/SSIM'] <= 1


def test_resume_from_a_named_checkpoint(demo_root, tmp_path):
    """--resume CHECKPOINT (mmdet's / mmpretrain's form) was an argparse "unrecognized arguments" error; it resumes
    from that file, into this run's work directory, and the note on optimizer overrides comes after the config dump
    (it was the first of some 400 lines)."""
    first = tmp_path / 'first'
    run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(first)] + short(demo_root, 2))
    second = tmp_path / 'second'
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(second), '--resume',
                     str(first / 'iter_2.pth')] + short(demo_root, 4) + ['optim_wrapper.optimizer.lr=0.5'])
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 2' in log and ckpt_iter(second / 'iter_4.pth') == 4
    assert log.index('optim_wrapper.optimizer.lr from --cfg-options do not apply') > log.index('Log directory:')
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(tmp_path / 'third'), '--resume',
                     str(tmp_path / 'nope.pth')] + short(demo_root, 4), check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        f"error: --resume '{tmp_path / 'nope.pth'}' is not a checkpoint file; pass a checkpoint of the run (e.g. its "
        'iter_N.pth), or --resume alone for the latest one in the work directory')
    assert not (tmp_path / 'third').exists()


def test_resume_before_the_config_is_mmagics_bare_flag(monkeypatch, capsys):
    """`--resume CONFIG` (the bare flag written first) read the config as --resume's checkpoint and stopped with
    "the following arguments are required: config"."""
    import importlib.util

    import pytest
    spec = importlib.util.spec_from_file_location('train_tool', osp.join(ROOT, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for argv, want in ((['--resume', DEMO], (DEMO, 'auto')), ([DEMO, '--resume'], (DEMO, 'auto')),
                       ([DEMO, '--resume', 'w/iter_2.pth'], (DEMO, 'w/iter_2.pth')), ([DEMO], (DEMO, None))):
        monkeypatch.setattr('sys.argv', ['train.py'] + argv)
        args = tool.parse_args()
        assert (args.config, args.resume) == want, argv
    monkeypatch.setattr('sys.argv', ['train.py', '--resume', 'w/iter_2.pth'])
    with pytest.raises(SystemExit):
        tool.parse_args()
    assert 'the following arguments are required: config' in capsys.readouterr().err


def test_missing_dataset_names_folder_and_command(tmp_path):
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(tmp_path / 'w'),
                     '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}/nowhere/DIV2K'],
                    check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert f'{tmp_path}/nowhere/DIV2K/DIV2K_train_LR_bicubic/X2_sub' in err
    assert 'python tools/dataset_converters/make_demo_data.py' in err
    # the run stopped before its first iteration: no timestamped folder holding only this failure's log, and no
    # empty work directory either
    assert not (tmp_path / 'w').exists()


def test_a_test_stopped_by_missing_data_leaves_no_work_directory(demo_checkpoint, tmp_path):
    """tools/test.py said which folder is missing and left an empty work_dirs/<config>/ (training left none)."""
    work = tmp_path / 'work_dirs' / 't'
    proc = run_tool([sys.executable, 'tools/test.py', DEMO, str(demo_checkpoint), '--work-dir', str(work),
                     '--cfg-options', f'test_dataloader.dataset.data_root={tmp_path}/nowhere/Set5'], check=False)
    assert proc.returncode == 1 and f'{tmp_path}/nowhere/Set5' in proc.stderr
    assert not (tmp_path / 'work_dirs').exists()


def test_a_plain_mmagic_dataset_missing_its_folder_is_one_sentence(demo_checkpoint, tmp_path):
    """mmagic's BasicImageDataset (a user's own loader, not CheckedImageDataset) stopped with
    "[Errno 2] No such file or directory: 'data/Set14/LRbicx2'" and nothing on where or what to check."""
    config = tmp_path / 'mine.py'
    config.write_text(f"_base_ = '{DEMO_CONFIG}'\n"
                      "test_dataloader = dict(dataset=dict(_delete_=True, type='BasicImageDataset', "
                      "data_root='nowhere/Set14', data_prefix=dict(img='LRbicx2', gt='GTmod12'), pipeline=[]))\n")
    proc = run_tool([sys.executable, 'tools/test.py', str(config), str(demo_checkpoint), '--work-dir',
                     str(tmp_path / 'w')], check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        f"error: 'nowhere/Set14/LRbicx2' does not exist in {ROOT} (relative paths start there); if it is a dataset "
        "folder, check the config's data_root and data_prefix, or prepare it (tools/dataset_converters/)")


def test_missing_config_is_named(tmp_path):
    proc = run_tool([sys.executable, 'tools/train.py', 'configs/nope.py'], check=False)
    assert proc.returncode != 0 and "config file 'configs/nope.py' not found" in proc.stderr


def free_port() -> int:
    """A port the system has just handed out: a fixed one collided when two suites (the two stacks) ran at once
    (EADDRINUSE in one, and the other's rank joined the wrong rendezvous and aborted)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_two_processes_on_cpu(demo_root, tmp_path):
    work = tmp_path / 'dist'
    proc = run_tool(['bash', 'tools/dist_train.sh', DEMO, '2', '--work-dir', str(work)] + short(demo_root, 4),
                    env={'PORT': str(free_port()), 'OMP_NUM_THREADS': '1'})
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    assert 'broadcast_buffers is deprecated' not in log  # torch >= 2.14 warned on every rank for the old name
    assert 'MKL_NUM_THREADS environment variable' not in log  # mmengine's, per rank, and without effect on torch
    assert ckpt_iter(work / 'iter_4.pth') == 4
    assert osp.isfile(work / 'last_checkpoint')
    # a 2-process test: every rank's images in the per-image file (the sampler pads 5 images to 6: one row each)
    scores = tmp_path / 'scores.csv'
    run_tool(['bash', f'{ROOT}/tools/dist_test.sh', DEMO_CONFIG, str(work / 'iter_4.pth'), '2', '--work-dir',
              str(tmp_path / 't'), '--per-image', str(scores)] + demo_overrides(demo_root),
             env={'PORT': str(free_port()), 'OMP_NUM_THREADS': '1'}, cwd=tmp_path)
    # the ranks' results gathered through the work directory, then removed: mmengine left .dist_test/ in the cwd
    assert not (tmp_path / '.dist_test').exists() and not list((tmp_path / 't').glob('.dist_collect*'))
    rows = scores.read_text().splitlines()
    assert rows[0] == 'set,image,PSNR,SSIM' and len(rows) == 6 and len({r.split(',')[1] for r in rows[1:]}) == 5


def test_model_and_data_of_different_scales_are_named_in_one_line(demo_root, demo_checkpoint, tmp_path):
    """A x3 model on x2 pairs stopped inside the loss ("The size of tensor a (48) must match ..."), an x2 checkpoint
    tested on x3 inputs inside the metric ("Image shapes are different")."""
    proc = run_tool([sys.executable, 'tools/train.py', DEMO_CONFIG, '--work-dir', str(tmp_path / 'w')]
                    + demo_overrides(demo_root, **{'model.generator.upscale_factor': 3, 'train_cfg.max_iters': 2}),
                    check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        'error: the model turns 16x16 inputs into 48x48 (x3) but their ground truth is 32x32 (x2): the generator\'s '
        "scale (model.generator upscale_factor) and the data's (its LR folder, the pipeline's scale) disagree; make "
        'them the same')
    proc = run_tool([sys.executable, 'tools/test.py', DEMO_CONFIG, str(demo_checkpoint), '--work-dir',
                     str(tmp_path / 't')] + demo_overrides(demo_root, **{'test_dataloader.dataset.data_prefix.img':
                                                                           'LRbicx3'}), check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert '(x2) but their ground truth is' in proc.stderr and '(x3)' in proc.stderr
    assert f"inputs ({demo_root}/Set5/LRbicx3/" in proc.stderr and 'check_dataset.py finds such pairs' in proc.stderr


def test_a_misspelt_argument_in_the_config_is_named_and_leaves_no_log_folder(tmp_path):
    """`mid_chanels=32` ended in a traceback ("unexpected keyword argument") and each retry left a log folder."""
    config = tmp_path / 'typo.py'
    config.write_text(f"_base_ = '{DEMO_CONFIG}'\nmodel = dict(generator=dict(mid_chanels=32))\n")
    work = tmp_path / 'w'
    proc = run_tool([sys.executable, 'tools/train.py', str(config), '--work-dir', str(work)], check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == ("error: the config gives PAEDSRNet an argument 'mid_chanels' that "
                                                    "it does not take; did you mean 'mid_channels'?")
    assert not work.exists()  # no log folder, and not the empty work directory


def test_explain_bad_argument_only_rewrites_registered_classes():
    from panet_mm.engine.config_checks import explain_bad_argument
    text = explain_bad_argument("PyramidAttention.__init__() got an unexpected keyword argument 'type'")
    assert text.startswith("the config gives PyramidAttention an argument 'type' that it does not take; that dict "
                           "holds PyramidAttention's arguments, not a module to build: remove type (it takes channels")
    assert explain_bad_argument("Foo.__init__() got an unexpected keyword argument 'x'") is None  # not registered
    assert explain_bad_argument('unsupported operand type(s)') is None
    # a shipped CheckedImageDataset dict switched to mmagic's BasicImageDataset keeps its prepare_cmd
    assert explain_bad_argument("BaseDataset.__init__() got an unexpected keyword argument 'prepare_cmd'") == (
        "the config gives a BaseDataset an argument 'prepare_cmd', which only panet_mm's CheckedImageDataset takes; "
        "keep type='CheckedImageDataset' there, or drop prepare_cmd")


def test_resume_when_the_checkpoint_last_checkpoint_names_is_gone(demo_root, tmp_path):
    """mmengine read work_dir/last_checkpoint (an absolute path) and stopped with "checkpoint ... not found" when that
    file had been deleted or the work directory moved; the newest checkpoint present is resumed, with a warning."""
    import shutil
    first = tmp_path / 'first'
    run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(first)] + short(demo_root, 4))
    work = tmp_path / 'moved'
    shutil.move(str(first), str(work))                        # last_checkpoint still names first/iter_4.pth
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work), '--resume']
                    + short(demo_root, 5))
    log = proc.stdout + proc.stderr
    assert f"names '{first / 'iter_4.pth'}', which is gone; resuming from '{work / 'iter_4.pth'}'" in log
    assert 'resumed epoch: 0, iter: 4' in log and ckpt_iter(work / 'iter_5.pth') == 5
    (work / 'iter_5.pth').unlink()                            # deleted to save space: the newest left is iter 4
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work), '--resume']
                    + short(demo_root, 5))
    assert 'resumed epoch: 0, iter: 4' in proc.stdout + proc.stderr and ckpt_iter(work / 'iter_5.pth') == 5
    for path in work.glob('iter_*.pth'):
        path.unlink()
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work), '--resume']
                    + short(demo_root, 5), check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --resume: '{work / 'last_checkpoint'}' names '{work / 'iter_5.pth'}', which is gone, and no other "
        'checkpoint (iter_N.pth) is left in the work directory; train without --resume, or pass another --work-dir')


def test_dist_train_one_failing_rank_is_one_line_per_process(demo_root, tmp_path):
    """A data problem on one rank: its readable line came untagged, then ~40 lines of the other rank's traceback
    ending in gloo's "Connection closed by peer". Each process now says one line naming its rank."""
    config = tmp_path / 'rank1_fails.py'
    config.write_text(f"_base_ = '{DEMO_CONFIG}'\n"  # (an import statement would make it a lazy-import config)
                      "train_dataloader = dict(num_workers=0, dataset=dict(data_root='nowhere' if __import__('os')"
                      f".environ.get('RANK') == '1' else '{demo_root}/DIV2K'))\n"
                      f"val_dataloader = dict(dataset=dict(data_root='{demo_root}/Set5'))\n")
    proc = run_tool(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(tmp_path / 'w'),
                     '--cfg-options', 'train_cfg.max_iters=2'],
                    env={'PORT': str(free_port()), 'OMP_NUM_THREADS': '1'}, check=False, timeout=300)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error')]
    assert any(ln.startswith('error (rank 1): dataset') and 'nowhere' in ln for ln in errors), proc.stderr[-3000:]
    assert 'Connection closed by peer' not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.slow  # four training runs in subprocesses
def test_resume_in_a_copied_work_dir_reads_and_deletes_nothing_of_the_original(demo_root, tmp_path):
    """A copy of a work directory names the original's files (last_checkpoint and the best-checkpoint record hold
    absolute paths): mmengine resumed from the original's checkpoint, then deleted the original's best checkpoint
    when a better score came. A refused --resume overwrote the work directory's config copy; a new run in a work
    directory of an earlier run's checkpoints said nothing."""
    import shutil
    orig = tmp_path / 'orig'
    run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(orig)] + short(demo_root, 4))
    before = {p.name: p.stat().st_mtime_ns for p in orig.iterdir() if p.is_file()}
    assert any(name.startswith('best_') for name in before)
    copy = tmp_path / 'copy'
    shutil.copytree(orig, copy)
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(copy), '--resume']
                    + short(demo_root, 8))
    log = proc.stdout + proc.stderr
    assert (f"names '{orig / 'iter_4.pth'}', outside this work directory (a copied work directory?); resuming from "
            f"'{copy / 'iter_4.pth'}'") in log
    assert 'resumed epoch: 0, iter: 4' in log and ckpt_iter(copy / 'iter_8.pth') == 8
    assert {p.name: p.stat().st_mtime_ns for p in orig.iterdir() if p.is_file()} == before
    assert len(list(copy.glob('best_*.pth'))) == 1  # the copy's own best replaced, if a better score came

    config_copy = copy / 'panet_sr_x2_demo.py'
    text = config_copy.read_text()
    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(copy), '--resume']
                    + short(demo_root, 10) + ['model.generator.mid_channels=16'], check=False)
    assert proc.returncode == 1 and 'is of another model' in proc.stderr
    assert config_copy.read_text() == text

    proc = run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(copy)] + short(demo_root, 1))
    assert f"'{copy}' holds the checkpoints of an earlier run" in proc.stdout + proc.stderr
