"""Shared fixtures: the offline demo data, built once per test session."""
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(args, cwd=ROOT, timeout=600, env=None, check=True):
    """Run a repository tool in a subprocess with this interpreter; return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env['PATH'] = osp.dirname(sys.executable) + os.pathsep + full_env.get('PATH', '')
    full_env['PYTHONPATH'] = ROOT + os.pathsep + full_env.get('PYTHONPATH', '')
    full_env.update(env or {})
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}'
                             f'\n--- stderr ---\n{proc.stderr[-6000:]}')
    return proc


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """The demo dataset (tools/make_demo_data.py) in a temporary folder."""
    out = tmp_path_factory.mktemp('demo') / 'demo'
    run_tool([sys.executable, 'tools/make_demo_data.py', '--out', str(out)])
    return out


def demo_overrides(demo_root, **extra):
    """--cfg-options that point a demo config at ``demo_root`` and shorten it."""
    opts = {
        'train_dataloader.dataset.data_root': f'{demo_root}/DIV2K',
        'val_dataloader.dataset.data_root': f'{demo_root}/Set5',
        'test_dataloader.dataset.data_root': f'{demo_root}/Set5',
        'train_dataloader.num_workers': 0,
    }
    opts.update(extra)
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]
