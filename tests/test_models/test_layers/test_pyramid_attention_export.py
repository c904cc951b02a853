"""Export and TorchScript of the block, and the empty batch.

``torch.export`` (strict: dynamo, and non-strict) computes the attention with the reference formulation
(the chunked kernel cannot be put in a graph); ``torch.jit.trace`` keeps the kernel (mmengine's flop counter
counts its node), so a savable TorchScript module is traced from ``implementation='reference'``.
"""
import inspect
import warnings

import pytest
import torch

from panet_mm.models.layers import PyramidAttention
from panet_mm.ops.kernel import exporting


def _block(implementation='chunked'):
    torch.manual_seed(0)
    return PyramidAttention(8, 2, implementation=implementation).eval()


def _x(*shape, seed=1):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _model(name):
    """``(model, input channels)``: the block, or a small seeded PANet / PA-EDSR x2 built from the registry."""
    if name == 'block':
        return _block(), 8
    from mmagic.registry import MODELS

    import panet_mm  # noqa: F401
    torch.manual_seed(0)
    extra = dict(out_channels=3, upscale_factor=2) if name == 'PAEDSRNet' else {}
    return MODELS.build(dict(type=name, in_channels=3, mid_channels=8, num_blocks=1, **extra)).eval(), 3


class _Flag(torch.nn.Module):
    """Adds 1 where :func:`exporting` is True at trace time."""

    def forward(self, x):
        return x + float(exporting())


@pytest.mark.parametrize('strict', [True, False])
def test_exporting_is_seen_by_torch_export(strict):
    x = _x(2, 3)
    assert not exporting()
    ep = torch.export.export(_Flag(), (x,), strict=strict)
    assert torch.equal(ep.module()(x), x + 1)
    assert not exporting()                         # reset after the export


def test_exporting_is_false_under_jit_trace():
    """jit.trace (the flop counter's tracer) is no export: the chunked kernel stays there."""
    x = _x(2, 3)
    traced = torch.jit.trace(_Flag(), (x,))
    assert torch.equal(traced(x), x)


@pytest.mark.parametrize('strict', [True, False])
def test_torch_export_of_the_chunked_block_equals_eager(strict):
    block, x = _block(), _x(2, 8, 12, 11)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ep = torch.export.export(block, (x,), strict=strict)
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(x), block(x), rtol=1e-5, atol=1e-5)
        other = _x(2, 8, 12, 11, seed=2)            # another input of the exported size
        torch.testing.assert_close(ep.module()(other), block(other), rtol=1e-5, atol=1e-5)
    # the graph holds plain tensor operations, no Python call of the kernel
    targets = {str(n.target) for n in ep.graph.nodes if n.op == 'call_function'}
    assert not any('Chunked' in t for t in targets), targets


@pytest.mark.parametrize('model', ['block', 'PANet'])
@pytest.mark.parametrize('strict', [True, False])
def test_torch_export_with_dynamic_batch_height_and_width(strict, model):
    """Sizes declared dynamic stay dynamic: non-strict export pinned the batch to the example's (int() of the
    sizes) and the height and width (int() of the pyramid's level sizes)."""
    net, channels = _model(model)
    x = _x(2, channels, 12, 11)
    dims = {0: torch.export.Dim('batch', min=1, max=16), 2: torch.export.Dim('height', min=8, max=128),
            3: torch.export.Dim('width', min=8, max=128)}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ep = torch.export.export(net, (x,), dynamic_shapes={'x': dims}, strict=strict)
    for seed, shape in enumerate([(5, channels, 12, 11), (1, channels, 23, 9), (1, channels, 8, 40)]):
        other = _x(*shape, seed=3 + seed)
        with torch.no_grad():
            torch.testing.assert_close(ep.module()(other), net(other), rtol=1e-5, atol=1e-5)


def test_torch_export_save_load_round_trip(tmp_path):
    block, x = _block(), _x(1, 8, 10, 12)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ep = torch.export.export(block, (x,))
        torch.export.save(ep, str(tmp_path / 'block.pt2'))
        loaded = torch.export.load(str(tmp_path / 'block.pt2'))
    with torch.no_grad():
        torch.testing.assert_close(loaded.module()(x), block(x), rtol=1e-5, atol=1e-5)


def test_reference_trace_saves_and_loads(tmp_path):
    """The documented route to a savable TorchScript module: trace implementation='reference'."""
    block, x = _block(), _x(2, 8, 12, 11)
    expected = block(x).detach()
    block.implementation = 'reference'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')            # TracerWarnings (sizes become constants), deprecations
        traced = torch.jit.trace(block, (x,))
        torch.jit.save(traced, str(tmp_path / 'block.pt'))
        loaded = torch.jit.load(str(tmp_path / 'block.pt'))
    torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-5)
    other = _x(3, 8, 12, 11, seed=3)               # other batch size, same height and width
    torch.testing.assert_close(loaded(other), block(other), rtol=1e-5, atol=1e-5)


