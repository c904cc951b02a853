"""The released block's way of computing pyramid attention gives the reference's function; the ops
package imports with torch alone and re-exports every public name."""
import importlib
import os.path as osp
import subprocess
import sys

import pytest
import torch

from panet_mm.ops import pyramid_attention as pa
from panet_mm.ops.pyramid_attention import (
    build_pyramid,
    pyramid_attention_reference,
    pyramid_scales,
    released_block_attention,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
pytestmark = pytest.mark.usefixtures('one_thread')


def make_inputs(batch, cq, c, h, w, levels, seed=0):
    g = torch.Generator().manual_seed(seed)
    scales = pyramid_scales(levels)
    q = torch.randn(batch, cq, h, w, generator=g, dtype=torch.float64)
    keys = build_pyramid(torch.randn(batch, cq, h, w, generator=g, dtype=torch.float64), scales)
    values = build_pyramid(torch.randn(batch, c, h, w, generator=g, dtype=torch.float64), scales)
    return [t.requires_grad_() for t in (q, *keys, *values)], len(keys)


@pytest.mark.parametrize('shape,kwargs', [
    ((3, 4, 6, 7, 9, 5), {}),                                                  # odd size, batch loop
    ((1, 32, 64, 6, 6, 5), {}),                                                # PANet channels
    ((2, 3, 5, 9, 8, 3), dict(ksize=5, softmax_scale=3.0, divisor=9.0, eps=0.5)),
])
def test_released_block_matches_reference(shape, kwargs):
    leaves, n = make_inputs(*shape)
    q, keys, values = leaves[0], leaves[1:1 + n], leaves[1 + n:]
    grad = torch.randn(shape[0], shape[2], shape[3], shape[4], generator=torch.Generator().manual_seed(1),
                       dtype=torch.float64)
    released = released_block_attention(q, keys, values, **kwargs)
    expected = pyramid_attention_reference(q, keys, values, **kwargs)
    assert released.shape == expected.shape == (shape[0], shape[2], shape[3], shape[4])
    torch.testing.assert_close(released, expected, rtol=0, atol=1e-12)
    g_released = torch.autograd.grad((released * grad).sum(), leaves)
    g_expected = torch.autograd.grad((expected * grad).sum(), leaves)
    for a, e in zip(g_released, g_expected):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-10)


def test_released_block_rejects_even_patch():
    leaves, n = make_inputs(1, 2, 3, 5, 5, 2)
    with pytest.raises(ValueError, match='ksize must be odd'):
        released_block_attention(leaves[0], leaves[1:1 + n], leaves[1 + n:], ksize=2)


def test_facade_reexports_every_public_name():
    for name in ('pyramid', 'reference', 'layout', 'cost', 'kernel'):
        module = importlib.import_module(f'panet_mm.ops.{name}')
        for public in module.__all__:
            assert hasattr(module, public), (name, public)
            if name != 'layout':
                assert getattr(pa, public) is getattr(module, public), (name, public)
                assert public in pa.__all__, (name, public)


def test_ops_import_with_torch_alone(tmp_path):
    """``panet_mm.ops`` needs neither mmagic nor mmengine (nor the package's registering ``__init__``)."""
    shim = tmp_path / 'panet_mm'
    shim.mkdir()
    (shim / '__init__.py').write_text(f'__path__ = [{osp.join(ROOT, "panet_mm")!r}]\n')
    code = ("import sys\n"
            "for name in ('mmagic', 'mmengine', 'mmcv'):\n"
            "    sys.modules[name] = None\n"
            "from panet_mm.ops.pyramid_attention import __all__, pyramid_attention\n"
            "import panet_mm.ops.pyramid_attention as pa\n"
            "assert all(hasattr(pa, n) for n in __all__)\n"
            "print('ok', len(__all__))\n")
    proc = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path), env={'PYTHONPATH': str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith('ok')
