"""Flushing denormals to zero (panet_mm/utils/denormals.py): what it changes in a softmax, which threads it
reaches, and that tools/restore.py sets it before torch's CPU threads start (subprocess)."""
import sys

import pytest
import torch
from conftest import DEMO_CONFIG, run_tool

from panet_mm.utils.denormals import flushed_denormals, pool_flushes, thread_flushes

TINY = torch.finfo(torch.float32).tiny


def test_softmax_loses_only_its_denormal_probabilities():
    # exp(-87.3 .. -103) is a float32 denormal: logits spread as PA-EDSR's get such probabilities
    logits = torch.linspace(0.0, -120.0, 241)      # small: computed in the calling thread
    plain = torch.softmax(logits, 0)
    denormal = (plain > 0) & (plain < TINY)
    assert denormal.sum() > 20
    with flushed_denormals() as flushed:
        if not flushed:
            pytest.skip('this CPU has no flush-to-zero mode')
        assert thread_flushes()
        fast = torch.softmax(logits, 0)
    assert not thread_flushes()                    # the caller's mode restored
    assert torch.equal(fast[denormal], torch.zeros(int(denormal.sum())))
    assert torch.equal(fast[~denormal], plain[~denormal])


def test_disabled_changes_nothing():
    with flushed_denormals(enabled=False) as flushed:
        assert flushed is False and not thread_flushes()


def test_threads_started_before_keep_their_mode():
    """The pool's threads copy the mode when they start: set later, it reaches the calling thread only."""
    if torch.get_num_threads() < 2:
        pytest.skip('one CPU thread: no pool')
    torch.ones(1 << 20).mul_(2)                    # the pool has started (it has in any pytest run)
    with flushed_denormals() as flushed:
        if not flushed:
            pytest.skip('this CPU has no flush-to-zero mode')
        assert thread_flushes() and not pool_flushes()


SPY = """
import sys
import panet_mm.apis as apis
from panet_mm.apis import restore_cli
from panet_mm.utils.denormals import pool_flushes
seen, restore = [], apis.restore_files
def spy(*args, **kwargs):
    seen.append(pool_flushes())
    return restore(*args, **kwargs)
apis.restore_files = spy
rc = restore_cli.main(sys.argv[1:])
print('POOL FLUSHES', seen, 'RC', rc)
"""


def test_restore_tool_flushes_in_every_thread(demo_checkpoint, tmp_path):
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / 'a.png'), np.random.RandomState(0).randint(0, 255, (12, 14, 3), np.uint8))
    args = ['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint), str(tmp_path / 'a.png'),
            str(tmp_path / 'out'), '--no-progress']
    proc = run_tool([sys.executable, '-c', SPY, *args])
    if not torch.set_flush_denormal(False):      # (only asks whether the CPU has the mode)
        pytest.skip('this CPU has no flush-to-zero mode')
    assert 'POOL FLUSHES [True] RC 0' in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / 'out' / 'a.png').is_file()


def test_restore_tool_keep_denormals(demo_checkpoint, tmp_path, monkeypatch):
    import cv2
    import numpy as np

    import panet_mm.apis as apis
    from panet_mm.apis import restore_cli
    cv2.imwrite(str(tmp_path / 'a.png'), np.random.RandomState(0).randint(0, 255, (12, 14, 3), np.uint8))
    seen, restore = [], apis.restore_files

    def spy(*args, **kwargs):
        seen.append(thread_flushes())
        return restore(*args, **kwargs)
    monkeypatch.setattr(apis, 'restore_files', spy)

    def run(out, *flags):
        return restore_cli.main(['--config', DEMO_CONFIG, '--checkpoint', str(demo_checkpoint),
                                 str(tmp_path / 'a.png'), str(tmp_path / out), '--no-progress', *flags])
    assert run('kept', '--keep-denormals') == 0
    assert run('flushed') == 0
    assert seen == [False, torch.set_flush_denormal(False)]   # flushed where the CPU can
    assert not thread_flushes()                                # and restored after
    a, b = (cv2.imread(str(tmp_path / d / 'a.png')) for d in ('kept', 'flushed'))
    assert np.array_equal(a, b)
