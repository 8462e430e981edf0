"""A PyTorch state_dict whose class (in a .py file the test writes) takes three inputs: an image, a float state and
an int64 step. Inspect names them from forward's signature; optimize to ONNX and to TFLite keeps all three, with
outputs equal to a torch forward run here on the same inputs; the bundle's runner passes on this machine; structured
pruning in a sweep keeps every input."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from studio.core.base.errors import StudioError
from studio.core.bundle.bundle import build_bundle, bundle_sample, resolve_source
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.inspect.inspector import inspect_model
from studio.core.optimize.optimize import optimize
from studio.core.recipe.grid import Grid
from studio.core.recipe.recipe import Pruning, Quantization, Recipe, Target
from studio.core.sweep.sweep import SweepOptions, run_sweep
from studio.core.tensors.shapes import ShapeError, ShapeRequest
from tests.core.test_real_inputs import run_bundle
from tests.core.user_multi_net import NAMES, NET, SHAPES

N = 12


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    """(weights.pt, the ArchSpec naming the class in its .py file, the module itself, a dataset .npz, its arrays);
    the dataset gives the state once, at its exact shape, for every sample."""
    root = tmp_path_factory.mktemp("tracker")
    (root / "tracker.py").write_text(NET, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("tracker_in_test", root / "tracker.py")
    assert spec is not None and spec.loader is not None
    code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)
    torch.manual_seed(0)
    module = code.Tracker().eval()
    torch.save(module.state_dict(), root / "weights.pt")
    rng = np.random.default_rng(2)
    arrays = {"image": rng.normal(size=(N, 3, 16, 16)).astype(np.float32),
              "state": rng.normal(size=(1, 4)).astype(np.float32), "step": rng.integers(0, 5, size=N)}
    np.savez(root / "data.npz", **arrays)
    return root / "weights.pt", ArchSpec.of(f"{root / 'tracker.py'}:Tracker", trust_code=True), module, \
        root / "data.npz", arrays


def _torch_outputs(module, arrays) -> list[np.ndarray]:
    with torch.no_grad():
        return [o.numpy() for o in module(*(torch.from_numpy(arrays[n]) for n in NAMES))]


def _converted_outputs(path, arrays) -> tuple[list[str], list[np.ndarray]]:
    """The converted file's input names and its outputs, run by its own runtime one sample at a time, fed by name."""
    def value(name, i):
        a = arrays[name]
        return a if len(a) != N else a[i:i + 1]

    rows = []
    if str(path).endswith(".onnx"):
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        rows = [sess.run(None, {n: value(n, i) for n in names}) for i in range(N)]
    else:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(path)).get_signature_runner()
        names = list(runner.get_input_details())
        dtypes = {n: d["dtype"] for n, d in runner.get_input_details().items()}
        for i in range(N):
            out = runner(**{n: value(n, i).astype(dtypes[n]) for n in names})
            rows.append([out[k] for k in sorted(out)])
    return names, [np.concatenate([r[k] for r in rows]) for k in range(len(rows[0]))]


def test_inspect_names_every_input_and_asks_for_the_shapes(tracker):
    weights, arch, module, _, arrays = tracker
    bare = inspect_model(weights, arch=arch, isolate=False)
    assert [t.name for t in bare.inputs] == NAMES and [p.code for p in bare.problems] == ["unknown-shape"]
    info = inspect_model(weights, arch=arch, shapes=ShapeRequest.parse(SHAPES))
    assert [(t.name, t.shape, t.dtype) for t in info.inputs] == [
        ("image", [1, 3, 16, 16], "float32"), ("state", [1, 4], "float32"), ("step", [1], "int64")]
    want = _torch_outputs(module, {n: a[:1] for n, a in arrays.items()})
    assert [t.shape for t in info.outputs] == [list(w.shape) for w in want]
    with pytest.raises(ShapeError, match=r"3 inputs \(image, state, step\): name the one"):
        inspect_model(weights, arch=arch, shapes=ShapeRequest.parse(["1,3,16,16"]), isolate=False)


