"""Every task restores every ordinary image kind (panet_mm.apis and tools/restore.py).

The images are written as cameras and tools write them (OpenCV and Pillow encoders: 8-bit grey / colour PNG,
colour and grey JPEG, 16-bit PNG, PNG with alpha, grey saved as 3 equal channels); the four tasks' demo configs
with seeded tiny models restore each, with exactly one note per conversion and the model's channel count.
"""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import DEMO_CONFIG, DEMOSAIC_CONFIG, ROOT, save_runner_checkpoint
from PIL import Image

from panet_mm import apis as R
from panet_mm.apis import restore_cli
from panet_mm.datasets.transforms import bayer_mosaic

H, W = 12, 16
TASKS = {
    'sr': DEMO_CONFIG,
    'dn': osp.join(ROOT, 'configs', 'demo', 'panet_dn_sigma30_demo.py'),
    'car': osp.join(ROOT, 'configs', 'demo', 'panet_car_q10_demo.py'),
    'demosaic': DEMOSAIC_CONFIG,
}


def photo(seed=0):
    """A smooth, deterministic RGB image (uint8) with some texture."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([x / W * 200 + 20, y / H * 180 + 30, (x + y) / (H + W) * 150 + 50], axis=2)
    return np.clip(img + rng.uniform(-12, 12, img.shape), 0, 255).astype(np.uint8)


def grey():
    return photo(1)[..., 1]


def write_kinds(folder):
    """The ordinary image kinds, each written by the tool that usually writes it; returns {file name: kind}."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb, g = photo(), grey()
    cv2.imwrite(str(folder / 'grey8.png'), g)                                    # scanner / cv2 grey PNG
    cv2.imwrite(str(folder / 'rgb8.png'), rgb[..., ::-1])                        # cv2 writes BGR arrays
    Image.fromarray(rgb).save(folder / 'rgb8.jpg', quality=92)                   # a camera JPEG (4:2:0)
    Image.fromarray(g).save(folder / 'grey.jpg', quality=30)                     # a grey JPEG (the CAR input)
    cv2.imwrite(str(folder / 'rgb16.png'), rgb[..., ::-1].astype(np.uint16) * 257)   # 16-bit export
    Image.fromarray(g.astype(np.uint16) * 257).save(folder / 'grey16.png')       # Pillow I;16 PNG
    Image.fromarray(np.dstack([rgb, np.full((H, W), 200, np.uint8)])).save(folder / 'rgba.png')
    Image.fromarray(np.dstack([g, np.full((H, W), 255, np.uint8)]), 'LA').save(folder / 'la.png')
    Image.fromarray(np.dstack([g, g, g])).save(folder / 'grey3.png')             # grey saved as RGB
    return sorted(p.name for p in folder.iterdir())


GREY_FILES = {'grey8.png', 'grey.jpg', 'grey16.png', 'la.png', 'grey3.png'}
ALPHA = 'alpha channel kept apart from the model and written back with the result (resized to its size)'
ALPHA_VALUE = {'rgba.png': 200, 'la.png': 255}
BITS = '16-bit image reduced to 8 bits, as the config loads images'
TO_COLOUR = 'grey image converted to 3 channels for the colour model'
TO_Y = 'colour image converted to its Y channel (ITU-R BT.601) for the 1-channel model'
EQUAL = 'grey image stored as 3 equal channels taken as 1 channel for the 1-channel model'
RAW = 'taken as raw GRBG Bayer data'
MOSAICKED = 'colour image mosaicked with the GRBG Bayer pattern first'


def expected_notes(task, name):
    """The notes (prefixes) for ``name`` under ``task``: one per conversion, in the order they are done."""
    notes = [ALPHA] if name in ('rgba.png', 'la.png') else []
    notes += [BITS] if '16' in name else []
    grey_file = name in GREY_FILES
    if task == 'demosaic':
        notes.append(RAW if grey_file else MOSAICKED)
    elif task == 'car':
        notes += [EQUAL] if name == 'grey3.png' else [] if grey_file else [TO_Y]
    elif grey_file and name != 'grey3.png':
        notes.append(TO_COLOUR)
    return notes


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A checkpoint (mmengine Runner format) of each task's demo model, seeded weights."""
    from mmagic.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import panet_mm  # noqa: F401
    init_default_scope('mmagic')
    folder = tmp_path_factory.mktemp('kinds_ckpt')
    found = {}
    for task, config in TASKS.items():
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(config).model)
        found[task] = str(save_runner_checkpoint(model, folder / f'{task}.pth'))
    return found


@pytest.fixture(scope='module')
def restorers(checkpoints):
    return {task: R.build_restorer(TASKS[task], checkpoints[task], device='cpu') for task in TASKS}


@pytest.fixture(scope='module')
def kinds(tmp_path_factory):
    folder = tmp_path_factory.mktemp('kinds') / 'in'
    return folder, write_kinds(folder)


