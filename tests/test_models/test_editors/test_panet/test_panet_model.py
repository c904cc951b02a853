"""PANetEditModel: chop tiling rules, chop / tile / x8 / padding equivalences, SR shapes, val/test steps, tile
alignment for Bayer mosaics (align)."""
import pytest
import torch
import torch.nn as nn
from mmagic.registry import MODELS
from mmagic.structures import DataSample

import panet_mm  # noqa: F401
from panet_mm.datasets.transforms import bayer_mask, bayer_mosaic
from panet_mm.models.editors.panet.panet_model import PANetEditModel
from panet_mm.models.editors.panet.tiling import chop_boxes, pad_axis, tile_spans, tile_starts

pytestmark = pytest.mark.usefixtures('one_thread')


# ----------------------------------------------------------------------------- toy generators
@MODELS.register_module(force=True)
class _PixelNet(nn.Module):
    """Per-pixel (1x1 conv) network, optionally up-sampling by nearest repetition: tiling cannot change it."""

    def __init__(self, scale=1, channels=3):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(channels, channels, 1)
        self.scale = scale
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        y = self.conv(x)
        return y.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1) if self.scale > 1 else y


@MODELS.register_module(force=True)
class _GlobalNet(_PixelNet):
    """Non-local: every output pixel depends on its whole input tile (the tile mean), so the stitching shows."""

    def forward(self, x):
        y = super().forward(x)
        return y + 0.5 * x.mean(dim=(-2, -1), keepdim=True)


def edit_model(generator, **test_cfg):
    return MODELS.build(dict(type='PANetEditModel', generator=generator, pixel_loss=dict(type='L1Loss'),
                             test_cfg=test_cfg)).eval()


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- chop_boxes rules
def _coverage(tiles, h, w):
    cover, keep = torch.zeros(h, w, dtype=torch.int), torch.zeros(h, w, dtype=torch.int)
    for t in tiles:
        cover[t.top:t.top + t.height, t.left:t.left + t.width] += 1
        keep[t.keep_top:t.keep_top + t.keep_height, t.keep_left:t.keep_left + t.keep_width] += 1
        assert t.top <= t.keep_top and t.keep_top + t.keep_height <= t.top + t.height
        assert t.left <= t.keep_left and t.keep_left + t.keep_width <= t.left + t.width
    return cover, keep


def test_chop_boxes_one_level():
    tiles = chop_boxes(100, 100, min_size=6400, shave=10)
    assert [(t.top, t.left, t.height, t.width) for t in tiles] == \
        [(0, 0, 60, 60), (0, 40, 60, 60), (40, 0, 60, 60), (40, 40, 60, 60)]
    assert [(t.keep_top, t.keep_left, t.keep_height, t.keep_width) for t in tiles] == \
        [(0, 0, 50, 50), (0, 50, 50, 50), (50, 0, 50, 50), (50, 50, 50, 50)]


@pytest.mark.parametrize('h,w,min_size,shave,n,size', [
    (200, 200, 6400, 10, 16, (65, 65)),   # 110*110 >= 6400: one more level of 55+10
    (100, 100, 6400, 10, 4, (60, 60)),
    (30, 30, 6400, 10, 4, (25, 25)),      # the released chop always splits at least once
    (321, 481, 6800, 10, 64, (57, 77)),
    (7, 300, 6400, 10, 2, (7, 160)),      # thin: the short axis is not split (the released code fails here)
    (1, 1, 6400, 10, 1, (1, 1)),
])
def test_chop_boxes_rules(h, w, min_size, shave, n, size):
    tiles = chop_boxes(h, w, min_size, shave)
    assert len(tiles) == n and {(t.height, t.width) for t in tiles} == {size}
    cover, keep = _coverage(tiles, h, w)
    assert (cover > 0).all(), 'the tiles cover the image'
    assert (keep == 1).all(), 'the kept regions partition the image'


