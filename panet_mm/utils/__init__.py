"""Helpers shared across panet_mm that belong to no mmagic registry."""
