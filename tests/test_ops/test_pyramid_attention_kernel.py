"""The chunked pyramid attention kernel against the straightforward reference (CPU, tiny tensors)."""
import importlib
from typing import List, Sequence, Tuple

import pytest
import torch

from panet_mm.ops.pyramid_attention import (
    attention_macs,
    build_pyramid,
    choose_batch_chunk,
    choose_chunk_size,
    estimate_chunk_bytes,
    pyramid_attention,
    pyramid_attention_reference,
    pyramid_scales,
)

# the kernel module itself (its workspace class is replaced in a test)
kernel_module = importlib.import_module('panet_mm.ops.kernel')
chunks_module = importlib.import_module('panet_mm.ops.chunks')
pa_cost = importlib.import_module('panet_mm.ops.cost')

METHODS = ['col', 'pixel', 'row', 'patch']

# tiny tensors: one intra-op thread (tests/conftest.py) is faster and immune to a busy machine
pytestmark = pytest.mark.usefixtures('one_thread')


def make_inputs(batch: int, cq: int, c: int, h: int, w: int, levels: int, dtype: torch.dtype = torch.float64,
                seed: int = 0) -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor], torch.Tensor]:
    """Query, pyramid keys/values (bicubic pyramid of random maps) and an output gradient, as leaves."""
    g = torch.Generator().manual_seed(seed)
    scales = pyramid_scales(levels)
    q = torch.randn(batch, cq, h, w, generator=g, dtype=torch.float64)
    xk = torch.randn(batch, cq, h, w, generator=g, dtype=torch.float64)
    xv = torch.randn(batch, c, h, w, generator=g, dtype=torch.float64)
    grad_out = torch.randn(batch, c, h, w, generator=g, dtype=torch.float64)

    def leaf(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype).detach().requires_grad_()

    return (leaf(q), [leaf(t) for t in build_pyramid(xk, scales)], [leaf(t) for t in build_pyramid(xv, scales)],
            grad_out.to(dtype))


def output_and_grads(fn, query: torch.Tensor, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor],
                     grad_out: torch.Tensor, **kwargs) -> List[torch.Tensor]:
    """``[out, d query, d keys..., d values...]`` of ``sum(fn(...) * grad_out)``."""
    out = fn(query, keys, values, **kwargs)
    grads = torch.autograd.grad((out * grad_out.to(out.dtype)).sum(), [query, *keys, *values])
    return [out, *grads]


def assert_close_scaled(actual: Sequence[torch.Tensor], expected: Sequence[torch.Tensor], tol: float) -> None:
    """Every tensor within ``tol * max(1, max|expected|)`` of its counterpart (shapes equal)."""
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, (i, a.shape, e.shape)
        assert torch.isfinite(a).all(), i
        scale = max(1.0, e.abs().max().item())
        err = (a.double() - e.double()).abs().max().item()
        assert err <= tol * scale, f'tensor {i}: max error {err:.3g} > {tol:.1g} * {scale:.3g}'


# (batch, Cq, C, H, W, levels, chunk_size)
SHAPES = [
    (1, 2, 3, 7, 9, 1, None),       # odd size, one level
    (2, 4, 8, 7, 9, 5, 7),          # 63 pixels in chunks of 7 (7 < W: chunks cross rows)
    (2, 4, 8, 7, 5, 3, 1),          # chunk_size=1
    (1, 3, 5, 6, 6, 4, 13),         # 13 does not divide 36
    (2, 32, 64, 7, 9, 5, 20),       # PANet channels (C=64, r=2)
    (1, 32, 256, 6, 6, 5, None),    # PA-EDSR channels (C=256, r=8)
    (3, 4, 6, 5, 8, 2, 16),         # chunk of two full rows
]


@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: 'b{}_cq{}_c{}_{}x{}_l{}_chunk{}'.format(*s))
@pytest.mark.parametrize('method', METHODS)
def test_matches_reference_float64(shape, method):
    *dims, chunk = shape
    inputs = make_inputs(*dims, dtype=torch.float64)
    expected = output_and_grads(pyramid_attention_reference, *inputs)
    actual = output_and_grads(pyramid_attention, *inputs, chunk_size=chunk, method=method)
    assert actual[0].dtype == torch.float64
    assert_close_scaled(actual, expected, 1e-10)


