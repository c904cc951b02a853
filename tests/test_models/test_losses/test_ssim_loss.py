"""SSIMLoss / ssim: hand-computed cases, a direct numpy computation, mmagic's SSIM metric, gradients."""
import numpy as np
import pytest
import torch
from mmagic.evaluation.metrics.ssim import ssim as mmagic_ssim
from mmagic.registry import MODELS

import panet_mm  # noqa: F401
from panet_mm.models.losses import SSIMLoss, ssim
from panet_mm.models.losses.ssim_loss import rgb_to_y

pytestmark = pytest.mark.usefixtures('one_thread')


def numpy_ssim(x, y, size=11, sigma=1.5, data_range=1.0):
    """SSIM of two (C, H, W) arrays, written directly from Wang et al. 2004: loop over valid windows."""
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-ax ** 2 / (2 * sigma ** 2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for xc, yc in zip(x, y):
        for i in range(xc.shape[0] - size + 1):
            for j in range(xc.shape[1] - size + 1):
                px, py = xc[i:i + size, j:j + size], yc[i:i + size, j:j + size]
                mx, my = (w * px).sum(), (w * py).sum()
                vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
                cov = (w * (px - mx) * (py - my)).sum()
                values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_identical_images_give_ssim_one_and_loss_zero():
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-12)
    assert SSIMLoss()(x, x).item() == pytest.approx(0.0, abs=1e-12)


def test_constant_images_hand_computed():
    # no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) * (C2 / C2)
    a, b, c1 = 0.5, 0.25, 0.01 ** 2
    x, y = torch.full((1, 1, 11, 11), a, dtype=torch.float64), torch.full((1, 1, 11, 11), b, dtype=torch.float64)
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(x, y).item() == pytest.approx(expected, rel=1e-12)
    assert SSIMLoss(loss_weight=2.0)(x, y).item() == pytest.approx(2 * (1 - expected), rel=1e-12)


def test_matches_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    x = rng.random((2, 14, 13))
    y = np.clip(x + 0.1 * rng.standard_normal((2, 14, 13)), 0, 1)
    ours = ssim(torch.from_numpy(x)[None], torch.from_numpy(y)[None]).item()
    assert ours == pytest.approx(numpy_ssim(x, y), abs=1e-12)


def test_matches_mmagic_ssim_metric_on_0_255_data():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (3, 20, 24)).astype(np.float64)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255)
    ours = ssim(torch.from_numpy(x)[None], torch.from_numpy(y)[None], data_range=255.0).item()
    assert ours == pytest.approx(mmagic_ssim(x, y, input_order='CHW'), abs=1e-6)


def test_y_channel_and_reductions():
    x, y = torch.rand(3, 3, 12, 12, dtype=torch.float64), torch.rand(3, 3, 12, 12, dtype=torch.float64)
    per_image = SSIMLoss(convert_to='Y', reduction='none')(x, y)
    assert per_image.shape == (3,)
    assert torch.allclose(per_image, 1 - ssim(rgb_to_y(x), rgb_to_y(y)))
    assert SSIMLoss(convert_to='Y', reduction='sum')(x, y).item() == pytest.approx(per_image.sum().item())
    assert SSIMLoss(convert_to='Y')(x, y).item() == pytest.approx(per_image.mean().item())
    # BT.601 luma of white and black in [0, 1]: 235/255 and 16/255
    assert rgb_to_y(torch.ones(1, 3, 1, 1)).item() == pytest.approx(235 / 255, abs=1e-6)
    assert rgb_to_y(torch.zeros(1, 3, 1, 1)).item() == pytest.approx(16 / 255)


def test_gradcheck_float64():
    x = torch.rand(1, 2, 12, 13, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 2, 12, 13, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: SSIMLoss()(a, b), (x, y))
    xc = torch.rand(2, 3, 11, 11, dtype=torch.float64, requires_grad=True)
    yc = torch.rand(2, 3, 11, 11, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: SSIMLoss(convert_to='Y', reduction='none')(a, yc), (xc,))


@pytest.mark.parametrize('kwargs,shape,match', [
    (dict(), (1, 1, 10, 12), 'at least 11x11, got 10x12'),
    (dict(convert_to='Y'), (1, 1, 12, 12), "convert_to='Y' needs"),
])
def test_input_errors(kwargs, shape, match):
    x = torch.rand(*shape)
    with pytest.raises(ValueError, match=match):
        SSIMLoss(**kwargs)(x, x)


def test_argument_errors():
    with pytest.raises(ValueError, match='window_size must be a positive odd number'):
        SSIMLoss(window_size=10)
    with pytest.raises(ValueError, match="reduction='avg'"):
        SSIMLoss(reduction='avg')
    with pytest.raises(ValueError, match='weight'):
        SSIMLoss()(torch.rand(1, 1, 11, 11), torch.rand(1, 1, 11, 11), weight=torch.ones(1, 1, 11, 11))


def test_registered():
    assert MODELS.get('SSIMLoss') is SSIMLoss


def test_0_255_data_under_the_default_range_is_warned_once():
    """SSIMLoss took 0-255 data with data_range=1 without a word (its constants assume the range)."""
    import warnings

    import pytest

    from panet_mm.models.losses import SSIMLoss
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(1, 3, 16, 16, generator=g) * 255, torch.rand(1, 3, 16, 16, generator=g) * 255
    loss = SSIMLoss()
    with pytest.warns(UserWarning, match=r'SSIMLoss got targets up to 25\d\.?\d* with data_range=1: the data look like '
                      r'0-255; set data_range to that range, or feed data in \[0, 1\]'):
        loss(pred, target)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loss(pred, target)                                   # once
        SSIMLoss(data_range=255)(pred, target)               # the right range: nothing
        SSIMLoss()(pred / 255, target / 255)                 # 0-1 data: nothing
