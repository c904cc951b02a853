"""Released-checkpoint converter, tested on the released networks' own key lists and on a from-spec forward.

``tests/data/released/*.txt`` are the ``state_dict()`` key / shape / dtype lists of the six released
networks, dumped from the reference code (SHI-Labs/Pyramid-Attention-Networks, see each header): the
state dicts below are built from them (random values, the released sharing: PA-EDSR's ``msa.*`` and
``body.16.*`` are one tensor, PANet's PReLU slope is one tensor under 80 names, the mean shifts hold
``-+rgb_range x DIV2K mean`` at the manifest's rgb_range).
The module tree and the functional forward below reproduce the released naming and forward (on data in
``[0, rgb_range]``) from the spec alone; the reference repository is not imported.
"""
import math
import os
import os.path as osp
import re
import stat
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import ROOT
from mmagic.registry import MODELS

import panet_mm  # noqa: F401
from panet_mm.models.editors.panet.official import (
    ConversionError,
    build_generator,
    convert_official_checkpoint,
    convert_state_dict,
    generator_config,
    unwrap_state_dict,
)
from panet_mm.tools_entry import run_tool

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


def rel_attention(x, p, res_scale, levels=5):
    """Spec: bicubic pyramid 1.0..0.6, 1x1 conv+PReLU embeddings, normalised keys, one softmax, paste / 4.

    ``p(name)`` gives the released tensor ``conv_match_L_base.0.weight`` ... ``escape_NaN``."""
    def embed(t, name):
        return F.prelu(F.conv2d(t, p(f'{name}.0.weight'), p(f'{name}.0.bias')), p(f'{name}.1.weight'))

    outs = []
    for b in range(x.shape[0]):
        xi = x[b:b + 1]
        # bicubic steps from the floored sizes, as PyTorch 1.1 (the released code's) resampled
        pyr = [xi if s == 1 else F.interpolate(xi, size=(int(s * xi.shape[-2]), int(s * xi.shape[-1])),
                                               mode='bicubic', align_corners=False)
               for s in [1 - i / 10 for i in range(levels)]]
        keys = torch.cat([F.unfold(embed(t, 'conv_match'), 3, padding=1) for t in pyr], -1)[0].t()
        vals = torch.cat([F.unfold(embed(t, 'conv_assembly'), 3, padding=1) for t in pyr], -1)[0].t()
        keys = keys / torch.max(keys.norm(dim=1, keepdim=True), p('escape_NaN'))
        q = embed(xi, 'conv_match_L_base')
        score = F.conv2d(q, keys.view(keys.shape[0], -1, 3, 3), padding=1)       # (1, L, H, W)
        attn = F.softmax(score * 10, dim=1)
        y = F.conv_transpose2d(attn, vals.view(vals.shape[0], -1, 3, 3), padding=1) / 4
        outs.append(y + res_scale * xi)
    return torch.cat(outs)


