"""Photos as cameras and editors write them: EXIF orientation and data and ICC colour profiles through restoration.

Files are written by Pillow (the EXIF block and the profile as Pillow lays them out) with real profiles
(tests/data/icc); the result must look in a viewer as the input did: upright, and in the input's colours
(its profile carried into PNG / JPEG / WebP results, a note where a format or a grey result cannot hold it).
"""
import io
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import DEMO_CONFIG, DEMOSAIC_CONFIG, ROOT, run_tool, save_runner_checkpoint
from PIL import ExifTags, Image, ImageOps

from panet_mm import apis as R
from panet_mm.apis import restore_cli
from panet_mm.apis.image_kinds import ImageAdapter
from panet_mm.apis.load_settings import LoadSettings
from panet_mm.datasets.transforms import bayer_mosaic
from panet_mm.utils.fileio import atomic_write_image
from panet_mm.utils.image_metadata import ORIENTATIONS, apply_orientation, exif_block

ICC = osp.join(ROOT, 'tests', 'data', 'icc')
EXIF = osp.join(ROOT, 'tests', 'data', 'exif')   # real cameras' files (tests/data/exif/README.md)
CAR_CONFIG = osp.join(ROOT, 'configs', 'demo', 'panet_car_q10_demo.py')
H, W = 10, 14


def icc(name):
    with open(osp.join(ICC, name), 'rb') as f:
        return f.read()


ADOBE, SRGB, GRAY = icc('compatibleWithAdobeRGB1998.icc'), icc('sRGB.icc'), icc('Gray.icc')


def pixels(seed=0):
    y, x = np.mgrid[0:H, 0:W]
    rng = np.random.RandomState(seed)
    base = np.stack([x * 15 + 20, y * 20 + 10, (x + y) * 8 + 40], axis=2)  # not symmetric under any turn
    return np.clip(base + rng.randint(-6, 7, base.shape), 0, 255).astype(np.uint8)


def save(path, arr, orientation=None, profile=None, **kw):
    """As Pillow writes a camera's / editor's file: EXIF orientation and ICC profile where given."""
    extra = dict(kw)
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra['exif'] = exif if str(path).endswith('.tif') else exif.tobytes()
    if profile is not None:
        extra['icc_profile'] = profile
    Image.fromarray(arr).save(path, **extra)
    return str(path)


