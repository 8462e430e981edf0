"""Monitoring deployed models: on-device checks against a bundle's promise, their verdicts and their history."""
