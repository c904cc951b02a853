"""Inferencers in mmagic's shape for panet_mm's restoration models."""
from .panet_inferencer import PANetInferencer, registered_models, resolve_config
from .restoration_inferencer import RestorationInferencer, model_attention_macs

__all__ = ['PANetInferencer', 'RestorationInferencer', 'model_attention_macs', 'registered_models', 'resolve_config']
