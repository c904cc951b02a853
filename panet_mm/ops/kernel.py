"""The chunked, memory-linear pyramid attention kernel (exact; custom recomputing backward).

Computes the function of :func:`panet_mm.ops.reference.pyramid_attention_reference` in chunks of
query pixels, on partly unfolded embeddings (see :mod:`panet_mm.ops.layout`), so that neither the
``(H*W) x L`` score map nor the ``L x k*k*C`` unfolded values are ever built.
"""
from __future__ import annotations

import warnings
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .chunks import (
    Gather,
    Paste,
    Workspace,
    accumulate_bmm,
    chunk_plan,
    probabilities,
    softmax_backward_rows,
)
from .cost import (
    choose_batch_chunk,
    choose_chunk_size,
    choose_method,
    choose_panel_rows,
    default_memory_budget_mb,
    estimate_chunk_bytes,
)
from .layout import FORMULATIONS, Geometry, make_geometry, resolve_method
from .pyramid import check_inputs
from .reference import pyramid_attention_reference

__all__ = ['pyramid_attention']


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
                batch_chunk: int, scale: float, panel_rows: int) -> Tensor:
        acc, cdt = inv_norm.dtype, q.dtype
        ws = Workspace(q.device)
        with torch.autocast(q.device.type, enabled=False):
            inv_scale = (inv_norm * scale).unsqueeze(1)
            bias = geo.key_bias(acc, q.device)
            plan = chunk_plan(geo, chunk_size, q.device)
            span = max(m for _, m, _ in plan)
            out = q.new_zeros((q.shape[0], q.shape[1], v.shape[2]), dtype=acc)
            for i in _batch_slices(q.shape[0], batch_chunk):
                qi, ki, vi, si = q[i], k[i], v[i], inv_scale[i]
                scores = Gather(ws, 'p', geo, qi, ki.transpose(1, 2), acc, span)
                paste = Paste(ws, 'a', geo, qi.shape[0], k.shape[1], acc, cdt, span)
                paste.begin(plan[0][0])
                for a, m, rows in plan:
                    probabilities(scores, paste.take(m), si, bias, a, rows)
                    _paste_into(out[i], paste.advance(), vi)
                _paste_into(out[i], paste.finish(), vi)
        ctx.save_for_backward(q, k, v, inv_norm)
        ctx.geo, ctx.chunk_size, ctx.batch_chunk, ctx.scale = geo, chunk_size, batch_chunk, scale
        ctx.panel_rows = panel_rows
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        q, k, v, inv_norm = ctx.saved_tensors
        need = ctx.needs_input_grad[:4]
        acc = inv_norm.dtype
        grads = [torch.zeros_like(t, dtype=acc) if n else None for t, n in zip((q, k, v, inv_norm), need)]
        with torch.autocast(q.device.type, enabled=False):
            _Backward(ctx.geo, ctx.scale, inv_norm, q.device).run(q, k, v, grad_out.to(q.dtype), grads,
                                                                  ctx.chunk_size, ctx.batch_chunk, ctx.panel_rows)
        grad_q, grad_k, grad_v, grad_n = grads
        return (_cast(grad_q, q.dtype), _cast(grad_k, k.dtype), _cast(grad_v, v.dtype), grad_n,
                None, None, None, None, None)


def _paste_into(out: Tensor, pasted: Tuple[int, Tensor], values: Tensor) -> None:
    """``out[:, lo:lo+n] += rows @ values`` for the scattered ``(lo, rows)`` of a :class:`Paste`."""
    lo, rows = pasted
    if rows.shape[1]:
        accumulate_bmm(out[:, lo:lo + rows.shape[1]], rows, values)