def upright(path):
    """What a viewer shows: Pillow's decoding turned by the EXIF orientation."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert('RGB'))


@pytest.fixture(scope='module')
def restorers(demo_checkpoint, tmp_path_factory):
    from mmagic.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmagic')
    car = MODELS.build(Config.fromfile(CAR_CONFIG).model)
    car_ckpt = save_runner_checkpoint(car, tmp_path_factory.mktemp('car') / 'car.pth')
    return dict(sr=R.build_restorer(DEMO_CONFIG, str(demo_checkpoint), device='cpu'),
                car=R.build_restorer(CAR_CONFIG, str(car_ckpt), device='cpu'))


@pytest.mark.parametrize('ext,options', [('png', {}), ('jpg', dict(quality=100)), ('tif', {}),
                                         ('webp', dict(lossless=True))])
@pytest.mark.parametrize('orientation', range(1, 9))
def test_photos_are_read_upright_whatever_the_format(restorers, tmp_path, ext, options, orientation):
    path = save(tmp_path / f'o{orientation}.{ext}', pixels(), orientation, **options)
    img, notes = restorers['sr'].read_image(path)
    want = upright(path)
    assert img.shape == want.shape
    assert np.abs(img.astype(int) - want).max() <= (6 if ext == 'jpg' else 0)
    turned = [n for n in notes if n.startswith('turned upright')]
    # OpenCV 4.11 turns JPEG / PNG / TIFF itself and reads WebP as stored; panet_mm turns what it did not (a note)
    opencv = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    by_opencv = opencv.shape == want.shape and np.abs(opencv.astype(int) - want).max() <= 6
    assert len(turned) == (0 if by_opencv or orientation == 1 else 1), notes


def test_a_loader_reading_unchanged_pixels_gets_them_turned():
    transform = dict(type='LoadImageFromFile', key='img', color_type='unchanged', channel_order='rgb',
                     imdecode_backend='cv2')
    adapter = ImageAdapter(LoadSettings('unchanged', 'rgb', False, 'test', transform), 3)
    buf = io.BytesIO()
    rgba = np.dstack([pixels(), np.full((H, W), 255, np.uint8)])
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgba).save(buf, 'PNG', exif=exif.tobytes())
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'rgba.png')
        with open(path, 'wb') as f:
            f.write(buf.getvalue())
        img, notes = adapter.read(path)
        assert np.array_equal(img, upright(path)[..., ::-1])  # mmcv's 'unchanged' keeps OpenCV's BGR order
    assert notes[0].startswith('turned upright (rotated 90 degrees clockwise) as its EXIF orientation tag (6)')
    assert notes[1].startswith('alpha channel kept apart')


def test_a_damaged_exif_block_reads_the_pixels_as_stored(restorers, tmp_path, recwarn):
    path = save(tmp_path / 'bad_exif.jpg', pixels(), quality=100)
    data = open(path, 'rb').read()
    app1 = b'\xff\xe1\x00\x10Exif\x00\x00MM\x00*\xff\xff\xff\xff'  # an IFD offset far past the block
    with open(path, 'wb') as f:
        f.write(data[:2] + app1 + data[2:])
    img, notes = restorers['sr'].read_image(path)
    assert img.shape == (H, W, 3) and notes == ['its EXIF data is damaged, so the result has none']
    assert not [w for w in recwarn if 'EXIF' in str(w.message)]  # no third-party warning for the user to decode
    restorers['sr'](img=path, result_out_dir=str(tmp_path / 'out.jpg'))
    with Image.open(tmp_path / 'out.jpg') as im:
        assert 'exif' not in im.info


def read_profile(path):
    with Image.open(path) as im:
        return im.info.get('icc_profile')


def test_the_tool_keeps_the_colour_profile_of_each_photo(restorers, demo_checkpoint, tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    save(src / 'adobe.jpg', pixels(), profile=ADOBE, quality=95)     # an editor's Adobe RGB export
    save(src / 'srgb.png', pixels(1), profile=SRGB)
    save(src / 'grey.png', pixels(2)[..., 1], profile=GRAY)
    save(src / 'adobe.webp', pixels(3), profile=ADOBE, lossless=True)
    save(src / 'plain.png', pixels(4))
    rc = restore_cli.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), str(src),
                           str(tmp_path / 'out'), '--device', 'cpu', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 0, err
    out = tmp_path / 'out'
    assert read_profile(out / 'adobe.jpg') == ADOBE and read_profile(out / 'srgb.png') == SRGB
    assert read_profile(out / 'adobe.webp') == ADOBE and read_profile(out / 'plain.png') is None
    # a grey file restored by the colour model: its GRAY profile does not describe the colour result
    assert read_profile(out / 'grey.png') is None
    assert [ln for ln in err.splitlines() if 'colour profile' in ln] == [
        f"note: '{src / 'grey.png'}': its GRAY colour profile ('Gray') does not describe the 3-channel result, "
        'which is written without it']


def test_formats_without_profiles_are_noted_unless_the_profile_is_srgb(demo_checkpoint, tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    save(src / 'adobe.png', pixels(), profile=ADOBE)
    save(src / 'srgb.png', pixels(1), profile=SRGB)
    rc = restore_cli.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), str(src),
                           str(tmp_path / 'out'), '--ext', 'bmp', '--device', 'cpu', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 0, err
    notes = [ln for ln in err.splitlines() if 'colour profile' in ln]
    assert notes == [f"note: '{src / 'adobe.png'}': its colour profile ('Compatible with Adobe RGB (1998)') cannot "
                     'be written into .bmp files here, so colour-managed viewers show the result as sRGB (its colours '
                     'shift); --ext png keeps it']


def test_the_python_call_keeps_the_profile_and_the_grey_model_says_why_not(restorers, tmp_path):
    path = save(tmp_path / 'adobe.jpg', pixels(), profile=ADOBE, quality=95)
    restorers['sr'](img=path, result_out_dir=str(tmp_path / 'sr.png'))
    assert read_profile(tmp_path / 'sr.png') == ADOBE
    data = restorers['car'].preprocess(path)
    assert data['icc_profile'] == ADOBE
    restorers['car'](img=path, result_out_dir=str(tmp_path / 'car.png'))
    assert read_profile(tmp_path / 'car.png') is None   # an RGB profile cannot describe the grey (Y) result
    assert R.profile_note(ADOBE, 'car.png', 1) == (
        "its RGB colour profile ('Compatible with Adobe RGB (1998)') does not describe the grey result, which is "
        'written without it')


def test_the_grey_model_logs_no_channel_order_warning(tmp_path):
    """mmagic logged "Cannot convert inputs with 'single' channel order ..." for every grey result."""
    from mmagic.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmagic')
    car = save_runner_checkpoint(MODELS.build(Config.fromfile(CAR_CONFIG).model), tmp_path / 'car.pth')
    proc = run_tool([sys.executable, 'tools/restore.py', '--config', CAR_CONFIG, '--checkpoint', str(car),
                     save(tmp_path / 'photo.png', pixels()), str(tmp_path / 'out.png'), '--no-progress'])
    assert 'restored 1 of 1' in proc.stdout and 'channel order' not in proc.stdout + proc.stderr


def test_cmyk_profiles_are_not_carried(restorers, tmp_path):
    cmyk = Image.fromarray(pixels()).convert('CMYK')
    path = str(tmp_path / 'cmyk.jpg')
    cmyk.save(path, quality=95, icc_profile=ADOBE)   # the profile's space does not matter: inks are converted
    data = restorers['sr'].preprocess(path)
    assert data['icc_profile'] is None and data['notes'][0].startswith('CMYK image converted')


def logo(h=H, w=W):
    """A transparent logo: opaque disc, soft edge, fully transparent corners (uint8 alpha)."""
    y, x = np.mgrid[0:h, 0:w]
    r = np.hypot(y - (h - 1) / 2, x - (w - 1) / 2)
    return np.clip((min(h, w) / 2 - r) * 120, 0, 255).astype(np.uint8)


def test_transparent_images_stay_transparent(demo_checkpoint, tmp_path, capsys):
    """PNG / WebP with alpha (Pillow), 16-bit BGRA (OpenCV), a turned WebP: the model restores the colour and the
    alpha comes back, resized to the x2 result (bicubic, as cv2.resize does it), upright with the colour; a JPEG
    result cannot hold it and says so."""
    import cv2
    src = tmp_path / 'in'
    src.mkdir()
    a8 = logo()
    Image.fromarray(np.dstack([pixels(), a8]), 'RGBA').save(src / 'logo.png')
    deep = np.dstack([pixels(1)[..., ::-1], a8]).astype(np.uint16) * 257
    deep[..., 3] += (a8 < 255).astype(np.uint16) * 100  # 16-bit alpha between the 8-bit steps (rounds back to a8)
    cv2.imwrite(str(src / 'deep.png'), deep)
    save(src / 'sticker.webp', np.dstack([pixels(2), a8]), orientation=6, lossless=True)
    rc = restore_cli.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), str(src),
                           str(tmp_path / 'out'), '--ext', 'png', '--device', 'cpu', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 0, err

    def bicubic_x2(alpha):
        up = cv2.resize(alpha.astype(np.float32), (alpha.shape[1] * 2, alpha.shape[0] * 2),
                        interpolation=cv2.INTER_CUBIC)
        return np.clip(np.round(up), 0, 255).astype(np.uint8)

    for name, alpha in (('logo.png', a8), ('deep.png', a8), ('sticker.png', np.rot90(a8, -1))):
        out = cv2.imread(str(tmp_path / 'out' / name), cv2.IMREAD_UNCHANGED)
        assert out.shape == (alpha.shape[0] * 2, alpha.shape[1] * 2, 4) and out.dtype == np.uint8, name
        assert np.abs(out[..., 3].astype(int) - bicubic_x2(alpha)).max() <= 1, name
        assert out[0, 0, 3] == 0 and out[alpha.shape[0], alpha.shape[1], 3] == 255, name  # corners clear, centre solid
    assert sum('alpha channel kept apart' in ln for ln in err.splitlines()) == 3
    rc = restore_cli.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), str(src / 'logo.png'),
                           str(tmp_path / 'logo.jpg'), '--device', 'cpu', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 0 and cv2.imread(str(tmp_path / 'logo.jpg'), cv2.IMREAD_UNCHANGED).shape == (2 * H, 2 * W, 3)
    # the output was named: its name chooses the format (--ext is refused there); no "kept ... written back" note
    assert (f"note: '{src / 'logo.png'}': its alpha channel cannot be written into .jpg files, so the result is "
            'opaque; naming the output logo.png keeps it') in err.splitlines()
    assert 'alpha channel kept apart' not in err


@pytest.mark.parametrize('ext,options', [('png', {}), ('tif', {}), ('webp', dict(lossless=True))])
@pytest.mark.parametrize('orientation', [2, 3, 6, 7])
def test_the_alpha_is_turned_with_the_colour(restorers, tmp_path, ext, options, orientation):
    """Each decoder turns (or not) colour and alpha alike; the alpha written back must match the upright colour."""
    rgba = np.dstack([pixels(), logo() // 2 + pixels()[..., 0] // 2])
    path = save(tmp_path / f'a{orientation}.{ext}', rgba, orientation, **options)
    found = restorers['sr'].adapter.read_file(path)
    # upright from the array written (Pillow 11.3 itself misreads a turned RGBA TIFF: it swaps the size twice)
    want = apply_orientation(rgba, orientation)
    assert np.array_equal(found.alpha, want[..., 3])
    if ext != 'tif':  # (a TIFF's colour is OpenCV's premultiplied reading: test_transparent_tiffs_keep_their_colour)
        assert np.array_equal(found.img, want[..., :3])


def test_transparent_tiffs_keep_their_colour(restorers, tmp_path):
    """Pillow's RGBA TIFF (unassociated alpha, as image editors export it): OpenCV reads its colour multiplied by the
    alpha (200 at alpha 100 read as 78): the colour is divided back, with a note; OpenCV's own TIFF is left alone."""
    import cv2
    rgba = np.dstack([np.full((H, W, 3), 200, np.uint8), np.full((H, W), 100, np.uint8)])
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'editor.tif')
    cv2.imwrite(str(tmp_path / 'opencv.tif'), rgba[..., [2, 1, 0, 3]])
    assert cv2.imread(str(tmp_path / 'editor.tif'))[1, 1, 0] == 78
    found = restorers['sr'].adapter.read_file(str(tmp_path / 'editor.tif'))
    assert np.abs(found.img[1:, 1:] - 200).max() <= 1.5 and (found.img[0, 0] == 0).all()
    assert found.notes[1].startswith('colour divided by the alpha again')
    plain = restorers['sr'].adapter.read_file(str(tmp_path / 'opencv.tif'))
    assert (plain.img == 200).all() and len(plain.notes) == 1


