"""`profile` of small conv nets with onnxruntime's profiler and, for TFLite, LiteRT's: the operators and nodes it lists
are those of the graph (the file's own, the one onnxruntime writes after optimizing it, or the convolutions XNNPACK
ran and the operator it left to LiteRT's kernels), their times add up to the measured latency within 30%, dynamic
inputs run at the asked or the data's shapes, and bad files are one line."""
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from studio.core.base.errors import StudioError
from studio.core.look.ort_trace import ProfileError
from studio.core.look.profile import ProfileOptions, profile_model
from studio.core.tensors.shapes import ShapeRequest
from tests.core.look_models import convstack
from tests.core.tflite_models import ARGMAX, CONVS, convstack_tflite


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile")
    onnx.save(convstack(), root / "static.onnx")
    onnx.save(convstack(dynamic=True), root / "dynamic.onnx")
    return root


def _adds_up(p):
    assert abs(p.op_ms - p.latency_ms) <= 0.3 * p.latency_ms, (p.op_ms, p.latency_ms)
    assert sum(o.ms for o in p.op_types) == pytest.approx(p.op_ms)
    assert sum(o.share for o in p.op_types) == pytest.approx(1.0)


def test_the_graph_as_written_lists_its_own_operators_and_nodes_and_adds_up_to_the_latency(models):
    p = profile_model(models / "static.onnx", ProfileOptions(runs=10, top=100, optimized=False))
    graph = onnx.load(models / "static.onnx").graph
    assert {o.op: o.nodes for o in p.op_types} == Counter(n.op_type for n in graph.node)
    assert sorted(n.name for n in p.nodes) == sorted(n.name for n in graph.node) and p.node_count == len(graph.node)
    assert [n.ms for n in p.nodes] == sorted((n.ms for n in p.nodes), reverse=True)
    assert {n.op for n in p.nodes[:3]} == {"Conv"}  # three 32-channel convs at 64x64 outweigh everything else
    assert p.inputs == (("x", (1, 3, 64, 64)),) and p.synthetic and p.runs == 10
    assert p.providers == ("CPUExecutionProvider",) and not p.fallback
    _adds_up(p)


def test_the_optimized_graph_lists_the_nodes_onnxruntime_ran(models, tmp_path):
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")  # onnxruntime's own account of what it runs
    ort.InferenceSession(str(models / "static.onnx"), opts, providers=["CPUExecutionProvider"])
    ran = onnx.load(tmp_path / "optimized.onnx").graph.node
    p = profile_model(models / "static.onnx", ProfileOptions(runs=10, top=3))
    assert {o.op: o.nodes for o in p.op_types} == Counter(n.op_type for n in ran)
    assert len(p.nodes) == 3 and {n.name for n in p.nodes} <= {n.name for n in ran} and p.node_count == len(ran)
    _adds_up(p)


def test_a_dynamic_model_runs_at_the_asked_shape_and_at_the_datas(models, tmp_path):
    asked = profile_model(models / "dynamic.onnx", ProfileOptions(runs=5, shapes=ShapeRequest.parse("1,3,48,40")))
    assert asked.inputs == (("x", (1, 3, 48, 40)),)
    _adds_up(asked)
    np.savez(tmp_path / "data.npz", x=np.random.default_rng(0).standard_normal((4, 3, 32, 56)).astype(np.float32))
    fed = profile_model(models / "dynamic.onnx", ProfileOptions(runs=5, data=str(tmp_path / "data.npz")))
    assert fed.inputs == (("x", (1, 3, 32, 56)),) and not fed.synthetic


def test_nodes_outside_the_first_provider_are_listed(models):
    # onnxruntime's Azure provider runs only its own remote-call ops: every node of the net falls back to the CPU
    p = profile_model(models / "static.onnx", ProfileOptions(runs=3, top=1, optimized=False,
                                                             providers=("AzureExecutionProvider",
                                                                        "CPUExecutionProvider")))
    graph = onnx.load(models / "static.onnx").graph
    assert p.providers == ("AzureExecutionProvider", "CPUExecutionProvider")
    assert sorted(n.name for n in p.fallback) == sorted(n.name for n in graph.node)
    assert {n.provider for n in p.fallback} == {"CPUExecutionProvider"} and len(p.nodes) == 1


def test_a_provider_this_onnxruntime_lacks_is_one_line(models):
    with pytest.raises(ProfileError, match="execution provider NoSuchExecutionProvider is not in onnxruntime"):
        profile_model(models / "static.onnx", ProfileOptions(providers=("NoSuchExecutionProvider",)))


