"""The per-chunk steps of the chunked kernel: probabilities, diagonal-shift sums, workspace, products.

A chunk is a run of query positions ``a .. a+m-1`` of the padded layout (:class:`~.layout.Geometry`);
its score and probability blocks are ``(B, m, L')``. :mod:`panet_mm.ops.kernel` strings these steps
together in the forward and the recomputing backward.
"""
from __future__ import annotations

import functools
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .layout import Geometry

__all__ = ['Workspace', 'HaloRows', 'chunk_plan', 'probabilities', 'gather_diagonals', 'scatter_diagonals',
           'scatter_for_matmul', 'scatter_rolled', 'accumulate_bmm']


@functools.lru_cache(maxsize=64)
def shifts_of(geo: Geometry) -> List[Tuple[int, List[Tuple[int, int, int]]]]:
    """``geo.shifts()``, computed once per geometry (it is needed several times per chunk)."""
    return geo.shifts()


@functools.lru_cache(maxsize=64)
def chunk_spans(geo: Geometry, chunk_size: int) -> Tuple[Tuple[Tuple[int, int], ...], Tuple[Tuple[int, ...], ...]]:
    """Every chunk's ``(a, m)`` and the chunk-relative indices of its padding query rows."""
    spans = tuple(geo.chunks(chunk_size))
    return spans, tuple(tuple(geo.padding_rows(a, m)) for a, m in spans)


def chunk_plan(geo: Geometry, chunk_size: int, device: torch.device) -> List[Tuple[int, int, Optional[Tensor]]]:
    """``(a, m, padding rows)`` of every chunk, the index tensors sent to ``device`` in one copy.

    Built before the chunk loop so that the loop itself never waits for the host (a CUDA copy from
    pageable memory would synchronise the stream once per chunk).
    """
    spans, rows = chunk_spans(geo, chunk_size)
    if not any(rows):
        return [(a, m, None) for a, m in spans]
    flat = torch.tensor([i for r in rows for i in r], dtype=torch.long)
    if device.type == 'cuda':
        flat = flat.pin_memory().to(device, non_blocking=True)
    else:
        flat = flat.to(device)
    parts = torch.split(flat, [len(r) for r in rows])
    return [(a, m, part if len(r) else None) for (a, m), r, part in zip(spans, rows, parts)]


def gather_diagonals(pix: Tensor, geo: Geometry, m: int, out: Tensor) -> Tensor:
    """Patch inner products from partial inner products: the diagonal-shift sum.

    ``pix`` is ``(B, m + 2*halo, L')``: row ``i`` belongs to padded query position ``a - halo + i``.
    Writes ``out[b, i, j] = sum_d pix[b, halo + i + d_q, j + d_k]`` over the summed offsets ``d``
    (``d_q``/``d_k``: ``d`` in the query/key layouts) into ``out`` ``(B, m, L')`` and returns it.
    """
    if geo.identity:
        return out if out is pix else out.copy_(pix)
    h0 = geo.halo
    shifts = shifts_of(geo)
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


