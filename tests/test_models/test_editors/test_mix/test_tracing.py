"""WithPyramidAttention under tracing: token sites (SwinIR's RSTBs) take traced (H, W) sizes.

``torch.jit.trace`` (and mmengine's flop counter, which traces) reads ``x.shape[i]`` as 0-dim tensors, so
the ``x_size`` SwinIR passes to its RSTBs is a pair of tensors there; ``torch.compile`` gives SymInts.
"""
import os.path as osp
import sys
import warnings

import pytest
import torch
from conftest import ROOT, run_tool
from mmagic.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import panet_mm  # noqa: F401
from panet_mm.models.editors.mix.sites import token_hw

DEMO_SWINIR = osp.join(ROOT, 'configs', 'mix', 'demo', 'swinir_pa_dn30_demo.py')


@pytest.fixture(scope='module')
def swinir_demo():
    """The demo SwinIR mix generator (embedding 24, attention after layers.0), seeded, in eval mode."""
    init_default_scope('mmagic')
    cfg = Config.fromfile(DEMO_SWINIR)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield MODELS.build(cfg.model.generator).eval()
    torch.set_num_threads(threads)


def test_token_hw_takes_ints_and_traced_sizes():
    x = torch.zeros(1, 12, 4)
    assert token_hw((x, (3, 4)), 12) == (3, 4)
    h, w = token_hw((x, (torch.tensor(3), torch.tensor(4))), torch.tensor(12))  # sizes under torch.jit.trace
    assert (int(h), int(w)) == (3, 4)
    assert token_hw((x, (3, 5)), 12) is None
    assert token_hw((x, (True, 12)), 12) is None                      # bools are not sizes
    assert token_hw((x, (torch.tensor(3.0), torch.tensor(4.0))), 12) is None  # nor float tensors
    assert token_hw((x, (torch.tensor([3]), 4)), 12) is None          # nor 1-element vectors


def test_jit_trace_of_the_demo_swinir_mix_generator_equals_eager(swinir_demo):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # SwinIR's and the kernel's TracerWarnings
        # check_trace=False: the pyramid attention kernel is an autograd Function (a PythonOp in the graph),
        # which torch's re-trace comparison cannot match (as in tests/test_ops/test_flops.py).
        traced = torch.jit.trace(swinir_demo, (x,), check_trace=False)
        assert 'name="after_layers_0"' in str(traced.graph)  # the attention is called in the traced graph
        torch.testing.assert_close(traced(x), swinir_demo(x), rtol=0, atol=0)


def test_mmengine_complexity_counts_the_attention_at_a_token_site(swinir_demo):
    from mmengine.analysis import FlopAnalyzer, get_model_complexity_info

    info = get_model_complexity_info(swinir_demo, input_shape=(3, 32, 32), show_table=False, show_arch=False)
    assert info['flops'] > 0
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        analyzer = FlopAnalyzer(swinir_demo, (torch.zeros(1, 3, 32, 32),)).unsupported_ops_warnings(False)
        counted = analyzer.total('attentions.after_layers_0')
    assert counted == swinir_demo.attentions.after_layers_0.macs(32, 32) > 0
    assert analyzer.total() == info['flops']


def test_get_flops_tool_on_the_demo_swinir_mix_config():
    proc = run_tool([sys.executable, 'tools/analysis_tools/get_flops.py', DEMO_SWINIR, '--shape', '32', '32'],
                    timeout=300)
    line = next(s for s in proc.stdout.splitlines() if s.startswith('Pyramid attention attentions.after_layers_0'))
    counted, by_macs = line.split(': ')[1].split(' counted, ')
    assert counted == by_macs.split(' by its macs()')[0]