class _Backward:
    """The recomputing backward of :class:`_ChunkedAttention`, one group of images at a time."""

    def __init__(self, geo: Geometry, scale: float, inv_norm: Tensor, device: torch.device):
        self.geo, self.scale, self.ws = geo, scale, Workspace(device)
        self.inv_scale = (inv_norm * scale).unsqueeze(1)
        self.bias = geo.key_bias(inv_norm.dtype, device)
        self.acc = inv_norm.dtype
        self.flush = device.type == 'cpu'

    def run(self, q: Tensor, k: Tensor, v: Tensor, grad_out: Tensor, grads: List[Optional[Tensor]],
            chunk_size: int, batch_chunk: int, panel_rows: int) -> None:
        """Accumulate ``grads`` (``[q, k, v, inv_norm]``, None where not needed) over every chunk."""
        plan = chunk_plan(self.geo, chunk_size, q.device)
        span = max(m for _, m, _ in plan)
        ws, geo, acc, cdt = self.ws, self.geo, self.acc, q.dtype
        for i in _batch_slices(q.shape[0], batch_chunk):
            gq, gk, gv, gn = (None if g is None else g[i] for g in grads)
            qi, ki, vi, gi = q[i], k[i], v[i], grad_out[i]
            b, n_keys = qi.shape[0], ki.shape[1]
            scores = Gather(ws, 'p', geo, qi, ki.transpose(1, 2), acc, span)
            # the probabilities' paste for d values, dZ's for d query / d keys (none needed: no dZ at all)
            needs_dz = gq is not None or gk is not None or gn is not None
            grad_attn = Gather(ws, 'g', geo, gi, vi.transpose(1, 2), acc, span) if needs_dz else None
            pastes = [Paste(ws, name, geo, b, n_keys, acc, cdt, span) for name in ('a', 'z')[:1 + needs_dz]]
            for paste in pastes:
                paste.begin(plan[0][0])
            # d keys accumulated transposed, (B, Dq, L'): its products' result is then wide instead of
            # Dq (narrow by design) columns wide (CPU, 2 threads: 130-144 instead of 68-97 GFLOP/s)
            gk_t = None if gk is None else torch.zeros(b, ki.shape[2], n_keys, dtype=acc, device=ki.device)
            panels = _Panels(ws, pastes, panel_rows,
                             lambda pasted, t=(qi, ki, gi), g=(gq, gk_t, gv): self.paste_grads(t, g, pasted))
            for a, m, rows in plan:
                self.chunk((qi, ki, vi, self.inv_scale[i], gi), gn, scores, grad_attn, pastes, a, m, rows)
                panels.add()
            for paste in pastes:
                paste.close()
            panels.add()
            panels.flush()
            if gk is not None:
                gk += gk_t.transpose(1, 2)

    def paste_grads(self, t: Tuple[Tensor, ...], grads: Tuple[Optional[Tensor], ...],
                    pasted: List[Tuple[int, Tensor]]) -> None:
        """The gradients of the products with the scattered probabilities and dZ rows ``(lo, rows)``
        (``grads``: d query, d keys *transposed*, d values)."""
        qi, ki, gi = t
        gq, gk_t, gv = grads
        lo, rows = pasted[0]
        n = rows.shape[1]
        if gv is not None and n:
            accumulate_bmm(gv, rows.transpose(1, 2), gi[:, lo:lo + n])
        if len(pasted) < 2:
            return
        lo, rows = pasted[1]
        n = rows.shape[1]
        if n and gq is not None:
            accumulate_bmm(gq[:, lo:lo + n], rows, ki)
        if n and gk_t is not None:
            accumulate_bmm(gk_t, qi[:, lo:lo + n].transpose(1, 2), rows)

    def chunk(self, t: Tuple[Tensor, ...], gn: Optional[Tensor], scores: Gather, grad_attn: Optional[Gather],
              pastes: List[Paste], a: int, m: int, rows: Optional[Tensor]) -> None:
        """One chunk's probabilities and dZ, written into the pastes (``gn``: d inv_norm, accumulated here)."""
        qi, ki, vi, si, gi = t
        ws, acc = self.ws, self.acc
        b, n_keys = qi.shape[0], ki.shape[1]
        raw = None if gn is None else ws.get('raw', (b, m, n_keys), acc)   # raw scores: for d inv_norm only
        # on CPU without denormals: the products that read them ran 2-5x slower (chunks.flush_denormals)
        attn = probabilities(scores, pastes[0].take(m), si, self.bias, a, rows, raw, self.flush)
        if grad_attn is None:                            # d values only
            return
        # d loss / d attn is the gather of (grad_out rows @ v^T), the adjoint of the paste; then the softmax
        # backward, into the dZ paste
        raw_dz = softmax_backward_rows(grad_attn, attn, si, a, pastes[1].take(m), raw, self.flush)
        if gn is not None:                               # logits = raw * inv_norm * scale + bias
            weights = ws.get('ones', (b, 1, m), acc).fill_(self.scale)
            gn += torch.bmm(weights, raw_dz).squeeze(1)  # sum over the chunk's rows


