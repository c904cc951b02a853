"""Pyramid attention maths, in plain torch (no mmagic / mmengine import).

This file is deliberately importable with torch alone, so that the kernel can be tested and
benchmarked on a machine that has no OpenMMLab stack (``tools/benchmark_attention.py`` loads it by
path). The registered ``nn.Module`` lives in ``panet_mm/models/layers/pyramid_attention.py``.

Notation (one image; everything is batched over ``B``):

* ``query``  ``q``: ``(B, Cq, H, W)``, the embedded block input (theta(x)).
* ``keys``   ``k_l``: ``(B, Cq, H_l, W_l)``, one per pyramid level (g(x_l)).
* ``values`` ``v_l``: ``(B, C, H_l, W_l)``, one per pyramid level (f(x_l)).

With ``P(t)`` the 3x3 zero-padded patch of ``t`` around a pixel, flattened in ``(c, dy, dx)`` order,
the released PANet computes::

    K_j   = P(k)_j / max(||P(k)_j||_2, eps)            # every patch j of every level
    S_pj  = <P(q)_p, K_j>                              # no normalisation of the query
    A_pj  = softmax_j(softmax_scale * S_pj)            # ONE softmax over all levels jointly
    O_p   = sum_j A_pj * P(v)_j                        # a C x 3 x 3 patch per query pixel p
    out   = fold(O) / divisor                          # overlapping pastes add up; divisor is 4

``pyramid_attention_reference`` is that formula written as directly as possible: it materialises
the full ``(H*W) x L`` score map (``L ~= 3.3*H*W``), so its memory is quadratic in pixels.

``pyramid_attention`` is the kernel the model uses: the same function, computed in chunks of query
pixels with a recomputing backward (memory linear in pixels) and on ``k x 1`` column embeddings
instead of ``k x k`` patches (3x fewer multiply-adds), using::

    <P(q)_p, P(k)_j>  = sum_dx <C(q)_{p+dx}, C(k)_{j+dx}>     # C(t): the k x 1 column of t around a pixel
    fold(A @ P(v))    = fold_kx1(A' @ C(v)),   A'_{p,j} = sum_dx A_{p-dx, j-dx}

``choose_chunk_size`` / ``estimate_chunk_bytes`` expose its memory model; ``tools/benchmark_attention.py``
compares the two implementations.
"""
from __future__ import annotations

import functools
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    'pyramid_scales',
    'build_pyramid',
    'extract_patches',
    'normalised_key_patches',
    'pyramid_attention_reference',
    'pyramid_attention',
    'choose_chunk_size',
    'choose_batch_chunk',
    'estimate_chunk_bytes',
    'attention_macs',
]


def pyramid_scales(levels: int, step: float = 0.1) -> List[float]:
    """Scales of the pyramid levels: ``1 - i*step`` for ``i`` in ``0..levels-1``.

    Args:
        levels (int): Number of levels (the paper uses 5: 1.0, 0.9, 0.8, 0.7, 0.6).
        step (float): Scale decrement between two levels. Default: 0.1.

    Returns:
        list[float]: The scale of every level, the first being 1.0.
    """
    if levels < 1:
        raise ValueError(f'levels must be >= 1, got {levels}')
    scales = [1.0 - i * step for i in range(levels)]
    if scales[-1] <= 0:
        raise ValueError(f'levels={levels} with step={step} gives a non-positive scale {scales[-1]:g}; '
                         'use fewer levels or a smaller step')
    return scales


def build_pyramid(x: Tensor, scales: Sequence[float]) -> List[Tensor]:
    """Bicubic pyramid of ``x`` as the released code builds it.

    Level ``i`` is ``F.interpolate(x, scale_factor=s_i, mode='bicubic', align_corners=False)``
    (``x`` itself for ``s_i == 1``), so its size is ``floor(s_i*H) x floor(s_i*W)``.

    Args:
        x (Tensor): Input of shape ``(B, C, H, W)``.
        scales (Sequence[float]): Scale of every level.

    Returns:
        list[Tensor]: One tensor per level.
    """
    levels = []
    for s in scales:
        if s == 1:
            levels.append(x)
        else:
            if min(int(x.shape[-2] * s), int(x.shape[-1] * s)) < 1:
                raise ValueError(f'input of size {tuple(x.shape[-2:])} is too small for a pyramid level at '
                                 f'scale {s:g}; use an input of at least {int(1 / s) + 1} pixels per side')
            levels.append(F.interpolate(x, scale_factor=s, mode='bicubic', align_corners=False))
    return levels


