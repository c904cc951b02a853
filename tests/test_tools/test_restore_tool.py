"""tools/restore.py (in-process through main() and once as a subprocess) and mmagic's inferencers on the
demo config: folders with a corrupt file, single files, refusals that write nothing, test-time flags, and the
demosaicing demo config (raw CFA / photo / mosaic inputs, align kept, self-ensemble refused)."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DEMO_CONFIG, DEMOSAIC_CONFIG, ROOT, build_demo_model, run_tool, save_runner_checkpoint

from panet_mm.apis import restore_cli as TOOL
from panet_mm.apis.inferencers.restoration_inferencer import RestorationInferencer


def photo(h, w, seed=0):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 200 + 20, y / h * 180 + 30, (x + y) / (h + w) * 150 + 50], axis=2)
    return np.clip(img + rng.uniform(-8, 8, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def inputs(tmp_path):
    """A folder: two colour images, a grey one, one in a sub-folder, a corrupt PNG and a text file."""
    src = tmp_path / 'photos'
    (src / 'trip').mkdir(parents=True)
    cv2.imwrite(str(src / 'a.png'), photo(14, 18))
    cv2.imwrite(str(src / 'b.jpg'), photo(12, 20, seed=1), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(src / 'grey.png'), photo(10, 16, seed=2)[..., 0])
    cv2.imwrite(str(src / 'trip' / 'c.png'), photo(12, 12, seed=3))
    ok, buf = cv2.imencode('.png', photo(30, 30))
    (src / 'broken.png').write_bytes(buf.tobytes()[:len(buf) // 2])  # truncated download
    (src / 'notes.txt').write_text('not an image')
    return src


def snapshot(folder):
    return {p: open(p, 'rb').read() for p in sorted(str(q) for q in folder.rglob('*') if q.is_file())}


def run(capsys, *args):
    rc = TOOL.main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_folder_with_corrupt_file(demo_checkpoint, inputs, tmp_path, capsys):
    before = snapshot(inputs)
    out = tmp_path / 'restored'
    rc, stdout, stderr = run(capsys, '--config', DEMO_CONFIG, '--checkpoint', demo_checkpoint, inputs, out,
                             '--recursive', '--device', 'cpu')
    assert rc == 1  # one image failed
    skipped = [ln for ln in stderr.splitlines() if ln.startswith('skipped')]
    assert len(skipped) == 1 and 'broken.png' in skipped[0] and 'truncated' in skipped[0]
    assert any('grey.png' in ln and 'converted to 3 channels' in ln for ln in stderr.splitlines())
    assert 'restored 4 of 5 image(s)' in stderr and '1 failed' in stderr
    sizes = {str(p.relative_to(out)): cv2.imread(str(p)).shape for p in out.rglob('*') if p.is_file()}
    assert sizes == {'a.png': (28, 36, 3), 'b.jpg': (24, 40, 3), 'grey.png': (20, 32, 3), 'trip/c.png': (24, 24, 3)}
    assert snapshot(inputs) == before  # inputs untouched
    assert not [p for p in tmp_path.rglob('*.tmp')]  # atomic writes left no temporary file

    rc, stdout, stderr = run(capsys, '--config', DEMO_CONFIG, '--checkpoint', demo_checkpoint, inputs, out,
                             '--recursive', '--suffix', '_x2', '--ext', 'png')
    assert rc == 1 and sorted(p.name for p in out.rglob('*_x2.png')) == ['a_x2.png', 'b_x2.png', 'c_x2.png',
                                                                       'grey_x2.png']


def test_single_file_and_existing_outputs(demo_checkpoint, inputs, tmp_path, capsys):
    args = ['--config', DEMO_CONFIG, '--checkpoint', demo_checkpoint]
    rc, stdout, _ = run(capsys, *args, inputs / 'a.png', tmp_path / 'x2.png')
    assert rc == 0 and 'restored 1 of 1' in stdout
    assert cv2.imread(str(tmp_path / 'x2.png')).shape == (28, 36, 3)
    rc, _, _ = run(capsys, *args, inputs / 'b.jpg', tmp_path / 'outdir', '--suffix', '_sr')
    assert rc == 0 and cv2.imread(str(tmp_path / 'outdir' / 'b_sr.jpg')).shape == (24, 40, 3)
    (tmp_path / 'x2.png').write_bytes(b'keep me')
    rc, stdout, _ = run(capsys, *args, inputs / 'a.png', tmp_path / 'x2.png')
    assert rc == 0 and 'kept 1 existing' in stdout and (tmp_path / 'x2.png').read_bytes() == b'keep me'
    rc, _, _ = run(capsys, *args, inputs / 'a.png', tmp_path / 'x2.png', '--overwrite')
    assert rc == 0 and cv2.imread(str(tmp_path / 'x2.png')).shape == (28, 36, 3)


def test_refusals_write_nothing(demo_checkpoint, inputs, tmp_path, capsys):
    args = ['--config', DEMO_CONFIG, '--checkpoint', demo_checkpoint]
    before = snapshot(inputs)
    rc, _, err = run(capsys, *args, inputs, inputs)
    assert rc == 2 and 'is the input itself' in err
    rc, _, err = run(capsys, *args, inputs / 'a.png', inputs / 'a.png', '--overwrite')
    assert rc == 2 and 'is the input itself' in err
    out = tmp_path / 'out'
    rc, _, err = run(capsys, *args, inputs, out, '--suffix', '/../../escaped')
    assert rc == 2 and 'path separator' in err
    out.mkdir()
    os.symlink(inputs / 'a.png', out / 'a.png')  # an output name that leads back to an input
    rc, _, err = run(capsys, *args, inputs, out, '--overwrite')
    assert rc == 2 and 'is the input file' in err and (out / 'a.png').is_symlink()
    assert snapshot(inputs) == before and os.listdir(out) == ['a.png']


def test_wrong_checkpoint_is_refused_before_writing(inputs, tmp_path, capsys):
    x3 = save_runner_checkpoint(build_demo_model(upscale_factor=3), tmp_path / 'x3.pth')
    out = tmp_path / 'out'
    rc, _, err = run(capsys, '--config', DEMO_CONFIG, '--checkpoint', x3, inputs, out)
    assert rc == 2 and 'does not match the model' in err and 'generator.upsample.0.upsample_conv.weight' in err
    assert not out.exists()

    class Payload:
        def __reduce__(self):
            return exec, (f'open({str(tmp_path / "pwned")!r}, "w").close()',)

    evil = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=build_demo_model().state_dict(), meta=Payload()), evil)
    rc, _, err = run(capsys, '--config', DEMO_CONFIG, '--checkpoint', evil, inputs, out)
    assert rc == 2 and 'weights-only loader refuses' in err
    assert not (tmp_path / 'pwned').exists() and not out.exists()
    (tmp_path / 'notes.pth').write_text('hello\n')   # once a KeyError traceback from torch's unpickler, exit 1
    rc, _, err = run(capsys, '--config', DEMO_CONFIG, '--checkpoint', tmp_path / 'notes.pth', inputs, out)
    assert rc == 2 and err.strip() == f"error: checkpoint '{tmp_path / 'notes.pth'}' is not a PyTorch checkpoint: " \
        'it is a text file; pass the .pth file tools/train.py saved (or one torch.save wrote), or copy or download ' \
        'this one again'
    rc, _, err = run(capsys, '--config', DEMO_CONFIG, '--checkpoint', tmp_path, inputs, out)
    assert rc == 2 and f"checkpoint '{tmp_path}' is a folder; pass a .pth file in it" in err and not out.exists()


@pytest.mark.parametrize('flags', [
    ['--chop', '--chop-min-size', '100', '--chop-shave', '2'],
    ['--tile', '8', '--tile-overlap', '2'],
    ['--self-ensemble'],
    ['--precision', 'bf16'],
])
def test_test_time_flags_keep_sizes(demo_checkpoint, tmp_path, flags, capsys):
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), photo(14, 18))
    rc, _, err = run(capsys, '--config', DEMO_CONFIG, '--checkpoint', demo_checkpoint, src, tmp_path / 'o.png', *flags)
    assert rc == 0, err
    assert cv2.imread(str(tmp_path / 'o.png')).shape == (28, 36, 3)


def test_bad_flag_combinations(demo_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        TOOL.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), 'a', 'b', '--chop', '--tile', '8'])
    with pytest.raises(SystemExit):
        TOOL.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), 'a', 'b', '--chop-shave', '3'])
    cv2.imwrite(str(tmp_path / 'a.png'), photo(8, 8))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:                 # refused by the parser, before the model loads
        run(capsys, '--config', DEMO_CONFIG, '--checkpoint', demo_checkpoint, tmp_path / 'a.png',
            tmp_path / 'o.png', '--tile', '8', '--tile-overlap', '8')
    assert exit_.value.code == 2
    assert '--tile-overlap 8 must be smaller than --tile 8' in capsys.readouterr().err


def test_demosaic_inputs_notes_and_self_ensemble_refused(demosaic_checkpoint, tmp_path, capsys):
    from panet_mm.datasets.transforms import bayer_mosaic
    rgb = photo(14, 19)
    mosaic = bayer_mosaic(rgb, 'GRBG')
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'raw.png'), mosaic.max(axis=2))  # a raw GRBG colour filter array, 1 channel
    cv2.imwrite(str(src / 'photo.png'), rgb[..., ::-1])
    cv2.imwrite(str(src / 'mosaic.png'), mosaic[..., ::-1])
    args = ['--config', DEMOSAIC_CONFIG, '--checkpoint', demosaic_checkpoint, src]
    out = tmp_path / 'out'
    rc, stdout, err = run(capsys, *args, out, '--chop', '--chop-min-size', '60', '--chop-shave', '3')
    assert rc == 0 and 'restored 3 of 3' in stdout, err
    notes = [ln for ln in err.splitlines() if ln.startswith('note:')]
    assert len(notes) == 2
    assert 'raw.png' in notes[1] and 'taken as raw GRBG Bayer data' in notes[1]
    assert 'photo.png' in notes[0] and 'mosaicked with the GRBG Bayer pattern' in notes[0]
    results = {p.name: cv2.imread(str(p)) for p in out.iterdir()}
    assert {k: v.shape for k, v in results.items()} == {n: (14, 19, 3) for n in ('raw.png', 'photo.png', 'mosaic.png')}
    assert np.array_equal(results['raw.png'], results['mosaic.png'])  # the same mosaic reached the model
    rc, _, err = run(capsys, *args, tmp_path / 'se', '--self-ensemble')
    assert rc == 2 and '--self-ensemble is refused for the demosaicing config' in err and 'drop --self-ensemble' in err
    assert 'self_ensemble' not in err  # the flag, not the config key
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and not (tmp_path / 'se').exists()


def test_cli_subprocess(demo_checkpoint, inputs, tmp_path):
    proc = run_tool([sys.executable, 'tools/restore.py', '--config', DEMO_CONFIG, '--checkpoint',
                     str(demo_checkpoint), str(inputs), str(tmp_path / 'out'), '--no-progress'], check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert sum(ln.startswith('skipped') for ln in proc.stderr.splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.png', 'b.jpg', 'grey.png']


def test_recursive_follows_symlinked_folders_and_reports_dangling_links(demo_checkpoint, tmp_path, capsys):
    """A new user's folder: a link to a folder of images, a link loop and a dangling link ('restored 1 of 1
    image(s)', the rest passed over in silence)."""
    src, other = tmp_path / 'in', tmp_path / 'elsewhere'
    make = [(src / 'a.png', 0), (other / 'b.png', 1), (other / 'more' / 'c.png', 2)]
    for path, seed in make:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), photo(10, 12, seed=seed))
    os.symlink(other, src / 'extdir')
    os.symlink('.', src / 'loop')
    os.symlink('moved-away.png', src / 'dangling.png')
    out = tmp_path / 'out'
    rc, stdout, stderr = run(capsys, '--config', DEMO_CONFIG, '--checkpoint', demo_checkpoint, src, out,
                             '--recursive', '--no-progress')
    assert rc == 1, stderr
    assert f"skipped '{src / 'dangling.png'}': a symbolic link to 'moved-away.png', which does not exist; restore or " \
        'remove the link' in stderr.splitlines()
    assert f"restored 3 of 4 image(s) into {out}; 1 failed: {src / 'dangling.png'}" in stderr.splitlines()
    assert sorted(str(p.relative_to(out)) for p in out.rglob('*') if p.is_file()) == [
        'a.png', 'extdir/b.png', 'extdir/more/c.png']
    # nothing restored: the summary names no output it did not make ("restored 0 of 1 image(s) into t.png")
    half = tmp_path / 'half.png'
    half.write_bytes((src / 'a.png').read_bytes()[:60])
    rc, stdout, stderr = run(capsys, '--config', DEMO_CONFIG, '--checkpoint', demo_checkpoint, half,
                             tmp_path / 't.png', '--no-progress')
    assert rc == 1 and f'restored 0 of 1 image(s); 1 failed: {half}' in stderr.splitlines(), stderr