@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: 'b{}_cq{}_c{}_{}x{}_l{}_chunk{}'.format(*s))
@pytest.mark.parametrize('method', ['auto', 'patch'])
def test_matches_reference_float32(shape, method):
    """float32 kernel within 1e-5 (relative to the largest value) of the exact (float64) result."""
    *dims, chunk = shape
    expected = output_and_grads(pyramid_attention_reference, *make_inputs(*dims, dtype=torch.float64))
    inputs = make_inputs(*dims, dtype=torch.float32)
    actual = output_and_grads(pyramid_attention, *inputs, chunk_size=chunk, method=method)
    assert actual[0].dtype == torch.float32
    assert_close_scaled(actual, expected, 1e-5)
    # and close to the float32 reference itself
    assert_close_scaled(actual, output_and_grads(pyramid_attention_reference, *inputs), 2e-5)


@pytest.mark.parametrize('method', METHODS)
def test_channels_last_inputs_give_channels_last_output(method):
    """A network run channels-last gets its format back (else every later convolution converts), same values
    and gradients; NCHW inputs keep getting a contiguous NCHW output."""
    query, keys, values, grad_out = make_inputs(2, 4, 6, 6, 7, 5, dtype=torch.float64)
    expected = output_and_grads(pyramid_attention_reference, query, keys, values, grad_out)

    def cl(t: torch.Tensor) -> torch.Tensor:
        return t.detach().contiguous(memory_format=torch.channels_last).requires_grad_()

    query_cl, keys_cl, values_cl = cl(query), [cl(t) for t in keys], [cl(t) for t in values]
    actual = output_and_grads(pyramid_attention, query_cl, keys_cl, values_cl, grad_out, chunk_size=9, method=method)
    assert actual[0].is_contiguous(memory_format=torch.channels_last) and not actual[0].is_contiguous()
    assert_close_scaled(actual, expected, 1e-10)
    assert pyramid_attention(query, keys, values, method=method).is_contiguous()


def test_flush_denormals_zeroes_only_denormals():
    tiny = torch.finfo(torch.float32).tiny
    buf = torch.tensor([[1e-39, -1e-39, 1e-30, -2.0], [0.0, tiny, -tiny / 2, 3e-45], [5e-40, 1.0, -1e-40, 7.0]])
    view = buf[:, 1:3]                                   # strided, as a stream's rows
    chunks_module.flush_denormals(view)
    assert torch.equal(buf, torch.tensor([[1e-39, 0.0, 1e-30, -2.0], [0.0, 0.0, 0.0, 3e-45], [5e-40, 1.0, 0.0, 7.0]]))


@pytest.mark.parametrize('method', METHODS)
def test_wide_logits_flushed_backward(monkeypatch, method):
    """Logits spread over hundreds (as PA-EDSR's) leave denormal probabilities, which the CPU backward
    zeroes (chunks.flush_denormals: they slowed its products 2-5x): the gradients move by float32
    rounding at most (the products may round differently), and the kernel still matches the reference
    in float64. (torch's operations: the compiled CPU step flushes inside, tests/test_ops/test_native.py.)"""
    monkeypatch.setenv('PANET_MM_NATIVE', '0')
    flush, seen = chunks_module.flush_denormals, []

    def spy(t):
        tiny = torch.finfo(t.dtype).tiny
        seen.append(int(((t != 0) & (t.abs() < tiny)).sum()))
        flush(t)
        assert not ((t != 0) & (t.abs() < tiny)).any()
        return t

    def run(flusher, dtype):
        monkeypatch.setattr(chunks_module, 'flush_denormals', flusher)
        inputs = [t.to(dtype).detach().requires_grad_() for t in (q, *keys, *values)]
        return output_and_grads(pyramid_attention, inputs[0], inputs[1:4], inputs[4:], grad_out.to(dtype),
                                method=method, chunk_size=16)

    q, keys, values, grad_out = make_inputs(2, 8, 8, 7, 9, 3, dtype=torch.float64)
    with torch.no_grad():
        q *= 30                                          # logits over about +-700
    flushed = run(spy, torch.float32)
    assert sum(seen) > 0                                 # there were denormals to flush
    assert_close_scaled(flushed, run(lambda t: t, torch.float32), 1e-6)
    assert_close_scaled(run(spy, torch.float64), output_and_grads(pyramid_attention_reference, q, keys, values,
                                                                  grad_out), 1e-10)


