"""Pruning weights."""