def scatter_diagonals(attn: Tensor, geo: Geometry, m: int, out: Tensor, scale: Optional[Tensor] = None) -> Tensor:
    """Adjoint of :func:`gather_diagonals`: ``(B, m, L')`` into ``out`` ``(B, m + 2*halo, L')``.

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
    for oq, ranges in shifts_of(geo):
        for s, e, ok in ranges:
            if scale is None:
                out[:, h0 + oq:h0 + oq + m, s + ok:e + ok] += attn[:, :, s:e]
            else:
                out[:, h0 + oq:h0 + oq + m, s + ok:e + ok].addcmul_(attn[:, :, s:e], scale[..., s:e])
    return out


class Workspace:
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


def accumulate_bmm(ws: Workspace, acc: Tensor, a: Tensor, b: Tensor) -> None:
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


class HaloRows:
    """The last ``2*halo`` rows of one chunk's product, which the next chunk's product starts with.

    Consecutive chunks tile the padded positions, so copying those rows is cheaper than multiplying
    them again (most of all for ``'pixel'``, whose halo is a whole padded row on either side).
    """

    def __init__(self, ws: Workspace, name: str, shape: Tuple[int, int, int], dtype: torch.dtype):
        self.rows = ws.get(name, shape, dtype)
        self.valid = False          # before the first chunk of a group of images

    def product(self, lhs: Tensor, rhs_t: Tensor, a: int, m: int, out: Tensor) -> Tensor:
        """``out = lhs[:, a - halo:a + m + halo] @ rhs_t``, the first ``2*halo`` rows copied when known."""
        h0 = self.rows.shape[1] // 2
        if not self.valid or h0 == 0:
            torch.bmm(lhs[:, a - h0:a + m + h0], rhs_t, out=out)
        else:
            out[:, :2 * h0].copy_(self.rows)
            torch.bmm(lhs[:, a + h0:a + m + h0], rhs_t, out=out[:, 2 * h0:])
        self.rows.copy_(out[:, m:])
        self.valid = True
        return out


def probabilities(ws: Workspace, q: Tensor, k: Tensor, inv_scale: Tensor, bias: Optional[Tensor],
                  geo: Geometry, a: int, m: int, rows: Optional[Tensor], halo: HaloRows) -> Tuple[Tensor, Tensor]:
    """Raw scores and softmax probabilities ``(B, m, L')`` of the chunk at padded positions ``a .. a+m-1``.

    Raw scores are the inner products with the *unnormalised* key patches; the logits are
    ``raw * inv_scale + bias``. Both results live in the workspace (``'raw'``, ``'attn'``). Padding
    keys (bias ``-inf``) and padding query rows (``rows``, chunk-relative) get probability 0.
    ``halo`` holds the score rows shared with the previous chunk.
    """
    b, h0, n_keys = q.shape[0], geo.halo, k.shape[1]
    acc = inv_scale.dtype
    raw = ws.get('raw', (b, m, n_keys), acc)
    pix = raw if geo.identity and q.dtype == acc else ws.get('pix', (b, m + 2 * h0, n_keys), q.dtype)
    halo.product(q, k.transpose(1, 2), a, m, pix)
    gather_diagonals(pix, geo, m, raw)
    attn = ws.get('attn', (b, m, n_keys), acc)
    if bias is None:
        torch.mul(raw, inv_scale, out=attn)
    else:
        torch.addcmul(bias, raw, inv_scale, out=attn)
    torch.softmax(attn, dim=-1, out=attn)
    if rows is not None:
        attn.index_fill_(1, rows, 0)
    return raw, attn


def scatter_for_matmul(ws: Workspace, src: Tensor, geo: Geometry, m: int, dtype: torch.dtype,
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
        return scatter_diagonals(src, geo, m, ws.get('pix', shape, dtype), scale)
    summed = scatter_diagonals(src, geo, m, ws.get('mix', shape, src.dtype), scale)
    return ws.get('pix', shape, dtype).copy_(summed)


def scatter_rolled(ws: Workspace, src: Tensor, geo: Geometry, m: int, dtype: torch.dtype, carry: Tensor,
                    scale: Optional[Tensor] = None) -> Tensor:
    """The ``m`` complete rows of ``scatter(src [* scale])``: positions ``a - halo .. a + m - halo - 1``.

    Consecutive chunks tile the padded positions, so the last ``2*halo`` rows of one chunk's scatter
    are the first ones of the next chunk's: they are added from ``carry`` (``(B, 2*halo, L')``, in
    ``src``'s dtype, zero before the first chunk) and saved there for the next chunk, and only rows
    no later chunk adds to go into the matrix products (no product over halo rows; the caller
    multiplies what is left in ``carry`` after the last chunk). Summed in ``src``'s dtype, returned
    in ``dtype``.
    """
    if geo.halo == 0:
        return scatter_for_matmul(ws, src, geo, m, dtype, scale)
    shape = (src.shape[0], m + 2 * geo.halo, src.shape[2])
    summed = scatter_diagonals(src, geo, m, ws.get('pix' if src.dtype == dtype else 'mix', shape, src.dtype), scale)
    summed[:, :carry.shape[1]] += carry
    carry.copy_(summed[:, m:])
    done = summed[:, :m]
    return done if src.dtype == dtype else ws.get('pix', (shape[0], m, shape[2]), dtype).copy_(done)
