"""PyTorch sources of every kind convert to both targets with all their outputs: a .pt2 at a static batch of 1 and
one with a dynamic batch, TorchScript, and a state_dict of the user's own class (a .py file the test writes). The
converted files' outputs are compared with the torch module's own, computed here on the same inputs."""
from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch

from studio.core.inspect.arch_spec import ArchSpec
from studio.core.optimize.optimize import optimize
from studio.core.recipe.grid import Grid
from studio.core.recipe.recipe import Quantization, Recipe, Target
from studio.core.sweep.run_folder import RunFolder
from studio.core.sweep.sweep import SweepOptions, run_sweep
from studio.core.tensors.shapes import ShapeRequest
from tests.core.user_net import NET, SHAPE


@pytest.fixture(scope="module")
def user_net(tmp_path_factory):
    """(path of the .py file, the module built from it with width=6 and seeded weights)."""
    root = tmp_path_factory.mktemp("user_net")
    path = root / "two_heads.py"
    path.write_text(NET, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("two_heads_in_test", path)
    assert spec is not None and spec.loader is not None
    code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)
    torch.manual_seed(0)
    return path, code.TwoHeads(width=6).eval()


def _inputs(n: int = 5) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, *SHAPE[1:])).astype(np.float32)


def _torch_outputs(module, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        return [o.numpy() for o in module(torch.from_numpy(x))]


def _converted_outputs(path, x: np.ndarray) -> list[np.ndarray]:
    """The converted file run by its own runtime, one sample at a time (which every batch layout accepts)."""
    rows = []
    if str(path).endswith(".onnx"):
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rows = [sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1]}) for i in range(len(x))]
    else:
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        for i in range(len(x)):
            it.set_tensor(it.get_input_details()[0]["index"], x[i:i + 1])
            it.invoke()
            rows.append([it.get_tensor(d["index"]) for d in it.get_output_details()])
    return [np.concatenate([r[k] for r in rows]) for k in range(len(rows[0]))]


def _assert_same_outputs(module, converted, x):
    want, got = _torch_outputs(module, x), _converted_outputs(converted, x)
    assert [w.shape for w in want] == [g.shape for g in got]
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)


def _onnx_batch(path) -> int | str:
    import onnx

    dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_param or dim.dim_value


def _convert_both(src, out, module, **kwargs):
    for target in (Target.ONNX, Target.TFLITE):
        doc = optimize(src, Recipe(target=target, quantization=Quantization("none")), out / target.value, **kwargs)
        assert doc["conversion"]["check"]["passed"]
        _assert_same_outputs(module, out / target.value / f"model.{target.value}", _inputs())


def test_pt2_at_a_static_batch_of_1_converts_to_both_targets(user_net, tmp_path):
    _, module = user_net
    torch.export.save(torch.export.export(module, (torch.zeros(SHAPE),)), str(tmp_path / "b1.pt2"))
    _convert_both(tmp_path / "b1.pt2", tmp_path, module)
    assert _onnx_batch(tmp_path / "onnx" / "model.onnx") == 1  # the model's own batch, kept


def test_pt2_with_a_dynamic_batch_converts_to_both_targets(user_net, tmp_path):
    _, module = user_net
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(module, (torch.zeros((2, *SHAPE[1:])),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, str(tmp_path / "dyn.pt2"))
    _convert_both(tmp_path / "dyn.pt2", tmp_path, module)
    assert isinstance(_onnx_batch(tmp_path / "onnx" / "model.onnx"), str)  # still a dynamic batch


def test_torchscript_converts_to_both_targets(user_net, tmp_path):
    _, module = user_net
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module), str(tmp_path / "net.jit"))
    _convert_both(tmp_path / "net.jit", tmp_path, module, shapes=ShapeRequest.of(SHAPE))


def test_a_state_dict_of_the_users_own_class_converts_with_all_outputs(user_net, tmp_path):
    path, module = user_net
    torch.save(module.state_dict(), tmp_path / "weights.pt")
    arch = ArchSpec.of(f"{path}:TwoHeads", '{"width": 6}', trust_code=True)
    _convert_both(tmp_path / "weights.pt", tmp_path, module, arch=arch, shapes=ShapeRequest.of(SHAPE))
    report = (tmp_path / "onnx" / "report.json").read_text(encoding="utf-8")
    assert f'"name": "{path}:TwoHeads"' in report and '"width": 6' in report  # the run records the class


def test_a_sweep_builds_the_users_class_in_its_workers(user_net, tmp_path):
    path, module = user_net
    torch.save(module.state_dict(), tmp_path / "weights.pt")
    arch = ArchSpec.of(f"{path}:TwoHeads", '{"width": 6}', trust_code=True)
    grid = Grid(targets=(Target.ONNX,), quant=("none",))
    options = SweepOptions(workers=1, limit=16, arch=arch, shapes=ShapeRequest.of(SHAPE))
    run_sweep(tmp_path / "weights.pt", grid, None, tmp_path / "run", options=options)
    doc = run_sweep(tmp_path / "weights.pt", grid, None, tmp_path / "run", options=options)  # resumes: all done
    rows = doc["candidates"]
    assert [r["status"] for r in rows] == ["ok"]
    config = RunFolder(tmp_path / "run").config.read_text(encoding="utf-8")
    assert f"{path}:TwoHeads" in config and '"width": 6' in config
    _assert_same_outputs(module, tmp_path / "run" / rows[0]["path"], _inputs())
