"""What ``tools/train.py`` and ``tools/test.py`` share: config loading, AMP, the runner, readable errors.

The tools declare mmagic's arguments themselves (``--work-dir``, ``--cfg-options``, ``--launcher``,
``--local-rank``) and import this module only after parsing them, so that ``--help`` imports nothing
heavy. The extras are a readable error for a missing config and the CPU distributed set-up.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import os
import os.path as osp
import re
import shutil
import sys
from typing import Any, Iterator, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS

from panet_mm.utils.checkpoint import list_keys
from panet_mm.utils.config import ConfigFileError, read_config
from panet_mm.utils.errors import PanetMMError, cli_message
from panet_mm.utils.interrupt import one_line_interrupts

from ..registry import register_config_package
from ..utils.config_names import config_not_found, find_config
from .config_checks import (
    ConfigArgumentError,
    check_argument_types,
    check_optim_settings,
    explain_bad_argument,
    explain_unknown_type,
    misspelt_top_level_keys,
)
from .distributed import LauncherError, setup_distributed
from .runner import PANetRunner
from .work_dir import WorkDirLock, remove_interrupted_saves

_MISSING = object()
#: The tools' spelling of the library parameters that errors name.
CLI_FLAGS = {'work_dir': '--work-dir', 'allow_partial_load': '--cfg-options allow_partial_load',
             'launcher': '--launcher', 'max_pixels': '--max-pixels'}
#: Errors of a full or read-only disk: one line instead of a traceback.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def parse_cfg_options(options: Optional[Sequence[str]]) -> dict:
    """``--cfg-options`` values (``KEY=VALUE`` strings) parsed as mmengine's ``DictAction`` parses them.

    The tools declare ``--cfg-options`` as plain strings and parse them here, after ``--help`` had its
    chance: importing mmengine for ``DictAction`` would make every ``--help`` wait for it.

    Args:
        options (Sequence[str], optional): The strings; a dict (already parsed) is returned as is.

    Returns:
        dict: The overrides, for ``Config.merge_from_dict``.
    """
    if isinstance(options, dict):
        return options
    bad = [kv for kv in options or () if '=' not in kv]
    if bad:
        raise SystemExit(f"--cfg-options takes KEY=VALUE pairs, got {bad[0]!r} (e.g. train_cfg.max_iters=10)")
    namespace = argparse.Namespace()
    for option in options or ():
        try:
            DictAction(option_strings=['--cfg-options'], dest='cfg_options')(None, namespace, [option])
        except RecursionError:  # DictAction's parser of brackets loops on text it cannot split, such as dict(...)
            raise SystemExit(f'--cfg-options {option}: mmengine cannot read this value (a dict inside a list or a '
                             "call); write it in a config file (a child with _base_ = 'CONFIG')") from None
    return namespace.cfg_options


def read_tool_config(config: str, cfg_options: Optional[Sequence[str]] = None) -> Config:
    """A tool's config file with its ``--cfg-options`` merged, each problem one line and an exit.

    Args:
        config (str): The config file, or a shipped config's name (``panet_mm::panet/<name>.py`` or its model
            name, :func:`panet_mm.utils.config_names.find_config`).
        cfg_options (Sequence[str], optional): ``KEY=VALUE`` strings (or a parsed dict).

    Returns:
        Config: The config.

    Raises:
        SystemExit: The file or a base is missing, is not valid Python or stops with an error (status 1), or
            an override does not fit the config (status 2); nothing was created.
    """
    found = find_config(config)  # a path, or a shipped config's name (a wheel user has no configs/ folder)
    if found is None:
        raise SystemExit(f'error: {config_not_found(config)}')
    config = found
    register_config_package()  # `_base_ = 'panet_mm::...'` in the config
    try:
        cfg = read_config(config)
    except FileNotFoundError as err:
        raise SystemExit(f'error: {explain_missing_base(config, err)}') from None
    except ConfigFileError as err:
        raise SystemExit(f'error: {err}') from None
    if cfg_options:
        options = parse_cfg_options(cfg_options)
        problem = check_overrides(cfg, options)
        if problem:
            print(f'error: {problem}', file=sys.stderr)
            raise SystemExit(2)
        cfg.merge_from_dict(options)
    try:
        check_argument_types(cfg.get('model'))
        check_optim_settings(cfg)  # mmengine builds the optimizer only after the data loaders
    except ConfigArgumentError as err:
        raise SystemExit(f'error: {err}') from None
    if 'sr_test_crop' in cfg:
        use_sr_test_crop(cfg)
    return cfg


def adopt_test_modes(cfg: Config) -> Optional[str]:
    """Run a ``BaseEditModel`` config whose ``model.test_cfg`` asks for panet_mm's test-time modes (``tile``,
    ``chop``, ``precision``, ...) as ``PANetEditModel``, the same model that has them; a note says so.

    Why: mmagic's ``BaseEditModel`` ignores those keys, so ``--cfg-options model.test_cfg.precision=bf16`` on a
    mixed model (configs/mix) measured the float32 whole-image model without a word.
    """
    from panet_mm.models.editors.panet.panet_model import TEST_CFG_KEYS, as_panet_edit_model
    model = cfg.get('model') or {}
    asked = sorted(k for k in dict(model.get('test_cfg') or {}) if k in TEST_CFG_KEYS)
    if not asked:
        return None
    kind = model.get('type')
    dropped = as_panet_edit_model(model)
    if dropped is None:
        return None
    extra = f' (its other test_cfg keys {dropped} are not used)' if dropped else ''
    return (f"model.test_cfg sets {asked}, which mmagic's {kind} ignores: the model runs as PANetEditModel, the "
            f"same model and weights with panet_mm's test-time modes{extra}")


def load_config(args: argparse.Namespace) -> Config:
    """Load ``args.config`` with the command-line overrides and the work directory applied.

    Args:
        args (argparse.Namespace): Parsed arguments of a tool: ``config``, ``work_dir``, ``cfg_options``
            (``KEY=VALUE`` strings), ``launcher``, ``local_rank`` (mmagic's tools' arguments).

    Returns:
        Config: The config, ready for ``Runner.from_cfg``.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = read_tool_config(args.config, args.cfg_options)
    for problem in misspelt_top_level_keys(cfg):
        print(f'warning: {problem}', file=sys.stderr)
    cfg.launcher = args.launcher
    note = adopt_test_modes(cfg)
    if note:
        print(f'note: {note}', file=sys.stderr)
    # work_dir priority: command line > config > config file name
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if osp.exists(cfg.work_dir) and not osp.isdir(cfg.work_dir):
        source = '--work-dir' if args.work_dir else "the config's work_dir"
        raise SystemExit(f"error: {source} '{cfg.work_dir}' is a file; name a folder (it is made if missing)")
    log_metrics_by_iteration(cfg)
    if cfg.get('tensorboard', False):
        add_tensorboard(cfg)
    try:
        setup_distributed(cfg, args.launcher)
    except LauncherError as e:
        raise SystemExit(f'error: {e.for_cli(CLI_FLAGS)}') from None
    return cfg


