"""Models as users bring them: dynamic H/W, several inputs with a state and an int64 scalar, no batch dimension,
channels-last data. Shapes are resolved once and every number is measured at them (checked against direct
onnxruntime runs made here)."""
import json
import statistics
import subprocess
import sys
import time
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from studio.core.base.errors import DataError
from studio.core.bundle.bundle import build_bundle, bundle_sample, resolve_source, verify_bundle
from studio.core.data.datasets import load_dataset
from studio.core.data.feeding import fit
from studio.core.measure.evaluate import measure_latency
from studio.core.measure.latency import LatencyOptions
from studio.core.measure.runtimes import open_runner, predict
from studio.core.optimize.optimize import optimize
from studio.core.recipe.recipe import Quantization, Recipe
from studio.core.tensors.samples import synthetic
from studio.core.tensors.shapes import ShapeError, ShapeRequest, resolve
from tests.core.real_shapes import paddle_detector, recurrent_vad, table_model


def direct_median_ms(path, feeds, runs=40):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    for _ in range(5):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run_bundle(bundle, where):
    """The bundle's runner, as the device runs it: unpacked, with this Python."""
    where.mkdir()
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(where)
    done = subprocess.run([sys.executable, str(where / "runner.py"), "--runs", "3"], capture_output=True, text=True,
                          timeout=120)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture()
def detector(tmp_path):
    return paddle_detector(tmp_path / "det.onnx")


def test_dynamic_dims_need_a_shape_and_name_the_input_and_dim(detector):
    with pytest.raises(ShapeError) as err:
        resolve(open_runner(detector).declared)
    assert "input 'x'" in err.value.message and "'H'" in err.value.message and "--input-shape" in err.value.message


def test_latency_is_measured_at_the_shape_the_user_gave(detector):
    shapes = resolve(open_runner(detector).declared, ShapeRequest.parse(["1,3,320,320"]))
    samples = synthetic(shapes, 2)
    studio_ms = measure_latency(detector, samples, LatencyOptions(runs=40, min_seconds=0.2))
    assert studio_ms["input_shapes"] == {"x": [1, 3, 320, 320]}
    direct = direct_median_ms(detector, {"x": np.random.default_rng(0).standard_normal((1, 3, 320, 320),
                                                                                    np.float32)})
    assert abs(studio_ms["median_ms"] - direct) <= 0.3 * direct


def test_dims_resolved_from_channels_last_data_are_used_through_optimize_and_the_bundle(detector, tmp_path):
    images = np.random.default_rng(1).integers(0, 255, (20, 48, 64, 3)).astype(np.uint8)  # NHWC photos
    np.savez(tmp_path / "photos.npz", x=images)
    doc = optimize(detector, Recipe(), tmp_path / "out", calib=str(tmp_path / "photos.npz"))
    assert doc["input_shapes"] == [{"name": "x", "shape": [1, 3, 48, 64], "dtype": "float32", "from": "data"}]
    assert any("channels-last samples [48, 64, 3] transposed to channels-first" in n for n in doc["notes"])
    bundle = tmp_path / "det.bundle.zip"
    build_bundle(resolve_source(tmp_path / "out"), bundle, name="det", version="1")
    manifest = verify_bundle(bundle).manifest
    assert manifest["sample"]["inputs"] == [{"name": "x", "shape": [1, 3, 48, 64], "dtype": "float32"}]
    code, result = run_bundle(bundle, tmp_path / "device")
    assert code == 0 and result["ok"] and result["sample_check"]["passed"]
    assert result["outputs"][0]["shape"] == [1, 1, 48, 64]


def test_an_ambiguous_or_impossible_layout_is_an_error_not_a_reshape(detector, tmp_path):
    declared = open_runner(detector).declared
    np.savez(tmp_path / "ambiguous.npz", x=np.zeros((4, 5, 3, 3), np.float32))  # (3,5,3) and (3,3,5) both fit
    with pytest.raises(DataError, match="several readings fit"):
        fit(load_dataset(tmp_path / "ambiguous.npz"), declared)
    np.savez(tmp_path / "five.npz", x=np.zeros((4, 64, 64, 5), np.float32))
    with pytest.raises(DataError, match=r"input 'x' .* needs samples of \[3, \?, \?\]; the data gives samples of"
                                        r" \[64, 64, 5\]"):
        fit(load_dataset(tmp_path / "five.npz"), declared)


