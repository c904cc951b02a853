"""The kernel's edge cases: an empty batch (every formulation, forward and backward; the cost model's
plans for zero images) and ``torch.export``, under which the kernel computes the reference."""
import warnings

import pytest
import torch

from panet_mm.ops.pyramid_attention import (
    build_pyramid,
    choose_batch_chunk,
    choose_chunk_size,
    choose_panel_rows,
    pyramid_attention,
    pyramid_attention_reference,
    pyramid_scales,
)

SCALES = pyramid_scales(5)
SIZES = [(int(9 * s), int(11 * s)) for s in SCALES]


def _inputs(batch, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 6, 9, 11, generator=g).to(dtype)
    levels = build_pyramid(x, SCALES)
    query = x[:, :2].clone().requires_grad_()
    keys = [t[:, 2:4].clone().requires_grad_() for t in levels]
    values = [t.clone().requires_grad_() for t in levels]
    return query, keys, values


@pytest.mark.parametrize('method', ['auto', 'col', 'pixel', 'row', 'patch'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16])
def test_empty_batch_forward_and_backward(method, dtype):
    query, keys, values = _inputs(0, dtype)
    out = pyramid_attention(query, keys, values, method=method)
    assert out.shape == (0, 6, 9, 11) and out.dtype == dtype
    grads = torch.autograd.grad(out.sum(), [query, *keys, *values])
    assert all(g.shape == t.shape for g, t in zip(grads, [query, *keys, *values]))


@pytest.mark.parametrize('device', [None, 'cpu'])
def test_cost_model_plans_an_empty_batch(device):
    """Zero images once divided by zero (choose_chunk_size's CPU cap, choose_panel_rows): planned as one."""
    assert choose_batch_chunk(9, 11, SIZES, 0, device=device) == 1
    assert choose_chunk_size(9, 11, SIZES, 0, device=device) == choose_chunk_size(9, 11, SIZES, 1, device=device)
    chunk = choose_chunk_size(9, 11, SIZES, 1, device=device)
    assert choose_panel_rows(chunk, 9, 11, SIZES, 0, device=device) == choose_panel_rows(chunk, 9, 11, SIZES, 1,
                                                                                       device=device)


class _Attention(torch.nn.Module):
    def forward(self, x):
        levels = build_pyramid(x, SCALES)
        return pyramid_attention(x[:, :2], [t[:, 2:4] for t in levels], levels, chunk_size=7, method='pixel')


def test_torch_export_computes_the_reference():
    """Exported (non-strict here; the block's tests run strict too): the reference's graph, equal to the kernel."""
    x = torch.randn(2, 6, 9, 11, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ep = torch.export.export(_Attention(), (x,), strict=False)
    levels = build_pyramid(x, SCALES)
    reference = pyramid_attention_reference(x[:, :2], [t[:, 2:4] for t in levels], levels)
    torch.testing.assert_close(ep.module()(x), reference, rtol=0, atol=0)
    torch.testing.assert_close(ep.module()(x), _Attention()(x), rtol=1e-5, atol=1e-5)
