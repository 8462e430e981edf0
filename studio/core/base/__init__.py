"""Foundations every stage uses: errors, atomic writes, paths, progress and cancel, worker jobs."""
