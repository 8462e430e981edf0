"""Studio: a desktop model-packaging studio for edge AI."""
__version__ = "0.1.0"
