"""panet_mm.engine.distributed: the process group a run started is destroyed at its end; a launcher without
its environment is refused in one sentence."""
import argparse
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
