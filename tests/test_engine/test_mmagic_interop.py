"""panet_mm next to other mmagic models: importing it changes nothing in mmengine / mmagic, checkpoints written
by mmagic's own tools/train.py (in a subprocess, panet_mm not imported) load in panet_mm, panet_mm checkpoints
load with a plain ``torch.load(weights_only=True)`` without panet_mm, and crafted pickles stay inert."""
import os
import os.path as osp
import pickle
import shutil
import sys

import mmagic
import pytest
import torch
from conftest import ROOT, demo_overrides, run_tool
from mmengine.registry import init_default_scope

from panet_mm.engine import UnsafeCheckpointError, load_weights_only
from panet_mm.utils.checkpoint import checkpoint_task_settings
from panet_mm.utils.compat import torch_load_defaults_to_weights_only

MMAGIC_TRAIN = osp.join(osp.dirname(mmagic.__file__), '.mim', 'tools', 'train.py')
MIX_DEMO = 'configs/mix/demo/edsr_pa_sr_x2_demo.py'
PANET_DEMO = 'configs/demo/panet_sr_x2_demo.py'
# EDSR of the mixing demo's size (32 channels, 4 blocks), from mmagic's own config; no panet_mm anywhere
PLAIN_EDSR_CONFIG = """_base_ = 'mmagic::edsr/edsr_x2c64b16_1xb16-300k_div2k.py'
model = dict(generator=dict(mid_channels=32, num_blocks=4))
train_dataloader = dict(num_workers=0, persistent_workers=False, batch_size=2, dataset=dict(data_root='{demo}/DIV2K'))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root='{demo}/Set5', indices=[1]))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2, out_dir=None), logger=dict(interval=1))
"""
# mmagic's tools/train.py, reporting at exit whether anything imported panet_mm
MMAGIC_LAUNCHER = f"""import atexit, runpy, sys
atexit.register(lambda: print('panet_mm imported:', 'panet_mm' in sys.modules))
sys.argv = [{MMAGIC_TRAIN!r}] + sys.argv[1:]
runpy.run_path({MMAGIC_TRAIN!r}, run_name='__main__')
"""


def mmagic_train(tmp, *args, check=True):
    """Run mmagic's own tools/train.py (from site-packages) in a subprocess."""
    launcher = tmp / 'mmagic_train.py'
    launcher.write_text(MMAGIC_LAUNCHER)
    proc = run_tool([sys.executable, str(launcher)] + [str(a) for a in args], check=check,
                    env={'OMP_NUM_THREADS': '1'})
    return proc, proc.stdout + proc.stderr


class Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def evil_checkpoint(folder, state_dict):
    path = folder / 'evil.pth'
    torch.save({'state_dict': state_dict, 'meta': Exploit(folder / 'pwned')}, path)
    return path


def assert_refused_with_torch_reason(text):
    assert 'holds Python objects that the weights-only loader refuses' in text and 'system' in text
    assert 'weights_only' not in text and 'False' not in text  # never the advice to unpickle anyway


@pytest.fixture(scope='module')
def mmagic_edsr(demo_root, tmp_path_factory):
    """A checkpoint written by mmagic's own tools/train.py (plain EDSR, 2 iterations), panet_mm not imported."""
    tmp = tmp_path_factory.mktemp('mmagic_edsr')
    config = tmp / 'edsr_tiny.py'
    config.write_text(PLAIN_EDSR_CONFIG.format(demo=demo_root))
    _, log = mmagic_train(tmp, config, '--work-dir', tmp / 'work')
    assert 'panet_mm imported: False' in log
    assert 'Iter(train) [2/2]' in log
    return config, tmp / 'work'


def test_importing_panet_mm_only_registers():
    code = """
import torch
from mmengine.fileio.backends import registry_utils as files
from mmengine.runner.checkpoint import CheckpointLoader
def snapshot():
    return (dict(CheckpointLoader._schemes), dict(files.prefix_to_backends), dict(files.backends),
            # torch >= 2.10 registers its own DTensor types when torch.distributed.tensor is first imported
            [g for g in torch.serialization.get_safe_globals()
             if not getattr(g, '__module__', '').startswith('torch.')])
before = snapshot()
import panet_mm, panet_mm.apis  # noqa
after = snapshot()
assert after[0] == before[0], 'checkpoint loaders changed'
assert after[1] == before[1], 'file backend prefixes changed'
assert {k: v for k, v in after[2].items() if k not in before[2]}.keys() == {'panet_mm_atomic_local'}
assert all(after[2][k] is v for k, v in before[2].items()), 'a file backend was replaced'
assert after[3] == before[3], 'torch safe globals changed'
print('unchanged')
"""
    proc = run_tool([sys.executable, '-c', code])
    assert 'unchanged' in proc.stdout


