"""The numeric side of a diff: every tensor of two models on the same samples (onnxruntime's qdq_loss_debug for
ONNX, the LiteRT interpreter with all tensors kept for TFLite), paired by onnxruntime's QDQ matching and by the
structural match, and compared; and the samples on which the two models' outputs disagree most."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.look.graph import Node, plain_interpreter
from studio.core.measure.fidelity import class_scores
from studio.core.measure.runtimes import TfliteRunner, named_feeds, open_runner, predict
from studio.core.tensors.samples import Samples

Acts = dict[str, list[np.ndarray]]  # tensor name -> its value on each sample
WORST_SAMPLES = 24


@dataclass(frozen=True)
class TensorError:
    """One tensor of A against its counterpart in B over all samples."""
    a: str
    b: str
    node: str
    op: str
    sqnr_db: float  # inf when identical
    cosine: float
    relative_error: float

    def to_dict(self) -> dict:
        return {"tensor_a": self.a, "tensor_b": self.b, "node": self.node, "op": self.op, "sqnr_db": self.sqnr_db,
                "cosine": self.cosine, "relative_error": self.relative_error}


@dataclass(frozen=True)
class SampleDiff:
    index: int
    cosine: float  # of the scoring output, A against B
    class_a: int | None  # argmax where the output holds class scores
    class_b: int | None
    label: int | None = None  # the sample's true class, where the data has class labels

    @property
    def disagree(self) -> bool:
        """The two models' top classes differ (class scores only)."""
        return self.class_a is not None and self.class_a != self.class_b

    def to_dict(self) -> dict:
        return {"index": self.index, "cosine": self.cosine, "class_a": self.class_a, "class_b": self.class_b,
                "label": self.label}


def activations(path: str, samples: Samples, work: Path) -> Acts:
    if path.lower().endswith(".tflite"):
        return _tflite_activations(path, samples)
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors

    augmented = str(work / f"{Path(path).stem}-{abs(hash(path))}-augmented.onnx")
    modify_model_output_intermediate_tensors(path, augmented)
    return collect_activations(augmented, _feeds(path, samples))


def _feeds(path: str, samples: Samples) -> list[dict[str, np.ndarray]]:
    specs = {i.name: i for i in open_runner(path).inputs}
    return [{n: specs[n].encode(v) for n, v in run.items()} for run in named_feeds(list(specs), samples)]


def _tflite_activations(path: str, samples: Samples) -> Acts:
    runner = TfliteRunner(path)  # for its input specs and one-line load errors
    it = plain_interpreter(path, experimental_preserve_all_tensors=True)
    outputs = {int(i) for op in it._get_ops_details() for i in op["outputs"]}
    details = [d for d in it.get_tensor_details() if d["index"] in outputs]
    ins = it.get_input_details()
    acts: Acts = {d["name"]: [] for d in details}
    for feeds in _feeds(path, samples):
        for d, spec in zip(ins, runner.inputs, strict=True):
            it.set_tensor(d["index"], feeds[spec.name])
        it.invoke()
        for d in details:
            scale, zero = d["quantization"]
            value = it.get_tensor(d["index"])
            acts[d["name"]].append((value.astype(np.float32) - zero) * scale if scale else value)
    return acts


def pair(a: Acts, b: Acts, matched: Sequence[tuple[Node, Node]], b_onnx_qdq: bool) -> list[tuple[str, str, Node]]:
    """(tensor of A, tensor of B, A's node making it): onnxruntime's QDQ matching where B is a QDQ model (a float
    tensor against its quantized-dequantized value), then each matched node's outputs in order."""
    pairs: dict[str, tuple[str, str, Node]] = {}
    producer = {o.name: na for na, _ in matched for o in na.outputs}
    if b_onnx_qdq:
        from onnxruntime.quantization.qdq_loss_debug import create_activation_matching

        for name, values in create_activation_matching(b, a).items():
            if "float" in values and values.get("post_qdq") is not None and name in producer:
                pairs[name] = (name, _name_of(b, values["post_qdq"]), producer[name])
    for na, nb in matched:
        for x, y in zip(na.outputs, nb.outputs, strict=False):
            if x.name not in pairs and x.name in a and y.name in b and _same_size(a[x.name], b[y.name]):
                pairs[x.name] = (x.name, y.name, na)
    return list(pairs.values())


def _name_of(acts: Acts, values: list[np.ndarray]) -> str:
    """The tensor name onnxruntime's matching took these values from."""
    return next(k for k, v in acts.items() if v is values)


def _same_size(x: list[np.ndarray], y: list[np.ndarray]) -> bool:
    return len(x) == len(y) and all(np.size(p) == np.size(q) for p, q in zip(x, y, strict=True))


def tensor_error(a: Acts, b: Acts, ta: str, tb: str, node: Node) -> TensorError:
    x = np.concatenate([np.asarray(v, np.float64).ravel() for v in a[ta]])
    y = np.concatenate([np.asarray(v, np.float64).ravel() for v in b[tb]])
    noise = float(np.sum((x - y) ** 2))
    sqnr = float("inf") if noise == 0 else float(10 * np.log10(max(float(np.sum(x ** 2)), 1e-30) / noise))
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    cosine = min(1.0, float(x @ y / denom)) if denom > 0 else float(noise == 0)
    return TensorError(ta, tb, node.name, node.op, sqnr, cosine,
                       float(np.sqrt(noise) / max(float(np.linalg.norm(x)), 1e-30)))


def worst_samples(path_a: str, path_b: str, samples: Samples, y: np.ndarray | None = None,
                  count: int = WORST_SAMPLES) -> tuple[SampleDiff, ...]:
    """The samples on which B's first output is farthest from A's: for class scores the ones whose top class
    differs (in sample order), then the lowest cosine; `y`: the samples' class labels, where known."""
    runner_a = open_runner(path_a)
    ya, yb = predict(runner_a, samples)[0], predict(open_runner(path_b), samples)[0]
    fa, fb = ya.reshape(len(ya), -1).astype(np.float64), yb.reshape(len(yb), -1).astype(np.float64)
    if fa.shape != fb.shape:
        return ()
    norms = np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1)
    cosine = np.where(norms > 0, (fa * fb).sum(1) / np.maximum(norms, 1e-30), (fa == fb).all(1).astype(float))
    is_class = class_scores(fa, runner_a.outputs[0].name, len(runner_a.outputs) == 1)
    ca, cb = (fa.argmax(1), fb.argmax(1)) if is_class else (None, None)
    disagree = [int(i) for i in np.flatnonzero(ca != cb)] if is_class else []
    first = set(disagree)
    rest = [int(i) for i in np.argsort(cosine, kind="stable") if int(i) not in first]
    return tuple(SampleDiff(i, float(cosine[i]), int(ca[i]) if ca is not None else None,
                            int(cb[i]) if cb is not None else None, int(y[i]) if y is not None else None)
                 for i in (disagree + rest)[:count])