def log_metrics_by_iteration(cfg: Config) -> None:
    """Log validation metrics at the training iteration in an iteration-based run.

    Why it exists: mmengine's ``LoggerHook`` records them at the *epoch* unless ``log_metric_by_epoch=False``,
    and the epoch of ``IterBasedTrainLoop`` stays 0, so every validation point of ``scalars.json``, TensorBoard
    and W&B sat at step 0. mmagic's own ``default_runtime.py`` (the mixed configs' base) leaves it so; a value
    the config sets is kept.
    """
    train_cfg = cfg.get('train_cfg') or {}
    logger = (cfg.get('default_hooks') or {}).get('logger')
    by_iter = str(train_cfg.get('type', '')).endswith('IterBasedTrainLoop') or 'max_iters' in train_cfg
    if by_iter and isinstance(logger, dict) and 'log_metric_by_epoch' not in logger:
        logger['log_metric_by_epoch'] = False


def _lookup(cfg: Config, key: str, value: Any) -> Tuple[Optional[str], Any]:
    """The config's value at the dotted ``key`` (``_MISSING`` if there is none), or why ``key`` cannot be the path
    it was meant as: a name part into a list (mmengine's merge stops with a ``TypeError`` traceback) or a near
    miss of an existing key (``trian_cfg``: silently added and ignored; ``train_cfg.max_iter``: a ``TypeError``
    when the loop is built). New keys are allowed."""
    node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg  # a Config is not a dict; its ConfigDict is
    parts = key.split('.')
    for i, part in enumerate(parts):
        where = '.'.join(parts[:i]) or 'the config'
        if isinstance(node, (list, tuple)):
            if not part.isdigit():
                rest = '.'.join(parts[i:])
                return (f'--cfg-options {key}={value}: {where} is a list of {len(node)} in this config; give the '
                        f'index of the entry, e.g. {where}.0.{rest}={value} (nothing was created)'), _MISSING
            if int(part) >= len(node):
                return (f'--cfg-options {key}={value}: {where} has {len(node)} entries (0-{len(node) - 1}) '
                        'in this config (nothing was created)'), _MISSING
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node and part.isdigit() and i:  # a list's index into one dict: a key '0' was added
                fixed = '.'.join(parts[:i] + parts[i + 1:])
                return (f'--cfg-options {key}={value}: {where} is a single dict in this config, not a list; drop '
                        f'the index: {fixed}={value} (nothing was created)'), _MISSING
            if part not in node:
                close = difflib.get_close_matches(part, [str(k) for k in node], n=1, cutoff=0.8)
                if close:
                    return (f"--cfg-options {key}={value}: {where} has no key '{part}'; did you mean "
                            f"'{'.'.join(parts[:i] + close)}'? (nothing was created)"), _MISSING
                return None, _MISSING
            node = node[part]
        else:
            return None, _MISSING
    return None, node