@pytest.mark.slow  # the fixture trains with mmagic's tools/train.py in a subprocess
def test_mmagic_checkpoint_loads_with_the_safe_loader_and_plain_weights(mmagic_edsr, tmp_path):
    from mmagic.registry import MODELS
    init_default_scope('mmagic')
    ckpt = mmagic_edsr[1] / 'iter_2.pth'
    with pytest.raises(pickle.UnpicklingError):  # what torch >= 2.6 refuses by default: mmengine's message hub
        torch.load(ckpt, weights_only=True)
    loaded = load_weights_only(ckpt)
    hub = loaded['message_hub']['log_scalars']
    assert type(hub['train/loss']).__name__ == 'HistoryBuffer' and hub['train/loss'].current() > 0
    assert loaded['meta']['iter'] == 2
    assert checkpoint_task_settings(loaded['meta']) == {'scale': 2}  # the config text mmagic's runner saves

    generator = dict(type='EDSRNet', in_channels=3, out_channels=3, mid_channels=32, num_blocks=4, upscale_factor=2)
    torch.manual_seed(1)
    net = MODELS.build(dict(type='WithPyramidAttention', generator=generator, insert=[dict(after='body.1')],
                            plain_weights=str(ckpt)))
    net.init_weights()
    state = net.state_dict()
    for key, value in loaded['state_dict'].items():
        assert torch.equal(state[key[len('generator.'):]], value), key

    marker = tmp_path / 'pwned'
    evil = evil_checkpoint(tmp_path, loaded['state_dict'])
    with pytest.raises(UnsafeCheckpointError) as err:
        net.load_plain_weights(str(evil))
    assert_refused_with_torch_reason(str(err.value))
    assert not marker.exists()


@pytest.mark.slow
def test_mmagic_train_with_mixing_config_loads_plain_weights_and_resumes(demo_root, mmagic_edsr, tmp_path):
    work = tmp_path / 'mix'
    ckpt = mmagic_edsr[1] / 'iter_2.pth'
    opts = demo_overrides(demo_root, **{'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                                        'default_hooks.checkpoint.interval': 2, 'default_hooks.logger.interval': 1,
                                        'val_dataloader.dataset.indices': [1],
                                        'model.generator.plain_weights': str(ckpt)})
    _, log = mmagic_train(tmp_path, MIX_DEMO, '--work-dir', work, *opts)
    assert 'panet_mm imported: True' in log and 'loaded' in log and 'Iter(train) [2/2]' in log
    longer = [o.replace('train_cfg.max_iters=2', 'train_cfg.max_iters=3') for o in opts]
    if not torch_load_defaults_to_weights_only():
        _, log = mmagic_train(tmp_path, MIX_DEMO, '--work-dir', work, '--resume', *longer)
        assert 'resumed epoch: 0, iter: 2' in log and 'Iter(train) [3/3]' in log
        return
    # torch >= 2.6: mmengine 0.10.7's plain torch.load refuses its own message hub (README "Stacks") ...
    proc, log = mmagic_train(tmp_path, MIX_DEMO, '--work-dir', work, '--resume', *longer, check=False)
    assert proc.returncode != 0 and 'GLOBAL mmengine.logging.history_buffer.HistoryBuffer' in log
    # ... and the README's remedy works: checkpoints written with WeightsOnlyCheckpointHook resume
    with_hook = tmp_path / 'mix_with_hook.py'
    with_hook.write_text(f"_base_ = [{osp.join(ROOT, MIX_DEMO)!r}]\n"
                         "custom_hooks = [dict(type='WeightsOnlyCheckpointHook')]\n")
    work = tmp_path / 'mix_hook'
    mmagic_train(tmp_path, with_hook, '--work-dir', work, *opts)
    _, log = mmagic_train(tmp_path, with_hook, '--work-dir', work, '--resume', *longer)
    assert 'resumed epoch: 0, iter: 2' in log and 'Iter(train) [3/3]' in log


@pytest.mark.slow
def test_panet_tools_load_from_and_resume_mmagic_checkpoints(demo_root, mmagic_edsr, tmp_path):
    config, work = mmagic_edsr
    ckpt = work / 'iter_2.pth'
    proc = run_tool([sys.executable, 'tools/train.py', str(config), '--work-dir', str(tmp_path / 'load'),
                     '--cfg-options', f'load_from={ckpt}', 'train_cfg.max_iters=1', 'train_cfg.val_interval=10'])
    log = proc.stdout + proc.stderr
    assert f'Load checkpoint from {ckpt}' in log and 'Iter(train) [1/1]' in log

    resumed = tmp_path / 'resume'
    shutil.copytree(work, resumed)
    proc = run_tool([sys.executable, 'tools/train.py', str(config), '--work-dir', str(resumed), '--resume',
                     '--cfg-options', 'train_cfg.max_iters=3', 'train_cfg.val_interval=10'])
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 2' in log and 'Iter(train) [3/3]' in log
    assert load_weights_only(resumed / 'iter_3.pth')['meta']['iter'] == 3


