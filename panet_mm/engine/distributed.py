"""Distributed training without a GPU (gloo), which mmengine 0.10.7 does not support by itself.

Why it exists: with the ``pytorch`` or ``slurm`` launcher, mmengine's ``init_dist`` calls
``torch.cuda.set_device`` unconditionally, and its ``Runner`` wraps the model in DDP with
``device_ids=[LOCAL_RANK]``; both fail on a machine without CUDA. :func:`setup_distributed`
initialises a gloo process group first (the Runner then skips its own initialisation) and selects
:class:`CPUDistributedDataParallel`, which leaves ``device_ids`` unset for CPU modules.
On machines with CUDA nothing changes.
"""
from __future__ import annotations

import inspect
import os
import subprocess
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel

# mmengine's root registry: Runner.wrap_model looks wrappers up there, not in mmagic's child registry
from mmengine.registry import MODEL_WRAPPERS

from panet_mm.utils.errors import ParameterError


class LauncherError(ParameterError, RuntimeError):
    """The launcher cannot start here (no CUDA, or the environment a distributed run needs is missing)."""


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` that also wraps modules living on the CPU.

    DDP only accepts ``device_ids`` for CUDA modules; mmengine's Runner always passes them. This
    wrapper drops ``device_ids`` / ``output_device`` when the module's parameters are on the CPU.

    Args:
        module (nn.Module): The model to wrap.
        **kwargs: Arguments of ``MMDistributedDataParallel``.
    """

    def __init__(self, module: torch.nn.Module, **kwargs) -> None:
        param = next(module.parameters(), None)
        if param is None or param.device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module, **kwargs)


#: What each launcher reads from the environment (Slurm's variables are set by ``srun``).
_LAUNCHER_ENV = {'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
                 'pytorch': ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')}
_LAUNCHER_TOOL = {'slurm': 'start the run with tools/slurm_train.sh (srun), or use tools/dist_train.sh '
                           '(--launcher pytorch) outside Slurm',
                  'pytorch': 'start the run with tools/dist_train.sh or torchrun'}


def check_launcher_env(launcher: str) -> None:
    """Refuse a launcher whose environment is missing, before mmengine meets it with a ``KeyError`` traceback.

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Raises:
        LauncherError: A variable the launcher reads is not set (``--launcher slurm`` outside ``srun``,
            ``--launcher pytorch`` without torchrun).
    """
    for key in _LAUNCHER_ENV.get(launcher, ()):
        if key not in os.environ:
            raise LauncherError('launcher', f'{{param}} {launcher} needs the environment variable {key}, which is '
                                f'not set here; {_LAUNCHER_TOOL[launcher]}')


def _slurm_env() -> None:
    """Fill the torch.distributed environment variables from Slurm's, as mmengine does; the master's address is
    ``MASTER_ADDR`` when set, else the first node of ``SLURM_NODELIST`` (:func:`_first_slurm_node`)."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = _first_slurm_node(os.environ['SLURM_NODELIST'])


#: How long ``scontrol show hostnames`` may take (it asks the Slurm controller).
SCONTROL_TIMEOUT = 60


def _first_slurm_node(nodes: str) -> str:
    """The first host name of a Slurm node list (``scontrol show hostnames``), or :class:`LauncherError`.

    Why: mmengine's ``subprocess.getoutput('scontrol show hostname ... | head -n1')`` took scontrol's error
    ('/bin/sh: 1: scontrol: not found') for the address, and the run waited up to 30 minutes for that host.
    """
    fix = "run it inside a Slurm allocation (tools/slurm_train.sh), or set MASTER_ADDR to the first node's address"
    command = ['scontrol', 'show', 'hostnames', nodes]
    what = f"{{param}} slurm needs the master node's address from '{' '.join(command)}'"
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=SCONTROL_TIMEOUT)
    except FileNotFoundError:
        raise LauncherError('launcher', f'{what}, and scontrol is not on PATH; {fix}') from None
    except subprocess.TimeoutExpired:
        raise LauncherError('launcher', f'{what}, which gave no answer in {SCONTROL_TIMEOUT} s; {fix}') from None
    hosts = proc.stdout.split()
    if proc.returncode != 0 or not hosts:
        said = (proc.stderr.strip().splitlines() or [f'exit status {proc.returncode}, no host name'])[-1].strip()
        raise LauncherError('launcher', f'{what}, which failed ({said}); {fix}')
    return hosts[0]


def setup_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare ``cfg`` and the process group for a distributed run without CUDA.

    Does nothing when ``launcher`` is ``'none'`` or CUDA is available (mmengine handles those), except
    refusing a launcher whose environment is missing (:func:`check_launcher_env`) and, for ``'slurm'``, filling
    the torch.distributed variables from Slurm's (:func:`_slurm_env`; mmengine keeps its ``MASTER_ADDR``).

    Args:
        cfg (Config): The run's config; ``env_cfg.dist_cfg.backend`` is set to ``'gloo'`` and
            ``model_wrapper_cfg`` to :class:`CPUDistributedDataParallel` (keeping any other keys).
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: True if a gloo process group was initialised here.
    """
    check_launcher_env(launcher)
    if launcher == 'slurm':  # (with CUDA too: mmengine's init_dist then keeps this MASTER_ADDR)
        _slurm_env()
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher not in ('slurm', 'pytorch'):
        raise LauncherError('launcher', f'{{param}} {launcher} needs CUDA; without a GPU use {{param}} pytorch '
                            '(tools/dist_train.sh) or slurm')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    if wrapper.get('type', 'MMDistributedDataParallel') in ('MMDistributedDataParallel', 'CPUDistributedDataParallel'):
        wrapper['type'] = 'CPUDistributedDataParallel'
        # no buffer sync before each forward (the PANet models have no buffers that change); torch >= 2.14 names
        # it forward_sync_buffers and warns on every rank for the old name
        sync = 'forward_sync_buffers' if 'forward_sync_buffers' in inspect.signature(
            torch.nn.parallel.DistributedDataParallel.__init__).parameters else 'broadcast_buffers'
        if 'broadcast_buffers' not in wrapper and 'forward_sync_buffers' not in wrapper:
            wrapper[sync] = False
        wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
        cfg.model_wrapper_cfg = wrapper
    if not torch_dist.is_initialized():
        timeout = timedelta(seconds=int(dist_cfg.get('timeout', 1800)))
        torch_dist.init_process_group(backend='gloo', init_method='env://', timeout=timeout)
        return True
    return False


def finish_distributed() -> None:
    """Wait for every rank, then destroy the process group, if one is running.

    Why: mmengine leaves the group to the interpreter's exit; with torch 2.14's gloo a rank then aborted
    after a finished run ('terminate called without an active exception', SIGABRT), failing the launch.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


__all__ = ['CPUDistributedDataParallel', 'LauncherError', 'check_launcher_env', 'finish_distributed',
           'setup_distributed']
