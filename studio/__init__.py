"""Studio: a desktop model-packaging studio for edge AI."""
import sys

__version__ = "0.1.0"

# PyPI's torch is a CUDA build that brings triton, and torch._dynamo (torch.export, the ONNX exporter) imports it.
# Triton's LLVM clashes with TensorFlow's: `import tensorflow` then `import torch._dynamo` segfaults the process.
# Studio runs on the CPU and never compiles kernels, so triton is kept out; torch treats it as not installed.
sys.modules.setdefault("triton", None)  # type: ignore[arg-type]
