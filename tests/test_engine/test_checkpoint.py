"""Weights-only checkpoint loading and atomic writes (panet_mm.engine.checkpoint)."""
import os
import pickle
from unittest import mock

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

from panet_mm.engine import UnsafeCheckpointError, WeightsOnlyCheckpointHook, load_weights_only
from panet_mm.engine.checkpoint import ATOMIC_BACKEND, AtomicLocalBackend, safe_checkpoint_loading


def mmengine_like_checkpoint():
    buf = HistoryBuffer([1.0, 2.0, 3.0], [1, 1, 1], max_length=10)
    return {'meta': {'iter': 3, 'seed': 0, 'cfg': 'model = dict()'},
            'state_dict': {'generator.w': torch.ones(2)},
            'message_hub': {'log_scalars': {'train/loss': buf}, 'runtime_info': {'iter': 3}, 'resumed_keys': {}}}


def test_hook_makes_checkpoint_weights_only_loadable_and_round_trips(tmp_path):
    ckpt = mmengine_like_checkpoint()
    path = tmp_path / 'plain.pth'
    torch.save(ckpt, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # what torch >= 2.6 refuses by default
    buf = load_weights_only(path)['message_hub']['log_scalars']['train/loss']  # the safe loader reads it
    assert isinstance(buf, HistoryBuffer) and buf.mean() == 2.0 and buf.statistics('max') == 3.0

    hook = WeightsOnlyCheckpointHook()
    hook.before_save_checkpoint(None, ckpt)
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)  # plain torch, no allowlist
    hook.after_load_checkpoint(None, loaded)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == 2.0 and buf.current() == 3.0 and buf.max_length == 10


class Exploit:
    def __reduce__(self):
        return (os.system, ('touch /tmp/panet_mm_pwned',))


def test_crafted_pickle_is_refused_without_running_code(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': Exploit()}, path)
    marker = '/tmp/panet_mm_pwned'
    if os.path.exists(marker):
        os.remove(marker)
    with pytest.raises(UnsafeCheckpointError, match='never unpickles objects that could run code') as err:
        with safe_checkpoint_loading():
            _load_checkpoint(str(path), map_location='cpu')  # mmengine's loader, inside panet_mm's scope
    assert not os.path.exists(marker)
    assert 'posix.system' in str(err.value)  # torch's reason, kept
    assert 'weights_only' not in str(err.value) and 'False' not in str(err.value)  # never its advice


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UnsafeCheckpointError, match='truncated, corrupt'):
        load_weights_only(path)


def test_local_backend_writes_atomically(tmp_path):
    assert not isinstance(get_file_backend(str(tmp_path)), AtomicLocalBackend)  # mmengine's own, unchanged
    backend = get_file_backend(str(tmp_path), backend_args=dict(backend=ATOMIC_BACKEND))
    assert isinstance(backend, AtomicLocalBackend)
    target = tmp_path / 'iter_2.pth'
    backend.put(b'old complete checkpoint', target)
    with mock.patch('os.replace', side_effect=KeyboardInterrupt):  # killed just before the rename
        with pytest.raises(KeyboardInterrupt):
            backend.put(b'new' * 1000, target)
    assert target.read_bytes() == b'old complete checkpoint'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_2.pth']
    backend.put_text('iter_2.pth', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_2.pth'


def test_pickle_module_error_type():
    assert issubclass(UnsafeCheckpointError, pickle.UnpicklingError)


def test_the_runner_warns_about_a_checkpoint_of_another_level():
    """tools/test.py with a Q10 checkpoint under the q40 config printed LIVE1/PSNR of the q10 model, silently."""
    from types import SimpleNamespace

    from mmengine.config import Config

    from panet_mm.engine.runner import PANetRunner
    warned = []
    runner = SimpleNamespace(cfg=Config(dict(quality=40, scale=None)), logger=SimpleNamespace(warning=warned.append))
    PANetRunner._warn_other_task_level(runner, 'Q10.pth', {'meta': {'source': 'Q10.pt'}})
    assert warned == ["checkpoint 'Q10.pth' was made for quality = 10 and this config is for quality = 40: its "
                      'results are those of the quality 10 model; use the config for quality 10 unless you mean this '
                      '(fine-tuning to another level)']
    warned.clear()
    PANetRunner._warn_other_task_level(runner, 'q40.pth', {'meta': {'cfg': 'quality = 40\n'}})
    PANetRunner._warn_other_task_level(runner, 'plain.pth', {'state_dict': {}})
    assert warned == []


def test_the_runner_warns_about_a_checkpoint_of_another_task():
    """The released demosaicing model (model_best.pt, converted) tested under a denoising config loaded silently
    (same shapes); a converted model_N10.pt under the JPEG config too."""
    from types import SimpleNamespace

    from mmengine.config import Config

    from panet_mm.engine.runner import PANetRunner
    warned = []
    runner = SimpleNamespace(cfg=Config(dict(sigma=30)), logger=SimpleNamespace(warning=warned.append))
    PANetRunner._warn_other_task_level(runner, 'demosaic.pth', {'meta': {'source': 'model_best.pt'}})
    assert warned == ["checkpoint 'demosaic.pth' was made for another task (pattern = 'GRBG') than this config's "
                      "(sigma = 30): its results are those of that model; use its config (README \"Released "
                      'checkpoints" lists them) unless you mean this (fine-tuning to another task)']
    warned.clear()
    runner.cfg = Config(dict(pattern='GRBG'))
    PANetRunner._warn_other_task_level(runner, 'demosaic.pth', {'meta': {'source': 'model_best.pt'}})
    runner.cfg = Config(dict(quality=None, sigma=None))  # a config naming no level: nothing to compare
    PANetRunner._warn_other_task_level(runner, 'n10.pth', {'meta': {'source': 'model_N10.pt'}})
    assert warned == []
