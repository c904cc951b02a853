"""Released-checkpoint converter: a released-layout model written here from PAPER.md, converted and compared.

The module tree below reproduces the released naming (``head`` / ``body.N.body.{0,1,2}`` /
``conv_match_L_base`` ... / ``tail``) and forward (on 0-255 data) from the spec alone; the
reference repository is not imported.
"""
import os
import os.path as osp
import stat
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmagic.registry import MODELS

import panet_mm  # noqa: F401
from panet_mm.models.editors.panet.official import (
    ConversionError,
    build_generator,
    convert_official_checkpoint,
    convert_state_dict,
    unwrap_state_dict,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.join(ROOT, 'tools'))
import convert_official_ckpt  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_thread')


# ----------------------------------------------------------------------------- released layout, from the spec
def conv(cin, cout, k):
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class RelResBlock(nn.Module):
    def __init__(self, n, act, res_scale):
        super().__init__()
        self.body = nn.Sequential(conv(n, n, 3), act, conv(n, n, 3))
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x) * self.res_scale + x


class RelPyramidAttention(nn.Module):
    """Spec: bicubic pyramid 1.0..0.6, 1x1 conv+PReLU embeddings, normalised keys, one softmax, paste / 4."""

    def __init__(self, c, r, res_scale, levels=5):
        super().__init__()
        self.scales = [1 - i / 10 for i in range(levels)]
        self.res_scale = res_scale
        self.conv_match_L_base = nn.Sequential(nn.Conv2d(c, c // r, 1), nn.PReLU())
        self.conv_match = nn.Sequential(nn.Conv2d(c, c // r, 1), nn.PReLU())
        self.conv_assembly = nn.Sequential(nn.Conv2d(c, c, 1), nn.PReLU())
        self.register_buffer('escape_NaN', torch.FloatTensor([1e-4]))

    def forward(self, x):
        outs = []
        for b in range(x.shape[0]):
            xi = x[b:b + 1]
            pyr = [xi if s == 1 else F.interpolate(xi, scale_factor=s, mode='bicubic', align_corners=False)
                   for s in self.scales]
            keys = torch.cat([F.unfold(self.conv_match(p), 3, padding=1) for p in pyr], -1)[0].t()
            vals = torch.cat([F.unfold(self.conv_assembly(p), 3, padding=1) for p in pyr], -1)[0].t()
            keys = keys / torch.max(keys.norm(dim=1, keepdim=True), self.escape_NaN)
            q = self.conv_match_L_base(xi)
            score = F.conv2d(q, keys.view(keys.shape[0], -1, 3, 3), padding=1)       # (1, L, H, W)
            attn = F.softmax(score * 10, dim=1)
            y = F.conv_transpose2d(attn, vals.view(vals.shape[0], -1, 3, 3), padding=1) / 4
            outs.append(y + self.res_scale * xi)
        return torch.cat(outs)


class RelPANet(nn.Module):
    def __init__(self, colors=3, c=8, blocks=4, r=2):
        super().__init__()
        shared = nn.PReLU()  # the released argument-order bug: ONE PReLU for all ResBlocks
        self.sub_mean = nn.Conv2d(3, 3, 1)  # built, never used
        self.add_mean = nn.Conv2d(3, 3, 1)
        self.head = nn.Sequential(conv(colors, c, 3))
        body = [RelResBlock(c, shared, 1) for _ in range(blocks // 2)] + [RelPyramidAttention(c, r, 1)]
        body += [RelResBlock(c, shared, 1) for _ in range(blocks - blocks // 2)] + [conv(c, c, 3)]
        self.body = nn.Sequential(*body)
        self.tail = nn.Sequential(conv(c, colors, 3))
        with torch.no_grad():
            shared.weight.fill_(0.2)

    def forward(self, x):
        h = self.head(x)
        return self.tail(self.body(h) + h)


class RelPAEDSR(nn.Module):
    def __init__(self, scale=2, c=16, blocks=2, r=8):
        super().__init__()
        mean = torch.tensor([0.4488, 0.4371, 0.4040]) * 255
        self.sub_mean, self.add_mean = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            for m, sign in ((self.sub_mean, -1), (self.add_mean, 1)):
                m.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
                m.bias.copy_(sign * mean)
        self.head = nn.Sequential(conv(3, c, 3))
        body = [RelResBlock(c, nn.ReLU(True), 0.1) for _ in range(blocks // 2)] + [RelPyramidAttention(c, r, 0.1)]
        body += [RelResBlock(c, nn.ReLU(True), 0.1) for _ in range(blocks - blocks // 2)] + [conv(c, c, 3)]
        self.body = nn.Sequential(*body)
        up = [conv(c, 4 * c, 3), nn.PixelShuffle(2), conv(c, 4 * c, 3), nn.PixelShuffle(2)] if scale == 4 else \
            [conv(c, scale * scale * c, 3), nn.PixelShuffle(scale)]
        self.tail = nn.Sequential(nn.Sequential(*up), conv(c, 3, 3))

    def forward(self, x):
        h = self.head(self.sub_mean(x))
        return self.add_mean(self.tail(self.body(h) + h))


PANET_SMALL = dict(mid_channels=8, num_blocks=4, reduction=2)
PAEDSR_SMALL = dict(mid_channels=16, num_blocks=2, reduction=8)


def released_panet(colors=3, seed=0):
    torch.manual_seed(seed)
    return RelPANet(colors, 8, 4, 2).eval()


def released_paedsr(scale=2, seed=0):
    torch.manual_seed(seed)
    return RelPAEDSR(scale, 16, 2, 8).eval()


def build_ours(cfg):
    """Our generator for a converted cfg; the reference attention formulation keeps this about the names
    (the memory-linear kernel is checked against it in tests/test_models/test_layers)."""
    cfg = dict(cfg, attention_cfg=dict(cfg['attention_cfg'], implementation='reference'))
    return build_generator(cfg).eval()


def save(obj, path):
    torch.save(obj, str(path))
    return str(path)


# ----------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize('colors', [3, 1])
def test_panet_converted_output_identical(colors):
    ref = released_panet(colors)
    state = ref.state_dict()
    assert 'body.0.body.1.weight' in state and 'body.2.escape_NaN' in state and 'tail.0.weight' in state
    ours_sd, info = convert_state_dict(state, 'panet', **PANET_SMALL)
    net = build_ours(info['generator_cfg'])
    net.load_state_dict(ours_sd, strict=True)
    assert info['colors'] == colors and info['generator_cfg']['rgb_range'] == 255
    assert any('rgb_range=255' in n for n in info['notes'])
    assert any('sub_mean' in n for n in info['notes'])
    x = torch.rand(2, colors, 9, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x * 255) / 255, atol=1e-5, rtol=0)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_paedsr_converted_output_identical(scale):
    ref = released_paedsr(scale)
    ours_sd, info = convert_state_dict(ref.state_dict(), 'paedsr', **PAEDSR_SMALL)  # scale inferred
    assert info['scale'] == scale
    net = build_ours(info['generator_cfg'])
    net.load_state_dict(ours_sd, strict=True)
    x = torch.rand(1, 3, 8, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = net(x)
        assert out.shape == (1, 3, 8 * scale, 6 * scale)
        torch.testing.assert_close(out, ref(x * 255) / 255, atol=1e-5, rtol=0)


def test_shared_prelu_under_some_names_copied_to_all_blocks():
    state = released_panet().state_dict()
    for n in (0, 3, 4):  # keep it only under body.1.body.1.weight
        del state[f'body.{n}.body.1.weight']
    ours, info = convert_state_dict(state, 'panet', **PANET_SMALL)
    slopes = [ours[f'body.{n}.act.weight'] for n in (0, 1, 3, 4)]
    assert all(torch.equal(s, torch.tensor([0.2])) for s in slopes)
    assert any('1 of 4' in n for n in info['notes'])


def test_unequal_prelu_copies_refused():
    state = released_panet().state_dict()
    state['body.3.body.1.weight'] = torch.tensor([0.5])
    with pytest.raises(ConversionError, match=r'body\.3\.body\.1\.weight.*differ'):
        convert_state_dict(state, 'panet', **PANET_SMALL)


def test_wrappers_and_prefixes_unwrapped():
    state = released_paedsr().state_dict()
    wrapped = {'state_dict': {f'module.{k}': v for k, v in state.items()}, 'epoch': 3}
    assert unwrap_state_dict(wrapped).keys() == state.keys()
    assert unwrap_state_dict({'model': {f'model.{k}': v for k, v in state.items()}}).keys() == state.keys()


# ----------------------------------------------------------------------------- CLI, on disk
def test_cli_round_trip_loads_into_edit_model(tmp_path, capsys):
    ref = released_panet()
    src = save(ref.state_dict(), tmp_path / 'panet_sigma10.pt')
    before = open(src, 'rb').read()
    dst = str(tmp_path / 'out' / 'panet_sigma10.pth')
    argv = [src, dst, '--arch', 'panet', '--mid-channels', '8', '--num-blocks', '4']
    assert convert_official_ckpt.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'rgb_range=255' in printed and 'sub_mean' in printed
    assert open(src, 'rb').read() == before
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    meta = ckpt['meta']
    assert meta['arch'] == 'panet' and meta['source'] == 'panet_sigma10.pt' and meta['converter_version']
    assert all(k.startswith('generator.') for k in ckpt['state_dict'])
    assert not [f for f in os.listdir(osp.dirname(dst)) if f.endswith('.tmp')]

    # what tools/test.py does: load_from into the config's model (BaseEditModel with `generator`), strictly
    from mmengine.runner import load_checkpoint
    gen_cfg = dict(meta['generator_cfg'], attention_cfg=dict(reduction=2, implementation='reference'))
    model = MODELS.build(dict(type='PANetEditModel', generator=gen_cfg, pixel_loss=dict(type='L1Loss')))
    load_checkpoint(model, dst, map_location='cpu', strict=True)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x, mode='tensor'), ref(x * 255) / 255, atol=1e-5, rtol=0)


def test_paper_size_panet_with_default_hyper_parameters(tmp_path):
    """Paper PANet (64 channels, 80 ResBlocks, attention at body.40, closing conv body.81): defaults convert it."""
    torch.manual_seed(0)
    ref = RelPANet(3, 64, 80, 2).eval()
    assert sum(p.numel() for p in ref.parameters()) == 5957279  # the released count: our layout is the released one
    src = save(ref.state_dict(), tmp_path / 'PANet_DN_sigma30.pt')
    meta = convert_official_checkpoint(src, str(tmp_path / 'dn30.pth'), 'panet')
    assert meta['generator_cfg']['num_blocks'] == 80 and meta['source_sha256']
    assert 'body.40.escape_NaN' in meta['ignored_keys']
    ckpt = torch.load(str(tmp_path / 'dn30.pth'), weights_only=True)
    net = build_ours(meta['generator_cfg'])
    net.load_state_dict({k[len('generator.'):]: v for k, v in ckpt['state_dict'].items()}, strict=True)
    x = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x * 255) / 255, atol=1e-5, rtol=0)


def test_cli_as_a_script(tmp_path):
    """The tool runs as ``python tools/convert_official_ckpt.py``: exit 0 and a readable file, exit 1 and none."""
    src = save(released_paedsr(3).state_dict(), tmp_path / 'PA_EDSR_x3.pt')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    tool = osp.join(ROOT, 'tools', 'convert_official_ckpt.py')
    ok = subprocess.run([sys.executable, tool, src, str(tmp_path / 'x3.pth')] + SMALL_PAEDSR_ARGS + ['--scale', '3'],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert 'scale 3' in ok.stdout and (tmp_path / 'x3.pth').exists()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / 'x3.pth').st_mode) == 0o666 & ~umask
    bad = subprocess.run([sys.executable, tool, src, str(tmp_path / 'x2.pth')] + SMALL_PAEDSR_ARGS + ['--scale', '2'],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 1 and 'tail.0.0.weight' in bad.stderr and not (tmp_path / 'x2.pth').exists()


def _refused(tmp_path, capsys, state_or_path, args, *expected):
    src = state_or_path if isinstance(state_or_path, str) else save(state_or_path, tmp_path / 'src.pt')
    dst = tmp_path / 'dst.pth'
    assert convert_official_ckpt.main([src, str(dst)] + args) == 1
    err = capsys.readouterr().err
    assert not dst.exists() and not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]
    for e in expected:
        assert e in err, f'{e!r} not in {err!r}'
    return err


SMALL_PANET_ARGS = ['--arch', 'panet', '--mid-channels', '8', '--num-blocks', '4']
SMALL_PAEDSR_ARGS = ['--arch', 'paedsr', '--mid-channels', '16', '--num-blocks', '2']


def test_missing_unexpected_misshaped_all_listed(tmp_path, capsys):
    state = released_panet().state_dict()
    del state['body.1.body.0.weight'], state['tail.0.bias']
    state['body.9.body.0.weight'] = torch.zeros(8, 8, 3, 3)
    state['body.2.conv_match.0.weight'] = torch.zeros(3, 8, 1, 1)
    err = _refused(tmp_path, capsys, state, SMALL_PANET_ARGS, 'missing (2)', 'body.1.body.0.weight', 'tail.0.bias',
                   'unexpected (1)', 'body.9.body.0.weight', 'mis-shaped (1)',
                   'body.2.conv_match.0.weight (3, 8, 1, 1)', 'nothing was written')
    assert err.count('error:') == 1


def test_wrong_scale_refused(tmp_path, capsys):
    state = released_paedsr(2).state_dict()
    _refused(tmp_path, capsys, state, SMALL_PAEDSR_ARGS + ['--scale', '3'], 'tail.0.0.weight (64, 16, 3, 3)',
             'upsample.0.upsample_conv.weight', '--scale')
    _refused(tmp_path, capsys, state, SMALL_PAEDSR_ARGS + ['--scale', '4'], 'missing', 'tail.0.2.weight',
             'tail.0.2.bias')


def test_wrong_depth_and_arch_refused(tmp_path, capsys):
    state = released_panet().state_dict()
    _refused(tmp_path, capsys, state, ['--arch', 'panet', '--mid-channels', '8', '--num-blocks', '6'],
             'the file has 4 ResBlocks, the target 6')
    _refused(tmp_path, capsys, state, ['--arch', 'paedsr', '--scale', '2'], 'tail.1.weight', 'mis-shaped',
             'try --arch panet')


def test_truncated_file_refused(tmp_path, capsys):
    full = save(released_panet().state_dict(), tmp_path / 'full.pt')
    data = open(full, 'rb').read()
    bad = tmp_path / 'truncated.pt'
    bad.write_bytes(data[:len(data) // 2])
    _refused(tmp_path, capsys, str(bad), SMALL_PANET_ARGS, 'truncated.pt', 'not a plain tensor checkpoint')


class Payload:
    """Any non-tensor object: weights_only refuses to unpickle it."""


def test_pickle_with_object_refused(tmp_path, capsys):
    state = released_panet().state_dict()
    state['evil'] = Payload()
    _refused(tmp_path, capsys, state, SMALL_PANET_ARGS, 'not a plain tensor checkpoint', 'src.pt')


def test_dst_equal_src_refused(tmp_path, capsys):
    src = save(released_panet().state_dict(), tmp_path / 'same.pt')
    before = open(src, 'rb').read()
    assert convert_official_ckpt.main([src, src] + SMALL_PANET_ARGS) == 1
    assert 'is the source file' in capsys.readouterr().err
    assert open(src, 'rb').read() == before
    with pytest.raises(ConversionError, match='is the source file'):
        convert_official_checkpoint(src, osp.join(str(tmp_path), '.', 'same.pt'), 'panet', **PANET_SMALL)


def test_scale_for_panet_and_grey_paedsr_refused():
    state = released_panet().state_dict()
    with pytest.raises(ConversionError, match='--scale 2 was given for --arch panet'):
        convert_state_dict(state, 'panet', scale=2, **PANET_SMALL)
    with pytest.raises(ConversionError, match='RGB only'):
        convert_state_dict(released_paedsr().state_dict(), 'paedsr', colors=1, **PAEDSR_SMALL)


def test_paper_shapes_by_default():
    """Without overrides the target is the paper's model: the small file is refused with a depth hint."""
    with pytest.raises(ConversionError, match='the file has 4 ResBlocks, the target 80'):
        convert_state_dict(released_panet().state_dict(), 'panet')
