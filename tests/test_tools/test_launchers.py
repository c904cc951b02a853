"""tools/dist_*.sh and tools/slurm_*.sh: the torchrun / srun command lines they start (fake python and srun)."""
import os
import signal
import stat
import subprocess
import sys

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
    """A node runs min(GPUS, GPUS_PER_NODE) tasks and gets as many GPUs: GPUS=4 asked for 8 tasks and 8 GPUs per
    node (GPUS_PER_NODE's default) before."""
    tools = f'{ROOT}/tools'
    common = ['-p', 'part', '--job-name=job', '--gres=gpu:4', '--ntasks=4', '--ntasks-per-node=4',
              '--cpus-per-task=5', '--kill-on-bad-exit=1', '--qos=x', '--mem', '1', fakes['PYTHON'], '-u']
    proc = run_tool(['bash', 'tools/slurm_train.sh', 'part', 'job', 'c.py', 'wd', '--amp'], env=fakes)
    assert args_of(proc) == ('srun', common + [f'{tools}/train.py', 'c.py', '--work-dir=wd', '--launcher=slurm',
                                               '--amp'])
    assert f'PYTHONPATH={tools}/..' in proc.stdout
    proc = run_tool(['bash', 'tools/slurm_test.sh', 'part', 'job', 'c.py', 'k.pth', '--out', 'm n.json'], env=fakes)
    assert args_of(proc) == ('srun', common + [f'{tools}/test.py', 'c.py', 'k.pth', '--launcher=slurm', '--out',
                                               'm n.json'])
    _, args = args_of(run_tool(['bash', 'tools/slurm_train.sh', 'p', 'j', 'c.py', 'wd'],
                               env=dict(fakes, GPUS='16', GPUS_PER_NODE='8')))
    assert args[3:7] == ['--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8', '--cpus-per-task=5']


def test_cpu_only_slurm_nodes_get_no_gres(fakes):
    """CPU_ONLY=1 (the scripts' usage comment): no --gres, GPUS and GPUS_PER_NODE count processes."""
    _, args = args_of(run_tool(['bash', 'tools/slurm_train.sh', 'p', 'j', 'c.py', 'wd'],
                               env=dict(fakes, GPUS='4', GPUS_PER_NODE='2', CPU_ONLY='1')))
    assert args[:5] == ['-p', 'p', '--job-name=j', '--ntasks=4', '--ntasks-per-node=2']
    assert not any(a.startswith('--gres') for a in args)
    for script in ('slurm_train.sh', 'slurm_test.sh'):  # documented where users look
        with open(f'{ROOT}/tools/{script}') as f:
            assert 'CPU_ONLY=1' in f.read()


@pytest.mark.parametrize('env, line', [
    ({'GPUS': 'two'}, 'error: GPUS=two is not a number of processes; set GPUS to a whole number of at least 1\n'),
    ({'GPUS_PER_NODE': '0'}, 'error: GPUS_PER_NODE=0 is not a number of processes; set GPUS_PER_NODE to a whole '
                             'number of at least 1\n'),
    ({'CPU_ONLY': 'yes'}, 'error: CPU_ONLY=yes is neither 0 nor 1; set CPU_ONLY=1 for nodes without GPUs (no --gres), '
                          'or leave it unset\n'),
])
def test_bad_slurm_settings_are_refused_in_one_line(fakes, env, line):
    proc = run_tool(['bash', 'tools/slurm_train.sh', 'p', 'j', 'c.py', 'wd'], env=dict(fakes, **env), check=False)
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, line, '')


@pytest.mark.parametrize('script, args, other', [
    ('slurm_train.sh', ['p', 'j', 'c.py', 'wd'], 'tools/dist_train.sh'),
    ('slurm_test.sh', ['p', 'j', 'c.py', 'k.pth'], 'tools/dist_test.sh'),
])
def test_slurm_scripts_outside_slurm_say_so_in_one_line(fakes, tmp_path, script, args, other):
    """Outside Slurm: 'tools/launch.sh: line 73: srun: command not found' and exit 127 before."""
    (tmp_path / 'srun').unlink()
    proc = run_tool(['bash', f'tools/{script}', *args], env=fakes, check=False)
    assert (proc.returncode, proc.stdout) == (2, '')
    assert proc.stderr == (f'error: srun is not on PATH: tools/{script} runs on a Slurm cluster (its login node); '
                           f'elsewhere use {other} (torchrun) instead\n')


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