def test_a_trace_under_no_grad_passes_its_sanity_check():
    """The README's TorchScript route: a default trace (check_trace on) of the chunked kernel under no_grad. With
    gradients on, its sanity check failed with pages of differing graphs."""
    block, x = _block(), _x(1, 8, 10, 10)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(block, (x,))
        torch.testing.assert_close(traced(x), block(x))


def test_chunked_trace_runs_but_is_not_savable(tmp_path):
    """What the docstring says: a trace of the chunked kernel runs (the flop counter's use), jit.save refuses it."""
    block, x = _block(), _x(1, 8, 10, 10)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(block, (x,), check_trace=False)
        torch.testing.assert_close(traced(x), block(x))
        with pytest.raises(RuntimeError, match='_ChunkedAttention'):
            torch.jit.save(traced, str(tmp_path / 'block.pt'))


@pytest.mark.parametrize('implementation', ['chunked', 'reference'])
def test_empty_batch(implementation):
    """An empty batch gives an empty output of the input's shape, and a backward (zero gradients)."""
    block = _block(implementation).train()
    x = torch.rand(0, 8, 9, 11, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad.shape == x.shape
    for name, p in block.named_parameters():
        assert p.grad is not None and not p.grad.any(), name
    with torch.no_grad():
        assert block(torch.rand(0, 8, 9, 11)).shape == (0, 8, 9, 11)


def _onnx_export(model, x, path):
    """``torch.onnx.export`` at opset 18 (the first with Col2Im, which the attention's patch paste needs), the batch
    dynamic; the TorchScript-based exporter where torch has both (the dynamo one is tested below)."""
    kwargs = dict(opset_version=18, input_names=['x'], output_names=['y'],
                  dynamic_axes={'x': {0: 'batch'}, 'y': {0: 'batch'}})
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kwargs['dynamo'] = False
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (x,), str(path), **kwargs)


@pytest.mark.parametrize('model', ['block', 'PANet', 'PAEDSRNet'])
def test_onnx_export_runs_in_onnxruntime_like_eager(model, tmp_path):
    """The exported graph (attention by the reference formulation), run by onnxruntime on another batch size."""
    pytest.importorskip('onnx', reason='ONNX export needs the onnx package (pip install panet_mm[onnx])')
    ort = pytest.importorskip('onnxruntime', reason='running the export needs onnxruntime (panet_mm[onnx])')
    net, channels = _model(model)
    x = _x(2, channels, 12, 11) if model == 'block' else _x(2, channels, 14, 13)
    _onnx_export(net, x, tmp_path / 'model.onnx')
    session = ort.InferenceSession(str(tmp_path / 'model.onnx'), providers=['CPUExecutionProvider'])
    other = _x(3, *x.shape[1:], seed=4)
    (out,) = session.run(None, {'x': other.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), net(other), rtol=1e-5, atol=2e-5)


_TORCH = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2])


@pytest.mark.skipif(_TORCH < (2, 14), reason='the dynamo ONNX exporter of torch 2.5 cannot translate the pyramid '
                    "level sizes' symbolic float arithmetic (sym_float); dynamic ONNX sizes are tested on torch 2.14")
@pytest.mark.parametrize('model', ['block', 'PAEDSRNet'])
def test_onnx_dynamo_export_keeps_height_and_width_dynamic(model, tmp_path):
    """torch's dynamo exporter (``dynamo=True``, onnxscript) with ``dynamic_shapes``: one ONNX file runs at other
    batch sizes, heights and widths, odd ones included, like eager."""
    pytest.importorskip('onnxscript', reason="torch's dynamo ONNX exporter needs onnxscript (panet_mm[onnx])")
    ort = pytest.importorskip('onnxruntime', reason='running the export needs onnxruntime (panet_mm[onnx])')
    net, channels = _model(model)
    dims = {0: torch.export.Dim('batch', min=1, max=8), 2: torch.export.Dim('height', min=8, max=256),
            3: torch.export.Dim('width', min=8, max=256)}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        program = torch.onnx.export(net, (_x(2, channels, 14, 13),), dynamo=True, opset_version=18,
                                    input_names=['x'], output_names=['y'], dynamic_shapes={'x': dims}, verbose=False)
    program.save(str(tmp_path / 'model.onnx'))
    session = ort.InferenceSession(str(tmp_path / 'model.onnx'), providers=['CPUExecutionProvider'])
    for seed, shape in enumerate([(1, channels, 23, 9), (3, channels, 8, 31)]):
        other = _x(*shape, seed=5 + seed)
        (out,) = session.run(None, {'x': other.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(out), net(other), rtol=1e-5, atol=2e-5)