@pytest.mark.parametrize('batch_chunk', [1, 2, 5])
@pytest.mark.parametrize('method', ['auto', 'patch'])
def test_batch_chunks_match_reference(batch_chunk, method):
    """Images taken a few at a time (the last group smaller) give the same outputs and gradients."""
    inputs = make_inputs(5, 4, 6, 6, 7, 5, dtype=torch.float64)
    expected = output_and_grads(pyramid_attention_reference, *inputs)
    actual = output_and_grads(pyramid_attention, *inputs, chunk_size=9, batch_chunk=batch_chunk, method=method)
    assert_close_scaled(actual, expected, 1e-10)


@pytest.mark.parametrize('method', METHODS)
def test_split_inner_products_match_reference(monkeypatch, method):
    """Products split along the key positions (CPU, few images per thread) give the same outputs and gradients."""
    monkeypatch.setattr(chunks_module, 'split_k', lambda a, b: 3 if a.shape[-1] >= 3 else 1)
    inputs = make_inputs(2, 4, 6, 6, 7, 5, dtype=torch.float64)
    expected = output_and_grads(pyramid_attention_reference, *inputs)
    actual = output_and_grads(pyramid_attention, *inputs, chunk_size=9, batch_chunk=1, method=method)
    assert_close_scaled(actual, expected, 1e-10)


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('panel_rows', [1, 13, 40])
def test_backward_panels_match_reference(monkeypatch, method, panel_rows):
    """The backward's panels (pasted rows of several chunks multiplied together) give the same gradients,
    whether a panel holds several chunks (40), flushes inside a chunk's rows (13: not a multiple of the
    chunks' spans) or is smaller than one paste (1: the rows are multiplied at once)."""
    monkeypatch.setattr(kernel_module, 'choose_panel_rows', lambda *args, **kwargs: panel_rows)
    inputs = make_inputs(2, 4, 6, 6, 7, 5, dtype=torch.float64)
    expected = output_and_grads(pyramid_attention_reference, *inputs)
    actual = output_and_grads(pyramid_attention, *inputs, chunk_size=9, method=method)
    assert_close_scaled(actual, expected, 1e-10)


def test_choose_panel_rows():
    """Up to 384 rows on CPU, within the budget; none beyond one paste elsewhere or for thick chunks."""
    sizes = [(48, 48), (43, 43), (38, 38), (33, 33), (28, 28)]
    chunk = pa_cost.choose_chunk_size(48, 48, sizes, 2, device='cpu', channels=64)
    one_paste = pa_cost.choose_panel_rows(chunk, 48, 48, sizes, 2, device='cuda', channels=64)
    assert one_paste >= chunk
    assert pa_cost.choose_panel_rows(chunk, 48, 48, sizes, 2, device='cpu', channels=64) == 384
    tight = pa_cost.estimate_chunk_bytes(chunk, 48, 48, sizes, 2, channels=64) / 2**20 + 1
    rows = pa_cost.choose_panel_rows(chunk, 48, 48, sizes, 2, memory_budget_mb=tight, device='cpu', channels=64)
    assert one_paste <= rows < 384
    assert pa_cost.estimate_chunk_bytes(chunk, 48, 48, sizes, 2, channels=64, panel_rows=rows) <= tight * 2**20
    assert pa_cost.choose_panel_rows(8 * 48, 48, 48, sizes, 1, device='cpu') == pa_cost.choose_panel_rows(
        8 * 48, 48, 48, sizes, 1, device='cuda')                                          # 400 rows already


