"""Per-layer quantization error of a TFLite int8 model against its float model, with ai-edge-quantizer's interpreter
utilities (as its model validator uses them): both models run on the same samples with every tensor preserved and
without XNNPACK (so each op's output is its own), the float model's op outputs paired by name with the quantized
model's (ai-edge-quantizer and TFLiteConverter keep the names), dequantized and compared over all samples at once,
as the ONNX debugger does. Run in an ai-edge-litert worker."""
from __future__ import annotations

import shutil
from collections.abc import Iterable

import numpy as np

from studio.core.quantize.onnx_debug import LayerError, relative_error, tensor_cosine
from studio.core.tensors.samples import Samples


def float_model(stage_float: str, out: str, pruning) -> None:
    """The float model an int8 candidate was quantized from, as finish_tflite made it (weights pruned when
    `pruning` is given)."""
    from studio.core.quantize.tflite_quant import prune_tflite

    if pruning is None:
        shutil.copy(stage_float, out)
    else:
        prune_tflite(stage_float, out, pruning)


def layer_errors(float_path: str, quantized: str, samples: Samples) -> list[LayerError]:
    """Every float activation (graph input or op output) of the float model, compared with the quantized model's
    tensor of the same name; worst (lowest SQNR) first."""
    producers = _producers(float_path)
    feeds = _feeds(float_path, samples)
    ref = _activations(float_path, feeds, producers)
    got = _activations(quantized, feeds, ref)
    rows = [_error(t, *producers[t], np.concatenate(ref[t]), np.concatenate(got[t])) for t in ref if t in got]
    return sorted(rows, key=lambda r: r.sqnr_db)


def _producers(path: str) -> dict[str, tuple[str, str]]:
    """{tensor name: (node, op)} of the main subgraph's float activations. The node is the op's scope as
    ai-edge-quantizer names it (its first output tensor), what "keep in float" excludes; "" for a graph input."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    from studio.core.quantize.tflite_quant import tensor_name

    model = fbu.read_model(path)
    sg, ops = model.subgraphs[0], {v: k for k, v in vars(schema.BuiltinOperator).items() if isinstance(v, int)}
    found = {tensor_name(sg.tensors[i].name): ("", "input") for i in sg.inputs}
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        outs = [i for i in op.outputs if i >= 0]
        for i in outs:
            found[tensor_name(sg.tensors[i].name)] = (tensor_name(sg.tensors[outs[0]].name),
                                                ops.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM"))
    floats = {tensor_name(t.name) for t in sg.tensors if t.type == schema.TensorType.FLOAT32}
    return {t: p for t, p in found.items() if t in floats}


def _feeds(float_path: str, samples: Samples) -> list[dict[str, np.ndarray]]:
    """One {signature input: value} per sample, in the float model's dtypes (the quantized model's inputs are
    quantized from these by ai-edge-quantizer's invoke)."""
    from ai_edge_litert.interpreter import Interpreter

    from studio.core.measure.runtimes import named_feeds

    interpreter = Interpreter(model_path=float_path)
    details = interpreter.get_signature_runner(next(iter(interpreter.get_signature_list()))).get_input_details()
    return named_feeds(list(details), samples, dtypes={n: np.dtype(d["dtype"]) for n, d in details.items()})


def _activations(path: str, feeds: list[dict[str, np.ndarray]], names: Iterable[str]) -> dict[str, list[np.ndarray]]:
    """The float values of the tensors `names` of `path` on each feed (dequantized where quantized)."""
    from ai_edge_quantizer.utils import tfl_interpreter_utils as tiu

    interpreter = tiu.create_tfl_interpreter(path, use_xnnpack=False, num_threads=1, preserve_all_tensors=True)
    key = next(iter(interpreter.get_signature_list()))
    subgraph = tiu.get_signature_main_subgraph_index(interpreter, key)
    details = tiu.get_tensor_name_to_details_map(interpreter, subgraph)
    wanted = [n for n in names if n in details]
    found: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
    for feed in feeds:
        tiu.invoke_interpreter_signature(interpreter, feed, key)
        for n in wanted:
            found[n].append(np.asarray(tiu.get_tensor_data(interpreter, details[n], subgraph), np.float64).ravel())
    return found


def _error(tensor: str, node: str, op: str, ref: np.ndarray, got: np.ndarray) -> LayerError:
    noise, signal = float(np.sum((ref - got) ** 2)), float(np.sum(ref ** 2))
    with np.errstate(divide="ignore"):  # a float tensor of zeros the quantized model misses: -inf
        sqnr = 10 * float(np.log10(signal / noise)) if noise > 0 else float("inf")
    return LayerError(tensor, node, op, sqnr_db=sqnr, cosine=min(1.0, tensor_cosine([ref], [got])),
                      relative_error=relative_error([ref], [got]))
