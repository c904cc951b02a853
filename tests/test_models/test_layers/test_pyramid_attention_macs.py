"""PyramidAttention.macs() against mmengine's flop counter (the handle panet_mm registers there) and by hand."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer

from panet_mm.models.layers import PyramidAttention

pytestmark = pytest.mark.usefixtures('one_thread')


def test_macs_by_hand():
    """C=4, r=2, one level: embeddings 4*2 + 4*2 + 4*4 per pixel, 3*(2+4) per (query, key) pair."""
    block = PyramidAttention(channels=4, reduction=2, levels=1)
    hw = 5 * 6
    assert block.macs(5, 6) == hw * (8 + 8 + 16) + hw * hw * 3 * (2 + 4)


@pytest.mark.parametrize('channels,reduction,h,w', [(8, 2, 12, 10), (16, 8, 9, 15), (256, 8, 7, 6)])
def test_macs_is_what_mmengine_counts(channels, reduction, h, w):
    """The registered handle makes the block's count in mmengine's default FlopAnalyzer exactly macs()."""
    block = PyramidAttention(channels=channels, reduction=reduction).eval()
    x = torch.randn(2, channels, h, w, generator=torch.Generator().manual_seed(0))
    flops = FlopAnalyzer(block, (x,)).unsupported_ops_warnings(False)
    assert flops.total() == 2 * block.macs(h, w)
    # the 1x1 embeddings through mmengine's own conv handle, the rest is the kernel
    embeddings = sum(flops.total(name) for name in ('query', 'key', 'value'))
    assert flops.by_operator()['conv'] == embeddings
    assert flops.by_operator()['PythonOp._ChunkedAttention'] == flops.total() - embeddings > 0


def test_macs_follows_the_formulation_the_kernel_picks():
    """PA-EDSR's width (Cq + C = 288) runs 'pixel' in float32 and bfloat16 on CPU, 'col' in float16 (unmeasured)."""
    from panet_mm.ops.pyramid_attention import attention_macs, choose_method

    block = PyramidAttention(channels=256, reduction=8)
    sizes = [(int(20 * s), int(16 * s)) for s in block.scales]
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        method = choose_method(20, 16, sizes, 32, 256, 3, dtype, 'cpu')
        attention = attention_macs(20, 16, block.scales, 32, 256, method=method)
        embeddings = block.macs(20, 16, dtype=dtype) - attention
        assert embeddings == 20 * 16 * 256 * 32 + sum(h * w for h, w in sizes) * 256 * (32 + 256)
    assert block.macs(20, 16, dtype=torch.bfloat16) == block.macs(20, 16) < block.macs(20, 16, dtype=torch.float16)
    reference = PyramidAttention(channels=256, reduction=8, implementation='reference')
    assert reference.macs(20, 16) - embeddings == attention_macs(20, 16, block.scales, 32, 256, method='patch')
