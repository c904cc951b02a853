"""panet_mm.engine.distributed: the process group a run started is destroyed at its end; a launcher without
its environment is refused in one sentence."""
import argparse
import os
import socket

import pytest
import torch
import torch.distributed as dist
from conftest import DEMO_CONFIG
from mmengine.config import Config

from panet_mm.engine.cli import load_config
from panet_mm.engine.distributed import LauncherError, finish_distributed, setup_distributed


def test_finish_distributed_destroys_the_group_and_is_a_no_op_without_one():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    assert dist.is_initialized()
    finish_distributed()
    assert not dist.is_initialized()
    finish_distributed()  # nothing to finish: no error
    assert not dist.is_initialized()


SLURM_AND_TORCHRUN = ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST', 'SLURM_LOCALID', 'RANK', 'WORLD_SIZE',
                      'MASTER_ADDR', 'MASTER_PORT')


@pytest.mark.parametrize('launcher, missing, tool', [('slurm', 'SLURM_PROCID', 'tools/slurm_train.sh (srun)'),
                                                     ('pytorch', 'RANK', 'tools/dist_train.sh or torchrun')])
def test_a_launcher_outside_its_environment_is_refused_in_one_sentence(monkeypatch, launcher, missing, tool):
    """`--launcher slurm` outside srun met mmengine's `KeyError: 'SLURM_PROCID'` traceback (CUDA or not)."""
    for key in SLURM_AND_TORCHRUN:
        monkeypatch.delenv(key, raising=False)
    for cuda in (False, True):  # with CUDA mmengine's init_dist would read the same variables
        monkeypatch.setattr(torch.cuda, 'is_available', lambda cuda=cuda: cuda)
        with pytest.raises(LauncherError) as err:
            setup_distributed(Config({}), launcher)
        text = err.value.for_cli({'launcher': '--launcher'})
        assert text.startswith(f'--launcher {launcher} needs the environment variable {missing}, which is not set')
        assert tool in text
    assert setup_distributed(Config({}), 'none') is False  # no launcher: nothing checked, nothing started


def test_train_tool_names_the_launcher_problem(monkeypatch, tmp_path, capsys):
    for key in SLURM_AND_TORCHRUN:
        monkeypatch.delenv(key, raising=False)
    args = argparse.Namespace(config=DEMO_CONFIG, work_dir=str(tmp_path / 'wd'), cfg_options=None, launcher='slurm',
                              local_rank=0)
    with pytest.raises(SystemExit) as exit_:
        load_config(args)
    assert str(exit_.value).startswith('error: --launcher slurm needs the environment variable SLURM_PROCID')
    assert not (tmp_path / 'wd').exists()


def _fake_scontrol(folder, body):
    """An `scontrol` on PATH that logs its arguments to folder/called, then runs ``body``."""
    path = folder / 'scontrol'
    path.write_text(f'#!/bin/sh\necho "$@" >> {folder}/called\n{body}\n')
    path.chmod(0o755)


@pytest.fixture
def slurm_task(monkeypatch, tmp_path):
    """The environment srun gives task 1 of 2 on two nodes; PATH holds only the test's folder (no scontrol)."""
    for key in SLURM_AND_TORCHRUN + ('LOCAL_RANK',):  # (setenv first: what _slurm_env sets is undone afterwards)
        monkeypatch.setenv(key, '')
        monkeypatch.delenv(key)
    for key, value in dict(SLURM_PROCID='1', SLURM_NTASKS='2', SLURM_NODELIST='node[01-02]', SLURM_LOCALID='0').items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv('PATH', str(tmp_path))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # mmengine's own init would follow: none here
    return tmp_path


def test_slurm_master_address_is_scontrols_first_host(slurm_task):
    """stdout only: scontrol's stderr was mixed into MASTER_ADDR."""
    _fake_scontrol(slurm_task, 'echo "scontrol: warning: a note" >&2\nprintf "node01\\nnode02\\n"')
    assert setup_distributed(Config({}), 'slurm') is False
    assert (os.environ['MASTER_ADDR'], os.environ['RANK'], os.environ['WORLD_SIZE']) == ('node01', '1', '2')
    assert (slurm_task / 'called').read_text() == 'show hostnames node[01-02]\n'


def test_a_set_master_addr_is_kept_without_asking_scontrol(slurm_task, monkeypatch):
    _fake_scontrol(slurm_task, 'echo node09')
    monkeypatch.setenv('MASTER_ADDR', '10.0.0.1')
    setup_distributed(Config({}), 'slurm')
    assert os.environ['MASTER_ADDR'] == '10.0.0.1' and not (slurm_task / 'called').exists()


@pytest.mark.parametrize('body, said', [
    (None, 'and scontrol is not on PATH'),
    ('echo "slurm_load_node: Invalid node name specified" >&2; exit 1',
     'which failed (slurm_load_node: Invalid node name specified)'),
    ('exit 0', 'which failed (exit status 0, no host name)'),
])
def test_scontrol_failing_stops_the_run_in_one_sentence(slurm_task, body, said):
    """Without scontrol, '/bin/sh: 1: scontrol: not found' became MASTER_ADDR and the run waited up to 30 minutes
    ('[c10d] The IPv6 network addresses of (/bin/sh: 1: scontrol: not found, ...) cannot be retrieved')."""
    if body is not None:
        _fake_scontrol(slurm_task, body)
    with pytest.raises(LauncherError) as err:
        setup_distributed(Config({}), 'slurm')
    assert err.value.for_cli({'launcher': '--launcher'}) == (
        f"--launcher slurm needs the master node's address from 'scontrol show hostnames node[01-02]', {said}; run "
        "it inside a Slurm allocation (tools/slurm_train.sh), or set MASTER_ADDR to the first node's address")
    assert 'MASTER_ADDR' not in os.environ


def test_train_tool_names_scontrol_and_the_fix(slurm_task, tmp_path, capsys):
    args = argparse.Namespace(config=DEMO_CONFIG, work_dir=str(tmp_path / 'wd'), cfg_options=None, launcher='slurm',
                              local_rank=0)
    with pytest.raises(SystemExit) as exit_:
        load_config(args)
    assert str(exit_.value).startswith("error: --launcher slurm needs the master node's address from 'scontrol show "
                                       "hostnames node[01-02]', and scontrol is not on PATH; run it inside")
    assert '\n' not in str(exit_.value)
