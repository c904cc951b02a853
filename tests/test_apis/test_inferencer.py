"""RestorationInferencer's four stages (mmagic's shape), the OpenCV channel order at its boundary, the four
tasks through one call, PANetInferencer by config path and by registered name, and the CLI naming its flags
where the library names its parameters (CPU, tiny models)."""
import logging
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DEMO_CONFIG, DEMOSAIC_CONFIG, ROOT, log_records, save_runner_checkpoint

from panet_mm.apis import (
    ImageReadError,
    PANetInferencer,
    RestorationInferencer,
    RestoreError,
    RestoreParameterError,
    registered_models,
    resolve_config,
    restore_cli,
)
from panet_mm.apis.image_kinds import ALPHA_NOTE
from panet_mm.apis.inferencers import model_attention_macs


def photo(h=10, w=12, seed=0):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 200 + 20, y / h * 180 + 30, (x + y) / (h + w) * 150 + 50], axis=2)
    return np.clip(img + rng.uniform(-8, 8, img.shape), 0, 255).astype(np.uint8)


class NearestUp(torch.nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode='nearest')


def up2(img):
    return img.repeat(2, 0).repeat(2, 1)


@pytest.fixture(scope='module')
def inferencer(demo_checkpoint):
    return RestorationInferencer(DEMO_CONFIG, str(demo_checkpoint), device='cpu')


def test_building_logs_no_warning(demo_checkpoint):
    """mmengine's collate look-up warned on every build (mmagic has no function registry)."""
    with log_records(logging.WARNING) as records:
        built = RestorationInferencer(DEMO_CONFIG, str(demo_checkpoint), device='cpu')
    assert [r.getMessage() for r in records] == []
    assert built.collate_fn([1, 2]) == [1, 2]


def test_float_tiff_is_refused_with_why(inferencer, tmp_path):
    """A 32-bit float TIFF (raw converters' export; Pillow does not identify it): refused naming its pixels, not
    called "not an image of a known format", and not read through OpenCV's own 8-bit tone curve."""
    path = tmp_path / 'linear.tiff'
    assert cv2.imwrite(str(path), np.random.default_rng(0).random((10, 12, 3)).astype(np.float32))
    with pytest.raises(ImageReadError, match=r"'.*linear\.tiff' stores 32-bit floating-point pixels"):
        inferencer.preprocess(str(path))


@pytest.mark.parametrize('ext', ['.tiff', '.jpg'])
def test_cmyk_files_are_noted_as_cmyk_not_as_alpha(inferencer, tmp_path, ext):
    """A CMYK TIFF decodes to 4 OpenCV channels: it was reported as colour + alpha ("alpha channel dropped")."""
    from PIL import Image
    path = tmp_path / f'print{ext}'
    Image.fromarray(photo()[..., ::-1].copy()).convert('CMYK').save(path)
    data = inferencer.preprocess(str(path))
    assert data['notes'] == ["CMYK image converted by the config's loader (OpenCV; no colour profile applied)"]
    with Image.open(path) as im:
        rgb = np.asarray(im.convert('RGB'))
    assert np.abs(data['inputs'][0].permute(1, 2, 0).numpy().astype(int) - rgb).max() <= 1


def test_32_bit_integer_tiff_is_refused_with_why(inferencer, tmp_path):
    from PIL import Image
    path = tmp_path / 'counts.tiff'
    Image.fromarray(photo()[..., 0].astype(np.int32) * 1000).save(path)
    with pytest.raises(ImageReadError, match=r"'.*counts\.tiff' stores 32-bit signed integer pixels; only 8- and "
                                             r'16-bit images are read'):
        inferencer.preprocess(str(path))


