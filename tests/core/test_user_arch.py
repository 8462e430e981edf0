"""A state_dict whose class lives in the user's own code: `--arch FILE.py:Class` or `package.module:Class`, with JSON
keyword arguments, built only with --trust-code; mismatches name the keys. TorchScript is known by its content."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from studio.core.base.errors import ModelLoadError
from studio.core.inspect.arch_spec import ArchSpec, classes_in
from studio.core.inspect.formats import Format, detect
from studio.core.inspect.inspector import inspect_model
from tests.core.user_net import NET, SHAPE


def _module(width: int):
    """The same class, defined here, as the test's independent reference."""
    namespace: dict = {}
    exec(compile(NET, "net", "exec"), namespace)  # the test's own source text
    torch.manual_seed(0)
    return namespace["TwoHeads"](width=width).eval()


@pytest.fixture
def user_files(tmp_path):
    """(net.py, weights.pt holding TwoHeads(width=6)'s state_dict, that module)."""
    (tmp_path / "net.py").write_text(NET, encoding="utf-8")
    module = _module(6)
    torch.save(module.state_dict(), tmp_path / "weights.pt")
    return tmp_path / "net.py", tmp_path / "weights.pt", module


def _spec(net, args='{"width": 6}', trust=True):
    return ArchSpec.of(f"{net}:TwoHeads", args, trust_code=trust)


def test_the_users_class_is_built_only_with_consent(user_files):
    net, weights, _ = user_files
    with pytest.raises(ModelLoadError, match="pass --trust-code") as refused:
        inspect_model(weights, arch=_spec(net, trust=False), input_shape=SHAPE)
    assert "runs its Python code" in str(refused.value)


def test_the_users_class_loads_the_weights_and_shows_every_output(user_files):
    net, weights, module = user_files
    info = inspect_model(weights, arch=_spec(net), input_shape=SHAPE)  # in a worker process: imported by path
    with torch.no_grad():
        want = [list(o.shape) for o in module(torch.zeros(SHAPE))]
    assert [t.shape for t in info.outputs] == want == [[1, 5], [1, 4, 16, 16]]
    assert info.params == sum(p.numel() for p in module.parameters())
    assert info.details["arch"] == {"name": f"{net}:TwoHeads", "args": {"width": 6}}
    bare = inspect_model(weights, arch=_spec(net), isolate=False)  # no shape given: the weights, and what to pass
    assert bare.params == info.params and [p.code for p in bare.problems] == ["unknown-shape"]


def test_mismatches_name_the_first_missing_and_unexpected_keys(user_files, tmp_path):
    net, weights, module = user_files
    sd = module.state_dict()
    sd["stem.weight"] = sd.pop("body.0.weight")
    torch.save(sd, tmp_path / "renamed.pt")
    with pytest.raises(ModelLoadError) as renamed:
        inspect_model(tmp_path / "renamed.pt", arch=_spec(net), input_shape=SHAPE, isolate=False)
    assert "1 missing ('body.0.weight')" in str(renamed.value) and "1 unexpected ('stem.weight')" in str(renamed.value)
    with pytest.raises(ModelLoadError) as resized:  # the default width is 8, the weights have 6
        inspect_model(weights, arch=_spec(net, args=""), input_shape=SHAPE, isolate=False)
    assert "weight 'body.0.weight' has shape [6, 3, 3, 3], the architecture expects [8, 3, 3, 3]" in str(resized.value)
    with pytest.raises(ModelLoadError, match="give its keyword arguments with --arch-args"):
        inspect_model(weights, arch=_spec(net, args='{"depth": 3}'), input_shape=SHAPE, isolate=False)
    with pytest.raises(ModelLoadError, match=r"has no nn\.Module class named 'Nope'"):
        inspect_model(weights, arch=ArchSpec(f"{net}:Nope", trust_code=True), isolate=False)


def test_a_class_in_an_importable_package(user_files, tmp_path, monkeypatch):
    _, weights, module = user_files
    (tmp_path / "mynets").mkdir()
    (tmp_path / "mynets" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "mynets" / "heads.py").write_text(NET, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # worker processes import what the caller can
    info = inspect_model(weights, arch=ArchSpec.of("mynets.heads:TwoHeads", '{"width": 6}', True), input_shape=SHAPE)
    assert info.params == sum(p.numel() for p in module.parameters())
    with pytest.raises(ModelLoadError, match=r"module 'mynets\.absent', which cannot be imported"):
        inspect_model(weights, arch=ArchSpec("mynets.absent:TwoHeads", trust_code=True), isolate=False)


def test_arch_args_must_be_a_json_object_and_a_file_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ArchSpec.of("nets/net.py:Net").name == f"{tmp_path / 'nets' / 'net.py'}:Net"
    assert ArchSpec.of("mynets.heads:Net").name == "mynets.heads:Net"
    assert ArchSpec.of("resnet18", ' {"num_classes": 7, "aux": false} ').kwargs() == {"num_classes": 7, "aux": False}
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        ArchSpec.of("resnet18", "{num_classes: 7}")
    with pytest.raises(ModelLoadError, match=r"must be a JSON object.* not a list"):
        ArchSpec.of("resnet18", "[7]")


def test_classes_are_listed_without_running_the_file(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "code.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass A: pass\nclass B(A): pass\n",
                                      encoding="utf-8")
    assert classes_in(str(tmp_path / "code.py")) == ["A", "B"] and not marker.exists()
    (tmp_path / "broken.py").write_text("class (:\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="cannot be read as Python source"):
        classes_in(str(tmp_path / "broken.py"))


def test_torchscript_is_known_by_its_content_under_each_extension(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(_module(4), torch.zeros(SHAPE))
    for name in ("m.pt", "m.jit", "m.ts"):
        torch.jit.save(scripted, str(tmp_path / name))
        assert detect(tmp_path / name) == Format.TORCHSCRIPT, name
    torch.save(_module(4).state_dict(), tmp_path / "weights.jit")
    assert detect(tmp_path / "weights.jit") == Format.TORCH_SAVE  # the content decides, not the extension


def test_the_caller_never_imports_torch_to_read_the_answer(user_files):
    """A PyTorch model is loaded in the worker; its inspection comes back as plain values, so the caller (the GUI, a
    CLI command) does not spend seconds and memory importing torch to unpickle it."""
    net, weights, _ = user_files
    code = ("import sys; from studio.core.inspect.inspector import inspect_model\n"
            "from studio.core.inspect.arch_spec import ArchSpec\n"
            f"info = inspect_model({str(weights)!r}, arch=ArchSpec.of({str(net) + ':TwoHeads'!r}, '{{\"width\": 6}}',"
            f" trust_code=True), input_shape={SHAPE!r})\n"
            "print(len(info.outputs), sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.stdout.split() == ["2", "[]"], done.stderr[-2000:]
