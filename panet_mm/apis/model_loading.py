"""The model of a config with a checkpoint's weights: weights-only, strict, finite, or refused with the keys."""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor

from panet_mm.engine.config_checks import check_argument_types
from panet_mm.models.editors.panet.panet_model import as_panet_edit_model
from panet_mm.utils.checkpoint import (
    StateDictDiff,
    UnsafeCheckpointError,
    compare_state_dicts,
    load_weights_only,
    missing_checkpoint,
    non_finite_keys,
    non_finite_message,
    unwrap_state_dict,
)

from .errors import CheckpointRefusedError, RestoreError, RestoreParameterError
from .load_settings import LoadSettings, find_load_settings

_EDIT_MODELS = ('PANetEditModel', 'mmagic.PANetEditModel')


def load_state_dict_safely(path: str) -> Dict[str, Tensor]:
    """The tensor ``state_dict`` of a checkpoint, read without unpickling objects that could run code.

    Accepts mmengine checkpoints (metadata dropped) and plain state dicts, unwrapped as
    :func:`~panet_mm.utils.checkpoint.unwrap_state_dict` does (a ``module.`` prefix is removed).

    Args:
        path (str): Checkpoint file.

    Returns:
        dict[str, Tensor]: The state dict, on the CPU.

    Raises:
        CheckpointRefusedError: Missing or unreadable file, objects the weights-only loader refuses,
            or no state dict of tensors inside.
    """
    missing = missing_checkpoint(path)
    if missing:
        raise CheckpointRefusedError(f'{missing}; pass a .pth written by tools/train.py or '
                                     'tools/model_converters/convert_official_ckpt.py')
    try:
        obj = load_weights_only(path, 'cpu')
    except UnsafeCheckpointError as err:
        raise CheckpointRefusedError(str(err)) from None
    return unwrap_state_dict(obj, path, error=CheckpointRefusedError)


#: Generator arguments that tell one model of a family from another, named in :func:`checkpoint_origin`.
_TELLING_ARGUMENTS = ('mid_channels', 'num_blocks', 'upscale_factor', 'upscale', 'in_channels', 'out_channels')


def checkpoint_origin(path: str) -> Optional[str]:
    """The run that saved an mmengine checkpoint and the generator its config builds, read from its ``meta``
    (``experiment_name``, and ``cfg``: the config's text); None where the file holds no such record.

    Why: a checkpoint refused for another config listed a hundred keys, while its own metadata names the config
    it was trained with (e.g. ``run 'panet_sr_x2_demo_20261206_101010' (PAEDSRNet, mid_channels=32, ...)``).
    """
    try:
        meta = load_weights_only(path, 'cpu').get('meta') or {}
    except Exception:  # noqa: BLE001 (no record: the message goes without it)
        return None
    if not isinstance(meta, dict):
        return None
    run = meta.get('experiment_name')
    built = None
    if isinstance(meta.get('cfg'), str):
        try:
            from mmengine.config import Config
            generator = Config.fromstring(meta['cfg'], '.py').get('model', {}).get('generator') or {}
            shown = ', '.join(f'{k}={generator[k]!r}' for k in _TELLING_ARGUMENTS if k in generator)
            built = f"{generator['type']}{f', {shown}' if shown else ''}" if 'type' in generator else None
        except Exception:  # noqa: BLE001 (a config text mmengine cannot read back: named by its run only)
            built = None
    if not run and not built:
        return None
    return ' '.join(p for p in (f"the run '{run}'" if run else 'a run', f'({built})' if built else '') if p)


def _mismatch_message(diff: StateDictDiff, checkpoint: str, config: str) -> str:
    lines = [f"checkpoint '{checkpoint}' does not match the model of config '{config}' ({diff.counts()} key(s)), so "
             'nothing was loaded or written; pass the checkpoint trained with this config (same architecture, '
             'size and scale) or the config it was trained with.']
    origin = checkpoint_origin(checkpoint)
    if origin:
        lines.append(f'  it was saved by {origin}')
    lines += [f'  {line}' for line in diff.lines()]
    if any(k.startswith(('head.', 'tail.')) for k in diff.unexpected):
        lines.append('  hint: this looks like a released PANet / PA-EDSR file; convert it first with '
                     'tools/model_converters/convert_official_ckpt.py.')
    elif diff.mismatched and all('upsample' in k for k, _, _ in diff.mismatched):
        lines.append('  hint: only the up-sampler differs: the checkpoint was trained for another scale; use the '
                     'config of that scale.')
    return '\n'.join(lines)


def match_state_dict(model: torch.nn.Module, state: Dict[str, Tensor], checkpoint: str,
                     config: str) -> Dict[str, Tensor]:
    """``state`` if it has exactly the keys and shapes of ``model``: a partial load would restore garbage.

    A bare generator state dict (keys without ``generator.``) is accepted when, prefixed, it matches.

    Args:
        model (nn.Module): The edit model built from the config.
        state (dict[str, Tensor]): From :func:`load_state_dict_safely`.
        checkpoint (str): Checkpoint path, for the message.
        config (str): Config path, for the message.

    Returns:
        dict[str, Tensor]: The state dict to load with ``strict=True``.

    Raises:
        CheckpointRefusedError: Missing, unexpected or mis-shaped keys, all named.
    """
    expected = model.state_dict()
    if not set(state) & set(expected) and any(k.startswith('generator.') for k in expected):
        prefixed = {f'generator.{k}': v for k, v in state.items()}
        if set(prefixed) == set(expected):
            state = prefixed
    diff = compare_state_dicts(expected, state)
    if not diff.ok:
        raise CheckpointRefusedError(_mismatch_message(diff, checkpoint, config))
    return state


