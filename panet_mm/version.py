"""Version of panet_mm."""
__version__ = '0.1.0'
