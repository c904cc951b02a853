"""``PANetInferencer``: mmagic's ``MMagicInferencer`` way of use for panet_mm's own models.

``MMagicInferencer`` picks its task from a built-in ``model_name`` only; a panet_mm model is named by
its config file, its ``panet_mm::panet/<name>.py`` name or its name in ``configs/panet/metafile.yml``.
"""
from __future__ import annotations

from typing import Any, List

import numpy as np

from panet_mm.utils.config_names import find_config, missing_config_message, registered_models, unknown_config

from ..errors import RestoreParameterError
from .restoration_inferencer import ImageInput, RestorationInferencer


def resolve_config(config: str) -> str:
    """The config file of a path, a ``panet_mm::panet/<name>.py`` name or a registered model name.

    Args:
        config (str): E.g. ``'configs/panet_sr_x2_div2k.py'``, ``'panet_mm::panet/panet_sr_x2_demo.py'``
            or ``'panet_sr_x2_demo'``.

    Returns:
        str: The config file.

    Raises:
        RestoreParameterError: None of these; the message names the shipped config a missing
            ``configs/<name>.py`` path means, else lists the registered names.
    """
    path = find_config(config)
    if path is None:
        raise RestoreParameterError('config', missing_config_message(config)
                                    or f"{{param}} '{config}' is {unknown_config(config)}")
    return path


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
            np.ndarray: The restored uint8 image, OpenCV's channel order (``H x W`` if grey).
        """
        return self(img=img, result_out_dir=result_out_dir)

    @staticmethod
    def get_inference_supported_models() -> List[str]:
        """The registered model names (``configs/panet/metafile.yml``)."""
        return sorted(registered_models())


__all__ = ['PANetInferencer', 'registered_models', 'resolve_config']
