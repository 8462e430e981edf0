"""Unstructured pruning spreads its ratio per layer (or ranks globally when asked), reaches Constant-held ONNX
weights, and structured pruning leaves output, grouped and depthwise layers whole, saying why."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from studio.core.prune.weights import prune_arrays
from studio.core.recipe.recipe import PruneScope, Pruning
from tests.core.prune_fixtures import constant_weights


def layers(seed=0):
    rng = np.random.default_rng(seed)
    return [("big", rng.standard_normal((64, 32))), ("small", rng.standard_normal((3, 3, 1, 16)) * 0.01)]


def test_per_layer_scope_zeroes_the_ratio_of_each_layer_and_only_its_smallest_weights():
    named = layers()
    pruned, stats = prune_arrays(named, 0.3)
    for (name, a), p, s in zip(named, pruned, stats.layers, strict=True):
        k = round(0.3 * a.size)
        assert s.layer == name and s.zeros == k == int((p == 0).sum())
        kept, dropped = np.abs(a[p != 0]), np.abs(a[p == 0])
        assert dropped.max() <= kept.min()  # brute force: every zeroed weight is below every kept one
        np.testing.assert_array_equal(p[p != 0], a[p != 0])
    step = stats.step(0.3, 0.0)
    assert step["scope"] == "layer" and [r["layer"] for r in step["layers"]] == ["big", "small"]
    assert step["zeros"] == sum(round(0.3 * a.size) for _, a in named)


def test_global_scope_empties_the_layer_of_small_weights():
    _, stats = prune_arrays(layers(), 0.3, PruneScope.GLOBAL)
    by_name = {s.layer: s.sparsity for s in stats.layers}
    assert by_name["small"] == 1.0 and by_name["big"] < 0.3  # what the per-layer default avoids
    assert stats.zeros == round(0.3 * sum(a.size for _, a in layers()))


def test_ties_keep_the_exact_count():
    _, stats = prune_arrays([("flat", np.ones((10, 10)))], 0.25)
    assert stats.layers[0].zeros == 25


def test_onnx_constant_held_weights_are_pruned_per_layer(tmp_path):
    from studio.core.convert.onnx_graph import constants_to_initializers
    from studio.core.quantize.onnx_quant import prune_model

    constant_weights(tmp_path / "m.onnx")
    model = onnx.load(tmp_path / "m.onnx")
    notes = []
    constants_to_initializers(model, notes)
    stats = prune_model(model, Pruning("unstructured", 0.3))
    assert "5 Constant node(s)" in notes[0]
    onnx.save(model, tmp_path / "pruned.onnx")
    again = {t.name: numpy_helper.to_array(t) for t in onnx.load(tmp_path / "pruned.onnx").graph.initializer}
    for name in ("conv1_weights", "conv2_weights", "fc_weights"):  # read back with onnx, counted here
        assert (again[name] == 0).sum() == round(0.3 * again[name].size)
    assert (again["conv1_bias"] != 0).all()  # biases are not weights to prune
    assert {s.layer for s in stats.layers} == {"conv1", "conv2", "fc"}


@pytest.fixture
def detector_module():
    torch = pytest.importorskip("torch")

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
            self.dw = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
            self.grouped = torch.nn.Conv2d(16, 16, 1, groups=4)
            self.mid = torch.nn.Conv2d(16, 16, 1)
            self.boxes = torch.nn.Conv2d(16, 4, 1)
            self.scores = torch.nn.Conv2d(16, 2, 1)

        def forward(self, x):
            y = self.mid(self.grouped(self.dw(torch.relu(self.stem(x)))))
            return self.boxes(y).flatten(1), torch.softmax(self.scores(y), 1)

    return Detector().eval(), torch


def test_structured_pruning_keeps_outputs_and_grouped_convs_and_says_why(detector_module):
    from studio.core.convert.torch_route import prune_structured

    module, torch = detector_module
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        before = [o.shape for o in module(x)]
    changed, kept = prune_structured(module, (torch.zeros(1, 3, 16, 16),), Pruning("structured", 0.5))
    reasons = {k.layer: k.reason for k in kept}
    assert reasons == {"boxes": "makes output 0", "scores": "makes output 1", "dw": "depthwise convolution",
                       "grouped": "grouped convolution (4 groups)"}
    with torch.no_grad():
        assert [o.shape for o in module(x)] == before  # the outputs the user reads did not change shape
    assert "mid" in {c["layer"] for c in changed} or "stem" in {c["layer"] for c in changed}
    assert not {c["layer"] for c in changed} & {"boxes", "scores"}
