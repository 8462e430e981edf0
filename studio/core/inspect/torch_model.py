"""Inspect PyTorch files: torch.export .pt2, TorchScript, state_dict (+ --arch), pickled modules (opt-in only)."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from studio.core.base.errors import ModelLoadError, short
from studio.core.base.progress import ignore
from studio.core.inspect.formats import Format, Framework, InspectOptions
from studio.core.inspect.modelinfo import Dim, LayerInfo, ModelInfo, Problem, TensorInfo, TensorKind, histogram
from studio.core.inspect.torch_inputs import all_known, declared, forward_names, unknown, zeros
from studio.core.tensors.shapes import ShapeRequest

PICKLE_REFUSED = ("holds a pickled Python object (e.g. a whole nn.Module), not plain weights: unpickling runs code"
                  " from the file, so Studio refuses it. Pass --trust-pickle only if you trust its author, or save"
                  " model.state_dict() and open that with --arch")


def _dt(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _weights(tensors) -> tuple[int, dict[str, int]]:
    total, by_dtype = 0, dict[str, int]()
    for t in tensors:
        total += t.numel()
        by_dtype[_dt(t.dtype)] = by_dtype.get(_dt(t.dtype), 0) + t.numel()
    return total, by_dtype


def _dim(d):
    return int(d) if isinstance(d, int) or str(d).isdigit() else str(d)


def _meta_tensor(name: str, val) -> TensorInfo:
    # torch names symbolic sizes s0, s31...: the leading one of a model input is its batch
    shape = [_dim(d) if i or isinstance(_dim(d), int) else "batch" for i, d in enumerate(getattr(val, "shape", []))]
    return TensorInfo(name, shape, _dt(getattr(val, "dtype", "unknown")))


def _concrete(shape) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else 1 for d in shape)


def _macs(fn, inputs) -> int | None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn(*inputs)
    except Exception:  # noqa: BLE001 - MACs are best effort
        return None
    return int(counter.get_total_flops() // 2)  # the counter counts a multiply-accumulate as two FLOPs


def module_info(module, shapes: ShapeRequest, path: Path, fmt: str, problems: list[Problem], details: dict,
                fallback: tuple[int, ...] | None = None) -> ModelInfo:
    """Inspect an nn.Module by running it once on zeros at the inputs' shapes: leaf layers, output shapes, MACs.
    Without a shape for every input of forward, the inputs are listed by name and the user is told what to give."""
    import torch

    names = forward_names(module)
    shapes.check_names([unknown(n) for n in names], str(path))
    inputs = declared(names, shapes, fallback=fallback)
    if not all_known(inputs):
        missing = [t.name for t in inputs if t.kind == TensorKind.UNKNOWN]
        problem = Problem("warning", "unknown-shape", "a PyTorch module does not record its input shapes: give"
                          f" {' '.join(f'--input-shape {n}=...' for n in missing)} to see its outputs, operators and"
                          " MACs")
        return _weights_only(path, dict(module.state_dict()), problem, details, fmt=fmt, inputs=inputs)
    layers, hooks = [], []
    leaves = [(n, m) for n, m in module.named_modules() if not list(m.children()) and n]
    for name, mod in leaves:
        def hook(m, args, out, name=name):
            shape: list[Dim] | None = list(out.shape) if isinstance(out, torch.Tensor) else None
            layers.append(LayerInfo(name, type(m).__name__, sum(p.numel() for p in m.parameters(recurse=False)),
                                    shape))
        hooks.append(mod.register_forward_hook(hook))
    x = zeros(inputs)
    try:
        outputs = _outputs_on_zeros(module, x, inputs, path)
    finally:
        for h in hooks:
            h.remove()
    params, weights = _weights(list(module.parameters()))
    return ModelInfo(str(path), fmt, Framework.PYTORCH, inputs=inputs, outputs=outputs, params=params,
                     size_bytes=_size(path), files=[str(path)], weight_dtypes=weights,
                     ops=histogram(type(m).__name__ for _, m in leaves), macs=_macs(module, x), problems=problems,
                     details=details, layers=layers)


def _texts(inputs: list[TensorInfo]) -> str:
    return ", ".join(f"{t.name} {t.shape_text()} {t.dtype}" for t in inputs)


def _size(path: Path) -> int:
    return os.path.getsize(path)


def _inspect_export(path: Path, shapes: ShapeRequest) -> ModelInfo:
    import torch

    extra = {"studio.json": ""}
    try:
        ep = torch.export.load(str(path), extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt archives
        raise ModelLoadError(f"torch.export could not load the archive: {short(exc, 200)}", path) from None
    sig = ep.graph_signature
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    user_inputs = [s.arg.name for s in sig.input_specs if s.kind.name == "USER_INPUT" and hasattr(s.arg, "name")]
    inputs = [_meta_tensor(n, placeholders[n].meta.get("val")) for n in user_inputs if n in placeholders]
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    out_args = out_node.args[0] if isinstance(out_node.args[0], (tuple, list)) else [out_node.args[0]]
    outputs = [_meta_tensor(getattr(a, "name", f"output{i}"), getattr(a, "meta", {}).get("val"))
               for i, a in enumerate(out_args)]
    state = ep.state_dict
    params, weights = _weights([state[k] for k in sig.parameters if k in state])
    calls = [n for n in ep.graph.nodes if n.op == "call_function"]

    def opname(n):
        return str(n.target).replace("aten.", "").replace(".default", "")

    owned = {ph: state[k].numel() for ph, k in sig.inputs_to_parameters.items() if k in state}

    def shape(n):
        val = n.meta.get("val")
        return [_dim(d) if i or isinstance(_dim(d), int) else "batch" for i, d in enumerate(val.shape)] \
            if hasattr(val, "shape") else None

    layers = [LayerInfo(n.name, opname(n), sum(owned.get(getattr(a, "name", None), 0) for a in n.args), shape(n))
              for n in calls]
    shapes.check_names(inputs, str(path))
    macs = _macs(ep.module(), zeros([TensorInfo(t.name, list(shapes.lookup(t.name) or _concrete(t.shape)), t.dtype)
                                     for t in inputs]))
    studio = json.loads(extra["studio.json"]) if extra.get("studio.json") else {}
    details = {"torch_version": str(torch.__version__), "studio": studio}
    return ModelInfo(str(path), Format.TORCH_EXPORT.value, Framework.PYTORCH, inputs=inputs, outputs=outputs,
                     params=params, size_bytes=_size(path), files=[str(path)], weight_dtypes=weights,
                     ops=histogram(opname(n) for n in calls), macs=macs, details=details, layers=layers)


_SCRIPT_DTYPES = {"Float": "float32", "Double": "float64", "Half": "float16", "Long": "int64", "Int": "int32",
                  "Short": "int16", "Char": "int8", "Byte": "uint8", "Bool": "bool"}


def _graph_input(v, shapes: ShapeRequest) -> TensorInfo:
    """A TorchScript graph input: named by the graph, at the shape given for it, else the one a trace recorded; in
    the dtype given, else the recorded one."""
    name, t = v.debugName().split(".")[0], v.type()
    recorded = t.sizes() if hasattr(t, "sizes") else None
    dtype = _SCRIPT_DTYPES.get(str(t.scalarType())) if hasattr(t, "scalarType") else None
    dims = shapes.lookup(name)
    if dims is None and recorded is not None and None not in recorded:
        dims = tuple(int(d) for d in recorded)
    own = ShapeRequest(((name, dims),) if dims is not None else (), shapes.dtypes)
    return declared([name], own, [dtype])[0]


def _inspect_torchscript(path: Path, shapes: ShapeRequest) -> ModelInfo:
    import torch

    extra = {"studio.json": ""}
    try:
        m = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"TorchScript could not load the archive: {short(exc, 200)}", path) from None
    studio = json.loads(extra["studio.json"]) if extra.get("studio.json") else {}
    graph_inputs = list(m.graph.inputs())[1:]
    saved = (studio.get("input_shapes") or [None])[0]
    if not shapes and saved and len(graph_inputs) == 1:
        shapes = ShapeRequest.of(saved)
    shapes.check_names([unknown(v.debugName().split(".")[0]) for v in graph_inputs], str(path))
    inputs = [_graph_input(v, shapes) for v in graph_inputs]
    problems = [Problem("warning", "deprecated-format", "TorchScript is deprecated since PyTorch 2.10; converters"
                        " prefer a torch.export .pt2 archive")]
    outputs, macs = [TensorInfo("output", ["?"], "float32")], None
    if all_known(inputs):
        x = zeros(inputs)
        macs = _macs(m, x)
        outputs = _outputs_on_zeros(m, x, inputs, path)
    else:
        problems.append(Problem("warning", "unknown-shape", "TorchScript does not record input shapes: pass"
                                " --input-shape NAME=... to see output shapes and MACs"))
    params, weights = _weights(list(m.parameters()))
    ops = [n.kind().split("::")[1] for n in m.inlined_graph.nodes() if n.kind().startswith("aten::")]
    layers = [LayerInfo(n, getattr(mod, "original_name", type(mod).__name__),
                        sum(p.numel() for p in mod.parameters(recurse=False)))
              for n, mod in m.named_modules() if n and not list(mod.children())]
    return ModelInfo(str(path), Format.TORCHSCRIPT.value, Framework.PYTORCH, inputs=inputs, outputs=outputs,
                     params=params, size_bytes=_size(path), files=[str(path)], weight_dtypes=weights,
                     ops=histogram(ops), macs=macs, problems=problems,
                     details={"torch_version": str(torch.__version__), "studio": studio}, layers=layers)


def find_state_dict(obj) -> dict | None:
    import torch

    def is_sd(d):
        return isinstance(d, dict) and d and all(isinstance(v, torch.Tensor) for v in d.values())

    if is_sd(obj):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net", "weights"):
            if is_sd(obj.get(key)):
                return obj[key]
    return None


def load_torch_save(path: Path, trust_pickle: bool):
    """torch.load with weights_only=True; a pickled object only when the user trusts the file."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not trust_pickle:
            raise ModelLoadError(PICKLE_REFUSED, path) from None
    except Exception as exc:  # noqa: BLE001 - corrupt archives raise RuntimeError, EOFError, ...
        raise ModelLoadError(f"torch.load could not read the file: {short(exc, 200)}", path) from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ModelLoadError(f"the pickled model needs Python code that is not importable here ({exc})", path) from None
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"torch.load could not read the file: {short(exc, 200)}", path) from None


