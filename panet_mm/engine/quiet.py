"""Quiet tools: the third-party warnings the stack emits on import, filtered by message and category.

The pinned stack (mmagic 1.2.0 with its transformers / diffusers, mmengine, torch) warns about its own
deprecations on every run, before a tool has done anything; none of it is actionable by a user of
panet_mm. ``import panet_mm`` drops exactly these from the imports it makes (:func:`replay_warnings`,
no filter installed); the tools also filter them for the rest of their process, by message and category,
so that every other warning, panet_mm's own included, still shows. A tool imports the stack inside
``warnings.catch_warnings(record=True)`` (these warnings fire during the imports, before this module
could be imported) and hands the record to :func:`quiet_third_party_warnings`, which re-emits the
others.
"""
from __future__ import annotations

import logging
import re
import warnings
from typing import Iterable, List, Tuple, Type

#: ``(message regex, category)`` of every filtered warning, with where it comes from.
THIRD_PARTY_WARNINGS: List[Tuple[str, Type[Warning]]] = [
    # transformers 4.36 and diffusers 0.24 (imported by mmagic.models) on torch >= 2.2
    (r'`torch\.utils\._pytree\._register_pytree_node` is deprecated', FutureWarning),
    # mmengine 0.10 (mmengine/optim/optimizer/zero_optimizer.py imports torch.distributed.optim)
    (r'`TorchScript` support for functional optimizers is deprecated', DeprecationWarning),
    # mmagic 1.2.0 (mmagic/utils/trans_utils.py) on numpy >= 1.24
    (r'`np\.bool8` is a deprecated alias', DeprecationWarning),
    # controlnet_aux 0.0.7 (imported by mmagic.models): scipy, timm and its optional mediapipe
    (r'Please import `gaussian_filter` from the `scipy\.ndimage` namespace', DeprecationWarning),
    (r'Importing from timm\.models\.(layers|registry) is deprecated', DeprecationWarning),
    (r"The module 'mediapipe' is not installed", UserWarning),
    (r'Overwriting tiny_vit_\w+ in registry with controlnet_aux\.', UserWarning),
    # mmengine 0.10 (mmengine/utils/package_utils.py, resolving a 'pkg::' config base) on setuptools >= 80
    (r'pkg_resources is deprecated as an API', UserWarning),
    # mmengine 0.10 (utils/dl_utils/setup_env.py) in every distributed rank: it sets OMP / MKL_NUM_THREADS after
    # torch started its thread pools, which changes nothing there (torchrun sets OMP for several processes itself)
    (r'Setting (OMP|MKL)_NUM_THREADS environment variable for each process', UserWarning),
    # mmagic 1.2.0's SwinIR (swinir_utils.py, at its first forward) calls torch.meshgrid without indexing=
    (r'torch\.meshgrid: in an upcoming release, it will be required to pass the indexing argument', UserWarning),
]


#: mmagic 1.2.0's DataPreprocessor.destruct converts every output to BGR; a grey output (the JPEG models' Y channel)
#: has no channel order to convert, and is returned unchanged as it should be.
SINGLE_CHANNEL_ORDER = r"Cannot convert inputs with 'single' channel order to 'output_channel_order'"

#: mmagic's per-image log warnings while restoring a user's image (the inferencer filters them during its call): it
#: has no ground truth, and a grey result stays grey.
INFERENCE_LOG_WARNINGS: List[str] = [r"Cannot find key 'gt", SINGLE_CHANNEL_ORDER]

#: Messages of the mmengine log warnings (``print_log``) a demo run prints that say nothing to a user.
THIRD_PARTY_LOG_WARNINGS: List[str] = [
    # mmengine's BaseDataset on mmagic-style metainfo values (dataset_type='div2k', task_name='sisr'): names, not
    # files (a value that looks like a path still warns)
    r'[\w-]+ is not a meta file, simply parsed as meta information$',
    # mmagic 1.2.0's LoadImageFromFile builds mmengine's deprecated FileClient / HardDiskBackend
    r'"FileClient" will be deprecated in future',
    r'"HardDiskBackend" is the alias of "LocalBackend"',
    SINGLE_CHANNEL_ORDER,  # grey validations (the JPEG models)
]


class _ThirdPartyLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING
                    and any(re.match(p, record.getMessage()) for p in THIRD_PARTY_LOG_WARNINGS))


def quiet_third_party_logs(logger: logging.Logger) -> None:
    """Drop :data:`THIRD_PARTY_LOG_WARNINGS` from ``logger`` (a runner's ``MMLogger``, ``print_log``'s current one)."""
    if not any(isinstance(f, _ThirdPartyLogFilter) for f in logger.filters):
        logger.addFilter(_ThirdPartyLogFilter())


def _is_known(message: str, category: Type[Warning]) -> bool:
    return any(issubclass(category, cat) and re.match(pattern, message) for pattern, cat in THIRD_PARTY_WARNINGS)


def replay_warnings(early: Iterable[warnings.WarningMessage]) -> None:
    """Emit the warnings recorded in ``early`` again, once each, except :data:`THIRD_PARTY_WARNINGS`.

    ``import panet_mm`` records the warnings of the stack it imports (mmagic, transformers, diffusers) and
    replays them here, so that neither the console scripts nor a notebook print the stack's deprecations,
    while every other warning still shows; no filter is installed, later warnings are untouched.

    Args:
        early (Iterable[warnings.WarningMessage]): Warnings recorded by ``warnings.catch_warnings(record=True)``
            with ``simplefilter('always')``; each other one goes through the filters in force (``-W`` included).
    """
    seen = set()
    for w in early:
        key = (str(w.message), w.category, w.filename, w.lineno)
        if key in seen or _is_known(str(w.message), w.category):
            continue
        seen.add(key)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def quiet_third_party_warnings(early: Iterable[warnings.WarningMessage] = ()) -> None:
    """Filter :data:`THIRD_PARTY_WARNINGS` from now on (a tool's process); re-emit the others of ``early``.

    Args:
        early (Iterable[warnings.WarningMessage]): Warnings recorded while importing the stack, as for
            :func:`replay_warnings`.
    """
    for pattern, category in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings('ignore', message=pattern, category=category)
    replay_warnings(early)


__all__ = ['INFERENCE_LOG_WARNINGS', 'SINGLE_CHANNEL_ORDER', 'THIRD_PARTY_LOG_WARNINGS', 'THIRD_PARTY_WARNINGS',
           'quiet_third_party_logs', 'quiet_third_party_warnings', 'replay_warnings']
