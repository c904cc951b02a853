"""The per-chunk steps of the chunked kernel: streamed diagonal-shift sums, probabilities, products.

A chunk is a run of query positions ``a .. a+m-1`` of the padded layout (:class:`~.layout.Geometry`);
its score and probability blocks are ``(B, m, L')``. The diagonal-shift sums are separable stencils
along the query rows (:meth:`~.layout.Geometry.stages`); every intermediate row is computed once,
in a :class:`Rows` stream that slides over the query positions as the chunks advance.
:mod:`panet_mm.ops.kernel` strings these steps together in the forward and the recomputing backward.
"""
from __future__ import annotations

import functools
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from . import native
from .layout import Geometry

__all__ = ['Workspace', 'Rows', 'Gather', 'Paste', 'chunk_plan', 'stencil', 'probabilities', 'softmax_backward_rows',
           'fused_ops', 'flat_shifts', 'accumulate_bmm',
           'gather_buffers', 'paste_buffers', 'rows_capacity', 'contiguous_blocks', 'flush_denormals']

Shift = Tuple[int, List[Tuple[int, int, int]]]
Stage = Tuple[int, List[Shift]]


@functools.lru_cache(maxsize=64)
def stages_of(geo: Geometry) -> List[Stage]:
    """``geo.stages()``, computed once per geometry."""
    return geo.stages()


@functools.lru_cache(maxsize=64)
def adjoint_stages_of(geo: Geometry) -> List[Stage]:
    """The stages of the scatter, the adjoint of the gather: in reverse order, every shift negated.

    ``out[i, s+ok:e+ok] += src[i - oq, s:e]`` is the gather-form of ``src[i, s:e]`` being added to
    row ``i + oq``, columns ``s+ok:e+ok``: the scatter is computed row by row like the gather.
    """
    return [(halo, [(-oq, [(s + ok, e + ok, -ok) for s, e, ok in ranges]) for oq, ranges in shifts])
            for halo, shifts in reversed(geo.stages())]


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


def accumulate_bmm(acc: Tensor, a: Tensor, b: Tensor) -> None:
    """``acc += a @ b`` (batched).

    In place (``baddbmm_``) when ``acc`` is contiguous and of the product's dtype; otherwise the
    (linear-size) product is added: torch runs ``baddbmm_`` on a strided slice (a chunk's rows of
    every image) as one matrix product per image, which is slower on CPU. (No ``out=`` product:
    mmengine's flop counter traces into the kernel and counts ``bmm`` nodes of two inputs only.)
    A product with a long inner dimension and a small result (a chunk's rows times the values: all
    key positions summed into ``m x C``) is split along the inner dimension on CPU (:func:`split_k`).
    """
    parts = split_k(a, b)
    if parts > 1:
        for j in range(a.shape[0]):
            split_k_product(a[j], b[j], parts, acc[j])
    elif acc.dtype == a.dtype and acc.is_contiguous():
        acc.baddbmm_(a, b)
    else:
        acc += torch.bmm(a, b)


def split_k(a: Tensor, b: Tensor) -> int:
    """Pieces to split the inner dimension of ``a @ b`` into: one per CPU thread not busy with an image.

    torch's CPU matrix product shares a product's threads over the rows and columns of its result;
    a ``132 x 64`` result of a ``14600``-long inner product then runs on one core (measured on the
    2-core machine: 30-60 GFLOP/s unsplit, 130-200 split in two; the README's benchmark section).
    """
    if a.device.type != 'cpu' or torch.jit.is_tracing():
        return 1
    threads = torch.get_num_threads() // a.shape[0]
    inner, result = a.shape[-1], a.shape[-2] * b.shape[-1]
    if threads < 2 or inner < 4096 or result > 512 * 512:
        return 1
    return threads


