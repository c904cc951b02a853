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


@pytest.mark.parametrize('signal_class, status', [(KeyboardInterrupt, 130), ('Terminated', 143)])
def test_an_interrupt_that_mmengine_turns_into_a_syntax_error_is_still_an_interrupt(monkeypatch, capsys,
                                                                                   signal_class, status):
    """Ctrl-C while a checkpoint was saved: mmengine's ``Config.pretty_text`` (the config text in every checkpoint)
    catches everything yapf raises and says "SyntaxError: Failed to format the config file" with the whole config
    (about 400 lines per rank under torchrun), exit status 1."""
    import mmengine.config.config
    from mmengine.config import Config

    from panet_mm.utils import interrupt
    from panet_mm.utils.interrupt import one_line_interrupts
    for key in ('WORLD_SIZE', 'RANK'):
        monkeypatch.delenv(key, raising=False)
    signal_class = getattr(interrupt, signal_class) if isinstance(signal_class, str) else signal_class

    def interrupted(*args, **kwargs):
        raise signal_class

    monkeypatch.setattr(mmengine.config.config, 'FormatCode', interrupted)   # yapf, as mmengine calls it
    cfg = Config(dict(model=dict(type='PAEDSRNet')))
    with pytest.raises(SyntaxError) as raised:          # what mmengine makes of it
        _ = cfg.pretty_text
    assert interrupting_signal(raised.value) == ('SIGTERM' if status == 143 else 'Ctrl-C')
    with pytest.raises(SystemExit) as stopped:
        with one_line_interrupts('kept'):
            _ = cfg.pretty_text
    assert stopped.value.code == status
    assert capsys.readouterr().err.strip().splitlines() == [
        f"interrupted ({'SIGTERM' if status == 143 else 'Ctrl-C'}): kept"]
    assert interrupting_signal(SyntaxError('Failed to format the config file')) is None   # a real one stays


@pytest.mark.parametrize('env, signal_name, line', [
    ({}, 'SIGTERM', 'interrupted (SIGTERM): kept'),
    ({'WORLD_SIZE': '1', 'RANK': '0'}, 'Ctrl-C', 'interrupted (Ctrl-C): kept'),
    ({'WORLD_SIZE': '2', 'RANK': '0'}, 'Ctrl-C', 'interrupted (Ctrl-C): kept'),
    ({'WORLD_SIZE': '2', 'RANK': '0'}, 'SIGTERM',
     'stopped (SIGTERM, by you or by the launcher after another process failed; see its line above): kept'),
    ({'WORLD_SIZE': '2', 'RANK': '1'}, 'Ctrl-C', None),
    ({'WORLD_SIZE': '2', 'RANK': '1'}, 'SIGTERM', None),
])
def test_one_line_per_run_said_by_rank_0(monkeypatch, env, signal_name, line):
    """Ctrl-C reaches every process of a distributed run: the line came once per rank. SIGTERM also comes from the
    launcher after another process failed: no rank said anything, not even at the user's own SIGTERM."""
    from panet_mm.utils.interrupt import interrupt_line
    for key in ('WORLD_SIZE', 'RANK'):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert interrupt_line(signal_name, 'kept') == line


def test_a_caller_that_goes_on_gets_its_signal_handlers_back():
    """The handlers are ignored while the line is printed; a caller that catches SystemExit (a test, a notebook)
    must still be able to stop with Ctrl-C."""
    from panet_mm.utils.interrupt import one_line_interrupts
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        with one_line_interrupts('kept'):
            raise KeyboardInterrupt
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


DATALOADER_SCRIPT = textwrap.dedent('''
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location('interrupt', sys.argv[1])  # (importing panet_mm takes seconds)
    interrupt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(interrupt)
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Slow(Dataset):
        def __len__(self):
            return 10 ** 6

        def __getitem__(self, i):
            time.sleep(0.01)
            return torch.zeros(2)

    with interrupt.one_line_interrupts('kept'):
        batches = iter(DataLoader(Slow(), num_workers=2, persistent_workers=True, batch_size=4))
        next(batches)
        print('ready', flush=True)
        for _ in batches:
            pass
''')


def test_dataloader_workers_stopped_by_the_same_sigterm_add_no_traceback_at_exit():
    """SIGTERM to the process group (`timeout`, a scheduler, torchrun's rank 0 in the user trial): after the line,
    multiprocessing's exit joined the DataLoader workers and torch's SIGCHLD handler printed 'Exception ignored in
    atexit callback ... RuntimeError: DataLoader worker (pid N) is killed by signal: Terminated.'"""
    from conftest import ROOT
    proc = subprocess.Popen([sys.executable, '-c', DATALOADER_SCRIPT, f'{ROOT}/panet_mm/utils/interrupt.py'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline() == 'ready\n'
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, err) == (143, 'interrupted (SIGTERM): kept\n')
