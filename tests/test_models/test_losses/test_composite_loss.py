"""CompositeLoss: hand-computed sums, the reference string form, keyword pass-through, gradients."""
import pytest
import torch
from mmagic.models.losses import CharbonnierLoss, L1Loss, MSELoss
from mmagic.registry import MODELS
from mmagic.structures import DataSample

import panet_mm  # noqa: F401
from panet_mm.models.losses import CompositeLoss, SSIMLoss, parse_loss_string

PRED = torch.zeros(1, 1, 2, 2)
TARGET = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]]])
L1 = 0.25  # mean |x|
MSE = 0.075  # mean x^2 = (0.01 + 0.04 + 0.09 + 0.16) / 4


pytestmark = pytest.mark.usefixtures('one_thread')


def test_weighted_sum_hand_computed():
    loss = CompositeLoss(losses=[dict(type='L1Loss', loss_weight=1.0), dict(type='MSELoss', loss_weight=0.5)])
    assert loss(PRED, TARGET).item() == pytest.approx(L1 + 0.5 * MSE)
    assert CompositeLoss(losses='1*L1+0.5*MSE', loss_weight=2.0)(PRED, TARGET).item() == pytest.approx(
        2 * (L1 + 0.5 * MSE))


def test_string_form_builds_the_registered_losses():
    loss = CompositeLoss(losses='1*L1 + 0.5*MSE + 2e-1*Charbonnier + SSIM + 0.1*PSNRLoss')
    assert [type(m) for m in loss.losses[:4]] == [L1Loss, MSELoss, CharbonnierLoss, SSIMLoss]
    assert [m.loss_weight for m in loss.losses] == [1.0, 0.5, 0.2, 1.0, 0.1]
    assert parse_loss_string('L2') == [dict(type='MSELoss', loss_weight=1.0)]
    assert '1*L1Loss + 0.5*MSELoss' in repr(loss)


def test_element_weight_is_passed_to_every_term():
    weight = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    loss = CompositeLoss(losses='1*L1+0.5*MSE')
    expected = L1Loss()(PRED, TARGET, weight=weight) + 0.5 * MSELoss()(PRED, TARGET, weight=weight)
    assert loss(PRED, TARGET, weight=weight).item() == pytest.approx(expected.item())


def test_called_as_base_edit_model_calls_pixel_loss():
    model = MODELS.build(dict(type='BaseEditModel', generator=dict(type='SRCNNNet', channels=(3, 4, 2, 3),
                                                                   kernel_sizes=(3, 1, 3), upscale_factor=1),
                              pixel_loss=dict(type='CompositeLoss', losses='1*L1+0.5*MSE')))
    x, gt = torch.rand(1, 3, 6, 6), torch.rand(1, 3, 6, 6)
    losses = model(x, DataSample(gt_img=gt), mode='loss')
    pred = model.generator(x)
    assert losses['loss'].item() == pytest.approx(((pred - gt).abs().mean() + 0.5 * ((pred - gt) ** 2).mean()).item())


def test_gradcheck_float64():
    loss = CompositeLoss(losses=[dict(type='MSELoss', loss_weight=0.5), dict(type='CharbonnierLoss', eps=1e-3),
                                 dict(type='SSIMLoss', loss_weight=0.3)])
    x = torch.rand(1, 1, 11, 11, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 11, 11, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: loss(a, y), (x,))


@pytest.mark.parametrize('losses,match', [
    ('1*L1+0.5*VGG', "loss 'VGG' in '1\\*L1\\+0.5\\*VGG' is neither an alias"),
    ('1*L1+*MSE', "loss term '\\*MSE'"),
    ([], 'empty'),
    (['L1Loss'], 'is not a loss config'),
])
def test_errors(losses, match):
    with pytest.raises(ValueError, match=match):
        CompositeLoss(losses=losses)


def test_registered():
    assert MODELS.get('CompositeLoss') is CompositeLoss