def test_the_files_are_the_kinds_they_claim(kinds):
    folder, names = kinds
    stored = {}
    for n in names:
        with Image.open(folder / n) as im:
            stored[n] = (im.format, im.mode)
    assert stored == {'grey8.png': ('PNG', 'L'), 'rgb8.png': ('PNG', 'RGB'), 'rgb8.jpg': ('JPEG', 'RGB'),
                      'grey.jpg': ('JPEG', 'L'), 'rgb16.png': ('PNG', 'RGB'), 'grey16.png': ('PNG', 'I;16'),
                      'rgba.png': ('PNG', 'RGBA'), 'la.png': ('PNG', 'LA'), 'grey3.png': ('PNG', 'RGB')}
    assert cv2.imread(str(folder / 'rgb16.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint16  # Pillow says RGB


@pytest.mark.parametrize('task', list(TASKS))
def test_every_kind_is_restored_with_one_note_per_conversion(task, restorers, kinds, monkeypatch):
    folder, names = kinds
    r = restorers[task]
    generator = r.model.generator
    seen = []
    handle = generator.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        for name in names:
            seen.clear()
            img, notes = r.read_image(str(folder / name))
            want = expected_notes(task, name)
            assert len(notes) == len(want) and all(w in n for n, w in zip(notes, want)), (name, notes)
            out = r.restore_array(img)
            in_c = 1 if task == 'car' else 3
            assert len(seen) == 1 and seen[0].shape == (1, in_c, H, W), name   # the model's channel count
            scale = 2 if task == 'sr' else 1
            assert out.shape == (H * scale, W * scale, in_c) and out.dtype == np.uint8, name
            given = np.ascontiguousarray(img if img.dtype == np.uint8 else np.round(img).astype(np.uint8))
            if scale == 1:
                assert not np.array_equal(out, given), f'{task} {name}: output is the input unchanged'
            assert float(np.abs(out.astype(float) - out.mean()).max()) > 0, name  # not a flat image
    finally:
        handle.remove()


def test_grey_jpeg_task_gets_grey_values_and_y(restorers, kinds):
    """The 1-channel JPEG model sees grey files as they are and colour files as their Y (as GrayOrY does)."""
    folder, _ = kinds
    r = restorers['car']
    for name in ('grey8.png', 'grey3.png', 'la.png'):
        img, _ = r.read_image(str(folder / name))
        assert img.shape == (H, W, 1) and np.array_equal(img[..., 0], grey()), name
    img, _ = r.read_image(str(folder / 'grey16.png'))
    assert np.array_equal(img[..., 0], grey())  # cv2's 16-to-8 bit reduction (v >> 8) of v * 257 gives v back
    img, _ = r.read_image(str(folder / 'rgb8.png'))
    import mmcv
    assert np.array_equal(img[..., 0], mmcv.rgb2ycbcr(photo(), y_only=True))


def test_demosaic_grey_files_are_raw_bayer_data(restorers, kinds):
    folder, _ = kinds
    mosaic = bayer_mosaic(np.dstack([grey()] * 3), 'GRBG')
    for name in ('grey8.png', 'grey3.png', 'la.png'):
        img, _ = restorers['demosaic'].read_image(str(folder / name))
        assert np.array_equal(img, mosaic), name


def test_arrays_of_every_kind(restorers):
    """The array API: 16-bit, grey-as-3-channels and alpha arrays reach the model with its channel count (the alpha
    comes back as a 4th channel, a grey result then as 3 equal channels, as the whole call gives it)."""
    rgb16 = photo().astype(np.uint16) * 257
    for task, r in restorers.items():
        in_c = 1 if task == 'car' else 3
        scale = 2 if task == 'sr' else 1
        for arr in (rgb16, grey(), np.dstack([grey()] * 3)):
            assert r.restore_array(arr).shape == (H * scale, W * scale, in_c), (task, arr.shape, arr.dtype)
        rgba = np.dstack([photo(), np.full((H, W), 9, np.uint8)])
        out = r.restore_array(rgba)
        assert out.shape == (H * scale, W * scale, 4) and (out[..., 3] == 9).all(), task
        assert np.array_equal(out[..., :3], np.dstack([r.restore_array(rgba[..., :3])] * (3 if in_c == 1 else 1)))
        # 16 bits: the same 0-255 values (the 8-bit Y of the JPEG model is rounded, the float one is not)
        diff = np.abs(r.restore_array(rgb16).astype(int) - r.restore_array(photo()).astype(int)).max()
        assert diff <= (1 if task == 'car' else 0), task


def load_tool():
    return restore_cli


@pytest.mark.parametrize('task', list(TASKS))
def test_restore_tool_restores_every_kind(task, checkpoints, kinds, tmp_path, capsys):
    folder, names = kinds
    out = tmp_path / 'out'
    rc = load_tool().main(['--config', TASKS[task], '--checkpoint', checkpoints[task], str(folder), str(out),
                           '--device', 'cpu', '--no-progress'])
    err = capsys.readouterr()
    assert rc == 0, err.err
    assert f'restored {len(names)} of {len(names)} image(s)' in err.out
    note_lines = [ln for ln in err.err.splitlines() if ln.startswith('note:')]
    assert len(note_lines) == sum(len(expected_notes(task, n)) for n in names), note_lines
    assert not any('Y channel' in ln and '3 channels' in ln for ln in note_lines)
    scale = 2 if task == 'sr' else 1
    for name in names:
        written = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)  # 8 bits, in the input's format
        channels = 1 if written.ndim == 2 else written.shape[2]
        assert written.shape[:2] == (H * scale, W * scale) and written.dtype == np.uint8, name
        if name in ALPHA_VALUE:  # the alpha written back (grey results as 3 equal channels: PNG has no grey + alpha)
            assert channels == 4 and (written[..., 3] == ALPHA_VALUE[name]).all(), name
            if task == 'car':
                assert (written[..., 0] == written[..., 1]).all() and (written[..., 1] == written[..., 2]).all()
        else:
            assert channels == (1 if task == 'car' else 3), name
