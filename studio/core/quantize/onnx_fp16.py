"""ONNX fp16 that keeps the model working: ops known to break in half precision stay in float32, and when the
result is still degraded against the float model the nodes where the error starts are found by running both
models tensor by tensor, kept in float32 as well, and converted again."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studio.core.base.errors import ConversionError, short
from studio.core.measure.fidelity import Floors, per_output
from studio.core.tensors.samples import Samples

# onnxconverter-common's DEFAULT_OP_BLOCK_LIST (it holds Resize, Range, TopK, ...) plus these: sums and powers
# over a whole feature map leave the fp16 range (65504) first
EXTRA_OP_BLOCK = ("ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum",
                  "ReduceLogSumExp", "ReduceProd", "Pow", "Exp", "Log")
FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto's element types
ROUNDS = 4  # measured retries
PER_ROUND = 4  # nodes kept in float32 per retry
SAMPLES = 4  # inputs the tensors are compared on
FP16_LIMIT = 32768.0  # half of float16's largest value: a tensor beyond it in float32 overflows on other inputs


@dataclass(frozen=True)
class Fp16Outcome:
    kept_ops: tuple[str, ...]  # op types of the model kept in float32 because they break in half precision
    kept_nodes: tuple[tuple[str, str], ...]  # (node, op) kept in float32 because measuring showed them degrading
    first_shortfall: str | None  # why the first conversion was degraded (None: it was not)
    shortfall: str | None  # why the result is still degraded (None: it is within the floor)

    def notes(self) -> list[str]:
        notes = []
        if self.kept_ops:
            notes.append(f"fp16: kept in float32 the ops that break in half precision: {', '.join(self.kept_ops)}")
        if self.kept_nodes:
            nodes = ", ".join(f"{n} ({op})" for n, op in self.kept_nodes)
            notes.append(f"fp16 was degraded ({self.first_shortfall}): kept in float32 the nodes whose values"
                         f" leave the float16 range or where the error starts: {nodes}")
        if self.shortfall:
            notes.append(f"fp16 output is still degraded against the float model: {self.shortfall}")
        return notes


def op_block_list() -> list[str]:
    from onnxconverter_common import float16

    return list(dict.fromkeys([*float16.DEFAULT_OP_BLOCK_LIST, *EXTRA_OP_BLOCK]))


def to_fp16(float_path: str, out: str, x: Samples) -> Fp16Outcome:
    """Write the fp16 model of `float_path` to `out`, checked against the float model on inputs `x`."""
    import onnx

    model = onnx.load(float_path)
    for i, node in enumerate(model.graph.node):  # the node block list needs names
        node.name = node.name or f"{node.op_type}_{i}"
    x = x.head(SAMPLES)
    ref, names = _run(model, x), [o.name for o in model.graph.output]
    blocks = op_block_list()
    kept_nodes: list[tuple[str, str]] = []
    first = reason = None
    for attempt in range(ROUNDS + 1):
        half = _convert(model, blocks, [n for n, _ in kept_nodes])
        reason = Floors().missed(per_output(ref, _run(half, x), names), by_agreement=False) or None
        first = reason if attempt == 0 else first
        if reason is None or attempt == ROUNDS:
            break
        worst = offenders(model, half, x, skip={n for n, _ in kept_nodes})
        if not worst:
            break
        kept_nodes += worst
    onnx.save(half, out)
    present = {n.op_type for n in model.graph.node}
    return Fp16Outcome(tuple(op for op in blocks if op in present), tuple(kept_nodes), first, reason)


def _convert(model, op_blocks: list[str], node_blocks: list[str]):
    import copy

    from onnxconverter_common import float16

    try:
        half = float16.convert_float_to_float16(copy.deepcopy(model), keep_io_types=True, op_block_list=op_blocks,
                                                node_block_list=node_blocks)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"onnxconverter-common could not convert the model to fp16: {short(exc)}") from None
    _float_outputs(half, {o.name for o in model.graph.output if o.type.tensor_type.elem_type == FLOAT})
    _fuse_casts(half)
    return half


def _float_outputs(half, names: set[str]) -> None:
    """keep_io_types, also where a kept-float node makes a graph output (the converter casts that one to half)."""
    producers = {o: n for n in half.graph.node for o in n.output}
    for out in half.graph.output:
        node = producers.get(out.name)
        if out.name in names and out.type.tensor_type.elem_type == FLOAT16 and node is not None and \
                node.op_type == "Cast" and node.attribute[0].i == FLOAT16:
            node.attribute[0].i = FLOAT
            out.type.tensor_type.elem_type = FLOAT


def _fuse_casts(half) -> None:
    """Drop float32 -> float16 -> float32 cast pairs between two kept-float nodes: the converter wraps every
    kept node in casts, so a chain of them would still pass (and overflow) its tensors in half precision."""
    graph = half.graph
    types = {v.name: v.type.tensor_type.elem_type for v in graph.value_info}
    outputs = {o.name for o in graph.output}
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    for down in [n for n in graph.node if n.op_type == "Cast" and n.attribute[0].i == FLOAT16]:
        ups = users.get(down.output[0], [])
        if types.get(down.input[0]) != FLOAT or down.output[0] in outputs or not ups or any(
                u.op_type != "Cast" or u.attribute[0].i != FLOAT or u.output[0] in outputs for u in ups):
            continue
        for up in ups:
            for user in users.get(up.output[0], []):
                user.input[:] = [down.input[0] if i == up.output[0] else i for i in user.input]
            graph.node.remove(up)
        graph.node.remove(down)


def _session(model):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"onnxruntime refused the fp16 model: {short(exc)}") from None


def _run(model, x: Samples, names: list[str] | None = None) -> list[np.ndarray]:
    """The outputs (or the tensors `names`) on `x`, one sample at a time: detectors often fix their batch at 1."""
    from studio.core.measure.runtimes import named_feeds

    session = _session(model)
    runs = [session.run(names, feed) for feed in named_feeds([i.name for i in session.get_inputs()], x)]
    return [np.concatenate([np.atleast_1d(np.asarray(r[k])) for r in runs]) for k in range(len(runs[0]))]


def _with_outputs(model, names: list[str]):
    """A copy of `model` that also outputs the tensors `names` (those shape inference can type)."""
    import copy

    import onnx

    probe = onnx.shape_inference.infer_shapes(copy.deepcopy(model))
    typed = {v.name: v for v in probe.graph.value_info}
    have = {o.name for o in probe.graph.output}
    made = {o for n in probe.graph.node for o in n.output}  # value_info can name tensors the converter renamed
    probe.graph.output.extend(typed[n] for n in names if n in typed and n in made and n not in have)
    return probe


def _error(a32: np.ndarray, a16: np.ndarray) -> float:
    """How far the half-precision tensor is from the float one: 0 equal, 1 unrelated, inf not finite."""
    a, b = np.asarray(a32, np.float64).ravel(), np.asarray(a16, np.float64).ravel()
    if a.size != b.size:
        return 0.0  # a tensor the converter reshaped: not comparable, so not blamed
    if not np.isfinite(b).all() and np.isfinite(a).all():
        return float("inf")
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(1 - (a @ b) / denom) if denom > 0 else float(np.abs(a - b).max(initial=0.0) > 0)


def offenders(model, half, x: Samples, skip: set[str]) -> list[tuple[str, str]]:
    """(node, op) of the nodes to keep in float32: those that make or take a tensor beyond the fp16 range in the
    float model (a cast to half would turn it into inf), then those whose half-precision output is much worse than
    their inputs (where the error starts)."""
    names = [o for n in model.graph.node for o in n.output if o]
    wide, narrow = _with_outputs(model, names), _with_outputs(half, names)
    measured = [o.name for o in wide.graph.output]
    a32 = dict(zip(measured, _run(wide, x, measured), strict=True))
    common = [o.name for o in narrow.graph.output if o.name in a32]
    a16 = dict(zip(common, _run(narrow, x, common), strict=True))
    wide_range = {n for n, a in a32.items() if np.issubdtype(a.dtype, np.floating) and
                  np.abs(a).max(initial=0.0) > FP16_LIMIT}
    error = {n: _error(a32[n], a16[n]) for n in common if np.issubdtype(a32[n].dtype, np.floating)}
    found = [(n.name, n.op_type) for n in model.graph.node if n.name not in skip and
             wide_range & (set(n.output) | set(n.input))]
    jumps: list[tuple[float, str, str]] = []
    for node in model.graph.node:
        if node.name in skip or node.op_type in ("Constant", "Cast") or (node.name, node.op_type) in found:
            continue
        out = max((error.get(o, 0.0) for o in node.output), default=0.0)
        before = max((error.get(i, 0.0) for i in node.input), default=0.0)
        if before == float("inf") or out <= 1e-3:
            continue  # the error came in from its inputs, or there is none to speak of
        if out == float("inf") or out - before > 0.5 * out:
            jumps.append((out - before, node.name, node.op_type))
    jumps.sort(key=lambda j: -j[0])
    return found + [(name, op) for _, name, op in jumps[:PER_ROUND]]
