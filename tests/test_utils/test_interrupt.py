"""panet_mm.utils.interrupt: Ctrl-C and SIGTERM end a tool with one line after its clean-up (a subprocess each)."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from panet_mm.utils.interrupt import interrupting_signal

SCRIPT = textwrap.dedent('''
    import sys, time
    from panet_mm.utils.interrupt import one_line_interrupts
    with one_line_interrupts('the half-written file was removed; run it again'):
        try:
            print('ready', flush=True)
            time.sleep(60)
        finally:
            open(sys.argv[1], 'w').write('cleaned')
''')


def _interrupt(tmp_path, signum, env=None):
    marker = tmp_path / 'cleaned.txt'
    proc = subprocess.Popen([sys.executable, '-c', SCRIPT, str(marker)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})
    assert proc.stdout.readline() == 'ready\n'
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err, marker.exists()


@pytest.mark.parametrize('signum,status,name', [(signal.SIGTERM, 143, 'SIGTERM'), (signal.SIGINT, 130, 'Ctrl-C')])
def test_a_signal_runs_the_clean_up_then_says_one_line(tmp_path, signum, status, name):
    """SIGTERM ended the process without running finally clauses (the atomic writer's temporary file stayed); Ctrl-C
    printed a KeyboardInterrupt traceback."""
    code, err, cleaned = _interrupt(tmp_path, signum)
    assert (code, err, cleaned) == (status, f'interrupted ({name}): the half-written file was removed; run it again\n',
                                    True)


def test_a_rank_stopped_by_its_launcher_cleans_up_quietly(tmp_path):
    """torchrun stops the other ranks with SIGTERM when one fails; that one says why, the others add nothing."""
    code, err, cleaned = _interrupt(tmp_path, signal.SIGTERM, env={'WORLD_SIZE': '2', 'RANK': '1'})
    assert (code, err, cleaned) == (143, '', True)


def test_dataloader_workers_killed_by_the_same_signal_count_as_the_interrupt():
    """A signal to the process group (timeout, a scheduler) can reach torch's DataLoader workers first: the main
    process then raises RuntimeError, not KeyboardInterrupt."""
    assert interrupting_signal(RuntimeError('DataLoader worker (pid 13121) is killed by signal: Terminated. ')) \
        == 'SIGTERM'
    assert interrupting_signal(RuntimeError('DataLoader worker (pid 7) is killed by signal: Interrupt. ')) == 'Ctrl-C'
    assert interrupting_signal(RuntimeError('DataLoader worker (pid 7) is killed by signal: Segmentation fault. ')) \
        is None
    assert interrupting_signal(RuntimeError('shape mismatch')) is None