def check_device(device: Optional[Union[str, torch.device]]) -> str:
    """The device to run on: cuda when available unless given; refuses one torch cannot use."""
    if device is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise RestoreParameterError('device', f"{{param}} {device!r} is not a device; use 'cpu' or 'cuda'")
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise RestoreParameterError('device', f"{{param}} '{device}' was requested but torch sees no GPU; "
                                    'use {param} cpu')
    if not device.startswith(('cpu', 'cuda')):
        raise RestoreParameterError('device', f"{{param}} '{device}' is not supported; use cpu or cuda")
    return device


def restoration_test_cfg(model_cfg: Dict[str, Any], load: LoadSettings, config: str,
                          options: Dict[str, Any]) -> Dict[str, Any]:
    """The model's ``test_cfg`` with the caller's test-time mode instead of the config's.

    ``chop`` / ``tile`` / ``self_ensemble`` of the config are replaced (whole image unless given), its
    other keys kept. Demosaicing configs get ``align=2`` unless set, so chop / tile keep the Bayer phase.

    Args:
        model_cfg (dict): The config's ``model``, with mmagic's ``BaseEditModel`` already made a
            ``PANetEditModel`` (:func:`as_panet_edit_model`), as :func:`build_model` does.
        load (LoadSettings): Its input loading (``bayer_pattern`` marks demosaicing).
        config (str): Config path, for the message.
        options (dict): ``chop``, ``tile``, ``self_ensemble``, ``precision``; None and False are unset (``chop={}``
            is the chop with its defaults).

    Returns:
        dict: The ``test_cfg``.

    Raises:
        RestoreError: Options given for a model type that has no test-time modes.
        RestoreParameterError: ``self_ensemble`` for a demosaicing config.
    """
    # (an empty dict is set: chop={} / --chop alone is the released chop with its defaults)
    options = {k: v for k, v in options.items() if v is not None and v is not False}
    test_cfg = {k: v for k, v in dict(model_cfg.get('test_cfg') or {}).items()
                if k not in ('chop', 'tile', 'self_ensemble')}
    if model_cfg.get('type') in _EDIT_MODELS:
        if load.bayer_pattern is not None and options.get('self_ensemble'):
            raise RestoreParameterError(
                'self_ensemble', f"{{param}} is refused for the demosaicing config '{config}': a flip or transpose "
                'changes the Bayer pattern the model was trained on; drop {param}')
        test_cfg.update(options)
        if load.bayer_pattern is not None:
            test_cfg.setdefault('align', 2)  # tiles / chop quadrants at even offsets keep the Bayer phase
    elif options:
        raise RestoreError(f"config '{config}' builds {model_cfg.get('type')}, which has no {sorted(options)}; "
                           "use a config with model type='PANetEditModel' or drop those options")
    return test_cfg


def build_model(cfg: Any, config: str, checkpoint: str, device: str,
                options: Dict[str, Any]) -> Tuple[torch.nn.Module, LoadSettings]:
    """The config's edit model with the checkpoint's weights, in eval mode on ``device``.

    Args:
        cfg (Config): The loaded config.
        config (str): Its path, for messages.
        checkpoint (str): Checkpoint file, loaded weights-only and strictly.
        device (str): Where the model runs.
        options (dict): Test-time options, see :func:`restoration_test_cfg`.

    Returns:
        tuple[nn.Module, LoadSettings]: The model and the config's input loading.

    Raises:
        RestoreError: Options the config's model cannot take.
        RestoreParameterError: ``self_ensemble`` for a demosaicing config.
        ValueError: Other test-time settings the model refuses.
        CheckpointRefusedError: Unsafe, unreadable, mismatched or non-finite weights.
    """
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmagic'))
    from mmagic.registry import MODELS

    import panet_mm  # noqa: F401  (registers PANetEditModel etc. even if the config lacks custom_imports)
    load = find_load_settings(cfg, config)
    model_cfg = copy.deepcopy(cfg.model)
    check_argument_types(model_cfg)  # mid_channels='32' failed inside nn.Conv2d
    as_panet_edit_model(model_cfg)  # the same model and weights, with test-time modes and small inputs padded
    model_cfg['test_cfg'] = restoration_test_cfg(model_cfg, load, config, options)
    model = MODELS.build(model_cfg)
    state = match_state_dict(model, load_state_dict_safely(checkpoint), checkpoint, config)
    bad = non_finite_keys(state)
    if bad:
        raise CheckpointRefusedError(non_finite_message(checkpoint, bad))
    model.load_state_dict(state, strict=True)
    return model.eval().to(device), load


__all__ = ['build_model', 'check_device', 'load_state_dict_safely', 'match_state_dict', 'restoration_test_cfg']
