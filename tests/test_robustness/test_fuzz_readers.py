"""Fuzz: a few hundred truncated / bit-flipped PNGs, JPEGs and checkpoints through the project's readers."""
import json
import os
import sys

from conftest import DEMO_CONFIG, ROOT, run_tool

WORKER = os.path.join(ROOT, 'tests', 'test_robustness', 'fuzz_worker.py')


def test_mutated_files_work_or_fail_with_one_line(tmp_path, demo_checkpoint):
    # a subprocess: a decoder that crashes (a signal) or hangs (the timeout) fails the test, not pytest
    proc = run_tool([sys.executable, WORKER, str(tmp_path), str(demo_checkpoint), DEMO_CONFIG, '--cases', '100'],
                    timeout=120, check=False, env={'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
    cases = [r for r in records if 'case' in r]
    assert len(cases) == 300
    counts = {}
    for r in cases:
        for reader, (status, text) in r['results'].items():
            assert status in ('ok', 'error'), (r['reader'], r['case'], reader, status, text)
            counts[(r['reader'], reader, status)] = counts.get((r['reader'], reader, status), 0) + 1
            if status == 'error':
                assert "'" in text and len(text) < 600  # names the file, one line
        write = r['results'].get('prepare_write')
        if write is not None:  # everything or nothing, never a temporary file
            assert r['written'] in ([], ['GTmod12/case.png', 'LRbicx2/case.png']), r
            assert (r['written'] != []) == (write[0] == 'ok'), r
            # a file the strict reader refuses never becomes data
            assert write[0] == r['results']['prepare_read'][0], r
    # every kind of file was both accepted (harmless flips) and refused (truncations)
    for kind in ('png', 'jpg'):
        assert counts.get((kind, 'prepare_read', 'error'), 0) >= 50
    assert counts.get(('checkpoint', 'load_state_dict_safely', 'error'), 0) >= 50
    assert records[-1]['seconds'] < 60