def _inspect_saved(path: Path, options: InspectOptions) -> ModelInfo:
    import torch

    obj = load_torch_save(path, options.trust_pickle)
    if isinstance(obj, torch.nn.Module):
        problems = [Problem("warning", "pickled-module", "opened as a pickled module because --trust-pickle was"
                            " given; save a state_dict or a .pt2 archive to share it safely")]
        return module_info(obj.eval(), options.shapes, path, "torch_module", problems,
                           {"torch_version": str(torch.__version__)}, fallback=(1, 3, 224, 224))
    sd = find_state_dict(obj)
    if sd is None:
        raise ModelLoadError("holds no state_dict (no dictionary of tensors found)", path)
    if options.arch is None:
        return _weights_only(path, sd, Problem(
            "warning", "no-architecture", "a state_dict holds weights only: pass --arch NAME (a torchvision"
            " architecture such as resnet18, studio.mnist_cnn, or your own class as path/to/file.py:ClassName) to"
            " see inputs, operators and MACs"))
    return _inspect_arch(path, sd, options)


def _inspect_arch(path: Path, sd: dict, options: InspectOptions) -> ModelInfo:
    import torch

    from studio.core.inspect import archs

    spec = options.arch
    assert spec is not None
    try:
        module = archs.build(spec, sd)
    except ModelLoadError as exc:
        raise ModelLoadError(exc.message, exc.path or path) from None
    details = {"arch": spec.record(), "torch_version": str(torch.__version__)}
    return module_info(module, options.shapes, path, "torch_state_dict", [], details,
                       fallback=archs.default_input_shape(spec))


