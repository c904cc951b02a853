"""mmengine's Runner with strict checkpoint loading and weights-only checkpoints.

Why it exists: mmengine's ``Runner.load_checkpoint`` loads ``load_from`` with ``strict=False`` and
only logs what did not match, so a checkpoint for another depth, scale or architecture loads partly
without an error. :class:`PANetRunner` compares keys and shapes first and stops with the mismatches
named, unless the config asks for a partial load (``allow_partial_load = True``). It also registers
:class:`~panet_mm.engine.checkpoint.WeightsOnlyCheckpointHook` (its checkpoints load weights-only)
and :class:`~panet_mm.engine.hooks.NonFiniteLossHook` (a NaN loss stops the run, naming the batch),
refuses checkpoints with NaN / infinite weights and registers
:class:`~panet_mm.engine.hooks.NonFiniteOutputHook` (a NaN test output stops the test).
Its checkpoints load weights-only (:func:`~panet_mm.engine.checkpoint.load_checkpoint_file`), its loops run
inside :func:`~panet_mm.engine.checkpoint.safe_checkpoint_loading` and its ``CheckpointHook`` writes atomically
(:class:`~panet_mm.engine.checkpoint.AtomicLocalBackend`): scoped to this runner, so a plain mmengine Runner
in the same process is unchanged.
``tools/train.py`` and ``tools/test.py`` use it unless the config names another ``runner_type``.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Dict, Union

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, load_state_dict
from mmengine.runner.checkpoint import find_latest_checkpoint

from panet_mm.utils.checkpoint import (
    TASK_SETTINGS,
    NonFiniteWeightsError,
    checkpoint_task_settings,
    compare_state_dicts,
    list_keys,
    non_finite_keys,
    non_finite_message,
    unwrap_state_dict,
)
from panet_mm.utils.errors import ParameterError

from .checkpoint import (
    ATOMIC_BACKEND,
    ensure_checkpoint_hook,
    is_local_path,
    load_checkpoint_file,
    safe_checkpoint_loading,
)
from .hooks import NonFiniteLossHook, NonFiniteOutputHook, ValidationScaleHook

if TYPE_CHECKING:  # annotations only
    from torch import nn


class CheckpointMismatchError(ParameterError, RuntimeError):
    """A checkpoint's keys or shapes do not match the model; the fix names the config key ``allow_partial_load``."""


def _model_state(checkpoint: Any, filename: str, revise_keys: list) -> OrderedDict[str, Any]:
    """The checkpoint's state dict with ``revise_keys`` applied, keeping torch's per-module ``_metadata``."""
    state = unwrap_state_dict(checkpoint, filename, strip=())
    metadata = getattr(state, '_metadata', OrderedDict())   # module versions (BatchNorm's counter, ...)
    for pattern, repl in revise_keys:               # (the keys only, as mmengine's own loader does)
        state = OrderedDict((re.sub(pattern, repl, k), v) for k, v in state.items())
    state._metadata = metadata
    return state


#: The folder in the work directory (``<name>_<run timestamp>``: one per run) through which distributed metrics gather
#: their ranks' results (a shared file system's, as the work directory is for checkpoints); removed after each use.
DIST_COLLECT_DIR = '.dist_collect'