@pytest.mark.parametrize('ext,options', [('png', {}), ('webp', dict(lossless=True)), ('tif', {}), ('gif', {})])
def test_animations_and_multi_page_files_restore_their_first_frame_and_say_so(restorers, tmp_path, ext, options):
    import cv2
    frames = [Image.fromarray(pixels(seed)) for seed in range(3)]
    path = str(tmp_path / f'many.{ext}')
    frames[0].save(path, save_all=True, append_images=frames[1:], **options)
    if not cv2.haveImageReader(path):
        pytest.skip(f'OpenCV {cv2.__version__} reads no {ext} files')
    img, notes = restorers['sr'].read_image(path)
    with Image.open(path) as im:
        first = np.asarray(im.convert('RGB'))
    assert np.abs(img.astype(int) - first).max() <= (40 if ext == 'gif' else 0)   # GIF: a 256-colour palette
    assert notes[0] == ('the file holds 3 frames or pages (an animation or a multi-page scan): only the first is '
                        'restored')


def test_a_grey_tiff_with_alpha_keeps_it(restorers, tmp_path):
    """OpenCV reads Pillow's LA TIFF as plain grey (its alpha lost); the alpha comes from the file's own decoding."""
    import cv2
    path = str(tmp_path / 'la.tif')
    grey = pixels()[..., 1]
    Image.fromarray(np.dstack([grey, logo()]), 'LA').save(path)
    assert cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED).ndim == 2
    found = restorers['sr'].adapter.read_file(path)
    assert np.array_equal(found.alpha, logo()) and np.array_equal(found.img, np.dstack([grey] * 3))
    assert found.notes[0].startswith('alpha channel kept apart')