def check_overrides(cfg: Config, options: dict) -> Optional[str]:
    """A message for a ``--cfg-options`` value whose type contradicts the config's value there, else None.

    Why it exists: ``DictAction`` keeps a value it cannot parse as a string, so ``train_cfg.max_iters=abc``
    only fails when the loop is built, after the work directory and its logs were created, with a
    traceback. Numbers and booleans of the config must stay numbers and booleans (``None`` is allowed).

    Args:
        cfg (Config): The config before the overrides.
        options (dict): The parsed ``--cfg-options``.

    Returns:
        str, optional: The problem, naming the key, the value and what the config has there.
    """
    for key, value in options.items():
        problem, old = _lookup(cfg, key, value)
        if problem:
            return problem
        if old is _MISSING or old is None or value is None:
            continue
        if isinstance(old, bool):
            ok, want = isinstance(value, bool), 'True or False'
        elif isinstance(old, int):
            ok = (isinstance(value, int) and not isinstance(value, bool)
                  or isinstance(value, float) and value.is_integer())
            want = 'an integer'
        elif isinstance(old, float):
            ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), 'a number'
        else:
            continue
        if not ok:
            return (f'--cfg-options {key}={value}: the config has {old!r} there; give {want} '
                    '(nothing was created)')
    return None


@contextlib.contextmanager
def hold_work_dir(cfg: Config) -> Iterator[None]:
    """Hold the work directory's :class:`~panet_mm.engine.work_dir.WorkDirLock` for a training run.

    Only the first process of a distributed run (rank 0) takes it. With the lock held, temporary files
    of checkpoint saves that an earlier run left when it was interrupted are removed (with a note).
    """
    if int(_launcher_rank()[0] or 0) != 0:
        yield
        return
    with WorkDirLock(cfg.work_dir) as lock:
        if lock.note:
            print(f'note: {lock.note}', file=sys.stderr)
        removed, size = remove_interrupted_saves(cfg.work_dir)
        if removed:
            print(f'note: removed {len(removed)} temporary file(s) ({size / 1e6:.1f} MB) of interrupted checkpoint '
                  f"saves in '{cfg.work_dir}': {list_keys(removed)}", file=sys.stderr)
        yield


