"""Two-input PyTorch models saved as a .pt2 (ExportedProgram) and as TorchScript, with data whose first array is
called `x` (an .npz's usual name, which the loader keeps apart from the named arrays): both convert to ONNX and
TFLite with both inputs and both outputs, equal to a torch forward run here on the same samples."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.core.optimize.optimize import optimize
from studio.core.recipe.recipe import Quantization, Recipe, Target
from tests.core.test_torch_inputs import _converted_outputs

N = 12  # as many samples as tests.core.test_torch_inputs._converted_outputs runs one at a time


class Fusion(torch.nn.Module):
    """Two inputs (features x, a side signal s) and two outputs (class scores, the side projection)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(8, 4), torch.nn.Linear(3, 4)

    def forward(self, x, s):
        side = self.b(s)
        return torch.softmax(self.a(x) + side, -1), side


@pytest.fixture(scope="module")
def fusion(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    torch.manual_seed(0)
    module = Fusion().eval()
    example = (torch.randn(1, 8), torch.randn(1, 3))
    torch.export.save(torch.export.export(module, example), root / "fusion.pt2")  # static batch 1
    with pytest.warns(FutureWarning):  # torch.jit.save is deprecated, yet users still have such files
        torch.jit.save(torch.jit.trace(module, example), root / "fusion.jit")
    rng = np.random.default_rng(3)
    arrays = {"x": rng.normal(size=(N, 8)).astype(np.float32), "s": rng.normal(size=(N, 3)).astype(np.float32)}
    np.savez(root / "data.npz", **arrays)
    return root, module, arrays


@pytest.mark.parametrize("target", [Target.ONNX, Target.TFLITE])
@pytest.mark.parametrize("name", ["fusion.pt2", "fusion.jit"])
def test_a_two_input_file_converts_with_every_input_and_output(fusion, tmp_path, name, target):
    root, module, arrays = fusion
    out = tmp_path / "out"
    doc = optimize(str(root / name), Recipe(target=target, quantization=Quantization("none")), out,
                   calib=str(root / "data.npz"))
    assert [(i["name"], i["shape"]) for i in doc["input_shapes"]] == [("x", [1, 8]), ("s", [1, 3])]
    names, got = _converted_outputs(out / f"model.{target.value}", arrays)
    assert sorted(names) == ["s", "x"]
    with torch.no_grad():
        want = [o.numpy() for o in module(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["s"]))]
    assert len(got) == len(want) == 2
    # the converters may order outputs differently: match each torch output with the converted one of its shape
    for w in want:
        assert any(g.shape == w.shape and np.allclose(g, w, atol=1e-4, rtol=1e-4) for g in got)