def test_a_checkout_with_only_the_modern_environment_uses_it(fakes, tmp_path):
    """STACK=modern set up only .venv-modern: dist_train.sh looked for .venv alone and said to activate it."""
    import shutil
    checkout = tmp_path / 'checkout'
    shutil.copytree(f'{ROOT}/tools', checkout / 'tools')
    venv_python = checkout / '.venv-modern' / 'bin' / 'python'
    venv_python.parent.mkdir(parents=True)
    shutil.copy(fakes['PYTHON'], venv_python)
    no_torch = tmp_path / 'plain'  # `python` on PATH without torch
    no_torch.mkdir()
    (no_torch / 'python').write_text('#!/bin/sh\nexit 1\n')
    (no_torch / 'python').chmod(0o755)
    env = dict(fakes, PATH=f"{no_torch}{os.pathsep}{os.environ['PATH']}", NNODES='1')
    del env['PYTHON']
    proc = subprocess.run(['bash', 'tools/dist_train.sh', 'c.py', '2'], cwd=checkout, capture_output=True, text=True,
                          env={**os.environ, **env}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('python PYTHONPATH=') and '[torch.distributed.run]' in proc.stdout


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


# torchrun's stderr around the tools' own lines (torch 2.5, paths shortened): at Ctrl-C, and when a process failed
TORCHRUN_FRAMES = '''Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/venv/lib/python3.11/site-packages/torch/distributed/run.py", line 923, in <module>
    main()
  File "/venv/lib/python3.11/site-packages/torch/distributed/elastic/multiprocessing/errors/__init__.py", line 355, in wrapper
    return f(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^
'''  # noqa: E501
ELASTIC = 'W1205 04:23:47.030000 21591 .venv/lib/python3.11/site-packages/torch/distributed/elastic/'
TORCHRUN_AT_CTRL_C = (
    f'{ELASTIC}agent/server/api.py:704] Received 2 death signal, shutting down workers\n'
    f'{ELASTIC}multiprocessing/api.py:897] Sending process 21596 closing signal SIGINT\n'
    'interrupted (Ctrl-C): kept\n'
    + TORCHRUN_FRAMES
    + '  File "/venv/lib/python3.11/site-packages/torch/distributed/elastic/multiprocessing/api.py", line 84, in h\n'
    '    raise SignalException(f"Process {os.getpid()} got signal: {sigval}", sigval=sigval)\n'
    'torch.distributed.elastic.multiprocessing.api.SignalException: Process 21591 got signal: 2\n')


def banner(exitcode, message='To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html'):
    return ('torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n' + '=' * 60 + '\n'
            '/work/main/tools/train.py FAILED\n' + '-' * 60 + '\nFailures:\n[1]:\n  time      : 2026-12-05_04:24:50\n'
            '  host      : localhost\n  rank      : 1 (local_rank: 1)\n  exitcode  : 1 (pid: 22177)\n'
            f'  error_file: <N/A>\n  traceback : To enable traceback see: x\n{"-" * 60}\n'
            'Root Cause (first observed failure):\n[0]:\n  time      : 2026-12-05_04:24:50\n  host      : localhost\n'
            f'  rank      : 0 (local_rank: 0)\n  exitcode  : {exitcode} (pid: 22176)\n  error_file: <N/A>\n'
            f'  traceback : {message}\n' + '=' * 60 + '\n')


TORCHRUN_AFTER_A_FAILURE = (
    "error (rank 1): folder 'data/nope' does not exist; prepare it\n"
    'E1205 04:24:50.422000 22168 .venv/lib/python3.11/site-packages/torch/distributed/elastic/multiprocessing/api.py:'
    '869] failed (exitcode: 1) local_rank: 0 (pid: 22176) of binary: /work/main/.venv/bin/python\n'
    + TORCHRUN_FRAMES
    + '  File "/venv/lib/python3.11/site-packages/torch/distributed/launcher/api.py", line 269, in launch_agent\n'
    '    raise ChildFailedError(\n' + banner(1))
A_TOOLS_TRACEBACK = ('Traceback (most recent call last):\n  File "/work/main/tools/train.py", line 9, in <module>\n'
                     '    main()\nValueError: a bug\n')
A_LAUNCHER_FAILURE = (TORCHRUN_FRAMES + "torch.distributed.DistNetworkError: The server socket has failed to listen on "
                      "any local network address. port: 29500, useIPv6: 0, code: -98, name: EADDRINUSE\n")


def quiet_torchrun(text):
    """tools/launch.sh's filter of torchrun's stderr, given ``text``: (exit status, what it prints)."""
    proc = subprocess.run(['bash', '-c', 'set -euo pipefail; source tools/launch.sh; _quiet_torchrun'], input=text,
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHON='/bin/true'),
                          timeout=60)
    assert not proc.stderr
    return proc.returncode, proc.stdout


