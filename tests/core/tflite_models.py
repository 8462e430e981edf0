"""TFLite flatbuffers written here with LiteRT's own schema (no converter): what they hold is known exactly. A conv
stack on [1, H, W, 3] whose middle convolution does the most work (twice the next), ending in an ARG_MAX
(which XNNPACK does not take, so LiteRT runs it with its own kernels)."""
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.tools import flatbuffer_utils as fu

CONVS = (("conv1", 3, 16), ("conv2", 16, 64), ("conv3", 64, 8))  # (output tensor, in, out channels)
ARGMAX = "argmax"


def _tensor(name, shape, buffer=0, dtype=fb.TensorType.FLOAT32, signature=None):
    t = fb.TensorT()
    t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, buffer
    t.shapeSignature = list(signature or shape)
    return t


def _code(builtin):
    c = fb.OperatorCodeT()
    c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, builtin, 1
    return c


def _conv(inputs, output):
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, inputs, [output]
    op.builtinOptionsType = fb.BuiltinOptions.Conv2DOptions
    options = fb.Conv2DOptionsT()
    options.padding, options.strideW, options.strideH = fb.Padding.SAME, 1, 1
    options.fusedActivationFunction = fb.ActivationFunctionType.RELU
    op.builtinOptions = options
    return op


def convstack_tflite(path: Path, size: int = 48, dynamic: bool = False, seed: int = 0) -> Path:
    """Three 3x3 convolutions then ARG_MAX over channels, written to `path`; `dynamic`: height and width -1."""
    rng = np.random.default_rng(seed)
    buffers, tensors, ops = [fb.BufferT()], [], []
    hw = [-1, -1] if dynamic else [size, size]

    def constant(name, value):
        b = fb.BufferT()
        b.data = np.frombuffer(value.tobytes(), np.uint8)
        buffers.append(b)
        dtype = fb.TensorType.INT32 if value.dtype == np.int32 else fb.TensorType.FLOAT32
        tensors.append(_tensor(name, value.shape, len(buffers) - 1, dtype))
        return len(tensors) - 1

    tensors.append(_tensor("image", [1, size, size, 3], signature=[1, *hw, 3]))
    x = 0
    for name, cin, cout in CONVS:
        w = constant(f"{name}/w", (rng.standard_normal((cout, 3, 3, cin)) * 0.2).astype(np.float32))
        b = constant(f"{name}/b", (rng.standard_normal(cout) * 0.1).astype(np.float32))
        tensors.append(_tensor(name, [1, size, size, cout], signature=[1, *hw, cout]))
        ops.append(_conv([x, w, b], len(tensors) - 1))
        x = len(tensors) - 1
    axis = constant("axis", np.array([3], np.int32))
    tensors.append(_tensor(ARGMAX, [1, size, size], dtype=fb.TensorType.INT32, signature=[1, *hw]))
    arg = fb.OperatorT()
    arg.opcodeIndex, arg.inputs, arg.outputs = 1, [x, axis], [len(tensors) - 1]
    arg.builtinOptionsType = fb.BuiltinOptions.ArgMaxOptions
    arg.builtinOptions = fb.ArgMaxOptionsT()
    arg.builtinOptions.outputType = fb.TensorType.INT32
    ops.append(arg)
    graph = fb.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [len(tensors) - 1], ops
    graph.name = "main"
    model = fb.ModelT()
    model.version, model.description = 3, "Studio test conv stack"
    model.operatorCodes = [_code(fb.BuiltinOperator.CONV_2D), _code(fb.BuiltinOperator.ARG_MAX)]
    model.subgraphs, model.buffers = [graph], buffers
    path.write_bytes(bytes(fu.convert_object_to_bytearray(model)))
    return path