class _Panels:
    """The pasted rows (probabilities, dZ) of consecutive chunks, collected before their products.

    Two of the backward's products sum over query rows (d values ``+= P'^T @ grad_out rows``, d keys
    ``+= dZ'^T @ query rows``): a chunk's rows are their inner dimension. On CPU a ``(L' x 100) @
    (100 x 192)`` product ran at about 60% of the rate of one with 400 inner rows (README, benchmark
    section), so on CPU the rows of a few chunks are gathered into one panel of ``rows`` rows (sized
    from the memory budget by :func:`~.cost.choose_panel_rows`) and multiplied once.
    """

    def __init__(self, ws: Workspace, pastes: List[Paste], rows: int, products):
        self.pastes, self.products, self.capacity = pastes, products, rows
        batch, n_keys = pastes[0].shape
        self.buffers = [ws.get(f'{p.name}_panel', (batch, rows, n_keys), p.acc) for p in pastes]
        self.lo = self.fill = 0

    def add(self) -> None:
        """Paste the rows the last chunk completed into the panel (its products first when it is full)."""
        n = self.pastes[0].pending()
        if self.fill + n > self.capacity:
            self.flush()
        # rows that do not fit an empty panel (one paste's rows, or fewer; the last rows, with the halo,
        # can be more): multiplied directly
        if n > self.capacity:
            self.products([p.advance() for p in self.pastes])
            return
        for paste, buf in zip(self.pastes, self.buffers):
            lo, _ = paste.advance(into=buf[:, self.fill:self.fill + n])
        if self.fill == 0:
            self.lo = lo
        self.fill += n

    def flush(self) -> None:
        """The products of the collected rows."""
        if self.fill:
            self.products([(self.lo, p.cast(buf[:, :self.fill])) for p, buf in zip(self.pastes, self.buffers)])
        self.fill = 0


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


def _unfold_levels(levels: Sequence[Tensor], kernel: Tuple[int, int], pad: Tuple[int, int] = (0, 0)) -> Tensor:
    """``(B, sum of (H_l+2*pad_y)*(W_l+2*pad_x), C*kh*kw)``: :func:`_unfold` of every level, concatenated.

    Where no gradient is needed, each level's patches are copied from a window view straight into one buffer:
    3x faster on CPU than ``F.unfold`` and ``cat`` (PA-EDSR-sized values at 64x64: 1.0 vs 3.2 ms). Where one
    is, ``F.unfold`` and ``cat``: their backward is faster than the window view's (forward and backward 9.2 vs
    12.5 ms).
    """
    if torch.is_grad_enabled() and any(t.requires_grad for t in levels):
        return torch.cat([_unfold(t, kernel, pad) for t in levels], dim=1)
    (kh, kw), (py, px) = kernel, pad
    b, c = levels[0].shape[:2]
    sizes = [(int(t.shape[-2]) + 2 * py, int(t.shape[-1]) + 2 * px) for t in levels]
    out = levels[0].new_empty(b, sum(h * w for h, w in sizes), c * kh * kw)
    start = 0
    for t, (h, w) in zip(levels, sizes):
        padded = F.pad(t, (px + kw // 2, px + kw // 2, py + kh // 2, py + kh // 2))
        windows = padded.unfold(2, kh, 1).unfold(3, kw, 1).permute(0, 2, 3, 1, 4, 5)    # (B, H', W', C, kh, kw)
        out[:, start:start + h * w].view(b, h, w, c, kh, kw).copy_(windows)
        start += h * w
    return out


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
    panel_rows: int


def _plan(query: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor], ksize: int, method: str,
          chunk_size: Optional[int], memory_budget_mb: Optional[float], batch_chunk: Optional[int]) -> _Plan:
    """Resolve ``'auto'`` and the default chunk sizes, validating the arguments."""
    b, h, w, _ = check_inputs(query, keys, values)
    if ksize % 2 != 1:
        raise ValueError(f'ksize must be odd, got {ksize}')
    # Python ints: under torch.jit.trace (mmengine's flop counter) sizes are 0-dim tensors.
    sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in keys]
    cdt = _compute_dtype(query, *keys, *values)
    channels = max(int(query.shape[1]), int(values[0].shape[1]))
    # a call without autograd (inference) holds the forward's temporaries alone: larger chunks in the same budget
    backward = torch.is_grad_enabled() and any(t.requires_grad for t in (query, *keys, *values))
    # memory_budget_mb stays None until a chunk size is chosen: the choices below look the default up only
    # where they need it (not on CUDA, where it queries the device's free memory)
    if resolve_method(method) and method == 'auto':      # (validates the name)
        method = choose_method(h, w, sizes, int(query.shape[1]), int(values[0].shape[1]), ksize, cdt, query.device,
                               memory_budget_mb, backward)
    geo = make_geometry(h, w, sizes, ksize, method)
    if batch_chunk is None:
        batch_chunk = choose_batch_chunk(h, w, sizes, b, ksize, cdt, method, query.device, memory_budget_mb, channels,
                                         backward)
    if batch_chunk < 1:
        raise ValueError(f'batch_chunk must be >= 1, got {batch_chunk}')
    images = max(1, min(batch_chunk, b))     # an empty batch is planned as one image; no chunk runs
    if chunk_size is None:
        if memory_budget_mb is None:
            memory_budget_mb = default_memory_budget_mb(query.device)
        chunk_size = choose_chunk_size(h, w, sizes, images, ksize, cdt, memory_budget_mb, method, query.device,
                                       channels, backward)
        if chunk_size == 1:
            _warn_over_budget(h, w, sizes, images, ksize, cdt, memory_budget_mb, method, channels, backward)
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
    panel_rows = choose_panel_rows(chunk_size, h, w, sizes, images, ksize, cdt, memory_budget_mb, method,
                                   query.device, channels)
    acc = torch.float64 if cdt == torch.float64 else torch.float32
    return _Plan(method, geo, cdt, acc, batch_chunk, chunk_size, panel_rows)


