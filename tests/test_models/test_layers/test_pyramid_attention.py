"""PyramidAttention against a slow, obviously-correct implementation written from the spec.

The slow version follows ../shared/PAPER.md section 1 literally: explicit loops over query pixels,
over every patch of every level and over the 3x3 paste, in float64.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from panet_mm.models.layers import PyramidAttention


def patch_at(t, y, x, k=3):
    """The k x k patch of t (C, H, W) centred at (y, x), zero outside the image."""
    c, h, w = t.shape
    r = k // 2
    out = t.new_zeros(c, k, k)
    for dy in range(k):
        for dx in range(k):
            yy, xx = y + dy - r, x + dx - r
            if 0 <= yy < h and 0 <= xx < w:
                out[:, dy, dx] = t[:, yy, xx]
    return out


def slow_pyramid_attention(block, x):
    """Loop-based pyramid attention of one block on x (B, C, H, W)."""
    outs = []
    for img in x:
        img = img[None]
        levels = []
        for i in range(len(block.scales)):
            s = 1 - i / 10
            # PyTorch 1.1 (the released code's) resampling: the step follows from the floored sizes
            size = (math.floor(s * img.shape[-2]), math.floor(s * img.shape[-1]))
            levels.append(img if s == 1 else F.interpolate(img, size=size, mode='bicubic', align_corners=False))
        q = block.query(img)[0]
        keys, values = [], []
        for lvl in levels:
            k, v = block.key(lvl)[0], block.value(lvl)[0]
            for yy in range(k.shape[1]):
                for xx in range(k.shape[2]):
                    kp = patch_at(k, yy, xx)
                    keys.append(kp / torch.clamp(kp.pow(2).sum().sqrt(), min=1e-4))
                    values.append(patch_at(v, yy, xx))
        c, h, w = img.shape[1:]
        pasted = img.new_zeros(c, h, w)
        for y in range(h):
            for x_ in range(w):
                qp = patch_at(q, y, x_)
                scores = torch.stack([(qp * kp).sum() for kp in keys])
                attn = torch.softmax(10 * scores, dim=0)  # one softmax over all levels
                patch = sum(a * vp for a, vp in zip(attn, values))
                for dy in range(3):
                    for dx in range(3):
                        yy, xx = y + dy - 1, x_ + dx - 1
                        if 0 <= yy < h and 0 <= xx < w:
                            pasted[:, yy, xx] = pasted[:, yy, xx] + patch[:, dy, dx]
        outs.append(pasted / 4 + block.res_scale * img[0])
    return torch.stack(outs)


@pytest.mark.parametrize('implementation', ['reference', 'chunked'])
@pytest.mark.parametrize('shape,res_scale', [((2, 4, 6, 7), 1.0), ((1, 4, 5, 5), 0.1)])
def test_matches_slow_spec(implementation, shape, res_scale):
    torch.manual_seed(0)
    block = PyramidAttention(channels=shape[1], reduction=2, res_scale=res_scale,
                             implementation=implementation, chunk_size=5).double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    x_slow = x.detach().clone().requires_grad_(True)

    out = block(x)
    ref = slow_pyramid_attention(block, x_slow)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)

    grad = torch.randn_like(out)
    params = list(block.parameters())
    g_fast = torch.autograd.grad(out, [x] + params, grad)
    g_slow = torch.autograd.grad(ref, [x_slow] + params, grad)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_parameter_counts_match_released_module():
    n64 = sum(p.numel() for p in PyramidAttention(64, 2).parameters())
    n256 = sum(p.numel() for p in PyramidAttention(256, 8).parameters())
    assert (n64, n256) == (8323, 82243)


def test_identity_branch_scaled_not_attention():
    torch.manual_seed(1)
    x = torch.randn(1, 4, 6, 6)
    a = PyramidAttention(4, 2, res_scale=1.0)
    b = PyramidAttention(4, 2, res_scale=0.1)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x) - x, b(x) - 0.1 * x)


def test_pyramid_sizes_are_floored():
    block = PyramidAttention(4, 2)
    from panet_mm.ops.pyramid_attention import build_pyramid
    sizes = [tuple(t.shape[-2:]) for t in build_pyramid(torch.zeros(1, 4, 13, 17), block.scales)]
    assert sizes == [(math.floor(s * 13), math.floor(s * 17)) for s in (1.0, 0.9, 0.8, 0.7, 0.6)]


def test_pyramid_resamples_as_the_released_models_were_trained():
    """PyTorch 1.1 derived the bicubic step from the sizes; torch >= 1.6 uses 1/scale unless told."""
    from panet_mm.ops.pyramid_attention import build_pyramid
    x = torch.randn(1, 2, 13, 17, generator=torch.Generator().manual_seed(0))
    for s, level in zip((0.9, 0.8, 0.7, 0.6), build_pyramid(x, [0.9, 0.8, 0.7, 0.6])):
        from_sizes = F.interpolate(x, size=level.shape[-2:], mode='bicubic', align_corners=False)
        torch.testing.assert_close(level, from_sizes, rtol=0, atol=0)
        direct = F.interpolate(x, scale_factor=s, mode='bicubic', align_corners=False)
        assert (level - direct).abs().max() > 0.1


def test_bad_input_is_named():
    block = PyramidAttention(8, 2)
    with pytest.raises(ValueError, match=r'expects \(B, 8, H, W\)'):
        block(torch.zeros(1, 4, 6, 6))
    with pytest.raises(ValueError, match='divisible'):
        PyramidAttention(10, 4)


@pytest.mark.parametrize('config, message', [
    (dict(type='PyramidAttention', channels='8'),
     "PyramidAttention got channels='8', a string where it takes an int; write channels=8 without quotes"),
    (dict(type='PyramidAttention', channels=8, softmax_scale='10'),
     "PyramidAttention got softmax_scale='10', a string where it takes a number; write softmax_scale=10 without "
     'quotes'),
    (dict(type='PAEDSRNet', mid_channels='16'),
     "PAEDSRNet got mid_channels='16', a string where it takes an int; write mid_channels=16 without quotes"),
    (dict(type='PANet', num_blocks=None),
     'PANet got num_blocks=None, no value where it takes an int; give num_blocks a number'),
])
def test_a_quoted_number_is_refused_by_the_constructor_naming_the_argument(config, message):
    """MODELS.build from Python (no tool's config check): the TypeError came from `channels % reduction` or torch's
    nn.Conv2d ("not all arguments converted during string formatting"), naming nothing."""
    from mmagic.registry import MODELS

    from panet_mm.utils.arguments import ConfigArgumentError
    with pytest.raises(ConfigArgumentError) as err:
        MODELS.build(config)
    assert str(err.value) == message
