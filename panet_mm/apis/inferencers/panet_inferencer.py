"""``PANetInferencer``: mmagic's ``MMagicInferencer`` way of use for panet_mm's own models.

``MMagicInferencer`` picks its task from a built-in ``model_name`` only; a panet_mm model is named by
its config file, its ``panet_mm::panet/<name>.py`` name or its name in ``configs/panet/metafile.yml``.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List

import numpy as np

from ..errors import RestoreParameterError
from .restoration_inferencer import ImageInput, RestorationInferencer

SCOPE_PREFIX = 'panet_mm::'


def config_roots() -> List[str]:
    """Folders holding panet_mm's configs: the installed copy (``.mim``), then a checkout's ``configs/``."""
    package = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    candidates = [osp.join(package, '.mim', 'configs'), osp.join(osp.dirname(package), 'configs')]
    return [folder for folder in candidates if osp.isdir(folder)]


def registered_models() -> Dict[str, str]:
    """Model names of ``configs/panet/metafile.yml`` and their config files."""
    import yaml
    for root in config_roots():
        metafile = osp.join(root, 'panet', 'metafile.yml')
        if osp.isfile(metafile):
            with open(metafile, encoding='utf-8') as f:
                models = (yaml.safe_load(f) or {}).get('Models') or []
            return {m['Name']: osp.join(root, str(m['Config']).split('configs/', 1)[-1]) for m in models
                    if isinstance(m, dict) and 'Name' in m and 'Config' in m}
    return {}


def _under(root: str, relative: str) -> str:
    """``root/relative`` if it stays inside ``root`` (a name must not reach files elsewhere), else ''."""
    path = osp.normpath(osp.join(root, relative))
    return path if path.startswith(osp.normpath(root) + osp.sep) else ''


def resolve_config(config: str) -> str:
    """The config file of a path, a ``panet_mm::panet/<name>.py`` name or a registered model name.

    Args:
        config (str): E.g. ``'configs/panet_sr_x2_div2k.py'``, ``'panet_mm::panet/panet_sr_x2_demo.py'``
            or ``'panet_sr_x2_demo'``.

    Returns:
        str: The config file.

    Raises:
        RestoreParameterError: None of these; the message lists the registered names.
    """
    if osp.isfile(config):
        return config
    models = registered_models()
    if config.startswith(SCOPE_PREFIX):
        for root in config_roots():
            path = _under(root, config[len(SCOPE_PREFIX):])
            if path and osp.isfile(path):
                return path
    elif osp.isfile(models.get(config, '')):
        return models[config]
    raise RestoreParameterError('config', f"{{param}} '{config}' is neither a config file nor a registered model; "
                                f"pass a config path, '{SCOPE_PREFIX}panet/<name>.py' or one of "
                                f"{', '.join(sorted(models)) or 'the names in configs/panet/metafile.yml'}")


class PANetInferencer(RestorationInferencer):
    """A panet_mm model by config or registered name, used like ``MMagicInferencer``.

    Example:
        >>> editor = PANetInferencer('panet_sr_x2_div2k', 'paedsr_x2.pth', device='cpu')
        >>> editor.infer(img='photo.png', result_out_dir='photo_x2.png')

    Args:
        config (str): A config file, ``'panet_mm::panet/<name>.py'`` or a name from
            ``configs/panet/metafile.yml`` (:func:`resolve_config`).
        checkpoint (str): Checkpoint of that model; always needed (nothing is downloaded).
        device (str, optional): ``'cpu'`` or ``'cuda'``. Default: cuda if available.
        **options: ``chop``, ``tile``, ``self_ensemble``, ``precision`` of :class:`RestorationInferencer`.
    """

    def __init__(self, config: str, checkpoint: str, device: Any = None, **options: Any) -> None:
        self.model_name = config
        super().__init__(resolve_config(config), checkpoint, device=device, **options)

    def infer(self, img: ImageInput, result_out_dir: str = '') -> np.ndarray:
        """Restore ``img`` (a file or an OpenCV-order array); write it to ``result_out_dir`` if given.

        Returns:
            np.ndarray: The restored uint8 image, OpenCV's channel order.
        """
        return self(img=img, result_out_dir=result_out_dir)

    @staticmethod
    def get_inference_supported_models() -> List[str]:
        """The registered model names (``configs/panet/metafile.yml``)."""
        return sorted(registered_models())


__all__ = ['PANetInferencer', 'config_roots', 'registered_models', 'resolve_config']
