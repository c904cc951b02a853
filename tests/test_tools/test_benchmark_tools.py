"""tools/analysis_tools/benchmark_attention.py and measure_inference.py on tiny sizes: they run, report and refuse."""
import json
import sys

import pytest
import torch
from conftest import ROOT, run_tool


def test_benchmark_attention_table_json_and_plot(tmp_path):
    out_json, out_png = tmp_path / 'bench.json', tmp_path / 'bench.png'
    proc = run_tool([sys.executable, 'tools/analysis_tools/benchmark_attention.py', '--sizes', '12', '--fb-sizes', '10',
                     '--fb-batch', '3', '--repeats', '2', '--channels', '8', '--reduction', '2', '--threads', '1',
                     '--method', 'col', '--json', str(out_json), '--plot', str(out_png)], timeout=300)
    records = json.loads(out_json.read_text())
    assert {(r['impl'], r['pass'], r['size']) for r in records} == {
        (impl, pass_, size) for impl in ('fast', 'released', 'reference') for pass_, size in (('fwd', 12),
                                                                                           ('fwd+bwd', 10))}
    for r in records:
        assert 'error' not in r, r
        assert r['time_s'] > 0 and r['peak_bytes'] >= 0
        assert r['time_spread_s'][0] <= r['time_s'] <= r['time_spread_s'][1]
        assert r['matmul_gflops']['float32'] > 0 and r['matmul_gflops']['bfloat16'] > 0
    fast = {r['pass']: r for r in records if r['impl'] == 'fast'}
    for pass_, r in fast.items():
        # per-round ratios: their median lies within their spread
        lo, hi = r['ratio_released_spread']
        assert lo <= r['ratio_released'] <= hi
        # counted multiply-adds of 'col': forward Dq + Dv per (query, key) pair,
        # forward+backward 4*Dq + 3*Dv
        pairs = {'fwd': 144 * sum(int(12 * (1 - i / 10)) ** 2 for i in range(5)),
                 'fwd+bwd': 3 * 100 * sum(int(10 * (1 - i / 10)) ** 2 for i in range(5))}[pass_]
        dq, dv = 3 * 4, 3 * 8       # C=8, r=2: unfolded k x 1 columns of 4 and 8 channels
        assert r['macs'] == pairs * ((4 * dq + 3 * dv) if pass_ == 'fwd+bwd' else (dq + dv))
        assert r['gflops'] == pytest.approx(2 * r['macs'] / r['time_s'] / 1e9)
        # the share of torch.mm per round (each round's time against its own torch.mm rate), shown in the table
        lo, hi = r['matmul_share_spread']
        assert 0 < lo <= hi
        assert f"({100 * r['matmul_share']:.0f}%, {100 * lo:.0f}-{100 * hi:.0f}%)" in proc.stdout
    fast_bwd = fast['fwd+bwd']
    assert 1 <= fast_bwd['batch_chunk'] <= 3 and 1 <= fast_bwd['chunk_size'] <= 100
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith('| fwd')]
    assert len(table) == 2 and all(ln.count('|') == 15 for ln in table)
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_benchmark_attention_methods_table(tmp_path):
    table = tmp_path / 'methods.json'
    proc = run_tool([sys.executable, 'tools/analysis_tools/benchmark_attention.py', '--sizes', '10', '--fb-sizes', '',
                     '--repeats', '1', '--channels', '8', '--threads', '1', '--impls', '', '--methods', 'col,pixel',
                     '--no-memory', '--method-table', str(table)], timeout=300)
    (entry,) = json.loads(table.read_text())
    assert set(entry['times_s']) == {'col', 'pixel'} and entry['fastest'] == min(entry['times_s'],
                                                                                  key=entry['times_s'].get)
    assert (entry['size'], entry['channels'], entry['reduction'], entry['dtype'], entry['device'],
            entry['backward']) == (10, 8, 2, 'float32', 'cpu', False)
    assert '| fwd | 1 | 10x10 |' in proc.stdout


