"""PANet and PA-EDSR generators: shapes, parameter counts, structure."""
import os.path as osp

import pytest
import torch
from conftest import ROOT
from mmagic.registry import MODELS
from mmengine.config import Config

import panet_mm  # noqa: F401
from panet_mm.models.layers import PyramidAttention, count_parameters


@pytest.mark.parametrize('colors', [1, 3])
def test_panet_forward_shape(colors):
    torch.manual_seed(0)
    net = MODELS.build(dict(type='PANet', in_channels=colors, out_channels=colors, mid_channels=8, num_blocks=2))
    x = torch.rand(2, colors, 11, 9)
    assert net(x).shape == (2, colors, 11, 9)
    assert isinstance(net.body[1], PyramidAttention)


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('colors', [1, 3])
def test_paedsr_forward_shape(scale, colors):
    torch.manual_seed(0)
    net = MODELS.build(dict(type='PAEDSRNet', in_channels=colors, out_channels=colors, mid_channels=16,
                            num_blocks=2, upscale_factor=scale, rgb_mean=[0.5] * colors, rgb_std=[1.0] * colors))
    x = torch.rand(1, colors, 7, 10)
    assert net(x).shape == (1, colors, 7 * scale, 10 * scale)


@pytest.mark.parametrize('net_type', ['PANet', 'PAEDSRNet'])
def test_channels_last_is_the_same_function(net_type):
    """The default channels-last run (weights converted once, input on entry) equals the NCHW one, returns
    the usual contiguous layout, and takes a state dict of either format."""
    torch.manual_seed(0)
    cfg = dict(type=net_type, mid_channels=16, num_blocks=2)
    nchw = MODELS.build(dict(cfg, channels_last=False)).eval()
    fast = MODELS.build(cfg).eval()
    assert fast.channels_last and fast.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    assert not fast.conv_first.weight.is_contiguous()
    fast.load_state_dict(nchw.state_dict())
    assert fast.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 9, 11)
    with torch.no_grad():
        expected, actual = nchw(x), fast(x)
    assert actual.is_contiguous()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    nchw.load_state_dict(fast.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(nchw(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize('scale,expected', [(2, 40811870), (3, 43762270), (4, 43172190)])
def test_sr_configs_build_reference_parameter_counts(scale, expected):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'panet_sr_x{scale}_div2k.py'))
    net = MODELS.build(cfg.model.generator)
    assert count_parameters(net) == expected
    assert net.upscale_factor == scale
    assert isinstance(net.body[16], PyramidAttention)
    assert net.body[16].channels == 256 and net.body[16].reduction == 8 and net.body[16].res_scale == 0.1


def test_panet_paper_structure():
    net = MODELS.build(dict(type='PANet'))
    assert len(net.body) == 81 and isinstance(net.body[40], PyramidAttention)
    # released count 5,957,279 has one shared PReLU (1) and unused mean shifts (24); here: 80 PReLUs
    assert count_parameters(net) == 5957279 - 1 - 24 + 80


def test_mean_shift_is_frozen_and_round_trips():
    net = MODELS.build(dict(type='PAEDSRNet', mid_channels=8, num_blocks=2))
    assert not any(p.requires_grad for p in net.sub_mean.parameters())
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(net.add_mean(net.sub_mean(x)), x)


def test_rgb_range_mismatch_is_named():
    with pytest.raises(ValueError, match='rgb_mean and rgb_std need 1 values'):
        MODELS.build(dict(type='PAEDSRNet', in_channels=1, out_channels=1))


@pytest.mark.parametrize('net_type,config', [('PANet', 'panet_dn_sigma30_div2k.py'),
                                             ('PAEDSRNet', 'panet_sr_x2_div2k.py')])
def test_default_rgb_range_is_the_configs(net_type, config):
    """Converted released weights are rescaled to the configs' range: a generator built with its defaults (Python
    API, no config) must work in that range too, or it runs them silently wrong."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    net = MODELS.build(dict(type=net_type, mid_channels=8, num_blocks=2))
    assert net.rgb_range == cfg.model.generator.rgb_range == 255


@pytest.mark.parametrize('net_type', ['PANet', 'PAEDSRNet'])
@pytest.mark.parametrize('channels_last', [True, False])
def test_input_shape_is_named(net_type, channels_last):
    """One ValueError naming (B, C, H, W): a single (C, H, W) image (with the fix), the wrong channel count."""
    net = MODELS.build(dict(type=net_type, mid_channels=8, num_blocks=2, channels_last=channels_last))
    with pytest.raises(ValueError, match=r'expects a batch of images \(B, 3, H, W\), got shape \(3, 10, 10\): '
                                         r'for one \(C, H, W\) image use x\.unsqueeze\(0\)'):
        net(torch.rand(3, 10, 10))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\), got shape \(1, 1, 10, 10\): 1 channels, but the '
                                         r'network was built with in_channels=3'):
        net(torch.rand(1, 1, 10, 10))
    with pytest.raises(ValueError, match=rf'{net_type} expects a batch of images \(B, 3, H, W\), got shape '
                                         r'\(10, 10\)$'):
        net(torch.rand(10, 10))


@pytest.mark.parametrize('net_type,scale', [('PANet', 1), ('PAEDSRNet', 2), ('PAEDSRNet', 3), ('PAEDSRNet', 4)])
def test_empty_batch(net_type, scale):
    """An empty batch: an empty output of the right shape, and a backward (PA-EDSR's pixel shuffles as reshapes:
    torch's pixel_shuffle backward fails on an empty batch)."""
    extra = dict(upscale_factor=scale) if net_type == 'PAEDSRNet' else {}
    net = MODELS.build(dict(type=net_type, mid_channels=8, num_blocks=2, **extra))
    x = torch.rand(0, 3, 10, 12, requires_grad=True)
    y = net(x)
    assert y.shape == (0, 3, 10 * scale, 12 * scale)
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_torch_export_of_panet_equals_eager():
    """torch.export of a (small) PANet: the attention is exported as the reference, the same function."""
    net = MODELS.build(dict(type='PANet', mid_channels=8, num_blocks=2)).eval()
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    ep = torch.export.export(net, (x,))
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(x), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('factor', [2, 3])
def test_reshaped_pixel_shuffle_is_torchs(factor):
    from panet_mm.models.editors.panet.panet_net import _pixel_shuffle_reshaped
    x = torch.rand(2, 4 * factor * factor, 5, 3)
    assert torch.equal(_pixel_shuffle_reshaped(x, factor), torch.nn.functional.pixel_shuffle(x, factor))