@pytest.mark.parametrize("target", [Target.ONNX, Target.TFLITE])
def test_optimize_keeps_every_input_and_the_torch_outputs(tracker, tmp_path, target):
    weights, arch, module, data, arrays = tracker
    out = tmp_path / "out"
    doc = optimize(weights, Recipe(target=target, quantization=Quantization("none")), out, calib=str(data), arch=arch)
    assert [(i["name"], i["shape"], i["dtype"], i["from"]) for i in doc["input_shapes"]] == [
        ("image", [1, 3, 16, 16], "float32", "data"), ("state", [1, 4], "float32", "data"),
        ("step", [1], "int64", "data")]
    names, got = _converted_outputs(out / f"model.{target.value}", arrays)
    assert sorted(names) == sorted(NAMES)  # every input, under its own name
    for w, g in zip(_torch_outputs(module, arrays), got, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)
    if target == Target.ONNX:
        src = resolve_source(out)
        bundle = tmp_path / "tracker.bundle.zip"
        build_bundle(src, bundle, name="tracker", version="1", sample=bundle_sample(src, data))
        code, result = run_bundle(bundle, tmp_path / "device")
        assert code == 0 and result["sample_check"] == {"passed": True, "outputs": 2}


def test_a_structured_pruning_sweep_keeps_every_input(tracker, tmp_path):
    import onnxruntime as ort

    weights, arch, module, data, arrays = tracker
    grid = Grid(targets=(Target.ONNX,), quant=("none",), prune=(0.5,))
    doc = run_sweep(weights, grid, str(data), tmp_path / "run", options=SweepOptions(workers=1, arch=arch))
    row = doc["candidates"][0]
    assert row["status"] == "ok", row
    pruned = tmp_path / "run" / row["path"]
    sess = ort.InferenceSession(str(pruned), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in sess.get_inputs()] == [
        ("image", "tensor(float)"), ("state", "tensor(float)"), ("step", "tensor(int64)")]
    params = sum(int(np.prod(t.dims)) for t in __import__("onnx").load(str(pruned)).graph.initializer)
    assert params < sum(p.numel() for p in module.parameters())  # channels were removed
    _, got = _converted_outputs(pruned, arrays)
    assert [g.shape for g in got] == [w.shape for w in _torch_outputs(module, arrays)]


def _labelled(root, module, arrays, classes: int | None = None) -> str:
    """The tracker's data with labels: its own unpruned predictions (a target pruning loses and fine-tuning
    recovers), or labels of `classes` classes."""
    y = (np.arange(N) % classes if classes else _torch_outputs(module, arrays)[0].argmax(1)).astype(np.int64)
    path = root / f"labelled{classes or ''}.npz"
    np.savez(path, **arrays, y=y)
    return str(path)


def test_fine_tuning_after_pruning_feeds_every_input_and_trains_the_class_output(tracker, tmp_path):
    weights, arch, module, data, arrays = tracker
    train = _labelled(tmp_path, module, arrays)
    recipe = Recipe(target=Target.ONNX, quantization=Quantization("none"),
                    pruning=Pruning("structured", 0.5, finetune_epochs=8, finetune_lr=0.01))
    doc = optimize(weights, recipe, tmp_path / "out", calib=str(data), finetune=train, arch=arch,
                   allow_degraded=True)
    [step] = [s for s in doc["steps"] if s["name"].startswith("fine-tuning")]
    assert len(step["losses"]) == 8 and step["losses"][-1] < step["losses"][0]  # it learned
    names, _ = _converted_outputs(tmp_path / "out" / "model.onnx", arrays)
    assert sorted(names) == sorted(NAMES)


def test_labels_that_fit_no_output_are_refused_in_one_line(tracker, tmp_path):
    weights, arch, _, data, arrays = tracker
    train = _labelled(tmp_path, None, arrays, classes=10)  # 10 classes: the outputs hold 3 and 4 values
    recipe = Recipe(target=Target.ONNX, quantization=Quantization("none"),
                    pruning=Pruning("structured", 0.5, finetune_epochs=1))
    with pytest.raises(StudioError) as err:
        optimize(weights, recipe, tmp_path / "out", calib=str(data), finetune=train, arch=arch)
    line = err.value.one_line()
    assert "fine-tuning labels (class ids 0-9) fit none of the model's outputs ([3], [4] per sample)" in line
    assert "\n" not in line
    assert not (tmp_path / "out" / "model.onnx").exists()
