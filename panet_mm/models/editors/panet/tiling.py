"""Where the test-time tiles of an image lie: the released recursive chop and fixed overlapping tiles.

Pure geometry in input pixels (plus padding a tensor and reading its scale), kept apart from the edit
model so the rules can be read and tested without building a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Tuple

import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class ChopTile:
    """One leaf tile of the recursive chop, in input (LR) pixels of the whole image.

    Attributes:
        top (int): First row of the tile the network runs on.
        left (int): First column of the tile.
        height (int): Rows of the tile.
        width (int): Columns of the tile.
        keep_top (int): First row of the image region this tile's output provides.
        keep_left (int): First column of that region.
        keep_height (int): Rows of that region (the regions of all tiles partition the image).
        keep_width (int): Columns of that region.
    """

    top: int
    left: int
    height: int
    width: int
    keep_top: int
    keep_left: int
    keep_height: int
    keep_width: int


def _split_axis(length: int, shave: int, align: int = 1) -> List[Tuple[int, int, int, int]]:
    """``(start, size, keep_start, keep_end)`` of the halves along one axis, relative to the node.

    Two overlapping halves of ``length // 2 + shave`` as in the released chop; a single piece (no
    split) when that would not make the pieces smaller (the released code mis-stitches or crashes
    there, and identical halves give the same result as no split). With ``align > 1`` the second
    half starts at ``length - (length // 2 + shave)`` rounded down to a multiple of ``align`` (it grows
    by up to ``align - 1``); no split when that start would be 0. The second half never starts after
    the first row / column it keeps (with ``shave=0`` and an odd length it grows by one, where the
    released code mis-stitches).
    """
    half = length // 2
    size = half + shave
    if half < 1 or size >= length:
        return [(0, length, 0, length)]
    start = min(length - size, half)
    start -= start % align
    if start < 1:
        return [(0, length, 0, length)]
    return [(0, size, 0, half), (start, length - start, half, length)]


def chop_boxes(h: int, w: int, min_size: int = 6400, shave: int = 10, align: int = 1) -> List[ChopTile]:
    """Leaf tiles of the released recursive overlapping chop (``forward_chop``) of an ``h x w`` image.

    A node of size ``h x w`` is split into 4 quadrants of ``(h//2 + shave) x (w//2 + shave)``
    anchored at its four corners; if a quadrant has fewer than ``min_size`` pixels the quadrants are
    run through the network, otherwise each is chopped again. Quadrant ``i`` provides the node's
    ``[0, h//2) / [h//2, h)`` rows and ``[0, w//2) / [w//2, w)`` columns (its overlap is dropped),
    in the released order: top-left, top-right, bottom-left, bottom-right. For SR every output
    coordinate is the input one times the scale. Extension for thin images (where the released code
    fails): an axis whose half plus ``shave`` is not shorter than the node is not split.

    ``align > 1`` (not in the released code) makes every leaf origin a multiple of ``align``: the
    second quadrant along an axis starts at its released start rounded down to a multiple of
    ``align`` (so it is up to ``align - 1`` pixels larger); the kept regions are unchanged, so they
    still partition the image. ``align=2`` keeps the Bayer phase of a mosaic in every tile.

    Args:
        h (int): Image height.
        w (int): Image width.
        min_size (int): A quadrant with fewer pixels than this is a leaf (the released test commands
            use 6400, 6800 for denoising). Default: 6400.
        shave (int): Overlap added to each half, in input pixels. Default: 10.
        align (int): Every leaf origin is a multiple of this. Default: 1 (the released chop).

    Returns:
        list[ChopTile]: Leaf tiles in the order the released code runs them.
    """
    if h < 1 or w < 1:
        raise ValueError(f'chop_boxes needs a non-empty image, got {h}x{w}')
    if shave < 0 or min_size < 1:
        raise ValueError(f'chop needs shave >= 0 and min_size >= 1, got shave={shave}, min_size={min_size}')
    check_align(align)
    leaves: List[ChopTile] = []

    def visit(top: int, left: int, nh: int, nw: int, keep: Tuple[int, int, int, int]) -> None:
        rows, cols = _split_axis(nh, shave, align), _split_axis(nw, shave, align)
        if len(rows) == 1 and len(cols) == 1:
            leaves.append(ChopTile(top, left, nh, nw, *keep))
            return
        leaf = rows[0][1] * cols[0][1] < min_size
        for r0, rs, rk0, rk1 in rows:
            for c0, cs, ck0, ck1 in cols:
                # this child's kept region, intersected with what the node itself keeps (global coords)
                kt, kb = max(top + rk0, keep[0]), min(top + rk1, keep[0] + keep[2])
                kl, kr = max(left + ck0, keep[1]), min(left + ck1, keep[1] + keep[3])
                child_keep = (kt, kl, max(kb - kt, 0), max(kr - kl, 0))
                if leaf:
                    leaves.append(ChopTile(top + r0, left + c0, rs, cs, *child_keep))
                else:
                    visit(top + r0, left + c0, rs, cs, child_keep)

    visit(0, 0, h, w, (0, 0, h, w))
    return leaves


def check_align(align: Any) -> int:
    """``align`` itself when it is an int >= 1 (not a bool), else a ``ValueError``."""
    if isinstance(align, bool) or not isinstance(align, int) or align < 1:
        raise ValueError(f'align must be an int >= 1, got {align!r}')
    return align


def tile_spans(length: int, size: int, overlap: int, align: int = 1) -> List[Tuple[int, int]]:
    """``(start, size)`` of fixed tiles of ``size`` overlapping by at least ``overlap`` covering ``length``.

    Tiles step by ``size - overlap`` rounded down to a multiple of ``align`` (at least ``align``, so
    with ``size - overlap < align`` the overlap is ``size - align``); the last tile ends exactly at
    ``length``. With ``align > 1`` every start is a multiple of
    ``align``: the last tile then starts at ``length - size`` rounded down and is up to
    ``align - 1`` pixels larger than ``size``.

    Args:
        length (int): Image size along the axis.
        size (int): Tile size (the image size when larger).
        overlap (int): Minimum overlap between neighbouring tiles (``0 <= overlap < size``).
        align (int): Every start is a multiple of this. Default: 1.

    Returns:
        list[tuple[int, int]]: Tile starts and sizes, in order.
    """
    if size <= overlap or overlap < 0:
        raise ValueError(f'tile needs 0 <= overlap < size, got size={size}, overlap={overlap}')
    check_align(align)
    if length <= size:
        return [(0, length)]
    if size < align:
        raise ValueError(f'tile needs size >= align, got size={size}, align={align}')
    step = max(align, (size - overlap) // align * align)
    last = (length - size) // align * align
    starts = [s for s in range(0, length - size, step) if s < last] + [last]
    return [(s, size) for s in starts[:-1]] + [(last, length - last)]


def tile_starts(length: int, size: int, overlap: int, align: int = 1) -> List[int]:
    """Starts of the tiles of :func:`tile_spans` (same arguments; multiples of ``align``)."""
    return [s for s, _ in tile_spans(length, size, overlap, align)]


def pad_axis(x: Tensor, dim: int, target: int) -> Tensor:
    """Pad ``x`` at the end of ``dim`` (-2 or -1) to ``target``: reflect, replicate when too small."""
    n = x.shape[dim]
    if n >= target:
        return x
    extra = target - n
    pad = (0, 0, 0, extra) if dim == -2 else (0, extra, 0, 0)  # 4 values: non-constant modes need a 2-D pad
    mode = 'reflect' if extra < n else 'replicate'
    return F.pad(x, pad, mode=mode)


def output_scale(inp: Tensor, out: Tensor) -> int:
    """The integer up-scaling factor from ``inp`` to the generator's ``out`` (chop, tile and padding need one)."""
    (ih, iw), (oh, ow) = inp.shape[-2:], out.shape[-2:]
    if oh % ih or ow % iw or oh // ih != ow // iw:
        raise RuntimeError(f'the generator maps {ih}x{iw} to {oh}x{ow}, not an integer scale; '
                           'chop / tile / padding need an integer up-scaling factor')
    return oh // ih


__all__ = ['ChopTile', 'chop_boxes', 'output_scale', 'pad_axis', 'tile_spans', 'tile_starts']