def split_k_product(a: Tensor, b: Tensor, parts: int, acc: Optional[Tensor] = None) -> Tensor:
    """``a @ b`` (2-D) as ``parts`` products over slices of the inner dimension, run as one batch, summed; added
    into ``acc`` when given (one add per part: ``sum(0)`` of the parts took 3x as long as the adds on CPU)."""
    inner = a.shape[-1]
    size = inner // parts
    whole = size * parts
    out = torch.bmm(a[:, :whole].unflatten(-1, (parts, size)).transpose(0, 1), b[:whole].unflatten(0, (parts, size)))
    if acc is None:
        acc = out[0]
        rest = out[1:]
    else:
        rest = out
    for part in rest:
        acc += part
    if whole < inner and acc.dtype == a.dtype:
        acc.addmm_(a[:, whole:], b[whole:])
    elif whole < inner:                                  # (autocast's products into a float32 result)
        acc += a[:, whole:] @ b[whole:]
    return acc


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


def rows_capacity(history: int, span: int, first: int = 0) -> int:
    """Rows of a :class:`Rows` buffer: after a move, ``history + span`` rows or more are produced before the
    next one, and the moved rows never overlap their source (capacity ``>= 2*history + span``)."""
    return max(2 * history + 2 * span, first + history)


def gather_buffers(geo: Geometry, span: int) -> List[Tuple[int, bool]]:
    """``(rows, in the compute dtype)`` of every buffer of a :class:`Gather` with chunks of up to ``span`` rows."""
    halos = [h for h, _ in stages_of(geo)]
    reach = [sum(halos[i:]) for i in range(len(halos) + 1)]
    return [(rows_capacity(2 * halos[i] if halos else 0, span, span + 2 * reach[i]), i == 0)
            for i in range(max(len(halos), 1))]


def paste_buffers(geo: Geometry, span: int) -> Tuple[int, List[int]]:
    """``(rows per call, stream buffer rows)`` of a :class:`Paste` with chunks of up to ``span`` rows; the rows
    per call are its result's (once in the accumulation dtype, once more in the compute dtype when narrower)."""
    halos = [h for h, _ in stages_of(geo)]
    span = max(span, 2 * sum(halos))
    return span, [rows_capacity(2 * h, span, span + 2 * h) for h in reversed(halos)] or [rows_capacity(0, span)]


class Rows:
    """The rows of a ``(B, positions, L')`` map, produced in increasing position order.

    They live in one buffer that slides over the positions: producing rows past its end first moves
    the last ``history`` rows (all that later reads may still need) to its front, one copy every
    few chunks instead of a carried copy every chunk.
    """

    def __init__(self, ws: Workspace, name: str, batch: int, n_keys: int, dtype: torch.dtype, history: int,
                 capacity: int):
        self.history, self.capacity = history, capacity
        self.buf = ws.get(name, (batch, capacity, n_keys), dtype)
        self.start = self.end = 0

    def reset(self, position: int) -> None:
        """Empty; the next row produced is ``position``.

        Positions are kept as Python ints: under ``torch.jit.trace`` (mmengine's flop counter) sizes read
        from tensors are 0-dim tensors, and ``end += n`` on one would change ``start`` (the same object) and
        every position read from it before, in place.
        """
        self.start = self.end = int(position)

    def take(self, n: int) -> Tensor:
        """The next ``n`` rows to produce (positions ``end .. end+n-1``), counted as produced."""
        n = int(n)
        if self.end + n - self.start > self.capacity:
            keep = min(self.history, self.end - self.start)
            src = self.end - self.start - keep
            if keep:
                self.buf[:, :keep].copy_(self.buf[:, src:src + keep])
            self.start = self.end - keep
        lo = self.end - self.start
        self.end += n
        return self.buf[:, lo:lo + n]

    def rows(self, lo: int, n: int) -> Tensor:
        """Rows at positions ``lo .. lo+n-1`` (produced, and not yet dropped)."""
        assert self.start <= lo and lo + n <= self.end, (lo, n, self.start, self.end)
        return self.buf[:, lo - self.start:lo - self.start + n]


