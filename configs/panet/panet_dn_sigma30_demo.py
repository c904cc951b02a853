# The model card's name (configs/panet/README.md) for ../demo/panet_dn_sigma30_demo.py, which it inherits unchanged.
# Installed: _base_ = 'panet_mm::panet/panet_dn_sigma30_demo.py' from any directory. Edit the original, not this file.
_base_ = '../demo/panet_dn_sigma30_demo.py'
