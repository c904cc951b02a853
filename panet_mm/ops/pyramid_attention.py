"""Pyramid attention maths in plain torch: every public name of :mod:`panet_mm.ops` in one place.

The code is split by concern; this module re-exports it so that ``from
panet_mm.ops.pyramid_attention import ...`` keeps working:

* :mod:`~panet_mm.ops.pyramid`: pyramid scales and levels, patches;
* :mod:`~panet_mm.ops.reference`: the straightforward formulation (quadratic memory), the reference,
  and the released block's way of computing it (the benchmark's baseline);
* :mod:`~panet_mm.ops.layout`: the kernel's formulations (``'col'``, ``'row'``, ``'pixel'``, ``'patch'``);
* :mod:`~panet_mm.ops.cost`: memory / multiply-add model, chunk sizes;
* :mod:`~panet_mm.ops.chunks`: the per-chunk steps (probabilities, diagonal-shift sums, products);
* :mod:`~panet_mm.ops.kernel`: :func:`pyramid_attention`, the exact chunked kernel the model uses.

Nothing here imports mmagic or mmengine. The registered ``nn.Module`` is
``panet_mm/models/layers/pyramid_attention.py``.
"""
from .cost import (
    attention_macs,
    choose_batch_chunk,
    choose_chunk_size,
    choose_method,
    choose_panel_rows,
    default_memory_budget_mb,
    estimate_chunk_bytes,
)
from .kernel import pyramid_attention
from .pyramid import (
    build_pyramid,
    extract_patches,
    level_sizes,
    normalised_key_patches,
    pyramid_scales,
    smallest_side,
)
from .reference import pyramid_attention_reference, released_block_attention

__all__ = [
    'pyramid_scales',
    'level_sizes',
    'smallest_side',
    'build_pyramid',
    'extract_patches',
    'normalised_key_patches',
    'pyramid_attention_reference',
    'released_block_attention',
    'pyramid_attention',
    'choose_chunk_size',
    'choose_batch_chunk',
    'choose_method',
    'choose_panel_rows',
    'estimate_chunk_bytes',
    'attention_macs',
    'default_memory_budget_mb',
]