def stencil(out: Tensor, src: Rows, lo: int, shifts: List[Shift]) -> Tensor:
    """``out[:, i] = src[lo + i] + sum over shifts of src[lo + i + oq, j + ok]`` (on each shift's keys).

    The centre and the first shift are added in one pass (the centre copied where the first shift
    has no neighbour), the other shifts in one pass each; on CPU in float32 all of them in one pass per
    row where the compiled steps could be built (:mod:`.native`; the same sums in the same order).
    """
    n, n_keys = out.shape[1], out.shape[2]
    ops = fused_ops(None, out, source=src.buf)
    if ops is not None:                                  # one pass per row (native.py)
        ops.stencil_rows(*_shifted_source(src, lo, n, shifts), out)
        return out
    centre = src.rows(lo, n)
    (oq, ranges), rest = shifts[0], shifts[1:]
    gap = 0
    for s, e, ok in ranges:
        if s > gap:
            out[:, :, gap:s].copy_(centre[:, :, gap:s])
        torch.add(centre[:, :, s:e], src.rows(lo + oq, n)[:, :, s + ok:e + ok], out=out[:, :, s:e])
        gap = e
    if gap < n_keys:
        out[:, :, gap:].copy_(centre[:, :, gap:])
    for oq, ranges in rest:
        shifted = src.rows(lo + oq, n)
        for s, e, ok in ranges:
            out[:, :, s:e] += shifted[:, :, s + ok:e + ok]
    return out


class Gather:
    """Chunk rows of ``gather(lhs @ rhs_t)``, the patch inner products from partial ones.

    ``lhs`` is ``(B, Np, D)`` (rows: padded query positions), ``rhs_t`` ``(B, D, L')``. Each product
    row and each intermediate stencil row is computed once, whatever the chunks (streams).
    """

    def __init__(self, ws: Workspace, name: str, geo: Geometry, lhs: Tensor, rhs_t: Tensor, acc: torch.dtype,
                 span: int):
        self.lhs, self.rhs_t, self.stages, self.ws = lhs, rhs_t, stages_of(geo), ws
        b, n_keys, halos = lhs.shape[0], rhs_t.shape[-1], [h for h, _ in self.stages]
        # reach[i]: how far beyond a chunk stream i must go (the halos of the stages after it)
        self.reach = [sum(halos[i:]) for i in range(len(halos) + 1)]
        self.direct = not self.stages and lhs.dtype == acc     # products straight into the caller's block
        self.streams = [] if self.direct else [
            Rows(ws, f'{name}{i}', b, n_keys, lhs.dtype if i == 0 else acc, 2 * halos[i] if halos else 0, rows)
            for i, (rows, _) in enumerate(gather_buffers(geo, span))]
        self.started = False

    def rows(self, a: int, m: int, out: Tensor) -> Tensor:
        """``out`` ``(B, m, L')`` <- the gathered rows at positions ``a .. a+m-1``; returns it."""
        if self.direct:
            return torch.bmm(self.lhs[:, a:a + m], self.rhs_t, out=out)
        last = self.last_stage(a, m)
        if last is None:
            return out.copy_(self.streams[0].rows(a, m))
        return stencil(out, *last)

    def last_stage(self, a: int, m: int) -> Optional[Tuple[Rows, int, List[Shift]]]:
        """Everything for the rows at positions ``a .. a+m-1`` but the last stage: ``(its source stream, a,
        its shifts)`` (:func:`stencil`'s arguments after ``out``), or None where nothing is summed (the
        products stream then holds the rows). Not for a :attr:`direct` gather."""
        if not self.started:
            for stream, reach in zip(self.streams, self.reach):
                stream.reset(a - reach)
            self.started = True
        products = self.streams[0]
        hi = a + m + self.reach[0]
        torch.bmm(self.lhs[:, products.end:hi], self.rhs_t, out=products.take(hi - products.end))
        if not self.stages:
            return None
        for i, (_, shifts) in enumerate(self.stages[:-1]):
            dst = self.streams[i + 1]
            lo = dst.end
            stencil(dst.take(a + m + self.reach[i + 1] - lo), self.streams[i], lo, shifts)
        return self.streams[len(self.stages) - 1], a, self.stages[-1][1]


