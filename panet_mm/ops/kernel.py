"""The chunked, memory-linear pyramid attention kernel (exact; custom recomputing backward).

Computes the function of :func:`panet_mm.ops.reference.pyramid_attention_reference` in chunks of
query pixels, on partly unfolded embeddings (see :mod:`panet_mm.ops.layout`), so that neither the
``(H*W) x L`` score map nor the ``L x k*k*C`` unfolded values are ever built.
"""
from __future__ import annotations

import functools
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .cost import choose_batch_chunk, choose_chunk_size, choose_method, default_memory_budget_mb
from .layout import FORMULATIONS, Geometry, make_geometry, resolve_method
from .pyramid import check_inputs

__all__ = ['pyramid_attention']


@functools.lru_cache(maxsize=64)
def _shifts(geo: Geometry) -> List[Tuple[int, List[Tuple[int, int, int]]]]:
    """``geo.shifts()``, computed once per geometry (it is needed several times per chunk)."""
    return geo.shifts()


@functools.lru_cache(maxsize=64)
def _chunk_spans(geo: Geometry, chunk_size: int) -> Tuple[Tuple[Tuple[int, int], ...], Tuple[Tuple[int, ...], ...]]:
    """Every chunk's ``(a, m)`` and the chunk-relative indices of its padding query rows."""
    spans = tuple(geo.chunks(chunk_size))
    return spans, tuple(tuple(geo.padding_rows(a, m)) for a, m in spans)


def _chunk_plan(geo: Geometry, chunk_size: int, device: torch.device) -> List[Tuple[int, int, Optional[Tensor]]]:
    """``(a, m, padding rows)`` of every chunk, the index tensors sent to ``device`` in one copy.

    Built before the chunk loop so that the loop itself never waits for the host (a CUDA copy from
    pageable memory would synchronise the stream once per chunk).
    """
    spans, rows = _chunk_spans(geo, chunk_size)
    if not any(rows):
        return [(a, m, None) for a, m in spans]
    flat = torch.tensor([i for r in rows for i in r], dtype=torch.long)
    if device.type == 'cuda':
        flat = flat.pin_memory().to(device, non_blocking=True)
    else:
        flat = flat.to(device)
    parts = torch.split(flat, [len(r) for r in rows])
    return [(a, m, part if len(r) else None) for (a, m), r, part in zip(spans, rows, parts)]


def _gather_diagonals(pix: Tensor, geo: Geometry, m: int, out: Tensor) -> Tensor:
    """Patch inner products from partial inner products: the diagonal-shift sum.

    ``pix`` is ``(B, m + 2*halo, L')``: row ``i`` belongs to padded query position ``a - halo + i``.
    Writes ``out[b, i, j] = sum_d pix[b, halo + i + d_q, j + d_k]`` over the summed offsets ``d``
    (``d_q``/``d_k``: ``d`` in the query/key layouts) into ``out`` ``(B, m, L')`` and returns it.
    """
    if geo.identity:
        return out if out is pix else out.copy_(pix)
    h0 = geo.halo
    shifts = _shifts(geo)
    centre = pix[:, h0:h0 + m]
    (oq, ranges), rest = shifts[0], shifts[1:]
    if len(ranges) == 1:            # the centre plus the first shift in one pass, the rest copied
        s, e, ok = ranges[0]
        torch.add(centre[:, :, s:e], pix[:, h0 + oq:h0 + oq + m, s + ok:e + ok], out=out[:, :, s:e])
        out[:, :, :s].copy_(centre[:, :, :s])
        out[:, :, e:].copy_(centre[:, :, e:])
    else:
        out.copy_(centre)
        rest = shifts
    for oq, ranges in rest:
        for s, e, ok in ranges:
            out[:, :, s:e] += pix[:, h0 + oq:h0 + oq + m, s + ok:e + ok]
    return out


