"""PyTorch-side work, run in a torch worker process: load a module, prune it, fine-tune it, export it to ONNX or
TFLite."""
from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.base.errors import ConversionError, DataError, ModelLoadError, short
from studio.core.base.progress import ignore
from studio.core.convert.request import ConvertRequest
from studio.core.convert.result import ConvertResult
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.prune.protect import KeptLayer, protected_layers
from studio.core.prune.weights import PruneStats, prune_arrays
from studio.core.recipe.recipe import PruneScope
from studio.core.tensors.samples import MAX_BATCH, Samples, TrainingData, gather
from studio.core.tensors.shapes import BatchMode, InputShape


@dataclass(frozen=True, eq=False)
class LoadedModule:
    """A PyTorch file opened as something callable on a batch of inputs."""
    module: Any  # an nn.Module, an ExportedProgram's module or a ScriptModule
    prunable: bool  # whether torch-pruning can work on it
    shape: tuple[int, ...] | None  # an example input shape, where the file or its architecture tells one
    batch: int | None = None  # the batch it was exported at when that batch is fixed (a static .pt2); None: any


def load_module(path: str, fmt: str, arch: ArchSpec | None, trust_pickle: bool) -> LoadedModule:
    import torch

    from studio.core.inspect import archs
    from studio.core.inspect.torch_model import find_state_dict, load_torch_save

    if fmt == "torch_export":
        return _load_export(path)
    if fmt == "torchscript":
        return LoadedModule(torch.jit.load(path, map_location="cpu").eval(), False, None)
    obj = load_torch_save(Path(path), trust_pickle)
    if isinstance(obj, torch.nn.Module):
        return LoadedModule(obj.eval(), True, None)
    sd = find_state_dict(obj)
    if sd is None or arch is None:
        raise ModelLoadError("a state_dict needs --arch to be converted (weights alone have no graph)", path)
    try:
        module = archs.build(arch, sd)
    except ModelLoadError as exc:
        raise ModelLoadError(exc.message, exc.path or path) from None
    return LoadedModule(module, True, archs.default_input_shape(arch))


def _load_export(path: str) -> LoadedModule:
    """A .pt2: Studio's own archives are rebuilt as the real nn.Module (which torch-pruning can prune); any other
    runs as the ExportedProgram's module, at its own batch when that batch is fixed."""
    import torch

    from studio.core.inspect import archs

    extra = {"studio.json": ""}
    ep = torch.export.load(path, extra_files=extra)
    studio = json.loads(extra["studio.json"]) if extra.get("studio.json") else {}
    shape = tuple((studio.get("input_shapes") or [[]])[0]) or None
    named = ArchSpec(studio["arch"]) if isinstance(studio.get("arch"), str) else None
    if named is not None and not named.user_code:
        return LoadedModule(archs.build(named, dict(ep.state_dict)), True, shape or archs.default_input_shape(named))
    user = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    vals = [n.meta.get("val") for n in ep.graph.nodes if n.op == "placeholder" and n.name in user]
    dims = next(([int(d) if str(d).isdigit() else None for d in v.shape] for v in vals if getattr(v, "ndim", 0)), [])
    batch = dims[0] if dims and dims[0] is not None else None
    return LoadedModule(ep.module(), False, shape or tuple(d or 1 for d in dims), batch)


def _numpy_out(out) -> list[np.ndarray]:
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [o.detach().float().numpy() for o in outs]


def forward(module, samples: Samples, batch: int | None = None) -> list[np.ndarray]:
    """All outputs of `module` on every sample, run at the resolved shapes (at most `batch` samples a run: a module
    fixed to a batch gets exactly that many, a fixed batch of the samples is padded and the padding dropped)."""
    import torch

    def call(feeds):
        return _numpy_out(module(*[torch.from_numpy(np.asarray(f)) for f in feeds]))

    with torch.no_grad():
        return gather(samples, call, batch or MAX_BATCH)


def count_params_macs(module, example: tuple) -> tuple[int, int | None]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in module.parameters())
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*example)
        return params, int(counter.get_total_flops() // 2)
    except Exception:  # noqa: BLE001
        return params, None


def _classifier(module):
    """The layer that produces the model's output (kept whole, as torch-pruning recommends)."""
    import torch

    layers = [m for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv1d))]
    return layers[-1] if layers else None


