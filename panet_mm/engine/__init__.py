"""Runtime of panet_mm: distributed runs without a GPU, safe checkpoints, the strict runner, hooks."""
from panet_mm.utils.checkpoint import compare_state_dicts

from .checkpoint import (
                         AtomicLocalBackend,
                         UnsafeCheckpointError,
                         WeightsOnlyCheckpointHook,
                         ensure_checkpoint_hook,
                         load_weights_only,
)
from .distributed import CPUDistributedDataParallel, setup_distributed
from .hooks import (
    NonFiniteLossError,
    NonFiniteLossHook,
    NonFiniteOutputError,
    NonFiniteOutputHook,
    PerImageMetricsHook,
    SaveMetricsHook,
)
from .optim import CPUAmpOptimWrapper
from .runner import CheckpointMismatchError, PANetRunner
from .visualization import FirstSamplesVisualizationHook

__all__ = [
    'AtomicLocalBackend', 'CPUAmpOptimWrapper', 'CPUDistributedDataParallel', 'CheckpointMismatchError',
    'FirstSamplesVisualizationHook', 'NonFiniteLossError', 'NonFiniteLossHook', 'NonFiniteOutputError',
    'NonFiniteOutputHook', 'PANetRunner', 'PerImageMetricsHook', 'SaveMetricsHook',
    'UnsafeCheckpointError', 'WeightsOnlyCheckpointHook', 'compare_state_dicts', 'ensure_checkpoint_hook',
    'load_weights_only', 'setup_distributed'
]
