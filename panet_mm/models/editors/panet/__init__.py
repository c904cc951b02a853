"""PANet generators, the edit model with its test-time modes, and the released-checkpoint converter."""
from .official import ConversionError, convert_official_checkpoint, convert_state_dict
from .panet_model import ChopTile, PANetEditModel, chop_boxes, tile_spans, tile_starts
from .panet_net import PAEDSRNet, PANet

__all__ = ['PANet', 'PAEDSRNet', 'PANetEditModel', 'ChopTile', 'chop_boxes', 'tile_spans', 'tile_starts',
           'ConversionError', 'convert_official_checkpoint', 'convert_state_dict']
