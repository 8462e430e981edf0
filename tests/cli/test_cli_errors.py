"""Every way a user can get the arguments wrong ends in one line naming the command and exit 1; a failure nobody
foresaw reads as words, never as a framework's exception class name."""
import re
import subprocess
import sys

import pytest

from studio.commands.dispatch import CommandParser, dispatch
from tests.conftest import ROOT, run_cli

CLASS_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b")  # ValueError, RuntimeError, [ONNXRuntimeError], ...


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "usage:" not in result.stderr and "Traceback" not in result.stderr
    assert not CLASS_NAME.search(lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize(("argv", "prog", "fragment"), [
    (["optimize", "m.onnx", "-o", "out", "--input-shape", "abc"], "studio optimize",
     "argument --input-shape: 'abc' is not a shape like 1,3,224,224"),
    (["optimize", "m.onnx", "-o", "out", "--bogus"], "studio optimize", "unrecognized arguments: --bogus"),
    (["optimize", "m.onnx"], "studio optimize", "the following arguments are required: -o/--out"),
    (["optimize", "m.onnx", "-o", "out", "--quant", "int3"], "studio optimize", "argument --quant: invalid choice"),
    (["optimize", "m.onnx", "-o", "out", "--prune-ratio", "half"], "studio optimize", "invalid float value: 'half'"),
    (["inspect"], "studio inspect", "the following arguments are required: model"),
    (["sweep", "m.onnx", "-o", "out", "--frobnicate"], "studio sweep", "unrecognized arguments: --frobnicate"),
    (["nonsense"], "studio", "argument COMMAND: invalid choice: 'nonsense'"),
    (["--bogus"], "studio", "unrecognized arguments: --bogus"),
])
def test_argument_errors_are_one_line_and_exit_1(argv, prog, fragment):
    result = run_cli(*argv, timeout=60)
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert line.startswith(f"{prog}: error: ") and fragment in line, line
    assert line.endswith(f"(see '{prog} --help')")


def test_help_and_version_still_exit_0():
    for argv in (["--help"], ["optimize", "--help"], ["--version"]):
        result = run_cli(*argv, timeout=60)
        assert result.returncode == 0 and result.stderr == "", result.stderr
    assert run_cli("optimize", "--help", timeout=60).stdout.startswith("usage: studio optimize")


def test_flasher_argument_errors_are_one_line():
    result = subprocess.run([sys.executable, "-m", "studio.flasher", "verify"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert one_line(result) == ("studio-flash verify: error: the following arguments are required: bundle"
                                " (see 'studio-flash verify --help')")


def test_a_framework_failure_keeps_its_reason_without_its_class_name(shared_models, tmp_path):
    """MNIST takes 28x28: onnxruntime's refusal of 5x5 reaches the user as its reason, not '[ONNXRuntimeError]'."""
    result = run_cli("optimize", str(shared_models / "onnx" / "mnist.onnx"), "--input-shape", "1,1,5,5",
                     "-o", str(tmp_path / "o"), timeout=300)
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert "Input3" in line and "28" in line, line


def test_an_unforeseen_exception_is_a_bug_report_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("studio.core.base.paths.cache_dir", lambda: tmp_path)
    parser = CommandParser(prog="studio")
    sub = parser.add_subparsers(dest="command")

    def broken(args):
        raise ValueError("ValueError: axis 4 is out of bounds for array of dimension 4")

    sub.add_parser("go").set_defaults(run=broken)
    assert dispatch(parser, ["go"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("studio go: unexpected failure: axis 4 is out of bounds for array of dimension 4 (a bug")
    assert "ValueError" not in line and "\n" not in line
    assert "ValueError: ValueError: axis 4" in (tmp_path / "crash.log").read_text()  # the traceback, for the report
