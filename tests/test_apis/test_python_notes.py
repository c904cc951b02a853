"""The Python entry points (``__call__``, ``infer``, ``restore_array``) say their notes, each once, through mmengine's
current logger; ``restore_files`` and the CLI keep printing them their own way, not twice. Also the notes and hints on
array kinds that went silently wrong: bf16 on a CPU without bfloat16 units, 8-bit values in a uint16 array, RGBA
through restore_array, channels-first arrays, read-only arrays (CPU, the demo model)."""
import contextlib
import warnings

import cv2
import numpy as np
import pytest
from conftest import DEMO_CONFIG, log_records

from panet_mm import apis as R
from panet_mm.apis import PANetInferencer, RestorationInferencer, RestoreError, restore_cli
from panet_mm.apis.image_kinds import ALPHA_NOTE
from panet_mm.apis.inferencers import restoration_inferencer

GREY_NOTE = 'grey image converted to 3 channels for the colour model'
FP16_NOTE = ("fp16 autocast on CPU is emulated and slow (the demo model took about 28x the float32 time on a 64x64 "
             "image); this CPU has no bfloat16 units either, so use precision='fp32', or device='cuda'")
BF16_NOTE = ('bf16 autocast on this CPU is emulated and slow: it has no bfloat16 units (AVX512-BF16, AMX), and the '
             "demo model took about 30x the float32 time on a 64x64 image on such a CPU; use precision='fp32', or "
             "device='cuda'")


def photo(h=10, w=12, seed=0):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 200 + 20, y / h * 180 + 30, (x + y) / (h + w) * 150 + 50], axis=2)
    return np.clip(img + rng.uniform(-8, 8, img.shape), 0, 255).astype(np.uint8)


@contextlib.contextmanager
def logged():
    """The messages logged through mmengine's current logger (where print_log(logger='current') goes)."""
    messages = []
    with log_records() as records:
        try:
            yield messages
        finally:
            messages.extend(r.getMessage() for r in records)


@pytest.fixture(scope='module')
def inferencer(demo_checkpoint):
    return RestorationInferencer(DEMO_CONFIG, str(demo_checkpoint), device='cpu')


def test_call_infer_and_restore_array_log_their_notes(demo_checkpoint, tmp_path, monkeypatch):
    """The user trial: PANetInferencer(..., precision='fp16')(img=grey, result_out_dir='g.jpg') returned silently
    (no fp16-on-CPU note, no grey-to-colour note, no attention-cost note)."""
    monkeypatch.setattr(restoration_inferencer, 'cpu_bf16_units', lambda: False)
    monkeypatch.setattr(RestorationInferencer, 'slow_attention_macs', 0)
    editor = PANetInferencer('panet_sr_x2_demo', str(demo_checkpoint), device='cpu', precision='fp16')
    grey = photo()[..., 0]
    with logged() as first:
        out = editor(img=grey, result_out_dir=str(tmp_path / 'g.jpg'))
    assert out.shape == (20, 24, 3) and cv2.imread(str(tmp_path / 'g.jpg')).shape == (20, 24, 3)
    assert first[:2] == [f'note: {FP16_NOTE}', f'note: {GREY_NOTE}'] and len(first) == 3
    assert first[2].startswith('note: 12x10 in one pass: the pyramid attention alone needs about')
    with logged() as again:  # the run's note once per inferencer; the image's notes for each image
        editor.infer(img=grey)
        editor.restore_array(grey)
    assert again == [f'note: {GREY_NOTE}', first[2]] * 2
    src = tmp_path / 'grey.png'
    cv2.imwrite(str(src), grey)
    with logged() as files:  # a file's notes name it, as tools/restore.py's do
        editor(img=str(src))
    assert files == [f"note: '{src}': {GREY_NOTE}", f"note: '{src}': {first[2][len('note: '):]}"]


def test_restore_files_and_the_cli_do_not_log_them_again(demo_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(restoration_inferencer, 'cpu_bf16_units', lambda: False)
    r = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', precision='fp16')
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), photo()[..., 0])
    lines = []
    with logged() as messages:
        summary = R.restore_files(r, R.plan_jobs(str(tmp_path / 'in'), str(tmp_path / 'out')), log=lines.append,
                                  progress=False)
        rc = restore_cli.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint),
                               str(tmp_path / 'in'), str(tmp_path / 'cli'), '--device', 'cpu', '--precision', 'fp16',
                               '--no-progress'])
    assert summary.restored and rc == 0 and messages == []
    assert lines == [f'note: {FP16_NOTE}', f"note: '{tmp_path / 'in' / 'a.png'}': {GREY_NOTE}"]
    captured = capsys.readouterr()
    assert captured.err.count('emulated and slow') == 1 and captured.err.count(GREY_NOTE) == 1
    assert 'emulated and slow' not in captured.out