@pytest.fixture()
def vad(tmp_path):
    path = recurrent_vad(tmp_path / "vad.onnx")
    rng = np.random.default_rng(2)
    data = {"input": rng.standard_normal((24, 16)).astype(np.float32),
            "state": rng.standard_normal((2, 1, 8)).astype(np.float32), "sr": np.array(16000, np.int64)}
    np.savez(tmp_path / "vad.npz", **data)
    return path, str(tmp_path / "vad.npz"), data


def test_three_inputs_with_a_state_and_an_int64_scalar_run_as_the_runtime_runs_them(vad):
    path, npz, data = vad
    fitted = fit(load_dataset(npz), open_runner(path).declared)
    assert fitted.samples.constant == (False, True, True)
    got = predict(open_runner(path), fitted.samples)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    direct = [session.run(None, {"input": data["input"][i:i + 1], "state": data["state"], "sr": data["sr"]})
              for i in range(24)]
    assert np.allclose(got[0], np.concatenate([d[0] for d in direct]), atol=1e-6)
    assert np.allclose(got[1], np.stack([d[1] for d in direct]), atol=1e-6)


def test_a_three_input_model_optimizes_and_its_bundle_checks_on_the_device(vad, tmp_path):
    path, npz, _ = vad
    doc = optimize(path, Recipe(quantization=Quantization("int8")), tmp_path / "out", calib=npz)
    assert [i["name"] for i in doc["input_shapes"]] == ["input", "state", "sr"]
    assert doc["quantization_effect"]["cosine"] > 0.99
    bundle = tmp_path / "vad.bundle.zip"
    src = resolve_source(tmp_path / "out")
    build_bundle(src, bundle, name="vad", version="1", sample=bundle_sample(src, npz))
    with zipfile.ZipFile(bundle) as zf, np.load(zf.open("sample.npz")) as sample:
        assert sample["input002"].dtype == np.int64 and sample["input002"].shape == () and sample["input002"] == 16000
    code, result = run_bundle(bundle, tmp_path / "device")
    assert code == 0 and result["sample_check"] == {"passed": True, "outputs": 2}


def test_several_inputs_need_named_shapes_and_named_arrays(vad, tmp_path):
    path, _, data = vad
    declared = open_runner(path).declared
    with pytest.raises(ShapeError, match=r"3 inputs \(input, state, sr\): name the one"):
        resolve(declared, ShapeRequest.parse(["1,16"]))
    with pytest.raises(ShapeError, match="the model's inputs are input, state, sr"):
        resolve(declared, ShapeRequest.parse(["speech=1,16"]))
    np.savez(tmp_path / "partial.npz", input=data["input"], state=data["state"])
    with pytest.raises(DataError, match="no array for input 'sr'"):
        fit(load_dataset(tmp_path / "partial.npz"), declared)


def test_a_model_without_a_batch_dim_is_never_given_one(tmp_path):
    path = table_model(tmp_path / "table.onnx")
    tables = np.random.default_rng(3).standard_normal((6, 3, 2)).astype(np.float32)
    np.savez(tmp_path / "tables.npz", x=tables)
    samples = fit(load_dataset(tmp_path / "tables.npz"), open_runner(path).declared).samples
    got = predict(open_runner(path), samples)[0]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert got.shape == (6, 3, 4)
    assert np.allclose(got, np.stack([session.run(None, {"t": t})[0] for t in tables]), atol=1e-6)
    bundle = tmp_path / "table.bundle.zip"
    build_bundle(resolve_source(path), bundle, name="table", version="1")
    assert verify_bundle(bundle).manifest["sample"]["inputs"][0]["shape"] == [3, 2]
    code, result = run_bundle(bundle, tmp_path / "device")
    assert code == 0 and result["outputs"][0]["shape"] == [3, 4]


