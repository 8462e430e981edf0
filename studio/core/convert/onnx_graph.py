"""ONNX graph repairs every ONNX consumer here needs (the quantizer, onnx2torch, weight pruning)."""
from __future__ import annotations


def constants_to_initializers(model, notes: list[str]) -> None:
    """Move the tensors of Constant nodes (how Paddle and some exporters hold weights) into initializers, where the
    quantizer, onnx2torch and pruning look for weights."""
    from onnx import numpy_helper

    outputs = {o.name for o in model.graph.output}
    moved = [n for n in model.graph.node if n.op_type == "Constant" and n.output[0] not in outputs
             and len(n.attribute) == 1 and n.attribute[0].name == "value"]
    for node in moved:
        array = numpy_helper.to_array(node.attribute[0].t)
        model.graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
        model.graph.node.remove(node)
    if moved:
        notes.append(f"{len(moved)} Constant node(s) holding tensors were turned into initializers")