def test_ctrl_c_prints_one_line_and_the_same_command_does_the_rest(demo_checkpoint, tmp_path, capsys, monkeypatch):
    """Ctrl-C printed a 95-line KeyboardInterrupt traceback and no summary; finished results were kept."""
    src = tmp_path / 'in'
    src.mkdir()
    for i, name in enumerate(['a.png', 'b.png', 'c.png']):
        cv2.imwrite(str(src / name), photo(10, 12, seed=i))
    out = tmp_path / 'out'
    forward, calls, stop = RestorationInferencer.forward, [], {}

    def interrupted(self, data):  # Ctrl-C while the model computes the image of call number stop['at']
        calls.append(1)
        if len(calls) == stop['at']:
            raise KeyboardInterrupt
        return forward(self, data)

    def interrupt_at(n, *extra):
        del calls[:]
        stop['at'] = n
        return run(capsys, *args, *extra)

    monkeypatch.setattr(RestorationInferencer, 'forward', interrupted)
    monkeypatch.delenv('PANET_MM_DEBUG', raising=False)
    args = ['--config', DEMO_CONFIG, '--checkpoint', demo_checkpoint, src, out, '--no-progress']
    rc, stdout, stderr = interrupt_at(2)
    assert rc == 130 and not stdout
    assert stderr == (f'interrupted: restored 1 of 3 image(s); finished results are kept in {out}, run the same '
                      'command again to do the rest\n')
    assert sorted(os.listdir(out)) == ['a.png']  # (no temporary file)
    rc, stdout, stderr = interrupt_at(2)  # the same command keeps a.png, computes b.png, is interrupted in c.png
    assert rc == 130 and not stdout
    assert stderr == (f'interrupted: restored 1 of 3 image(s), kept 1 existing; finished results are kept in {out}, '
                      'run the same command again to do the rest\n')
    assert sorted(os.listdir(out)) == ['a.png', 'b.png']
    rc, _, stderr = interrupt_at(1, '--overwrite')  # (--overwrite computes a.png again)
    assert rc == 130 and stderr == ('interrupted: restored 0 of 3 image(s); run the same command again to start '
                                    'over, or without --overwrite to restore only the images that have no output '
                                    'yet\n')
    monkeypatch.setenv('PANET_MM_DEBUG', '1')  # the traceback, for a bug report
    del calls[:]
    with pytest.raises(KeyboardInterrupt):
        TOOL.main([str(a) for a in args])
    capsys.readouterr()
    monkeypatch.setattr(RestorationInferencer, 'forward', forward)
    monkeypatch.delenv('PANET_MM_DEBUG')
    rc, stdout, _ = run(capsys, *args)
    assert rc == 0 and f'restored 1 of 3 image(s) into {out}; kept 2 existing output(s)' in stdout
    assert sorted(os.listdir(out)) == ['a.png', 'b.png', 'c.png']