class Paste:
    """Complete rows of ``scatter(src)``, for the products with the values, as chunks of ``src`` arrive.

    ``src`` rows (probabilities, or their gradients) are written into :meth:`take`'s view chunk by
    chunk; :meth:`advance` then returns the scattered rows no later chunk adds to (they lag the
    chunk by the halo), and :meth:`finish` the rest. Rows before the first chunk count as zero.
    """

    def __init__(self, ws: Workspace, name: str, geo: Geometry, batch: int, n_keys: int, acc: torch.dtype,
                 cdt: torch.dtype, span: int):
        self.ws, self.name, self.acc, self.cdt = ws, name, acc, cdt
        self.stages = adjoint_stages_of(geo)
        self.halo = sum(h for h, _ in self.stages)
        self.shape = (batch, n_keys)
        histories = [2 * h for h, _ in self.stages] or [0]
        self.streams = [Rows(ws, f'{name}{i}', batch, n_keys, acc, history, rows)
                        for i, (history, rows) in enumerate(zip(histories, paste_buffers(geo, span)[1]))]
        self.done = 0

    def begin(self, a: int) -> None:
        """Before the first chunk, at padded position ``a``."""
        lag = 0
        for stream, (h, _) in zip(self.streams, self.stages):
            stream.reset(a - lag - 2 * h)
            stream.take(2 * h).zero_()
            lag += h
        if not self.stages:
            self.streams[0].reset(a)
        self.done = a - self.halo

    def take(self, m: int) -> Tensor:
        """The view ``(B, m, L')`` to write the next chunk's ``src`` rows into."""
        return self.streams[0].take(m)

    def pending(self) -> int:
        """How many scattered rows the next :meth:`advance` completes."""
        return self.streams[0].end - self.halo - self.done

    def advance(self, into: Optional[Tensor] = None) -> Tuple[int, Tensor]:
        """``(lo, rows)``: the scattered rows at positions ``lo ..`` completed by the last chunk, in ``cdt``;
        with ``into`` (``(B, pending(), L')``, the accumulation dtype) written there instead, not cast."""
        lo = self.done
        if not self.stages:
            src = self.streams[0]
            self.done = src.end
            rows = src.rows(lo, src.end - lo)
            return (lo, into.copy_(rows)) if into is not None else (lo, self.cast(rows))
        for i, (h, shifts) in enumerate(self.stages):
            src = self.streams[i]
            if i + 1 < len(self.stages):
                dst = self.streams[i + 1]
                start = dst.end
                stencil(dst.take(src.end - h - start), src, start, shifts)
            else:
                n = src.end - h - lo
                out = into if into is not None else self.ws.get(f'{self.name}_out', (self.shape[0], n, self.shape[1]),
                                                                  self.acc)
                stencil(out, src, lo, shifts)
        self.done = lo + n
        return (lo, out) if into is not None else (lo, self.cast(out))

    def close(self) -> None:
        """After the last chunk: the next :meth:`advance` returns all the rows left (``src`` is zero beyond it)."""
        if self.stages:
            self.streams[0].take(2 * self.halo).zero_()

    def finish(self) -> Tuple[int, Tensor]:
        """``(lo, rows)``: the scattered rows left after the last chunk."""
        self.close()
        return self.advance()

    def cast(self, rows: Tensor) -> Tensor:
        """``rows`` (accumulation dtype) in the compute dtype, for a matrix product."""
        if rows.dtype == self.cdt:
            return rows
        return self.ws.get(f'{self.name}_cdt', rows.shape, self.cdt).copy_(rows)