def exif_of(path):
    with Image.open(path) as im:
        exif = im.getexif()
        return exif, exif.get_ifd(0x8769), exif.get_ifd(0x8825)


def test_the_tool_carries_a_phones_exif_into_the_result(demo_checkpoint, tmp_path, capsys):
    """A Xiaomi phone's photo (orientation 6): the result keeps the camera, date and GPS block, marked upright
    and with its own size; ``--no-exif`` leaves it all out; a TIFF result says it has none."""
    src = osp.join(EXIF, 'empty_gps_ifd.jpg')
    args = ['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), src, '--device', 'cpu', '--no-progress']
    assert restore_cli.main(args + [str(tmp_path / 'x2.jpg')]) == 0
    exif, sub, gps = exif_of(tmp_path / 'x2.jpg')
    _, sub_in, gps_in = exif_of(src)
    assert (exif[0x010F], exif[0x0110], sub[0x9003]) == ('Xiaomi', 'Redmi Note 9S', '2020:07:27 14:46:48')
    assert (exif[0x0112], exif[0x0100], exif[0x0101], sub[0xA002], sub[0xA003]) == (1, 20, 20, 20, 20)
    assert gps == gps_in and {k: v for k, v in sub.items() if k not in (0xA002, 0xA003)} == {
        k: v for k, v in sub_in.items() if k not in (0xA002, 0xA003)}
    assert restore_cli.main(args + [str(tmp_path / 'plain.png'), '--no-exif']) == 0
    with Image.open(tmp_path / 'plain.png') as im:
        assert 'exif' not in im.info and not im.getexif()
    capsys.readouterr()
    assert restore_cli.main(args + [str(tmp_path / 'x2.tif')]) == 0
    assert f"note: '{src}': its EXIF data (camera, dates, GPS position) cannot be written into .tif files here, so " \
        'the result has none; naming the output x2.png keeps it' in capsys.readouterr().err.splitlines()


def test_exif_that_imagemagick_wrote_after_the_pixels_is_carried(restorers, tmp_path):
    """``convert photo.jpg photo.png`` (ImageMagick 6.9) writes the ``eXIf`` chunk after ``IDAT``: Pillow finds it
    only once the pixels are loaded."""
    src = osp.join(EXIF, 'imagemagick_phone.png')
    assert np.array_equal(restorers['sr'].read_image(src)[0], upright(src))   # orientation 6 applied (by OpenCV)
    restorers['sr'](img=src, result_out_dir=str(tmp_path / 'x2.png'))
    exif, sub, _ = exif_of(tmp_path / 'x2.png')
    assert (exif[0x010F], exif[0x0112], exif[0x0100], sub[0xA002]) == ('Xiaomi', 1, 20, 20)


def test_exif_that_older_imagemagick_kept_as_png_text_is_read_and_carried(restorers, tmp_path):
    """Older ImageMagick versions wrote a PNG's EXIF block as hexadecimal text ('Raw profile type exif'): its
    orientation (3) is applied and the block carried, marked upright, into the result's ``eXIf`` chunk."""
    src = osp.join(EXIF, 'exif_imagemagick_orientation.png')
    img = restorers['sr'].read_image(src)[0]
    with Image.open(src) as im:
        stored = np.asarray(im.convert('RGB'))
    assert np.array_equal(img, upright(src)) and np.array_equal(img, stored[::-1, ::-1])  # turned by 180 degrees
    data = restorers['sr'].preprocess(src)
    assert data['exif'] is not None
    out = tmp_path / 'result.png'
    atomic_write_image(out, np.ascontiguousarray(img[:12, :16]), exif=data['exif'])  # as visualize() writes it
    with Image.open(out) as im:
        assert 'exif' in im.info and im.getexif()[0x0112] == 1 and 'Raw profile type exif' not in im.info


@pytest.mark.parametrize('ext', ['png', 'webp'])
def test_the_python_call_carries_a_cameras_maker_notes_and_drops_its_thumbnail(restorers, tmp_path, ext):
    """A Canon PowerShot S40's EXIF block (as the camera wrote it) on a small photo: its maker note's bytes
    are carried unchanged (they hold offsets into the block), its thumbnail of the input is not."""
    with Image.open(osp.join(EXIF, 'flower.jpg')) as im:
        raw = im.info['exif']
    path = save(tmp_path / 'canon.jpg', pixels(), exif=raw, quality=95)
    _, sub_in, _ = exif_of(path)
    restorers['sr'](img=path, result_out_dir=str(tmp_path / f'x2.{ext}'))
    exif, sub, _ = exif_of(tmp_path / f'x2.{ext}')
    assert exif[0x0110] == 'Canon PowerShot S40' and sub[0x927C] == sub_in[0x927C]
    assert (sub[0xA002], sub[0xA003]) == (2 * W, 2 * H) and not exif.get_ifd(ExifTags.IFD.IFD1)
    restorers['sr'].keep_exif = False
    try:
        assert restorers['sr'].preprocess(path)['exif'] is None
    finally:
        restorers['sr'].keep_exif = True
    assert R.exif_note(exif_block(raw), 'x.bmp', '--ext png').startswith('its EXIF data (camera, dates')


class Record(torch.nn.Module):
    """Stand-in generator: the identity, recording what it was fed."""

    def forward(self, x):
        self.seen = x.detach().clone()
        return x


@pytest.fixture(scope='module')
def demosaicer(demosaic_checkpoint):
    return R.build_restorer(DEMOSAIC_CONFIG, str(demosaic_checkpoint), device='cpu')


@pytest.mark.parametrize('ext,options', [('png', {}), ('jpg', dict(quality=100)), ('tif', {}),
                                         ('webp', dict(lossless=True))])
@pytest.mark.parametrize('orientation', range(1, 9))
def test_a_raw_bayer_file_is_demosaiced_as_stored_then_turned_upright(demosaicer, tmp_path, monkeypatch, ext,
                                                                      options, orientation):
    """A 48x64 GRBG colour filter array saved as a grey file with an EXIF orientation, as a camera stores it: it was
    turned upright before being read as GRBG (orientation 6 made it a BGGR layout read as GRBG). The model must get
    the mosaic of the stored layout, and the result be turned upright as the viewer shows the file."""
    rng = np.random.RandomState(0)
    y, x = np.mgrid[0:48, 0:64]
    rgb = np.clip(np.stack([x * 3 + 20, y * 4 + 10, (x + y) * 2 + 40], axis=2) + rng.randint(-4, 5, (48, 64, 3)),
                  0, 255).astype(np.uint8)
    mosaic = bayer_mosaic(rgb, 'GRBG')  # the model input of the stored layout
    path = save(tmp_path / f'raw{orientation}.{ext}', mosaic.max(axis=2), orientation, **options)
    rec = Record()
    monkeypatch.setitem(demosaicer.model._modules, 'generator', rec)
    data = demosaicer.preprocess(path)
    out = demosaicer(img=path, result_out_dir=str(tmp_path / 'out.png'))
    seen = (rec.seen[0].permute(1, 2, 0) * 255).round().numpy()  # RGB, as the config orders it
    tolerance = 3 if ext == 'jpg' else 0
    assert seen.shape == mosaic.shape and np.abs(seen - mosaic).mean() <= tolerance
    assert np.array_equal(seen == 0, mosaic == 0)  # the GRBG layout of the stored pixels
    assert np.abs(out.astype(int) - apply_orientation(mosaic, orientation)[..., ::-1]).mean() <= tolerance  # upright
    grey = 'grey image (3 equal channels)' if ext == 'webp' else '1-channel image'  # (WebP stores grey as RGB)
    assert data['notes'][0].startswith(f'{grey} taken as raw GRBG Bayer data (GR / BG from the top-left pixel)')
    if orientation == 1:
        assert len(data['notes']) == 1 and data['orientation'] == 1
    else:
        assert data['notes'][1:] == [
            "demosaiced as stored (the GRBG pattern describes the sensor's stored layout), then the result turned "
            f'upright ({ORIENTATIONS[orientation]}) as its EXIF orientation tag ({orientation}) asks viewers to show '
            'it'] and data['orientation'] == orientation
    with Image.open(tmp_path / 'out.png') as im:
        assert im.getexif().get(0x0112, 1) == 1 and np.array_equal(np.asarray(im)[..., ::-1], out)
