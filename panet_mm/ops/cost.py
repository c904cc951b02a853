"""Cost model of the chunked kernel: memory per chunk, multiply-adds, chunk and image-group sizes.

Every function here is pure arithmetic on shapes (no tensor is allocated), so that callers can
plan a call (:func:`choose_chunk_size`) or warn about one (:func:`attention_macs`) before making it.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from .chunks import gather_buffers, paste_buffers
from .layout import FORMULATIONS, make_geometry, resolve_method
from .pyramid import level_sizes

__all__ = ['estimate_chunk_bytes', 'attention_macs', 'choose_batch_chunk', 'choose_chunk_size', 'choose_method',
           'choose_panel_rows', 'default_memory_budget_mb']


def estimate_chunk_bytes(chunk_size: int, height: int, width: int, level_sizes: Sequence[Tuple[int, int]],
                         batch: int = 1, ksize: int = 3, dtype: torch.dtype = torch.float32,
                         method: str = 'auto', channels: int = 0, panel_rows: Optional[int] = None,
                         backward: bool = True) -> int:
    """Peak bytes of the per-chunk temporaries of :func:`pyramid_attention` (its backward, or its forward alone).

    A chunk of ``chunk_size`` query pixels spans ``m`` positions of the padded query layout (padding
    columns included). Backward, the larger of the two passes, holds two :class:`~.chunks.Gather` and
    two :class:`~.chunks.Paste` streams (their buffers: :func:`~.chunks.gather_buffers`,
    :func:`~.chunks.paste_buffers`; a few chunks' rows plus twice each stencil's halo, of ``L'``
    columns each, ``L'`` being the number of key positions with their padding) and two ``(B, m, L')``
    blocks in the accumulation dtype (float32; float64 for float64 inputs); the forward holds one gather
    and one paste (it writes the probabilities straight into the paste's stream). With ``channels`` it also
    counts the matrix-product buffer (``D``: the unfolded width of ``channels``). Linear-size tensors
    (inputs, outputs, gradients) are not counted. ``B`` is the number of images processed together
    (see :func:`choose_batch_chunk`).

    Args:
        chunk_size (int): Query pixels per chunk.
        height (int): Query height ``H``.
        width (int): Query width ``W``.
        level_sizes (Sequence[tuple[int, int]]): ``(H_l, W_l)`` of every key/value level.
        batch (int): Images per chunk ``B``. Default: 1.
        ksize (int): Patch size. Default: 3.
        dtype (torch.dtype): Compute dtype (that of the inputs, or autocast's). Default: float32.
        method (str): Formulation, see :func:`pyramid_attention`; ``'auto'`` is taken as ``'col'`` here
            (resolve it with :func:`choose_method` first). Default: ``'auto'``.
        channels (int): The larger of the query and value channel counts; 0 leaves the product
            buffer out (it is ``O(chunk * C)``, small next to the ``O(chunk * L)`` ones). Default: 0.
        panel_rows (int, optional): Rows of the backward's panels (:func:`choose_panel_rows`); None:
            one paste's rows per call (no panel).
        backward (bool): The backward's temporaries (a call whose result needs a gradient); False: the forward's
            alone (a call without autograd: inference). Default: True.

    Returns:
        int: Estimated bytes.
    """
    geo = make_geometry(height, width, level_sizes, ksize, method)
    span = _span(chunk_size, width, geo.pad_x)
    acc_bytes = 8 if dtype == torch.float64 else 4
    cdt_bytes = torch.empty((), dtype=dtype).element_size()
    direct = geo.identity and cdt_bytes == acc_bytes        # products straight into the score block
    gather = 0 if direct else sum(rows * (cdt_bytes if cdt else acc_bytes) for rows, cdt in gather_buffers(geo, span))
    per_call, streams = paste_buffers(geo, span)
    per_call = max(per_call, panel_rows or 0)
    paste = sum(streams) * acc_bytes + per_call * acc_bytes   # + its result rows (backward: the panel)
    paste += per_call * cdt_bytes if cdt_bytes != acc_bytes else 0
    kh, kw = FORMULATIONS[resolve_method(method)].kernel(ksize)
    product_bytes = per_call * channels * kh * kw * cdt_bytes + span * acc_bytes
    if not backward:
        return batch * (geo.num_keys * (gather + paste) + product_bytes)
    # backward: two gathers (scores, their gradient), two pastes (probabilities, dZ), raw scores and dA
    return batch * (geo.num_keys * (2 * gather + 2 * paste + 2 * span * acc_bytes) + product_bytes)


def _span(chunk_size: int, width: int, pad_x: int) -> int:
    """Padded positions of a chunk of ``chunk_size`` query pixels: it spans at most
    ``ceil(chunk_size / W)`` row ends (its own last one included: chunks tile the padded layout), each
    adding ``2 * pad_x`` positions."""
    return chunk_size + 2 * pad_x * ((chunk_size + width - 1) // width)


def choose_panel_rows(chunk_size: int, height: int, width: int, level_sizes: Sequence[Tuple[int, int]],
                      batch: int = 1, ksize: int = 3, dtype: torch.dtype = torch.float32,
                      memory_budget_mb: Optional[float] = None, method: str = 'auto',
                      device: Union[str, torch.device, None] = None, channels: int = 0) -> int:
    """Rows of the backward's panels: pasted rows of consecutive chunks multiplied together.

    The backward's products that sum over query rows (d values, d keys) have a chunk's rows as their
    inner dimension, thin on CPU where chunks are kept small for the cache. There, the rows of
    several chunks are collected first (:class:`~.kernel._Panels`), up to ``_PANEL_ROWS`` rows as the
    memory budget allows after the chunk's other temporaries (:func:`estimate_chunk_bytes`). Elsewhere,
    or when a chunk already has that many rows: one paste's rows (no panel).

    Args:
        chunk_size (int): Query pixels per chunk.
        height, width, level_sizes, batch, ksize, dtype, method, device, channels:
            As :func:`choose_chunk_size`.
        memory_budget_mb (float, optional): As :func:`choose_chunk_size`; None:
            :func:`default_memory_budget_mb` (only looked up where panels are used).

    Returns:
        int: Panel rows, at least the rows of one paste.
    """
    geo = make_geometry(height, width, level_sizes, ksize, method)
    per_call = paste_buffers(geo, _span(chunk_size, width, geo.pad_x))[0]
    batch = max(batch, 1)       # an empty batch plans as one image (its chunks are never run)
    if device is None or torch.device(device).type != 'cpu' or per_call >= _PANEL_ROWS:
        return per_call
    if memory_budget_mb is None:
        memory_budget_mb = default_memory_budget_mb(device)

    def estimate(rows: int) -> int:
        return estimate_chunk_bytes(chunk_size, height, width, level_sizes, batch, ksize, dtype, method, channels,
                                    panel_rows=rows)

    base = estimate(per_call)
    per_row = estimate(per_call + 1) - base          # the estimate is linear in the panel's rows
    extra = max(0, int((memory_budget_mb * 2**20 - base) // per_row))
    return per_call + min(_PANEL_ROWS - per_call, extra)


def attention_macs(height: int, width: int, scales: Sequence[float], query_channels: int, value_channels: int,
                   ksize: int = 3, method: str = 'col', backward: bool = False) -> int:
    """Multiply-adds of the matrix products of one call of :func:`pyramid_attention` (one image).

    Every query pixel meets every patch of every level (``L = sum_l H_l*W_l``). With ``Dq``/``Dv``
    the unfolded query/value widths of ``method`` (``'col'``: ``ksize*Cq`` / ``ksize*C``, ``'pixel'``:
    ``Cq`` / ``C``, ``'patch'``: ``ksize**2`` times the channels), a forward call costs
    ``H*W*L*(Dq + Dv)``: quadratic in the number of pixels, which is what limits whole-image
    restoration of large photos. The recomputing backward adds ``3*Dq + 2*Dv`` per pair (scores
    again, gradients of the values, of the probabilities, of the query and of the keys).

    Args:
        height (int): Query height ``H``.
        width (int): Query width ``W``.
        scales (Sequence[float]): Scales of the pyramid levels (:func:`pyramid_scales`).
        query_channels (int): Query / key channels ``Cq``.
        value_channels (int): Value channels ``C``.
        ksize (int): Patch size. Default: 3.
        method (str): Formulation (``'auto'`` counts as ``'col'``). Default: ``'col'``.
        backward (bool): Count forward and backward. Default: False (forward only).

    Returns:
        int: Multiply-adds.
    """
    keys = sum(h * w for h, w in level_sizes(height, width, scales))
    kh, kw = FORMULATIONS[resolve_method(method)].kernel(ksize)
    dq, dv = kh * kw * query_channels, kh * kw * value_channels
    per_pair = 4 * dq + 3 * dv if backward else dq + dv
    return height * width * keys * per_pair


def choose_batch_chunk(height: int, width: int, level_sizes: Sequence[Tuple[int, int]], batch: int,
                       ksize: int = 3, dtype: torch.dtype = torch.float32, method: str = 'auto',
                       device: Union[str, torch.device, None] = None, memory_budget_mb: Optional[float] = None,
                       channels: int = 0, backward: bool = True) -> int:
    """Images processed together per chunk: all of them, except on CPU.

    On CPU the per-chunk ``(images, chunk, L')`` blocks are kept near the cache-friendly size of
    :func:`choose_chunk_size` by taking fewer images at a time rather than thinner row chunks: at
    least ``torch.get_num_threads()`` images (the batched matrix products then run one image per
    thread, faster than splitting one product between threads), a multiple of the thread count, and
    a chunk of at least two rows. The README's benchmark section has the measurements. Fewer images,
    down to one, where a chunk of two rows of that many would not fit ``memory_budget_mb``: the
    chunk would otherwise shrink to a few pixels (``'pixel'`` keeps whole padded rows per stream: two
    64x64 PA-EDSR images got one-pixel chunks and ran 7.7x slower than one image at a time).

    Args:
        height (int): Query height ``H``.
        width (int): Query width ``W``.
        level_sizes (Sequence[tuple[int, int]]): ``(H_l, W_l)`` of every key/value level.
        batch (int): Batch size.
        ksize (int): Patch size. Default: 3.
        dtype (torch.dtype): Compute dtype. Default: float32.
        method (str): Formulation, see :func:`pyramid_attention`; ``'auto'`` is taken as ``'col'`` here
            (resolve it with :func:`choose_method` first). Default: ``'auto'``.
        device (str | torch.device, optional): Where the kernel runs. Default: None (all images).
        memory_budget_mb (float, optional): The kernel's budget for one chunk's temporaries, in MiB.
            Default: :func:`default_memory_budget_mb`.
        channels (int): Passed to :func:`estimate_chunk_bytes`. Default: 0.
        backward (bool): Passed to :func:`estimate_chunk_bytes`. Default: True.

    Returns:
        int: Images per chunk, in ``[1, batch]``.
    """
    if device is None or torch.device(device).type != 'cpu' or batch <= 1:
        return max(batch, 1)
    geo = make_geometry(height, width, level_sizes, ksize, method)
    row_block = geo.row_block_bytes(dtype)
    images = min(batch, max(torch.get_num_threads(), 1))
    rows = min(height, max(_CPU_BLOCK_BYTES // (images * row_block), _CPU_MIN_ROWS))
    more = _CPU_BLOCK_BYTES // (rows * row_block)
    if more >= batch:
        images = batch
    else:
        images = max(images, more - more % images)      # a multiple of the thread count
    if memory_budget_mb is None:
        memory_budget_mb = default_memory_budget_mb(device)
    # estimate_chunk_bytes is proportional to its batch: the images whose two-row chunk fits the budget
    per_image = estimate_chunk_bytes(min(height, _CPU_MIN_ROWS) * width, height, width, level_sizes, 1, ksize,
                                     dtype, method, channels, backward=backward)
    return max(1, min(images, int(memory_budget_mb * 2**20 // per_image)))


def choose_chunk_size(height: int, width: int, level_sizes: Sequence[Tuple[int, int]], batch: int = 1,
                      ksize: int = 3, dtype: torch.dtype = torch.float32, memory_budget_mb: float = 256.0,
                      method: str = 'auto', device: Union[str, torch.device, None] = None,
                      channels: int = 0, backward: bool = True) -> int:
    """Largest number of query pixels per chunk whose temporaries fit ``memory_budget_mb``.

    Uses :func:`estimate_chunk_bytes`. Whole image rows are preferred; below one row the chunk is a
    number of pixels. The result is at least 1: a budget below ``estimate_chunk_bytes(1, ...)``
    (about ``24 * B * L`` bytes for ``'col'``) cannot be met and gives 1. For a CPU ``device`` the
    chunk is further capped, in whole rows, so that one ``(B, chunk, L)`` float block stays below
    8 MiB (faster: it stays in cache), but not below two rows (thin chunks make slow matrix products);
    where a single row is already larger, to one row.

    Args:
        height (int): Query height ``H``.
        width (int): Query width ``W``.
        level_sizes (Sequence[tuple[int, int]]): ``(H_l, W_l)`` of every key/value level.
        batch (int): Batch size ``B``. Default: 1.
        ksize (int): Patch size. Default: 3.
        dtype (torch.dtype): Compute dtype (that of the inputs, or autocast's). Default: float32.
        memory_budget_mb (float): Budget for one chunk's temporaries, in MiB. Default: 256.
        method (str): Formulation, see :func:`pyramid_attention`; ``'auto'`` is taken as ``'col'`` here
            (resolve it with :func:`choose_method` first). Default: ``'auto'``.
        device (str | torch.device, optional): Where the kernel runs; ``'cpu'`` applies the cache
            cap. Default: None (budget only).
        channels (int): Passed to :func:`estimate_chunk_bytes`. Default: 0.
        backward (bool): Passed to :func:`estimate_chunk_bytes`: False for a call without autograd, whose
            forward alone holds temporaries (2.5x larger chunks for large images: a whole 256x256 image's block
            forward ran 1.55x faster on CPU with them, its products no longer limited by memory). Default: True.

    Returns:
        int: Query pixels per chunk, in ``[1, H*W]``.
    """
    budget = memory_budget_mb * 2**20
    total = height * width
    batch = max(batch, 1)       # an empty batch plans as one image (its chunks are never run)

    def fits(c: int) -> bool:
        return estimate_chunk_bytes(c, height, width, level_sizes, batch, ksize, dtype, method, channels,
                                    backward=backward) <= budget

    if fits(total):
        chunk = total
    else:
        lo, hi, unit = (1, height, width) if fits(width) else (1, width, 1)   # fits(lo*unit), not fits(hi*unit)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid * unit) else (lo, mid)
        chunk = lo * unit
    if device is not None and torch.device(device).type == 'cpu' and chunk > width:
        geo = make_geometry(height, width, level_sizes, ksize, method)
        row_block = batch * geo.row_block_bytes(dtype)
        if row_block <= _CPU_BLOCK_BYTES:
            chunk = min(chunk, max(_CPU_BLOCK_BYTES // row_block, _CPU_MIN_ROWS) * width)
        else:   # a row is out of cache already; more rows made the forward slower (96x96: 4 rows 1.3x one row's time)
            chunk = width
    return chunk


# Rows of the backward's panels on CPU (choose_panel_rows): an (L' x rows) @ (rows x 192) product ran at
# 40-45 GFLOP/s with 100 rows and 65-75 with 400, on the 2-core machine under load (README, benchmark section).
_PANEL_ROWS = 384

# On CPU the default chunk is capped (in whole rows, and in images: see choose_batch_chunk) so that
# one (images, chunk, L') float block stays in cache ...
_CPU_BLOCK_BYTES = 8 * 2**20
# ... but not below this many rows: thinner chunks make the matrix products markedly less efficient.
_CPU_MIN_ROWS = 2



def default_memory_budget_mb(device: Union[str, torch.device, None] = None) -> float:
    """The kernel's default budget for one chunk's temporaries, in MiB.

    256 MiB on CPU (the CPU cap of :func:`choose_chunk_size` keeps chunks far smaller anyway). On
    CUDA a quarter of the device's currently free memory (``torch.cuda.mem_get_info``), at least
    256 MiB: larger chunks mean fewer, thicker kernel launches, and a quarter leaves room for the
    rest of a training step's activations.

    Args:
        device (str | torch.device, optional): Where the kernel runs. Default: None (CPU).

    Returns:
        float: Budget in MiB.
    """
    if device is None or torch.device(device).type != 'cuda':
        return 256.0
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return max(free / 4 / 2**20, 256.0)


def choose_method(height: int, width: int, level_sizes: Sequence[Tuple[int, int]], query_channels: int,
                  value_channels: int, ksize: int = 3, dtype: torch.dtype = torch.float32,
                  device: Union[str, torch.device, None] = None, memory_budget_mb: Optional[float] = None,
                  backward: bool = True) -> str:
    """The formulation ``method='auto'`` runs: a rule measured with ``benchmark_attention.py --methods``.

    A (query, key) pair costs ``ksize * (Cq + C)`` multiply-adds in ``'col'`` but only ``Cq + C`` in
    ``'pixel'``, which pays instead ``2 * (ksize - 1)`` shifted sums over each chunk's score block and
    as many over its probabilities (a cost per pair independent of the channels; ``'col'`` pays
    ``ksize - 1`` of each). So ``'pixel'`` wins when the channels are wide enough for the saved
    products to outweigh the extra passes. Measured on CPU (2 threads; the table in
    ``tests/test_ops/data/attention_methods.json``, checked by a test): ``'col'`` for ``Cq + C = 96``
    (PANet), ``'pixel'`` for ``Cq + C = 288`` (PA-EDSR), in float32 and in bfloat16 alike. The sizes
    did not change the order in the measured range (32x32 to 64x64). Memory does: ``'pixel'``'s
    second stencil runs along the query columns, so each of its streams holds a few whole padded
    query rows of scores (``O(W * L')`` bytes however small the chunk), and from about 96x96 up (C=256,
    256 MiB) not even a one-pixel chunk fits the budget. Its chunks then shrank to one pixel and
    ran 7x slower than ``'col'``'s (README, "Attention speed and memory"), so ``'pixel'`` is picked only
    where a chunk of one whole query row of one image fits ``memory_budget_mb``. On CUDA nothing has
    been measured yet: ``'col'`` (the fewest multiply-adds among the formulations with few passes);
    ``tools/device_check.sh`` measures the table there.

    Args:
        height (int): Query height ``H``.
        width (int): Query width ``W``.
        level_sizes (Sequence[tuple[int, int]]): ``(H_l, W_l)`` of every key/value level.
        query_channels (int): Query / key channels ``Cq``.
        value_channels (int): Value channels ``C``.
        ksize (int): Patch size. Default: 3.
        dtype (torch.dtype): Compute dtype (the inputs', or autocast's). Default: float32.
        device (str | torch.device, optional): Where the kernel runs. Default: None (CPU).
        memory_budget_mb (float, optional): The kernel's budget for one chunk's temporaries, in MiB.
            Default: :func:`default_memory_budget_mb`.
        backward (bool): Passed to :func:`estimate_chunk_bytes`. Default: True.

    Returns:
        str: ``'col'`` or ``'pixel'``.
    """
    if device is not None and torch.device(device).type != 'cpu':
        return 'col'
    threshold = _PIXEL_MIN_CHANNELS.get(dtype)
    if threshold is None or query_channels + value_channels < threshold:
        return 'col'
    if memory_budget_mb is None:
        memory_budget_mb = default_memory_budget_mb(device)
    row = estimate_chunk_bytes(width, height, width, level_sizes, 1, ksize, dtype, 'pixel',
                               max(query_channels, value_channels), backward=backward)
    return 'pixel' if row <= memory_budget_mb * 2**20 else 'col'


# 'auto' on CPU: 'pixel' from this many query + value channels (Cq + C) up, else 'col' (float16 was not
# measured: 'col').
_PIXEL_MIN_CHANNELS = {torch.float32: 192, torch.float64: 192, torch.bfloat16: 192}
