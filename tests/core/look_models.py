"""Small ONNX models for the look tests: a conv net, its channel-pruned twin, and its int8 QDQ model made with
onnxruntime's own quantizer (independently of Studio's quantization code)."""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as nh


def convnet(width: int = 8, seed: int = 0) -> onnx.ModelProto:
    """Conv-Relu-Conv-Relu-GlobalAveragePool-Flatten-Gemm on [batch, 3, 16, 16]; `width` channels in the middle."""
    rng = np.random.default_rng(seed)
    weights = {"w1": rng.standard_normal((8, 3, 3, 3))[:width], "b1": rng.standard_normal(8)[:width] * 0.1,
               "w2": rng.standard_normal((12, 8, 3, 3))[:, :width] * 0.3, "b2": rng.standard_normal(12) * 0.1,
               "fc": rng.standard_normal((10, 12)) * 0.3, "fcb": rng.standard_normal(10) * 0.1}
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             oh.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             oh.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             oh.make_node("GlobalAveragePool", ["r2"], ["g"], name="pool"),
             oh.make_node("Flatten", ["g"], ["f"], name="flatten"),
             oh.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], name="fc", transB=1)]
    graph = oh.make_graph(nodes, "convnet", [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                          [oh.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
                          initializer=[nh.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def write_models(root: Path) -> np.ndarray:
    """float.onnx, pruned.onnx (5 of conv1's 8 channels), int8.onnx and data.npz under root; returns the samples."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    x = np.random.default_rng(1).uniform(0, 1, (16, 3, 16, 16)).astype(np.float32)
    np.savez(root / "data.npz", x=x)
    onnx.save(convnet(), root / "float.onnx")
    onnx.save(convnet(width=5), root / "pruned.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.rows = iter([{"x": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.rows, None)

    quantize_static(str(root / "float.onnx"), str(root / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return x


def convstack(dynamic: bool = False, width: int = 32, size: int = 64) -> onnx.ModelProto:
    """Three Conv-Relu layers at `size`x`size`, then GlobalAveragePool-Flatten-MatMul: heavy enough that operator
    time dominates a run. `dynamic`: input [N, 3, H, W] instead of [1, 3, size, size]."""
    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], "x"
    for i in range(3):
        inits.append(nh.from_array((rng.standard_normal((width, 3 if i == 0 else width, 3, 3)) * 0.2)
                                   .astype(np.float32), f"w{i}"))
        nodes += [oh.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
                  oh.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        prev = f"r{i}"
    inits.append(nh.from_array(rng.standard_normal((width, 10)).astype(np.float32), "fc"))
    nodes += [oh.make_node("GlobalAveragePool", [prev], ["g"], name="pool"),
              oh.make_node("Flatten", ["g"], ["f"], name="flatten"),
              oh.make_node("MatMul", ["f", "fc"], ["logits"], name="fc")]
    dims = ["N", 3, "H", "W"] if dynamic else [1, 3, size, size]
    graph = oh.make_graph(nodes, "convstack", [oh.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                          [oh.make_tensor_value_info("logits", TensorProto.FLOAT, [dims[0], 10])], initializer=inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def write_dynamic_run(root: Path) -> Path:
    """A finished sweep (its fp32 ONNX candidate only) of convstack(dynamic=True) on 24x40 data; returns RUN."""
    from studio.core.recipe.grid import Grid
    from studio.core.sweep.sweep import run_sweep

    onnx.save(convstack(dynamic=True), root / "dynamic.onnx")
    np.savez(root / "data.npz", x=np.random.default_rng(0).standard_normal((8, 3, 24, 40)).astype(np.float32))
    run_sweep(str(root / "dynamic.onnx"), Grid(targets=("onnx",), quant=("none",)), str(root / "data.npz"),
              root / "run")
    return root / "run"


def write_int8_run(root: Path, samples: int = 48) -> Path:
    """A finished sweep of convnet() (fp32 and static int8 ONNX) on labelled, class-named 3x16x16 data; returns RUN.
    The samples are those of a larger random pool nearest a tie between the float model's top two classes, so that
    int8 rounding changes the top class of some of them (the quality gate is opened so that the candidate stays
    choosable)."""
    import onnxruntime as ort

    from studio.core.measure.fidelity import Floors, Scoring
    from studio.core.recipe.grid import Grid
    from studio.core.sweep.sweep import SweepOptions, run_sweep

    onnx.save(convnet(), root / "convnet.onnx")
    rng = np.random.default_rng(3)
    offsets = rng.uniform(-2, 2, (40 * samples, 3, 1, 1))  # per-sample channel means: the classes vary
    pool = (offsets + rng.standard_normal((40 * samples, 3, 16, 16))).astype(np.float32)
    logits = ort.InferenceSession(str(root / "convnet.onnx"), providers=["CPUExecutionProvider"]).run(None,
                                                                                                    {"x": pool})[0]
    top2 = np.sort(logits, axis=1)[:, -2:]
    x = pool[np.argsort(top2[:, 1] - top2[:, 0])[:samples]]
    np.savez(root / "named.npz", x=x, y=rng.integers(0, 10, samples),
             labels=np.array([f"class-{k}" for k in range(10)]))
    run_sweep(str(root / "convnet.onnx"), Grid(targets=("onnx",), quant=("none", "int8")), str(root / "named.npz"),
              root / "run", options=SweepOptions(scoring=Scoring(floors=Floors(agreement=0, cosine=0, sqnr_db=-99))))
    return root / "run"