def extract_patches(x: Tensor, ksize: int = 3) -> Tensor:
    """All ``ksize x ksize`` patches with stride 1 and "same" zero padding.

    Args:
        x (Tensor): ``(B, C, H, W)``.
        ksize (int): Odd patch size. Default: 3.

    Returns:
        Tensor: ``(B, H*W, C*ksize*ksize)``, patches in row-major pixel order, each flattened in
        ``(c, dy, dx)`` order.
    """
    if ksize % 2 != 1:
        raise ValueError(f'ksize must be odd, got {ksize}')
    return F.unfold(x, ksize, padding=ksize // 2).transpose(1, 2)


def normalised_key_patches(keys: Sequence[Tensor], ksize: int = 3, eps: float = 1e-4) -> Tensor:
    """Key patches of every level, concatenated and divided by ``max(||patch||_2, eps)``.

    Args:
        keys (Sequence[Tensor]): One ``(B, Cq, H_l, W_l)`` tensor per level.
        ksize (int): Patch size. Default: 3.
        eps (float): Lower bound of the norm (the released ``escape_NaN``). Default: 1e-4.

    Returns:
        Tensor: ``(B, L, Cq*ksize*ksize)`` with ``L = sum_l H_l*W_l``.
    """
    k = torch.cat([extract_patches(t, ksize) for t in keys], dim=1)
    norm = k.pow(2).sum(dim=-1, keepdim=True).sqrt()
    return k / norm.clamp_min(eps)


def _check_inputs(query: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor]) -> Tuple[int, int, int, int]:
    if query.dim() != 4:
        raise ValueError(f'query must be (B, C, H, W), got shape {tuple(query.shape)}')
    if len(keys) == 0 or len(keys) != len(values):
        raise ValueError(f'need one key and one value map per level, got {len(keys)} keys and {len(values)} values')
    b, cq, h, w = (int(s) for s in query.shape)     # ints also under torch.jit.trace (sizes are tensors there)
    for i, (k, v) in enumerate(zip(keys, values)):
        if k.shape[0] != b or k.shape[1] != cq:
            raise ValueError(f'keys[{i}] has shape {tuple(k.shape)}, expected batch {b} and {cq} channels')
        if v.shape[0] != b or v.shape[-2:] != k.shape[-2:]:
            raise ValueError(f'values[{i}] has shape {tuple(v.shape)}, expected batch {b} and size '
                             f'{tuple(k.shape[-2:])} like keys[{i}]')
        if v.shape[1] != values[0].shape[1]:
            raise ValueError(f'values[{i}] has {v.shape[1]} channels, values[0] has {values[0].shape[1]}')
    return b, h, w, int(values[0].shape[1])


