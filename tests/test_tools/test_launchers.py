"""tools/dist_*.sh and tools/slurm_*.sh: the torchrun / srun command lines they start (fake python and srun)."""
import os
import stat

import pytest
from conftest import ROOT, run_tool

ECHO = "#!/bin/sh\nprintf '%s PYTHONPATH=%s' \"$(basename \"$0\")\" \"$PYTHONPATH\"; printf ' [%s]' \"$@\"; echo\n"


@pytest.fixture
def fakes(tmp_path):
    """PATH and PYTHON pointing at scripts that print their arguments instead of running anything."""
    for name in ('python', 'srun'):
        path = tmp_path / name
        path.write_text(ECHO)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {'PATH': f"{tmp_path}{os.pathsep}{os.environ['PATH']}", 'PYTHON': str(tmp_path / 'python'),
            'PYTHONPATH': '', 'GPUS': '4', 'NNODES': '2', 'SRUN_ARGS': '--qos=x --mem 1', 'MASTER_PORT': '1234'}


def args_of(proc):
    line = proc.stdout.strip()
    return line.split(' ', 1)[0], line[line.index(' [') + 2:-1].split('] [')


def test_dist_scripts_start_torchrun(fakes):
    tools = f'{ROOT}/tools'
    name, args = args_of(run_tool(['bash', 'tools/dist_train.sh', 'c.py', '2', '--amp', 'a b'], env=fakes))
    assert name == 'python' and args == [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=0', '--master_addr=127.0.0.1',
        '--master_port=29500', '--nproc_per_node=2', f'{tools}/train.py', 'c.py', '--launcher', 'pytorch', '--amp',
        'a b']
    _, args = args_of(run_tool(['bash', 'tools/dist_test.sh', 'c.py', 'k.pth', '3', '--out', 'm.json'], env=fakes))
    assert args[6:] == ['--nproc_per_node=3', f'{tools}/test.py', 'c.py', 'k.pth', '--launcher', 'pytorch',
                        '--out', 'm.json']


def test_slurm_scripts_start_srun(fakes):
    tools = f'{ROOT}/tools'
    common = ['-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=4', '--ntasks-per-node=8',
              '--cpus-per-task=5', '--kill-on-bad-exit=1', '--qos=x', '--mem', '1', fakes['PYTHON'], '-u']
    proc = run_tool(['bash', 'tools/slurm_train.sh', 'part', 'job', 'c.py', 'wd', '--amp'], env=fakes)
    assert args_of(proc) == ('srun', common + [f'{tools}/train.py', 'c.py', '--work-dir=wd', '--launcher=slurm',
                                               '--amp'])
    assert f'PYTHONPATH={tools}/..' in proc.stdout
    proc = run_tool(['bash', 'tools/slurm_test.sh', 'part', 'job', 'c.py', 'k.pth', '--out', 'm n.json'], env=fakes)
    assert args_of(proc) == ('srun', common + [f'{tools}/test.py', 'c.py', 'k.pth', '--launcher=slurm', '--out',
                                               'm n.json'])


@pytest.mark.parametrize('script, args, usage', [
    ('dist_train.sh', ['c.py'], 'CONFIG GPUS [tools/train.py arguments...]'),
    ('dist_test.sh', ['c.py', 'k.pth'], 'CONFIG CHECKPOINT GPUS [tools/test.py arguments...]'),
    ('slurm_train.sh', ['p', 'j', 'c.py'], 'PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]'),
    ('slurm_test.sh', ['p', 'j', 'c.py'], 'PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py arguments...]'),
])
def test_too_few_arguments_print_the_usage(fakes, script, args, usage):
    proc = run_tool(['bash', f'tools/{script}', *args], env=fakes, check=False)
    assert proc.returncode == 2 and proc.stderr == f'usage: tools/{script} {usage}\n' and not proc.stdout


def test_a_python_without_torch_is_refused_with_the_fix(fakes, tmp_path):
    """`python` on PATH without torch (the README's commands call .venv/bin/python by path, never activating
    it): torchrun's 'No module named torch' traceback before; device_check.sh exited 0 with every step failed."""
    fakes['PYTHON'] = '/bin/false'   # (exits 1 for `-c 'import torch'` as a python without torch does)
    proc = run_tool(['bash', 'tools/dist_train.sh', 'c.py', '2'], env=fakes, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: torch is not importable by '/bin/false'")
    proc = run_tool(['bash', 'tools/device_check.sh', '--smoke'], env=dict(fakes, OUT=str(tmp_path)), check=False)
    assert proc.returncode == 2 and "torch is not importable by '/bin/false'" in proc.stderr


def test_a_busy_port_is_refused_with_the_fix(fakes):
    """A second distributed run on one machine stopped with torchrun's traceback ending in EADDRINUSE."""
    import socket
    import sys
    busy = socket.socket()
    busy.bind(('', 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        env = dict(fakes, PYTHON=sys.executable, PORT=str(port), NNODES='1')
        proc = run_tool(['bash', 'tools/dist_train.sh', 'c.py', '2'], env=env, check=False)
    finally:
        busy.close()
    assert proc.returncode == 2 and not proc.stdout
    assert proc.stderr == (f'error: port {port} is in use (another distributed run on this machine?); pick a free '
                           f'one, e.g. PORT={port + 1} tools/dist_train.sh ...\n')
