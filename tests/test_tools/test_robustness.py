"""Bad input stops with one clear line; interrupted training resumes to the same weights."""
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import torch
from conftest import ROOT, demo_overrides, run_tool

from panet_mm.engine import load_weights_only

DEMO = 'configs/demo/panet_sr_x2_demo.py'


def train(demo_root, work, iters, *extra, check=True, data_root=None):
    opts = demo_overrides(demo_root, **{
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': 1000, 'default_hooks.checkpoint.interval': 2,
        'default_hooks.logger.interval': 1})
    if data_root is not None:
        opts.append(f'train_dataloader.dataset.data_root={data_root}')
    return run_tool([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work)] + opts + list(extra),
                    check=check)


def weights(path):
    return load_weights_only(path)['state_dict']  # weights_only=True, as torch >= 2.6 loads by default


def test_unknown_type_lists_close_names(demo_root, tmp_path):
    proc = train(demo_root, tmp_path / 'w', 2, 'model.generator.type=PAEDSRNett', check=False)
    assert proc.returncode == 1
    assert "type='PAEDSRNett'" in proc.stderr and 'did you mean PAEDSRNet' in proc.stderr


def test_checkpoint_of_another_scale_is_refused(demo_root, tmp_path):
    train(demo_root, tmp_path / 'x2', 2)
    out = tmp_path / 'm.json'
    args = [sys.executable, 'tools/test.py', 'configs/demo/panet_sr_x2_demo.py', str(tmp_path / 'x2' / 'iter_2.pth'),
            '--out', str(out), '--work-dir', str(tmp_path / 't')]
    proc = run_tool(args + demo_overrides(demo_root, **{'model.generator.upscale_factor': 4}), check=False)
    assert proc.returncode == 1
    assert 'does not match the model' in proc.stderr and 'upsample.1.upsample_conv.weight' in proc.stderr
    assert 'allow_partial_load=True' in proc.stderr and not out.exists()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(demo_root, tmp_path):
    work = tmp_path / 'w'
    train(demo_root, work, 2)
    proc = train(demo_root, work, 4, 'model.pixel_loss.loss_weight=inf', '--resume', check=False)
    assert proc.returncode == 1
    assert 'loss' in proc.stderr and 'at iteration 3' in proc.stderr and '_s0' in proc.stderr
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_2.pth')
    assert not (work / 'iter_4.pth').exists()
    assert all(torch.isfinite(v).all() for v in weights(work / 'iter_2.pth').values())


def test_corrupt_image_and_wrong_lr_size_are_named(demo_root, tmp_path):
    data = tmp_path / 'DIV2K'
    shutil.copytree(demo_root / 'DIV2K', data)
    names = sorted(os.listdir(data / 'DIV2K_train_HR_sub'))
    # keep one sample so the failure is certain: a truncated LR image
    (data / 'meta_info_DIV2K800sub_GT.txt').write_text(f'{names[0]} (120,120,3)\n')
    lr = data / 'DIV2K_train_LR_bicubic' / 'X2_sub' / names[0]
    lr.write_bytes(lr.read_bytes()[:100])
    proc = train(demo_root, tmp_path / 'w', 2, check=False, data_root=data)
    assert proc.returncode == 1 and str(lr) in proc.stderr and 'replace or remove this file' in proc.stderr

    cv2.imwrite(str(lr), cv2.imread(str(data / 'DIV2K_train_HR_sub' / names[0]))[:50, :50])  # not HR/2
    proc = train(demo_root, tmp_path / 'w2', 2, check=False, data_root=data)
    assert proc.returncode == 1 and str(lr) in proc.stderr and 'mismatch' in proc.stderr.lower()


def test_sigkill_then_resume_matches_uninterrupted_run(demo_root, tmp_path):
    ref = tmp_path / 'ref'
    train(demo_root, ref, 6)

    work = tmp_path / 'killed'
    opts = demo_overrides(demo_root, **{
        'train_cfg.max_iters': 6, 'train_cfg.val_interval': 1000, 'default_hooks.checkpoint.interval': 2})
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work)] + opts, cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # killed once the iteration-2 checkpoint is recorded (mmengine writes iter_2.pth, then last_checkpoint: waiting
    # for the first file alone killed the run between the two on a loaded machine)
    while not (work / 'last_checkpoint').exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (work / 'last_checkpoint').exists() and (work / 'iter_2.pth').exists()

    train(demo_root, work, 6, '--resume')
    got, want = weights(work / 'iter_6.pth'), weights(ref / 'iter_6.pth')
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6, msg=k)


def test_empty_folder_and_too_small_image_are_named(demo_root, tmp_path):
    data = tmp_path / 'DIV2K'
    shutil.copytree(demo_root / 'DIV2K', data)
    names = sorted(os.listdir(data / 'DIV2K_train_HR_sub'))
    (data / 'meta_info_DIV2K800sub_GT.txt').write_text(f'{names[0]} (120,120,3)\n')
    hr = data / 'DIV2K_train_HR_sub' / names[0]
    lr = data / 'DIV2K_train_LR_bicubic' / 'X2_sub' / names[0]
    img = cv2.imread(str(hr))
    cv2.imwrite(str(hr), img[:20, :20])  # smaller than the 32x32 HR patch of the demo config
    cv2.imwrite(str(lr), img[:10, :10])
    proc = train(demo_root, tmp_path / 'w', 2, check=False, data_root=data)
    assert proc.returncode == 1 and str(hr) in proc.stderr and 'smaller than patch size' in proc.stderr

    (data / 'meta_info_DIV2K800sub_GT.txt').write_text('\n')
    proc = train(demo_root, tmp_path / 'w2', 2, check=False, data_root=data)
    assert proc.returncode == 1 and 'no images found' in proc.stderr and 'make_demo_data.py' in proc.stderr