@RUNNERS.register_module()
class PANetRunner(Runner):
    """``mmengine.runner.Runner`` that refuses partial checkpoint loads unless asked.

    Config keys read besides the Runner's own: ``allow_partial_load`` (bool, default False): load
    the matching part of ``load_from`` and log the rest, as plain mmengine does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """mmengine's ``Runner``, plus panet_mm's checkpoint / non-finite hooks and atomic checkpoint writes."""
        super().__init__(*args, **kwargs)
        ensure_checkpoint_hook(self)
        for hook_type in (NonFiniteLossHook, NonFiniteOutputHook, ValidationScaleHook):
            if not any(isinstance(h, hook_type) for h in self.hooks):
                self.register_hook(hook_type())
        for hook in self.hooks:
            if isinstance(hook, CheckpointHook) and hook.backend_args is None and hook.file_client_args is None \
                    and (hook.out_dir is None or is_local_path(hook.out_dir)):
                hook.backend_args = dict(backend=ATOMIC_BACKEND)

    def train(self) -> nn.Module:
        """mmengine's ``train`` with weights-only checkpoint loading (``init_cfg`` pretrained weights too)."""
        with safe_checkpoint_loading():
            return super().train()

    def val(self) -> Dict[str, Any]:
        """mmengine's ``val`` with weights-only checkpoint loading."""
        with safe_checkpoint_loading():
            return super().val()

    def test(self) -> Dict[str, Any]:
        """mmengine's ``test`` with weights-only checkpoint loading."""
        with safe_checkpoint_loading():
            return super().test()

    def build_evaluator(self, evaluator: Any) -> Any:
        """mmengine's, with every metric that gathers its ranks' results through files (``collect_device='cpu'``,
        the CPU / gloo path) given a folder in the work directory.

        Why: without one, mmengine made ``.dist_test/`` in the current folder (a checkout's root) at every
        distributed validation and test, left it there, and a run killed while collecting left its ``part_N.pkl``
        files in it; a given folder is removed after each collection.
        """
        built = super().build_evaluator(evaluator)
        if self.distributed:
            for metric in getattr(built, 'metrics', []):
                if getattr(metric, 'collect_device', None) == 'cpu' and getattr(metric, 'collect_dir', '') is None:
                    metric.collect_dir = osp.join(self.work_dir, f'{DIST_COLLECT_DIR}_{self.timestamp}')
        return built

    def _init_model_weights(self) -> None:
        """mmengine's, without reading a mixed model's ``plain_weights`` when a checkpoint replaces every weight next
        (``--resume`` with something to resume, or a strict ``load_from``): the fine-tune's start point, moved or
        deleted after the first run, stopped a resumable run with "checkpoint ... not found"."""
        resumes = self._resume and (self._load_from is not None
                                    or osp.isfile(osp.join(self.work_dir, 'last_checkpoint')))
        replaced = resumes or (self._load_from is not None and not self.cfg.get('allow_partial_load', False))
        model = self.model.module if is_model_wrapper(self.model) else self.model
        skipped = [(m, m.plain_weights) for m in model.modules()
                   if replaced and getattr(m, 'plain_weights', None) is not None]
        for module, _ in skipped:
            module.plain_weights = None
            self.logger.info('plain_weights are not read: the checkpoint loaded next replaces every weight')
        try:
            super()._init_model_weights()
        finally:
            for module, weights in skipped:
                module.plain_weights = weights

    def dump_config(self) -> None:
        """Deferred to :meth:`load_or_resume`: the work directory's config copy is written once the checkpoint is
        accepted, so a refused ``--resume`` / ``load_from`` (another model's file) leaves the copy of the run that
        made the checkpoint as it was (mmengine wrote it while building the runner)."""
        self._config_dump_pending = True

    def load_or_resume(self) -> None:
        """mmengine's, with what it left unsaid or did wrong around ``--resume``:

        * nothing to resume: said plainly (mmengine logged "Auto resumed from the latest checkpoint None." and
          trained from the start);
        * the checkpoint ``last_checkpoint`` names is gone (deleted to save space, or the work directory moved: it
          holds an absolute path): the newest checkpoint present (mmengine stopped with "checkpoint ... not found");
        * it names a file outside this work directory (a copied work directory): the copy here (mmengine resumed
          from the original's file, then deleted the original's best checkpoint when a better one came);
        * a new run (no ``--resume``) in a work directory holding an earlier run's checkpoints: a warning.
        """
        record = osp.join(self.work_dir, 'last_checkpoint')
        if not self._has_loaded and self._resume and self._load_from is None:
            if not osp.isfile(record):
                self.logger.info(f"--resume: no checkpoint in '{self.work_dir}' yet, so training starts at "
                                 'iteration 0')
                self._resume = False
            else:
                self._load_from = self._checkpoint_to_resume(record)
        elif not self._has_loaded and not self._resume and self._load_from is None and osp.isfile(record):
            self.logger.warning(f"'{self.work_dir}' holds the checkpoints of an earlier run ('{record}'); this run "
                                'starts at iteration 0 and writes its own there - pass --resume to continue that run '
                                'instead, or another --work-dir to keep them apart')
        resuming = self._resume and not self._has_loaded
        super().load_or_resume()
        if resuming:
            self._keep_best_checkpoints_here(self._checkpoint_folder())
        if getattr(self, '_config_dump_pending', False):
            self._config_dump_pending = False
            copy = self.config_copy_path()
            self.config_copy_created = None if osp.exists(copy) or not is_main_process() else copy
            super().dump_config()

    def config_copy_path(self) -> str:
        """Where mmengine's ``dump_config`` writes the work directory's config copy."""
        name = osp.basename(self.cfg.filename) if self.cfg.filename is not None else f'{self.timestamp}.py'
        return osp.join(self.work_dir, name)

    def _checkpoint_to_resume(self, record: str) -> str:
        """The checkpoint ``--resume`` continues from: the one ``record`` names, found in this work directory."""
        named = find_latest_checkpoint(self.work_dir)  # what mmengine resumes: the file it names
        here = osp.realpath(self.work_dir)
        if osp.isfile(named) and osp.dirname(osp.realpath(named)) == here:
            return named
        if osp.isfile(named):  # outside: a copied (or moved-beside) work directory names the original's files
            local = newest_checkpoint(self.work_dir, prefer=osp.basename(named))
            if local is None:
                self.logger.warning(f"--resume: '{record}' names '{named}', outside this work directory, and none "
                                    'is here; resuming from it (files outside the work directory are read, never '
                                    'changed)')
                return named
            self.logger.warning(f"--resume: '{record}' names '{named}', outside this work directory (a copied work "
                                f"directory?); resuming from '{local}', the checkpoint here")
            return local
        found = newest_checkpoint(self.work_dir, prefer=osp.basename(named))
        if found is None:
            raise CheckpointMismatchError(
                'work_dir', f"--resume: '{record}' names '{named}', which is gone, and no other "
                "checkpoint (iter_N.pth) is left in the work directory; train without --resume, or "
                'pass another {param}')
        self.logger.warning(f"--resume: '{record}' names '{named}', which is gone; resuming from "
                            f"'{found}', the newest checkpoint in the work directory")
        return found

    def _checkpoint_folder(self) -> str:
        """Where this run's ``CheckpointHook`` writes: the work directory, or ``out_dir/<work_dir's name>``."""
        for hook in self.hooks:
            if isinstance(hook, CheckpointHook) and hook.out_dir not in (None, self.work_dir):
                return osp.join(str(hook.out_dir), osp.basename(self.work_dir.rstrip(osp.sep)))
        return self.work_dir

    def _keep_best_checkpoints_here(self, folder: str) -> None:
        """Point the resumed best-checkpoint records (mmengine's ``CheckpointHook`` deletes the file a record names
        when a better score comes) at their copies in ``folder``, where this run writes; a record of a file
        elsewhere with no copy here is dropped, so that no file outside the run's folder is ever deleted."""
        here = osp.realpath(folder)
        for key, path in list(self.message_hub.runtime_info.items()):
            if not (key == 'best_ckpt' or key.startswith('best_ckpt_')) or not isinstance(path, str) \
                    or not is_local_path(path) or osp.dirname(osp.realpath(path)) == here:
                continue
            local = osp.join(folder, osp.basename(path))
            self.message_hub.update_info(key, local if osp.isfile(local) else None)
            self.logger.info(f"--resume: the best checkpoint record named '{path}', outside this run's folder; it "
                             + (f"now names '{local}'" if osp.isfile(local) else 'is dropped (nothing outside the '
                                'folder is deleted)'))

    def resume(self, filename: str, *args: Any, **kwargs: Any) -> None:
        """mmengine's, marked so that a checkpoint of another model is refused with the fix for a resume."""
        self._resuming = True
        try:
            return super().resume(filename, *args, **kwargs)
        finally:
            self._resuming = False

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]) -> Any:
        """Load ``filename`` into the model; stop with the mismatched keys unless partial loads are allowed."""
        checkpoint = load_checkpoint_file(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        allow_partial = bool(self.cfg.get('allow_partial_load', False)) and not strict
        state = _model_state(checkpoint, filename, revise_keys)
        bad = non_finite_keys(state)
        if bad:
            raise NonFiniteWeightsError(non_finite_message(filename, bad))
        diff = compare_state_dicts(model.state_dict(), state)
        only_attention = diff.missing and not diff.unexpected and not diff.mismatched and all(
            k.startswith('attentions.') or '.attentions.' in k for k in diff.missing)
        if only_attention and not allow_partial:  # a host model's own checkpoint (e.g. from mmagic's train.py)
            raise CheckpointMismatchError(
                'plain_weights',
                f"checkpoint '{filename}' holds every weight of this model except its inserted pyramid attention "
                f"({len(diff.missing)} missing: {list_keys(diff.missing, 4)}): it is the host model's own checkpoint. "
                "Start the mixed model from it with model.generator.{param}='" + filename + "' instead of "
                'load_from / --resume (README "Add pyramid attention to your model")')
        extra_attention = diff.unexpected and not diff.missing and not diff.mismatched and all(
            k.startswith('attentions.') or '.attentions.' in k for k in diff.unexpected)
        if extra_attention and not allow_partial and not getattr(self, '_resuming', False):
            meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
            run = meta.get('experiment_name') if isinstance(meta, dict) else None
            raise CheckpointMismatchError(
                'allow_partial_load',
                f"checkpoint '{filename}' holds this model and {len(diff.unexpected)} tensors of pyramid attention "
                f'inserted into it ({list_keys(diff.unexpected, 3)}), which this config lacks: it was trained with '
                'WithPyramidAttention (a configs/mix config). Test it with the config it was trained with'
                + (f" (run '{run}': its copy in that run's work directory)" if run else '')
                + '; {param}=True would drop the attention and score the model without it')
        if not diff.ok and getattr(self, '_resuming', False):
            inside = osp.dirname(osp.realpath(filename)) == osp.realpath(self.work_dir)
            raise CheckpointMismatchError(
                'work_dir' if inside else 'load_from',
                f"--resume: checkpoint '{filename}'" + (f" in the work directory '{self.work_dir}'" if inside else '')
                + f" is of another model than this config's ({'; '.join(diff.lines())}); resume it with its own "
                + ('config, or pass another {param} to train this one' if inside else
                   'config, or pass this model\'s checkpoint as {param}'))
        if not diff.ok and not allow_partial:
            raise CheckpointMismatchError(
                'allow_partial_load',
                f"checkpoint '{filename}' does not match the model of this config ({'; '.join(diff.lines())}); it "
                'is for another architecture, depth or scale. Use the matching config, or load only what matches '
                'with {param}=True')
        load_state_dict(model, state, strict=strict and not allow_partial, logger=self.logger)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        if not getattr(self, '_resuming', False):
            self._warn_other_task_level(filename, checkpoint)
        return checkpoint

    def _warn_other_task_level(self, filename: str, checkpoint: Any) -> None:
        """Warn when the checkpoint was made for another ``sigma`` / ``quality`` / ``scale`` / ``pattern`` than this
        config's: those models share their weights' shapes, so the file loads and the numbers are the other
        level's model (a warning, not a refusal: fine-tuning from a neighbouring level is a recipe)."""
        made_for = checkpoint_task_settings(checkpoint.get('meta') if isinstance(checkpoint, dict) else None)
        ours = {name: self.cfg.get(name) for name in TASK_SETTINGS if self.cfg.get(name) is not None}
        if made_for and ours and not set(made_for) & set(ours):  # another task (e.g. demosaicing under denoising)
            theirs = ', '.join(f'{k} = {v!r}' for k, v in made_for.items())
            mine = ', '.join(f'{k} = {v!r}' for k, v in ours.items())
            self.logger.warning(f"checkpoint '{filename}' was made for another task ({theirs}) than this config's "
                                f'({mine}): its results are those of that model; use its config (README "Released '
                                'checkpoints" lists them) unless you mean this (fine-tuning to another task)')
            return
        for name, value in made_for.items():
            ours = self.cfg.get(name)
            if ours is not None and ours != value:
                self.logger.warning(f"checkpoint '{filename}' was made for {name} = {value!r} and this config is "
                                    f'for {name} = {ours!r}: its results are those of the {name} {value!r} model; '
                                    f'use the config for {name} {value!r} unless you mean this (fine-tuning to '
                                    'another level)')


def newest_checkpoint(work_dir: str, prefer: str = '') -> Union[str, None]:
    """``work_dir/prefer`` if that file exists, else the ``iter_N.pth`` (or ``epoch_N.pth``) of largest N there."""
    if prefer and osp.isfile(osp.join(work_dir, prefer)):
        return osp.join(work_dir, prefer)
    found = []
    for name in os.listdir(work_dir):
        m = re.fullmatch(r'(iter|epoch)_(\d+)\.pth', name)
        if m and osp.isfile(osp.join(work_dir, name)):
            found.append((m.group(1) == 'iter', int(m.group(2)), name))
    return osp.join(work_dir, max(found)[2]) if found else None


__all__ = ['CheckpointMismatchError', 'PANetRunner', 'newest_checkpoint']
