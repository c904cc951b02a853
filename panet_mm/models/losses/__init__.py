"""Losses registered in mmagic's ``MODELS``: weighted sums of losses and a differentiable SSIM loss."""
from .composite_loss import CompositeLoss, parse_loss_string
from .ssim_loss import SSIMLoss, ssim

__all__ = ['CompositeLoss', 'SSIMLoss', 'parse_loss_string', 'ssim']