def test_the_four_stages(inferencer, tmp_path):
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), photo())
    data = inferencer.preprocess(str(src))
    assert set(data) == {'inputs', 'data_samples', 'notes', 'size', 'icc_profile', 'alpha', 'exif', 'orientation'}
    assert data['orientation'] == 1  # (only raw Bayer data is turned after the model)
    assert data['icc_profile'] is None and data['alpha'] is None  # OpenCV's colour PNG: no profile, no alpha
    assert data['size'] == (10, 12) and data['notes'] == []
    assert tuple(data['inputs'][0].shape) == (3, 10, 12)
    assert torch.equal(data['inputs'][0], torch.from_numpy(photo()[..., ::-1].copy()).permute(2, 0, 1))  # RGB
    preds = inferencer.forward(data)
    assert tuple(preds.shape) == (3, 20, 24) and preds.dtype == torch.float32
    imgs = inferencer.visualize(preds, result_out_dir=str(tmp_path / 'out' / 'a.png'))
    assert imgs[0].shape == (20, 24, 3) and imgs[0].dtype == np.uint8
    assert np.array_equal(cv2.imread(str(tmp_path / 'out' / 'a.png')), imgs[0])
    assert inferencer.postprocess(preds, imgs) is imgs[0]
    assert np.array_equal(inferencer.postprocess(preds), imgs[0])
    # the whole call, as mmagic's inferencers are called
    assert np.array_equal(inferencer(img=str(src), result_out_dir=str(tmp_path / 'b.png')), imgs[0])
    assert np.array_equal(cv2.imread(str(tmp_path / 'b.png')), imgs[0])


def test_result_out_dir_is_checked_before_the_work_and_never_the_input(inferencer, tmp_path, monkeypatch):
    """infer(img='photo.png', result_out_dir='photo.png') replaced the photo with its result (tools/restore.py
    refuses that); a folder or a name without extension failed after the work with OpenCV's "could not encode"."""
    src = tmp_path / 'photo.png'
    cv2.imwrite(str(src), photo())
    before = src.read_bytes()
    (tmp_path / 'outd').mkdir()
    (tmp_path / 'sr.png').mkdir()  # a folder named like the result's file
    monkeypatch.setattr(inferencer, 'forward', lambda data: pytest.fail('the work started'))
    cases = [(str(src), r"result_out_dir '.*photo.png' is the input image itself; choose another file"),
             (str(tmp_path / '.' / 'photo.png'), 'is the input image itself'),
             (str(tmp_path / 'outd'), rf"is a folder; it names the result's file, e.g. {tmp_path}/outd/photo_restored"),
             (str(tmp_path / 'sr.png'), r"'.*sr.png' is a folder; remove or rename it, or name a file inside it"),
             (str(tmp_path / 'result'), r"has no extension to choose the format; name the file with one, e.g. "
                                        r"'.*result.png'"),
             (str(src) + '/x.png', r"cannot be written \('.*photo.png' is a file\)")]
    for out, message in cases:
        with pytest.raises(RestoreError, match=message):
            inferencer(img=str(src), result_out_dir=out)
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ['outd', 'photo.png', 'sr.png']


def test_calls_from_several_threads_keep_mmagic_s_per_image_warning_quiet(inferencer):
    """Each call added and removed its log filter on the shared logger, so one thread's removal let mmagic's
    "Cannot find key 'gt_img'" warning out of another thread's call; the filter stays while any call is inside."""
    import threading

    from mmengine.logging import MMLogger

    from panet_mm.apis.inferencers.restoration_inferencer import _filtered, _no_missing_gt_warning
    logger = MMLogger.get_current_instance()
    first, second = _filtered(logger), _filtered(logger)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)                    # the first call ends while the second runs
    assert _no_missing_gt_warning in logger.filters
    second.__exit__(None, None, None)
    assert _no_missing_gt_warning not in logger.filters
    outs = []
    with log_records(logging.WARNING, logger) as records:
        def calls(seed):
            outs.extend(inferencer.restore_array(photo(6, 6, seed)) for _ in range(3))

        threads = [threading.Thread(target=calls, args=(seed,)) for seed in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(outs) == 9 and [r.getMessage() for r in records] == []


def test_opencv_order_in_and_out_config_order_for_restore_array(inferencer, monkeypatch, tmp_path):
    monkeypatch.setitem(inferencer.model._modules, 'generator', NearestUp())
    bgr = photo()
    cv2.imwrite(str(tmp_path / 'a.png'), bgr)
    assert np.array_equal(inferencer(img=bgr), up2(bgr))                  # array in, OpenCV order both ways
    assert np.array_equal(inferencer(img=str(tmp_path / 'a.png')), up2(bgr))  # a file: the same
    rgb = bgr[..., ::-1]
    assert np.array_equal(inferencer.restore_array(rgb), up2(rgb))       # the array API: the config's order
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 7, np.uint8)])
    data = inferencer.preprocess(bgra)
    assert data['notes'] == [ALPHA_NOTE] and np.array_equal(data['alpha'], bgra[..., 3])
    assert np.array_equal(inferencer.visualize(inferencer.forward(data))[0], up2(bgr))
    # the whole call writes the alpha back, resized to the result (a flat alpha stays flat)
    assert np.array_equal(inferencer(img=bgra), np.dstack([up2(bgr), np.full((20, 24), 7, np.uint8)]))


