"""Shared fixtures: the offline demo data, built once per test session."""
import contextlib
import logging
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@contextlib.contextmanager
def log_records(level=logging.INFO, logger=None):
    """The ``LogRecord`` s logged at ``level`` and above through ``logger`` (default: mmengine's current logger, where
    ``print_log(logger='current')`` goes) while the block runs."""
    if logger is None:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(level)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


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
    """The demo dataset (tools/dataset_converters/make_demo_data.py) in a temporary folder."""
    out = tmp_path_factory.mktemp('demo') / 'demo'
    run_tool([sys.executable, 'tools/dataset_converters/make_demo_data.py', '--out', str(out)])
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


DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'panet_sr_x2_demo.py')


def build_demo_model(**generator):
    """The demo config's edit model (PA-EDSR x2, 32 channels), generator settings overridden, seeded."""
    import torch
    from mmagic.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import panet_mm  # noqa: F401
    init_default_scope('mmagic')
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.model.generator.update(generator)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def save_runner_checkpoint(model, path):
    """Save ``model`` as mmengine's Runner does (tools/train.py without panet_mm's hooks): the state dict
    plus metadata with a message hub of HistoryBuffer objects, numpy scalars and a Counter."""
    from collections import Counter, OrderedDict

    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer

    loss = HistoryBuffer()
    loss.update(np.float64(0.25))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    checkpoint = dict(
        meta=dict(epoch=0, iter=2, cfg='model = dict()', seed=0, experiment_name='restore_test',
                  mmengine_version='0.10.7', dataset_meta=dict(dataset_type='set5', task_name='sisr')),
        state_dict=OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items()),
        message_hub=dict(log_scalars={'train/loss': loss},
                         runtime_info=dict(iter=2, best_score=np.float64(18.5), max_iters=2), resumed_keys={}),
        optimizer=optimizer.state_dict(),
        param_schedulers=[dict(milestones=Counter({200: 1}), gamma=0.5, last_step=2)])
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope='session')
def demo_checkpoint(tmp_path_factory):
    """A checkpoint of the demo config's model in mmengine's Runner format (built in-process, seeded)."""
    return save_runner_checkpoint(build_demo_model(), tmp_path_factory.mktemp('ckpt') / 'demo_x2.pth')


DEMOSAIC_CONFIG = osp.join(ROOT, 'configs', 'demo', 'panet_demosaic_demo.py')


@pytest.fixture(scope='session')
def demosaic_checkpoint(tmp_path_factory):
    """A checkpoint of the demosaicing demo config's model (small PANet, GRBG), built in-process, seeded."""
    import torch
    from mmagic.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import panet_mm  # noqa: F401
    init_default_scope('mmagic')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(DEMOSAIC_CONFIG).model)
    return save_runner_checkpoint(model, tmp_path_factory.mktemp('ckpt') / 'demosaic.pth')


# --- restoration test sets (tools/dataset_converters/prepare_testsets.py) -----------------------------------------

TESTSET_OPTIONS = ('kodak24', 'cbsd68', 'mcmaster', 'urban100', 'live1', 'classic5', 'set5', 'set14', 'b100',
                   'manga109')


def write_tiny_images(folder, sizes=((24, 36), (28, 37), (37, 49)), seed=0):
    """Small smooth colour images (deterministic) named img_1.png, ...; return the folder."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes, 1):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 100 / (h + w)], axis=-1)
        texture = cv2.GaussianBlur(rng.random((h, w, 3)) * 120, (5, 5), 1.2)
        cv2.imwrite(str(folder / f'img_{i}.png'), np.clip(base + texture, 0, 255).astype(np.uint8))
    return folder


@pytest.fixture(scope='session')
def tiny_testsets(tmp_path_factory):
    """Every benchmark of tools/dataset_converters/prepare_testsets.py made from the same 3 tiny images: the ``data``
    root."""
    src = write_tiny_images(tmp_path_factory.mktemp('testset_src') / 'clean')
    out = tmp_path_factory.mktemp('testsets') / 'data'
    args = [sys.executable, 'tools/dataset_converters/prepare_testsets.py', '--out', str(out), '--workers', '1']
    for option in TESTSET_OPTIONS:
        args += [f'--{option}', str(src)]
    run_tool(args)
    return out


def point_testsets_at(config, data_root):
    """{cfg key: value} pointing a task config's val/test loaders at ``data_root/{SET}`` (lists or dicts)."""
    from mmengine.config import Config

    cfg = Config.fromfile(config) if isinstance(config, (str, os.PathLike)) else config
    opts = {}
    for split in ('val', 'test'):
        loaders = cfg.get(f'{split}_dataloader')
        if isinstance(loaders, dict):
            opts[f'{split}_dataloader.dataset.data_root'] = f'{data_root}/{osp.basename(loaders.dataset.data_root)}'
        elif loaders:
            for i, loader in enumerate(loaders):
                opts[f'{split}_dataloader.{i}.dataset.data_root'] = \
                    f'{data_root}/{osp.basename(loader.dataset.data_root)}'
    return opts


@pytest.fixture(scope='module')
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP spin-waits on a busy 2-core machine (~50 ms per op)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
