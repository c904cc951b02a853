"""Torch-only pyramid attention maths (no mmagic / mmengine import): see :mod:`.pyramid_attention`.

Deliberately re-exports nothing, so that ``panet_mm.ops.pyramid_attention`` stays the module.
"""