def test_grey_array_is_noted(inferencer):
    data = inferencer.preprocess(photo()[..., 0])
    assert data['notes'] == ['grey image converted to 3 channels for the colour model']
    assert tuple(data['inputs'][0].shape) == (3, 10, 12)


TASKS = {
    'sr': (DEMO_CONFIG, 2, 3),
    'dn': (osp.join(ROOT, 'configs', 'demo', 'panet_dn_sigma30_demo.py'), 1, 3),
    'car': (osp.join(ROOT, 'configs', 'demo', 'panet_car_q10_demo.py'), 1, 1),
    'demosaic': (DEMOSAIC_CONFIG, 1, 3),
}


@pytest.mark.parametrize('task', list(TASKS))
def test_every_task_through_one_call(task, tmp_path):
    from mmagic.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    config, scale, channels = TASKS[task]
    init_default_scope('mmagic')
    torch.manual_seed(0)
    ckpt = save_runner_checkpoint(MODELS.build(Config.fromfile(config).model), tmp_path / f'{task}.pth')
    inferencer = RestorationInferencer(config, str(ckpt), device='cpu', tile=dict(size=8, overlap=2))
    assert inferencer.model.tile_cfg['size'] == (8, 8)  # the test-time mode reaches the model's test_cfg
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), photo(12, 14))
    out = inferencer(img=str(src), result_out_dir=str(tmp_path / 'out.png'))
    # OpenCV's order: H x W for the grey JPEG model (was H x W x 1, unlike cv2.imread, to_bgr and the file)
    assert out.shape == (12 * scale, 14 * scale, channels)[:2 if channels == 1 else 3]
    written = cv2.imread(str(tmp_path / 'out.png'), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written, out)


def test_attention_cost_comes_from_the_blocks_own_method():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Block2()

        def macs(self, h, w):
            return h * w

    class Block2(torch.nn.Module):
        def macs(self, h, w):  # inside a block that reports its own cost: not counted again
            raise AssertionError('counted twice')

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), Block(), torch.nn.Sequential(Block()))
    assert model_attention_macs(net, 4, 5) == 40
    assert model_attention_macs(torch.nn.Conv2d(3, 3, 1), 4, 5) == 0


# ---------------------------------------------------------------------------------------- PANetInferencer


def test_registered_names_resolve_to_config_files():
    models = registered_models()
    assert {'panet_sr_x2_div2k', 'panet_sr_x2_demo', 'panet_demosaic_demo'} <= set(models)
    assert models['panet_sr_x2_demo'] == osp.join(ROOT, 'configs', 'demo', 'panet_sr_x2_demo.py')
    assert resolve_config(DEMO_CONFIG) == DEMO_CONFIG
    assert resolve_config('panet_mm::panet/panet_sr_x2_demo.py') == osp.join(ROOT, 'configs', 'panet',
                                                                              'panet_sr_x2_demo.py')
    assert resolve_config('panet_sr_x2_div2k') == osp.join(ROOT, 'configs', 'panet_sr_x2_div2k.py')
    assert resolve_config('panet_sr_x2_demo') == models['panet_sr_x2_demo']
    assert PANetInferencer.get_inference_supported_models() == sorted(models)


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(RestoreParameterError) as err:
        resolve_config('panet_sr_x5')
    assert str(err.value).startswith("config 'panet_sr_x5' is neither") and 'panet_sr_x2_demo' in str(err.value)
    assert err.value.for_cli({'config': '--config'}).startswith("--config 'panet_sr_x5'")
    with pytest.raises(RestoreParameterError, match='neither'):
        resolve_config('panet_mm::../../setup.py')  # a name never reaches files outside the configs


