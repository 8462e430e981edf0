"""`inspect_model`: one entry point for every format; framework work runs in worker processes."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from studio.core.base.errors import JobCrashed, ModelLoadError
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken, Report, ignore
from studio.core.inspect import cache
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.inspect.formats import INSPECTORS, Format, InspectOptions, detect
from studio.core.inspect.modelinfo import ModelInfo, Problem
from studio.core.tensors.shapes import ShapeRequest


def _structure(path: str, fmt: Format, options: InspectOptions, report: Report = ignore) -> ModelInfo:
    return INSPECTORS[fmt].inspect(path, options, report=report)


def _probe(path: str, fmt: Format, report: Report = ignore) -> list[Problem]:
    return INSPECTORS[fmt].probe(path, report=report)


def inspect_model(path: str | os.PathLike, *, arch: ArchSpec | None = None, trust_pickle: bool = False,
                  input_shape: tuple[int, ...] | None = None, shapes: ShapeRequest | None = None,
                  isolate: bool = True, timeout: float = 600, probe: bool = True,
                  report: Report = ignore, cancel: CancelToken | None = None) -> ModelInfo:
    """Everything `studio inspect` shows about a model, or a ModelLoadError naming the file and the problem.

    With isolate=True (the default) the parsing and the runtime check each run in a worker process, so a file
    that crashes a framework's C++ code is reported as a problem instead of killing the caller. `shapes` (or the
    one `input_shape`) gives a PyTorch module the shapes and dtypes of its inputs. probe=False skips the runtime
    check: for a file the caller runs anyway (optimize runs its result to score it). A full inspection of an ONNX or
    TFLite file is kept (see cache) and read back while the file and the code are unchanged."""
    path = os.fspath(path)
    fmt = detect(path)
    inspector, options = INSPECTORS[fmt], InspectOptions(arch, trust_pickle,
                                                              shapes or ShapeRequest.of(input_shape))
    kept = cache.lookup(path, fmt, options) if isolate and probe else None
    if kept is not None:
        report(1.0, "inspected (unchanged since the last time)")
        return kept

    def call(fn, *args, what, rep=ignore):
        if not isolate:
            return fn(*args, report=rep)
        try:
            return run_job(fn, *args, report=rep, cancel=cancel, timeout=timeout, what=what,
                           kind=fmt.framework.worker_kind)
        except JobCrashed as exc:
            raise ModelLoadError(exc.message, path) from None

    with ThreadPoolExecutor(max_workers=2) as pool:
        probing = pool.submit(call, _probe, path, fmt,
                              what=f"{inspector.runtime} (checking whether the model runs)") \
            if inspector.runtime and probe else None
        try:
            info = call(_structure, path, fmt, options, what=f"the {fmt.framework} parser", rep=report)
        except BaseException:
            if probing is not None:
                probing.cancel()
            raise
        if probing is not None:
            try:
                info.problems.extend(probing.result())
            except ModelLoadError as exc:  # the runtime crashed or hung on this file
                info.problems.append(Problem("error", "runtime-crashed", exc.message))
    inspector.settle(info)
    if isolate and probe:
        cache.store(path, fmt, options, info)
    report(1.0, "inspected")
    return info
