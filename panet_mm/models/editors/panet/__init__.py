"""PANet generators (and, later, the edit model)."""
from .panet_net import PAEDSRNet, PANet

__all__ = ['PANet', 'PAEDSRNet']
