"""Versions of the libraries that produced or measured something, read from package metadata (no imports)."""
from __future__ import annotations

import contextlib
import platform
import socket
from importlib import metadata

PACKAGES = ["numpy", "onnx", "onnxruntime", "onnxconverter-common", "onnx2torch", "tf2onnx", "torch", "torch-pruning",
            "tensorflow-cpu", "litert-torch", "ai-edge-litert", "ai-edge-quantizer"]


def library_versions(names=PACKAGES) -> dict[str, str]:
    from studio import __version__

    out = {"studio": __version__, "python": platform.python_version()}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def host() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    import os

    return {"hostname": socket.gethostname(), "machine": platform.machine(), "cpu": cpu,
            "cpus": str(os.cpu_count()), "system": f"{platform.system()} {platform.release()}"}
