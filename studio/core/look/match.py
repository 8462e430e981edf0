"""Which operator of one model is which of another: by name first (exporters and quantizers keep node names), then
by position in the run order of the operator types that remain; quantize/dequantize ops are never matched, they
are what a quantizer inserts."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from enum import StrEnum

from studio.core.look.graph import Graph, Node, TensorSig


class Change(StrEnum):
    INSERTED_QDQ = "inserted_qdq"  # a QuantizeLinear/DequantizeLinear (QUANTIZE/DEQUANTIZE) only B has
    ADDED = "added"
    REMOVED = "removed"  # fused into a neighbour or pruned away
    CHANGED = "changed"  # the same operator with other shapes, dtypes or weights
    SAME = "same"


@dataclass(frozen=True)
class OpDiff:
    change: Change
    a: Node | None
    b: Node | None
    details: tuple[str, ...] = ()
    channels: tuple[int, int] | None = None  # output channels (first weight dim) before and after, where they differ

    @property
    def name(self) -> str:
        side = self.a or self.b
        assert side is not None  # a row has at least one side
        return side.name

    @property
    def op(self) -> str:
        a, b = self.a.op if self.a else None, self.b.op if self.b else None
        return f"{a} -> {b}" if a and b and a != b else (a or b or "")

    def to_dict(self) -> dict:
        def shapes(n: Node | None) -> list | None:
            return [list(o.shape) if o.shape is not None else None for o in n.outputs] if n else None

        return {"change": self.change.value, "name": self.name, "op": self.op,
                "a": self.a.name if self.a else None, "b": self.b.name if self.b else None,
                "shape_a": shapes(self.a), "shape_b": shapes(self.b), "details": list(self.details),
                "channels": list(self.channels) if self.channels else None}


def match(a: Graph, b: Graph) -> list[tuple[Node | None, Node | None]]:
    """Every node of A and of B once: paired (a, b), A's alone (a, None), B's alone (None, b); in B's order, with A's
    unmatched nodes where they were."""
    names_a, names_b = Counter(n.name for n in a.nodes), Counter(n.name for n in b.nodes)
    pairs: dict[int, int] = {}  # index in A -> index in B
    index_b = {n.name: j for j, n in enumerate(b.nodes) if names_b[n.name] == 1 and not n.quant}
    for i, n in enumerate(a.nodes):
        if names_a[n.name] == 1 and n.name in index_b and a.nodes[i].op == b.nodes[index_b[n.name]].op:
            pairs[i] = index_b[n.name]
    rest_a = [i for i, n in enumerate(a.nodes) if i not in pairs and not n.quant]
    taken = set(pairs.values())
    rest_b = [j for j, n in enumerate(b.nodes) if j not in taken and not n.quant]
    matcher = SequenceMatcher(None, [a.nodes[i].op for i in rest_a], [b.nodes[j].op for j in rest_b], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            pairs[rest_a[block.a + k]] = rest_b[block.b + k]
    return _ordered(a, b, pairs)


def _ordered(a: Graph, b: Graph, pairs: dict[int, int]) -> list[tuple[Node | None, Node | None]]:
    of_b = {j: i for i, j in pairs.items()}
    out: list[tuple[Node | None, Node | None]] = []
    pending = [i for i in range(len(a.nodes)) if i not in pairs]
    for j, nb in enumerate(b.nodes):
        i = of_b.get(j)
        while pending and i is not None and pending[0] < i:
            out.append((a.nodes[pending.pop(0)], None))
        out.append((a.nodes[i] if i is not None else None, nb))
    out.extend((a.nodes[i], None) for i in pending)
    return out


def compare(na: Node | None, nb: Node | None, b_quantized: bool) -> OpDiff:
    if na is None:
        return OpDiff(Change.INSERTED_QDQ if nb is not None and nb.quant else Change.ADDED, None, nb)
    if nb is None:
        return OpDiff(Change.REMOVED, na, None)
    details = [*_outputs(na.outputs, nb.outputs), *_weights(na.weights, nb.weights, b_quantized)]
    if na.op != nb.op:
        details.insert(0, f"operator {na.op} -> {nb.op}")
    return OpDiff(Change.CHANGED if details else Change.SAME, na, nb, tuple(details), _channels(na, nb))


def _text(t: TensorSig) -> str:
    return f"{list(t.shape) if t.shape is not None else '?'} {t.dtype}"


def _outputs(xs: tuple[TensorSig, ...], ys: tuple[TensorSig, ...]) -> list[str]:
    return [f"output {k} {_text(x)} -> {_text(y)}" for k, (x, y) in enumerate(zip(xs, ys, strict=False))
            if x.shape != y.shape or x.dtype != y.dtype]


def _weights(xs: tuple[TensorSig, ...], ys: tuple[TensorSig, ...], b_quantized: bool) -> list[str]:
    if xs and not ys and b_quantized:
        return ["weights quantized (read through a DequantizeLinear)"]
    if len(xs) != len(ys):
        return [f"{len(xs)} -> {len(ys)} constant inputs"]
    return [f"weight {k} {_text(x)} -> {_text(y)}" for k, (x, y) in enumerate(zip(xs, ys, strict=True))
            if x.shape != y.shape or x.dtype != y.dtype]


def _channels(na: Node, nb: Node) -> tuple[int, int] | None:
    if not (na.weights and nb.weights and na.weights[0].shape and nb.weights[0].shape):
        return None
    before, after = na.weights[0].shape[0], nb.weights[0].shape[0]
    return (before, after) if isinstance(before, int) and isinstance(after, int) and before != after else None