def resume_overrides_note(options: Optional[Sequence[str]], work_dir: str,
                          checkpoint: Optional[str] = None) -> Optional[str]:
    """What ``--resume`` does to ``--cfg-options`` of the optimizer or the schedule, where there is a checkpoint to
    resume (``checkpoint``, else the work directory's latest): they do not apply (the saved optimizer and scheduler
    states replace them); else None.

    Why: ``--resume --cfg-options optim_wrapper.optimizer.lr=0.01`` went on at the saved learning rate without a
    word (documented, but the command line says otherwise).
    """
    keys = [o.split('=', 1)[0] for o in options or [] if o.startswith(('optim_wrapper', 'param_scheduler'))]
    if not keys or not osp.isfile(checkpoint or osp.join(work_dir, 'last_checkpoint')):
        return None
    return (f"--resume continues the saved optimizer and learning-rate schedule, so {', '.join(keys)} from "
            '--cfg-options do not apply; to start from the weights with new settings, pass --cfg-options '
            'load_from=CHECKPOINT without --resume')


def explain_missing_base(config: str, err: FileNotFoundError) -> str:
    """One line for a config whose base file is missing, with the fix for ``panet_mm::`` bases."""
    quoted = re.search(r'"(.+)"', str(err))  # mmengine's check_file_exist: 'file "PATH" does not exist'
    missing = getattr(err, 'filename', None) or (quoted.group(1) if quoted else str(err))
    text = f"config '{config}' names a base file that does not exist: {missing}"
    if osp.join('.mim', 'model-index.yml') in str(err):  # mmengine's lookup of a panet_mm:: base
        return _scoped_base_needs_install(config)
    if osp.join('.mim', 'configs') in str(err):
        return f"{text}; the installed names are those of configs/panet/ (see configs/panet/README.md)"
    return text


def _scoped_base_needs_install(config: str) -> str:
    """A ``panet_mm::`` base read where panet_mm has no ``.mim`` folder (an editable install, a checkout on
    ``PYTHONPATH``): mmengine looked for ``.mim/model-index.yml`` beside the package and named that path, which the
    user never wrote. The base is named instead, with its path in this copy of panet_mm where it has one."""
    try:
        with open(config, encoding='utf-8') as f:
            names = re.findall(r"""['"](panet_mm::[^'"]+)['"]""", f.read())
    except OSError:
        names = []
    how = 'pip install . or its wheel (an editable install has no panet_mm/.mim)'
    if not names:
        return (f"config '{config}' builds on a panet_mm:: base (in one of its _base_ files), which mmengine finds "
                f'only where panet_mm is installed with {how}; install it so, or write that base as a path into '
                'configs/')
    path = find_config(names[0])
    instead = f"write it as the path '{path}'" if path else 'write it as a path into configs/'
    return (f"config '{config}' has the base '{names[0]}', which mmengine finds only where panet_mm is installed with "
            f'{how}; install it so, or {instead}')


def add_tensorboard(cfg: Config) -> None:
    """Add mmengine's ``TensorboardVisBackend`` to the config's visualizer (the ``tensorboard = True`` switch).

    Raises:
        SystemExit: TensorBoard is not installed (it is an optional extra).
    """
    import importlib.util
    if importlib.util.find_spec('tensorboard') is None:
        raise SystemExit("error: the config sets tensorboard=True but TensorBoard is not installed; install it with "
                         "pip install 'panet_mm[tensorboard]' (or pip install tensorboard), or set tensorboard=False")
    visualizer = cfg.get('visualizer')
    if visualizer is None:
        raise SystemExit('error: the config sets tensorboard=True but has no visualizer to add TensorBoard to; '
                         "inherit configs/_base_/default_runtime.py or define visualizer = dict(...)")
    backends = list(visualizer.get('vis_backends') or [])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    visualizer['vis_backends'] = backends


#: The SR benchmarks' options of tools/dataset_converters/prepare_testsets.py (``--set5 DIR`` ...).
_SR_SET_FLAGS = ('set5', 'set14', 'b100', 'urban100', 'manga109')