#: tools/restore.py with the model's second image blocking until a signal comes (a slow image, without timing).
SLOW_SECOND_IMAGE = """
import os, runpy, signal, sys, time, warnings
signal.signal(signal.SIGINT, signal.default_int_handler)  # (a background job starts with SIGINT ignored)
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    from panet_mm.apis.inferencers.restoration_inferencer import RestorationInferencer
forward, calls = RestorationInferencer.forward, []
def slow_second(self, data):
    calls.append(1)
    if len(calls) == 2:
        open(os.environ['BUSY_FILE'], 'w').close()  # busy with the second image, until Ctrl-C
        while True:
            time.sleep(0.05)
    return forward(self, data)
RestorationInferencer.forward = slow_second
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


@pytest.mark.parametrize('signum,status,by', [(signal.SIGINT, 130, ''), (signal.SIGTERM, 143, ' (SIGTERM)')])
def test_a_signal_stops_tools_restore_with_one_line(demo_checkpoint, tmp_path, signum, status, by):
    """A real SIGINT (Ctrl-C) or SIGTERM (kill, timeout, a scheduler) to tools/restore.py while it computes the second
    of two images: SIGTERM ended it without a line, and a write in progress left its temporary file."""
    src = tmp_path / 'in'
    src.mkdir()
    for i, name in enumerate(['a.png', 'b.png']):
        cv2.imwrite(str(src / name), photo(10, 12, seed=i))
    out, busy = tmp_path / 'out', tmp_path / 'busy'
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''), BUSY_FILE=str(busy))
    env.pop('PANET_MM_DEBUG', None)
    proc = subprocess.Popen([sys.executable, '-c', SLOW_SECOND_IMAGE, 'tools/restore.py', '--config', DEMO_CONFIG,
                             '--checkpoint', str(demo_checkpoint), str(src), str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not busy.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert busy.exists(), proc.communicate(timeout=60)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status and not stdout
    assert stderr == (f'interrupted{by}: restored 1 of 2 image(s); finished results are kept in {out}, run the same '
                      'command again to do the rest\n')
    assert sorted(os.listdir(out)) == ['a.png']


class NearestUp(torch.nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode='nearest')


@pytest.fixture(scope='module')
def plain_checkpoint(tmp_path_factory):
    """The demo model as tools/train.py (tensor-only message hub) or the converter write it: mmengine's
    load_checkpoint, which mmagic's inferencers use, is weights-only once panet_mm is imported."""
    path = tmp_path_factory.mktemp('plain') / 'demo_x2.pth'
    torch.save(dict(meta=dict(iter=2, mmengine_version='0.10.7'), state_dict=build_demo_model().state_dict()), path)
    return path