def contiguous_blocks(t: Tensor) -> List[Tensor]:
    """``[t]`` when ``t`` is contiguous, else its images: a stream's rows of several images are a strided
    view, which some torch ops (``softmax(out=)``) copy to a temporary and back. (Not while traced:
    mmengine's flop counter traces the model, and views of views would record the chunk loop.)"""
    return [t] if t.is_contiguous() or torch.jit.is_tracing() else list(t.unbind(0))


def probabilities(gather: Gather, out: Tensor, inv_scale: Tensor, bias: Optional[Tensor], a: int,
                  rows: Optional[Tensor], raw: Optional[Tensor] = None, flush: bool = False) -> Tensor:
    """Softmax probabilities ``(B, m, L')`` of the chunk at padded positions ``a .. a+m-1``, into ``out``.

    Raw scores are the inner products with the *unnormalised* key patches (kept in ``raw`` when it
    is given: the backward needs them); the logits are ``raw * inv_scale + bias``. Padding keys
    (bias ``-inf``) and padding query rows (``rows``, chunk-relative) get probability 0. ``flush``:
    denormal probabilities become 0 (:func:`flush_denormals`; the backward's, on CPU). On CPU in float32 the
    last shifted sums, the scaling and the softmax run as one compiled step per query row where it could be
    built (:mod:`.native`; it always writes denormal probabilities as 0), else as torch operations.
    """
    ops = fused_ops(gather, out, inv_scale, bias, raw)
    if ops is not None:                                  # (it also zeroes the padding rows)
        ops.stencil_softmax(*_last_stage(gather, a, out.shape[1]), inv_scale, bias, out, raw, rows)
        return out
    scores = gather.rows(a, out.shape[1], out if raw is None else raw)
    if bias is None:
        torch.mul(scores, inv_scale, out=out)
    else:
        torch.addcmul(bias, scores, inv_scale, out=out)
    for block in contiguous_blocks(out):
        torch.softmax(block, dim=-1, out=block)
    if flush:
        flush_denormals(out)
    if rows is not None:
        out.index_fill_(1, rows, 0)
    return out


def fused_ops(gather: Optional[Gather], *tensors: Optional[Tensor], source: Optional[Tensor] = None):
    """The compiled row steps (:func:`.native.fused_ops`) where they apply: CPU, ``tensors`` (the step's
    arguments) in float32, the shifted rows' ``source`` in float32 or bfloat16 (the products' stream under
    autocast), for a ``gather`` one that sums shifts (its last stage's stream is the source), not while
    traced; else None."""
    if torch.jit.is_tracing():
        return None
    if gather is not None:
        if gather.direct or not gather.stages:
            return None
        source = gather.streams[len(gather.stages) - 1].buf
    if source is not None and (source.device.type != 'cpu' or source.dtype not in (torch.float32, torch.bfloat16)):
        return None
    if any(t is not None and (t.device.type != 'cpu' or t.dtype != torch.float32) for t in tensors):
        return None
    return native.fused_ops()


def _last_stage(gather: Gather, a: int, m: int) -> tuple:
    """The compiled steps' first arguments for rows ``a .. a+m-1``: all but the last stage computed, then
    :func:`_shifted_source` of that stage."""
    src, lo, shifts = gather.last_stage(a, m)
    return _shifted_source(src, lo, m, shifts)


def _shifted_source(src: Rows, lo: int, n: int, shifts: List[Shift]) -> tuple:
    """The compiled steps' first arguments for ``n`` output rows from source position ``lo``: the source rows
    they read (from the shifts' first row offset to their last), the output's first row in them, and the
    shifts (:func:`flat_shifts`)."""
    offsets, counts, starts, ends, keys, first, last = flat_shifts(shifts)
    return src.rows(lo + first, n + last - first), -first, offsets, counts, starts, ends, keys


_FLAT: dict = {}