def pyramid_attention_reference(query: Tensor,
                                keys: Sequence[Tensor],
                                values: Sequence[Tensor],
                                ksize: int = 3,
                                softmax_scale: float = 10.0,
                                eps: float = 1e-4,
                                divisor: float = 4.0) -> Tensor:
    """Straightforward pyramid attention: the full score map, batched, autograd does the rest.

    This is the formulation of the released code (without its Python loop over the batch). It is
    kept as the reference the fast kernel is tested and benchmarked against; its memory is
    quadratic in the number of pixels.

    Args:
        query (Tensor): ``(B, Cq, H, W)`` query embedding of the block input.
        keys (Sequence[Tensor]): ``(B, Cq, H_l, W_l)`` key embedding of every pyramid level.
        values (Sequence[Tensor]): ``(B, C, H_l, W_l)`` value embedding of every pyramid level.
        ksize (int): Patch size. Default: 3.
        softmax_scale (float): Multiplier of the scores before the softmax. Default: 10.
        eps (float): Lower bound of a key patch's norm. Default: 1e-4.
        divisor (float): The pasted patches are divided by this (4 in the released code).

    Returns:
        Tensor: ``(B, C, H, W)``, the attention branch (the block adds ``res_scale * x``).
    """
    _, h, w, _ = _check_inputs(query, keys, values)
    q = extract_patches(query, ksize)                                  # (B, HW, Cq*k*k)
    k = normalised_key_patches(keys, ksize, eps)                       # (B, L, Cq*k*k)
    v = torch.cat([extract_patches(t, ksize) for t in values], dim=1)  # (B, L, C*k*k)
    scores = torch.bmm(q, k.transpose(1, 2))                           # (B, HW, L)
    attn = torch.softmax(scores * softmax_scale, dim=-1)
    patches = torch.bmm(attn, v)                                       # (B, HW, C*k*k)
    out = F.fold(patches.transpose(1, 2), (h, w), ksize, padding=ksize // 2)
    return out / divisor


# ---------------------------------------------------------------------------------------------
# Fast kernel
# ---------------------------------------------------------------------------------------------
class _Method(NamedTuple):
    """How much of the ``k x k`` patch is unfolded into the feature dimension.

    The offsets that are not unfolded are summed along diagonal shifts instead: the score of query
    ``p`` and key ``j`` is ``sum_d G[p + d, j + d]`` where ``G`` is the (narrower) inner product of
    the partly unfolded embeddings. The query and every key/value level are zero padded by the
    summed offsets' range, so that a shift never leaves a level.
    """

    unfold_y: bool      # unfold the patch rows (else: sum the k vertical offsets)
    unfold_x: bool      # unfold the patch columns (else: sum the k horizontal offsets)

    def padding(self, r: int) -> Tuple[int, int]:
        """Zero padding ``(pad_y, pad_x)`` of the query and of every key/value level."""
        return (0 if self.unfold_y else r), (0 if self.unfold_x else r)

    def kernel(self, ksize: int) -> Tuple[int, int]:
        """The unfolded part of the patch."""
        return (ksize if self.unfold_y else 1), (ksize if self.unfold_x else 1)

    def offsets(self, r: int) -> Tuple[Tuple[int, int], ...]:
        """The summed offsets ``(dy, dx)``, the centre first."""
        ys = [0] if self.unfold_y else range(-r, r + 1)
        xs = [0] if self.unfold_x else range(-r, r + 1)
        return tuple(sorted(((dy, dx) for dy in ys for dx in xs), key=lambda d: d != (0, 0)))


# Multiply-adds per (query, key) pair for a k x k patch, Cq query/key and C value channels:
#   'patch': k*k*(Cq + C), no shifted sums, no halo: the plain formulation, chunked.
#   'col':   k*(Cq + C), k-1 shifted additions per score and per paste; the halo is r positions,
#            and every summed shift moves all levels alike (one slice for all of them).
#   'row':   k*(Cq + C), k-1 shifted additions, a halo of r query rows.
#   'pixel': Cq + C, k*k-1 shifted additions (per level), a halo of r query rows.
_METHODS = {
    'col': _Method(unfold_y=True, unfold_x=False),
    'pixel': _Method(unfold_y=False, unfold_x=False),
    'row': _Method(unfold_y=False, unfold_x=True),
    'patch': _Method(unfold_y=True, unfold_x=True),
}


def _resolve_method(method: str) -> str:
    if method == 'auto':
        return 'col'
    if method not in _METHODS:
        raise ValueError(f"method must be 'auto' or one of {tuple(_METHODS)}, got {method!r}")
    return method


class _Geometry(NamedTuple):
    """Static layout of one call of the chunked kernel.

    The query lives in a zero-padded ``(H + 2*pad_y) x (W + 2*pad_x)`` layout, flattened row-major;
    every key/value level in a ``(H_l + 2*pad_y) x (W_l + 2*pad_x)`` one, the levels concatenated
    along the key axis (``L'`` positions, padding included).
    """

    height: int
    width: int
    pad_y: int
    pad_x: int
    offsets: Tuple[Tuple[int, int], ...]          # summed (dy, dx), the centre first
    level_sizes: Tuple[Tuple[int, int], ...]      # real (H_l, W_l) of every level

    @property
    def padded_width(self) -> int:
        return self.width + 2 * self.pad_x

    @property
    def halo(self) -> int:
        """Largest flat offset of a summed neighbour in the padded query layout."""
        return self.pad_y * self.padded_width + self.pad_x

    @property
    def identity(self) -> bool:
        """Nothing is summed (the patch formulation): gather and scatter are the identity."""
        return self.offsets == ((0, 0),)

    @property
    def padded_level_sizes(self) -> List[Tuple[int, int]]:
        return [(hl + 2 * self.pad_y, wl + 2 * self.pad_x) for hl, wl in self.level_sizes]

    @property
    def num_keys(self) -> int:
        """``L'``: key positions, padding included."""
        return sum(hp * wp for hp, wp in self.padded_level_sizes)

    def row_block_bytes(self, dtype: torch.dtype) -> int:
        """Bytes of one padded query row of one image's ``(rows, L')`` block in the accumulation dtype."""
        return self.padded_width * self.num_keys * (8 if dtype == torch.float64 else 4)

    def padded_index(self, pixel: int) -> int:
        """Flat index in the padded query layout of real pixel number ``pixel``."""
        y, x = divmod(pixel, self.width)
        return (y + self.pad_y) * self.padded_width + x + self.pad_x

    def chunks(self, chunk_size: int) -> Iterator[Tuple[int, int]]:
        """``(a, m)``: padded flat start and span of every chunk of ``chunk_size`` real query pixels."""
        total = self.height * self.width
        for p0 in range(0, total, chunk_size):
            p1 = min(p0 + chunk_size, total)
            a = self.padded_index(p0)
            yield a, self.padded_index(p1 - 1) + 1 - a

    def padding_rows(self, a: int, m: int) -> List[int]:
        """Chunk-relative indices of the padding positions among query positions ``a .. a+m-1``."""
        if self.pad_x == 0:
            return []
        wp, idx = self.padded_width, []
        for row in range(a // wp, (a + m - 1) // wp + 1):
            for col in [*range(self.pad_x), *range(self.pad_x + self.width, wp)]:
                if a <= row * wp + col < a + m:
                    idx.append(row * wp + col - a)
        return idx

    def shifts(self) -> List[Tuple[int, List[Tuple[int, int, int]]]]:
        """``(query offset, [(start, end, key offset)])`` of every summed offset but the centre.

        Key positions ``start <= j < end`` have their neighbour at ``j + key offset``; every real key is
        covered (the padding is wide enough), padding keys are masked out of the softmax anyway.
        """
        out = []
        total = self.num_keys
        for dy, dx in self.offsets[1:]:
            if dy == 0:                 # the same flat key offset in every level: one slice
                ranges = [(max(0, -dx), total - max(0, dx), dx)]
            else:
                ranges, off = [], 0
                for hp, wp in self.padded_level_sizes:
                    ok = dy * wp + dx
                    ranges.append((off + max(0, -ok), off + hp * wp - max(0, ok), ok))
                    off += hp * wp
            out.append((dy * self.padded_width + dx, ranges))
        return out

    def key_bias(self, dtype: torch.dtype, device: torch.device) -> Optional[Tensor]:
        """``(L',)``: 0 for real keys, ``-inf`` for padding keys (None when there is no padding)."""
        if self.pad_y == 0 and self.pad_x == 0:
            return None
        parts = []
        for (hl, wl), (hp, wp) in zip(self.level_sizes, self.padded_level_sizes):
            part = torch.full((hp, wp), float('-inf'), dtype=dtype, device=device)
            part[self.pad_y:self.pad_y + hl, self.pad_x:self.pad_x + wl] = 0
            parts.append(part.flatten())
        return torch.cat(parts)


@functools.lru_cache(maxsize=64)
def _shifts(geo: _Geometry) -> List[Tuple[int, List[Tuple[int, int, int]]]]:
    """``geo.shifts()``, computed once per geometry (it is needed several times per chunk)."""
    return geo.shifts()


@functools.lru_cache(maxsize=4096)
def _padding_rows(geo: _Geometry, a: int, m: int, device: torch.device) -> Optional[Tensor]:
    """``geo.padding_rows(a, m)`` as an index tensor on ``device`` (None when empty), once per chunk."""
    rows = geo.padding_rows(a, m)
    return torch.tensor(rows, device=device) if rows else None


def _gather_diagonals(pix: Tensor, geo: _Geometry, m: int, out: Tensor) -> Tensor:
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


def _scatter_diagonals(attn: Tensor, geo: _Geometry, m: int, out: Tensor, scale: Optional[Tensor] = None) -> Tensor:
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
    rows of every image) as one matrix product per image, measured 10-20% slower on CPU.
    """
    if acc.dtype != a.dtype:        # mixed precision: the (linear-size) product in the compute dtype
        acc += torch.bmm(a, b)
    elif acc.is_contiguous():
        acc.baddbmm_(a, b)
    else:
        acc += torch.bmm(a, b, out=ws.get('mm', (a.shape[0], a.shape[1], b.shape[2]), a.dtype))


def _probabilities(ws: _Workspace, q: Tensor, k: Tensor, inv_scale: Tensor, bias: Optional[Tensor],
                   geo: _Geometry, a: int, m: int) -> Tuple[Tensor, Tensor]:
    """Raw scores and softmax probabilities ``(B, m, L')`` of the chunk at padded positions ``a .. a+m-1``.

    Raw scores are the inner products with the *unnormalised* key patches; the logits are
    ``raw * inv_scale + bias``. Both results live in the workspace (``'raw'``, ``'attn'``). Padding
    keys (bias ``-inf``) and padding query rows get probability 0.
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
    rows = _padding_rows(geo, a, m, attn.device)
    if rows is not None:
        attn.index_fill_(1, rows, 0)
    return raw, attn


def _scatter_for_matmul(ws: _Workspace, src: Tensor, geo: _Geometry, m: int, dtype: torch.dtype,
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
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, inv_norm: Tensor, geo: _Geometry, chunk_size: int,
                batch_chunk: int, scale: float) -> Tensor:
        acc, cdt, h0 = inv_norm.dtype, q.dtype, geo.halo
        ws = _Workspace(q.device)
        with torch.autocast(q.device.type, enabled=False):
            inv_scale = (inv_norm * scale).unsqueeze(1)
            bias = geo.key_bias(acc, q.device)
            out = q.new_zeros((q.shape[0], q.shape[1], v.shape[2]), dtype=acc)
            for i in _batch_slices(q.shape[0], batch_chunk):
                qi, ki, vi, si = q[i], k[i], v[i], inv_scale[i]
                for a, m in geo.chunks(chunk_size):
                    attn = _probabilities(ws, qi, ki, si, bias, geo, a, m)[1]
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
            for i in _batch_slices(q.shape[0], ctx.batch_chunk):
                qi, ki, vi, si, gi = q[i], k[i], v[i], inv_scale[i], grad_out[i]
                b = qi.shape[0]
                for a, m in geo.chunks(chunk_size):
                    lo, hi = a - h0, a + m + h0
                    raw, attn = _probabilities(ws, qi, ki, si, bias, geo, a, m)
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


def _geometry(height: int, width: int, level_sizes: Sequence[Tuple[int, int]], ksize: int,
              method: str) -> _Geometry:
    spec = _METHODS[_resolve_method(method)]
    pad_y, pad_x = spec.padding(ksize // 2)
    return _Geometry(height, width, pad_y, pad_x, spec.offsets(ksize // 2),
                     tuple((int(h), int(w)) for h, w in level_sizes))


def estimate_chunk_bytes(chunk_size: int, height: int, width: int, level_sizes: Sequence[Tuple[int, int]],
                         batch: int = 1, ksize: int = 3, dtype: torch.dtype = torch.float32,
                         method: str = 'auto', channels: int = 0) -> int:
    """Peak bytes of the per-chunk temporaries of :func:`pyramid_attention` (forward or backward).

    A chunk of ``chunk_size`` query pixels spans ``m`` positions of the padded query layout (padding
    columns included) plus a halo on either side (see ``method``). Backward, the larger of the two
    passes, holds one ``(B, m + 2*halo, L')`` buffer in the compute dtype (plus one in the
    accumulation dtype when the compute dtype is narrower) and four ``(B, m, L')`` buffers in the
    accumulation dtype (float32; float64 for float64 inputs), ``L'`` being the number of key
    positions with their padding; with ``channels`` it also counts the ``(B, m + 2*halo, D)``
    matrix-product buffer (``D``: the unfolded width of ``channels``). Linear-size tensors (inputs,
    outputs, gradients) are not counted. ``B`` is the number of images processed together (see
    :func:`choose_batch_chunk`).

    Args:
        chunk_size (int): Query pixels per chunk.
        height (int): Query height ``H``.
        width (int): Query width ``W``.
        level_sizes (Sequence[tuple[int, int]]): ``(H_l, W_l)`` of every key/value level.
        batch (int): Images per chunk ``B``. Default: 1.
        ksize (int): Patch size. Default: 3.
        dtype (torch.dtype): Compute dtype (that of the inputs, or autocast's). Default: float32.
        method (str): Formulation, see :func:`pyramid_attention`. Default: ``'auto'``.
        channels (int): The larger of the query and value channel counts; 0 leaves the product
            buffer out (it is ``O(chunk * C)``, small next to the ``O(chunk * L)`` ones). Default: 0.

    Returns:
        int: Estimated bytes.
    """
    geo = _geometry(height, width, level_sizes, ksize, method)
    # a chunk crosses at most ceil((chunk_size - 1) / W) row ends, each adding 2*pad_x positions
    span = chunk_size + 2 * geo.pad_x * ((chunk_size + width - 2) // width)
    acc_bytes = 8 if dtype == torch.float64 else 4
    cdt_bytes = torch.empty((), dtype=dtype).element_size()
    window = 0 if geo.identity and cdt_bytes == acc_bytes else span + 2 * geo.halo
    window_bytes = window * (cdt_bytes + (acc_bytes if cdt_bytes != acc_bytes and not geo.identity else 0))
    kh, kw = _METHODS[_resolve_method(method)].kernel(ksize)
    product_bytes = (span + 2 * geo.halo) * channels * kh * kw * cdt_bytes + span * acc_bytes
    return batch * (geo.num_keys * (window_bytes + 4 * span * acc_bytes) + product_bytes)


def attention_macs(height: int, width: int, scales: Sequence[float], query_channels: int, value_channels: int,
                   ksize: int = 3) -> int:
    """Multiply-adds of the matrix products of one forward call of :func:`pyramid_attention` (one image).

    Every query pixel meets every patch of every level (``L = sum_l H_l*W_l``); with the default
    ``'col'`` formulation a (query, key) pair costs ``ksize * (Cq + C)`` multiply-adds (the plain
    formulation: ``ksize**2 * (Cq + C)``). The cost is quadratic in the number of pixels, which is what
    limits whole-image restoration of large photos (the backward of training costs about 2.3 times
    more).

    Args:
        height (int): Query height ``H``.
        width (int): Query width ``W``.
        scales (Sequence[float]): Scales of the pyramid levels (:func:`pyramid_scales`).
        query_channels (int): Query / key channels ``Cq``.
        value_channels (int): Value channels ``C``.
        ksize (int): Patch size. Default: 3.

    Returns:
        int: Multiply-adds.
    """
    keys = sum(int(height * s) * int(width * s) for s in scales)
    return height * width * keys * ksize * (query_channels + value_channels)


def choose_batch_chunk(height: int, width: int, level_sizes: Sequence[Tuple[int, int]], batch: int,
                       ksize: int = 3, dtype: torch.dtype = torch.float32, method: str = 'auto',
                       device: Union[str, torch.device, None] = None) -> int:
    """Images processed together per chunk: all of them, except on CPU.

    On CPU the per-chunk ``(images, chunk, L')`` blocks are kept near the cache-friendly size of
    :func:`choose_chunk_size` by taking fewer images at a time rather than thinner row chunks: at
    least ``torch.get_num_threads()`` images (the batched matrix products then run one image per
    thread, measured faster than splitting one product between threads) and a chunk of at least two
    rows. Measured on a 2-core CPU, forward+backward of batch 16 at 48x48: 2 images x 2 rows per
    chunk ran about 10% faster than 16 images x 2 rows, 3 images x 3 rows 25% slower than 2 x 3.

    Args:
        height (int): Query height ``H``.
        width (int): Query width ``W``.
        level_sizes (Sequence[tuple[int, int]]): ``(H_l, W_l)`` of every key/value level.
        batch (int): Batch size.
        ksize (int): Patch size. Default: 3.
        dtype (torch.dtype): Compute dtype. Default: float32.
        method (str): Formulation, see :func:`pyramid_attention`. Default: ``'auto'``.
        device (str | torch.device, optional): Where the kernel runs. Default: None (all images).

    Returns:
        int: Images per chunk, in ``[1, batch]``.
    """
    if device is None or torch.device(device).type != 'cpu' or batch <= 1:
        return max(batch, 1)
    geo = _geometry(height, width, level_sizes, ksize, method)
    row_block = geo.row_block_bytes(dtype)
    images = min(batch, max(torch.get_num_threads(), 1))
    rows = min(height, max(_CPU_BLOCK_BYTES // (images * row_block), _CPU_MIN_ROWS))
    more = _CPU_BLOCK_BYTES // (rows * row_block)
    if more >= batch:
        return batch
    return max(images, more - more % images)      # a multiple of the thread count (3 images on 2 threads: +25%)


def choose_chunk_size(height: int, width: int, level_sizes: Sequence[Tuple[int, int]], batch: int = 1,
                      ksize: int = 3, dtype: torch.dtype = torch.float32, memory_budget_mb: float = 256.0,
                      method: str = 'auto', device: Union[str, torch.device, None] = None,
                      channels: int = 0) -> int:
    """Largest number of query pixels per chunk whose temporaries fit ``memory_budget_mb``.

    Uses :func:`estimate_chunk_bytes`. Whole image rows are preferred; below one row the chunk is a
    number of pixels. The result is at least 1: a budget below ``estimate_chunk_bytes(1, ...)``
    (about ``24 * B * L`` bytes for ``'col'``) cannot be met and gives 1. For a CPU ``device`` the
    chunk is further capped, in whole rows, so that one ``(B, chunk, L)`` float block stays below
    8 MiB (faster: it stays in cache), unless a single row is already larger, but not below two
    rows (thin chunks make slow matrix products).

    Args:
        height (int): Query height ``H``.
        width (int): Query width ``W``.
        level_sizes (Sequence[tuple[int, int]]): ``(H_l, W_l)`` of every key/value level.
        batch (int): Batch size ``B``. Default: 1.
        ksize (int): Patch size. Default: 3.
        dtype (torch.dtype): Compute dtype (that of the inputs, or autocast's). Default: float32.
        memory_budget_mb (float): Budget for one chunk's temporaries, in MiB. Default: 256.
        method (str): Formulation, see :func:`pyramid_attention`. Default: ``'auto'``.
        device (str | torch.device, optional): Where the kernel runs; ``'cpu'`` applies the cache
            cap. Default: None (budget only).
        channels (int): Passed to :func:`estimate_chunk_bytes`. Default: 0.

    Returns:
        int: Query pixels per chunk, in ``[1, H*W]``.
    """
    budget = memory_budget_mb * 2**20
    total = height * width

    def fits(c: int) -> bool:
        return estimate_chunk_bytes(c, height, width, level_sizes, batch, ksize, dtype, method, channels) <= budget

    if fits(total):
        chunk = total
    else:
        lo, hi, unit = (1, height, width) if fits(width) else (1, width, 1)   # fits(lo*unit), not fits(hi*unit)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid * unit) else (lo, mid)
        chunk = lo * unit
    if device is not None and torch.device(device).type == 'cpu' and chunk > width:
        geo = _geometry(height, width, level_sizes, ksize, method)
        row_block = batch * geo.row_block_bytes(dtype)
        if row_block <= _CPU_BLOCK_BYTES:   # (larger rows are out of cache anyway: the budget decides)
            chunk = min(chunk, max(_CPU_BLOCK_BYTES // row_block, _CPU_MIN_ROWS) * width)
    return chunk


# On CPU the default chunk is capped (in whole rows, and in images: see choose_batch_chunk) so that
# one (images, chunk, L') float block stays below this size. Measured on a 2-core CPU: at 64x64,
# batch 1, smaller blocks run the shifted sums and the softmax in cache (2-4 row chunks were fastest
# on an idle machine, 16 rows ~15% slower); forward+backward at batch 16, 48x48: 2 images x 2 rows
# (6 MB) 5.47 s, x 3 rows 5.55 s, x 4 rows 5.64 s, x 5 rows 5.92 s, 16 images x 2 rows 6.15 s.
# Every chunk costs ~15 parallel regions, though, and with the cores shared with other processes
# each of those waits for a descheduled thread (there 2-row chunks were 3x slower than 8-row ones).
_CPU_BLOCK_BYTES = 8 * 2**20
# ... but not below this many rows: thinner chunks make the matrix products markedly less efficient
# (measured: ~35 GMAC/s for 50-row products, ~40 for 100, one core; 96x96 ran 20% slower in 1-row
# chunks than in 2-row ones).
_CPU_MIN_ROWS = 2


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


def pyramid_attention(query: Tensor,
                      keys: Sequence[Tensor],
                      values: Sequence[Tensor],
                      ksize: int = 3,
                      softmax_scale: float = 10.0,
                      eps: float = 1e-4,
                      divisor: float = 4.0,
                      chunk_size: Optional[int] = None,
                      memory_budget_mb: float = 256.0,
                      method: str = 'auto',
                      batch_chunk: Optional[int] = None) -> Tensor:
    """Pyramid attention, exact, with memory linear in the number of pixels.

    Computes the same function as :func:`pyramid_attention_reference` (up to float rounding), but

    * never materialises the ``(H*W) x L`` score map: the query pixels are processed in chunks, each
      with a few batched matrix products over the whole batch on GPU (on CPU over groups of a few
      images, ``batch_chunk``, so that a chunk's blocks stay near cache size), so the temporaries
      are ``O(chunk * L)`` and bounded by ``memory_budget_mb``;
    * has a custom backward that recomputes every chunk's probabilities instead of storing them, so
      training memory is linear in the pixels too. Gradients reach ``query``, every key map (the
      normalisation by ``max(||k||, eps)`` included) and every value map;
    * needs fewer multiply-adds. A ``k x k`` patch inner product is a sum of ``k`` inner products
      of ``k x 1`` columns along a diagonal shift, and the fold of ``A @ V_patches`` is a shifted
      sum of ``A`` times ``k x 1`` value columns. The default ``'col'`` method therefore multiplies
      ``k*Cq``- and ``k*C``-wide embeddings (3x fewer multiply-adds than unfolded patches) and
      adds ``k - 1`` shifted copies of each chunk's score/probability block; the ``L x k*k*C``
      unfolded values are never built. Query and key/value maps are zero padded by one column on
      each side so that a shift is one contiguous slice for all levels; the padding keys get
      probability exactly 0.

    The softmax, the shifted sums and the accumulation of the output and of the gradients run in
    float32 (float64 for float64 inputs). Under ``torch.autocast`` the matrix products run in the
    autocast dtype (e.g. bfloat16), otherwise in the inputs' dtype; the result has the dtype of
    ``query``, the gradients those of the inputs.

    ``method`` selects how much of each patch is unfolded (all give the same result up to rounding):
    ``'col'`` (``k x 1`` columns, the default; fastest measured on CPU), ``'row'`` (``1 x k`` rows),
    ``'pixel'`` (nothing: ``Cq + C`` multiply-adds per query/key pair but ``k*k - 1`` shifted sums
    and a halo of one query row per chunk) and ``'patch'`` (the plain formulation, chunked).

    Args:
        query (Tensor): ``(B, Cq, H, W)`` query embedding of the block input.
        keys (Sequence[Tensor]): ``(B, Cq, H_l, W_l)`` key embedding of every pyramid level.
        values (Sequence[Tensor]): ``(B, C, H_l, W_l)`` value embedding of every pyramid level.
        ksize (int): Odd patch size. Default: 3.
        softmax_scale (float): Multiplier of the scores before the softmax. Default: 10.
        eps (float): Lower bound of a key patch's norm. Default: 1e-4.
        divisor (float): The pasted patches are divided by this (4 in the released code).
        chunk_size (int, optional): Query pixels per chunk. Default (None): the largest chunk whose
            temporaries fit ``memory_budget_mb`` (:func:`choose_chunk_size`), on CPU further capped
            to 8 MiB per ``(images, chunk, L)`` block (faster: it stays in cache), in whole rows.
        memory_budget_mb (float): Budget for one chunk's temporaries in MiB, used when
            ``chunk_size`` is None. Default: 256. Below ``estimate_chunk_bytes(1, ...)`` (about
            ``24 * B * L`` bytes for ``'col'``) it cannot be met and chunks of one pixel are used.
        method (str): ``'auto'`` (= ``'col'``), ``'col'``, ``'row'``, ``'pixel'`` or ``'patch'``.
        batch_chunk (int, optional): Images processed together per chunk. Default (None): the whole
            batch on GPU, a few images at a time on CPU (:func:`choose_batch_chunk`).

    Returns:
        Tensor: ``(B, C, H, W)``, the attention branch (the block adds ``res_scale * x``), in the
        dtype of ``query``.
    """
    b, h, w, _ = _check_inputs(query, keys, values)
    if ksize % 2 != 1:
        raise ValueError(f'ksize must be odd, got {ksize}')
    # The chunk layout is planned in Python ints: under torch.jit.trace (mmengine's flop counter) sizes
    # are 0-dim tensors; their values specialise the traced graph to this input size.
    sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in keys]
    geo = _geometry(h, w, sizes, ksize, method)
    pad = (geo.pad_y, geo.pad_x)
    kernel = _METHODS[_resolve_method(method)].kernel(ksize)
    cdt = _compute_dtype(query, *keys, *values)
    acc = torch.float64 if cdt == torch.float64 else torch.float32
    if batch_chunk is None:
        batch_chunk = choose_batch_chunk(h, w, sizes, b, ksize, cdt, method, query.device)
    if batch_chunk < 1:
        raise ValueError(f'batch_chunk must be >= 1, got {batch_chunk}')
    if chunk_size is None:
        channels = max(query.shape[1], values[0].shape[1])
        chunk_size = choose_chunk_size(h, w, sizes, min(batch_chunk, b), ksize, cdt, memory_budget_mb, method,
                                       query.device, channels)
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')

    with torch.autocast(query.device.type, enabled=False):
        q = _unfold(query.to(cdt), kernel, pad)
        k = torch.cat([_unfold(t.to(cdt), kernel, pad) for t in keys], dim=1)
        v = torch.cat([_unfold(t.to(cdt), kernel, pad) for t in values], dim=1)
        inv_norm = _key_inverse_norms(keys, ksize, eps, acc, pad)
        out = _ChunkedAttention.apply(q, k, v, inv_norm, geo, chunk_size, batch_chunk, float(softmax_scale))
        out = out.view(b, h + 2 * geo.pad_y, w + 2 * geo.pad_x, -1)[:, geo.pad_y:geo.pad_y + h, geo.pad_x:geo.pad_x + w]
        if kernel == (1, 1):
            out = out.permute(0, 3, 1, 2)
        else:
            out = F.fold(out.reshape(b, h * w, -1).transpose(1, 2), (h, w), kernel,
                         padding=(kernel[0] // 2, kernel[1] // 2))
        return (out / divisor).to(query.dtype).contiguous()