def _warn_over_budget(h: int, w: int, sizes: Sequence[Tuple[int, int]], images: int, ksize: int,
                      dtype: torch.dtype, budget_mb: float, method: str, channels: int, backward: bool) -> None:
    """Warn where the budget cannot hold even a one-pixel chunk: the call then runs one-pixel chunks,
    slowly (7x slower than 'col' for PA-EDSR's block at 96x96) and over the budget anyway."""
    need = estimate_chunk_bytes(1, h, w, sizes, images, ksize, dtype, method, channels, backward=backward)
    if need <= budget_mb * 2**20:
        return
    if method != 'col' and estimate_chunk_bytes(w, h, w, sizes, 1, ksize, dtype, 'col', channels,
                                                backward=backward) <= budget_mb * 2**20:
        hint = "method='auto' keeps chunks of whole query rows within the budget there"
    else:
        hint = 'raise memory_budget_mb, or restore large images in tiles (tools/restore.py --tile 256)'
    warnings.warn(f'pyramid attention: method={method!r} on {images} x {h}x{w} needs {need / 2**20:.0f} MiB for even '
                  f'a one-pixel chunk, more than memory_budget_mb={budget_mb:g}, and runs one-pixel chunks, slowly; '
                  f'{hint}', stacklevel=6)   # the caller of pyramid_attention