def _scatter_diagonals(attn: Tensor, geo: Geometry, m: int, out: Tensor, scale: Optional[Tensor] = None) -> Tensor:
    """Adjoint of :func:`_gather_diagonals`: ``(B, m, L')`` into ``out`` ``(B, m + 2*halo, L')``.

    Row ``i'`` of the result holds, for every key position, its total weight in the paste at padded
    query position ``a - halo + i'``: ``scatter(A) @ v`` pastes ``A @ V_patches`` over the summed
    offsets. With ``scale`` (broadcastable to ``(B, 1, L')``) it scatters ``attn * scale`` instead
    (in the same passes; ``attn`` itself is left alone unless it is ``out``). ``out`` needs no
    initialisation.
    """
    if geo.identity:
        if scale is not None:
            return torch.mul(attn, scale, out=out)
        return out if out is attn else out.copy_(attn)
    h0 = geo.halo
    out[:, :h0].zero_()
    out[:, h0 + m:].zero_()
    if scale is None:
        out[:, h0:h0 + m].copy_(attn)
    else:
        torch.mul(attn, scale, out=out[:, h0:h0 + m])
    for oq, ranges in _shifts(geo):
        for s, e, ok in ranges:
            if scale is None:
                out[:, h0 + oq:h0 + oq + m, s + ok:e + ok] += attn[:, :, s:e]
            else:
                out[:, h0 + oq:h0 + oq + m, s + ok:e + ok].addcmul_(attn[:, :, s:e], scale[..., s:e])
    return out


