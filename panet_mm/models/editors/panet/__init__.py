"""PANet generators, the edit model with its test-time modes, and the released-checkpoint converter."""
from .official import ConversionError, convert_official_checkpoint, convert_state_dict
from .panet_model import InvalidTestCfgError, PANetEditModel
from .panet_net import PAEDSRNet, PANet
from .tiling import ChopTile, chop_boxes, tile_spans, tile_starts

__all__ = ['PANet', 'PAEDSRNet', 'PANetEditModel', 'ChopTile', 'chop_boxes', 'tile_spans', 'tile_starts',
           'ConversionError', 'InvalidTestCfgError', 'convert_official_checkpoint', 'convert_state_dict']
