"""How a config loads the degraded input image: what restoration must imitate for a user's own file."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from panet_mm.datasets.transforms.mosaic import check_pattern

from .errors import RestoreError

_LOADER_TYPES = ('LoadImageFromFile', 'mmagic.LoadImageFromFile')
_MOSAIC_TYPES = ('BayerMosaic', 'mmagic.BayerMosaic')


@dataclass(frozen=True)
class LoadSettings:
    """The config's ``LoadImageFromFile`` of the degraded input, and where it was found.

    Attributes:
        color_type (str): ``'color'``, ``'grayscale'`` or ``'unchanged'`` (mmcv's decode flag).
        channel_order (str): ``'rgb'`` or ``'bgr'``: colour images as the model sees them.
        to_y_channel (bool): Whether the config converts colour images to their Y channel.
        source (str): The config entry the settings come from, e.g. ``'inference_pipeline'``.
        transform (dict): The transform config (with ``key='img'``).
        bayer_pattern (str, optional): Pattern of a ``BayerMosaic`` of ``img`` in the same pipeline
            (demosaicing configs): inputs are then Bayer data. Default: None.
        bayer_channel_order (str): Channel order of that ``BayerMosaic``. Default: 'rgb'.
    """

    color_type: str
    channel_order: str
    to_y_channel: bool
    source: str
    transform: Dict[str, Any] = field(compare=False)
    bayer_pattern: Optional[str] = None
    bayer_channel_order: str = 'rgb'


def _dataset_pipelines(node: Any, prefix: str) -> Iterator[Tuple[str, Any]]:
    """Pipelines of a dataloader / dataset config, through wrapped and concatenated datasets."""
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _dataset_pipelines(item, f'{prefix}[{i}]')
    elif isinstance(node, dict):
        if 'pipeline' in node:
            yield f'{prefix}.pipeline', node['pipeline']
        if 'dataset' in node:
            yield from _dataset_pipelines(node['dataset'], f'{prefix}.dataset')
        if 'datasets' in node:
            yield from _dataset_pipelines(node['datasets'], f'{prefix}.datasets')


def _transform_keys(transform: Dict[str, Any]) -> List[str]:
    keys = transform.get('keys', [])
    return [keys] if isinstance(keys, str) else list(keys)


def _settings(source: str, pipeline: List[Any], found: Dict[str, Any]) -> LoadSettings:
    channel_order = str(found.get('channel_order', 'bgr')).lower()
    mosaic = next((t for t in pipeline if isinstance(t, dict) and t.get('type') in _MOSAIC_TYPES
                   and 'img' in _transform_keys(t)), None)
    pattern = None if mosaic is None else check_pattern(mosaic.get('pattern', 'GRBG'), source)
    return LoadSettings(color_type=str(found.get('color_type', 'color')), channel_order=channel_order,
                        to_y_channel=bool(found.get('to_y_channel', False)), source=source,
                        transform=dict(copy.deepcopy(dict(found)), key='img'), bayer_pattern=pattern,
                        bayer_channel_order=str((mosaic or {}).get('channel_order') or channel_order))


def find_load_settings(cfg: Any, config: str = '<config>') -> LoadSettings:
    """The config's loading of the degraded input, so that a user's file is read as test inputs are.

    Looks at ``inference_pipeline``, the test and validation dataloaders' pipelines, then
    ``test_pipeline`` / ``val_pipeline``; in the first with a ``LoadImageFromFile`` it takes the one for
    ``key='img'``, else the one for ``'gt'`` (pipelines that synthesise the input from the ground truth
    load the user's image like the ground truth). A ``BayerMosaic`` of ``img`` there marks demosaicing.

    Args:
        cfg (Config): The loaded config.
        config (str): Config path, for the message.

    Returns:
        LoadSettings: The loading settings.

    Raises:
        RestoreError: No ``LoadImageFromFile`` anywhere.
    """
    candidates: List[Tuple[str, Any]] = [('inference_pipeline', cfg.get('inference_pipeline'))]
    for name in ('test_dataloader', 'val_dataloader'):
        candidates += list(_dataset_pipelines(cfg.get(name), name))
    candidates += [('test_pipeline', cfg.get('test_pipeline')), ('val_pipeline', cfg.get('val_pipeline'))]
    for source, pipeline in candidates:
        if not isinstance(pipeline, (list, tuple)):
            continue
        loaders = [t for t in pipeline if isinstance(t, dict) and t.get('type') in _LOADER_TYPES]
        for key in ('img', 'gt'):
            found = next((t for t in loaders if t.get('key') == key), None)
            if found is not None:
                return _settings(source, list(pipeline), found)
    raise RestoreError(f"config '{config}' has no LoadImageFromFile in inference_pipeline or its test / val "
                       "pipelines; add inference_pipeline = [dict(type='LoadImageFromFile', key='img', ...), "
                       "dict(type='PackInputs')]")


__all__ = ['LoadSettings', 'find_load_settings']