class RelPyramidAttention(nn.Module):
    def __init__(self, c, r, res_scale, levels=5):
        super().__init__()
        self.levels = levels
        self.res_scale = res_scale
        self.conv_match_L_base = nn.Sequential(nn.Conv2d(c, c // r, 1), nn.PReLU())
        self.conv_match = nn.Sequential(nn.Conv2d(c, c // r, 1), nn.PReLU())
        self.conv_assembly = nn.Sequential(nn.Conv2d(c, c, 1), nn.PReLU())
        self.register_buffer('escape_NaN', torch.FloatTensor([1e-4]))

    def forward(self, x):
        sd = self.state_dict()
        return rel_attention(x, sd.__getitem__, self.res_scale, self.levels)


DIV2K_MEAN = torch.tensor([0.4488, 0.4371, 0.4040])


def mean_shift(rgb_range, sign):
    m = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        m.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        m.bias.copy_(sign * rgb_range * DIV2K_MEAN)
    return m


class RelPANet(nn.Module):
    """Works on data in ``[0, rgb_range]``; the mean shifts are built from rgb_range but never used."""

    def __init__(self, colors=3, c=8, blocks=4, r=2, rgb_range=255):
        super().__init__()
        shared = nn.PReLU()  # the released argument-order bug: ONE PReLU for all ResBlocks
        self.sub_mean = mean_shift(rgb_range, -1)  # built, never used
        self.add_mean = mean_shift(rgb_range, 1)
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
    """Works on data in ``[0, rgb_range]`` (the released models: 1)."""

    def __init__(self, scale=2, c=16, blocks=2, r=8, rgb_range=255):
        super().__init__()
        self.sub_mean, self.add_mean = mean_shift(rgb_range, -1), mean_shift(rgb_range, 1)
        self.msa = RelPyramidAttention(c, r, 0.1)  # registered twice, as released: msa.* and body.K.*
        self.head = nn.Sequential(conv(3, c, 3))
        body = [RelResBlock(c, nn.ReLU(True), 0.1) for _ in range(blocks // 2)] + [self.msa]
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


def released_panet(colors=3, seed=0, rgb_range=255):
    torch.manual_seed(seed)
    return RelPANet(colors, 8, 4, 2, rgb_range).eval()


def released_paedsr(scale=2, seed=0, rgb_range=255):
    torch.manual_seed(seed)
    return RelPAEDSR(scale, 16, 2, 8, rgb_range).eval()


def build_ours(cfg):
    """Our generator for a converted cfg; the reference attention formulation keeps this about the names
    (the memory-linear kernel is checked against it in tests/test_models/test_layers)."""
    cfg = dict(cfg, attention_cfg=dict(cfg['attention_cfg'], implementation='reference'))
    return build_generator(cfg).eval()


def save(obj, path):
    torch.save(obj, str(path))
    return str(path)


# ----------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize('colors,rgb_range', [(3, 255), (1, 255), (3, 1), (1, 1)])
def test_panet_converted_output_identical(colors, rgb_range):
    ref = released_panet(colors, rgb_range=rgb_range)
    state = ref.state_dict()
    assert 'body.0.body.1.weight' in state and 'body.2.escape_NaN' in state and 'tail.0.weight' in state
    ours_sd, info = convert_state_dict(state, 'panet', **PANET_SMALL)
    net = build_ours(info['generator_cfg'])
    net.load_state_dict(ours_sd, strict=True)
    assert info['colors'] == colors and info['generator_cfg']['rgb_range'] == 255
    assert info['source_rgb_range'] == rgb_range
    assert any('rgb_range=255' in n for n in info['notes'])
    assert any('sub_mean' in n for n in info['notes'])
    assert any('0-1 data' in n for n in info['notes']) == (rgb_range == 1)
    x = torch.rand(2, colors, 9, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x * rgb_range) / rgb_range, atol=1e-5, rtol=0)


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('rgb_range', [255, 1])
def test_paedsr_converted_output_identical(scale, rgb_range):
    ref = released_paedsr(scale, rgb_range=rgb_range)
    ours_sd, info = convert_state_dict(ref.state_dict(), **PAEDSR_SMALL)  # arch, scale and range inferred
    assert info['arch'] == 'paedsr' and info['scale'] == scale and info['source_rgb_range'] == rgb_range
    net = build_ours(info['generator_cfg'])
    net.load_state_dict(ours_sd, strict=True)
    x = torch.rand(1, 3, 8, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = net(x)
        assert out.shape == (1, 3, 8 * scale, 6 * scale)
        torch.testing.assert_close(out, ref(x * rgb_range) / rgb_range, atol=1e-5, rtol=0)


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
    assert run_tool('convert', argv) == 0
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
    """The tool runs as ``python tools/model_converters/convert_official_ckpt.py``: exit 0 and a readable file, exit 1
    and none."""
    src = save(released_paedsr(3).state_dict(), tmp_path / 'PA_EDSR_x3.pt')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    tool = osp.join(ROOT, 'tools', 'model_converters', 'convert_official_ckpt.py')
    ok = subprocess.run([sys.executable, tool, src, str(tmp_path / 'x3.pth')] + SMALL_PAEDSR_ARGS + ['--scale', '3'],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert 'scale 3' in ok.stdout and (tmp_path / 'x3.pth').exists()
    # each dropped or rescaled thing said once, in a user's numbers (it said "scaled by 255/1" and listed the msa.*
    # twins a second time after their note)
    notes = [line for line in ok.stdout.splitlines() if line.startswith('note: ')]
    assert sum('msa.' in n for n in notes) == 1, notes
    from panet_mm.models.editors.panet.official import _ratio
    assert (_ratio(1, 255), _ratio(255, 1), _ratio(255, 2)) == ('1/255', '255', '255/2')
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / 'x3.pth').st_mode) == 0o666 & ~umask
    bad = subprocess.run([sys.executable, tool, src, str(tmp_path / 'x2.pth')] + SMALL_PAEDSR_ARGS + ['--scale', '2'],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 1 and 'tail.0.0.weight' in bad.stderr and not (tmp_path / 'x2.pth').exists()


def test_destinations_that_cannot_be_written_are_refused_before_converting(tmp_path, capsys):
    """An existing folder, a file as folder: tracebacks after the conversion before; an existing file was replaced
    without a word. (A missing folder is made: test_cli_round_trip_loads_into_edit_model.)"""
    src = save(released_paedsr(3).state_dict(), tmp_path / 'PA_EDSR_x3.pt')
    args = SMALL_PAEDSR_ARGS + ['--scale', '3']
    (tmp_path / 'out').mkdir()
    assert run_tool('convert', [src, str(tmp_path / 'out')] + args) == 1
    assert f"destination '{tmp_path / 'out'}' is a folder; name the output file, e.g. " \
        f"{tmp_path / 'out' / 'PA_EDSR_x3.pth'}" in capsys.readouterr().err
    (tmp_path / 'file').write_text('')
    assert run_tool('convert', [src, str(tmp_path / 'file' / 'x.pth')] + args) == 1
    assert f"destination folder '{tmp_path / 'file'}' is a file" in capsys.readouterr().err
    dst = tmp_path / 'x3.pth'
    dst.write_bytes(b'mine')
    assert run_tool('convert', [src, str(dst)] + args) == 2
    assert f"error: '{dst}' exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert dst.read_bytes() == b'mine' and not os.listdir(tmp_path / 'out')
    assert run_tool('convert', [src, str(dst), '--overwrite'] + args) == 0 and dst.stat().st_size > 100


def _refused(tmp_path, capsys, state_or_path, args, *expected):
    src = state_or_path if isinstance(state_or_path, str) else save(state_or_path, tmp_path / 'src.pt')
    dst = tmp_path / 'dst.pth'
    assert run_tool('convert', [src, str(dst)] + args) == 1
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
    """A --scale the file contradicts is refused naming both; a tail that says nothing falls back to the key report."""
    state = released_paedsr(2).state_dict()
    _refused(tmp_path, capsys, state, SMALL_PAEDSR_ARGS + ['--scale', '3'], '--scale 3 contradicts',
             'tail.0.0.weight (64, 16, 3, 3)', 'is x2')
    _refused(tmp_path, capsys, state, SMALL_PAEDSR_ARGS + ['--scale', '4'], '--scale 4 contradicts', 'is x2')
    state['tail.0.0.weight'] = torch.zeros(40, 16, 3, 3)  # no scale has 40 = s*s*16 channels
    _refused(tmp_path, capsys, state, SMALL_PAEDSR_ARGS + ['--scale', '4'], 'missing', 'tail.0.2.weight',
             'tail.0.2.bias', 'mis-shaped', 'tail.0.0.weight (40, 16, 3, 3)')


def test_wrong_depth_and_arch_refused(tmp_path, capsys):
    state = released_panet().state_dict()
    _refused(tmp_path, capsys, state, ['--arch', 'panet', '--mid-channels', '8', '--num-blocks', '6'],
             'the file has 4 ResBlocks, the target 6')
    _refused(tmp_path, capsys, state, ['--arch', 'paedsr', '--scale', '2'], '--arch paedsr contradicts',
             'tail.0.weight', 'a panet')


def test_truncated_file_refused(tmp_path, capsys):
    full = save(released_panet().state_dict(), tmp_path / 'full.pt')
    data = open(full, 'rb').read()
    bad = tmp_path / 'truncated.pt'
    bad.write_bytes(data[:len(data) // 2])
    _refused(tmp_path, capsys, str(bad), SMALL_PANET_ARGS, 'truncated.pt', 'not a plain tensor checkpoint')


def test_a_text_file_is_named_once_with_the_fix(tmp_path, capsys):
    """'not a plain tensor checkpoint: checkpoint ... is not a PyTorch checkpoint: it is a text file' said it twice
    and gave no fix."""
    (tmp_path / 'notes.pt').write_text('model_x2.pt: see the release page\n')
    err = _refused(tmp_path, capsys, str(tmp_path / 'notes.pt'), SMALL_PANET_ARGS)
    assert err.strip().splitlines()[-1] == (
        f"error: checkpoint '{tmp_path / 'notes.pt'}' is not a PyTorch checkpoint: it is a text file; pass the "
        'released .pt file, or copy or download this one again')


class Payload:
    """Any non-tensor object: weights_only refuses to unpickle it."""


def test_pickle_with_object_refused(tmp_path, capsys):
    state = released_panet().state_dict()
    state['evil'] = Payload()
    _refused(tmp_path, capsys, state, SMALL_PANET_ARGS, 'not a plain tensor checkpoint', 'src.pt')


def test_dst_equal_src_refused(tmp_path, capsys):
    src = save(released_panet().state_dict(), tmp_path / 'same.pt')
    before = open(src, 'rb').read()
    assert run_tool('convert', [src, src] + SMALL_PANET_ARGS) == 1
    assert 'is the source file' in capsys.readouterr().err
    assert open(src, 'rb').read() == before
    with pytest.raises(ConversionError, match='is the source file'):
        convert_official_checkpoint(src, osp.join(str(tmp_path), '.', 'same.pt'), 'panet', **PANET_SMALL)


def test_scale_for_panet_and_grey_paedsr_refused(tmp_path, capsys):
    state = released_panet().state_dict()
    # the library names the parameters; the converter's message names its flags
    with pytest.raises(ConversionError, match='^scale 2 was given for arch panet'):
        convert_state_dict(state, 'panet', scale=2, **PANET_SMALL)
    src = save(state, tmp_path / 'dn.pt')
    assert run_tool('convert', [src, str(tmp_path / 'dn.pth'), '--scale', '2'] + SMALL_PANET_ARGS) == 1
    assert '--scale 2 was given for --arch panet' in capsys.readouterr().err
    with pytest.raises(ConversionError, match=r'^colors 1 contradicts.*head\.0\.weight \(16, 3, 3, 3\)'):
        convert_state_dict(released_paedsr().state_dict(), 'paedsr', colors=1, **PAEDSR_SMALL)
    src = save(released_paedsr().state_dict(), tmp_path / 'sr.pt')
    assert run_tool('convert', [src, str(tmp_path / 'sr.pth'), '--colors', '1'] + SMALL_PAEDSR_ARGS) == 1
    assert re.search(r'--colors 1 contradicts.*head\.0\.weight \(16, 3, 3, 3\)', capsys.readouterr().err)
    with pytest.raises(ConversionError, match='RGB only'):
        generator_config('paedsr', 2, colors=1)


def test_paper_shapes_by_default():
    """Without overrides the target is the paper's model: the small file is refused with a depth hint."""
    with pytest.raises(ConversionError, match='the file has 4 ResBlocks, the target 80'):
        convert_state_dict(released_panet().state_dict(), 'panet')


# ----------------------------------------------------------------------------- the released key lists
MANIFEST_DIR = osp.join(ROOT, 'tests', 'data', 'released')
MANIFESTS = {  # name: (arch, scale, colours, tensors in the file)
    'paedsr_x2': ('paedsr', 2, 3, 160),
    'paedsr_x3': ('paedsr', 3, 3, 160),
    'paedsr_x4': ('paedsr', 4, 3, 162),
    'panet_dn_rgb': ('panet', 1, 3, 420),
    'panet_car_grey': ('panet', 1, 1, 420),
    'panet_demosaic': ('panet', 1, 3, 420),
}
MANIFEST_LAST = {'paedsr': 'tail.1', 'panet': 'tail.0'}
# tiny widths, scaled consistently: PA-EDSR 256 -> 16 features (attention 32 -> 2, up-sampling 1024 -> 64,
# 2304 -> 144); PANet 64 -> 8 (attention 32 -> 4). Depth stays the released one.
TINY = {'paedsr': ({256: 16, 32: 2, 1024: 64, 2304: 144}, dict(mid_channels=16, reduction=8)),
        'panet': ({64: 8, 32: 4}, dict(mid_channels=8, reduction=2))}


def read_manifest(name):
    """(entries [(key, shape, dtype)], groups of keys sharing one tensor, header facts) of a manifest."""
    entries, groups, facts = [], [], {}
    with open(osp.join(MANIFEST_DIR, f'{name}.txt')) as f:
        for line in f:
            if line.startswith('# same tensor:'):
                groups.append(line.split(':', 1)[1].split())
            elif line.startswith('# ->'):
                facts = dict(kv.split('=', 1) for kv in line[4:].split() if '=' in kv)
            elif line.strip() and not line.startswith('#'):
                key, shape, dtype = line.split()
                entries.append((key, tuple(int(d) for d in shape.split('x')), getattr(torch, dtype)))
    return entries, groups, facts


def manifest_state(name, tiny=False, dtype=None, seed=0):
    """A state dict with exactly the manifest's keys (shapes scaled down when ``tiny``), the released sharing,
    the released mean shifts and escape_NaN, and random weights of a trained network's magnitude."""
    entries, groups, facts = read_manifest(name)
    arch = MANIFESTS[name][0]
    dims = TINY[arch][0] if tiny else {}
    rgb_range = float(facts['rgb_range'])
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dt in entries:
        shape = tuple(dims.get(d, d) for d in shape)
        dt = dtype or dt
        if key.endswith('escape_NaN'):
            value = torch.full(shape, 1e-4, dtype=dt)
        elif key.split('.')[0] in ('sub_mean', 'add_mean'):
            sign = -1 if key.startswith('sub_mean') else 1
            value = (torch.eye(3).view(3, 3, 1, 1) if key.endswith('weight') else sign * rgb_range * DIV2K_MEAN).to(dt)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            value = (torch.randn(shape, generator=g) / math.sqrt(fan_in)).to(dt)
        elif shape == (1, ):  # PReLU slopes
            value = (0.25 + 0.1 * torch.rand(shape, generator=g)).to(dt)
        else:  # biases
            value = (0.01 * torch.randn(shape, generator=g)).to(dt)
        state[key] = value
    for group in groups:  # one tensor under every name, as torch.save keeps it
        for key in group[1:]:
            state[key] = state[group[0]]
    return state


def released_forward(sd, x, arch, res_scale):
    """The released forward on the released names, from the spec, on data in ``[0, rgb_range]``."""
    def conv(t, name):
        w = sd[f'{name}.weight']
        return F.conv2d(t, w, sd[f'{name}.bias'], padding=w.shape[-1] // 2)

    if arch == 'paedsr':
        x = conv(x, 'sub_mean')
    head = conv(x, 'head.0')
    last = max(int(m.group(1)) for k in sd for m in [re.fullmatch(r'body\.(\d+)\.weight', k)] if m)
    feat = head
    for i in range(last):
        if f'body.{i}.escape_NaN' in sd:
            feat = rel_attention(feat, lambda n, i=i: sd[f'body.{i}.{n}'], res_scale)
        else:
            r = conv(feat, f'body.{i}.body.0')
            r = F.relu(r) if arch == 'paedsr' else F.prelu(r, sd[f'body.{i}.body.1.weight'])
            feat = conv(r, f'body.{i}.body.2') * res_scale + feat
    feat = conv(feat, f'body.{last}') + head
    if arch == 'panet':
        return conv(feat, 'tail.0')
    j = 0
    while f'tail.0.{j}.weight' in sd:
        w = sd[f'tail.0.{j}.weight']
        feat = F.pixel_shuffle(conv(feat, f'tail.0.{j}'), int(round(math.sqrt(w.shape[0] / w.shape[1]))))
        j += 2
    return conv(conv(feat, 'tail.1'), 'add_mean')


@pytest.mark.parametrize('name', sorted(MANIFESTS))
def test_manifest_facts(name):
    """What the converter relies on, read from the released key lists."""
    entries, groups, facts = read_manifest(name)
    arch, scale, colors, count = MANIFESTS[name]
    keys = [k for k, _, _ in entries]
    assert len(keys) == count == len(set(keys))
    assert {dt for _, _, dt in entries} == {torch.float32}
    assert int(facts['n_colors']) == colors and float(facts['rgb_range']) == 1.0  # every released model: 0-1 data
    twins = [k for k in keys if k.startswith('msa.')]
    if arch == 'paedsr':
        assert len(twins) == 10 and all(f'body.16.{k[4:]}' in keys for k in twins)
        assert sorted(groups) == sorted([k, f'body.16.{k[4:]}'] for k in twins)
    else:
        assert not twins and len(groups) == 1 and len(groups[0]) == 80  # the shared PReLU slope
        assert all(re.fullmatch(r'body\.\d+\.body\.1\.weight', k) for k in groups[0])


@pytest.mark.parametrize('name', sorted(MANIFESTS))
def test_released_layout_converts_at_paper_size(name):
    """Every released file's exact keys and shapes convert with the defaults: arch, scale, colours and data range
    inferred; PA-EDSR's msa.* twins accepted; the result loads strictly into the paper-size generator."""
    arch, scale, colors, _ = MANIFESTS[name]
    state = manifest_state(name)
    out, info = convert_state_dict(state, source=f'{name}.pt')
    assert (info['arch'], info['scale'], info['colors'], info['source_rgb_range']) == (arch, scale, colors, 1.0)
    assert any(f'arch {arch}' in f for f in info['inferred']) and any('rgb_range 1' in f for f in info['inferred'])
    assert (arch == 'paedsr') == any(f'scale x{scale}' in f for f in info['inferred'])
    twins = [k for k in state if k.startswith('msa.')]
    assert set(twins) <= set(info['ignored']) and (arch == 'paedsr') == bool(twins)
    net = build_generator(info['generator_cfg'], device='meta')
    net.load_state_dict(out, strict=True, assign=True)  # every key and shape of the paper model, nothing else
    assert torch.equal(out['conv_first.weight'], (state['head.0.weight'].double() * (1 / 255)).float())
    assert torch.equal(out['conv_last.weight'], (state[MANIFEST_LAST[arch] + '.weight'].double() * 255).float())


@pytest.mark.parametrize('name', sorted(MANIFESTS))
def test_converted_equals_released_forward_float64(name):
    """Tiny widths, released depth, float64: ours (reference attention) == the released forward on 0-1 data."""
    arch, scale, colors, _ = MANIFESTS[name]
    state = manifest_state(name, tiny=True, dtype=torch.float64, seed=1)
    out, info = convert_state_dict(state, **TINY[arch][1])
    assert info['generator_cfg']['rgb_range'] == 255 and info['source_rgb_range'] == 1.0
    net = build_ours(info['generator_cfg']).double()
    net.load_state_dict(out, strict=True)
    x = torch.rand(2, colors, 9, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        ours = net(x)
        ref = released_forward(state, x, arch, 0.1 if arch == 'paedsr' else 1.0)  # rgb_range 1: data as is
    assert ours.shape == ref.shape == (2, colors, 9 * scale, 8 * scale)
    spread = float(ref.max() - ref.min())
    assert spread > 1e-3
    assert float((ours - ref).abs().max()) <= 1e-4 * spread


def test_differing_twins_refused_naming_them(tmp_path, capsys):
    state = manifest_state('paedsr_x2', tiny=True)
    state['msa.conv_match.0.weight'] = state['msa.conv_match.0.weight'].clone()  # separate but equal: accepted
    assert convert_state_dict(state, **TINY['paedsr'][1])[1]['arch'] == 'paedsr'
    state['msa.conv_match.0.weight'][0, 0] += 1e-3
    state['msa.conv_assembly.1.weight'] = state['msa.conv_assembly.1.weight'] + 0.5
    err = _refused(tmp_path, capsys, state, ['--mid-channels', '16'], '2 twin(s) differ',
                   'msa.conv_assembly.1.weight != body.16.conv_assembly.1.weight',
                   'msa.conv_match.0.weight != body.16.conv_match.0.weight', 'nothing was written')
    assert 'conv_match_L_base' not in err and err.count('\n') == 1


def test_non_finite_weights_refused_naming_keys(tmp_path, capsys):
    state = manifest_state('panet_dn_rgb', tiny=True)
    state['body.3.body.0.weight'] = state['body.3.body.0.weight'].clone()
    state['body.3.body.0.weight'][0, 0, 0, 0] = float('nan')
    state['tail.0.bias'] = torch.full_like(state['tail.0.bias'], float('inf'))
    _refused(tmp_path, capsys, state, ['--mid-channels', '8'], 'NaN / infinite weights in 2 tensor(s)',
             'body.3.body.0.weight, tail.0.bias', 'src.pt')


def test_cli_infers_and_prints_what_it_read(tmp_path, capsys):
    """No --arch: the tool says what it read from the file; the converted file remembers it."""
    src = save(manifest_state('panet_car_grey', tiny=True), tmp_path / 'Q40.pt')
    assert run_tool('convert', [src, str(tmp_path / 'q40.pth'), '--mid-channels', '8']) == 0
    printed = capsys.readouterr().out
    for fact in ('inferred from the file: arch panet (keys tail.0.weight)',
                 'inferred from the file: 1 colour channel(s) (head.0.weight (8, 1, 3, 3))',
                 'inferred from the file: trained on rgb_range 1 (sub_mean.bias)', '0-1 data'):
        assert fact in printed, printed
    meta = torch.load(str(tmp_path / 'q40.pth'), weights_only=True)['meta']
    assert meta['arch'] == 'panet' and meta['colors'] == 1 and meta['source_rgb_range'] == 1.0


def test_flags_contradicting_the_file_refused_naming_both(tmp_path, capsys):
    x4 = manifest_state('paedsr_x4', tiny=True)
    _refused(tmp_path, capsys, x4, ['--arch', 'panet', '--mid-channels', '16'], '--arch panet contradicts',
             'tail.1.weight, tail.0.0.weight, msa.*', 'a paedsr')
    _refused(tmp_path, capsys, x4, ['--scale', '2', '--mid-channels', '16'], '--scale 2 contradicts',
             'tail.0.0.weight (64, 16, 3, 3)', 'is x4')
    grey = manifest_state('panet_car_grey', tiny=True)
    _refused(tmp_path, capsys, grey, ['--colors', '3', '--mid-channels', '8'], '--colors 3 contradicts',
             'head.0.weight (8, 1, 3, 3)', 'takes 1 channel')
    _refused(tmp_path, capsys, grey, ['--source-rgb-range', '255', '--mid-channels', '8'],
             '--source-rgb-range 255 contradicts', 'rgb_range 1')
    with pytest.raises(ConversionError, match='whether it is a PANet or a PA-EDSR'):
        convert_state_dict({k: v for k, v in grey.items() if not k.startswith('tail')})


def test_data_range_needed_when_the_file_does_not_say(tmp_path, capsys):
    state = {k: v for k, v in manifest_state('panet_demosaic', tiny=True).items() if 'mean' not in k}
    _refused(tmp_path, capsys, state, ['--mid-channels', '8'], 'cannot tell the data range', '--source-rgb-range 1')
    out, info = convert_state_dict(state, mid_channels=8, source_rgb_range=1)
    assert info['source_rgb_range'] == 1.0 and info['ignored'] == ['body.40.escape_NaN']
    assert torch.allclose(out['conv_last.bias'], state['tail.0.bias'] * 255)


# ----------------------------------------------------------------------------- files that are not released ones
def mmagic_edsr_state():
    """A plain mmagic ``EDSRNet`` (tiny), as its ``state_dict()``."""
    from mmagic.models.editors import EDSRNet
    torch.manual_seed(0)
    return EDSRNet(3, 3, mid_channels=8, num_blocks=2, upscale_factor=2).state_dict()


def mmengine_checkpoint(state):
    """``state`` as the generator of an edit model, in the checkpoint mmagic's tools/train.py writes."""
    return {'state_dict': {f'generator.{k}': v for k, v in state.items()},
            'meta': {'iter': 300, 'mmengine_version': '0.10.7', 'experiment_name': 'edsr'}}


@pytest.mark.parametrize('name', sorted(MANIFESTS))
def test_every_released_layout_is_recognised_as_released(name):
    """The released layout is read from the manifests: each has a key only the released layout has, and
    convert_state_dict never takes it for mmagic's / panet_mm's layout."""
    from panet_mm.models.editors.panet.official_infer import not_released_reason
    keys = [k for k, _, _ in read_manifest(name)[0]]
    assert not_released_reason(dict.fromkeys(keys), 'f.pt') is None
    assert {k.split('.')[0] for k in keys} <= {'head', 'body', 'tail', 'sub_mean', 'add_mean', 'msa'}


def test_plain_mmagic_edsr_named_at_once_without_asking_for_settings(tmp_path, capsys):
    """A bare EDSRNet state dict and mmagic's train.py checkpoint of one: one sentence saying what the file is
    (was: 'pass --arch', then '--scale', then '--source-rgb-range', then 37 missing / 24 unexpected keys)."""
    state = mmagic_edsr_state()
    for obj, example in [(state, "keys such as conv_first.weight"),
                         (mmengine_checkpoint(state), "keys such as generator.conv_first.weight")]:
        for args in ([], ['--arch', 'paedsr', '--scale', '2', '--source-rgb-range', '255']):
            err = _refused(tmp_path, capsys, obj, args, 'a plain mmagic generator', example,
                           'not a released PANet / PA-EDSR file', 'nothing to convert', 'plain_weights',
                           'WithPyramidAttention')
            assert err.count('\n') == 1 and err.count('error:') == 1, err
            for setting in ('--arch', '--scale', '--source-rgb-range', 'missing', 'unexpected'):
                assert setting not in err, err


def test_panet_mm_checkpoint_needs_no_conversion(tmp_path, capsys, demo_checkpoint):
    """panet_mm's own checkpoint (the demo PA-EDSR edit model) and its bare generator: 'load it directly'."""
    err = _refused(tmp_path, capsys, str(demo_checkpoint), [], "already in panet_mm's layout",
                   'keys such as generator.body.', 'needs no conversion', f'tools/test.py CONFIG {demo_checkpoint}')
    assert err.count('\n') == 1 and '--arch' not in err, err
    from panet_mm.utils.checkpoint import load_weights_only
    bare = unwrap_state_dict(load_weights_only(demo_checkpoint), prefix='generator.')
    err = _refused(tmp_path, capsys, bare, ['--arch', 'paedsr'], "already in panet_mm's layout",
                   'needs no conversion', 'tools/restore.py --config CONFIG --checkpoint')
    assert err.count('\n') == 1 and 'missing' not in err, err


def test_unknown_layout_refused_naming_the_released_keys(tmp_path, capsys):
    state = {'encoder.0.weight': torch.zeros(4, 3, 3, 3), 'decoder.0.weight': torch.zeros(3, 4, 3, 3)}
    err = _refused(tmp_path, capsys, state, [], 'has none of the keys of a released PANet / PA-EDSR file',
                   'head.0.weight', 'encoder.0.weight')
    assert '--arch' not in err and err.count('\n') == 1, err


def test_source_folder_named_as_a_folder(tmp_path, capsys):
    """A folder was 'does not exist'; its .pt / .pth files are listed."""
    folder = tmp_path / 'downloads'
    folder.mkdir()
    _refused(tmp_path, capsys, str(folder), [], f"source checkpoint '{folder}' is a folder; pass the released "
             '.pt file in it')
    save(released_panet().state_dict(), folder / 'model_N10.pt')
    (folder / 'notes.txt').write_text('')
    err = _refused(tmp_path, capsys, str(folder), [], 'is a folder; pass the released .pt file in it', 'model_N10.pt')
    assert 'notes.txt' not in err
    _refused(tmp_path, capsys, str(tmp_path / 'nope.pt'), [], f"checkpoint '{tmp_path / 'nope.pt'}' not found")


def test_destination_naming_a_missing_folder_refused_before_converting(tmp_path, capsys):
    """'out/' (a folder that does not exist yet): a NotADirectoryError traceback after the conversion before."""
    src = save(released_paedsr(3).state_dict(), tmp_path / 'PA_EDSR_x3.pt')
    dst = str(tmp_path / 'new') + os.sep
    assert run_tool('convert', [src, dst] + SMALL_PAEDSR_ARGS + ['--scale', '3']) == 1
    err = capsys.readouterr().err
    assert f"destination '{dst}' names a folder; name the output file, e.g. " \
        f"{tmp_path / 'new' / 'PA_EDSR_x3.pth'}" in err and err.count('\n') == 1, err
    assert not (tmp_path / 'new').exists()


@pytest.mark.parametrize('rgb_range', [1.0, 255.0])
def test_the_data_range_is_read_from_a_half_precision_copy(rgb_range):
    """A float16 copy of a released file rounds the mean shift (~5e-4): it was "a file without a released sub_mean"."""
    from panet_mm.models.editors.panet.official_infer import _DIV2K_MEAN, infer_source_rgb_range
    state = {'sub_mean.weight': torch.eye(3).view(3, 3, 1, 1), 'sub_mean.bias': -rgb_range * torch.tensor(_DIV2K_MEAN)}
    assert infer_source_rgb_range(state) == rgb_range
    assert infer_source_rgb_range({k: v.half() for k, v in state.items()}) == rgb_range
    assert infer_source_rgb_range({'sub_mean.weight': state['sub_mean.weight'],
                                   'sub_mean.bias': state['sub_mean.bias'] * torch.tensor([1.0, 1.1, 1.0])}) is None