@pytest.mark.parametrize('text, status, left', [
    (TORCHRUN_AT_CTRL_C, 130, 'interrupted (Ctrl-C): kept\n'),
    (TORCHRUN_AT_CTRL_C.replace('got signal: 2', 'got signal: 15'), 143, 'interrupted (Ctrl-C): kept\n'),
    (TORCHRUN_AFTER_A_FAILURE, 0, "error (rank 1): folder 'data/nope' does not exist; prepare it\n"),
    # a tool's own traceback (a bug), and torchrun's own when it is the only message, pass unchanged
    (A_TOOLS_TRACEBACK + TORCHRUN_AFTER_A_FAILURE, 0,
     A_TOOLS_TRACEBACK + "error (rank 1): folder 'data/nope' does not exist; prepare it\n"),
    (A_LAUNCHER_FAILURE, 0, A_LAUNCHER_FAILURE),
    ('=' * 30 + '\nplain lines\n  indented\n\nlast, no newline', 0,
     '=' * 30 + '\nplain lines\n  indented\n\nlast, no newline\n'),
    (A_TOOLS_TRACEBACK[:60], 0, A_TOOLS_TRACEBACK[:60] + '\n'),  # cut short: what came is passed on
    # a process killed by a signal says nothing itself: one line from the banner
    (TORCHRUN_FRAMES + banner(-9, 'Signal 9 (SIGKILL) received by PID 22176'), 0,
     'error (rank 0): the process was killed by signal 9 (SIGKILL) before it could say why; torchrun stopped the '
     'others; SIGKILL usually means that memory ran out: run fewer processes or lower the batch size\n'),
])
def test_torchruns_own_traceback_and_banner_are_dropped(text, status, left):
    """The tools say in one line why they stopped; torchrun added about 25 lines of its traceback
    (SignalException at Ctrl-C / SIGTERM, ChildFailedError and a "train.py FAILED" banner after a failure)."""
    assert quiet_torchrun(text) == (status, left)