def prune_structured(module, example: tuple, pruning, report=ignore) -> tuple[list[dict], list[KeptLayer]]:
    """Remove channels with torch-pruning, tracing the model on `example` (one tensor per input); returns, per pruned
    layer, channels before and after, and the layers left whole (outputs, grouped and depthwise convolutions, the
    recipe's keep_layers) with the reason."""
    import torch_pruning as tp

    named = dict(module.named_modules())
    missing = [n for n in list(pruning.keep_layers) + list(pruning.layer_ratios) if n not in named]
    if missing:
        raise ConversionError(f"pruning names layer '{missing[0]}', which the model does not have (layers:"
                              f" {', '.join(n for n in named if n)[:200]})")
    kept = protected_layers(module, example, pruning.keep_layers)
    before = {n: getattr(m, "out_channels", getattr(m, "out_features", None)) for n, m in named.items()}
    pruner = tp.pruner.BasePruner(
        module, example, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=pruning.ratio,
        pruning_ratio_dict={named[n]: r for n, r in pruning.layer_ratios.items()},
        global_pruning=pruning.scope == PruneScope.GLOBAL, ignored_layers=[named[k.layer] for k in kept])
    report(0.5, "removing channels")
    pruner.step()
    changed = []
    for n, m in module.named_modules():
        after = getattr(m, "out_channels", getattr(m, "out_features", None))
        if before.get(n) is not None and after != before[n]:
            changed.append({"layer": n, "type": type(m).__name__, "channels_before": before[n],
                            "channels_after": after})
    return changed, kept


def prune_unstructured(module, pruning) -> PruneStats:
    """Zero the smallest-magnitude weights of the conv and linear layers, per layer or across them all."""
    import torch

    layers = [(name, m) for name, m in module.named_modules()
              if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))]
    if not layers:
        raise ConversionError("the model has no conv or linear weights to prune")
    named = [(name or type(m).__name__, m.weight.detach().cpu().numpy()) for name, m in layers]
    pruned, stats = prune_arrays(named, pruning.ratio, pruning.scope)
    with torch.no_grad():
        for (_, m), w in zip(layers, pruned, strict=True):
            m.weight.copy_(torch.from_numpy(w))
    return stats


def finetune(module, train: TrainingData, *, epochs: int, lr: float, report=ignore, seed: int = 0) -> list[float]:
    """Recovery training after pruning, on every input of the training samples (a constant input, such as a
    state given once, goes with every batch); the loss is taken on the output whose shape fits the labels.
    Returns the mean loss per epoch."""
    import torch

    torch.manual_seed(seed)
    yt = torch.from_numpy(train.y)
    classification = yt.ndim == 1 and not torch.is_floating_point(yt)
    loss_fn = torch.nn.functional.cross_entropy if classification else torch.nn.functional.mse_loss
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    pick: int | None = None
    for epoch in range(epochs):
        module.train()
        total, batches = 0.0, 0
        for feeds, idx in _batches(train.samples, len(yt), gen):
            opt.zero_grad()
            outs = module(*feeds)
            outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
            pick = _labelled_output(outs, yt, classification) if pick is None else pick
            loss = loss_fn(outs[pick], yt[idx] if classification else yt[idx].float())
            loss.backward()
            opt.step()
            total += float(loss)
            batches += 1
        losses.append(total / max(1, batches))
        report((epoch + 1) / epochs, f"fine-tuning, epoch {epoch + 1}/{epochs}, loss {losses[-1]:.4f}")
    module.eval()
    return losses


def _batches(samples: Samples, n: int, gen) -> Iterator[tuple[list, Any]]:
    """Shuffled training batches of every input (a constant one goes with each): up to 64 samples stacked where
    every input takes a batch, else one sample at a time (an input without a batch dim, e.g. a step index [1])."""
    import torch

    stack = all(i.batch != BatchMode.NONE or c for i, c in zip(samples.inputs, samples.constant, strict=True))
    for idx in torch.randperm(n, generator=gen).split(64 if stack else 1):
        picked = idx.numpy()
        feeds = ([a if c else a[picked] for a, c in zip(samples.arrays, samples.constant, strict=True)] if stack
                 else samples.sample(int(picked[0])))
        yield [torch.from_numpy(np.ascontiguousarray(f)) for f in feeds], idx


def _labelled_output(outs: list, y, classification: bool) -> int:
    """The first output all the labels fit: class scores [B, C] with C above every class id, else a regression
    output whose per-sample shape is the targets'; DataError naming the per-sample shapes when none does."""
    for i, out in enumerate(outs):
        if classification and out.ndim == 2 and out.shape[1] > int(y.max()):
            return i
        if not classification and tuple(out.shape[1:]) == tuple(y.shape[1:]):
            return i
    shapes = ", ".join(str(list(o.shape[1:])) for o in outs)
    given = f"class ids 0-{int(y.max())}" if classification else f"targets of {list(y.shape[1:])} per sample"
    raise DataError(f"the fine-tuning labels ({given}) fit none of the model's outputs ({shapes} per sample): give"
                    " class ids below an output's class count, or targets of an output's shape")