def _fold_output(out: Tensor, geo: Geometry, kernel: Tuple[int, int]) -> Tensor:
    """``(B, Np, Dv)`` pasted columns in the padded layout -> ``(B, C, H, W)`` (overlaps summed)."""
    b, h, w = out.shape[0], geo.height, geo.width
    out = out.view(b, h + 2 * geo.pad_y, w + 2 * geo.pad_x, out.shape[-1])      # (the last size named: B may be 0)
    out = out[:, geo.pad_y:geo.pad_y + h, geo.pad_x:geo.pad_x + w]
    if kernel == (1, 1):
        return out.permute(0, 3, 1, 2)
    cols = out.reshape(b, h * w, out.shape[-1]).transpose(1, 2)
    return F.fold(cols, (h, w), kernel, padding=(kernel[0] // 2, kernel[1] // 2))


def exporting() -> bool:
    """Whether ``torch.export`` (``torch.onnx.export`` included) is tracing the caller.

    ``torch.compiler.is_exporting()`` where torch has it (2.14 here); on torch 2.5, which lacks it,
    the flags ``torch.export`` keeps for the duration of an export (private, read defensively: False
    where they are gone). ``torch.onnx.is_in_onnx_export()`` covers the TorchScript-based ONNX exporter.
    ``torch.jit.trace`` and ``torch.compile`` are not exports: False there.
    """
    if torch.onnx.is_in_onnx_export():
        return True
    is_exporting = getattr(torch.compiler, 'is_exporting', None)
    if is_exporting is not None:
        return bool(is_exporting())
    trace = getattr(torch.export, '_trace', None)
    return getattr(trace, '_EXPORT_FLAGS', None) is not None


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
    ``torch.compile`` the kernel stays eager (its chunk loop would be unrolled).

    While exporting (:func:`exporting`: ``torch.export``, ``torch.onnx.export``) it computes
    :func:`pyramid_attention_reference` instead, the same function in plain tensor operations (quadratic
    memory: the ``(H*W) x L`` score map), as the chunked kernel (an autograd Function, a Python chunk
    loop sized from the shapes, a compiled CPU step) cannot be traced into a graph; ``chunk_size``,
    ``memory_budget_mb``, ``method`` and ``batch_chunk`` do not apply there. ``torch.jit.trace`` records the
    kernel as one ``prim::PythonOp`` node (what mmengine's flop counter counts): such a trace runs, but
    ``torch.jit.save`` refuses it; trace the reference for a savable TorchScript module.

    Args:
        query (Tensor): ``(B, Cq, H, W)`` query embedding of the block input.
        keys (Sequence[Tensor]): ``(B, Cq, H_l, W_l)`` key embedding of every pyramid level.
        values (Sequence[Tensor]): ``(B, C, H_l, W_l)`` value embedding of every pyramid level.
        ksize (int): Patch size (odd). Default: 3.
        softmax_scale (float): Multiplier of the scores before the softmax. Default: 10.
        eps (float): Lower bound of a key patch's norm. Default: 1e-4.
        divisor (float): The pasted patches are divided by this (4 in the released code). Default: 4.
        chunk_size (int, optional): Query pixels per chunk. Default: :func:`choose_chunk_size`.
        memory_budget_mb (float, optional): Budget for one chunk's temporaries in MiB when
            ``chunk_size`` is None. Default: :func:`default_memory_budget_mb`.
        method (str): ``'auto'`` (:func:`choose_method`), ``'col'``, ``'row'``, ``'pixel'`` or ``'patch'``.
        batch_chunk (int, optional): Images processed together. Default: :func:`choose_batch_chunk`.

    Returns:
        Tensor: ``(B, C, H, W)``, the attention branch (the block adds ``res_scale * x``).
    """
    if exporting():
        out = pyramid_attention_reference(query, keys, values, ksize, softmax_scale, eps, divisor)
        return out.to(query.dtype)
    return _chunked(query, keys, values, ksize, softmax_scale, eps, divisor, chunk_size, memory_budget_mb, method,
                    batch_chunk)


@torch.compiler.disable
def _chunked(query: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor], ksize: int, softmax_scale: float,
             eps: float, divisor: float, chunk_size: Optional[int], memory_budget_mb: Optional[float], method: str,
             batch_chunk: Optional[int]) -> Tensor:
    """:func:`pyramid_attention` by the chunked kernel (eager: a graph break under ``torch.compile``)."""
    plan = _plan(query, keys, values, ksize, method, chunk_size, memory_budget_mb, batch_chunk)
    geo, cdt = plan.geo, plan.compute_dtype
    pad = (geo.pad_y, geo.pad_x)
    kernel = FORMULATIONS[plan.method].kernel(ksize)
    with torch.autocast(query.device.type, enabled=False):
        q = _unfold_levels([query.to(cdt)], kernel, pad)
        k = _unfold_levels([t.to(cdt) for t in keys], kernel, pad)
        v = _unfold_levels([t.to(cdt) for t in values], kernel, pad)
        inv_norm = _key_inverse_norms(keys, ksize, eps, plan.acc_dtype, pad)
        out = _ChunkedAttention.apply(q, k, v, inv_norm, geo, plan.chunk_size, plan.batch_chunk,
                                      float(softmax_scale), plan.panel_rows)
        return (_fold_output(out, geo, kernel) / divisor).to(query.dtype).contiguous(memory_format=_layout(query))


def _layout(x: Tensor) -> torch.memory_format:
    """The memory format of the output: channels-last for a channels-last ``x`` (a network run in that
    format, its convolutions' fast layout on CPU, would otherwise get an NCHW tensor back, and every
    later convolution would convert it), else contiguous."""
    if x.dim() == 4 and x.shape[1] > 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