@pytest.mark.slow
def test_fine_tune_from_an_mmagic_checkpoint_resumes_after_it_moved(demo_root, mmagic_edsr, tmp_path):
    """A mixing fine-tune started from a checkpoint of mmagic's own tools/train.py (plain_weights) resumes with
    panet_mm's tools/train.py after that checkpoint was moved: the resume replaces every weight."""
    plain = tmp_path / 'edsr_iter_2.pth'
    shutil.copy(mmagic_edsr[1] / 'iter_2.pth', plain)
    work = tmp_path / 'fine_tune'
    opts = demo_overrides(demo_root, **{'train_cfg.max_iters': 2, 'train_cfg.val_interval': 100,
                                        'default_hooks.checkpoint.interval': 2,
                                        'model.generator.plain_weights': str(plain)})
    proc = run_tool([sys.executable, 'tools/train.py', MIX_DEMO, '--work-dir', str(work)] + opts)
    assert 'loaded' in proc.stdout + proc.stderr
    started = load_weights_only(work / 'iter_2.pth')['state_dict']
    plain.rename(tmp_path / 'moved.pth')
    longer = [o.replace('train_cfg.max_iters=2', 'train_cfg.max_iters=3') for o in opts]
    proc = run_tool([sys.executable, 'tools/train.py', MIX_DEMO, '--work-dir', str(work), '--resume'] + longer)
    log = sorted(work.glob('*/*.log'))[-1].read_text()
    assert 'plain_weights are not read' in log and 'resumed epoch: 0, iter: 2' in log
    resumed = load_weights_only(work / 'iter_3.pth')['state_dict']
    assert resumed.keys() == started.keys()
    key = next(k for k in started if k.endswith('conv_first.weight'))
    assert (resumed[key] - started[key]).abs().max() < 0.05  # one more step from iter 2, not a fresh start


PLAIN_TORCH_LOAD = """import sys, torch
ckpt = torch.load(sys.argv[1], map_location='cpu', weights_only=True)
assert 'panet_mm' not in sys.modules and 'mmengine' not in sys.modules
hub = ckpt['message_hub']
print('best_score', repr(hub['runtime_info'].get('best_score')), 'iter', ckpt['meta']['iter'])
"""


@pytest.mark.slow
def test_panet_checkpoint_loads_with_plain_torch_and_resumes_exactly(demo_root, tmp_path):
    def train(work, iters, *extra):
        opts = demo_overrides(demo_root, **{'train_cfg.max_iters': iters, 'train_cfg.val_interval': 2,
                                            'default_hooks.checkpoint.interval': 2,
                                            'val_dataloader.dataset.indices': [1]})
        run_tool([sys.executable, 'tools/train.py', PANET_DEMO, '--work-dir', str(work)] + opts + list(extra))

    train(tmp_path / 'ref', 4)
    train(tmp_path / 'work', 2)
    proc = run_tool([sys.executable, '-c', PLAIN_TORCH_LOAD, str(tmp_path / 'work' / 'iter_2.pth')])
    assert 'best_score' in proc.stdout and 'iter 2' in proc.stdout and 'array' not in proc.stdout
    train(tmp_path / 'work', 4, '--resume')
    got, want = (load_weights_only(tmp_path / d / 'iter_4.pth') for d in ('work', 'ref'))
    for k, v in want['state_dict'].items():
        torch.testing.assert_close(got['state_dict'][k], v, rtol=0, atol=1e-6, msg=k)
    assert got['message_hub']['runtime_info']['best_score'] == want['message_hub']['runtime_info']['best_score']


@pytest.mark.slow
def test_crafted_checkpoint_is_inert_in_panet_tools(demo_root, tmp_path):
    marker = tmp_path / 'pwned'
    evil = evil_checkpoint(tmp_path, {'w': torch.zeros(1)})
    proc = run_tool([sys.executable, 'tools/train.py', PANET_DEMO, '--work-dir', str(tmp_path / 'w')]
                    + demo_overrides(demo_root, load_from=str(evil), **{'train_cfg.max_iters': 1}), check=False)
    assert proc.returncode == 1 and not marker.exists()
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(lines) == 1
    assert_refused_with_torch_reason(lines[0])


@pytest.mark.slow  # tools/test.py in a subprocess (and the fixture's mmagic training)
def test_a_host_models_checkpoint_as_load_from_of_a_mixed_config_names_plain_weights(demo_root, mmagic_edsr,
                                                                                      tmp_path):
    """An EDSR checkpoint of mmagic's own tools/train.py tested under the EDSR mix config lacks only the inserted
    attention: the error said "for another architecture, depth or scale ... allow_partial_load=True"; it names
    plain_weights, the way to start a mixed model from it."""
    ckpt = mmagic_edsr[1] / 'iter_2.pth'
    proc = run_tool([sys.executable, 'tools/test.py', MIX_DEMO, str(ckpt), '--work-dir', str(tmp_path / 't')]
                    + demo_overrides(demo_root)[:1] + demo_overrides(demo_root)[2:4], check=False)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error')]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert "it is the host model's own checkpoint" in errors[0]
    assert f"model.generator.plain_weights='{ckpt}'" in errors[0] and 'allow_partial_load' not in errors[0]