def test_benchmark_attention_training_step(tmp_path):
    """PA-EDSR training steps with and without the attention block: its share of a step."""
    out_json = tmp_path / 'step.json'
    proc = run_tool([sys.executable, 'tools/analysis_tools/benchmark_attention.py',
                     '--step', '2,10,16,2', '--impls', 'fast,released',
                     '--repeats', '1', '--threads', '1', '--json', str(out_json)], timeout=300)
    r = json.loads(out_json.read_text())
    assert set(r['step_s']) == {'without attention', 'with fast', 'with released'}
    for impl in ('fast', 'released'):
        assert r['attention_share'][impl] == pytest.approx(1 - r['step_s']['without attention'] /
                                                           r['step_s'][f'with {impl}'])
    assert '| with released | 2 | 10x10 |' in proc.stdout
    lo, hi = r['fast_over_released_spread']
    assert lo <= r['fast_over_released'] <= hi
    proc = run_tool([sys.executable, 'tools/analysis_tools/benchmark_attention.py',
                     '--step', '1,10,16,2', '--forward-only',
                     '--impls', 'fast', '--repeats', '1', '--threads', '1', '--json', str(out_json)], timeout=300)
    r = json.loads(out_json.read_text())
    assert r['train'] is False and set(r['step_s']) == {'without attention', 'with fast'}
    assert '| PA-EDSR x2 forward |' in proc.stdout and 'fast_over_released' not in r
    proc = run_tool([sys.executable, 'tools/analysis_tools/benchmark_attention.py',
                     '--step', '2,10'], check=False, timeout=300)
    assert proc.returncode != 0 and '--step must be BATCH,SIZE,CHANNELS,BLOCKS' in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize('network', ['pa-edsr', 'panet'])
def test_benchmark_networks_have_the_registered_generators_layers(network):
    """The benchmark's torch-only networks (its children import torch alone) are the registered generators'
    layers in order, shape for shape: the whole-network rows time the networks users run."""
    import importlib.util

    from panet_mm.models.editors.panet.panet_net import PAEDSRNet, PANet
    spec = importlib.util.spec_from_file_location('bench', f'{ROOT}/tools/analysis_tools/benchmark_attention.py')
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    net = bench.build_network(torch, bench.load_kernel(), network, 16, 4, lambda q, ks, vs: vs[0])
    if network == 'panet':
        registered = PANet(mid_channels=16, num_blocks=4)
    else:
        registered = PAEDSRNet(mid_channels=16, num_blocks=4, upscale_factor=2)
    shapes = [tuple(p.shape) for p in net.parameters()]
    expected = [tuple(p.shape) for name, p in registered.named_parameters() if 'mean' not in name]
    assert shapes == expected
    assert net(torch.rand(1, 3, 8, 8)).shape[-1] == (16 if network == 'pa-edsr' else 8)