def test_a_checkout_path_from_elsewhere_is_answered_with_the_shipped_name(demo_checkpoint, tmp_path, monkeypatch,
                                                                          capsys):
    """``--config configs/panet_sr_x2_div2k.py`` (the README's form) outside the checkout got "neither a config file
    nor a registered model" and every model name, not the one config the user meant."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RestoreParameterError) as err:
        resolve_config('configs/panet_sr_x2_div2k.py')
    assert str(err.value) == ("config file 'configs/panet_sr_x2_div2k.py' does not exist here (a path in a panet_mm "
                              "checkout); pass the config panet_mm ships, 'panet_mm::panet/panet_sr_x2_div2k.py' or "
                              "its model name 'panet_sr_x2_div2k'")
    assert resolve_config('panet_mm::panet/panet_sr_x2_div2k.py') and resolve_config('panet_sr_x2_div2k')
    with pytest.raises(RestoreParameterError, match=r"'configs/mix/demo/edsr_pa_sr_x2_demo.py' does not exist here .*"
                       r"ships, 'panet_mm::mix/demo/edsr_pa_sr_x2_demo.py'$"):
        resolve_config('configs/mix/demo/edsr_pa_sr_x2_demo.py')  # (not a registered model: no model name)
    assert resolve_config('panet_mm::mix/demo/edsr_pa_sr_x2_demo.py')
    with pytest.raises(RestoreParameterError, match="'configs/nope.py' is neither a config file"):
        resolve_config('configs/nope.py')  # no shipped config of that name: the names are listed
    with pytest.raises(RestoreParameterError, match=r"does not exist here .*'panet_mm::panet/panet_sr_x2_demo.py' or "
                       r"its model name 'panet_sr_x2_demo'$"):
        RestorationInferencer('configs/demo/panet_sr_x2_demo.py', str(demo_checkpoint), device='cpu')
    with pytest.raises(RestoreParameterError, match=r"'x.py' does not exist; pass a config file, or a shipped model "
                       r"name such as 'panet_sr_x2_div2k' to PANetInferencer$"):
        RestorationInferencer('x.py', str(demo_checkpoint), device='cpu')
    cv2.imwrite(str(tmp_path / 'a.png'), photo())
    rc = restore_cli.main(['--config', 'configs/panet_sr_x2_div2k.py', '--checkpoint', str(demo_checkpoint),
                           'a.png', 'out'])
    assert rc == 2 and capsys.readouterr().err == (
        "error: --config file 'configs/panet_sr_x2_div2k.py' does not exist here (a path in a panet_mm checkout); "
        "pass the config panet_mm ships, 'panet_mm::panet/panet_sr_x2_div2k.py' or its model name "
        "'panet_sr_x2_div2k'\n")
    monkeypatch.chdir(ROOT)
    assert resolve_config('configs/panet_sr_x2_div2k.py') == 'configs/panet_sr_x2_div2k.py'  # in the checkout


@pytest.mark.parametrize('name', ['path', 'panet_mm::panet/panet_sr_x2_demo.py', 'panet_sr_x2_demo'])
def test_panet_inferencer_by_path_and_by_name(demo_checkpoint, tmp_path, name):
    editor = PANetInferencer(DEMO_CONFIG if name == 'path' else name, str(demo_checkpoint), device='cpu')
    src = tmp_path / 'lr.png'
    cv2.imwrite(str(src), photo())
    out = editor.infer(img=str(src), result_out_dir=str(tmp_path / 'sr.png'))
    assert out.shape == (20, 24, 3) and np.array_equal(cv2.imread(str(tmp_path / 'sr.png')), out)
    assert editor.model_name == (DEMO_CONFIG if name == 'path' else name)


# ---------------------------------------------------------------------------------------- CLI voice


def test_library_names_parameters_and_the_cli_its_flags(demo_checkpoint, tmp_path, capsys):
    from panet_mm.apis import plan_jobs
    cv2.imwrite(str(tmp_path / 'a.png'), photo())
    with pytest.raises(RestoreParameterError) as err:
        plan_jobs(str(tmp_path / 'a.png'), str(tmp_path / 'out'), ext='png/x')
    assert str(err.value).startswith("ext '.png/x' is not an image format")
    rc = restore_cli.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), str(tmp_path / 'a.png'),
                           str(tmp_path / 'out'), '--ext', 'png/x'])
    assert rc == 2 and "error: --ext '.png/x' is not an image format" in capsys.readouterr().err
    rc = restore_cli.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), str(tmp_path),
                           str(tmp_path)])
    assert rc == 2 and f"error: OUTPUT '{tmp_path}' is the input itself" in capsys.readouterr().err


def test_cli_notes_suggest_flags(demo_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(RestorationInferencer, 'slow_attention_macs', 0)
    cv2.imwrite(str(tmp_path / 'a.png'), photo())
    rc = restore_cli.main(['--config', 'panet_sr_x2_demo', '--checkpoint', str(demo_checkpoint),
                           str(tmp_path / 'a.png'), str(tmp_path / 'out'), '--device', 'cpu', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 0 and '12x10 in one pass' in err and '--tile 256 --tile-overlap 16 bounds it' in err
    assert '--device cuda' in err and cv2.imread(str(tmp_path / 'out' / 'a.png')).shape == (20, 24, 3)


def test_float_arrays_outside_0_255_are_refused_with_the_fix(inferencer):
    """Floats in 0-1 (scikit-image, torchvision) were restored as a nearly black image without a note; NaN inputs
    were blamed on the checkpoint."""
    img = photo().astype(np.float32)
    assert inferencer.restore_array(img).shape == (20, 24, 3)          # 0-255 floats: as before
    assert inferencer.restore_array(np.zeros((10, 12, 3), np.float64)).shape == (20, 24, 3)  # black is black
    assert inferencer.restore_array((photo().astype(np.uint16) * 257) // 300).shape == (20, 24, 3)  # dark uint16
    cases = [(img / 255, 'in 0-1, but restoration takes 0-255 (as uint8 images); pass img * 255'),
             (img * 4, f'from {img.min() * 4:g} to {img.max() * 4:g} but restoration takes 0-255; rescale or clip it'),
             (np.where(img > 100, np.nan, img), 'NaN or infinite values; replace them')]
    for arr, message in cases:
        for call in (inferencer.restore_array, inferencer.preprocess):
            with pytest.raises(RestoreError, match=re.escape(message)):
                call(arr)


def test_what_is_neither_a_path_nor_an_array_is_named_with_its_conversion(inferencer, demo_checkpoint):
    from PIL import Image
    t = torch.rand(3, 10, 12)
    for img, kind, fix in [(t, 'torch.Tensor', 'permute(1, 2, 0)'), (Image.new('RGB', (12, 10)), 'PIL.Image',
                                                                      'restore_array(np.array(img))'),
                           (b'\x89PNG\r\n', 'builtins.bytes', 'cv2.imdecode'), (['a.png'], 'builtins.list',
                                                                                   'one image per call')]:
        with pytest.raises(RestoreError, match=rf'img must be an image file path or a numpy array, got {kind}; '):
            inferencer(img=img)
        with pytest.raises(RestoreError, match=re.escape(fix)):
            inferencer.preprocess(img)
    with pytest.raises(RestoreError, match='img must be a numpy array, got torch.Tensor'):
        inferencer.restore_array(t)
    assert RestorationInferencer(DEMO_CONFIG, str(demo_checkpoint), device=torch.device('cpu')).device == 'cpu'
    with pytest.raises(RestoreError, match="self_ensemble must be True or False, got 'no'"):
        RestorationInferencer(DEMO_CONFIG, str(demo_checkpoint), device='cpu', self_ensemble='no')