def test_bad_files_are_one_line_naming_the_file(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    (tmp_path / "notes.txt").write_text("hello")
    for name, reason in (("missing.onnx", "not found"), ("broken.onnx", "onnxruntime"), ("notes.txt", "neither")):
        with pytest.raises(StudioError) as caught:
            profile_model(tmp_path / name)
        line = caught.value.one_line()
        assert line.startswith(f"{tmp_path / name}: ") and reason in line and "\n" not in line


@pytest.fixture(scope="module")
def tflite_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile-tflite")
    return convstack_tflite(root / "static.tflite"), convstack_tflite(root / "dynamic.tflite", dynamic=True)


def test_a_tflite_model_lists_the_convolutions_xnnpack_ran_and_the_operator_it_left(tflite_models):
    p = profile_model(tflite_models[0], ProfileOptions(runs=10, top=10))
    assert p.runtime.startswith("ai-edge-litert ") and p.providers == ("XNNPACK", "TFLite kernels")
    assert p.inputs == (("image", (1, 48, 48, 3)),) and p.synthetic and p.node_count == len(CONVS) + 1
    convs = [n for n in p.nodes if n.provider == "XNNPACK"]
    assert len(convs) == len(CONVS) and all(n.op.startswith("Convolution") for n in convs)
    assert [(n.name, n.op, n.provider) for n in p.fallback] == [(ARGMAX, "ARG_MAX", "TFLite kernels")]
    assert p.nodes[0].name == "xnnpack#1"  # conv2, in graph order in XNNPACK's plan, does twice conv3's MACs
    _adds_up(p)


def test_a_dynamic_tflite_model_runs_at_the_asked_shape_and_at_the_datas(tflite_models, tmp_path):
    # larger than the model's own 48x48: LiteRT's ~0.2 ms per-run overhead stays a small share of the latency
    asked = profile_model(tflite_models[1], ProfileOptions(runs=10, shapes=ShapeRequest.parse("1,64,80,3")))
    assert asked.inputs == (("image", (1, 64, 80, 3)),)
    _adds_up(asked)
    np.savez(tmp_path / "data.npz", image=np.random.default_rng(0).standard_normal((2, 24, 56, 3)).astype(np.float32))
    fed = profile_model(tflite_models[1], ProfileOptions(runs=5, data=str(tmp_path / "data.npz")))
    assert fed.inputs == (("image", (1, 24, 56, 3)),) and not fed.synthetic


@pytest.mark.parametrize("shape", [(1, 48, 48, 3), (1, 20, 36, 3)])
def test_the_profiled_runs_compute_what_litert_s_interpreter_computes(tflite_models, shape):
    """The C API's buffers are bound right: the profiled model's outputs are the interpreter's, byte for byte."""
    from ai_edge_litert.interpreter import Interpreter

    from studio.core.bundle.litert_profiler import profile

    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    it = Interpreter(model_path=str(tflite_models[1]))
    it.resize_tensor_input(0, list(shape))
    it.allocate_tensors()
    it.set_tensor(0, x)
    it.invoke()
    doc = profile(tflite_models[1], {"image": x}, runs=2, warmup=1, threads=1)
    assert doc["outputs"] == {ARGMAX: it.get_tensor(it.get_output_details()[0]["index"]).tobytes()}
    assert doc["inputs"] == [["image", list(shape)]] and len(doc["times_ms"]) == 2


def test_a_tflite_model_litert_cannot_compile_is_one_line_with_litert_s_reason(shared_models):
    model = shared_models / "tflite" / "trained_lstm.tflite"  # its LSTM state is a variable tensor
    with pytest.raises(ProfileError) as caught:
        profile_model(model, ProfileOptions(runs=2))
    line = caught.value.one_line()
    assert line.startswith(f"{model}: LiteRT's profiler cannot run this model") and "Variable tensors" in line


def test_onnx_only_options_are_refused_for_tflite(tflite_models):
    for options, word in ((ProfileOptions(providers=("AzureExecutionProvider",)), "execution providers"),
                          (ProfileOptions(optimized=False), "--no-graph-optimizations")):
        with pytest.raises(ProfileError, match=word):
            profile_model(tflite_models[0], options)


def test_options_out_of_range_are_refused():
    for bad in ({"runs": 0}, {"top": 0}, {"threads": 0}, {"warmup": -1}, {"providers": ()}):
        with pytest.raises(ProfileError):
            ProfileOptions(**bad)