def _reference_chop(model, x, scale, shave, min_size, n_gpus=1):
    """The released forward_chop as described in the brief (recursive, 4 quadrants, n_GPUs at a time, copy back)."""
    b, c, h, w = x.shape
    h_half, w_half = h // 2, w // 2
    h_size, w_size = h_half + shave, w_half + shave
    patches = [x[..., 0:h_size, 0:w_size], x[..., 0:h_size, w - w_size:w],
               x[..., h - h_size:h, 0:w_size], x[..., h - h_size:h, w - w_size:w]]
    if w_size * h_size < min_size:
        outs = []
        for i in range(0, 4, n_gpus):
            outs.extend(model(torch.cat(patches[i:i + n_gpus])).chunk(n_gpus))
    else:
        outs = [_reference_chop(model, p, scale, shave, min_size, n_gpus) for p in patches]
    h, w, h_half, w_half, h_size, w_size = (scale * v for v in (h, w, h_half, w_half, h_size, w_size))
    out = x.new_empty(b, outs[0].shape[1], h, w)
    out[..., 0:h_half, 0:w_half] = outs[0][..., 0:h_half, 0:w_half]
    out[..., 0:h_half, w_half:w] = outs[1][..., 0:h_half, w_size - w + w_half:w_size]
    out[..., h_half:h, 0:w_half] = outs[2][..., h_size - h + h_half:h_size, 0:w_half]
    out[..., h_half:h, w_half:w] = outs[3][..., h_size - h + h_half:h_size, w_size - w + w_half:w_size]
    return out


@pytest.mark.parametrize('scale,per_batch', [(1, 1), (2, 1), (3, 4)])
def test_chop_bit_for_bit_with_released_recursion(scale, per_batch):
    model = edit_model(dict(type='_GlobalNet', scale=scale), chop=dict(min_size=400, shave=4,
                                                                       tiles_per_batch=per_batch))
    x = rand(2, 3, 53, 71)
    with torch.no_grad():
        ours = model(x, mode='tensor')
        ref = _reference_chop(model.generator, x, scale, 4, 400, per_batch)
        whole = model.generator(x)
    assert torch.equal(ours, ref)
    assert not torch.allclose(ours, whole), 'the toy net is non-local, so chopping must show'


# ----------------------------------------------------------------------------- equivalences
@pytest.mark.parametrize('test_cfg', [
    dict(chop=dict(min_size=100, shave=3)),
    dict(tile=dict(size=8, overlap=3)),
    dict(tile=dict(size=(5, 16), overlap=2, tiles_per_batch=3)),
    dict(self_ensemble=True),
    dict(self_ensemble=True, chop=dict(min_size=64, shave=2)),
    dict(min_input_size=64),
])
@pytest.mark.parametrize('scale', [1, 2])
def test_modes_equal_whole_image_for_per_pixel_net(test_cfg, scale):
    model = edit_model(dict(type='_PixelNet', scale=scale), **test_cfg)
    x = rand(2, 3, 23, 17)
    with torch.no_grad():
        whole = model.generator(x)
        out = model(x, mode='tensor')
    assert out.shape == (2, 3, 23 * scale, 17 * scale)
    torch.testing.assert_close(out, whole, atol=1e-6, rtol=1e-6)


def test_default_is_one_whole_image_pass():
    model = edit_model(dict(type='_PixelNet'))
    with torch.no_grad():
        model(rand(2, 3, 40, 30), mode='tensor')
    assert model.generator.seen == [(2, 3, 40, 30)]


def test_tile_starts():
    assert tile_starts(20, 8, 3) == [0, 5, 10, 12]
    assert tile_starts(5, 8, 3) == [0]
    with pytest.raises(ValueError, match='overlap < size'):
        tile_starts(20, 4, 4)


def test_tile_blends_overlaps_by_averaging():
    model = edit_model(dict(type='_GlobalNet'), tile=dict(size=(4, 6), overlap=2))
    x = rand(1, 3, 4, 10)
    with torch.no_grad():
        out = model(x, mode='tensor')
        a, b = (model.generator(x[..., s:s + 6]) for s in (0, 4))  # tiles start at 0 and 4 (= 10 - 6)
    torch.testing.assert_close(out[..., :4], a[..., :4])
    torch.testing.assert_close(out[..., 4:6], (a[..., 4:6] + b[..., :2]) / 2)
    torch.testing.assert_close(out[..., 6:], b[..., 2:])


