"""Signed, reproducible deployment bundles and the runner they carry."""