@pytest.mark.parametrize('inner', [4096, 4097, 4099])
def test_split_k_product(inner):
    g = torch.Generator().manual_seed(inner)
    a = torch.randn(5, inner, generator=g, dtype=torch.float64)
    b = torch.randn(inner, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(chunks_module.split_k_product(a, b, 2), a @ b)
    torch.testing.assert_close(chunks_module.split_k_product(a, b.t().contiguous().t(), 4), a @ b)
    acc = torch.randn(5, 3, generator=g, dtype=torch.float64)
    expected = acc + a @ b
    torch.testing.assert_close(chunks_module.split_k_product(a, b, 2, acc), expected)   # added in place
    torch.testing.assert_close(acc, expected)
    acc32 = torch.zeros(3, 5)                                # autocast: bfloat16 parts into float32, a strided view
    chunks_module.split_k_product(a.bfloat16(), b.bfloat16(), 2, acc32.t())
    torch.testing.assert_close(acc32.t(), (a.bfloat16().float() @ b.bfloat16().float()), rtol=2e-2, atol=0.5)


def test_split_k_rule(monkeypatch):
    """Split only on CPU, for one image and two threads or more, a long inner dimension and a small result."""
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    rows, keys, values = torch.empty(1, 132, 14600), torch.empty(1, 14600, 64), torch.empty(1, 14600, 1024)
    assert chunks_module.split_k(rows, keys) == 2
    assert chunks_module.split_k(torch.empty(2, 132, 14600), torch.empty(2, 14600, 64)) == 1   # a thread per image
    assert chunks_module.split_k(rows[:, :, :100], keys[:, :100]) == 1                        # short inner product
    assert chunks_module.split_k(torch.empty(1, 1024, 14600), values) == 1                    # large result


def test_attention_macs():
    scales = pyramid_scales(5)
    keys = sum(int(48 * s) * int(40 * s) for s in scales)
    assert attention_macs(48, 40, scales, 32, 64) == 48 * 40 * keys * 3 * (32 + 64)
    # quadratic in the pixels
    assert attention_macs(96, 80, scales, 32, 64) / attention_macs(48, 40, scales, 32, 64) == pytest.approx(16, 0.01)


def test_choose_batch_chunk(monkeypatch):
    sizes_48 = [(int(48 * s), int(48 * s)) for s in pyramid_scales(5)]
    # GPU (or no device): the whole batch at once
    assert choose_batch_chunk(48, 48, sizes_48, 16) == 16
    assert choose_batch_chunk(48, 48, sizes_48, 16, device='cuda') == 16
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    # CPU: at least one image per thread, blocks near the cache size: 2 images of 48x48 (1.6 MB rows)
    assert choose_batch_chunk(48, 48, sizes_48, 16, device='cpu') == 2
    assert choose_batch_chunk(48, 48, sizes_48, 1, device='cpu') == 1
    # small maps: more images per chunk, never more than the batch
    sizes_8 = [(int(8 * s), int(8 * s)) for s in pyramid_scales(5)]
    assert choose_batch_chunk(8, 8, sizes_8, 16, device='cpu') == 16
    middle = choose_batch_chunk(16, 16, [(int(16 * s),) * 2 for s in pyramid_scales(5)], 64, device='cpu')
    assert 2 < middle < 64 and middle % 2 == 0      # a multiple of the thread count


@pytest.mark.parametrize('method', METHODS)
def test_options_ksize5_scale_divisor_eps(method):
    inputs = make_inputs(2, 3, 4, 9, 8, 3)
    kwargs = dict(ksize=5, softmax_scale=3.0, divisor=9.0, eps=0.5)
    expected = output_and_grads(pyramid_attention_reference, *inputs, **kwargs)
    actual = output_and_grads(pyramid_attention, *inputs, chunk_size=11, method=method, **kwargs)
    assert_close_scaled(actual, expected, 1e-10)


def test_keys_with_zero_patches():
    """All-zero key patches take the eps branch; the kernel's gradient stays finite there."""
    query, keys, values, grad_out = make_inputs(1, 3, 4, 8, 8, 2)
    with torch.no_grad():
        keys[0][..., :4, :4] = 0                    # interior patches of level 0 are exactly zero
    expected = output_and_grads(pyramid_attention_reference, query, keys, values, grad_out)
    actual = output_and_grads(pyramid_attention, query, keys, values, grad_out, chunk_size=10)
    assert_close_scaled(actual[:1], expected[:1], 1e-10)
    assert all(torch.isfinite(g).all() for g in actual[1:])
    # away from the zero block the reference's gradients are finite too and must agree
    assert_close_scaled([actual[1], *actual[3:]], [expected[1], *expected[3:]], 1e-10)


@pytest.mark.parametrize('need', ['query', 'keys', 'values'])
def test_gradient_subsets(need):
    """Only some inputs require grad: the others get none, the requested ones are right."""
    query, keys, values, grad_out = make_inputs(2, 3, 4, 6, 7, 3)
    for name, ts in (('query', [query]), ('keys', keys), ('values', values)):
        for t in ts:
            t.requires_grad_(name == need)
    wrt = {'query': [query], 'keys': keys, 'values': values}[need]
    out = pyramid_attention(query, keys, values, chunk_size=9)
    ref = pyramid_attention_reference(query, keys, values)
    actual = torch.autograd.grad((out * grad_out).sum(), wrt)
    expected = torch.autograd.grad((ref * grad_out).sum(), wrt)
    assert_close_scaled(actual, expected, 1e-10)


@pytest.mark.parametrize('method', ['auto', 'pixel'])
@pytest.mark.parametrize('half', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_half_autocast_cpu(method, half):
    inputs = make_inputs(2, 32, 64, 7, 9, 5, dtype=torch.float32)
    expected = output_and_grads(pyramid_attention_reference, *inputs)
    with torch.autocast('cpu', dtype=half):
        actual = output_and_grads(pyramid_attention, *inputs, chunk_size=20, method=method)
    assert actual[0].dtype == torch.float32                     # the dtype of the query
    assert all(g.dtype == torch.float32 for g in actual[1:])
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert torch.isfinite(a).all(), i
        rel = ((a - e).abs().max() / e.abs().max()).item()
        assert rel < (0.03 if i == 0 else 0.1), (i, rel)       # bf16 products, float32 softmax


@pytest.mark.parametrize('half', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_half_inputs_keep_dtype(half):
    query, keys, values, _ = make_inputs(1, 4, 6, 6, 7, 2, dtype=half)
    out = pyramid_attention(query, keys, values)
    assert out.dtype == half and out.shape == (1, 6, 6, 7)
    out.float().sum().backward()
    assert query.grad.dtype == half and torch.isfinite(query.grad).all()
    ref = pyramid_attention_reference(query.float(), [t.float() for t in keys], [t.float() for t in values])
    assert ((out.float() - ref).abs().max() / ref.abs().max()).item() < 0.05


def test_invalid_arguments():
    query, keys, values, _ = make_inputs(1, 2, 3, 5, 5, 2)
    with pytest.raises(ValueError):
        pyramid_attention(query, keys, values, ksize=2)
    with pytest.raises(ValueError):
        pyramid_attention(query, keys, values, chunk_size=0)
    with pytest.raises(ValueError):
        pyramid_attention(query, keys, values, batch_chunk=0)
    with pytest.raises(ValueError):
        pyramid_attention(query, keys, values, method='flash')
    with pytest.raises(ValueError):
        pyramid_attention(query, keys[:1], values)


# ------------------------------------------------------------------ memory model
LEVELS_64 = [(int(64 * s), int(64 * s)) for s in pyramid_scales(5)]


@pytest.mark.parametrize('method', ['auto', 'pixel', 'patch'])
@pytest.mark.parametrize('budget_mb', [0.05, 1, 8, 64, 256, 4096])
def test_choose_chunk_size_respects_budget(method, budget_mb):
    h = w = 64
    batch = 2
    chunk = choose_chunk_size(h, w, LEVELS_64, batch, memory_budget_mb=budget_mb, method=method)
    assert 1 <= chunk <= h * w

    def est(c):
        return estimate_chunk_bytes(c, h, w, LEVELS_64, batch, method=method)

    if chunk > 1 or est(1) <= budget_mb * 2**20:
        assert est(chunk) <= budget_mb * 2**20
    if chunk < h * w:                   # maximal: the next candidate (a row more, or a pixel more) does not fit
        step = w if chunk % w == 0 and est(w) <= budget_mb * 2**20 else 1
        assert est(chunk + step) > budget_mb * 2**20


def test_small_budget_gives_small_chunks():
    h = w = 64
    big = choose_chunk_size(h, w, LEVELS_64, 1, memory_budget_mb=256)
    small = choose_chunk_size(h, w, LEVELS_64, 1, memory_budget_mb=8)   # (the streams hold a few chunks' rows)
    tiny = choose_chunk_size(h, w, LEVELS_64, 1, memory_budget_mb=0.01)
    assert tiny == 1 < small < w < big
    # the estimate is linear in the chunk and in the number of keys, hence in pixels for a fixed chunk
    assert estimate_chunk_bytes(2 * w, h, w, LEVELS_64) < 2.1 * estimate_chunk_bytes(w, h, w, LEVELS_64)
    levels_128 = [(2 * a, 2 * b) for a, b in LEVELS_64]
    ratio = estimate_chunk_bytes(1, 128, 128, levels_128) / estimate_chunk_bytes(1, 64, 64, LEVELS_64)
    assert 3.5 < ratio < 4.5
    assert estimate_chunk_bytes(w, h, w, LEVELS_64, dtype=torch.float64) > estimate_chunk_bytes(w, h, w, LEVELS_64)


@pytest.mark.parametrize('method,dtype', [(m, d) for m in METHODS for d in (torch.float32, torch.float64)]
                         + [('col', torch.bfloat16), ('patch', torch.bfloat16)])
def test_workspace_stays_within_estimate(monkeypatch, method, dtype):
    """The per-chunk buffers the kernel really allocates (forward and backward) fit the estimate."""
    peaks = []
    real_workspace = kernel_module.Workspace

    class CountingWorkspace(real_workspace):
        def get(self, name, shape, dtype):
            out = super().get(name, shape, dtype)
            peaks.append(sum(b.numel() * b.element_size() for b in self.buffers.values()))
            return out

    monkeypatch.setattr(kernel_module, 'Workspace', CountingWorkspace)
    batch, h, w = 2, 8, 7
    autocast = dtype == torch.bfloat16              # float32 inputs, bfloat16 products under autocast
    query, keys, values, grad_out = make_inputs(batch, 4, 8, h, w, 5, dtype=torch.float32 if autocast else dtype)
    sizes = [tuple(t.shape[-2:]) for t in keys]
    for budget in (0.01, 0.1):
        # as the kernel plans: the images per chunk first (fewer where two rows of each would not fit)
        images = choose_batch_chunk(h, w, sizes, batch, dtype=dtype, method=method, device='cpu',
                                    memory_budget_mb=budget, channels=8)
        chunk = choose_chunk_size(h, w, sizes, images, dtype=dtype, memory_budget_mb=budget, method=method,
                                  device='cpu', channels=8)
        peaks.clear()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            out = pyramid_attention(query, keys, values, memory_budget_mb=budget, method=method)
            (out * grad_out).sum().backward()
        assert peaks
        panel = pa_cost.choose_panel_rows(chunk, h, w, sizes, images, dtype=dtype, memory_budget_mb=budget,
                                          method=method, device='cpu', channels=8)
        assert max(peaks) <= estimate_chunk_bytes(chunk, h, w, sizes, images, dtype=dtype, method=method,
                                                  channels=8, panel_rows=panel)
        if chunk > 1:
            assert max(peaks) <= budget * 2**20


# ------------------------------------------------------------------ torch.compile
class _Block(torch.nn.Module):
    """The registered block's structure (1x1 embeddings, bicubic pyramid, kernel, identity), torch only."""

    def __init__(self, channels: int = 8, reduction: int = 2, levels: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.query = torch.nn.Conv2d(channels, channels // reduction, 1)
        self.key = torch.nn.Conv2d(channels, channels // reduction, 1)
        self.value = torch.nn.Conv2d(channels, channels, 1)
        self.scales = pyramid_scales(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = build_pyramid(x, self.scales)
        return pyramid_attention(self.query(x), [self.key(t) for t in levels], [self.value(t) for t in levels],
                                 chunk_size=20) + x


def _compiled_equals_eager(backend: str, device: str = 'cpu') -> None:
    block = _Block().to(device)
    x = torch.randn(2, 8, 11, 13, generator=torch.Generator().manual_seed(1)).to(device).requires_grad_()
    eager = block(x)
    (g_eager,) = torch.autograd.grad(eager.square().sum(), x)
    compiled = torch.compile(block, backend=backend)(x)
    (g_compiled,) = torch.autograd.grad(compiled.square().sum(), x)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_compiled, g_eager, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_torch_compile_equals_eager():
    """Under torch.compile the kernel is a graph break (it stays eager) and the rest is traced: same result."""
    torch._dynamo.reset()
    _compiled_equals_eager('aot_eager')


@pytest.mark.slow
def test_torch_compile_inductor_equals_eager():
    """The default backend (inductor, C++ code generation on CPU: minutes on a busy 2-core machine)."""
    torch._dynamo.reset()
    _compiled_equals_eager('inductor')


# ------------------------------------------------------------------ CUDA (tools/device_check.sh runs these)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


def _on_cuda(inputs):
    query, keys, values, grad_out = inputs

    def leaf(t):
        return t.detach().cuda().requires_grad_()

    return leaf(query), [leaf(t) for t in keys], [leaf(t) for t in values], grad_out.cuda()


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize('method', METHODS + ['auto'])
def test_cuda_float32_matches_reference(method):
    dims = (2, 32, 64, 12, 13, 5)
    expected = output_and_grads(pyramid_attention_reference, *make_inputs(*dims, dtype=torch.float64))
    actual = output_and_grads(pyramid_attention, *_on_cuda(make_inputs(*dims, dtype=torch.float32)), chunk_size=30,
                              method=method)
    assert actual[0].device.type == 'cuda' and actual[0].dtype == torch.float32
    assert_close_scaled([t.cpu() for t in actual], expected, 1e-5)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize('half', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_cuda_half_autocast(half):
    inputs = make_inputs(2, 32, 64, 12, 13, 5, dtype=torch.float32)
    expected = output_and_grads(pyramid_attention_reference, *inputs)
    with torch.autocast('cuda', dtype=half):
        actual = output_and_grads(pyramid_attention, *_on_cuda(inputs))
    assert actual[0].dtype == torch.float32
    for i, (a, e) in enumerate(zip(actual, expected)):
        a = a.cpu()
        assert torch.isfinite(a).all(), i
        rel = ((a - e).abs().max() / e.abs().max()).item()
        assert rel < (0.03 if i == 0 else 0.1), (i, rel)


@pytest.mark.gpu
@needs_cuda
def test_cuda_chunk_loop_never_waits_for_the_host():
    """Forward and backward under torch.cuda's sync debug mode 'error': a host synchronisation raises."""
    query, keys, values, grad_out = _on_cuda(make_inputs(2, 8, 16, 20, 21, 5, dtype=torch.float32))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        out = pyramid_attention(query, keys, values, chunk_size=50)          # many chunks, padding rows in each
        grads = torch.autograd.grad((out * grad_out).sum(), [query, *keys, *values])
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.gpu
@needs_cuda
def test_cuda_budget_from_free_memory():
    free, _ = torch.cuda.mem_get_info()
    budget = pa_cost.default_memory_budget_mb('cuda')
    assert budget == pytest.approx(max(free / 4 / 2**20, 256.0), rel=0.1)
    assert pa_cost.default_memory_budget_mb('cpu') == 256.0


@pytest.mark.parametrize('method', ['col', 'row', 'pixel', 'patch'])
@pytest.mark.parametrize('channels_last', [False, True])
def test_unfold_levels_copy_equals_unfold_and_cat(method, channels_last):
    """The inference path (patches copied from window views into one buffer) builds exactly the tensor of the
    autograd path (``F.unfold`` of each padded level, concatenated)."""
    from panet_mm.ops.kernel import _unfold_levels
    from panet_mm.ops.layout import FORMULATIONS
    spec = FORMULATIONS[method]
    kernel, pad = spec.kernel(3), spec.padding(1)
    g = torch.Generator().manual_seed(5)
    levels = [torch.randn(2, 3, h, w, generator=g) for h, w in [(7, 9), (6, 8), (5, 7)]]
    if channels_last:
        levels = [t.contiguous(memory_format=torch.channels_last) for t in levels]
    with torch.no_grad():
        copied = _unfold_levels(levels, kernel, pad)
    with_grad = _unfold_levels([t.detach().requires_grad_() for t in levels], kernel, pad)
    assert with_grad.requires_grad and torch.equal(copied, with_grad.detach())
    assert copied.shape == (2, sum((h + 2 * pad[0]) * (w + 2 * pad[1]) for h, w in [(7, 9), (6, 8), (5, 7)]),
                            3 * kernel[0] * kernel[1])
