"""panet_mm.utils.compat: the numpy 2 alias for mmagic 1.2.0 (on import and as a start-up hook that covers
mmagic's own scripts) and numpy's renamed core module; run on whichever stack the suite runs on."""
import os.path as osp
import shutil
import site
import subprocess
import sys
import warnings

import mmagic
import numpy as np
import pytest
import torch
from conftest import demo_overrides, run_tool

import panet_mm  # noqa: F401  (applies the aliases, as a config's custom_imports does)
from panet_mm.utils import compat

NUMPY2 = int(np.__version__.split('.')[0]) >= 2
COMPAT_PY = osp.abspath(compat.__file__)


def run_python(code, *args):
    """Run ``code`` in a fresh interpreter of this venv that skips site-packages' ``.pth`` files (``-S``):
    site-packages is put on sys.path by hand, so only the hooks the code installs itself run."""
    prelude = f'import sys; sys.path[:0] = {site.getsitepackages()!r}\n'
    return subprocess.run([sys.executable, '-S', '-c', prelude + code, *args], capture_output=True, text=True,
                          timeout=300)


def test_import_gives_mmagic_the_numpy_alias():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)  # numpy 1 still has it, deprecated
        assert np.bool8 is np.bool_
    from mmagic.utils import trans_utils  # uses np.bool8 at import time
    assert trans_utils.dtype_range[np.bool_] == (False, True)


@pytest.mark.skipif(not NUMPY2, reason='numpy 1 still has np.bool8: nothing to fix')
def test_mmagic_fails_on_numpy2_without_the_alias():
    """The control for the hook test below: the alias is what makes mmagic import."""
    proc = run_python('import mmagic.utils')
    assert proc.returncode != 0 and "has no attribute 'bool8'" in proc.stderr, proc.stderr[-2000:]


def test_startup_hook_covers_programs_that_never_import_panet_mm(tmp_path):
    written = compat.install_startup_hook(tmp_path)
    assert written == tmp_path / compat.STARTUP_HOOK_PTH
    proc = run_python(
        'import site\n'
        f'site.addsitedir({str(tmp_path)!r})  # processes the .pth as Python start-up does\n'
        "assert 'numpy' not in sys.modules, 'the hook must not import numpy at start-up'\n"
        "assert not any(m == 'panet_mm' or m.startswith(('panet_mm.', 'torch')) for m in sys.modules)\n"
        'import mmagic.utils.trans_utils as t, numpy as np\n'
        'print(np.bool_ in t.dtype_range)\n')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == 'True'


def test_startup_hook_written_by_the_script_is_silent_once_compat_has_moved(tmp_path):
    moved = tmp_path / 'repo' / 'compat.py'
    moved.parent.mkdir()
    shutil.copy(COMPAT_PY, moved)
    site_dir = tmp_path / 'site'
    site_dir.mkdir()
    out = subprocess.run([sys.executable, str(moved), '--install-startup-hook', '--site-packages', str(site_dir)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == f'wrote {site_dir / compat.STARTUP_HOOK_PTH}'
    assert str(moved) in (site_dir / compat.STARTUP_HOOK_PTH).read_text()
    moved.unlink()
    proc = run_python(f'import site; site.addsitedir({str(site_dir)!r}); print("started")')
    assert proc.returncode == 0 and proc.stdout.strip() == 'started'
    assert proc.stderr == ''  # no "Error processing line ..." at every start-up


@pytest.mark.skipif(not NUMPY2, reason='the start-up hook is installed by the modern (numpy 2) set-up only')
def test_modern_venv_has_the_startup_hook():
    """mmagic's own scripts (tools/train.py, demos) run in this venv without importing panet_mm first."""
    proc = subprocess.run([sys.executable, '-c', 'import numpy as np, mmagic.utils; print(np.bool8 is np.bool_)'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == 'True', (
        f'{proc.stderr[-2000:]}\nnumpy 2 venv without the hook: run STACK=modern bash tools/setup_env.sh or '
        f'{sys.executable} {COMPAT_PY} --install-startup-hook')


def test_numpy_core_module_is_the_one_pickles_name():
    multiarray = compat.numpy_core_module('multiarray')
    assert multiarray.__name__ == ('numpy._core.multiarray' if NUMPY2 else 'numpy.core.multiarray')
    arr = np.arange(3, dtype=np.float32)
    assert multiarray._reconstruct is arr.__reduce__()[0]


@pytest.mark.slow
def test_mmagic_own_train_script_trains_a_mixing_config(demo_root, tmp_path):
    """mmagic's own tools/train.py (site-packages) imports mmagic before the config pulls in panet_mm: on
    numpy 2 only the start-up hook lets it start. Two iterations of a mixing config, validated."""
    script = osp.join(osp.dirname(mmagic.__file__), '.mim', 'tools', 'train.py')
    work = tmp_path / 'work'
    short = {'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2, 'default_hooks.checkpoint.interval': 2,
             'default_hooks.logger.interval': 1, 'val_dataloader.dataset.indices': [1]}
    proc = run_tool([sys.executable, script, 'configs/mix/demo/edsr_pa_sr_x2_demo.py', '--work-dir', str(work)]
                    + demo_overrides(demo_root, **short), env={'OMP_NUM_THREADS': '2'})
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log and 'Set5/PSNR' in log
    assert (work / 'iter_2.pth').is_file()


@pytest.mark.parametrize('name', ['written_numpy1_torch2.5.pth', 'written_numpy2_torch2.14.pth'])
def test_checkpoints_with_numpy_data_load_weights_only_on_either_stack(name):
    """Files written by ``torch.save`` on the pinned stack (numpy 1.26, torch 2.5.1) and on the modern one
    (numpy 2.4, torch 2.14.1) name numpy's constructors under different modules; both load here.
    Written with: torch.manual_seed(0); torch.save({'state_dict': {'conv.weight': torch.randn(2, 1, 3, 3)},
    'meta': {'best_score': np.float64(18.5), 'iter': np.int64(4), 'mean': np.array([.5, .25], np.float32)}})."""
    from panet_mm.engine.checkpoint import load_weights_only
    path = osp.join(osp.dirname(__file__), 'data', name)
    with open(path, 'rb') as f:
        assert (b'numpy._core.multiarray' in f.read()) == ('numpy2' in name)  # what each numpy writes
    ckpt = load_weights_only(path)
    torch.manual_seed(0)
    assert torch.equal(ckpt['state_dict']['conv.weight'], torch.randn(2, 1, 3, 3))
    meta = ckpt['meta']
    assert meta['best_score'] == 18.5 and type(meta['best_score']) is np.float64
    assert meta['iter'] == 4 and type(meta['iter']) is np.int64
    assert meta['mean'].dtype == np.float32 and meta['mean'].tolist() == [0.5, 0.25]
