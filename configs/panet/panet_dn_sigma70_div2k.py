# The model card's name (configs/panet/README.md) for ../panet_dn_sigma70_div2k.py, which it inherits unchanged.
# Installed: _base_ = 'panet_mm::panet/panet_dn_sigma70_div2k.py' from any directory. Edit the original, not this file.
_base_ = '../panet_dn_sigma70_div2k.py'
