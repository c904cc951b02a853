"""The cost model's 'auto' rule against the formulations' measured times; attention_macs per formulation;
the plan (formulation, images, chunk) within the memory budget."""
import importlib
import json
import os.path as osp
import warnings

import pytest
import torch

from panet_mm.ops.pyramid_attention import (
    attention_macs,
    choose_batch_chunk,
    choose_chunk_size,
    choose_method,
    estimate_chunk_bytes,
    pyramid_scales,
)

kernel_module = importlib.import_module('panet_mm.ops.kernel')

# tools/analysis_tools/benchmark_attention.py --methods col,pixel,row,patch --method-table ..., merged (see the README)
TABLE = osp.join(osp.dirname(osp.abspath(__file__)), 'data', 'attention_methods.json')
# the rule's pick may be this much slower than the fastest measured formulation (the machine was shared:
# the spread of one formulation's own rounds reached about this much)
MARGIN = 0.10


def load_table():
    with open(TABLE) as f:
        return json.load(f)


def test_table_covers_the_rule():
    """Both channel regimes the rule separates, in float32 and bfloat16, several sizes each (not vacuous)."""
    cases = {(e['channels'] // e['reduction'] + e['channels'], e['dtype']) for e in load_table()}
    assert {(96, 'float32'), (288, 'float32'), (96, 'bfloat16'), (288, 'bfloat16')} <= cases
    for e in load_table():
        assert set(e['times_s']) == {'col', 'pixel', 'row', 'patch'}, e
        assert e['fastest'] == min(e['times_s'], key=e['times_s'].get)


@pytest.mark.parametrize('entry', load_table(),
                         ids=lambda e: f"{e['device']}_{e['dtype']}_c{e['channels']}r{e['reduction']}_{e['size']}"
                                       f"{'_fb' if e['backward'] else ''}")
def test_auto_rule_picks_what_was_measured(entry):
    size, levels = entry['size'], entry['levels']
    sizes = [(int(size * s), int(size * s)) for s in pyramid_scales(levels)]
    picked = choose_method(size, size, sizes, entry['channels'] // entry['reduction'], entry['channels'],
                           dtype=getattr(torch, entry['dtype']), device=entry['device'])
    times = entry['times_s']
    assert times[picked] <= (1 + MARGIN) * times[entry['fastest']], (picked, times)


def test_auto_rule_on_cuda_is_col_until_measured():
    assert choose_method(64, 64, [(64, 64)], 32, 64, device='cuda') == 'col'
    assert choose_method(64, 64, [(64, 64)], 32, 256, dtype=torch.bfloat16, device='cuda:0') == 'col'


@pytest.mark.parametrize('method,per_pair', [('col', 3 * (32 + 64)), ('auto', 3 * (32 + 64)),
                                             ('pixel', 32 + 64), ('row', 3 * (32 + 64)), ('patch', 9 * (32 + 64))])
def test_attention_macs_per_formulation(method, per_pair):
    scales = pyramid_scales(5)
    pairs = 20 * 24 * sum(int(20 * s) * int(24 * s) for s in scales)
    assert attention_macs(20, 24, scales, 32, 64, method=method) == pairs * per_pair
    # forward+backward: scores and probabilities again, gradients of values, probabilities, query, keys
    dq, dv = per_pair * 32 // 96, per_pair * 64 // 96
    assert attention_macs(20, 24, scales, 32, 64, method=method, backward=True) == pairs * (4 * dq + 3 * dv)


def level_sizes(size: int) -> list:
    return [(int(size * s), int(size * s)) for s in pyramid_scales(5)]


def _expanded(batch: int, size: int, channels: int, reduction: int, grad: bool = False) -> tuple:
    """Query, keys and values of that shape without their memory (expanded scalars); with ``grad`` the query
    requires a gradient (a training call: the plan then budgets the backward)."""
    def t(c, h, w, needs=False):
        return torch.zeros((), requires_grad=needs).expand(batch, c, h, w)
    sizes = level_sizes(size)
    return (t(channels // reduction, size, size, grad), [t(channels // reduction, h, w) for h, w in sizes],
            [t(channels, h, w) for h, w in sizes])


def planned(batch: int, size: int, channels: int, reduction: int, budget=None, grad: bool = False):
    """The kernel's plan for 'auto' and default chunks."""
    return kernel_module._plan(*_expanded(batch, size, channels, reduction, grad), 3, 'auto', None, budget, None)


def test_auto_picks_pixel_only_where_one_row_fits_the_budget():
    """'pixel' holds whole padded query rows per stream: beyond the budget its chunks shrank to one pixel."""
    for size in (32, 48, 64, 80, 96, 128):
        row = estimate_chunk_bytes(size, size, size, level_sizes(size), 1, 3, torch.float32, 'pixel', 256)
        for budget in (256.0, 1024.0):
            expected = 'pixel' if row <= budget * 2**20 else 'col'
            assert choose_method(size, size, level_sizes(size), 32, 256, device='cpu',
                                 memory_budget_mb=budget) == expected, (size, budget)
    # PA-EDSR's block: 'pixel' at 64x64, 'col' from 96x96 up with the default 256 MiB, 'pixel' with more
    assert choose_method(64, 64, level_sizes(64), 32, 256, device='cpu') == 'pixel'
    assert choose_method(96, 96, level_sizes(96), 32, 256, device='cpu') == 'col'
    assert choose_method(96, 96, level_sizes(96), 32, 256, device='cpu', memory_budget_mb=1024) == 'pixel'
    # PANet's stays 'col' whatever the budget
    assert choose_method(64, 64, level_sizes(64), 32, 64, device='cpu', memory_budget_mb=1e6) == 'col'


def test_batch_chunk_leaves_room_for_two_rows(monkeypatch):
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    sizes = level_sizes(64)
    # two 64x64 PA-EDSR images ('pixel') would leave a one-pixel chunk in 256 MiB: one image at a time
    assert choose_batch_chunk(64, 64, sizes, 4, method='pixel', device='cpu', memory_budget_mb=256, channels=256) == 1
    assert choose_batch_chunk(64, 64, sizes, 4, method='pixel', device='cpu', memory_budget_mb=2048,
                              channels=256) == 2
    # the GPU keeps the whole batch
    assert choose_batch_chunk(64, 64, sizes, 4, method='pixel', device='cuda', memory_budget_mb=256,
                              channels=256) == 4


@pytest.mark.parametrize('grad', [False, True])
@pytest.mark.parametrize('channels,reduction', [(64, 2), (256, 8)])
@pytest.mark.parametrize('batch', [1, 2, 16])
@pytest.mark.parametrize('size', [48, 64, 96, 128])
def test_default_plan_keeps_chunks_of_rows(monkeypatch, size, batch, channels, reduction, grad):
    """Grouping images never shrinks a chunk below two rows or what one image alone would get, and the
    chunk fits the budget (before: PA-EDSR's 64x64 batches and every 96x96 map got one-pixel chunks): the
    backward's temporaries for a call that needs a gradient, the forward's for one that does not."""
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    plan = planned(batch, size, channels, reduction, grad=grad)
    sizes = level_sizes(size)
    alone = choose_chunk_size(size, size, sizes, 1, 3, torch.float32, 256.0, plan.method, 'cpu', channels,
                              backward=grad)
    assert plan.chunk_size >= min(2 * size, alone), plan
    assert plan.chunk_size >= size // 2, plan
    images = min(plan.batch_chunk, batch)
    assert estimate_chunk_bytes(plan.chunk_size, size, size, sizes, images, 3, torch.float32, plan.method,
                                channels, backward=grad) <= 256 * 2**20, plan


def test_inference_plans_budget_the_forward_alone():
    """Without autograd only the forward's temporaries exist (one gather, one paste): a whole 256x256 map gets
    2.6x larger chunks in the same budget (its forward 50.6 s instead of 73.0 s on the 2-core CPU: the thin
    chunks' products were limited by memory); a row larger than the cache is one chunk (96x96: four rows
    were 1.3x slower)."""
    sizes = level_sizes(256)
    forward = estimate_chunk_bytes(58, 256, 256, sizes, 1, 3, torch.float32, 'col', 64, backward=False)
    assert forward < estimate_chunk_bytes(58, 256, 256, sizes, 1, 3, torch.float32, 'col', 64) / 2
    with torch.no_grad():
        inference = planned(1, 256, 64, 2)
    training = planned(1, 256, 64, 2, grad=True)
    assert (inference.chunk_size, training.chunk_size) == (58, 22)
    assert planned(1, 256, 64, 2).chunk_size == 58      # grad enabled, but no input needs one
    for plan, backward in ((inference, False), (training, True)):
        need = estimate_chunk_bytes(plan.chunk_size, 256, 256, sizes, 1, 3, torch.float32, 'col', 64,
                                    backward=backward)
        assert need <= 256 * 2**20 < estimate_chunk_bytes(plan.chunk_size + 1, 256, 256, sizes, 1, 3, torch.float32,
                                                          'col', 64, backward=backward)
    with torch.no_grad():
        assert planned(1, 96, 64, 2).chunk_size == 96       # budget: 4 rows; one row out of cache already


def test_warns_where_not_even_one_pixel_fits():
    """A forced 'pixel' on PA-EDSR's 96x96 block (481 MiB per one-pixel chunk) names the cause and the fix."""
    with pytest.warns(UserWarning, match=r"method='pixel' on 1 x 96x96 needs 481 MiB .*method='auto' keeps chunks"):
        kernel_module._plan(*_expanded(1, 96, 256, 8, grad=True), 3, 'pixel', None, None, None)
    # a budget that holds the chunks, or 'auto': no warning
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        kernel_module._plan(*_expanded(1, 96, 256, 8), 3, 'pixel', None, 1024, None)
        kernel_module._plan(*_expanded(1, 96, 256, 8), 3, 'auto', None, None, None)
