"""`inspect_model`: one entry point for every format; framework work runs in worker processes."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from studio.core.base.errors import JobCrashed, ModelLoadError
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken, Report, ignore
from studio.core.inspect.formats import Format, detect
from studio.core.inspect.modelinfo import ModelInfo, Problem


def _structure(path: str, fmt: Format, arch, trust_pickle, input_shape, report=ignore) -> ModelInfo:
    if fmt == Format.ONNX:
        from studio.core.inspect.onnx_model import inspect_onnx
        return inspect_onnx(path, report=report)
    if fmt == Format.TFLITE:
        from studio.core.inspect.tflite_model import inspect_tflite
        return inspect_tflite(path, report=report)
    if fmt.framework == "pytorch":
        from studio.core.inspect.torch_model import inspect_torch
        return inspect_torch(path, fmt.value, arch, trust_pickle, input_shape, report=report)
    from studio.core.inspect.keras_model import inspect_keras
    return inspect_keras(path, fmt.value, report=report)


def _probe(path: str, fmt: Format, report=ignore) -> list[Problem]:
    if fmt == Format.ONNX:
        from studio.core.inspect.onnx_model import probe_onnx
        return probe_onnx(path, report=report)
    from studio.core.inspect.tflite_model import inspect_tflite, probe_tflite
    return probe_tflite(path, inspect_tflite(path).details.get("custom_ops", []), report=report)


def inspect_model(path: str | os.PathLike, *, arch: str | None = None, trust_pickle: bool = False,
                  input_shape: tuple[int, ...] | None = None, isolate: bool = True, timeout: float = 600,
                  report: Report = ignore, cancel: CancelToken | None = None) -> ModelInfo:
    """Everything `studio inspect` shows about a model, or a ModelLoadError naming the file and the problem.

    With isolate=True (the default) the parsing and the runtime check each run in a worker process, so a file
    that crashes a framework's C++ code is reported as a problem instead of killing the caller."""
    path = os.fspath(path)
    fmt = detect(path)
    runtime = fmt in (Format.ONNX, Format.TFLITE)
    label = {"onnx": "onnxruntime", "tflite": "ai-edge-litert"}.get(fmt.framework, "the loader")

    def call(fn, *args, what, rep=ignore):
        if not isolate:
            return fn(*args, report=rep)
        try:
            return run_job(fn, *args, report=rep, cancel=cancel, timeout=timeout, what=what)
        except JobCrashed as exc:
            raise ModelLoadError(exc.message, path) from None

    with ThreadPoolExecutor(max_workers=2) as pool:
        probe = pool.submit(call, _probe, path, fmt, what=f"{label} (checking whether the model runs)") \
            if runtime else None
        try:
            info = call(_structure, path, fmt, arch, trust_pickle, input_shape, what=f"the {fmt.framework} parser",
                        rep=report)
        except BaseException:
            if probe is not None:
                probe.cancel()
            raise
        if probe is not None:
            try:
                info.problems.extend(probe.result())
            except ModelLoadError as exc:  # the runtime crashed or hung on this file
                info.problems.append(Problem("error", "runtime-crashed", exc.message))
    if fmt == Format.TFLITE and info.details.get("custom_ops") and not any(p.code == "custom-op" for p in
                                                                           info.problems):
        from studio.core.inspect.tflite_model import custom_op_warning
        info.problems.append(custom_op_warning(info.details["custom_ops"]))
    report(1.0, "inspected")
    return info