def export_onnx(module, inputs: Sequence[InputShape], out: str, opset: int, *, torchscript: bool = False,
                dynamic: bool = True) -> list[str]:
    """torch.onnx.export (dynamo) of every input under its name, with a dynamic batch where the model allows it
    (`dynamic`: worth trying); returns notes."""
    import torch

    warnings.simplefilter("ignore")
    names = [i.name for i in inputs]
    batched = [i.batch != BatchMode.NONE for i in inputs]
    if torchscript:  # a ScriptModule cannot be traced by torch.export: only the legacy exporter takes it
        torch.onnx.export(module, examples(inputs), out, dynamo=False, opset_version=opset, input_names=names,
                          dynamic_axes={n: {0: "batch"} for n, b in zip(names, batched, strict=True) if b})
        return ["TorchScript is exported with the legacy TorchScript-based ONNX exporter"]
    program, notes = None, []
    if dynamic and any(batched):
        batch = torch.export.Dim("batch", min=1, max=4096)
        try:
            program = torch.onnx.export(module, examples(inputs, batch=2), dynamo=True, external_data=False,
                                        opset_version=opset, verbose=False, input_names=names,
                                        dynamic_shapes=tuple({0: batch} if b else None for b in batched))
        except Exception:  # noqa: BLE001 - some models fix their batch size; export them as they are
            program = None
    if program is None:
        program = torch.onnx.export(module, examples(inputs), dynamo=True, external_data=False, opset_version=opset,
                                    verbose=False, input_names=names)
        if any(batched):
            notes.append("the model does not allow a dynamic batch; exported at "
                         + ", ".join(i.text() for i in inputs))
    assert program is not None  # dynamo=True always returns the program
    program.save(out)
    return notes


def export_tflite(module, inputs: Sequence[InputShape], out: str) -> None:
    """litert-torch on a module in eval mode (an ExportedProgram's module cannot be switched: it already is), with
    zeros at every input's shape. Inputs go by name, so the TFLite signature keeps the source's input names: as
    forward takes them, or through a keyword wrapper for modules that take them in order (a .pt2's, TorchScript)."""
    import litert_torch

    warnings.simplefilter("ignore")
    args = examples(inputs)
    names = [i.name for i in inputs]
    named = module if takes_names(module, names) else _keyword_module(module, names, args)
    if named is None:
        litert_torch.convert(module, args).export(out)  # signature inputs args_0, args_1, ...
    else:
        litert_torch.convert(named, (), sample_kwargs=dict(zip(names, args, strict=True))).export(out)