def test_the_filter_passes_lines_as_they_come_and_outlives_ctrl_c():
    """Unbuffered (a training log must not wait), and a Ctrl-C to the terminal's process group must not end the
    filter before torchrun has printed its last line."""
    import select
    proc = subprocess.Popen(['bash', '-c', 'set -euo pipefail; source tools/launch.sh; _quiet_torchrun'], cwd=ROOT,
                            env=dict(os.environ, PYTHON='/bin/true'), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        proc.stdin.write('first\n')
        proc.stdin.flush()
        assert select.select([proc.stdout], [], [], 30)[0], 'the line did not come through while input stayed open'
        assert proc.stdout.readline() == 'first\n'
        os.killpg(proc.pid, signal.SIGINT)
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate('second\n', timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (0, 'second\n')


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# A two-process tool for torchrun: panet_mm.utils.interrupt loaded from its file (importing panet_mm takes ~10 s);
# rank 1 fails (argv[1]: 'line', 'traceback') once rank 0 is ready, or both wait for a signal ('wait').
TINY_TOOL = '''
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location('interrupt', sys.argv[2])
interrupt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(interrupt)
rank, ready = os.environ['RANK'], sys.argv[3]
with interrupt.one_line_interrupts('kept; continue with --resume'):
    if rank == '1' and sys.argv[1] != 'wait':
        while not os.path.exists(ready):
            time.sleep(0.05)
        if sys.argv[1] == 'traceback':
            raise ValueError('a bug')
        print('error (rank 1): bad value; fix it', file=sys.stderr, flush=True)
        raise SystemExit(1)
    print('ready', flush=True)
    if rank == '0':
        open(ready, 'w').close()
    time.sleep(120)
'''


def start_tiny_torchrun(tmp_path, case):
    tool = tmp_path / 'tiny_tool.py'
    tool.write_text(TINY_TOOL)
    command = ('set -euo pipefail; source tools/launch.sh; torchrun_tool 2 "$@"')
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()), NNODES='1', OMP_NUM_THREADS='1')
    env.pop('WORLD_SIZE', None)
    env.pop('RANK', None)
    return subprocess.Popen(['bash', '-c', command, 'launch', os.path.relpath(tool, f'{ROOT}/tools'), case,
                             f'{ROOT}/panet_mm/utils/interrupt.py', str(tmp_path / 'ready')],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.parametrize('case, lines', [
    ('line', ['error (rank 1): bad value; fix it',
              'stopped (SIGTERM, by you or by the launcher after another process failed; see its line above): kept; '
              'continue with --resume']),
    ('traceback', None),
])
def test_a_failed_process_leaves_its_line_and_no_torchrun_traceback(tmp_path, case, lines):
    """torchrun stops the others with SIGTERM; rank 0 says so, honestly: the stop may be the launcher's."""
    proc = start_tiny_torchrun(tmp_path, case)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert 'ChildFailedError' not in err and 'FAILED' not in err and 'closing signal' not in err
    if lines is not None:
        assert sorted(err.splitlines()) == lines
    else:  # a tool's own traceback (a bug) passes unchanged; torchrun's does not
        assert err.count('Traceback (most recent call last):') == 1 and 'ValueError: a bug\n' in err
        assert 'torch/distributed/run.py' not in err


@pytest.mark.parametrize('signum, status, line', [
    (signal.SIGINT, 130, 'interrupted (Ctrl-C): kept; continue with --resume'),
    (signal.SIGTERM, 143, 'stopped (SIGTERM, by you or by the launcher after another process failed; see its line '
                          'above): kept; continue with --resume'),
])
def test_ctrl_c_and_sigterm_stop_a_distributed_run_with_one_line(tmp_path, signum, status, line):
    """Ctrl-C printed the line once per rank, then torchrun's traceback ending in 'SignalException: Process N got
    signal: 2'; SIGTERM printed no line at all (every rank kept quiet) and the traceback; torchrun exits 1."""
    proc = start_tiny_torchrun(tmp_path, 'wait')
    try:
        assert proc.stdout.readline() == 'ready\n' and proc.stdout.readline() == 'ready\n'
        os.killpg(proc.pid, signum)   # as the terminal (Ctrl-C), `timeout` or a scheduler do
        _, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert (proc.returncode, err) == (status, line + '\n')


FAKE_SRUN = '''#!/bin/sh
# srun on one node: drop its options (up to the interpreter), then run the task as Slurm would, without scontrol
while [ "$#" -gt 0 ] && [ "$1" != "$PYTHON" ]; do shift; done
SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_NODELIST='node[01-02]' exec "$@"
'''


def test_slurm_train_without_scontrol_stops_in_one_line(tmp_path):
    """scontrol's error text became MASTER_ADDR and the run hung up to 30 minutes in c10d (about 10 s: one
    tools/train.py start)."""
    srun = tmp_path / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    env = {'PATH': f"{tmp_path}{os.pathsep}{os.environ['PATH']}", 'PYTHON': sys.executable, 'GPUS': '1',
           'CPU_ONLY': '1'}
    proc = run_tool(['bash', '-c', 'unset MASTER_ADDR RANK WORLD_SIZE LOCAL_RANK; exec tools/slurm_train.sh "$@"', 'x',
                     'p', 'j', 'configs/demo/panet_sr_x2_demo.py', str(tmp_path / 'wd')], env=env, check=False,
                    timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: --launcher slurm needs the master node's address from 'scontrol show hostnames node[01-02]', and "
        "scontrol is not on PATH; run it inside a Slurm allocation (tools/slurm_train.sh), or set MASTER_ADDR to the "
        "first node's address"]
    assert 'Traceback' not in proc.stderr
