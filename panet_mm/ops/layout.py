"""The formulations of the chunked kernel and the static layout (padding, shifts, chunks) of one call.

The score of query ``p`` and key ``j`` is an inner product of ``k x k`` patches. A formulation
unfolds only part of the patch into the feature dimension and sums the rest along diagonal shifts::

    <P(q)_p, P(k)_j>  = sum_dx <C(q)_{p+dx}, C(k)_{j+dx}>     # C(t): the k x 1 column of t around a pixel
    fold(A @ P(v))    = fold_kx1(A' @ C(v)),   A'_{p,j} = sum_dx A_{p-dx, j-dx}

(``'col'``; ``'row'`` is the transpose, ``'pixel'`` unfolds nothing and sums ``k*k`` shifts,
``'patch'`` unfolds everything and sums none).
"""
from __future__ import annotations

from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['METHODS', 'FORMULATIONS', 'Formulation', 'Geometry', 'make_geometry', 'resolve_method']


class Formulation(NamedTuple):
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
#   'pixel': Cq + C, 2*(k-1) shifted additions (k-1 along x, then k-1 along y, per level: separable),
#            a halo of r query rows.
FORMULATIONS = {
    'col': Formulation(unfold_y=True, unfold_x=False),
    'pixel': Formulation(unfold_y=False, unfold_x=False),
    'row': Formulation(unfold_y=False, unfold_x=True),
    'patch': Formulation(unfold_y=True, unfold_x=True),
}


METHODS = tuple(FORMULATIONS)
"""The names of the formulations."""


def resolve_method(method: str) -> str:
    """``method`` checked; ``'auto'`` stands for ``'col'`` where no shapes are known (cost estimates)."""
    if method == 'auto':
        return 'col'
    if method not in FORMULATIONS:
        raise ValueError(f"method must be 'auto' or one of {tuple(FORMULATIONS)}, got {method!r}")
    return method


class Geometry(NamedTuple):
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
        """``(a, m)``: padded flat start and span of every chunk of ``chunk_size`` real query pixels.

        The spans tile the padded positions from the first real pixel to the last one without gaps
        (a chunk ending a row takes the padding positions up to the next row's first pixel), so that
        one chunk's trailing halo is the next chunk's leading halo.
        """
        total = self.height * self.width
        for p0 in range(0, total, chunk_size):
            p1 = min(p0 + chunk_size, total)
            a = self.padded_index(p0)
            end = self.padded_index(p1) if p1 < total else self.padded_index(total - 1) + 1
            yield a, end - a

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

    def shift(self, dy: int, dx: int) -> Tuple[int, List[Tuple[int, int, int]]]:
        """``(query offset, [(start, end, key offset)])`` of the summed offset ``(dy, dx)``.

        Key positions ``start <= j < end`` have their neighbour at ``j + key offset``; every real key is
        covered (the padding is wide enough), padding keys are masked out of the softmax anyway.
        """
        total = self.num_keys
        if dy == 0:                 # the same flat key offset in every level: one slice
            ranges = [(max(0, -dx), total - max(0, dx), dx)]
        else:
            ranges, off = [], 0
            for hp, wp in self.padded_level_sizes:
                ok = dy * wp + dx
                ranges.append((off + max(0, -ok), off + hp * wp - max(0, ok), ok))
                off += hp * wp
        return dy * self.padded_width + dx, ranges

    def shifts(self) -> List[Tuple[int, List[Tuple[int, int, int]]]]:
        """:meth:`shift` of every summed offset but the centre."""
        return [self.shift(dy, dx) for dy, dx in self.offsets[1:]]

    def stages(self) -> List[Tuple[int, List[Tuple[int, List[Tuple[int, int, int]]]]]]:
        """The summed offsets as separable stages ``(halo, shifts)``: along x first, then along y.

        The offsets are a product ``ys x xs``, so the ``k*k``-term diagonal sum is two ``k``-term sums
        (``2*(k-1)`` passes instead of ``k*k - 1``). Every real (query, key) pair gets its exact
        score: its shifted neighbours all lie in the padding ring of its own level.
        """
        out = []
        if self.pad_x:
            out.append((self.pad_x, [self.shift(0, dx) for dx in range(-self.pad_x, self.pad_x + 1) if dx]))
        if self.pad_y:
            out.append((self.pad_y * self.padded_width,
                        [self.shift(dy, 0) for dy in range(-self.pad_y, self.pad_y + 1) if dy]))
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


def make_geometry(height: int, width: int, level_sizes: Sequence[Tuple[int, int]], ksize: int,
                  method: str) -> Geometry:
    """The layout of one call with ``method`` on a ``height x width`` query and these key/value levels."""
    spec = FORMULATIONS[resolve_method(method)]
    pad_y, pad_x = spec.padding(ksize // 2)
    return Geometry(height, width, pad_y, pad_x, spec.offsets(ksize // 2),
                    tuple((int(h), int(w)) for h, w in level_sizes))