def test_mmagic_inferencer_on_demo_config(plain_checkpoint, tmp_path):
    """MMagicInferencer picks its task from model_name only: 'edsr' selects the image super-resolution
    inferencer; model_config / model_ckpt replace EDSR's config and weights (nothing is downloaded)."""
    from mmagic.apis import MMagicInferencer
    editor = MMagicInferencer(model_name='edsr', model_config=DEMO_CONFIG, model_ckpt=str(plain_checkpoint),
                              device='cpu')
    src = tmp_path / 'lr.png'
    cv2.imwrite(str(src), photo(14, 18))
    editor.infer(img=str(src), result_out_dir=str(tmp_path / 'sr.png'))
    assert cv2.imread(str(tmp_path / 'sr.png')).shape == (28, 36, 3)
    # colours and pre-processing: with a nearest-neighbour generator the result is the input, enlarged
    editor.inferencer.inferencer.model.generator = NearestUp()
    editor.infer(img=str(src), result_out_dir=str(tmp_path / 'nn.png'))
    expected = cv2.resize(cv2.imread(str(src)), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(cv2.imread(str(tmp_path / 'nn.png')), expected)


def test_image_super_resolution_inferencer_directly(plain_checkpoint, tmp_path):
    from mmagic.apis.inferencers import ImageSuperResolutionInferencer
    inferencer = ImageSuperResolutionInferencer(DEMO_CONFIG, str(plain_checkpoint), device='cpu')
    src = tmp_path / 'lr.png'
    cv2.imwrite(str(src), photo(10, 12))
    inferencer(img=str(src), result_out_dir=str(tmp_path / 'sr.png'))
    assert cv2.imread(str(tmp_path / 'sr.png')).shape == (20, 24, 3)


def test_mmagic_inference_demo_script(plain_checkpoint, tmp_path):
    import mmagic
    script = osp.join(osp.dirname(mmagic.__file__), '.mim', 'demo', 'mmagic_inference_demo.py')
    if not osp.isfile(script):
        pytest.skip('this mmagic install has no .mim/demo/mmagic_inference_demo.py')
    src = tmp_path / 'lr.png'
    cv2.imwrite(str(src), photo(14, 18))
    run_tool([sys.executable, script, '--model-name', 'edsr', '--model-config', DEMO_CONFIG, '--model-ckpt',
              str(plain_checkpoint), '--img', str(src), '--result-out-dir', str(tmp_path / 'sr.png'),
              '--device', 'cpu'])
    assert cv2.imread(str(tmp_path / 'sr.png')).shape == (28, 36, 3)
