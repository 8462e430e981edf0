"""The sweep's data.npz: read back equal to what was written, large arrays mapped from the file, not loaded."""
import mmap

import numpy as np

from studio.core.sweep import eval_data
from studio.core.tensors.samples import Samples
from studio.core.tensors.shapes import BatchMode, InputShape


def _inputs():
    return (InputShape("image", "float32", (1, 3, 64, 64), BatchMode.DYNAMIC),
            InputShape("state", "int64", (2, 3), BatchMode.NONE))


def _mapped(a: np.ndarray) -> bool:
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = a.base
    return False


def test_read_back_equal_and_large_arrays_mapped(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.standard_normal((80, 3, 64, 64)).astype(np.float32)  # 3.9 MB: above the mapping threshold
    state = np.arange(6, dtype=np.int64).reshape(2, 3)
    y = rng.integers(0, 10, 80)
    ref = [rng.standard_normal((80, 10)).astype(np.float32), rng.standard_normal((80, 1000, 16)).astype(np.float16)]
    path = tmp_path / "data.npz"
    eval_data.write(path, Samples(_inputs(), (images, state), (False, True)), y, ref)

    data = eval_data.read(path, _inputs())
    truth = np.load(path)  # numpy's own reader is the ground truth for what the file holds
    assert np.array_equal(data.samples.arrays[0], images) and np.array_equal(truth["eval000"], images)
    assert np.array_equal(data.samples.arrays[1], state) and data.samples.constant == (False, True)
    assert np.array_equal(data.y, y)
    assert len(data.reference) == 2 and all(np.array_equal(a, b) and a.dtype == b.dtype
                                            for a, b in zip(data.reference, ref, strict=True))
    assert _mapped(data.samples.arrays[0]) and _mapped(data.reference[1])
    assert not _mapped(data.samples.arrays[1]) and not _mapped(data.y)  # small ones are simply read

    calib = data.calib(32)  # calibration is a view of the evaluation array, not a second copy
    assert np.shares_memory(calib.arrays[0], data.samples.arrays[0]) and len(calib) == 32

    data.samples.arrays[0][0] = 123.0  # copy-on-write: a worker's in-place change never reaches the file
    assert np.array_equal(eval_data.read(path, _inputs()).samples.arrays[0], images)


def test_fortran_order_and_no_labels(tmp_path):
    a = np.asfortranarray(np.random.default_rng(0).standard_normal((600, 700)).astype(np.float32))
    path = tmp_path / "data.npz"
    eval_data.write(path, Samples((InputShape("x", "float32", (1, 700), BatchMode.DYNAMIC),), (a,), (False,)), None)
    data = eval_data.read(path, (InputShape("x", "float32", (1, 700), BatchMode.DYNAMIC),))
    assert data.y is None and _mapped(data.samples.arrays[0])
    assert np.array_equal(data.samples.arrays[0], a)
