"""TensorFlow and torch in one process: a Keras model and a torch export in one Studio run must not crash."""
import subprocess
import sys


def test_tensorflow_then_torch_export_in_one_process():
    # without studio's guard, triton's LLVM (pulled in by torch._dynamo) segfaults after TensorFlow is loaded
    code = "import studio, tensorflow, torch._dynamo, torch.utils._triton as t; print(t.has_triton_package())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