class _AsymNet(nn.Module):
    """Not flip-equivariant: a 3x3 conv with a random kernel."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_self_ensemble_averages_the_eight_transforms():
    model = PANetEditModel(generator=dict(type='_PixelNet'), pixel_loss=dict(type='L1Loss'),
                           test_cfg=dict(self_ensemble=True)).eval()
    model.generator = _AsymNet()
    x = rand(1, 3, 6, 9)
    with torch.no_grad():
        out = model(x, mode='tensor')
        g = model.generator
        views = []
        for hflip in (False, True):
            for vflip in (False, True):
                for tr in (False, True):
                    y = x.flip(-1) if hflip else x
                    y = y.flip(-2) if vflip else y
                    y = g(y.transpose(-2, -1)) if tr else g(y)
                    y = y.transpose(-2, -1) if tr else y
                    y = y.flip(-2) if vflip else y
                    views.append(y.flip(-1) if hflip else y)
        expected = torch.stack(views).mean(0)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, g(x))


# ----------------------------------------------------------------------------- padding of unsuitable sizes
def test_tiny_odd_input_padded_and_cropped_back():
    model = edit_model(dict(type='_PixelNet', scale=2), min_input_size=8)
    x = rand(1, 3, 3, 5)
    with torch.no_grad():
        out = model(x, mode='tensor')
    assert model.generator.seen[-1] == (1, 3, 8, 8)
    assert out.shape == (1, 3, 6, 10)
    torch.testing.assert_close(out, model.generator(x))


# The memory-linear kernel is tested in tests/test_models/test_layers; the reference formulation keeps these
# tests about the edit model alone (tiny inputs, memory irrelevant).
REF_ATTENTION = dict(implementation='reference')


def _tiny_panet(**kw):
    return dict(type='PANet', mid_channels=8, num_blocks=2, attention_cfg=REF_ATTENTION, **kw)


@pytest.mark.parametrize('h,w', [(1, 1), (1, 5), (3, 5)])
def test_panet_too_small_for_pyramid_is_padded_not_rejected(h, w):
    model = edit_model(_tiny_panet())
    assert model.min_input_size == 2  # floor(0.6 * 1) == 0: the smallest level of a 1-pixel side is empty
    x = rand(1, 3, h, w)
    if min(h, w) < 2:
        with pytest.raises(ValueError, match='too small'):
            model.generator(x)
    with torch.no_grad():
        out = model(x, mode='tensor')
    assert out.shape == (1, 3, h, w) and torch.isfinite(out).all()


# ----------------------------------------------------------------------------- real SR generator, all modes
TINY_SR = dict(type='PAEDSRNet', mid_channels=16, num_blocks=2, upscale_factor=2, attention_cfg=REF_ATTENTION)


@pytest.mark.parametrize('test_cfg', [
    {}, dict(chop=dict(min_size=60, shave=2)), dict(tile=dict(size=6, overlap=2)), dict(self_ensemble=True),
    dict(self_ensemble=True, tile=dict(size=7, overlap=1)),
])
def test_paedsr_shapes_in_every_mode(test_cfg):
    model = edit_model(TINY_SR, **test_cfg)
    x = rand(1, 3, 11, 9)
    with torch.no_grad():
        out = model(x, mode='tensor')
    assert out.shape == (1, 3, 22, 18) and torch.isfinite(out).all()


def test_training_forward_is_plain_generator():
    model = edit_model(dict(type='_GlobalNet'), chop=dict(min_size=16, shave=1)).train()
    x = rand(1, 3, 12, 12)
    torch.testing.assert_close(model(x, mode='tensor'), model.generator(x))
    loss = model(x, DataSample(gt_img=rand(1, 3, 12, 12, seed=1)), mode='loss')
    assert set(loss) == {'loss'} and loss['loss'].requires_grad


@pytest.mark.parametrize('test_cfg', [dict(), dict(chop=dict(min_size=60, shave=2))])
def test_val_and_test_step_from_config(test_cfg):
    cfg = dict(type='PANetEditModel', generator=TINY_SR, pixel_loss=dict(type='L1Loss', loss_weight=1.0),
               test_cfg=test_cfg,
               data_preprocessor=dict(type='mmagic.DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))
    model = MODELS.build(cfg)
    assert isinstance(model, PANetEditModel)
    model.eval()
    inputs = [(rand(3, 7, 10, seed=i) * 255).round() for i in range(2)]
    samples = [DataSample(gt_img=(rand(3, 14, 20, seed=9 + i) * 255).round()) for i in range(2)]
    with torch.no_grad():
        for step in (model.val_step, model.test_step):
            outs = step(dict(inputs=inputs, data_samples=samples))
            assert len(outs) == 2
            for o in outs:
                assert o.output.pred_img.shape == (3, 14, 20)


def test_predictions_are_whole_levels_as_the_released_test_scores_them():
    """quantize (default): pred_img holds what an 8-bit PNG of it holds, so the metrics score the image a user
    keeps (the released test's quantize); quantize=False: mmagic's float scoring, within half a level of it."""
    pre = dict(type='mmagic.DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.])
    inputs = [(rand(3, 7, 10, seed=3) * 255).round()]
    preds = {}
    for quantize in (True, False):
        torch.manual_seed(0)  # the same weights for both
        model = MODELS.build(dict(type='PANetEditModel', generator=TINY_SR, pixel_loss=dict(type='L1Loss'),
                                  test_cfg=dict(quantize=quantize), data_preprocessor=pre)).eval()
        with torch.no_grad():
            preds[quantize] = model.val_step(dict(inputs=inputs, data_samples=[DataSample()]))[0].output.pred_img
    rounded, raw = preds[True], preds[False]
    assert torch.equal(rounded, rounded.round()) and not torch.equal(raw, raw.round())
    assert torch.equal(rounded, raw.round()) and rounded.min() >= 0 and rounded.max() <= 255


@pytest.mark.parametrize('test_cfg,calls', [
    (dict(), [(1, 1)]),
    (dict(self_ensemble=True), [(k, 8) for k in range(1, 9)]),
    (dict(tile=dict(size=8, overlap=2), self_ensemble=True), [(k, 48) for k in range(1, 49)]),  # 2x3 tiles, x8
    (dict(tile=dict(size=8, overlap=2, tiles_per_batch=4)), [(1, 2), (2, 2)]),  # 6 equal tiles: 4 + 2
    (dict(chop=dict(min_size=60, shave=2)), [(k, 16) for k in range(1, 17)]),
])
def test_progress_reports_each_generator_pass(test_cfg, calls):
    """progress(done, total): a caller can show how far one slow image is (tiles, x8 passes)."""
    model = edit_model(dict(type='_PixelNet'), **test_cfg)
    seen = []
    model.progress = lambda done, total: seen.append((done, total))
    with torch.no_grad():
        model(rand(1, 3, 12, 17), mode='tensor')
    assert seen == calls


@pytest.mark.parametrize('test_cfg,match', [
    (dict(chop=dict(min_size=100), tile=dict(size=8)), 'both chop and tile'),
    (dict(quantize='yes'), "quantize must be True or False, got 'yes'"),
    (dict(chopp=dict()), "unknown keys \\['chopp'\\]"),
    (dict(chop=dict(shavee=3)), "chop has unknown keys \\['shavee'\\]"),
    (dict(tile=dict(overlap=2)), 'tile needs a size'),
    (dict(tile=dict(size=4, overlap=4)), 'overlap < size'),
    (dict(min_input_size=0), 'min_input_size must be a positive int'),
    (dict(align=0), 'align must be an int >= 1'),
    (dict(align=2.0), 'align must be an int >= 1'),
    (dict(align=4, tile=dict(size=3)), 'smaller than align=4'),
    (dict(precision='half'), "precision must be one of \\['fp32', 'bf16', 'fp16'\\], got 'half'"),
    (dict(chop=dict(min_size=400, shave=10)), r'chop min_size=400 with shave=10 never stops splitting early: .* '
                                              r'use min_size >= 1600 \(16\*shave\^2'),
])
def test_bad_test_cfg_named(test_cfg, match):
    with pytest.raises(ValueError, match=match):
        edit_model(dict(type='_PixelNet'), **test_cfg)


def test_chop_that_would_split_into_thousands_of_pieces_is_refused(monkeypatch):
    """min_size=4400, shave=32 split a 256x256 input into 16384 overlapping pieces (minutes, silently): pieces
    shrink towards 2*shave per side but hardly below. Refused before any piece runs; sane settings still run."""
    model = edit_model(dict(type='_PixelNet'), chop=dict(min_size=4400, shave=32))
    monkeypatch.setattr(model, '_run_tiles', lambda *a, **k: pytest.fail('a piece ran'))
    with pytest.raises(ValueError, match=r'chop min_size=4400 with shave=32 splits this 256x256 input into 16384 '
                       r'pieces: .* use min_size >= 16384'):
        model.restore(torch.zeros(1, 3, 256, 256))
    monkeypatch.undo()
    fine = edit_model(dict(type='_PixelNet'), chop=dict(min_size=16384, shave=32))
    assert fine.restore(rand(1, 3, 256, 256)).shape == (1, 3, 256, 256)


def test_chop_cfg_true_uses_released_defaults():
    model = edit_model(dict(type='_PixelNet'), chop=True)
    assert model.chop_cfg == dict(min_size=6400, shave=10, tiles_per_batch=1)


# ----------------------------------------------------------------------------- align: Bayer phase kept
@pytest.mark.parametrize('h,w', [(23, 17), (53, 71), (30, 31), (64, 64), (7, 300), (2, 3), (1, 1)])
@pytest.mark.parametrize('min_size,shave', [(100, 3), (400, 4), (6400, 10), (16, 0)])
def test_chop_boxes_align(h, w, min_size, shave):
    tiles = chop_boxes(h, w, min_size, shave, align=2)
    assert all(t.top % 2 == 0 and t.left % 2 == 0 for t in tiles), 'every leaf origin even'
    assert all(t.top + t.height <= h and t.left + t.width <= w for t in tiles)
    cover, keep = _coverage(tiles, h, w)
    assert (keep == 1).all(), 'the kept regions partition the image'
    if shave:  # align=1 is the released chop (shave=0 with odd sides: the released code mis-stitches)
        assert chop_boxes(h, w, min_size, shave, align=1) == chop_boxes(h, w, min_size, shave)


def test_chop_boxes_align_moves_odd_origins():
    released = chop_boxes(23, 17, 100, 3)
    aligned = chop_boxes(23, 17, 100, 3, align=2)
    assert any(t.top % 2 for t in released)  # 23 - (11 + 3) = 9
    assert not any(t.top % 2 or t.left % 2 for t in aligned)
    assert len(aligned) == len(released)  # same recursion, quadrants starting up to align - 1 pixels earlier
    assert all(0 <= a.height - r.height <= 1 and 0 <= a.width - r.width <= 1 for a, r in zip(aligned, released))
    assert chop_boxes(100, 100, align=2) == chop_boxes(100, 100)  # already even: unchanged


@pytest.mark.parametrize('length', [1, 2, 7, 11, 20, 23, 40])
@pytest.mark.parametrize('size,overlap', [(4, 0), (8, 3), (5, 4), (6, 2)])
@pytest.mark.parametrize('align', [1, 2, 3])
def test_tile_spans_align_cover(length, size, overlap, align):
    spans = tile_spans(length, size, overlap, align)
    assert all(s % align == 0 for s, _ in spans)
    assert spans[-1][0] + spans[-1][1] == length
    assert all(n == size for _, n in spans[:-1]) and size <= spans[-1][1] < size + align or length <= size
    covered = torch.zeros(length, dtype=torch.int)
    for s, n in spans:
        covered[s:s + n] += 1
    assert (covered > 0).all()
    assert [s for s, _ in spans] == tile_starts(length, size, overlap, align)


def test_tile_starts_align():
    assert tile_starts(20, 8, 3, align=1) == tile_starts(20, 8, 3) == [0, 5, 10, 12]
    assert tile_starts(20, 8, 3, align=2) == [0, 4, 8, 12]
    assert tile_spans(11, 4, 0, align=2) == [(0, 4), (4, 4), (6, 5)]  # the last tile starts earlier, one larger
    with pytest.raises(ValueError, match='size >= align'):
        tile_spans(11, 1, 0, align=2)


@MODELS.register_module(force=True)
class _PhaseNet(nn.Module):
    """Demosaics as a network trained on GRBG mosaics: keeps, at each pixel, the channel that GRBG measures there,
    counted from its own input's top-left pixel. Its output therefore depends on the Bayer phase of its tile: on a
    GRBG mosaic it is the identity when the tile starts at an even offset, mostly zeros otherwise."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        mask = torch.from_numpy(bayer_mask(x.shape[-2], x.shape[-1], 'GRBG')).permute(2, 0, 1).to(x.dtype)
        return x * mask


def grbg_mosaic(h, w, seed=0):
    img = rand(h, w, 3, seed=seed) + 0.1  # no zeros in the photo
    return torch.from_numpy(bayer_mosaic(img.numpy(), 'GRBG')).permute(2, 0, 1)[None]


@pytest.mark.parametrize('test_cfg', [
    dict(chop=dict(min_size=100, shave=3)),
    dict(chop=dict(min_size=40, shave=2, tiles_per_batch=4)),
    dict(tile=dict(size=8, overlap=3)),
    dict(tile=dict(size=(5, 7), overlap=0, tiles_per_batch=3)),
])
def test_align_keeps_the_bayer_phase(test_cfg):
    x = grbg_mosaic(23, 17)
    aligned = edit_model(dict(type='_PhaseNet'), align=2, **test_cfg)
    released = edit_model(dict(type='_PhaseNet'), **test_cfg)
    with torch.no_grad():
        whole = aligned.generator(x)
        assert torch.equal(whole, x)  # the stand-in is exact on a whole GRBG mosaic
        # identical up to the float rounding of the tile overlaps' average (chop: bit for bit)
        out = aligned(x, mode='tensor')
        torch.testing.assert_close(out, whole, rtol=1e-6, atol=0)
        assert 'tile' in test_cfg or torch.equal(out, whole)
        wrong = (released(x, mode='tensor') - whole).abs().max()
        assert wrong > 0.1, 'odd tile offsets show the network another phase'


def test_padding_keeps_the_bayer_phase():
    model = edit_model(dict(type='_PhaseNet'), align=2, min_input_size=12, tile=dict(size=6, overlap=2))
    x = grbg_mosaic(5, 9, seed=1)
    with torch.no_grad():
        out = model(x, mode='tensor')
    assert (12, 12) in {s[-2:] for s in model.generator.seen}  # tiles padded at the bottom / right
    assert torch.equal(out, x)


def test_self_ensemble_with_align_refused_at_build():
    with pytest.raises(ValueError, match='self_ensemble together with align=2') as err:
        edit_model(dict(type='_PixelNet'), self_ensemble=True, align=2)
    assert 'flip or transpose changes the Bayer pattern' in str(err.value) and 'drop self_ensemble' in str(err.value)
    assert edit_model(dict(type='_PixelNet'), self_ensemble=True, align=1).self_ensemble


def test_pad_modes():
    x = torch.arange(5.).view(1, 1, 1, 5)
    assert pad_axis(x, -1, 7).flatten().tolist() == [0, 1, 2, 3, 4, 3, 2]      # reflect
    assert pad_axis(x, -2, 3).flatten().tolist() == [0, 1, 2, 3, 4] * 3         # replicate: 1 row can't reflect


# ----------------------------------------------------------------------------- precision (autocast)
@pytest.mark.parametrize('precision,dtype', [('bf16', torch.bfloat16), ('fp16', torch.float16)])
def test_precision_runs_the_generator_under_autocast(precision, dtype):
    """The generator's convolutions run in the half dtype; the result is float32, close to fp32's."""
    seen = []

    @MODELS.register_module(force=True)
    class _ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            seen.append(y.dtype)
            return y

    x = rand(1, 3, 9, 11)
    edit_model(dict(type='_ConvNet'))(x, mode='tensor')
    half = edit_model(dict(type='_ConvNet'), precision=precision, self_ensemble=True)
    out = half(x, mode='tensor')
    assert seen[0] == torch.float32 and seen[1:] == [dtype] * 8 and out.dtype == torch.float32
    x8 = edit_model(dict(type='_ConvNet'), self_ensemble=True)(x, mode='tensor')
    assert (out - x8).abs().max() < 0.02 and not torch.equal(out, x8)
