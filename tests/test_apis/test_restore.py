"""panet_mm.apis: weights-only checkpoint loading, strict key matching, colour handling and data
pre-processing of the config, test-time modes, demosaicing inputs (raw CFA / photo / mosaic), safe output
planning and atomic writes (CPU, tiny model)."""
import os
import os.path as osp
import pickle
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DEMO_CONFIG, DEMOSAIC_CONFIG, ROOT, build_demo_model, save_runner_checkpoint
from mmengine.config import Config

from panet_mm import apis as R
from panet_mm.datasets.transforms import bayer_mosaic
from panet_mm.engine.checkpoint import MMENGINE_SAFE_GLOBALS


def photo(h=20, w=28, seed=0):
    """A smooth, deterministic RGB test image (uint8)."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 200, y / h * 180 + 30, (x + y) / (h + w) * 150 + 50], axis=2)
    return np.clip(img + rng.uniform(-10, 10, img.shape), 0, 255).astype(np.uint8)


class NearestUp(torch.nn.Module):
    """Stand-in generator: nearest x2 up-sampling, recording what it was fed."""

    def forward(self, x):
        self.seen = x.detach().clone()
        return F.interpolate(x, scale_factor=2, mode='nearest')


@pytest.fixture(scope='module')
def restorer(demo_checkpoint):
    return R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu')


def swap_generator(monkeypatch, restorer, generator):
    """Replace the model's generator for one test, restored afterwards on every pytest version.

    Submodules live in ``Module._modules``, not the instance ``__dict__``: pytest >= 9 undoes
    ``monkeypatch.setattr(model, 'generator', ...)`` by deleting the attribute, which would take the real
    generator away from the module-scoped restorer. Patching the ``_modules`` entry restores it.
    """
    monkeypatch.setitem(restorer.model._modules, 'generator', generator)


# ---------------------------------------------------------------------------------------- checkpoints


def test_runner_checkpoint_loads_weights_only(demo_checkpoint):
    with pytest.raises(pickle.UnpicklingError):  # plain weights-only loading refuses mmengine's metadata
        torch.load(demo_checkpoint, weights_only=True)
    state = R.load_state_dict_safely(str(demo_checkpoint))
    model = build_demo_model()
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # same seed, same weights
    allowed = torch.serialization.get_safe_globals()
    assert not [g for g in allowed if g in MMENGINE_SAFE_GLOBALS]  # allowed for that load only


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").write("pwned")',)


class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.mark.parametrize('payload', [RunsCode, RunsShell])
def test_crafted_pickle_is_refused(tmp_path, payload):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(dict(meta=payload(str(marker)), state_dict=build_demo_model().state_dict()), path)
    with pytest.raises(R.CheckpointRefusedError, match='the weights-only loader refuses'):
        R.load_state_dict_safely(str(path))
    assert not marker.exists()


def test_truncated_and_missing_checkpoints_are_refused(tmp_path, demo_checkpoint):
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(demo_checkpoint.read_bytes()[:5000])
    with pytest.raises(R.CheckpointRefusedError, match='cannot be read'):
        R.load_state_dict_safely(str(cut))
    with pytest.raises(R.CheckpointRefusedError, match='nope.pth. not found; pass a .pth'):
        R.load_state_dict_safely(str(tmp_path / 'nope.pth'))


def test_other_scale_is_refused_with_keys(tmp_path):
    path = save_runner_checkpoint(build_demo_model(upscale_factor=3), tmp_path / 'x3.pth')
    with pytest.raises(R.CheckpointRefusedError) as err:
        R.build_restorer(DEMO_CONFIG, str(path), device='cpu')
    msg = str(err.value)
    assert 'mis-shaped' in msg and 'generator.upsample.0.upsample_conv.weight' in msg
    assert 'another scale' in msg and 'nothing was loaded' in msg


def test_quoted_number_in_the_config_is_named_by_the_python_api(tmp_path, demo_checkpoint):
    """build_restorer reads configs itself (not through the tools): mid_channels='32' failed inside nn.Conv2d."""
    config = tmp_path / 'quoted.py'
    config.write_text(f"_base_ = '{DEMO_CONFIG}'\nmodel = dict(generator=dict(mid_channels='32'))\n")
    from panet_mm.utils.errors import PanetMMError
    with pytest.raises(PanetMMError, match="PAEDSRNet mid_channels='32' .* write mid_channels=32 without quotes"):
        R.build_restorer(str(config), str(demo_checkpoint), device='cpu')


def test_other_architecture_is_refused_with_keys(tmp_path):
    from mmagic.registry import MODELS
    torch.manual_seed(0)
    generator = dict(type='PANet', mid_channels=8, num_blocks=2, attention_cfg=dict(reduction=2))
    model = MODELS.build(dict(type='PANetEditModel', generator=generator, pixel_loss=dict(type='L1Loss')))
    path = save_runner_checkpoint(model, tmp_path / 'panet.pth')
    with pytest.raises(R.CheckpointRefusedError) as err:
        R.build_restorer(DEMO_CONFIG, str(path), device='cpu')
    msg = str(err.value)
    assert 'missing (27): generator.add_mean.bias' in msg and 'unexpected (15): generator.body.0.act.weight' in msg
    assert 'mis-shaped (9)' in msg and '... (15 more)' in msg


def test_bare_generator_state_dict_is_accepted(tmp_path):
    model = build_demo_model()
    path = tmp_path / 'bare.pth'
    torch.save(model.generator.state_dict(), path)
    r = R.build_restorer(DEMO_CONFIG, str(path), device='cpu')
    assert all(torch.equal(r.model.state_dict()[k], v) for k, v in model.state_dict().items())


# ---------------------------------------------------------------------------------------- one image


@pytest.mark.parametrize('config', ['panet_sr_x2_div2k.py', 'panet_sr_x3_div2k.py', 'panet_sr_x4_div2k.py',
                                    'demo/panet_sr_x2_demo.py'])
def test_sr_configs_have_an_inference_pipeline(config):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    assert [t['type'] for t in cfg.inference_pipeline] == ['LoadImageFromFile', 'PackInputs']
    load = R.find_load_settings(cfg)
    assert (load.source, load.transform['key'], load.color_type, load.channel_order) == \
        ('inference_pipeline', 'img', 'color', 'rgb')


def test_config_colour_settings(restorer):
    assert restorer.load.source == 'inference_pipeline'
    assert (restorer.load.color_type, restorer.load.channel_order) == ('color', 'rgb')
    assert restorer.in_channels == 3


def test_restore_array_uses_config_preprocessing(restorer, monkeypatch):
    img = photo()
    up = NearestUp()
    swap_generator(monkeypatch, restorer, up)
    out = restorer.restore_array(img)
    # the generator sees RGB / 255 (data_preprocessor mean 0, std 255), the output comes back as given
    expected_in = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    assert torch.allclose(up.seen, expected_in, atol=1e-6)
    assert out.dtype == np.uint8 and np.array_equal(out, img.repeat(2, 0).repeat(2, 1))
    bgr = restorer.to_bgr(out)
    assert np.array_equal(bgr, cv2.resize(img[..., ::-1], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))


def test_grey_array_to_colour_model(restorer, monkeypatch):
    grey = photo()[..., 1]
    img, notes = restorer.adapt_channels(grey)
    assert img.shape == (20, 28, 3) and notes == ['grey image converted to 3 channels for the colour model']
    swap_generator(monkeypatch, restorer, NearestUp())
    assert restorer.restore_array(grey).shape == (40, 56, 3)


@pytest.mark.parametrize('options', [
    dict(),
    dict(chop=dict(min_size=100, shave=2)),  # 4 overlapping quadrants of 8 x 10
    dict(tile=dict(size=10, overlap=4)),  # 2 x 2 tiles
    dict(self_ensemble=True),
    dict(tile=dict(size=10, overlap=2), self_ensemble=True),
])
def test_test_modes_keep_the_size(demo_checkpoint, options):
    r = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', **options)
    assert r.model.test_cfg is not None
    out = r.restore_array(photo(12, 16))
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8


def test_chop_alone_is_the_released_chop_with_its_defaults(demo_checkpoint, capsys):
    """`tools/restore.py --chop` without its size options (and chop={} in Python) was dropped as an empty dict: the
    image ran whole, without a word."""
    from panet_mm.apis import restore_cli
    r = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', chop={})
    assert r.model.chop_cfg == dict(min_size=6400, shave=10, tiles_per_batch=1)
    parser_args = restore_cli.parse_args(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), 'in.png',
                                          'out.png', '--chop'])
    options = restore_cli.inferencer_options(parser_args)
    r = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', **options)
    assert r.model.chop_cfg == dict(min_size=6400, shave=10, tiles_per_batch=1)


def test_progress_bar_shows_the_parts_of_a_slow_image(demo_checkpoint, tmp_path, monkeypatch):
    """Tiles x the x8 ensemble: the bar says how far the image in progress is (it stood still for minutes on whole
    photographs), and the model is left without the callback."""
    import io
    r = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', tile=dict(size=8, overlap=2),
                         self_ensemble=True)
    make_images(tmp_path / 'in', ['a.png'])  # 12x16: 2x3 tiles, 8 passes
    err = io.StringIO()
    monkeypatch.setattr('sys.stderr', err)
    summary = R.restore_files(r, R.plan_jobs(str(tmp_path / 'in'), str(tmp_path / 'out')), progress=True)
    text = err.getvalue()
    assert len(summary.restored) == 1 and 'part 1/48' in text and 'part 47/48' in text, text
    assert r.model.progress is None


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_precision_option(demo_checkpoint, restorer, precision):
    """--precision reaches the model's test_cfg; the 8-bit result stays within a few levels of float32's."""
    r = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', precision=precision)
    assert r.model.precision == precision and r.model.test_cfg['precision'] == precision
    img = photo(12, 16)
    diff = np.abs(r.restore_array(img).astype(int) - restorer.restore_array(img).astype(int))
    assert diff.max() <= 4 and diff.mean() < 1


def test_fp16_on_cpu_is_noted_once_with_the_precision_to_use(demo_checkpoint, restorer, tmp_path, capsys,
                                                              monkeypatch):
    """--precision fp16 on CPU ran without a word, though torch emulates float16 there (28x the float32 time)."""
    from panet_mm.apis import restore_cli
    from panet_mm.apis.inferencers import restoration_inferencer
    r = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', precision='fp16')
    start = 'fp16 autocast on CPU is emulated and slow (the demo model took about 28x the float32 time on a 64x64 '
    for units, advice in ((True, "use precision='bf16', this CPU's half precision (it has bfloat16 units)"),
                          (False, "this CPU has no bfloat16 units either, so use precision='fp32', or device='cuda'"),
                          (None, "use precision='bf16' on CPUs with bfloat16 units (AVX512-BF16, AMX), else "
                                 "precision='fp32'")):
        monkeypatch.setattr(restoration_inferencer, 'cpu_bf16_units', lambda units=units: units)
        assert r.run_notes() == [start + 'image); ' + advice]
    note = r.run_notes()[0]
    assert restorer.run_notes() == []  # float32: nothing to say
    assert R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', precision='bf16').run_notes() == []
    make_images(tmp_path / 'in', ['a.png', 'b.png'])
    assert r.preprocess(str(tmp_path / 'in' / 'a.png'))['notes'] == [note]  # the Python API's notes
    lines = []
    summary = R.restore_files(r, R.plan_jobs(str(tmp_path / 'in'), str(tmp_path / 'out')), log=lines.append,
                              progress=False)
    assert len(summary.restored) == 2 and summary.notes == [('', note)] and lines == [f'note: {note}']  # once
    monkeypatch.setattr(r, 'device', 'cuda')
    assert r.run_notes() == []  # fp16 is the GPU's half precision
    monkeypatch.setattr(restoration_inferencer, 'cpu_bf16_units', lambda: False)
    rc = restore_cli.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint),
                           str(tmp_path / 'in' / 'a.png'), str(tmp_path / 'cli'), '--device', 'cpu', '--precision',
                           'fp16', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 0 and err.count('note: fp16 autocast on CPU is emulated and slow') == 1
    assert "so use --precision fp32, or --device cuda" in err and "precision='" not in err


def test_read_image_reports_conversions(restorer, tmp_path):
    grey = tmp_path / 'grey.png'
    cv2.imwrite(str(grey), photo()[..., 0])
    img, notes = restorer.read_image(str(grey))
    assert img.shape == (20, 28, 3) and notes == ['grey image converted to 3 channels for the colour model']
    rgba = tmp_path / 'rgba.png'
    cv2.imwrite(str(rgba), np.dstack([photo(), np.full((20, 28), 128, np.uint8)]))
    img, notes = restorer.read_image(str(rgba))
    assert img.shape == (20, 28, 3) and notes == [
        'alpha channel kept apart from the model and written back with the result (resized to its size)']
    colour = tmp_path / 'colour.png'
    cv2.imwrite(str(colour), photo()[..., ::-1])
    img, notes = restorer.read_image(str(colour))
    assert np.array_equal(img, photo()) and notes == []  # loaded as RGB, as the config does


@pytest.mark.parametrize('content', [b'', b'not an image at all', 'truncated'])
def test_unreadable_images_raise(restorer, tmp_path, content):
    path = tmp_path / 'bad.png'
    if content == 'truncated':
        ok, buf = cv2.imencode('.png', photo(40, 40))
        content = buf.tobytes()[:len(buf) // 2]
    path.write_bytes(content)
    with pytest.raises(R.ImageReadError, match="bad.png"):
        restorer.read_image(str(path))


def test_colour_image_to_grey_model(tmp_path):
    cfg = tmp_path / 'grey_x2.py'
    cfg.write_text(
        f'_base_ = [{DEMO_CONFIG!r}]\n'
        'model = dict(generator=dict(in_channels=1, out_channels=1, rgb_mean=[0.45], rgb_std=[1.0]),\n'
        '             data_preprocessor=dict(mean=[0.], std=[255.]))\n'
        "inference_pipeline = [dict(type='LoadImageFromFile', key='img', color_type='grayscale', "
        "channel_order='rgb', imdecode_backend='cv2'), dict(type='PackInputs')]\n")
    ckpt = save_runner_checkpoint(build_demo_model(in_channels=1, out_channels=1, rgb_mean=[0.45], rgb_std=[1.0]),
                                  tmp_path / 'grey.pth')
    r = R.build_restorer(str(cfg), str(ckpt), device='cpu')
    assert r.in_channels == 1 and r.load.color_type == 'grayscale'
    src = tmp_path / 'colour.png'
    cv2.imwrite(str(src), photo())
    img, notes = r.read_image(str(src))
    assert img.shape == (20, 28, 1) and notes and 'colour image converted to grey' in notes[0]
    assert r.restore_array(img).shape == (40, 56, 1)
    y, notes = r.adapt_channels(photo())  # a colour array: its Y channel
    assert y.shape == (20, 28, 1) and 'Y channel' in notes[0]


# ---------------------------------------------------------------------------------------- demosaicing


class Record(torch.nn.Module):
    """Stand-in generator: the identity, recording what it was fed."""

    def forward(self, x):
        self.seen = x.detach().clone()
        return x


@pytest.fixture(scope='module')
def demosaicer(demosaic_checkpoint):
    return R.build_restorer(DEMOSAIC_CONFIG, str(demosaic_checkpoint), device='cpu')


def test_demosaic_config_gives_bayer_inputs_and_align(demosaicer):
    assert (demosaicer.load.source, demosaicer.load.bayer_pattern) == ('inference_pipeline', 'GRBG')
    assert demosaicer.model.align == 2 and demosaicer.in_channels == 3


def generator_input(restorer, monkeypatch, img):
    """What the generator receives for ``img`` through restore_array, as a uint8 RGB image."""
    rec = Record()
    swap_generator(monkeypatch, restorer, rec)
    out = restorer.restore_array(img)
    seen = (rec.seen[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(out, seen)  # the identity stand-in gives its input back
    return seen


@pytest.mark.parametrize('kind', ['raw', 'photo', 'mosaic'])
def test_demosaic_inputs_become_the_zero_filled_mosaic(demosaicer, monkeypatch, tmp_path, kind):
    rgb = photo()
    mosaic = bayer_mosaic(rgb, 'GRBG')
    raw = mosaic.max(axis=2)  # the colour filter array: one measurement per pixel
    given = dict(raw=raw, photo=rgb, mosaic=mosaic)[kind]
    path = tmp_path / f'{kind}.png'
    cv2.imwrite(str(path), given if given.ndim == 2 else given[..., ::-1])
    img, notes = demosaicer.read_image(str(path))
    assert np.array_equal(img, mosaic)
    if kind == 'raw':
        assert len(notes) == 1 and notes[0].startswith('1-channel image taken as raw GRBG Bayer data (GR / BG from '
                                                       'the top-left pixel) and expanded')
    elif kind == 'photo':
        assert len(notes) == 1 and 'mosaicked with the GRBG Bayer pattern' in notes[0]
        assert 'pass its colour filter array as a 1-channel image' in notes[0]
    else:
        assert notes == []  # already a GRBG mosaic: unchanged
    assert np.array_equal(generator_input(demosaicer, monkeypatch, img), mosaic)
    # the array API does the same with the arrays themselves (raw as H x W and as H x W x 1, float too)
    assert np.array_equal(generator_input(demosaicer, monkeypatch, given), mosaic)
    if kind == 'raw':
        assert np.array_equal(generator_input(demosaicer, monkeypatch, raw[..., None].astype(np.float64)), mosaic)


def test_demosaic_refuses_a_mosaic_of_another_pattern(demosaicer):
    with pytest.raises(R.RestoreError, match='zero-filled RGGB mosaic but the model .* takes GRBG'):
        demosaicer.restore_array(bayer_mosaic(photo(), 'RGGB'))


def test_demosaic_test_modes_keep_align(demosaic_checkpoint, tmp_path):
    ckpt = str(demosaic_checkpoint)
    with pytest.raises(R.RestoreError, match='self_ensemble is refused for the demosaicing config.*flip or '
                       'transpose.*drop self_ensemble'):
        R.build_restorer(DEMOSAIC_CONFIG, ckpt, device='cpu', self_ensemble=True)
    for options in (dict(chop=dict(min_size=60, shave=3)), dict(tile=dict(size=9, overlap=2))):
        r = R.build_restorer(DEMOSAIC_CONFIG, ckpt, device='cpu', **options)
        assert r.model.align == 2 and (r.model.chop_cfg or r.model.tile_cfg)
        assert r.restore_array(photo(13, 17)).shape == (13, 17, 3)
    # a demosaicing config without align still tiles at even offsets (the inference pipeline mosaics)
    cfg = tmp_path / 'no_align.py'
    cfg.write_text(f'_base_ = [{DEMOSAIC_CONFIG!r}]\nmodel = dict(test_cfg=dict(_delete_=True))\n')
    assert R.build_restorer(str(cfg), ckpt, device='cpu', tile=dict(size=9)).model.align == 2


# ---------------------------------------------------------------------------------------- planning and writing


def make_images(folder, names, size=(12, 16)):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), photo(*size))


def test_plan_folder_names_suffix_ext_recursive(tmp_path):
    src = tmp_path / 'in'
    make_images(src, ['a.png', 'b.jpg', 'sub/c.png'])
    (src / 'notes.txt').write_text('not an image')
    jobs = R.plan_jobs(str(src), str(tmp_path / 'out'))
    assert [osp.relpath(j.dst, tmp_path) for j in jobs] == ['out/a.png', 'out/b.jpg']
    jobs = R.plan_jobs(str(src), str(tmp_path / 'out'), recursive=True, suffix='_x2', ext='png')
    assert [osp.relpath(j.dst, tmp_path) for j in jobs] == ['out/a_x2.png', 'out/b_x2.png', 'out/sub/c_x2.png']


def test_plan_folder_passes_over_hidden_files_and_folders(tmp_path):
    """A Mac's AppleDouble stubs (``._a.jpg``: 4 KB of resource data, no image) were failed images (exit 1);
    thumbnail caches in hidden folders were restored as photos."""
    src = tmp_path / 'in'
    make_images(src, ['a.jpg', '.hidden.png', '.thumbnails/normal/a.png', 'sub/b.png'])
    (src / '._a.jpg').write_bytes(b'\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ' + bytes(4000))
    jobs = R.plan_jobs(str(src), str(tmp_path / 'out'), recursive=True)
    assert [osp.relpath(j.src, src) for j in jobs] == ['a.jpg', 'sub/b.png'] and not any(j.error for j in jobs)
    assert R.plan_jobs(str(src / '.hidden.png'), str(tmp_path / 'x.png'))[0].src == str(src / '.hidden.png')  # named


def test_plan_single_file(tmp_path):
    make_images(tmp_path, ['a.png'])
    src = str(tmp_path / 'a.png')
    assert R.plan_jobs(src, str(tmp_path / 'res'))[0].dst == str(tmp_path / 'res' / 'a.png')
    assert R.plan_jobs(src, str(tmp_path / 'b.jpg'))[0].dst == str(tmp_path / 'b.jpg')
    with pytest.raises(R.RestoreError, match='contradicts'):
        R.plan_jobs(src, str(tmp_path / 'b.jpg'), ext='png')
    # an image format OpenCV does not write: refused (it became a folder 'b.gif' holding 'a.png'); as a folder
    # (trailing slash, or existing) or any other dotted name it is still a folder
    with pytest.raises(R.RestoreParameterError, match=r"'.*b\.gif' names a GIF file, a format OpenCV cannot write"):
        R.plan_jobs(src, str(tmp_path / 'b.gif'))
    assert not (tmp_path / 'b.gif').exists()
    assert R.plan_jobs(src, str(tmp_path / 'b.gif') + '/')[0].dst == str(tmp_path / 'b.gif' / 'a.png')
    assert R.plan_jobs(src, str(tmp_path / 'results.v2'))[0].dst == str(tmp_path / 'results.v2' / 'a.png')
    # a file type's extension (letters) that is not an image's: refused (it became the folder 'a.txt/a.png')
    with pytest.raises(R.RestoreParameterError, match=r"'.*a\.txt' has the extension '\.txt', not an image's"):
        R.plan_jobs(src, str(tmp_path / 'a.txt'))
    assert R.plan_jobs(src, str(tmp_path / 'a.txt') + '/')[0].dst == str(tmp_path / 'a.txt' / 'a.png')
    (tmp_path / 'out.d').mkdir()                                     # an existing folder is a folder
    assert R.plan_jobs(src, str(tmp_path / 'out.d'))[0].dst == str(tmp_path / 'out.d' / 'a.png')


def test_plan_refuses_a_folder_input_with_an_image_file_output(tmp_path):
    """A folder of images into 'single.png': the images went into a new folder named single.png."""
    make_images(tmp_path / 'in', ['a.png', 'b.png'])
    for name in ('single.png', 'single.gif'):
        with pytest.raises(R.RestoreParameterError, match=rf"'.*{name}' names an image file but the input '.*in' is a "
                           'folder; pass an output folder'):
            R.plan_jobs(str(tmp_path / 'in'), str(tmp_path / name))
        assert not (tmp_path / name).exists()
    (tmp_path / 'old.png').mkdir()                                   # an existing folder with such a name is used
    assert R.plan_jobs(str(tmp_path / 'in'), str(tmp_path / 'old.png'))[0].dst == str(tmp_path / 'old.png' / 'a.png')


def test_plan_refuses_to_overwrite_inputs(tmp_path):
    src = tmp_path / 'in'
    make_images(src, ['a.png', 'b.png'])
    with pytest.raises(R.RestoreError, match='is the input itself'):
        R.plan_jobs(str(src), str(src))
    with pytest.raises(R.RestoreError, match='is the input itself'):
        R.plan_jobs(str(src / 'a.png'), str(src / 'a.png'))
    with pytest.raises(R.RestoreError, match='is the input itself'):
        R.plan_jobs(str(src), str(src / 'sub' / '..'))
    out = tmp_path / 'out'
    out.mkdir()
    os.symlink(src / 'b.png', out / 'b.png')  # an output name that resolves to an input file
    with pytest.raises(R.RestoreError, match="is the input file '.*b.png'"):
        R.plan_jobs(str(src), str(out))
    os.link(src / 'a.png', tmp_path / 'hard.png')  # the same file under another name
    with pytest.raises(R.RestoreError, match='is the input file'):
        R.plan_jobs(str(src / 'a.png'), str(tmp_path / 'hard.png'))


def test_plan_refuses_names_escaping_output(tmp_path):
    src = tmp_path / 'in'
    make_images(src, ['a.png', 'sub/c.png'])
    for suffix in ('/../../evil', '_x2/..', '..\\evil'):
        with pytest.raises(R.RestoreError, match='path separator'):
            R.plan_jobs(str(src), str(tmp_path / 'out'), suffix=suffix)
    out = tmp_path / 'out'
    out.mkdir()
    (tmp_path / 'elsewhere').mkdir()
    os.symlink(tmp_path / 'elsewhere', out / 'sub')  # OUTPUT/sub leads out of OUTPUT
    with pytest.raises(R.RestoreError, match='outside output_path'):
        R.plan_jobs(str(src), str(out), recursive=True)
    with pytest.raises(R.RestoreError, match="ext '.png/x'"):
        R.plan_jobs(str(src), str(tmp_path / 'o2'), ext='png/x')


def test_plan_skips_output_inside_input_and_refuses_collisions(tmp_path):
    src = tmp_path / 'in'
    make_images(src, ['a.png', 'results/old.png'])
    jobs = R.plan_jobs(str(src), str(src / 'results'), recursive=True, suffix='_x2')
    assert [j.src for j in jobs] == [str(src / 'a.png')]
    make_images(src, ['a.jpg'])
    # --suffix applies to both, so only keeping the extensions (or renaming one) separates them
    with pytest.raises(R.RestoreParameterError, match=r"would both be written to '.*a_x2\.png'; drop ext to keep the "
                       'input extensions, or rename one of them$') as err:
        R.plan_jobs(str(src), str(tmp_path / 'out'), ext='png', suffix='_x2')
    assert err.value.for_cli({'ext': '--ext'}).endswith('; drop --ext to keep the input extensions, or rename one '
                                                       'of them') and 'suffix' not in str(err.value)
    assert len(R.plan_jobs(str(src), str(tmp_path / 'out'), suffix='_x2')) == 2  # (the fix it names works)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(R.RestoreError, match='no images'):
        R.plan_jobs(str(tmp_path / 'empty'), str(tmp_path / 'o3'))


def test_plan_names_a_link_in_the_output_that_joins_two_outputs(tmp_path):
    """Without --ext, two outputs meet only through a symbolic link in the output folder: the link is the fix."""
    src = tmp_path / 'in'
    make_images(src, ['a/x.png', 'b/x.png'])
    out = tmp_path / 'out'
    (out / 'a').mkdir(parents=True)
    os.symlink('a', out / 'b')
    with pytest.raises(R.RestoreParameterError, match=r"outputs '.*a/x\.png' \(of '.*'\) and '.*b/x\.png' \(of "
                       r"'.*'\) are the same file .*a symbolic link in output_path\); remove the link"):
        R.plan_jobs(str(src), str(out), recursive=True)


def test_plan_follows_symlinked_folders_once_and_reports_dangling_links(tmp_path):
    """--recursive passed over symlinked folders in silence ('restored 1 of 1 image(s)' for a folder holding a
    link to 5 more) and a dangling link named like an image too. Linked folders are followed, each real folder
    once (loops and links back into the input are not), their images written under the link's name in OUTPUT;
    a dangling link is a job that fails with the reason."""
    src, other = tmp_path / 'in', tmp_path / 'other'
    make_images(src, ['a.png', 'sub/s.png'])
    make_images(other, ['b.png', 'deep/c.png'])
    for name, target in (('extdir', other), ('twin', other), ('loop', '.'), ('up', '..'), ('inner', 'sub'),
                         ('deeplink', other / 'deep'), ('dangling.png', 'nowhere.png'), ('gone', 'nowhere')):
        os.symlink(target, src / name)
    out = tmp_path / 'out'
    jobs = R.plan_jobs(str(src), str(out), recursive=True, suffix='_x2')
    found = {osp.relpath(j.src, src): (osp.relpath(j.dst, out), j.error) for j in jobs}
    # deeplink -> other/deep is walked first (a folder is taken at the first link that reaches it), extdir -> other
    # next; twin (a second link to other), loop, up, inner (-> sub, restored as sub/) are not followed
    assert sorted(found) == ['a.png', 'dangling.png', 'deeplink/c.png', 'extdir/b.png', 'sub/s.png']
    assert {k: v[0] for k, v in found.items()} == {
        'a.png': 'a_x2.png', 'dangling.png': 'dangling_x2.png', 'deeplink/c.png': 'deeplink/c_x2.png',
        'extdir/b.png': 'extdir/b_x2.png', 'sub/s.png': 'sub/s_x2.png'}
    assert found['dangling.png'][1] == ("a symbolic link to 'nowhere.png', which does not exist; restore or remove "
                                        'the link')
    assert [k for k, v in found.items() if v[1]] == ['dangling.png']
    # without --recursive no folder is walked, the dangling link is still reported
    flat = R.plan_jobs(str(src), str(out))
    assert [(osp.basename(j.src), bool(j.error)) for j in flat] == [('a.png', False), ('dangling.png', True)]
    # an output folder reached through a linked folder is not restored again (as one inside the input is not)
    make_images(other, ['results/old.png'])
    jobs = R.plan_jobs(str(src), str(other / 'results'), recursive=True)
    assert not [j for j in jobs if 'old.png' in j.src] and len(jobs) == 5
    # a folder of nothing but dangling links is refused before the model loads, naming one
    only = tmp_path / 'only'
    only.mkdir()
    os.symlink('missing.jpg', only / 'x.jpg')
    with pytest.raises(R.RestoreParameterError, match=r"'.*only' holds no image to restore: 1 symbolic link\(s\) to "
                       r"files that do not exist \('.*x\.jpg' -> 'missing\.jpg'\); restore or remove the links"):
        R.plan_jobs(str(only), str(tmp_path / 'o5'))


def iphone_heic(path):
    """The first bytes an iPhone writes (an ISO-BMFF 'ftyp' box of brand 'heic'); no decoder here reads HEIC."""
    path.write_bytes(b'\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic' + b'\x00' * 64)


def dng_with_preview(path):
    """A DNG as a camera lays it out for readers without a raw decoder: a TIFF whose first page is a small RGB
    preview (here Pillow's), which OpenCV decodes."""
    from PIL import Image
    Image.fromarray(photo(6, 8)[..., ::-1]).save(path, format='TIFF')


def test_photos_opencv_cannot_read_are_reported_not_passed_over(tmp_path):
    """A folder of phone photos (HEIC), raw files (DNG, whose preview OpenCV could decode) and a GIF: each is a
    job with the reason and the fix (it was passed over in silence: 'restored 1 of 1'); a lone such file or a
    folder of nothing else is refused before the model loads."""
    from PIL import Image
    src = tmp_path / 'in'
    make_images(src, ['IMG_0002.JPG'])
    iphone_heic(src / 'IMG_0001.HEIC')
    dng_with_preview(src / 'IMG_0003.dng')
    Image.fromarray(photo(6, 8)).save(src / 'anim.gif')
    (src / 'IMG_0002.xmp').write_text('<x:xmpmeta/>')           # sidecars stay ignored
    assert cv2.imread(str(src / 'IMG_0003.dng')) is not None    # the preview OpenCV would have restored
    jobs = R.plan_jobs(str(src), str(tmp_path / 'out'), ext='png')
    found = {osp.basename(j.src): j.error for j in jobs}
    assert sorted(found) == ['IMG_0001.HEIC', 'IMG_0002.JPG', 'IMG_0003.dng', 'anim.gif']
    assert found['IMG_0002.JPG'] is None
    heic = found['IMG_0001.HEIC']
    assert heic.startswith('a HEIC image, which OpenCV') and 'convert it to PNG' in heic
    assert found['IMG_0003.dng'].startswith('a camera raw file (DNG); develop it')
    assert (found['anim.gif'] is None) == cv2.haveImageReader(str(src / 'anim.gif'))  # OpenCV 4.13 reads GIF
    with pytest.raises(R.RestoreParameterError, match=r"'.*IMG_0001\.HEIC' is a HEIC image, which OpenCV"):
        R.plan_jobs(str(src / 'IMG_0001.HEIC'), str(tmp_path / 'one'))
    with pytest.raises(R.RestoreParameterError, match='is a camera raw file'):
        R.plan_jobs(str(src / 'IMG_0003.dng'), str(tmp_path / 'one.png'))
    only = tmp_path / 'phone'
    only.mkdir()
    iphone_heic(only / 'a.heic')
    iphone_heic(only / 'b.HEIC')
    dng_with_preview(only / 'c.DNG')
    with pytest.raises(R.RestoreParameterError, match=r'holds only 1 DNG, 2 HEIC file\(s\), which OpenCV .* cannot'):
        R.plan_jobs(str(only), str(tmp_path / 'o4'))


def test_write_is_atomic(tmp_path, monkeypatch):
    dst = tmp_path / 'out' / 'a.png'
    R.write_image_atomic(str(dst), photo())
    before = dst.read_bytes()
    assert np.array_equal(cv2.imread(str(dst)), photo())

    def crash(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError, match='disk full'):
        R.write_image_atomic(str(dst), photo(seed=1))
    assert dst.read_bytes() == before  # the old file is intact
    with pytest.raises(OSError):
        R.write_image_atomic(str(tmp_path / 'out' / 'b.png'), photo())
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.png']  # no temporary file left


def test_restore_files_reports_and_continues(restorer, tmp_path, capsys):
    src = tmp_path / 'in'
    make_images(src, ['a.png', 'b.jpg'])
    (src / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    cv2.imwrite(str(src / 'grey.png'), photo(12, 16)[..., 0])
    lines = []
    summary = R.restore_files(restorer, R.plan_jobs(str(src), str(tmp_path / 'out')), log=lines.append,
                              progress=True)
    assert [osp.basename(p) for p in summary.restored] == ['a.png', 'b.jpg', 'grey.png']
    assert [osp.basename(s) for s, _ in summary.failed] == ['broken.png']
    assert len([ln for ln in lines if ln.startswith('skipped')]) == 1 and 'broken.png' in lines[0]
    assert any('grey.png' in ln and '3 channels' in ln for ln in lines)
    assert 'restoring' in capsys.readouterr().err  # the progress bar
    for name in ('a.png', 'b.jpg', 'grey.png'):
        assert cv2.imread(str(tmp_path / 'out' / name)).shape == (24, 32, 3)
    again = R.restore_files(restorer, R.plan_jobs(str(src), str(tmp_path / 'out')), log=lines.append)
    assert len(again.kept) == 3 and not again.restored


def test_restore_files_probes_no_destination_again(restorer, tmp_path, monkeypatch):
    """plan_jobs and check_output_room check every destination before the first image; writing each result through
    the public visualize probed it again with a temporary file per image."""
    from panet_mm.apis.inferencers import restoration_inferencer
    probed = []
    monkeypatch.setattr(restoration_inferencer, 'unwritable_file', lambda path: probed.append(path))
    make_images(tmp_path / 'in', ['a.png', 'b.png'])
    jobs = R.plan_jobs(str(tmp_path / 'in'), str(tmp_path / 'out'))
    summary = R.restore_files(restorer, jobs)
    assert len(summary.restored) == 2 and probed == []
    restorer.visualize(restorer.forward(restorer.preprocess(str(tmp_path / 'in' / 'a.png'))),
                       result_out_dir=str(tmp_path / 'c.png'))
    assert probed == [str(tmp_path / 'c.png')]  # the public method still checks what a caller passes


def test_restore_files_refuses_arguments_that_are_not_a_model_and_jobs(restorer, tmp_path):
    """A folder path for the jobs crashed with "'str' object has no attribute 'error'"; a config path for the model
    returned a summary of kept outputs without noticing."""
    src = tmp_path / 'in'
    make_images(src, ['a.png'])
    with pytest.raises(R.RestoreError, match=r"takes the jobs plan_jobs.* returns, got str '.*; call plan_jobs first"):
        R.restore_files(restorer, str(src))
    with pytest.raises(R.RestoreError, match='takes a model first .* got str .*PANetInferencer'):
        R.restore_files('configs/demo/panet_sr_x2_demo.py', R.plan_jobs(str(src), str(tmp_path / 'out')))
    assert not (tmp_path / 'out').exists()


def test_restore_files_reports_unreadable_photos_and_restores_the_rest(restorer, tmp_path):
    src = tmp_path / 'in'
    make_images(src, ['a.png'])
    iphone_heic(src / 'b.heic')
    lines = []
    summary = R.restore_files(restorer, R.plan_jobs(str(src), str(tmp_path / 'out')), log=lines.append)
    assert [osp.basename(p) for p in summary.restored] == ['a.png']
    assert [(osp.basename(s), why.split(',')[0]) for s, why in summary.failed] == [('b.heic', 'a HEIC image')]
    assert lines == [f"skipped '{src / 'b.heic'}': {summary.failed[0][1]}"]
    assert sorted(os.listdir(tmp_path / 'out')) == ['a.png']


@pytest.mark.parametrize('overwrite', [False, True])
def test_a_folder_named_like_an_output_fails_its_job_and_is_never_kept(restorer, demo_checkpoint, tmp_path, capsys,
                                                                       overwrite):
    """A folder ``od/a.png`` counted as a finished result (kept, exit 0, never restored); with --overwrite the CLI
    printed the Python parameter result_out_dir and its error class."""
    from panet_mm.apis import restore_cli
    make_images(tmp_path / 'in', ['a.png', 'b.png'])
    (tmp_path / 'od' / 'a.png').mkdir(parents=True)
    why = f"output '{tmp_path / 'od' / 'a.png'}' is a folder; remove or rename it"
    for src, out in ((tmp_path / 'in', tmp_path / 'od'), (tmp_path / 'in' / 'a.png', str(tmp_path / 'od') + '/')):
        jobs = R.plan_jobs(str(src), str(out))
        assert jobs[0].error == why  # planned as a failed job, as an unreadable input is
        lines = []
        summary = R.restore_files(restorer, jobs, overwrite=overwrite, log=lines.append, progress=False)
        assert summary.failed == [(str(tmp_path / 'in' / 'a.png'), why)] and not summary.kept
        assert lines[0] == f"skipped '{tmp_path / 'in' / 'a.png'}': {why}"
        args = ['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), str(src), str(out), '--no-progress']
        assert restore_cli.main(args + (['--overwrite'] if overwrite else [])) == 1
        err = capsys.readouterr().err
        assert why in err and 'result_out_dir' not in err and 'Error' not in err
    assert os.listdir(tmp_path / 'od' / 'a.png') == [] and cv2.imread(str(tmp_path / 'od' / 'b.png')) is not None
    # a folder made after planning (or jobs made by hand) fails too, not kept
    jobs = R.plan_jobs(str(tmp_path / 'in' / 'b.png'), str(tmp_path / 'late.png'))
    (tmp_path / 'late.png').mkdir()
    summary = R.restore_files(restorer, jobs, overwrite=overwrite, log=lambda line: None, progress=False)
    assert summary.failed == [(str(tmp_path / 'in' / 'b.png'), f"output '{tmp_path / 'late.png'}' is a folder; "
                               'remove or rename it')] and not summary.kept and not summary.restored


def test_attention_cost_note_on_large_whole_images(restorer, demo_checkpoint, monkeypatch):
    assert restorer.attention_cost_note(12, 16) is None                   # small: nothing to say
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    note = restorer.attention_cost_note(800, 1000)
    assert note.startswith('1000x800 in one pass') and 'tile=dict(size=256, overlap=16)' in note
    assert 'multiply-adds' in note and re.search(r'roughly [\d.]+-[\d.]+ h with 2 CPU threads', note)  # hours
    fast, slow = map(int, re.search(r'roughly (\d+)-(\d+) min with ', restorer.attention_cost_note(400, 500)).groups())
    assert slow >= 4 * fast                                               # the range of two measured CPUs
    monkeypatch.setattr(restorer, 'device', 'cuda')
    assert restorer.attention_cost_note(800, 1000) is None                # a GPU: no estimate
    tiled = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', tile=dict(size=64, overlap=8))
    assert tiled.attention_cost_note(800, 1000) is None                   # tiles bound it already


def test_small_tiles_on_a_larger_image_get_a_note(demo_checkpoint):
    """--tile 1 on a 120x120 image: 14400 one-pixel passes (141 s) and an attention that sees one pixel, silently."""
    tiny = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', tile=dict(size=1))
    assert tiny.attention_cost_note(120, 120) == (
        'tiles of 1x1 pixels: the pyramid attention sees only each tile (it restores a pixel from similar patches '
        'elsewhere in the image), and 120x120 takes 14400 passes of the network; tiles of 64-256 pixels keep its reach '
        'with bounded memory (tile=dict(size=256, overlap=16))')
    assert tiny.attention_cost_note(2, 2) is None                          # a few tiles: nothing to say
    small = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', tile=dict(size=(16, 40), overlap=4))
    assert 'takes 10 passes' in small.attention_cost_note(64, 64)
    wide = R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', tile=dict(size=64, overlap=8))
    assert wide.attention_cost_note(800, 1000) is None


def test_restore_files_reports_the_cost_note(restorer, tmp_path, monkeypatch):
    monkeypatch.setattr(restorer, 'slow_attention_macs', 0)
    make_images(tmp_path / 'in', ['a.png'])
    lines = []
    summary = R.restore_files(restorer, R.plan_jobs(str(tmp_path / 'in'), str(tmp_path / 'out')), log=lines.append,
                              progress=False)
    assert [osp.basename(p) for p in summary.restored] == ['a.png']
    assert any('a.png' in ln and '16x12 in one pass' in ln for ln in lines), lines


def test_a_protected_output_fails_that_image_only_naming_it_not_the_temporary_file(restorer, tmp_path, monkeypatch):
    """An immutable 'ro.png' to replace (os.replace refused, EPERM) in a writable folder: the run stopped for every
    image, naming '.ro.png.XXXX.tmp', a file the user never made, and 'the other 0 image(s)'."""
    import errno
    import os
    make_images(tmp_path / 'in', ['a.png', 'b.png'])
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a.png').write_bytes(b'old')
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst) == str(out / 'a.png'):
            raise PermissionError(errno.EPERM, 'Operation not permitted', str(src), str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, 'replace', replace)
    lines = []
    summary = R.restore_files(restorer, R.plan_jobs(str(tmp_path / 'in'), str(out)), overwrite=True, progress=False,
                              log=lines.append)
    assert summary.stopped is None and summary.restored == [str(out / 'b.png')]
    (src, reason), = summary.failed
    assert src.endswith('a.png') and reason == (
        f"'{out / 'a.png'}' cannot be replaced (Operation not permitted): it is protected (immutable, or owned by "
        'another user); remove the protection or choose another output')
    assert (out / 'a.png').read_bytes() == b'old' and sorted(os.listdir(out)) == ['a.png', 'b.png']  # no .tmp left


def test_a_checkpoint_of_another_config_names_the_run_and_model_that_saved_it(tmp_path):
    """Refused for the denoising demo config, an x2 PA-EDSR checkpoint listed a hundred keys while its own metadata
    (mmengine's Runner writes the run's name and the config's text) says what it is."""
    from panet_mm.apis.model_loading import checkpoint_origin
    ckpt = save_runner_checkpoint(build_demo_model(), tmp_path / 'x2.pth')
    saved = torch.load(ckpt, weights_only=False)
    saved['meta'].update(experiment_name='panet_sr_x2_demo_20261206_101010',
                         cfg=Config.fromfile(DEMO_CONFIG).pretty_text)   # what Runner.save_checkpoint writes
    torch.save(saved, ckpt)
    origin = ("the run 'panet_sr_x2_demo_20261206_101010' (PAEDSRNet, mid_channels=32, num_blocks=4, upscale_factor=2, "
              'in_channels=3, out_channels=3)')
    assert checkpoint_origin(str(ckpt)) == origin
    with pytest.raises(R.CheckpointRefusedError) as err:
        R.build_restorer(f'{ROOT}/configs/demo/panet_dn_sigma30_demo.py', str(ckpt), device='cpu')
    assert f'  it was saved by {origin}\n' in str(err.value)
    plain = tmp_path / 'plain.pth'
    torch.save(build_demo_model().state_dict(), plain)                   # no record: nothing said
    assert checkpoint_origin(str(plain)) is None and checkpoint_origin(str(tmp_path / 'gone.pth')) is None