def use_sr_test_crop(cfg: Config) -> int:
    """Point the SR test sets at the ground-truth crop the config's ``sr_test_crop`` names; return how many.

    ``'12'``: ``GTmod12`` and ``LRbicx{s}`` (mmagic's / BasicSR's layout, the configs as written); ``'scale'``: the
    released test data's layout, ``GTmod{s}`` and ``LRbicx{s}_GTmod{s}`` (``prepare_testsets.py --sr-crop
    scale``), which the paper's tables scored. Why a switch and not a config per protocol: the test sets are lists
    built in the base config, which ``--cfg-options`` cannot rebuild, and ``sr_test_crop=scale`` works through
    every launcher and in a user's config.

    Raises:
        SystemExit: Another value, or ``'scale'`` for a config with no ``GTmod12`` test set.
    """
    from panet_mm.datasets.testsets import SR_CROPS, sr_folders
    crop = str(cfg.sr_test_crop)
    if crop not in SR_CROPS:
        raise SystemExit(f"error: sr_test_crop={cfg.sr_test_crop!r}: use '12' (GTmod12, mmagic's SR test sets) or "
                         "'scale' (GTmod{s}, the paper's test data)")
    loaders = cfg.get('test_dataloader') or []
    changed = 0
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        dataset = loader.get('dataset') or {}
        prefix = dataset.get('data_prefix') or {}
        found = re.fullmatch(r'LRbicx(\d+)(?:_GTmod\d+)?', str(prefix.get('img', '')))
        scale = int(found.group(1)) if found else 0
        pair = (prefix.get('img'), prefix.get('gt'))  # either layout (a run's saved config holds the rewritten one)
        if not found or not any(pair == sr_folders(scale, layout) for layout in SR_CROPS):
            continue
        dataset['data_prefix'] = dict(prefix, **dict(zip(('img', 'gt'), sr_folders(scale, crop))))
        if 'prepare_cmd' in dataset:  # (the options this function added before, if any, replaced)
            command = re.sub(r' --sr-crop \S+ --scales \d+', '', str(dataset['prepare_cmd']))
            name = osp.basename(str(dataset.get('data_root', '')).rstrip('/'))
            if crop != '12' and 'prepare_testsets.py' not in command and name.lower() in _SR_SET_FLAGS:
                command = (f'python tools/dataset_converters/prepare_testsets.py --{name.lower()} PATH/TO/{name}/HR '
                           '(README "Preparing the restoration test sets")')  # (make_demo_data.py: GTmod12 only)
            if crop != '12':
                command = command.replace('prepare_testsets.py', f'prepare_testsets.py --sr-crop {crop} --scales '
                                          f'{scale}', 1)
            dataset['prepare_cmd'] = command
        changed += 1
    if crop != '12' and not changed:
        raise SystemExit(f'error: sr_test_crop={crop!r} applies to SR test sets read from LRbicx{{s}} and GTmod12, '
                         'and this config has none; drop it')
    return changed


def enable_amp(cfg: Config, device: Optional[str] = None) -> Optional[str]:
    """Switch every ``OptimWrapper`` of ``cfg`` to mixed precision.

    With a GPU: mmengine's ``AmpOptimWrapper`` with dynamic loss scaling (float16 unless the config's
    wrapper names a ``dtype``). On CPU: :class:`~panet_mm.engine.optim.CPUAmpOptimWrapper`, bfloat16
    autocast (mmengine's wrapper refuses CPU). Validation runs in the same autocast (``val_cfg.fp16``,
    which is bfloat16 on CPU).

    Args:
        cfg (Config): The config, changed in place.
        device (str, optional): ``'cuda'`` or ``'cpu'``. Default: ``'cuda'`` when a GPU is visible.

    Returns:
        str, optional: A note for the log (AMP already on in the config, or the CPU dtype), else None.
    """
    if device is None:
        import torch
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    wrapper = cfg.optim_wrapper
    single = 'type' in wrapper and ('constructor' not in wrapper
                                    or wrapper['constructor'] == 'DefaultOptimWrapperConstructor')
    targets = [wrapper] if single else [v for v in wrapper.values() if isinstance(v, dict) and 'type' in v]
    notes = []
    for w in targets:
        if w['type'] in ('AmpOptimWrapper', 'CPUAmpOptimWrapper'):
            notes.append('AMP training is already enabled in the config')
            continue
        if w['type'] != 'OptimWrapper':
            raise SystemExit(f"--amp needs optim_wrapper type 'OptimWrapper', the config has {w['type']!r}")
        if device == 'cpu':
            w['type'] = 'CPUAmpOptimWrapper'
            w['dtype'] = 'bfloat16'
            notes.append('--amp on CPU: bfloat16 autocast (CPUAmpOptimWrapper, no loss scaling)')
        else:
            w['type'] = 'AmpOptimWrapper'
            w['loss_scale'] = 'dynamic'
    # validation in the same autocast (mmengine's and mmagic's validation loops take fp16=True)
    val_cfg = cfg.get('val_cfg') or {}
    if val_cfg.get('type') in ('MultiValLoop', 'ValLoop', 'mmagic.MultiValLoop') and 'fp16' not in val_cfg:
        val_cfg['fp16'] = True
    return notes[0] if notes else None


