"""The chunked kernel under mmengine's flop counter: traceable, exact, and counted as attention_macs counts it."""
import pytest
import torch

from panet_mm.ops.flops import CHUNKED_ATTENTION_OP, chunked_attention_flop_handle
from panet_mm.ops.pyramid_attention import (
    attention_macs,
    build_pyramid,
    pyramid_attention,
    pyramid_attention_reference,
    pyramid_scales,
)

# mmengine's counter: skipped where only torch is installed (tools/device_check.sh)
FlopAnalyzer = pytest.importorskip('mmengine.analysis').FlopAnalyzer
pytestmark = pytest.mark.usefixtures('one_thread')

SCALES = pyramid_scales(5)


class Attention(torch.nn.Module):
    """Query = the first ``cq`` channels, keys / values from the bicubic pyramid, kernel or reference."""

    def __init__(self, cq: int, reference: bool = False, chunk_size=None, method='auto') -> None:
        super().__init__()
        self.cq, self.reference, self.chunk_size, self.method = cq, reference, chunk_size, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = build_pyramid(x, SCALES)
        keys = [t[:, :self.cq] for t in levels]
        if self.reference:
            return pyramid_attention_reference(x[:, :self.cq], keys, levels)
        return pyramid_attention(x[:, :self.cq], keys, levels, chunk_size=self.chunk_size, method=self.method)


def analyzer(model, x):
    flops = FlopAnalyzer(model, (x,))
    flops.set_op_handle(**{CHUNKED_ATTENTION_OP: chunked_attention_flop_handle})
    return flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


@pytest.mark.parametrize('batch,h,w', [(1, 12, 10), (2, 9, 14)])
def test_handle_counts_attention_macs(batch, h, w):
    x = torch.randn(batch, 6, h, w, generator=torch.Generator().manual_seed(0))
    counted = analyzer(Attention(cq=2), x).by_operator()
    assert counted['PythonOp._ChunkedAttention'] == batch * attention_macs(h, w, SCALES, 2, 6)


def test_kernel_is_one_third_of_the_plain_patch_products():
    """mmengine's own bmm handle on the reference (k x k patches) counts ksize times the kernel's 'col' cost."""
    x = torch.randn(1, 6, 11, 13, generator=torch.Generator().manual_seed(1))
    reference = analyzer(Attention(cq=2, reference=True), x).by_operator()['bmm']
    kernel = analyzer(Attention(cq=2), x).by_operator()['PythonOp._ChunkedAttention']
    assert reference == 3 * kernel


@pytest.mark.parametrize('method', ['col', 'pixel', 'row', 'patch'])
def test_traced_kernel_is_exact(method):
    """Tracing (as the flop counter does) plans the chunks in ints: the traced graph computes the same values.

    ``'pixel'`` (PA-EDSR's C=256 formulation) has two stages of shifted sums, whose sliding row buffers once
    kept positions as the tracer's 0-dim tensors and moved them in place (get_flops.py stopped on PA-EDSR).
    """
    x = torch.randn(2, 6, 10, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    model = Attention(cq=2, chunk_size=25, method=method)      # several chunks, one ending mid-row
    with pytest.warns(torch.jit.TracerWarning):
        traced = torch.jit.trace(model, (x,), check_trace=False)
    assert torch.equal(traced(x), model(x))
    torch.testing.assert_close(model(x), Attention(cq=2, reference=True)(x))
