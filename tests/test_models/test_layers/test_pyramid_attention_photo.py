"""The block on features of a photograph the project did not make (scikit-image's astronaut), with the
compiled CPU steps (panet_mm/ops/native.py) and with torch's operations, against the reference formulation.

Features of a real image in PA-EDSR's 0-255 range spread the attention logits over hundreds, as the trained
network's do (here: median spread 226, half of the probabilities below float32's normal range), the case
the compiled steps write as 0 and the eager backward flushes (README, "Denormal floats"). Measured errors
against the float64 reference: output 2.1e-6, input gradient 1.5e-5-1.6e-5 of the largest value."""
import pytest
import torch

from panet_mm.models.layers import PyramidAttention
from panet_mm.ops import native
from panet_mm.ops.pyramid_attention import build_pyramid, extract_patches, normalised_key_patches

skimage_data = pytest.importorskip('skimage.data')


def _photo_features() -> torch.Tensor:
    """(1, 32, 20, 24) features of a 20x24 crop of the astronaut photograph (its face), 0-255 input range."""
    crop = torch.from_numpy(skimage_data.astronaut()[60:80, 190:214].copy()).permute(2, 0, 1)[None].double()
    conv = torch.nn.Conv2d(3, 32, 3, padding=1).double()
    torch.nn.init.normal_(conv.weight, std=0.05, generator=torch.Generator().manual_seed(0))
    torch.nn.init.zeros_(conv.bias)
    with torch.no_grad():
        return conv(crop)


@pytest.mark.parametrize('fused', ['1', '0'])
def test_block_on_a_photograph_matches_the_reference(monkeypatch, fused):
    monkeypatch.setenv(native.ENV_VAR, fused)
    torch.manual_seed(0)
    block = PyramidAttention(channels=32, reduction=8, levels=3).double()
    reference = PyramidAttention(channels=32, reduction=8, levels=3, implementation='reference').double()
    reference.load_state_dict(block.state_dict())
    x = _photo_features()
    with torch.no_grad():                          # the case meant: probabilities far below float32's range
        keys = [block.key(t) for t in build_pyramid(x, block.scales)]
        logits = block.softmax_scale * extract_patches(block.query(x)) @ normalised_key_patches(keys).transpose(1, 2)
        assert (torch.softmax(logits, -1) < torch.finfo(torch.float32).tiny).double().mean() > 0.3
    expected_in = x.clone().requires_grad_()
    expected = reference(expected_in)
    grad_out = torch.randn_like(expected)
    expected_grad, = torch.autograd.grad(expected, expected_in, grad_out)

    block32 = block.float()
    x32 = x.float().requires_grad_()
    out = block32(x32)
    grad, = torch.autograd.grad(out, x32, grad_out.float())
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    scale = expected.abs().max()
    assert (out.double() - expected).abs().max() <= 1e-5 * scale
    assert (grad.double() - expected_grad).abs().max() <= 1e-4 * expected_grad.abs().max()