_LOG_DIR_NAME = re.compile(r'\d{8}_\d{6}')


def _only_logs(folder: str) -> bool:
    """Whether ``folder`` holds nothing but a run's logs (and the config copy its visualizer writes)."""
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            if not (name.endswith(('.log', '.json')) or osp.basename(dirpath) == 'vis_data' and name == 'config.py'):
                return False
    return True


def _remove_log_dir(path: str, work_dir: str) -> None:
    """Remove ``path`` if it is a run's timestamped log folder directly in ``work_dir`` holding only logs."""
    if (_LOG_DIR_NAME.fullmatch(osp.basename(path)) and osp.isdir(path)
            and osp.realpath(osp.dirname(path)) == osp.realpath(work_dir) and _only_logs(path)):
        shutil.rmtree(path, ignore_errors=True)


def build_runner(cfg: Config):
    """Build the runner: the config's ``runner_type`` if it names one, else :class:`PANetRunner`.

    A runner that fails to build (a model the config cannot make) leaves no timestamped log folder behind:
    mmengine makes it first, and each corrected retry left one more holding only the failure. The runner's
    logger drops :data:`~panet_mm.engine.quiet.THIRD_PARTY_LOG_WARNINGS`.
    """
    work_dir = cfg.get('work_dir')
    before = set(os.listdir(work_dir)) if work_dir and osp.isdir(work_dir) else set()
    from .quiet import quiet_third_party_logs
    try:
        runner = RUNNERS.build(cfg) if cfg.get('runner_type') else PANetRunner.from_cfg(cfg)
        quiet_third_party_logs(runner.logger)  # mmagic's log warnings that say nothing to a user
        return runner
    except BaseException:
        if work_dir and osp.isdir(work_dir):
            for name in set(os.listdir(work_dir)) - before:
                _remove_log_dir(osp.join(work_dir, name), work_dir)
        raise


def drop_unused_log_dir(runner: Any, training: bool = False) -> None:
    """Remove the timestamped log folder of a run that stopped before its work began: a test before its checkpoint
    loaded (a refused or mismatched checkpoint), a training run before its first iteration (missing or damaged
    data found when the loaders are built, or in the first batch). It holds nothing but the failure, shown on the
    console, and each retry left one more. A training run also removes the config copy it wrote (where none was
    before), so that a work directory it created is left empty, and removed (:class:`WorkDirLock`). A run that got
    further keeps its logs."""
    if training:  # (not runner.iter: it builds the train loop, which is what failed)
        loop = getattr(runner, '_train_loop', None)
        started = loop is not None and not isinstance(loop, dict) and getattr(loop, 'iter', 0) > 0
    else:
        started = getattr(runner, '_has_loaded', True)
    if started:
        return
    log_dir = getattr(runner, 'log_dir', None)
    if log_dir:
        _remove_log_dir(log_dir, runner.work_dir)
    copy = getattr(runner, 'config_copy_created', None) if training else None
    if copy and osp.isfile(copy):
        os.remove(copy)