def _keyword_module(module, names: Sequence[str], args: tuple):
    """`module` called with its inputs by name (passed on in order); None where it cannot be wrapped: a
    TorchScript module that torch cannot turn into an ExportedProgram keeps positional inputs."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        from torch._export.converter import TS2EPConverter  # torch's own TorchScript -> ExportedProgram route

        try:
            module = TS2EPConverter(module, args).convert().module()
        except Exception:  # noqa: BLE001 - any failure of the converter leaves the plain positional export
            return None

    class ByName(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.names = module, tuple(names)

        def forward(self, **feeds):
            return self.inner(*(feeds[n] for n in self.names))

    return ByName()


def takes_names(module, names: Sequence[str]) -> bool:
    """Whether forward's signature names exactly these parameters. An ExportedProgram's module (a GraphModule)
    names them too but checks its calls against the positional spec it was exported with: it takes them in order."""
    import inspect

    import torch

    if isinstance(module, torch.fx.GraphModule):
        return False
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    named = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return named[:len(names)] == list(names) and all(p.kind != p.POSITIONAL_ONLY for p in params)


def examples(inputs: Sequence[InputShape], batch: int | None = None) -> tuple:
    """Zeros at every input's resolved shape and dtype (the batch dim set to `batch` where given): the example
    inputs a tracer needs."""
    import torch

    def shape(i: InputShape) -> tuple[int, ...]:
        return (batch, *i.shape[1:]) if batch and i.batch != BatchMode.NONE else i.shape

    return tuple(torch.from_numpy(np.zeros(shape(i), np.dtype(i.dtype))) for i in inputs)


def traceable(module, inputs: Sequence[InputShape], src: str):
    """What torch.export (and so litert-torch) can trace: a ScriptModule becomes an ExportedProgram's module at the
    inputs' shapes (torch's TS2EPConverter); any other module is returned as it is."""
    import torch

    if not isinstance(module, torch.jit.ScriptModule):
        return module
    from torch._export.converter import TS2EPConverter

    try:
        return TS2EPConverter(module, examples(inputs)).convert().module()
    except Exception as exc:  # noqa: BLE001 - the converter raises many types for what it cannot convert
        raise ConversionError(f"TorchScript could not be turned into a torch.export program for TFLite: {short(exc)};"
                              " save the model as a .pt2 archive (torch.export.save) or a state_dict", src) from None


def torch_stage(request: ConvertRequest, report=ignore) -> ConvertResult:
    """Prune (and fine-tune) a PyTorch model, export it in float to the recipe's target; reference outputs."""
    import torch

    from studio.core.recipe.recipe import PruneMethod, Target

    torch.manual_seed(0)
    src, fmt, recipe, verify_x, out = request.src, request.fmt, request.recipe, request.verify_x, request.out
    loaded = load_module(src, fmt, request.arch, request.trust_pickle)
    module = loaded.module
    inputs = request.inputs or verify_x.inputs
    example = examples(inputs)
    steps: list[dict[str, Any]] = []
    params_before: int
    macs_before: int | None
    if request.params is not None and request.macs is not None:
        params_before, macs_before = request.params, request.macs
    else:
        params_before, macs_before = count_params_macs(module, example)
    ref_before = forward(module, verify_x, loaded.batch)
    prune_later = _prune(module, example, loaded.prunable, request, steps, report)
    method = recipe.pruning.method
    if method == PruneMethod.STRUCTURED:  # channels removed: the counts change
        params_after, macs_after = count_params_macs(module, example)
    else:  # zeroed weights keep their places: the same counts
        params_after, macs_after = params_before, macs_before
    # the module runs again only if pruning changed its weights here (not when they are pruned after export)
    ref = forward(module, verify_x, loaded.batch) if method != PruneMethod.NONE and not prune_later else ref_before
    report(0.7, f"exporting to {recipe.target.value}")
    t = time.monotonic()
    if recipe.target == Target.ONNX:
        notes = export_onnx(module, inputs, out, recipe.runtime.opset, torchscript=fmt == "torchscript",
                            dynamic=loaded.batch is None)
        name = "torch.onnx.export (dynamo)"
    else:
        export_tflite(traceable(module, inputs, src), inputs, out)
        notes, name = [], "litert-torch convert"
    steps.append({"name": name, "seconds": round(time.monotonic() - t, 2)})
    return ConvertResult(steps=tuple(steps), notes=tuple(notes), ref=ref, ref_before=ref_before,
                         prune_later=prune_later, params_before=params_before, params_after=params_after,
                         macs_before=macs_before, macs_after=macs_after)


def _prune(module, example, prunable: bool, request: ConvertRequest, steps: list[dict[str, Any]], report) -> bool:
    """Prune (and fine-tune) the module as the recipe says; True when its weights must be pruned after export."""
    from studio.core.base.progress import scaled
    from studio.core.recipe.recipe import PruneMethod

    p, train = request.recipe.pruning, request.train
    if p.method == PruneMethod.STRUCTURED:
        report(0.05, "pruning channels (torch-pruning)")
        t = time.monotonic()
        layers, kept = prune_structured(module, example, p, scaled(report, 0.05, 0.3))
        steps.append({"name": f"structured pruning {p.ratio:.2f} ({p.scope.value})", "seconds":
                      round(time.monotonic() - t, 2), "layers": layers,
                      "kept": [{"layer": k.layer, "reason": k.reason} for k in kept]})
        if p.finetune_epochs and train is not None:
            t = time.monotonic()
            losses = finetune(module, train, epochs=p.finetune_epochs, lr=p.finetune_lr,
                              report=scaled(report, 0.3, 0.6))
            steps.append({"name": f"fine-tuning {p.finetune_epochs} epochs", "seconds":
                          round(time.monotonic() - t, 2), "losses": [round(v, 5) for v in losses]})
    elif p.method == PruneMethod.UNSTRUCTURED:
        if not prunable:
            return True  # no nn.Module weights to reach: prune the exported float weights
        t = time.monotonic()
        steps.append(prune_unstructured(module, p).step(p.ratio, time.monotonic() - t))
    return False
