"""The pyramid helpers of ``panet_mm.ops.pyramid`` (torch only)."""
import pytest
import torch

from panet_mm.ops.pyramid import build_pyramid, pyramid_scales, smallest_side


@pytest.mark.parametrize('scales, side', [([1.0], 1), ([1.0, 0.5], 2), ([0.6], 2), ([1.0, 0.3], 4),
                                          (pyramid_scales(5), 2),
                                          (pyramid_scales(10), 11)])  # 1 - 0.9 is just under 0.1
def test_smallest_side_is_the_first_side_every_level_keeps(scales, side):
    assert smallest_side(scales) == side
    build_pyramid(torch.zeros(1, 1, side, side), scales)  # every level non-empty
    if side > 1:
        with pytest.raises(ValueError, match=f'at least {side} pixels per side'):
            build_pyramid(torch.zeros(1, 1, side - 1, side - 1), [min(scales)])


def test_pyramid_scales_refuses_levels_that_vanish():
    assert pyramid_scales(5) == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6])
    with pytest.raises(ValueError, match='non-positive scale'):
        pyramid_scales(11)
    with pytest.raises(ValueError, match='levels must be >= 1'):
        pyramid_scales(0)
