"""Importing panet_mm registers every module in mmagic's registries (what custom_imports relies on)."""
import pytest
from mmagic.registry import DATASETS, MODELS
from mmengine.registry import MODEL_WRAPPERS

import panet_mm


@pytest.mark.parametrize('registry,name', [
    (MODELS, 'PyramidAttention'),
    (MODELS, 'PANet'),
    (MODELS, 'PAEDSRNet'),
    (DATASETS, 'CheckedImageDataset'),
    (MODEL_WRAPPERS, 'CPUDistributedDataParallel'),
])
def test_registered(registry, name):
    assert registry.get(name) is not None, f'{name} missing from {registry.name}'


def test_version():
    assert isinstance(panet_mm.__version__, str)