def test_verify_refuses_a_sample_that_does_not_fit_the_model(tmp_path):
    from studio.core.bundle.bundle import BundleError
    from studio.core.bundle.sample import BundleSample

    path = table_model(tmp_path / "table.onnx")
    wrong = BundleSample((np.zeros((1, 3, 2), np.float32),), (), "synthetic")  # a batch dim the model has not
    bundle = tmp_path / "wrong.bundle.zip"
    build_bundle(resolve_source(path), bundle, name="t", version="1", sample=wrong)
    with pytest.raises(BundleError, match=r"does not fit input 't': its shape is \[1, 3, 2\]"):
        verify_bundle(bundle)


def test_a_map_output_without_batch_dim_runs_and_its_bundle_checks_the_tensors(tmp_path):
    from tests.core.real_shapes import zipmap_classifier

    path = zipmap_classifier(tmp_path / "clf.onnx")
    tables = np.random.default_rng(4).standard_normal((5, 3, 2)).astype(np.float32)
    np.savez(tmp_path / "t.npz", x=tables)
    samples = fit(load_dataset(tmp_path / "t.npz"), open_runner(path).declared).samples
    labels, probabilities = predict(open_runner(path), samples)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    direct = [session.run(None, {"X": t}) for t in tables]
    assert np.array_equal(labels, np.stack([d[0] for d in direct]))
    assert probabilities.shape == (5, 3, 3)
    assert np.allclose(probabilities, [[[row[k] for k in sorted(row)] for row in d[1]] for d in direct], atol=1e-6)
    bundle = tmp_path / "clf.bundle.zip"
    build_bundle(resolve_source(path), bundle, name="clf", version="1", sample=bundle_sample(resolve_source(path),
                                                                                            tmp_path / "t.npz"))
    code, result = run_bundle(bundle, tmp_path / "device")
    assert code == 0 and result["sample_check"] == {"passed": True, "outputs": 1}  # the label; maps are described
    assert result["outputs"][1]["kind"] == "non-tensor"


def test_a_three_input_bundle_installs_on_a_local_device_and_a_wrong_answer_is_refused(vad, tmp_path):
    from studio.core.bundle.sample import BundleSample
    from studio.core.deploy import fleet, inventory
    from studio.core.deploy.inventory import Device

    path, npz, _ = vad
    src = resolve_source(path)
    good, bad = tmp_path / "good.bundle.zip", tmp_path / "bad.bundle.zip"
    sample = bundle_sample(src, npz)
    build_bundle(src, good, name="vad", version="1", sample=sample)
    wrong = BundleSample(sample.inputs, tuple(e + 1.0 for e in sample.expected), "data")  # never its answers
    build_bundle(src, bad, name="vad", version="2", sample=wrong)
    device = Device(name="bench-vad", kind="local", dir=str(tmp_path / "dev"), python=sys.executable)
    inventory.add(device)
    assert fleet.push(str(good), [device]).counts() == {"installed": 1}
    refused = fleet.push(str(bad), [device]).results[0]
    assert refused.status == "failed" and "still runs vad v1" in refused.message
    assert "other answers" in (refused.detail or "")


def test_a_fixed_batch_of_four_runs_four_samples_a_run_and_drops_the_padding(tmp_path):
    detector = paddle_detector(tmp_path / "det.onnx")
    model = onnx.load(detector)
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (4, 3, 16, 16), strict=True):
        dim.Clear()
        dim.dim_value = value
    onnx.save(model, str(tmp_path / "det4.onnx"))
    runner = open_runner(str(tmp_path / "det4.onnx"))
    images = np.random.default_rng(5).standard_normal((10, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=images)
    samples = fit(load_dataset(tmp_path / "x.npz"), runner.declared).samples
    runs = [(feeds[0].shape, real) for feeds, real in samples.runs()]
    assert runs == [((4, 3, 16, 16), 4), ((4, 3, 16, 16), 4), ((4, 3, 16, 16), 2)]
    got = predict(runner, samples)[0]
    direct = ort.InferenceSession(detector).run(None, {"x": images})[0]  # the dynamic original, all at once
    assert got.shape == (10, 1, 16, 16) and np.allclose(got, direct, atol=1e-5)
