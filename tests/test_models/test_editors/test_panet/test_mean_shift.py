"""MeanShift: the add-back undoes the subtraction for any std; at std 1 it is the released shift."""
import pytest
import torch

from panet_mm.models.editors.panet.mean_shift import MeanShift


def test_add_back_inverts_the_subtraction_for_any_std():
    torch.manual_seed(0)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.5, 2.0)
    sub, add = MeanShift(255, mean, std, sign=-1), MeanShift(255, mean, std, sign=1)
    x = torch.rand(2, 3, 5, 4) * 255
    expected = (x - 255 * torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(sub(x), expected)
    torch.testing.assert_close(add(sub(x)), x, rtol=1e-5, atol=1e-4)


def test_std_one_is_the_released_shift():
    """The released code's shift, written from its formula: weight eye / std, bias sign * range * mean / std."""
    mean = torch.tensor([0.4488, 0.4371, 0.4040])
    x = torch.rand(1, 3, 3, 3)
    for sign in (-1, 1):
        released = (x + sign * 255 * mean.view(1, 3, 1, 1)) / 1.0
        torch.testing.assert_close(MeanShift(255, mean.tolist(), sign=sign)(x), released)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='sign must be -1'):
        MeanShift(1, (0.5,), (1.0,), sign=0)
    with pytest.raises(ValueError, match='got 3 and 1'):
        MeanShift(1, (0.5, 0.5, 0.5), (1.0,))


def test_paedsr_needs_as_many_output_channels():
    from mmagic.registry import MODELS

    import panet_mm  # noqa: F401
    with pytest.raises(ValueError, match='out_channels must equal in_channels'):
        MODELS.build(dict(type='PAEDSRNet', in_channels=3, out_channels=1, mid_channels=8, num_blocks=2))
