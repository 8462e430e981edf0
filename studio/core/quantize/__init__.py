"""Quantization and the finishing step per target."""