def test_alpha_lost_in_the_result_file_is_said_not_the_write_back(inferencer, tmp_path):
    bgra = np.dstack([photo(), np.full((10, 12), 9, np.uint8)])
    with logged() as png:
        inferencer(img=bgra, result_out_dir=str(tmp_path / 'a.png'))
    assert png == [f'note: {ALPHA_NOTE}']
    with logged() as jpg:
        out = inferencer(img=bgra, result_out_dir=str(tmp_path / 'a.jpg'))
    assert out.shape == (20, 24, 4) and jpg == [
        'note: its alpha channel cannot be written into .jpg files, so the result is opaque; a .png result file '
        'keeps it']


@pytest.mark.parametrize('units', [False, True, None])
def test_bf16_on_a_cpu_without_bfloat16_units_is_noted(demo_checkpoint, monkeypatch, units):
    """--precision bf16 on an AVX2 CPU took 30x the float32 time (README, "Half precision") without a word."""
    monkeypatch.setattr(restoration_inferencer, 'cpu_bf16_units', lambda: units)
    r = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', precision='bf16')
    assert r.run_notes() == ([BF16_NOTE] if units is False else [])  # None: torch cannot tell, nothing claimed
    with logged() as messages:
        r.restore_array(photo())
        r.restore_array(photo())
    assert messages == ([f'note: {BF16_NOTE}'] if units is False else [])
    r.hints = restore_cli.CLI_HINTS
    assert r.run_notes() == ([BF16_NOTE.replace("precision='fp32'", '--precision fp32').replace(
        "device='cuda'", '--device cuda')] if units is False else [])
    r.device = 'cuda'
    assert r.run_notes() == []  # a GPU's bfloat16 is native


def test_8_bit_values_in_a_uint16_array_are_noted(inferencer):
    """bgr_uint8.astype(np.uint16) was taken as 0-65535 and restored nearly black, silently."""
    bgr = photo()
    note = (f'img is uint16 with values only up to {bgr.max()}, taken as 16-bit (0-65535), so the result is nearly '
            'black; if it holds 8-bit values, pass img.astype(np.uint8)')
    assert inferencer.preprocess(bgr.astype(np.uint16))['notes'] == [note]
    with logged() as messages:
        dark = inferencer(img=bgr.astype(np.uint16))  # a note, not a refusal: a very dark 16-bit photo is legitimate
    assert messages == [f'note: {note}'] and dark.shape == (20, 24, 3)
    assert inferencer.preprocess(bgr.astype(np.uint16) * 257)['notes'] == []  # a real 16-bit image: nothing to say
    grey16 = bgr[..., 0].astype(np.uint16)
    assert inferencer.preprocess(grey16)['notes'] == [note.replace(str(bgr.max()), str(grey16.max())), GREY_NOTE]


def test_restore_array_keeps_alpha_as_the_call_does(inferencer):
    rgba = np.dstack([photo()[..., ::-1], np.full((10, 12), 200, np.uint8)])
    with logged() as messages:
        out = inferencer.restore_array(rgba)
    assert out.shape == (20, 24, 4) and (out[..., 3] == 200).all() and messages == [f'note: {ALPHA_NOTE}']
    bgra = inferencer(img=np.ascontiguousarray(rgba[..., [2, 1, 0, 3]]))
    assert np.array_equal(inferencer.to_bgr(out), bgra)  # the config's order and OpenCV's: the same image
    assert np.array_equal(out[..., :3], inferencer.restore_array(rgba[..., :3]))


@pytest.mark.parametrize('shape', [(3, 10, 12), (4, 10, 12), (1, 10, 12)])
def test_channels_first_arrays_are_refused_with_the_transpose(inferencer, shape):
    img = np.zeros(shape, np.uint8)
    message = (f'img has shape {shape}, channels first (C x H x W), but restoration takes H x W x C images; pass '
               'np.transpose(img, (1, 2, 0))')
    for call in (inferencer.restore_array, inferencer.preprocess, inferencer):
        with pytest.raises(RestoreError) as err:
            call(img)
        assert str(err.value) == message
    assert inferencer.restore_array(np.transpose(img, (1, 2, 0))).shape == (20, 24, shape[0] if shape[0] > 1 else 3)


def test_read_only_arrays_restore_without_torch_s_warning(inferencer):
    """np.asarray of a Pillow image is read-only: torch.from_numpy warned 'The given NumPy array is not writable'."""
    from PIL import Image
    pil = Image.fromarray(photo()[..., ::-1].copy())
    with pytest.raises(RestoreError, match=r'convert it: restore_array\(np\.array\(img\)\)'):
        inferencer.restore_array(pil)
    frozen = np.asarray(pil)
    assert not frozen.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = inferencer.restore_array(frozen)
        assert np.array_equal(inferencer(img=frozen[..., ::-1]), inferencer.to_bgr(out))
    assert not frozen.flags.writeable  # the caller's array is left as it was
