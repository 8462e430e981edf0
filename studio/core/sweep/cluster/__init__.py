"""Sweeps on a Ray cluster: the client (no ray import), the driver process and what a task does on a node."""
