"""The ONNX -> TFLite route, run in a torch worker: onnx2torch, then litert-torch; a clear 'not supported because'
naming the node or construct when it cannot."""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

from studio.core.base.errors import ConversionError, short
from studio.core.base.progress import ignore
from studio.core.convert.onnx_graph import constants_to_initializers
from studio.core.convert.result import ConvertResult
from studio.core.convert.torch_route import export_tflite
from studio.core.tensors.shapes import InputShape


def onnx2torch_failure(model, exc: BaseException) -> str:
    """What onnx2torch could not handle, in words, naming the node: its converters look weights up by name among
    the initializers (a weight the graph computes or takes as an input fails as a bare KeyError of that name), and
    its own messages ("auto_pad is not implemented") do not say which node."""
    name = exc.args[0] if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) else None
    user = next((n for n in model.graph.node if name in n.input), None) if name else None
    if user is not None:
        maker = next((n for n in model.graph.node if name in n.output), None)
        source = (f"the {maker.op_type} node '{maker.name}' computes it" if maker is not None else "it is a graph"
                  " input" if name in {i.name for i in model.graph.input} else "the model does not hold it")
        return (f"its {user.op_type} node '{user.name or user.output[0]}' needs '{name}' as a stored weight"
                f" (an initializer), but {source}")
    node = _failing_node(exc)
    return f"{node}: {short(exc, 160)}" if node else short(exc, 200)


def _failing_node(exc: BaseException) -> str | None:
    """'the Conv node "conv1"' for the node onnx2torch.convert was converting when it raised, if it was at one."""
    tb, node = exc.__traceback__, None
    while tb is not None:  # the innermost frame of onnx2torch.converter.convert holds the node in `onnx_node`
        if tb.tb_frame.f_code.co_name == "convert" and "onnx_node" in tb.tb_frame.f_locals:
            node = tb.tb_frame.f_locals["onnx_node"]
        tb = tb.tb_next
    try:
        return f"the {node.operation_type} node '{node.name}'" if node is not None else None
    except Exception:  # noqa: BLE001 - another onnx2torch version: say what onnx2torch said, without the node
        return None


def onnx_to_tflite(src: str, inputs: Sequence[InputShape], out: str, report=ignore) -> ConvertResult:
    """ONNX -> TFLite through onnx2torch and litert-torch at the resolved input shapes; a clear 'not supported
    because' when it cannot."""
    import onnx
    import onnx2torch

    warnings.simplefilter("ignore")
    t = time.monotonic()
    model = onnx.load(src)
    notes: list[str] = []
    constants_to_initializers(model, notes)
    try:
        module = onnx2torch.convert(model).eval()
    except Exception as exc:  # noqa: BLE001
        raise ConversionError("ONNX -> TFLite is not supported for this model because onnx2torch cannot convert it:"
                              f" {onnx2torch_failure(model, exc)}", src) from None
    try:
        export_tflite(module, inputs, out)
    except Exception as exc:  # noqa: BLE001
        first = short(exc, 200)
        raise ConversionError(f"ONNX -> TFLite is not supported for this model because litert-torch cannot convert"
                              f" the onnx2torch module: {first}", src) from None
    step = {"name": "onnx2torch + litert-torch convert", "seconds": round(time.monotonic() - t, 2)}
    return ConvertResult(steps=(step,), notes=tuple(notes),
                         params_after=sum(math.prod(p.shape) for p in module.parameters()))
