"""Multiply-adds of the chunked pyramid attention kernel as a flop-counter handle (torch only).

mmengine's ``FlopAnalyzer`` (the counter behind mmagic's ``tools/analysis_tools/get_flops.py``)
traces the model with ``torch.jit.trace`` and counts each graph node with a handle chosen by the node's
kind. The kernel's ``torch.autograd.Function`` (:mod:`panet_mm.ops.kernel`) is one ``prim::PythonOp``
node, which no default handle knows (it would count 0). :func:`chunked_attention_flop_handle` counts it
exactly as :func:`panet_mm.ops.pyramid_attention.attention_macs` does, from the layout the kernel
records on the node. The registration in mmengine's table happens in ``panet_mm.models.layers.pyramid_attention``.
"""
from __future__ import annotations

from typing import Any, List

__all__ = ['CHUNKED_ATTENTION_OP', 'chunked_attention_flop_handle']

#: The traced node kind of the kernel's autograd function (``prim::PythonOp.<class name>``).
CHUNKED_ATTENTION_OP = 'prim::PythonOp._ChunkedAttention'


def _geometry_of(node: Any) -> Any:
    """The kernel's layout (query size, real level sizes) among the node's non-tensor arguments."""
    for arg in node.scalar_args():
        if all(hasattr(arg, name) for name in ('height', 'width', 'level_sizes')):
            return arg
    raise ValueError(f'{node.kind()} node without the kernel layout among its arguments: the kernel changed '
                     'its signature; update panet_mm/ops/flops.py')


def chunked_attention_flop_handle(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of one traced call of the chunked kernel (a handle of mmengine's ``FlopAnalyzer``).

    Every real query pixel meets every real key position of every level; a pair costs ``Dq + Dv``
    multiply-adds, the widths of the query and value embeddings of the formulation that ran
    (``ksize * (Cq + C)`` for ``'col'``, ``Cq + C`` for ``'pixel'``), as
    :func:`~panet_mm.ops.pyramid_attention.attention_macs` counts with that ``method``.
    The zero padding and the chunks' halo rows the kernel also multiplies are not counted.

    Args:
        inputs (list): The node's inputs (``torch._C.Value``): ``q (B, Np, Dq)``, ``k``, ``v (B, L', Dv)``, ...
        outputs (list): The node's outputs; the first one's node is the kernel call.

    Returns:
        int: Multiply-adds for the whole batch.
    """
    geo = _geometry_of(outputs[0].node())
    batch, _, query_width = inputs[0].type().sizes()
    value_width = inputs[2].type().sizes()[-1]
    keys = sum(h * w for h, w in geo.level_sizes)
    return int(batch) * geo.height * geo.width * keys * (int(query_width) + int(value_width))