@contextlib.contextmanager
def readable_errors(interrupted: str = 'nothing more was written; run it again') -> Iterator[None]:
    """Turn the errors a user can fix into one line on stderr and exit status 1; Ctrl-C and SIGTERM into one line
    (``interrupted``: what is kept and how to go on) and status 130 / 143 after the clean-up
    (:func:`~panet_mm.utils.interrupt.one_line_interrupts`).

    Set ``PANET_MM_DEBUG=1`` to see the full traceback instead.
    """
    with one_line_interrupts(interrupted):
        if os.environ.get('PANET_MM_DEBUG'):
            yield
            return
        with _one_line_errors():
            yield


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except (PanetMMError, FileNotFoundError) as e:
        text = cli_message(e, CLI_FLAGS).strip()
        if isinstance(e, FileNotFoundError) and e.filename and text.startswith('[Errno'):  # (mmengine's datasets)
            where = '' if osp.isabs(str(e.filename)) else f' in {os.getcwd()} (relative paths start there)'
            folder = not osp.splitext(str(e.filename))[1]  # (a file's path: a checkpoint, an ann_file, weights)
            text = f"'{e.filename}' does not exist{where}" + (
                "; if it is a dataset folder, check the config's data_root and data_prefix, or prepare it "
                '(tools/dataset_converters/)' if folder else '; check the path the config or command gives')
        # a sample error re-raised from a DataLoader worker carries the worker's traceback before its message, and
        # that message its class's module path
        if type(e).__name__ == 'DataSampleError':
            text = re.sub(r'^(?:[\w.]+\.)?DataSampleError: ', '', text.splitlines()[-1])
        _fail(text)
    except OSError as e:
        text = disk_error(e)
        if text is None:
            raise
        _fail(text)
    except KeyError as e:
        text = explain_unknown_type(str(e))
        if text is None:
            raise
        _fail(text)
    except TypeError as e:
        text = explain_bad_argument(str(e))
        if text is None:
            raise
        _fail(text)
    except RuntimeError as e:
        text = peer_stopped(e)
        if text is None:
            raise
        _fail(text)


def disk_error(err: OSError, hint: str = 'then continue with --resume') -> Optional[str]:
    """One sentence for a full or read-only disk (naming the file), or None for other errors."""
    what = f"cannot write '{err.filename}'" if err.filename else 'a write failed'
    if err.errno in _NO_SPACE:
        return (f'{what}: {err.strerror or "no space left"}; free space on that disk (or pass another --work-dir), '
                f'{hint}')
    if err.errno in _NOT_WRITABLE:
        return f'{what}: {err.strerror or "not writable"}; pass a writable --work-dir'
    return None


def _fail(message: str) -> None:
    """One line and exit status 1; in a distributed run the line names its process (torchrun interleaves them)."""
    rank = _distributed_rank()
    print(f'error{f" (rank {rank})" if rank is not None else ""}: {message}', file=sys.stderr)
    raise SystemExit(1)


def _launcher_rank() -> Tuple[Optional[str], int]:
    """``(rank, world size)`` as the launcher set them: torchrun's ``RANK`` / ``WORLD_SIZE``, or, before the process
    group is set up (mmengine sets those from Slurm's later), ``SLURM_PROCID`` / ``SLURM_NTASKS``; ``(None, 1)``
    for a process no launcher started."""
    for rank, size in (('RANK', 'WORLD_SIZE'), ('SLURM_PROCID', 'SLURM_NTASKS')):
        if os.environ.get(rank) is not None:
            return os.environ[rank], int(os.environ.get(size, '1') or 1)
    return None, 1


def _distributed_rank() -> Optional[str]:
    """This process's rank in a run of more than one process, else None (an error found before the process group,
    e.g. a config error, names the ``srun`` task too: each printed the same untagged line)."""
    rank, size = _launcher_rank()
    return rank if size > 1 else None


#: What a process of a distributed run sees when another one has stopped (gloo, NCCL, the store).
_PEER_GONE = ('Connection closed by peer', 'Connection reset by peer', 'Broken pipe', 'NCCL communicator was aborted')


def peer_stopped(err: BaseException) -> Optional[str]:
    """One line for a rank whose collective failed because another rank stopped (its own error is the one to
    read; the traceback of this one, about 40 lines ending in gloo's "Connection closed by peer", buried it)."""
    if _distributed_rank() is None or not any(p in str(err) for p in _PEER_GONE):
        return None
    return 'another process of this distributed run stopped; its error (above) says why'


__all__ = ['CLI_FLAGS', 'add_tensorboard', 'adopt_test_modes', 'build_runner', 'check_overrides', 'disk_error',
           'enable_amp', 'explain_missing_base', 'hold_work_dir', 'resume_overrides_note',
           'load_config', 'parse_cfg_options', 'read_tool_config', 'readable_errors']
