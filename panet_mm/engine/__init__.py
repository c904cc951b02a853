"""Runtime helpers of panet_mm (distributed runs without a GPU)."""
from .distributed import CPUDistributedDataParallel, setup_distributed

__all__ = ['CPUDistributedDataParallel', 'setup_distributed']
