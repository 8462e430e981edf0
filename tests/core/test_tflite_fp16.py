"""TFLite fp16 is checked against the gate: a Keras model whose weights leave the float16 range degrades with
TFLiteConverter's fp16, and Studio makes it again keeping that op's weights in float32, within the gate on inputs it
never saw; when no op is to blame the result says so instead of passing."""
import numpy as np
import pytest

from studio.core.measure.fidelity import Floors
from studio.core.measure.verify import compare
from studio.core.recipe.recipe import Quantization, Recipe

WIDE = "wide"


def _model(path):
    import keras

    rng = np.random.default_rng(0)
    inp = keras.Input((16,), name="x")
    h = keras.layers.Dense(16, activation="relu", name=WIDE)(inp)
    out = keras.layers.Dense(4, name="head")(h)
    m = keras.Model(inp, out)
    wide = np.sign(rng.standard_normal((16, 16))) * 10 ** rng.uniform(2, 7, (16, 16))  # most beyond 65504
    m.get_layer(WIDE).set_weights([wide.astype("f4"), np.zeros(16, "f4")])
    m.get_layer("head").set_weights([(rng.standard_normal((16, 4)) * 1e-4).astype("f4"), np.zeros(4, "f4")])
    m.save(path)
    return m


def _tflite(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return it.get_tensor(out["index"])


def _fc_weight_types(path):
    """{first output tensor of each FULLY_CONNECTED: the type of the weight it reads, following a DEQUANTIZE}."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model(str(path))
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if isinstance(v, int)}
    types = {v: k for k, v in vars(schema.TensorType).items() if isinstance(v, int)}
    sg = model.subgraphs[0]

    def code(op):
        c = model.operatorCodes[op.opcodeIndex]
        return codes[max(c.builtinCode, c.deprecatedBuiltinCode)]
    made_by = {o: op for op in sg.operators for o in op.outputs}
    found = {}
    for op in sg.operators:
        if code(op) == "FULLY_CONNECTED":
            w = op.inputs[1]
            src = made_by.get(w)
            if src is not None and code(src) == "DEQUANTIZE":
                w = src.inputs[0]
            name = sg.tensors[op.outputs[0]].name
            found[name.decode() if isinstance(name, bytes) else name] = types[sg.tensors[w].type]
    return found


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tflite-fp16")
    m = _model(tmp / "m.keras")
    rng = np.random.default_rng(1)
    np.savez(tmp / "calib.npz", x=rng.standard_normal((16, 16)).astype(np.float32))
    x = rng.standard_normal((20, 16)).astype(np.float32)  # fresh inputs for the check
    return tmp, m, x


def test_tflite_fp16_of_wide_weights_is_kept_within_the_gate(keras_files):
    import tensorflow as tf

    from studio.core.optimize.optimize import optimize

    tmp, m, x = keras_files
    ref = np.asarray(m(x))
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    (tmp / "naive.tflite").write_bytes(conv.convert())
    assert compare([ref], [_tflite(tmp / "naive.tflite", x)])["cosine"] < Floors().cosine  # it really degrades
    doc = optimize(tmp / "m.keras", Recipe(target="tflite", quantization=Quantization("fp16")), tmp / "out",
                   calib=str(tmp / "calib.npz"))
    got = compare([ref], [_tflite(tmp / "out" / "model.tflite", x)])
    assert got["cosine"] >= Floors().cosine and got["sqnr_db"] >= Floors().sqnr_db
    notes = " ".join(doc["notes"])
    assert "fp16 was degraded" in notes and "TFLiteConverter has no per-op float16 control" in notes
    assert "still degraded" not in notes
    weights = _fc_weight_types(tmp / "out" / "model.tflite")
    wide = next(k for k in weights if f"{WIDE}_" in k or f"/{WIDE}/" in k)
    assert weights[wide] == "FLOAT32" and f"{wide} (FULLY_CONNECTED" in notes
    assert "FLOAT16" in weights.values()  # the head is still fp16


def test_a_degraded_fp16_that_no_op_explains_says_so_instead_of_passing(tmp_path):
    import keras
    import tensorflow as tf

    from studio.core.quantize.tflite_fp16 import checked_fp16
    from studio.core.quantize.tflite_quant import quantize
    from studio.core.tensors.samples import Samples
    from studio.core.tensors.shapes import BatchMode, InputShape

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(4)])
    (tmp_path / "f.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    x = np.random.default_rng(2).standard_normal((8, 16)).astype(np.float32)
    samples = Samples((InputShape("x", "float32", (1, 16), BatchMode.DYNAMIC),), (x,), (False,))
    quantize(str(tmp_path / "f.tflite"), str(tmp_path / "h.tflite"), Quantization("fp16"), samples)
    wrong = [-np.asarray(m(x))]  # outputs this model cannot come near: a degraded result with normal weights
    check = checked_fp16(str(tmp_path / "f.tflite"), str(tmp_path / "h.tflite"), wrong, samples,
                         Quantization("fp16"), "ai-edge-quantizer")
    assert check.kept == () and check.shortfall and "cosine -1.000" in check.shortfall
    assert "TFLite has no other per-op float16 control" in " ".join(check.notes())