def _weights_only(path: Path, sd: dict, problem: Problem, details: dict | None = None, *,
                  fmt: str = "torch_state_dict", inputs: list[TensorInfo] | None = None) -> ModelInfo:
    params, weights = _weights(list(sd.values()))
    layers = [LayerInfo(k, "tensor", v.numel(), list(v.shape)) for k, v in sd.items()]
    return ModelInfo(str(path), fmt, Framework.PYTORCH, inputs=inputs or [], outputs=[], params=params,
                     size_bytes=_size(path), files=[str(path)], weight_dtypes=weights, ops={}, macs=None,
                     problems=[problem], details={"tensors": len(sd), **(details or {})}, layers=layers)


def inspect_torch(path: str, fmt: str, options: InspectOptions, report=ignore) -> ModelInfo:
    report(0.1, "loading PyTorch model")
    p = Path(path)
    if fmt == Format.TORCH_EXPORT.value:
        return _inspect_export(p, options.shapes)
    if fmt == Format.TORCHSCRIPT.value:
        return _inspect_torchscript(p, options.shapes)
    return _inspect_saved(p, options)


def _outputs_on_zeros(module, x: list, inputs: list[TensorInfo], path) -> list[TensorInfo]:
    """Run the module once on the zero inputs `x` and describe its tensor outputs (one line if it fails)."""
    import torch

    try:
        with torch.no_grad():
            out = module(*x)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"the model fails on zeros at {_texts(inputs)}: {short(exc)}; pass --input-shape"
                             " NAME=DIMS[:DTYPE] for each input", path) from None
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [TensorInfo(f"output{i}" if len(outs) > 1 else "output", list(o.shape), _dt(o.dtype))
            for i, o in enumerate(outs) if hasattr(o, "shape")]