class _Workspace:
    """Flat buffers reused by every chunk of one call (fresh large allocations page-fault on CPU)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.buffers: dict = {}

    def get(self, name: str, shape: Tuple[int, ...], dtype: torch.dtype) -> Tensor:
        numel = 1
        for s in shape:
            numel *= s
        buf = self.buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.numel() < numel:
            self.buffers.pop(name, None)
            buf = self.buffers[name] = torch.empty(numel, dtype=dtype, device=self.device)
        return buf[:numel].view(shape)


def _accumulate_bmm(ws: _Workspace, acc: Tensor, a: Tensor, b: Tensor) -> None:
    """``acc += a @ b`` (batched).

    In place (``baddbmm_``) when ``acc`` is contiguous and of the product's dtype; otherwise the
    product goes to a workspace buffer first: torch runs ``baddbmm_`` on a strided slice (a chunk's
    rows of every image) as one matrix product per image, which is slower on CPU.
    """
    if acc.dtype != a.dtype:        # mixed precision: the (linear-size) product in the compute dtype
        acc += torch.bmm(a, b)
    elif acc.is_contiguous():
        acc.baddbmm_(a, b)
    else:
        acc += torch.bmm(a, b, out=ws.get('mm', (a.shape[0], a.shape[1], b.shape[2]), a.dtype))


def _probabilities(ws: _Workspace, q: Tensor, k: Tensor, inv_scale: Tensor, bias: Optional[Tensor],
                   geo: Geometry, a: int, m: int, rows: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """Raw scores and softmax probabilities ``(B, m, L')`` of the chunk at padded positions ``a .. a+m-1``.

    Raw scores are the inner products with the *unnormalised* key patches; the logits are
    ``raw * inv_scale + bias``. Both results live in the workspace (``'raw'``, ``'attn'``). Padding
    keys (bias ``-inf``) and padding query rows (``rows``, chunk-relative) get probability 0.
    """
    b, h0, n_keys = q.shape[0], geo.halo, k.shape[1]
    acc = inv_scale.dtype
    raw = ws.get('raw', (b, m, n_keys), acc)
    pix = raw if geo.identity and q.dtype == acc else ws.get('pix', (b, m + 2 * h0, n_keys), q.dtype)
    torch.bmm(q[:, a - h0:a + m + h0], k.transpose(1, 2), out=pix)
    _gather_diagonals(pix, geo, m, raw)
    attn = ws.get('attn', (b, m, n_keys), acc)
    if bias is None:
        torch.mul(raw, inv_scale, out=attn)
    else:
        torch.addcmul(bias, raw, inv_scale, out=attn)
    torch.softmax(attn, dim=-1, out=attn)
    if rows is not None:
        attn.index_fill_(1, rows, 0)
    return raw, attn


def _scatter_for_matmul(ws: _Workspace, src: Tensor, geo: Geometry, m: int, dtype: torch.dtype,
                        scale: Optional[Tensor] = None) -> Tensor:
    """``scatter(src [* scale])`` in ``dtype``, ready for a matrix product (summed in ``src``'s dtype).

    May overwrite ``src`` (the patch formulation scales it in place).
    """
    shape = (src.shape[0], m + 2 * geo.halo, src.shape[2])
    if geo.identity:
        if scale is not None:
            src.mul_(scale)
        return src if src.dtype == dtype else ws.get('pix', shape, dtype).copy_(src)
    if src.dtype == dtype:
        return _scatter_diagonals(src, geo, m, ws.get('pix', shape, dtype), scale)
    summed = _scatter_diagonals(src, geo, m, ws.get('mix', shape, src.dtype), scale)
    return ws.get('pix', shape, dtype).copy_(summed)


def _cast(grad: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    return None if grad is None else grad.to(dtype)


class _ChunkedAttention(torch.autograd.Function):
    """Chunked attention on partly unfolded embeddings; backward recomputes each chunk's probabilities.

    Inputs (``Np``: positions of the padded query layout, ``L'``: padded key positions):

    * ``q``: ``(B, Np, Dq)`` padded query (compute dtype).
    * ``k``: ``(B, L', Dq)`` padded keys of all levels, *not* normalised (compute dtype).
    * ``v``: ``(B, L', Dv)`` padded values of all levels (compute dtype).
    * ``inv_norm``: ``(B, L')`` ``1 / max(||key patch||, eps)``, 0 on padding keys (float32 or float64:
      the accumulation dtype).

    Output: ``(B, Np, Dv)`` in the accumulation dtype, to be folded by the caller.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, inv_norm: Tensor, geo: Geometry, chunk_size: int,
                batch_chunk: int, scale: float) -> Tensor:
        acc, cdt, h0 = inv_norm.dtype, q.dtype, geo.halo
        ws = _Workspace(q.device)
        with torch.autocast(q.device.type, enabled=False):
            inv_scale = (inv_norm * scale).unsqueeze(1)
            bias = geo.key_bias(acc, q.device)
            plan = _chunk_plan(geo, chunk_size, q.device)
            out = q.new_zeros((q.shape[0], q.shape[1], v.shape[2]), dtype=acc)
            for i in _batch_slices(q.shape[0], batch_chunk):
                qi, ki, vi, si = q[i], k[i], v[i], inv_scale[i]
                for a, m, rows in plan:
                    attn = _probabilities(ws, qi, ki, si, bias, geo, a, m, rows)[1]
                    _accumulate_bmm(ws, out[i, a - h0:a + m + h0], _scatter_for_matmul(ws, attn, geo, m, cdt), vi)
        ctx.save_for_backward(q, k, v, inv_norm)
        ctx.geo, ctx.chunk_size, ctx.batch_chunk, ctx.scale = geo, chunk_size, batch_chunk, scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        q, k, v, inv_norm = ctx.saved_tensors
        geo, chunk_size, scale = ctx.geo, ctx.chunk_size, ctx.scale
        need_q, need_k, need_v, need_n = ctx.needs_input_grad[:4]
        acc, cdt, h0 = inv_norm.dtype, q.dtype, geo.halo
        n_keys = k.shape[1]
        grad_q = torch.zeros_like(q, dtype=acc) if need_q else None
        grad_k = torch.zeros_like(k, dtype=acc) if need_k else None
        grad_v = torch.zeros_like(v, dtype=acc) if need_v else None
        grad_n = torch.zeros_like(inv_norm) if need_n else None
        ws = _Workspace(q.device)
        with torch.autocast(q.device.type, enabled=False):
            grad_out = grad_out.to(cdt)
            inv_scale = (inv_norm * scale).unsqueeze(1)
            bias = geo.key_bias(acc, q.device)
            plan = _chunk_plan(geo, chunk_size, q.device)
            for i in _batch_slices(q.shape[0], ctx.batch_chunk):
                qi, ki, vi, si, gi = q[i], k[i], v[i], inv_scale[i], grad_out[i]
                b = qi.shape[0]
                for a, m, rows in plan:
                    lo, hi = a - h0, a + m + h0
                    raw, attn = _probabilities(ws, qi, ki, si, bias, geo, a, m, rows)
                    g_rows = gi[:, lo:hi]
                    if need_v:
                        _accumulate_bmm(ws, grad_v[i], _scatter_for_matmul(ws, attn, geo, m, cdt).transpose(1, 2),
                                        g_rows)
                    if not (need_q or need_k or need_n):
                        continue
                    # d loss / d attn: gather of (grad_out rows @ v^T), the adjoint of the paste.
                    grad = ws.get('grad', (b, m, n_keys), acc)
                    pix = grad if geo.identity and cdt == acc else ws.get('pix', (b, m + 2 * h0, n_keys), cdt)
                    torch.bmm(g_rows, vi.transpose(1, 2), out=pix)
                    _gather_diagonals(pix, geo, m, grad)
                    # softmax backward, one fused pass: dZ = A * (dA - sum_j(A * dA))
                    dz = ws.get('dz', (b, m, n_keys), acc)
                    torch.ops.aten._softmax_backward_data.out(grad, attn, -1, acc, grad_input=dz)
                    if need_n:                               # logits = raw * inv_norm * scale + bias
                        weights = ws.get('ones', (b, 1, m), acc).fill_(scale)
                        grad_n[i] += torch.bmm(weights, raw.mul_(dz)).squeeze(1)   # sum over the chunk's rows
                    if need_q or need_k:                     # d loss / d raw = dZ * inv_norm * scale
                        grad_pix = _scatter_for_matmul(ws, dz, geo, m, cdt, si)
                        if need_q:
                            _accumulate_bmm(ws, grad_q[i, lo:hi], grad_pix, ki)
                        if need_k:
                            _accumulate_bmm(ws, grad_k[i], grad_pix.transpose(1, 2), qi[:, lo:hi])
        return (_cast(grad_q, q.dtype), _cast(grad_k, k.dtype), _cast(grad_v, v.dtype), grad_n,
                None, None, None, None)


def _batch_slices(batch: int, batch_chunk: int) -> Iterator[slice]:
    for b0 in range(0, batch, batch_chunk):
        yield slice(b0, min(b0 + batch_chunk, batch))


def _key_inverse_norms(keys: Sequence[Tensor], ksize: int, eps: float, dtype: torch.dtype,
                       pad: Tuple[int, int] = (0, 0)) -> Tensor:
    """``(B, L')``: ``1 / max(||key patch||_2, eps)`` of every patch of every level, 0 on the padding.

    The squared patch norms are box sums of squared pixel norms. ``max(sqrt(s), eps)`` is computed as
    ``sqrt(max(s, eps**2))``: the same value, but an all-zero key patch gets a zero gradient instead
    of the NaN of ``sqrt`` at 0.
    """
    out, r = [], ksize // 2
    for t in keys:
        sq = F.pad(t.to(dtype).pow(2).sum(dim=1), (r, r, r, r))                # (B, H+2r, W+2r)
        h, w = t.shape[-2:]
        rows = sum(sq[:, dy:dy + h] for dy in range(ksize))                       # box sum, separably
        patch_sq = sum(rows[:, :, dx:dx + w] for dx in range(ksize))
        inv = patch_sq.clamp_min(eps * eps).rsqrt().unsqueeze(1)
        if pad != (0, 0):
            inv = F.pad(inv, (pad[1], pad[1], pad[0], pad[0]))
        out.append(inv.flatten(1))
    return torch.cat(out, dim=1)


def _unfold(x: Tensor, kernel: Tuple[int, int], pad: Tuple[int, int] = (0, 0)) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, (H+2*pad_y)*(W+2*pad_x), C*kh*kw)``: zero padding, then same-size patches."""
    if pad != (0, 0):
        x = F.pad(x, (pad[1], pad[1], pad[0], pad[0]))
    if kernel == (1, 1):
        return x.flatten(2).transpose(1, 2)
    return F.unfold(x, kernel, padding=(kernel[0] // 2, kernel[1] // 2)).transpose(1, 2)



def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype the matrix products run in: autocast's when it is on, else the inputs' common dtype."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    device_type = tensors[0].device.type
    if dtype == torch.float64:
        return dtype
    try:                                # torch >= 2.4
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # older torch: per-device functions
        if device_type == 'cuda' and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
        if device_type == 'cpu' and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
    return dtype


class _Plan(NamedTuple):
    """How one call runs: formulation, layout, dtypes, chunk sizes."""

    method: str
    geo: Geometry
    compute_dtype: torch.dtype
    acc_dtype: torch.dtype
    batch_chunk: int
    chunk_size: int


def _plan(query: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor], ksize: int, method: str,
          chunk_size: Optional[int], memory_budget_mb: Optional[float], batch_chunk: Optional[int]) -> _Plan:
    """Resolve ``'auto'`` and the default chunk sizes, validating the arguments."""
    b, h, w, _ = check_inputs(query, keys, values)
    if ksize % 2 != 1:
        raise ValueError(f'ksize must be odd, got {ksize}')
    # Python ints: under torch.jit.trace (mmengine's flop counter) sizes are 0-dim tensors.
    sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in keys]
    cdt = _compute_dtype(query, *keys, *values)
    if resolve_method(method) and method == 'auto':      # (validates the name)
        method = choose_method(h, w, sizes, int(query.shape[1]), int(values[0].shape[1]), ksize, cdt, query.device)
    geo = make_geometry(h, w, sizes, ksize, method)
    if batch_chunk is None:
        batch_chunk = choose_batch_chunk(h, w, sizes, b, ksize, cdt, method, query.device)
    if batch_chunk < 1:
        raise ValueError(f'batch_chunk must be >= 1, got {batch_chunk}')
    if chunk_size is None:
        if memory_budget_mb is None:
            memory_budget_mb = default_memory_budget_mb(query.device)
        channels = max(query.shape[1], values[0].shape[1])
        chunk_size = choose_chunk_size(h, w, sizes, min(batch_chunk, b), ksize, cdt, memory_budget_mb, method,
                                       query.device, channels)
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
    acc = torch.float64 if cdt == torch.float64 else torch.float32
    return _Plan(method, geo, cdt, acc, batch_chunk, chunk_size)


def _fold_output(out: Tensor, geo: Geometry, kernel: Tuple[int, int]) -> Tensor:
    """``(B, Np, Dv)`` pasted columns in the padded layout -> ``(B, C, H, W)`` (overlaps summed)."""
    b, h, w = out.shape[0], geo.height, geo.width
    out = out.view(b, h + 2 * geo.pad_y, w + 2 * geo.pad_x, -1)[:, geo.pad_y:geo.pad_y + h, geo.pad_x:geo.pad_x + w]
    if kernel == (1, 1):
        return out.permute(0, 3, 1, 2)
    return F.fold(out.reshape(b, h * w, -1).transpose(1, 2), (h, w), kernel, padding=(kernel[0] // 2, kernel[1] // 2))


@torch.compiler.disable
def pyramid_attention(query: Tensor,
                      keys: Sequence[Tensor],
                      values: Sequence[Tensor],
                      ksize: int = 3,
                      softmax_scale: float = 10.0,
                      eps: float = 1e-4,
                      divisor: float = 4.0,
                      chunk_size: Optional[int] = None,
                      memory_budget_mb: Optional[float] = None,
                      method: str = 'auto',
                      batch_chunk: Optional[int] = None) -> Tensor:
    """Pyramid attention, exact, with memory linear in the number of pixels.

    The function of :func:`pyramid_attention_reference` (up to rounding), computed in chunks of
    query pixels so that the ``(H*W) x L`` score map is never built, with a backward that recomputes
    each chunk instead of storing it, on partly unfolded embeddings (``method``, see
    :mod:`panet_mm.ops.layout`: ``'col'`` needs 3x fewer multiply-adds than unfolded patches). The
    softmax and the accumulations run in float32 (float64 for float64 inputs), the matrix products
    in autocast's dtype when it is on; the result has the dtype of ``query``. Under
    ``torch.compile`` this function stays eager (its chunk loop would be unrolled).

    Args:
        query (Tensor): ``(B, Cq, H, W)`` query embedding of the block input.
        keys (Sequence[Tensor]): ``(B, Cq, H_l, W_l)`` key embedding of every pyramid level.
        values (Sequence[Tensor]): ``(B, C, H_l, W_l)`` value embedding of every pyramid level.
        ksize (int): Odd patch size. Default: 3.
        softmax_scale (float): Multiplier of the scores before the softmax. Default: 10.
        eps (float): Lower bound of a key patch's norm. Default: 1e-4.
        divisor (float): The pasted patches are divided by this (4 in the released code).
        chunk_size (int, optional): Query pixels per chunk. Default: :func:`choose_chunk_size`.
        memory_budget_mb (float, optional): Budget for one chunk's temporaries in MiB when
            ``chunk_size`` is None. Default: :func:`default_memory_budget_mb`.
        method (str): ``'auto'`` (:func:`choose_method`), ``'col'``, ``'row'``, ``'pixel'`` or ``'patch'``.
        batch_chunk (int, optional): Images processed together. Default: :func:`choose_batch_chunk`.

    Returns:
        Tensor: ``(B, C, H, W)``, the attention branch (the block adds ``res_scale * x``).
    """
    plan = _plan(query, keys, values, ksize, method, chunk_size, memory_budget_mb, batch_chunk)
    geo, cdt = plan.geo, plan.compute_dtype
    pad = (geo.pad_y, geo.pad_x)
    kernel = FORMULATIONS[plan.method].kernel(ksize)
    with torch.autocast(query.device.type, enabled=False):
        q = _unfold(query.to(cdt), kernel, pad)
        k = torch.cat([_unfold(t.to(cdt), kernel, pad) for t in keys], dim=1)
        v = torch.cat([_unfold(t.to(cdt), kernel, pad) for t in values], dim=1)
        inv_norm = _key_inverse_norms(keys, ksize, eps, plan.acc_dtype, pad)
        out = _ChunkedAttention.apply(q, k, v, inv_norm, geo, plan.chunk_size, plan.batch_chunk,
                                      float(softmax_scale))
        return (_fold_output(out, geo, kernel) / divisor).to(query.dtype).contiguous()
