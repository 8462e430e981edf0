"""fp16 of a detector stays within the quality floor where the naive conversion breaks it, and says which ops and
nodes it kept in float32."""
import numpy as np
import onnx
import pytest

from studio.core.measure.fidelity import Floors
from studio.core.measure.verify import compare
from studio.core.optimize.optimize import optimize
from studio.core.recipe.recipe import Quantization, Recipe
from tests.core.prune_fixtures import detector, run

MIN_COSINE, MIN_SQNR_DB = Floors().cosine, Floors().sqnr_db


@pytest.fixture
def detector_files(tmp_path):
    src = tmp_path / "detector.onnx"
    detector(src)
    rng = np.random.default_rng(1)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=rng.random((16, 3, 32, 32), dtype=np.float32))
    return src, calib, rng.random((6, 3, 32, 32), dtype=np.float32)  # fresh inputs for the check


def per_output(ref, got):
    return [compare([r], [g]) for r, g in zip(ref, got, strict=True)]


def test_naive_fp16_really_degrades_the_detector(detector_files, tmp_path):
    from onnxconverter_common import float16

    src, _, x = detector_files
    naive = float16.convert_float_to_float16(onnx.load(src), keep_io_types=True)  # Resize is in its block list
    onnx.save(naive, tmp_path / "naive.onnx")
    prob, heat = per_output(run(src, x), run(tmp_path / "naive.onnx", x))
    assert prob["cosine"] > 0.99  # the score map survives ...
    assert not heat["cosine"] >= MIN_COSINE  # ... the heat map overflows (NaN or far off)


def test_studio_fp16_keeps_the_detector_within_the_floor_and_names_what_stayed_float(detector_files, tmp_path):
    src, calib, x = detector_files
    doc = optimize(src, Recipe(quantization=Quantization("fp16")), tmp_path / "out", calib=str(calib))
    out = tmp_path / "out" / "model.onnx"
    for effect in per_output(run(src, x), run(out, x)):  # measured here, on inputs optimize never saw
        assert effect["cosine"] >= MIN_COSINE and (effect["sqnr_db"] is None or effect["sqnr_db"] >= MIN_SQNR_DB)
    notes = " ".join(doc["notes"])
    assert "kept in float32 the ops that break in half precision: Resize, ReduceSum" in notes
    assert "gain (Mul)" in notes and "fp16 was degraded (output 'heat': " in notes  # the output it broke
    assert "still degraded" not in notes
    model = onnx.load(out)
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)  # it is fp16 still
    makers = {o: n for n in model.graph.node for o in n.output}
    gain = next(n for n in model.graph.node if n.name == "gain")
    to_float = makers[gain.input[0]]  # the Mul runs in float32: its input is cast up to it
    assert to_float.op_type == "Cast" and to_float.attribute[0].i == onnx.TensorProto.FLOAT
