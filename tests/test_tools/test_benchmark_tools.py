"""tools/benchmark_attention.py and tools/measure_inference.py on tiny sizes: they run, report and refuse."""
import json
import sys

import pytest
from conftest import run_tool


def test_benchmark_attention_table_json_and_plot(tmp_path):
    out_json, out_png = tmp_path / 'bench.json', tmp_path / 'bench.png'
    proc = run_tool([sys.executable, 'tools/benchmark_attention.py', '--sizes', '12', '--fb-sizes', '10',
                     '--fb-batch', '3', '--repeats', '1', '--channels', '8', '--reduction', '2',
                     '--json', str(out_json), '--plot', str(out_png)], timeout=300)
    records = json.loads(out_json.read_text())
    assert {(r['impl'], r['pass'], r['size']) for r in records} == {
        ('fast', 'fwd', 12), ('reference', 'fwd', 12), ('fast', 'fwd+bwd', 10), ('reference', 'fwd+bwd', 10)}
    for r in records:
        assert 'error' not in r, r
        assert r['time_s'] > 0 and r['peak_bytes'] >= 0
    fast_bwd = next(r for r in records if r['impl'] == 'fast' and r['pass'] == 'fwd+bwd')
    assert 1 <= fast_bwd['batch_chunk'] <= 3 and 1 <= fast_bwd['chunk_size'] <= 100
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith('| fwd')]
    assert len(table) == 2 and all(ln.count('|') == 12 for ln in table)
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_benchmark_attention_skips_a_reference_that_would_not_fit(tmp_path):
    out_json = tmp_path / 'bench.json'
    run_tool([sys.executable, 'tools/benchmark_attention.py', '--sizes', '12', '--fb-sizes', '', '--repeats', '0',
              '--channels', '8', '--max-ref-gb', '0', '--json', str(out_json)], timeout=300)
    ref = next(r for r in json.loads(out_json.read_text()) if r['impl'] == 'reference')
    assert 'skipped' in ref and 'time_s' not in ref


def test_measure_inference_whole_image_and_tiles(tmp_path):
    out_json = tmp_path / 'm.json'
    proc = run_tool([sys.executable, 'tools/measure_inference.py', 'configs/demo/panet_dn_sigma30_demo.py',
                     '--size', '24x20', '--json', str(out_json)], timeout=300)
    r = json.loads(out_json.read_text())
    assert r['input'] == [1, 3, 24, 20] and r['output'] == [1, 3, 24, 20]
    assert r['generator'] == 'PANet' and r['model'] == 'PANetEditModel'
    assert r['peak_rss_bytes'] >= r['rss_increase_bytes'] >= 0 and r['time_s'] > 0
    assert 'whole image' in proc.stdout and 'peak memory of the process' in proc.stdout
    proc = run_tool([sys.executable, 'tools/measure_inference.py', 'configs/demo/panet_sr_x2_demo.py',
                     '--size', '16', '--test-cfg', 'tile=8,2', '--json', str(out_json)], timeout=300)
    r = json.loads(out_json.read_text())
    assert r['output'][2:] == [32, 32] and r['test_cfg']['tile'] == dict(size=8, overlap=2)
    assert ', tile,' in proc.stdout


@pytest.mark.parametrize('args,message', [
    (['configs/nope.py'], "config file 'configs/nope.py' not found"),
    (['configs/demo/panet_dn_sigma30_demo.py', '--size', '0'], '--size must be N or HxW'),
    (['configs/demo/panet_dn_sigma30_demo.py', '--test-cfg', 'tiles'], "--test-cfg must be 'chop' or"),
])
def test_measure_inference_refuses_bad_arguments(args, message):
    proc = run_tool([sys.executable, 'tools/measure_inference.py', *args], check=False, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