def test_benchmark_reports_the_chunks_the_kernel_plans():
    """The table's chunk column is the kernel's own plan: the forward pass runs without autograd (forward
    budget), forward+backward with it (128x128: 128 against 98 pixels per chunk)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('bench', f'{ROOT}/tools/analysis_tools/benchmark_attention.py')
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from panet_mm.ops import kernel
    from panet_mm.ops.pyramid import pyramid_scales
    sizes = [(int(128 * s), int(128 * s)) for s in pyramid_scales(5)]
    chunks = {}
    for pass_ in ('fwd', 'fwd+bwd'):
        case = bench.Case(dict(device='cpu', size=128, batch=1, channels=64, reduction=2, levels=5, method='auto',
                               dtype='float32', memory_budget_mb=None, threads=0, **{'pass': pass_}))
        grad = pass_ == 'fwd+bwd'
        q = torch.zeros((), requires_grad=grad).expand(1, 32, 128, 128)
        with torch.set_grad_enabled(grad):
            plan = kernel._plan(q, [torch.zeros(1, 32, h, w) for h, w in sizes],
                                [torch.zeros(1, 64, h, w) for h, w in sizes], 3, 'auto', None, None, None)
        chunks[pass_] = case.chunk_info('fast')
        assert chunks[pass_] == (plan.batch_chunk, plan.chunk_size)
    assert chunks == {'fwd': (1, 128), 'fwd+bwd': (1, 98)}


def test_benchmark_panet_forward(tmp_path):
    """--network panet: the full PANet's forward with and without its attention (the GPU target's row)."""
    out_json = tmp_path / 'panet.json'
    proc = run_tool([sys.executable, 'tools/analysis_tools/benchmark_attention.py', '--step', '1,10,8,2',
                     '--network', 'panet', '--forward-only', '--impls', 'fast', '--repeats', '1', '--threads', '1',
                     '--json', str(out_json)], timeout=300)
    r = json.loads(out_json.read_text())
    assert (r['network'], r['reduction'], r['train']) == ('panet', 2, False)
    assert set(r['step_s']) == {'without attention', 'with fast'}
    assert '| PANet forward | batch | input |' in proc.stdout and '| with fast | 1 | 10x10 |' in proc.stdout


def test_device_check_smoke(tmp_path):
    """tools/device_check.sh --smoke: every step of the GPU check, on CPU at tiny sizes, one report."""
    proc = run_tool(['bash', 'tools/device_check.sh', '--smoke'], env={'OUT': str(tmp_path), 'PYTHON': sys.executable},
                    timeout=1200)
    report = (tmp_path / 'device_check.md').read_text()
    assert proc.stdout.strip().endswith(report.strip().splitlines()[-1])
    assert 'exit status 0' in report and ' passed' in report and 'failed' not in report
    for title in ('PANet block, C=64 r=2, float32', 'PA-EDSR block, C=256 r=8, float32',
                  'PANet block, bfloat16 autocast', 'PA-EDSR x2 training step, float32',
                  'PANet whole-image forward, float32', 'PANet whole-image forward, bfloat16 autocast'):
        section = report.split(f'## {title}')[1].split('\n## ')[0]
        assert '| fwd' in section or '| with fast' in section, title


def test_device_check_help_and_no_gpu_cost_nothing(tmp_path):
    """`--help` ran the whole check (minutes of a lent GPU's budget, 18 files); without CUDA every step failed."""
    env = {'OUT': str(tmp_path / 'out'), 'PYTHON': sys.executable, 'CUDA_VISIBLE_DEVICES': ''}
    proc = run_tool(['bash', 'tools/device_check.sh', '--help'], env=env, timeout=60)
    assert 'bash tools/device_check.sh --smoke' in proc.stdout and proc.returncode == 0
    proc = run_tool(['bash', 'tools/device_check.sh'], env=env, timeout=120, check=False)
    assert proc.returncode == 2 and 'sees no CUDA device here' in proc.stderr and '--smoke' in proc.stderr
    proc = run_tool(['bash', 'tools/device_check.sh', '--smok'], env=env, timeout=60, check=False)
    assert proc.returncode == 2 and "unknown argument '--smok'" in proc.stderr
    assert not (tmp_path / 'out').exists()


def test_device_check_skips_what_its_deadline_leaves_no_time_for(tmp_path):
    """The device tool stops a command after 600 s: past DEADLINE the check skips its remaining steps and still
    ends its report (the GPU targets' rows come first)."""
    run_tool(['bash', 'tools/device_check.sh', '--smoke'],
             env={'OUT': str(tmp_path), 'PYTHON': sys.executable, 'DEADLINE': '0'}, timeout=600)
    report = (tmp_path / 'device_check.md').read_text()
    sections = report.split('\n## ')[3:]                 # after the title, the environment and the tests
    assert sections[0].startswith('PA-EDSR x2 training step') and sections[1].startswith('PANet whole-image')
    assert len(sections) == 8 and all("of the check's DEADLINE=0 s were spent" in s for s in sections)
    assert report.strip().splitlines()[-1].startswith('total ')


def test_benchmark_attention_one_failing_implementation_spares_the_others(tmp_path):
    """An implementation that raises (here: an unknown method; on a GPU: a baseline out of memory) is reported,
    the others of the same case are still timed."""
    out_json = tmp_path / 'bench.json'
    run_tool([sys.executable, 'tools/analysis_tools/benchmark_attention.py',
              '--sizes', '10', '--fb-sizes', '', '--repeats', '1',
              '--channels', '8', '--threads', '1', '--no-memory', '--method', 'flash', '--json', str(out_json)],
             timeout=300)
    records = {r['impl']: r for r in json.loads(out_json.read_text())}
    assert "method must be 'auto' or one of" in records['fast']['error'] and 'time_s' not in records['fast']
    assert records['released']['time_s'] > 0 and records['reference']['ratio_released'] > 0


def test_benchmark_attention_skips_a_reference_that_would_not_fit(tmp_path):
    out_json = tmp_path / 'bench.json'
    run_tool([sys.executable, 'tools/analysis_tools/benchmark_attention.py',
              '--sizes', '12', '--fb-sizes', '', '--repeats', '0',
              '--channels', '8', '--max-ref-gb', '0', '--json', str(out_json)], timeout=300)
    records = {r['impl']: r for r in json.loads(out_json.read_text())}
    for base in ('released', 'reference'):
        assert 'skipped' in records[base] and 'time_s' not in records[base]
    assert records['fast']['time_s'] > 0 and 'ratio_released' not in records['fast']


def test_measure_inference_whole_image_and_tiles(tmp_path):
    out_json = tmp_path / 'm.json'
    proc = run_tool([sys.executable, 'tools/analysis_tools/measure_inference.py',
                     'configs/demo/panet_dn_sigma30_demo.py',
                     '--size', '24x20', '--json', str(out_json)], timeout=300)
    r = json.loads(out_json.read_text())
    assert r['input'] == [1, 3, 24, 20] and r['output'] == [1, 3, 24, 20]
    assert r['generator'] == 'PANet' and r['model'] == 'PANetEditModel'
    assert r['peak_rss_bytes'] >= r['rss_increase_bytes'] >= 0 and r['time_s'] > 0
    assert 'whole image' in proc.stdout and 'peak memory of the process' in proc.stdout
    assert r['denormals_flushed'] is torch.set_flush_denormal(False)   # as tools/restore.py, where the CPU can
    proc = run_tool([sys.executable, 'tools/analysis_tools/measure_inference.py', 'configs/demo/panet_sr_x2_demo.py',
                     '--size', '16', '--test-cfg', 'tile=8,2', '--json', str(out_json), '--keep-denormals'],
                    timeout=300)
    r = json.loads(out_json.read_text())
    assert r['output'][2:] == [32, 32] and r['test_cfg']['tile'] == dict(size=8, overlap=2)
    assert r['denormals_flushed'] is False
    assert ', tile,' in proc.stdout


@pytest.mark.parametrize('args,message', [
    (['configs/nope.py'], "config file 'configs/nope.py' not found"),
    (['configs/demo/panet_dn_sigma30_demo.py', '--size', '0'], '--size must be N or HxW'),
    (['configs/demo/panet_dn_sigma30_demo.py', '--test-cfg', 'tiles'], "--test-cfg must be 'chop' or"),
    (['configs/demo/panet_dn_sigma30_demo.py', '--test-cfg', 'tile=0'], "'tile=0': tile=SIZE[,OVERLAP] needs 0 <= "),
    (['configs/demo/panet_dn_sigma30_demo.py', '--test-cfg', 'tile=8,8'], 'needs 0 <= OVERLAP < SIZE'),
    (['configs/demo/panet_dn_sigma30_demo.py', '--json', 'README.md/x.json'],  # refused before, not after, the run
     "--json 'README.md/x.json' cannot be written ('"),
])
def test_measure_inference_refuses_bad_arguments(args, message):
    proc = run_tool([sys.executable, 'tools/analysis_tools/measure_inference.py', *args], check=False, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