def flat_shifts(shifts: List[Shift]) -> Tuple[List[int], List[int], List[int], List[int], List[int], int, int]:
    """``shifts`` as the compiled steps take them: ``(row offsets, ranges per shift, starts, ends, key offsets,
    first, last)``; a chunk's rows read the source rows from ``first`` before its first to ``last`` after
    its last. Cached per list (the stages' lists are cached per geometry)."""
    entry = _FLAT.get(id(shifts))
    if entry is None or entry[0] is not shifts:
        if len(_FLAT) > 1024:                            # (the stage caches hold 64 geometries each)
            _FLAT.clear()
        offsets = [oq for oq, _ in shifts]
        entry = _FLAT[id(shifts)] = (shifts, (
            offsets, [len(r) for _, r in shifts], [s for _, r in shifts for s, _, _ in r],
            [e for _, r in shifts for _, e, _ in r], [ok for _, r in shifts for _, _, ok in r],
            min(0, *offsets), max(0, *offsets)))
    return entry[1]


def softmax_backward_rows(grad_attn: Gather, attn: Tensor, inv_scale: Tensor, a: int, dz: Tensor,
                          raw: Optional[Tensor] = None, flush: bool = False) -> Optional[Tensor]:
    """``dz`` ``(B, m, L')`` <- the gradient of the raw scores of the chunk at padded positions ``a ..
    a+m-1``: ``attn * (g - sum_j attn * g) * inv_scale``, ``g`` the gathered rows of ``grad_attn`` (the
    gradient of the probabilities ``attn``). With ``raw`` (the raw scores) it returns ``raw * attn * (g -
    sum_j attn * g)`` (written into ``raw``), whose sum over the rows is the gradient of the key norms.
    ``flush``: denormals become 0 (the compiled step always does that)."""
    ops = fused_ops(grad_attn, attn, inv_scale, dz, raw)
    if ops is not None:
        ops.stencil_softmax_backward(*_last_stage(grad_attn, a, dz.shape[1]), attn, inv_scale, dz, raw)
        return raw
    grad = grad_attn.rows(a, dz.shape[1], grad_attn.ws.get('grad', tuple(dz.shape), dz.dtype))
    _softmax_backward(grad, attn, dz)                    # one fused pass: dZ = A * (dA - sum_j(A * dA))
    if raw is not None:
        raw.mul_(dz)
    dz.mul_(inv_scale)                                   # d loss / d raw = dZ * inv_norm * scale
    if flush:
        flush_denormals(dz)                              # (small probabilities times small gradients)
    return raw


def _softmax_backward(grad: Tensor, attn: Tensor, out: Tensor) -> Tensor:
    """``out = attn * (grad - sum_j(attn * grad))``, torch's fused softmax backward, into ``out``.

    Image by image when ``out`` is a strided view (rows of a stream buffer): the ``.out`` variant
    writes a non-contiguous output as if it were contiguous (torch 2.5).
    """
    backward = torch.ops.aten._softmax_backward_data.out
    for j, block in enumerate(contiguous_blocks(out)):
        backward(grad if block is out else grad[j], attn if block is out else attn[j], -1, out.dtype,
                 grad_input=block)
    return out


def flush_denormals(t: Tensor) -> Tensor:
    """Set the denormal values of ``t`` to 0, in place, in one pass; returns ``t``.

    A softmax over widely spread logits (PA-EDSR's) leaves many probabilities below float32's
    smallest normal number, and their gradients follow; every later CPU operation that reads one
    (the paste's shifted sums, the products, the softmax backward) then takes x86's slow microcode
    path: in a PA-EDSR x2 training step the backward's products ran 2-5x slower (README, "Denormal
    floats"). Zeroing them changes a result by less than 1.2e-38 of a value per term, and costs about
    a quarter of a softmax. (The floating-point mode that would flush them is per thread and can only
    be set before torch's threads start: :mod:`panet_mm.utils.denormals`.)
    """
    return torch.ops.aten.hardshrink.out(t, torch.finfo(t.dtype).tiny, out=t)
